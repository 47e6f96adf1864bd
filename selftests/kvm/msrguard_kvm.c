// SPDX-License-Identifier: GPL-2.0
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asm/msr-index.h>

#include "kvm_util.h"
#include "processor.h"

#include "msrguard_kvm.h"

/*
 * LIBKVM's constructor (kvm_selftest_init(), default priority, so after
 * this one) opens /dev/kvm and skips the program without it. These
 * programs run as root in a test VM, where KVM may not be loaded yet (or a
 * previous program unloaded it): load it first, as their callers did.
 */
static void __attribute__((constructor(101))) load_kvm_before_libkvm(void)
{
	if (access("/dev/kvm", F_OK))
		load_kvm();
}

/*
 * What identifies an instance msrguard_load_or_reuse() loaded (noted in
 * INSTANCE_NOTE): the load's build and parameters, then the instance itself
 * (where its code sits, its build ID) and every parameter's value right
 * after the load.
 */
#define MODULE_DIR "/sys/module/msrguard/"

static void append_file(char *buf, size_t len, const char *path, bool hex)
{
	unsigned char data[256];
	size_t used = strlen(buf);
	ssize_t n, i;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, data, sizeof(data));
	if (fd >= 0)
		close(fd);
	if (n < 0) {
		snprintf(buf + used, len - used, "%s: unreadable\n", path);
		return;
	}
	used += snprintf(buf + used, len - used, "%s: ", path);
	for (i = 0; i < n && used + 4 < len; i++)
		used += hex ? snprintf(buf + used, len - used, "%02x", data[i]) :
			      snprintf(buf + used, len - used, "%c", data[i]);
	if (used + 1 < len)
		snprintf(buf + used, len - used, "\n");
}

/* The loaded instance's identity and parameter values, or false if none. */
static bool describe_instance(char *buf, size_t len, const char *ko, const char *params)
{
	char path[512];
	struct dirent *d;
	struct stat st;
	DIR *dir;

	/* The file as it is now: a rebuilt module is not the one loaded. */
	if (stat(ko, &st))
		return false;
	snprintf(buf, len, "build %s inode %lu size %lld mtime %lld.%09ld\nparams %s\n", ko,
		 (unsigned long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
		 st.st_mtim.tv_nsec, params);
	append_file(buf, len, MODULE_DIR "sections/.text", false);
	append_file(buf, len, MODULE_DIR "notes/.note.gnu.build-id", true);
	if (strstr(buf, "unreadable"))
		return false;
	dir = opendir(MODULE_DIR "parameters");
	if (!dir)
		return false;
	/*
	 * The writable ones: what a test can change. The read-only ones are
	 * fixed at load (the params above) or counters (image_lookups, ...).
	 * readdir of sysfs lists them in a stable order.
	 */
	while ((d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), MODULE_DIR "parameters/%s", d->d_name);
		if (stat(path, &st) || !(st.st_mode & 0222))
			continue;
		append_file(buf, len, path, false);
	}
	closedir(dir);
	return true;
}

static int load_fresh(const char *ko, const char *params, bool note)
{
	char now[4096];
	int ret;

	unlink(INSTANCE_NOTE);
	ret = unload_msrguard();
	if (ret && ret != -ENOENT)
		return ret;
	if (!ko)
		return 0;
	ret = load_module_file(ko, params);
	if (!ret && note && describe_instance(now, sizeof(now), ko, params)) {
		FILE *f = fopen(INSTANCE_NOTE, "we");

		/* Without the note the next test reloads: slower, not wrong. */
		if (f) {
			fputs(now, f);
			fclose(f);
		}
	}
	return ret;
}

static const char *policy_ko(enum policy p)
{
	if (p == POLICY_NONE)
		return NULL;
	return getenv(p == POLICY_TEST ? "MSRGUARD_TESTPOLICY_KO" : "MSRGUARD_KO");
}

int msrguard_load(enum policy p, const char *params)
{
	if (p != POLICY_NONE && !policy_ko(p))
		return -EINVAL;
	return load_fresh(policy_ko(p), params ? params : "", false);
}

int msrguard_load_or_reuse(enum policy p, const char *params)
{
	const char *ko = policy_ko(p);
	char noted[4096], now[4096];
	ssize_t n;
	int fd;

	if (p != POLICY_NONE && !ko)
		return -EINVAL;
	params = params ? params : "";
	if (!ko || !strcmp(getenv("MSRGUARD_FRESH_LOAD") ?: "0", "1"))
		return load_fresh(ko, params, false);
	fd = open(INSTANCE_NOTE, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, noted, sizeof(noted) - 1);
	if (fd >= 0)
		close(fd);
	if (n > 0) {
		noted[n] = '\0';
		if (describe_instance(now, sizeof(now), ko, params) && !strcmp(noted, now))
			return 0;
	}
	return load_fresh(ko, params, true);
}

