#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Installs everything msrguard needs on a Debian 12 machine, as root, and
# builds the kernel into the cache. Idempotent: each step is skipped when
# already satisfied. Prints the kernel tree's path last.

. "$(dirname "$0")/lib.sh"

start=$SECONDS
[ "$(id -u)" -eq 0 ] || die "setup.sh must run as root (it installs Debian packages)"

# Debian build packages: Rust-for-Linux needs libclang >= 17 (bookworm's
# default is 14); depmod (kmod) is needed by virtme-ng for module trees;
# jq checks that the tool's JSON survives it; MinGW-w64 builds the real PE
# images of the image attribution tests (host tests and selftests/kvm/image_test).
PACKAGES=(
	"$LIBCLANG_PKG" bc flex bison libelf-dev libssl-dev kmod cpio
	xz-utils zstd rsync qemu-system-x86 python3-venv gcc make jq
	# KVM selftests: their library links libuuid (through libvfio).
	uuid-dev
	# scripts/test-dkms.sh builds msrguard through packaging/dkms/dkms.conf.
	dkms
	gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64
	# VMX under Bochs (scripts/test-vmx.sh): Bochs 2.7 with its BIOSes and
	# one GUI plugin package, bochs-term, the smallest (the run uses none;
	# without it apt would choose bochs-wx and wxWidgets); isolinux and
	# xorriso make the boot ISO, busybox its initramfs.
	bochs bochs-term bochsbios vgabios isolinux syslinux-common xorriso
	busybox-static libc6-dev
)
missing_pkgs=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing_pkgs+=("$p")
done
if [ ${#missing_pkgs[@]} -ne 0 ]; then
	run_logged apt-install bash -c "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing_pkgs[*]}" ||
		die "could not install Debian packages: ${missing_pkgs[*]}"
else
	msg "Debian packages: all present"
fi

# The kernel's Rust needs the core library sources.
command -v rustc >/dev/null || die "rustc not found: install Rust with rustup first"
command -v rustup >/dev/null || die "rustup not found: the kernel needs rust-src from rustup"
if ! rustup component list --installed | grep -q '^rust-src'; then
	run_logged rust-src rustup component add rust-src || die "could not add rust-src"
else
	msg "rust-src: present"
fi

# bindgen: pinned to the kernel's minimum, a version the kernel is tested with.
if [ "$(bindgen --version 2>/dev/null | awk '{print $2}')" != "$BINDGEN_VERSION" ]; then
	run_logged bindgen-install cargo install bindgen-cli --locked --version "$BINDGEN_VERSION" ||
		die "could not install bindgen-cli $BINDGEN_VERSION"
else
	msg "bindgen $BINDGEN_VERSION: present"
fi

# virtme-ng, pinned, in its own virtualenv in the cache.
if [ "$("$VENV/bin/vng" --version 2>/dev/null | awk '{print $2}')" != "$VIRTME_NG_VERSION" ]; then
	run_logged virtme-ng-install bash -c "rm -rf '$VENV' && python3 -m venv '$VENV' && '$VENV/bin/pip' install 'virtme-ng==$VIRTME_NG_VERSION'" ||
		die "could not install virtme-ng $VIRTME_NG_VERSION"
else
	msg "virtme-ng $VIRTME_NG_VERSION: present"
fi

msg "set-up of tools took $((SECONDS - start))s"
"$MSRGUARD_ROOT/scripts/build-kernel.sh"
