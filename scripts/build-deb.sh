#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Builds the Debian package of the msrguard tool and its service files with
# cargo-deb (installed pinned, into the cache), then unpacks it into a
# scratch root and checks that every file is where the unit and the
# documentation say. Prints the .deb's path last.

. "$(dirname "$0")/lib.sh"
cd "$MSRGUARD_ROOT"

CARGO_DEB_VERSION=3.8.0
CARGO_DEB_ROOT="$MSRGUARD_CACHE/cargo-deb-$CARGO_DEB_VERSION"
if [ "$("$CARGO_DEB_ROOT/bin/cargo-deb" --version 2>/dev/null | awk '{print $2}')" != "$CARGO_DEB_VERSION" ]; then
	run_logged cargo-deb-install cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" --root "$CARGO_DEB_ROOT" ||
		die "could not install cargo-deb $CARGO_DEB_VERSION"
fi
export PATH="$CARGO_DEB_ROOT/bin:$PATH"

out="$CARGO_TARGET_DIR/debian"
run_logged cargo-deb cargo deb --locked -p msrguard --output "$out" || die "cargo deb failed"
deb=$(ls -t "$out"/msrguard_*.deb | head -n1)

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
fail=0
for f in usr/bin/msrguard usr/lib/systemd/system/msrguard-events.service \
	usr/lib/modules-load.d/msrguard.conf etc/modprobe.d/msrguard.conf \
	usr/share/doc/msrguard/index.rst usr/share/doc/msrguard/admin-guide.rst \
	usr/share/msrguard/default-policy.toml; do
	[ -e "$root/$f" ] || { echo "FAIL $deb lacks /$f"; fail=1; }
done
# The packaged tool runs, and checks the packaged policy.
"$root/usr/bin/msrguard" check "$root/usr/share/msrguard/default-policy.toml" >/dev/null ||
	{ echo "FAIL the packaged msrguard does not accept the packaged policy"; fail=1; }
# The unit starts what the package installs.
exec_path=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$root/usr/lib/systemd/system/msrguard-events.service")
[ -x "$root$exec_path" ] || { echo "FAIL the unit's ExecStart $exec_path is not in the package"; fail=1; }
# The unit's documentation is in the package.
doc=$(sed -n 's|^Documentation=file:\(.*\)|\1|p' "$root/usr/lib/systemd/system/msrguard-events.service")
[ -n "$doc" ] && [ -f "$root$doc" ] || { echo "FAIL the unit's Documentation ${doc:-(none)} is not in the package"; fail=1; }
dpkg-deb -f "$deb" Package Version Depends | sed 's/^/  /'
[ "$fail" -eq 0 ] || die "Debian package check failed"
echo "ok $deb: $(dpkg-deb -c "$deb" | grep -vc '/$') files in place, tool runs, unit's ExecStart packaged"
echo "$deb"