bool under_tcg(void)
{
	u32 eax, sig[3];

	cpuid(0x40000000, &eax, &sig[0], &sig[1], &sig[2]);
	return !memcmp(sig, "TCGTCGTCGTCG", 12);
}

static bool param_is(const char *path, char want)
{
	FILE *f = fopen(path, "re");
	int c = 0;

	if (f) {
		c = fgetc(f);
		fclose(f);
	}
	return c == want;
}

int kvm_for_nested(void)
{
	if (access("/sys/module/kvm_amd", F_OK))
		return -ENODEV;
	/* nested is an int parameter ("1"), npt a bool ("Y"). */
	if (param_is("/sys/module/kvm_amd/parameters/nested", '1') &&
	    !(under_tcg() && param_is("/sys/module/kvm_amd/parameters/npt", 'Y')))
		return 0;
	printf("# reloading kvm_amd with nested=1%s\n", under_tcg() ? " npt=0 (QEMU TCG)" : "");
	/* msrguard re-arms on the new kvm_amd; a test reloads it all the same. */
	unlink(INSTANCE_NOTE);
	if (system(under_tcg() ? "modprobe -r kvm_amd && modprobe kvm_amd nested=1 npt=0" :
				 "modprobe -r kvm_amd && modprobe kvm_amd nested=1"))
		return -EBUSY;
	return 0;
}

/* Runs @vcpu to its next ucall, which must be @want; its first argument. */
static uint64_t run_to(struct kvm_vcpu *vcpu, uint64_t want)
{
	struct ucall uc;

	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	default:
		TEST_ASSERT(uc.cmd == want, "unexpected ucall %lu", uc.cmd);
	}
	return uc.args[1];
}

void run_until_done(struct kvm_vcpu *vcpu)
{
	run_to(vcpu, UCALL_DONE);
}

uint64_t run_to_sync(struct kvm_vcpu *vcpu)
{
	return run_to(vcpu, UCALL_SYNC);
}

static void ucode_write_guest(void)
{
	GUEST_SYNC(wrmsr_safe(MSR_IA32_UCODE_WRITE, 0x1000));
	GUEST_DONE();
}

int ucode_write_vector(void)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	int vec = -1;

	vm = vm_create_with_one_vcpu(&vcpu, ucode_write_guest);
	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	if (get_ucall(vcpu, &uc) == UCALL_SYNC)
		vec = uc.args[1];
	else if (uc.cmd == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	kvm_vm_free(vm);
	return vec;
}

int flood_count_add(struct flood_count *c, const struct msrguard_record *r, char *why,
		    size_t len)
{
	unsigned long long seq = r->sequence;

	if (r->abi_version != MSRGUARD_ABI_VERSION || r->record_size != MSRGUARD_RECORD_SIZE) {
		snprintf(why, len, "record seq %llu: abi %u size %u", seq, r->abi_version,
			 r->record_size);
		return -1;
	}
	if (r->access_status == MSRGUARD_STATUS_DROPPED) {
		if (r->reason != MSRGUARD_REASON_OVER_VM_QUOTA || !r->repeat) {
			snprintf(why, len, "drop report seq %llu: reason %u repeat %llu", seq,
				 r->reason, (unsigned long long)r->repeat);
			return -1;
		}
		c->reports++;
		c->reported_drops += r->repeat;
		return 0;
	}
	if (r->msr != MSR_UNKNOWN || r->is_write != 1 ||
	    r->access_status != MSRGUARD_STATUS_BLOCKED_GP ||
	    r->reason != MSRGUARD_REASON_UNKNOWN_MSR || (pid_t)r->vmm_pid != getpid()) {
		snprintf(why, len, "record seq %llu: msr %#x write %u status %u reason %u pid %u",
			 seq, r->msr, r->is_write, r->access_status, r->reason, r->vmm_pid);
		return -1;
	}
	c->records++;
	c->repeats += r->repeat;
	return 0;
}

#define LOG_MARK "msrguard selftest: mark"

void log_mark(void)
{
	int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (write(fd, LOG_MARK "\n", strlen(LOG_MARK) + 1) < 0)
			perror("/dev/kmsg");
		close(fd);
	}
}

int log_lines(const char *text)
{
	char cmd[512];
	int n = -1;
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "dmesg | awk -v t='%s' 'index($0, \"" LOG_MARK "\") { n = 0; next } "
		 "index($0, t) { n++ } END { print n + 0 }'", text);
	f = popen(cmd, "r");
	if (f) {
		if (fscanf(f, "%d", &n) != 1)
			n = -1;
		pclose(f);
	}
	return n;
}
