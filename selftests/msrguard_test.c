// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's VM test suite, run inside the test VM as root (see
 * scripts/test.sh). TAP output through the kernel's kselftest.h; a final
 * "N passed, N failed" line for CI.
 *
 * Every guard case has a KVM guest do one access and checks what the guest
 * saw (#GP, value, success) and the exact event read back from
 * /dev/msrguard and from tracefs, with Pc equal to the instruction's
 * address. The record layout comes from msrguard_abi.h, generated from
 * rust/record.rs.
 *
 * Usage: msrguard_test MODULE.ko TESTPOLICY_MODULE.ko MSRGUARD_TOOL
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest.h"
#include "guard.h"
#include "guard_suite.h"
#include "msrguard_stats.h"

static const char *module_path;
static const char *testpolicy_path;
static const char *tool_path;

/* ---- Helpers ------------------------------------------------------------ */

static int load_module(const char *params)
{
	return load_module_file(module_path, params);
}

static int unload_module(void)
{
	return unload_msrguard();
}

/* ---- Phases ------------------------------------------------------------- */

static void test_module_load_unload(void)
{
	struct stat st;
	int ret;

	ret = load_module("");
	if (ret) {
		ksft_test_result_fail("insmod msrguard.ko: %s\n", strerror(-ret));
		ksft_test_result_skip("device node (module did not load)\n");
		ksft_test_result_skip("rmmod msrguard (module did not load)\n");
		return;
	}
	ksft_test_result_pass("insmod msrguard.ko\n");

	if (stat(DEVICE_PATH, &st))
		ksft_test_result_fail("%s while loaded: %s\n", DEVICE_PATH, strerror(errno));
	else if (!S_ISCHR(st.st_mode) || (st.st_mode & 07777) != 0600)
		ksft_test_result_fail("%s while loaded: mode %o, want char device 0600\n",
				      DEVICE_PATH, st.st_mode);
	else
		ksft_test_result_pass("%s is a 0600 char device while loaded\n", DEVICE_PATH);

	ret = unload_module();
	if (ret)
		ksft_test_result_fail("rmmod msrguard: %s\n", strerror(-ret));
	else if (!stat(DEVICE_PATH, &st) || errno != ENOENT)
		ksft_test_result_fail("%s still exists after rmmod\n", DEVICE_PATH);
	else
		ksft_test_result_pass("rmmod msrguard removes %s\n", DEVICE_PATH);
}

/* Without msrguard, KVM accepts what the guard cases show msrguard refusing. */
static void test_baseline(struct suite *s)
{
	struct guest_result r1, r2, r3, r4;
	int ret;

	ret = guest_access(s, guest_rdmsr, MSR_IA32_CR_PAT, 0, &r1) ||
	      guest_access(s, guest_wrmsr, MSR_IA32_UCODE_WRITE, 0x1000, &r2) ||
	      guest_access(s, guest_rdmsr, MSR_FS_BASE, 0, &r3) ||
	      guest_access(s, guest_rdmsr, MSR_IA32_MISC_ENABLE, 0, &r4);
	if (ret) {
		ksft_test_result_fail("baseline without msrguard: KVM_RUN failed\n");
		return;
	}
	report_baseline(s, &r1, &r2, &r3, &r4);
}

static void test_audit_mode(struct suite *s)
{
	const struct guard_case c = {
		"audit mode: microcode trigger write is allowed, audit-allowed event", guest_wrmsr, 0,
		MSR_IA32_UCODE_WRITE, 0x3000, 0, false, 0, MSRGUARD_STATUS_AUDIT_ALLOWED,
		MSRGUARD_REASON_WRITE_DENIED, "audit-allowed",
	};
	char why[512];
	int ret;

	ret = write_file("/sys/module/msrguard/parameters/mode", "audit");
	if (ret) {
		ksft_test_result_fail("%s: cannot set mode=audit: %s\n", c.name, strerror(-ret));
		return;
	}
	ret = run_guard_case(s, &c, why, sizeof(why));
	write_file("/sys/module/msrguard/parameters/mode", "enforce");
	report_case(ret, c.name, why);
}

static void test_log_line(void)
{
	/* The microcode case above logged this line (ratelimited, but few). */
	int ret = system("dmesg | grep -q 'msrguard: seq=[0-9]* blocked-gp WRMSR msr=0x79 (MSR_IA32_UCODE_WRITE) value=0x1000 pc=0x1003'");

	if (ret)
		ksft_test_result_fail("kernel log: no line for the vetoed microcode write\n");
	else
		ksft_test_result_pass("kernel log: one line per event with the main fields\n");
}

static void test_nonblock_and_short_read(struct suite *s)
{
	uint8_t rec[MSRGUARD_RECORD_SIZE];
	struct guest_result res;
	struct event e;
	ssize_t n;

	drain(s->fd);
	n = read(s->fd, rec, sizeof(rec));
	if (n == -1 && errno == EAGAIN)
		ksft_test_result_pass("O_NONBLOCK read of an empty queue: EAGAIN\n");
	else
		ksft_test_result_fail("O_NONBLOCK read of an empty queue: %zd/%s\n", n, strerror(errno));

	guest_access(s, guest_rdmsr, MSR_UNKNOWN, 0, &res);
	n = read(s->fd, rec, sizeof(rec) - 1);
	if (!(n == -1 && errno == EINVAL)) {
		ksft_test_result_fail("short read: %zd/%s, want EINVAL\n", n, strerror(errno));
		return;
	}
	if (next_event(s->fd, &e) != 1 || e.msr != MSR_UNKNOWN)
		ksft_test_result_fail("short read: EINVAL, but the record was lost\n");
	else
		ksft_test_result_pass("short read: EINVAL, and the record is still there\n");
}

struct poller {
	int fd;
	int revents;
	int ret;
};

static void *poll_thread(void *arg)
{
	struct poller *p = arg;
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };

	p->ret = poll(&pfd, 1, 10000);
	p->revents = pfd.revents;
	return NULL;
}

static void test_poll_wakes(struct suite *s)
{
	struct poller p = { .fd = s->fd };
	struct guest_result res;
	struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
	pthread_t t;

	drain(s->fd);
	if (poll(&pfd, 1, 0) != 0) {
		ksft_test_result_fail("poll: readable with an empty queue\n");
		return;
	}
	pthread_create(&t, NULL, poll_thread, &p);
	usleep(200 * 1000);
	guest_access(s, guest_rdmsr, MSR_UNKNOWN, 0, &res);
	pthread_join(t, NULL);
	if (p.ret == 1 && (p.revents & POLLIN))
		ksft_test_result_pass("poll wakes with POLLIN when an event arrives\n");
	else
		ksft_test_result_fail("poll: ret %d revents %#x\n", p.ret, p.revents);
	drain(s->fd);
}

static void test_two_readers(struct suite *s)
{
	uint8_t buf[2 * MSRGUARD_RECORD_SIZE];
	uint64_t seen = 0, first = 0;
	struct guest_result res;
	int fd2 = open_device();
	int i, n1, n2;

	drain(s->fd);
	/* Distinct values: no two events coalesce. */
	for (i = 0; i < 4; i++)
		guest_access(s, guest_wrmsr, MSR_UNKNOWN, i, &res);
	n1 = read(s->fd, buf, sizeof(buf));
	if (n1 == (int)sizeof(buf)) {
		first = le(buf + MSRGUARD_OFF_SEQUENCE, 8);
		seen |= 1ull << 0 | 1ull << (le(buf + MSRGUARD_RECORD_SIZE + MSRGUARD_OFF_SEQUENCE, 8) - first);
	}
	n2 = fd2 < 0 ? -1 : read(fd2, buf, sizeof(buf));
	if (n2 == (int)sizeof(buf))
		for (i = 0; i < 2; i++)
			seen |= 1ull << (le(buf + i * MSRGUARD_RECORD_SIZE + MSRGUARD_OFF_SEQUENCE, 8) - first);
	if (fd2 >= 0)
		close(fd2);
	if (n1 == (int)sizeof(buf) && n2 == (int)sizeof(buf) && seen == 0xf &&
	    next_event(s->fd, &(struct event){}) == 0)
		ksft_test_result_pass("two readers share one queue: each of 4 events read exactly once\n");
	else
		ksft_test_result_fail("two readers: read %d and %d bytes, sequences seen %#llx\n", n1, n2,
				      (unsigned long long)seen);
}

static void test_stats(struct suite *s)
{
	uint8_t st[MSRGUARD_STATS_SIZE];
	uint64_t gen0, gp0, del0;
	struct guest_result res;
	int ret;

	drain(s->fd);
	ret = get_stats(s->fd, st);
	if (ret) {
		ksft_test_result_fail("stats ioctl: %s\n", strerror(-ret));
		return;
	}
	gen0 = stats_u64(st, MSRGUARD_STATS_OFF_GENERATED);
	gp0 = stats_u64(st, MSRGUARD_STATS_OFF_BLOCKED_GP);
	del0 = stats_u64(st, MSRGUARD_STATS_OFF_DELIVERED);
	/* Distinct values: no two events coalesce. */
	guest_access(s, guest_wrmsr, MSR_UNKNOWN, 1, &res);
	guest_access(s, guest_wrmsr, MSR_UNKNOWN, 2, &res);
	drain(s->fd);
	get_stats(s->fd, st);
	if (le(st + MSRGUARD_STATS_OFF_ABI_VERSION, 4) == MSRGUARD_ABI_VERSION &&
	    le(st + MSRGUARD_STATS_OFF_RECORD_SIZE, 4) == MSRGUARD_RECORD_SIZE &&
	    stats_u64(st, MSRGUARD_STATS_OFF_GENERATED) == gen0 + 2 &&
	    stats_u64(st, MSRGUARD_STATS_OFF_BLOCKED_GP) == gp0 + 2 &&
	    stats_u64(st, MSRGUARD_STATS_OFF_DELIVERED) == del0 + 2 &&
	    le(st + MSRGUARD_STATS_OFF_QUEUED, 4) == 0)
		ksft_test_result_pass("stats ioctl: ABI version, record size and counters\n");
	else
		ksft_test_result_fail("stats ioctl: abi %llu size %llu generated %llu->%llu\n",
				      (unsigned long long)le(st + MSRGUARD_STATS_OFF_ABI_VERSION, 4),
				      (unsigned long long)le(st + MSRGUARD_STATS_OFF_RECORD_SIZE, 4),
				      (unsigned long long)gen0,
				      (unsigned long long)stats_u64(st, MSRGUARD_STATS_OFF_GENERATED));
}

/* Bad parameters fail the load cleanly (and leave nothing behind). */
static void test_bad_params(void)
{
	int r1 = load_module("ring_records=0");
	int r2 = load_module("mode=bogus");
	int r3 = load_module("");
	int r4 = r3 ? r3 : unload_module();

	if (r1 == -EINVAL && r2 == -EINVAL && !r3 && !r4)
		ksft_test_result_pass("bad parameters (ring_records=0, mode=bogus): EINVAL, then a clean load\n");
	else
		ksft_test_result_fail("bad parameters: ring_records=0 %d, mode=bogus %d, reload %d, unload %d\n",
				      r1, r2, r3, r4);
}

/* A small buffer overflows: the newest events are dropped, exactly counted. */
static void test_drop_count(struct suite *s)
{
	uint8_t st[MSRGUARD_STATS_SIZE];
	struct guest_result res;
	uint64_t kept_max, reported = 0;
	struct event e;
	int i, fd, got = 0, reports = 0, in_order = 1, ret;

	ret = load_module("ring_records=8");
	fd = ret ? -1 : open_device();
	if (fd < 0) {
		ksft_test_result_fail("drop count: cannot load with ring_records=8: %s\n",
				      strerror(ret ? -ret : errno));
		unload_module();
		return;
	}
	/* Distinct values: no two events coalesce. */
	for (i = 0; i < 20; i++)
		guest_access(s, guest_wrmsr, MSR_UNKNOWN, i, &res);
	get_stats(fd, st);
	/* One VM alone: it stops where the reserve for other VMs starts. */
	kept_max = le(st + MSRGUARD_STATS_OFF_CAPACITY, 4) - le(st + MSRGUARD_STATS_OFF_VM_RESERVE, 4);
	while (next_event(fd, &e) == 1) {
		in_order &= e.seq == (uint64_t)(got + reports + 1);
		if (e.status == MSRGUARD_STATUS_DROPPED) {
			reports++;
			reported += e.repeat;
		} else {
			in_order &= e.value == (uint64_t)got;
			got++;
		}
	}
	close(fd);
	if (stats_u64(st, MSRGUARD_STATS_OFF_GENERATED) == 20 &&
	    stats_u64(st, MSRGUARD_STATS_OFF_DROPPED) == 20 - kept_max &&
	    got == (int)kept_max && reports == 1 && reported == 20 - kept_max && in_order)
		ksft_test_result_pass("overflow: 20 events into 8 slots: the oldest %d kept in order, then one drop report for the other %llu\n",
				      got, (unsigned long long)reported);
	else
		ksft_test_result_fail("overflow: generated %llu dropped %llu (expected %llu), read %d records and %d reports of %llu (in order %d)\n",
				      (unsigned long long)stats_u64(st, MSRGUARD_STATS_OFF_GENERATED),
				      (unsigned long long)stats_u64(st, MSRGUARD_STATS_OFF_DROPPED),
				      (unsigned long long)(20 - kept_max), got, reports,
				      (unsigned long long)reported, in_order);
	unload_module();
}

/* Identical accesses in a row become one record with a repeat count. */
static void test_coalescing(struct suite *s)
{
	uint8_t st[MSRGUARD_STATS_SIZE];
	struct guest_result res;
	struct event e;
	int i, got = 0, ret;
	uint64_t repeat = 0;

	drain(s->fd);
	for (i = 0; i < 5; i++)
		guest_access(s, guest_rdmsr, MSR_UNKNOWN, 0, &res);
	while ((ret = next_event(s->fd, &e)) == 1) {
		got++;
		repeat = e.repeat;
	}
	get_stats(s->fd, st);
	if (got == 1 && repeat == 4 && stats_u64(st, MSRGUARD_STATS_OFF_COALESCED) >= 4)
		ksft_test_result_pass("coalescing: 5 identical unknown-MSR reads are one record with repeat=4\n");
	else
		ksft_test_result_fail("coalescing: %d records, last repeat %llu, coalesced %llu\n", got,
				      (unsigned long long)repeat,
				      (unsigned long long)stats_u64(st, MSRGUARD_STATS_OFF_COALESCED));
}

/* msrguard before kvm: hooks arm when kvm loads, disarm when it goes. */
static void test_load_order(void)
{
	struct guest_result res;
	struct suite s2;
	int ret, fd = -1;

	if (unload_kvm()) {
		ksft_test_result_fail("load order: cannot unload kvm\n");
		return;
	}
	ret = load_module("");
	if (!ret)
		ret = load_kvm();
	if (!ret)
		ret = vm_create(&s2.vm);
	if (!ret) {
		ret = guest_access(&s2, guest_wrmsr, MSR_IA32_UCODE_WRITE, 0x1000, &res);
		vm_destroy(&s2.vm);
	}
	fd = open_device();
	if (ret || res.fault_vector != GP_VECTOR || fd < 0 || next_event(fd, &(struct event){}) != 1)
		ksft_test_result_fail("msrguard loaded before kvm_amd: vetoes once kvm loads (ret %d, vector %u)\n",
				      ret, res.fault_vector);
	else
		ksft_test_result_pass("msrguard loaded before kvm_amd: vetoes once kvm loads\n");
	if (fd >= 0)
		close(fd);

	/* kvm goes and comes back while msrguard stays. */
	ret = unload_kvm();
	if (!ret)
		ret = load_kvm();
	if (!ret)
		ret = vm_create(&s2.vm);
	if (!ret) {
		ret = guest_access(&s2, guest_wrmsr, MSR_IA32_UCODE_WRITE, 0x1000, &res);
		vm_destroy(&s2.vm);
	}
	if (ret || res.fault_vector != GP_VECTOR)
		ksft_test_result_fail("kvm unloaded and reloaded under msrguard: still vetoes (ret %d)\n", ret);
	else
		ksft_test_result_pass("kvm unloaded and reloaded under msrguard: disarms, re-arms, vetoes\n");
	unload_module();
}

/*
 * Audit mode records a read when it completes: MsrValue is what the guest
 * got. FS_BASE (denied by the test policy) holds a value the VMM set.
 */
static void test_audit_read_value(void)
{
	const uint64_t fs_base = 0x123456789aull;
	struct guest_result res = { 0 };
	struct suite s2;
	struct event e = { 0 };
	int ret, fd = open_device(), got = 0;

	drain(fd);
	ret = write_file("/sys/module/msrguard/parameters/mode", "audit");
	if (!ret)
		ret = vm_create(&s2.vm);
	if (!ret) {
		ret = vm_set_msr(&s2.vm, MSR_FS_BASE, fs_base);
		if (!ret)
			ret = guest_access(&s2, guest_rdmsr, MSR_FS_BASE, 0, &res);
		vm_destroy(&s2.vm);
	}
	write_file("/sys/module/msrguard/parameters/mode", "enforce");
	if (!ret && fd >= 0)
		got = next_event(fd, &e);
	if (!ret && res.fault_vector == 0 && res.value == fs_base && got == 1 &&
	    e.msr == MSR_FS_BASE && !e.is_write && e.value == fs_base &&
	    e.status == MSRGUARD_STATUS_AUDIT_ALLOWED && e.reason == MSRGUARD_REASON_READ_DENIED &&
	    e.pc == guest_gpa(guest_rdmsr))
		ksft_test_result_pass("audit mode read: allowed, event carries the value the guest read\n");
	else
		ksft_test_result_fail("audit read: ret %d vector %u read %#llx, event %d value %#llx status %u\n",
				      ret, res.fault_vector, (unsigned long long)res.value, got,
				      (unsigned long long)e.value, e.status);
	if (fd >= 0)
		close(fd);
}

/* A policy denying FS_BASE, which SVM lets guests access without exits. */
static void test_passthrough_denied(void)
{
	struct guest_result r1, r2;
	struct suite s2;
	struct event e;
	int ret, fd;

	ret = load_module_file(testpolicy_path, "");
	if (!ret)
		ret = vm_create(&s2.vm);
	if (ret) {
		ksft_test_result_fail("pass-through MSR denied: cannot load the test-policy build: %s\n",
				      strerror(-ret));
		unload_module();
		return;
	}
	fd = open_device();
	ret = guest_access(&s2, guest_rdmsr, MSR_FS_BASE, 0, &r1) ||
	      guest_access(&s2, guest_rdmsr, MSR_IA32_CR_PAT, 0, &r2);
	vm_destroy(&s2.vm);
	if (!ret && r1.fault_vector == GP_VECTOR && r2.fault_vector == 0 && fd >= 0 &&
	    next_event(fd, &e) == 1 && e.msr == MSR_FS_BASE &&
	    e.status == MSRGUARD_STATUS_BLOCKED_GP && e.pc == guest_gpa(guest_rdmsr))
		ksft_test_result_pass("MSR KVM passes through (FS_BASE) but the policy denies: intercepted, #GP, event\n");
	else
		ksft_test_result_fail("pass-through MSR denied: ret %d, FS_BASE vector %u, PAT vector %u\n", ret,
				      r1.fault_vector, r2.fault_vector);
	if (fd >= 0)
		close(fd);
	test_audit_read_value();
	unload_module();
}

/* A VMM that asked for filtered-MSR exits gets the veto as its exit. */
static void test_user_space_exit(struct suite *s)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_X86_USER_SPACE_MSR,
		.args[0] = KVM_MSR_EXIT_REASON_FILTER,
	};
	struct guest_result res;
	struct suite s2;
	int ret;

	ret = vm_create(&s2.vm);
	if (!ret && ioctl(s2.vm.vm_fd, KVM_ENABLE_CAP, &cap))
		ret = -errno;
	if (!ret)
		ret = guest_access(&s2, guest_wrmsr, MSR_IA32_UCODE_WRITE, 0x1000, &res);
	if (!ret && res.exit_reason == KVM_EXIT_X86_WRMSR &&
	    s2.vm.run->msr.index == MSR_IA32_UCODE_WRITE &&
	    s2.vm.run->msr.reason == KVM_MSR_EXIT_REASON_FILTER && s2.vm.run->msr.data == 0x1000)
		ksft_test_result_pass("VMM with filter exits and no filter of its own gets KVM_EXIT_X86_WRMSR (reason FILTER)\n");
	else
		ksft_test_result_fail("user-space exit: ret %d exit %u\n", ret, res.exit_reason);
	if (!ret || s2.vm.vcpu_fd >= 0)
		vm_destroy(&s2.vm);
	drain(s->fd);
}

/*
 * A VMM like QEMU enables filter exits and installs a filter of its own
 * (here: reads of MSR_CORE_THREAD_COUNT). It expects filter exits for its
 * MSRs only, so msrguard's vetoes must reach its guest as #GP.
 */
static void test_vmm_with_own_filter(struct suite *s)
{
	uint8_t bitmap[1] = { 0 };	/* deny */
	struct kvm_msr_filter filter = {
		.flags = KVM_MSR_FILTER_DEFAULT_ALLOW,
		.ranges[0] = { .flags = KVM_MSR_FILTER_READ, .nmsrs = 1, .base = 0x35,
			       .bitmap = bitmap },
	};
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_X86_USER_SPACE_MSR,
		.args[0] = KVM_MSR_EXIT_REASON_FILTER,
	};
	struct guest_result r1 = { 0 }, r2 = { 0 };
	struct suite s2;
	struct event e = { 0 };
	int ret, got = 0;

	drain(s->fd);
	ret = vm_create(&s2.vm);
	if (ret) {
		ksft_test_result_fail("VMM with its own MSR filter: no VM\n");
		return;
	}
	if (ioctl(s2.vm.vm_fd, KVM_ENABLE_CAP, &cap) || ioctl(s2.vm.vm_fd, KVM_X86_SET_MSR_FILTER, &filter))
		ret = -errno;
	if (!ret)
		ret = guest_access(&s2, guest_wrmsr, MSR_IA32_UCODE_WRITE, 0x1000, &r1);
	if (!ret)
		ret = guest_access(&s2, guest_rdmsr, 0x35, 0, &r2);
	vm_destroy(&s2.vm);
	got = next_event(s->fd, &e);
	if (!ret && r1.exit_reason == KVM_EXIT_HLT && r1.fault_vector == GP_VECTOR && got == 1 &&
	    e.msr == MSR_IA32_UCODE_WRITE && r2.exit_reason == KVM_EXIT_X86_RDMSR)
		ksft_test_result_pass("VMM with its own MSR filter (as QEMU): vetoes reach the guest as #GP, its own MSR still exits\n");
	else
		ksft_test_result_fail("VMM with its own filter: ret %d, veto exit %u vector %u, event %d, own MSR exit %u\n",
				      ret, r1.exit_reason, r1.fault_vector, got, r2.exit_reason);
	drain(s->fd);
}

/* A VMM that asked for every failed MSR access gets msrguard's vetoes too. */
static void test_vmm_inval_exits(struct suite *s)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_X86_USER_SPACE_MSR,
		.args[0] = KVM_MSR_EXIT_REASON_INVAL,
	};
	struct guest_result res = { 0 };
	struct suite s2;
	int ret;

	ret = vm_create(&s2.vm);
	if (ret) {
		ksft_test_result_fail("VMM with invalid-MSR exits: no VM\n");
		return;
	}
	if (ioctl(s2.vm.vm_fd, KVM_ENABLE_CAP, &cap))
		ret = -errno;
	if (!ret)
		ret = guest_access(&s2, guest_wrmsr, MSR_IA32_UCODE_WRITE, 0x1000, &res);
	if (!ret && res.exit_reason == KVM_EXIT_X86_WRMSR &&
	    s2.vm.run->msr.index == MSR_IA32_UCODE_WRITE &&
	    s2.vm.run->msr.reason == KVM_MSR_EXIT_REASON_INVAL)
		ksft_test_result_pass("VMM with invalid-MSR exits gets KVM_EXIT_X86_WRMSR (reason INVAL) for a veto\n");
	else
		ksft_test_result_fail("VMM with invalid-MSR exits: ret %d exit %u\n", ret, res.exit_reason);
	vm_destroy(&s2.vm);
	drain(s->fd);
}

struct blocked_reader {
	int fd;
	ssize_t n;
	int err;
};

static void *blocking_read(void *arg)
{
	struct blocked_reader *r = arg;
	uint8_t rec[MSRGUARD_RECORD_SIZE];

	r->n = read(r->fd, rec, sizeof(rec));
	r->err = errno;
	return NULL;
}

/* The open file pins the module: rmmod is refused, the reader is unharmed. */
static void test_unload_while_reading(struct suite *s)
{
	struct blocked_reader r = { .n = -2 };
	struct guest_result res;
	pthread_t t;
	int ret;

	drain(s->fd);
	r.fd = open(DEVICE_PATH, O_RDONLY | O_CLOEXEC);
	if (r.fd < 0) {
		ksft_test_result_fail("unload while a reader blocks: open: %s\n", strerror(errno));
		return;
	}
	pthread_create(&t, NULL, blocking_read, &r);
	usleep(200 * 1000);
	ret = unload_module();
	guest_access(s, guest_rdmsr, MSR_UNKNOWN, 0, &res);
	pthread_join(t, NULL);
	close(r.fd);
	/* delete_module() says "in use" with EWOULDBLOCK (== EAGAIN). */
	if (ret == -EWOULDBLOCK && r.n == MSRGUARD_RECORD_SIZE)
		ksft_test_result_pass("unload while a reader blocks: refused (in use), the reader then gets its event\n");
	else
		ksft_test_result_fail("unload while a reader blocks: rmmod %d, read %zd (%s)\n", ret, r.n,
				      strerror(r.err));
}

/* ---- The msrguard tool against real events ------------------------------ */

/* Starts the tool with @args; its stdout is *@out. Returns the pid. */
static pid_t spawn_tool(const char *const *args, int *out)
{
	const char *argv[8] = { tool_path };
	int p[2], i;
	pid_t pid;

	for (i = 0; args[i] && i < 6; i++)
		argv[i + 1] = args[i];
	if (pipe(p))
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execv(tool_path, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	*out = p[0];
	return pid;
}

/* Reads what the tool prints within @timeout_ms into @buf. */
static size_t read_output(int fd, char *buf, size_t len, int timeout_ms, const char *until)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t used = 0;
	ssize_t n;

	while (used < len - 1 && poll(&pfd, 1, timeout_ms) > 0) {
		n = read(fd, buf + used, len - 1 - used);
		if (n <= 0)
			break;
		used += n;
		buf[used] = 0;
		if (until && strstr(buf, until))
			break;
	}
	buf[used] = 0;
	return used;
}

static bool json_has(const char *json, const char *fmt, ...)
{
	char field[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(field, sizeof(field), fmt, ap);
	va_end(ap);
	return strstr(json, field) != NULL;
}

static void test_tool_events_json(struct suite *s)
{
	const char *args[] = { "events", "--json", NULL };
	uint64_t pc = guest_gpa(guest_wrmsr);
	struct guest_result res;
	char out[4096];
	int fd, status;
	pid_t pid;

	drain(s->fd);
	guest_access(s, guest_wrmsr, MSR_IA32_UCODE_WRITE, 0x1000, &res);
	guest_access(s, guest_rdmsr, MSR_UNKNOWN, 0, &res);
	pid = spawn_tool(args, &fd);
	read_output(fd, out, sizeof(out), 5000, NULL);
	close(fd);
	waitpid(pid, &status, 0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    json_has(out, "\"msr\":%u,\"msr_name\":\"MSR_IA32_UCODE_WRITE\"", MSR_IA32_UCODE_WRITE) &&
	    json_has(out, "\"is_write\":true") && json_has(out, "\"msr_value\":\"0x1000\"") &&
	    json_has(out, "\"access_status\":\"blocked-gp\"") && json_has(out, "\"pc\":\"%#llx\"", (unsigned long long)pc) &&
	    json_has(out, "\"vmm_pid\":%d", getpid()) && json_has(out, "\"guest_mode\":\"real\"") &&
	    json_has(out, "\"msr\":%u", MSR_UNKNOWN) && json_has(out, "\"reason\":\"unknown-msr\"") &&
	    json_has(out, "\"id\":12550") && strchr(out, '\n') != strrchr(out, '\n'))
		ksft_test_result_pass("msrguard events --json: both vetoed accesses with their fields\n");
	else
		ksft_test_result_fail("msrguard events --json: exit %d, output: %.600s\n",
				      WIFEXITED(status) ? WEXITSTATUS(status) : -1, out);
}

static void test_tool_follow(struct suite *s)
{
	const char *args[] = { "events", "--follow", "--json", NULL };
	struct guest_result res;
	char out[4096];
	int fd;
	pid_t pid;

	drain(s->fd);
	pid = spawn_tool(args, &fd);
	usleep(500 * 1000);
	guest_access(s, guest_wrmsr, MSR_IA32_UCODE_WRITE, 0x4242, &res);
	read_output(fd, out, sizeof(out), 5000, "\n");
	kill(pid, SIGINT);
	waitpid(pid, NULL, 0);
	close(fd);
	if (json_has(out, "\"msr\":%u", MSR_IA32_UCODE_WRITE) && json_has(out, "\"msr_value\":\"%#x\"", 0x4242))
		ksft_test_result_pass("msrguard events --follow: receives an event produced after it started\n");
	else
		ksft_test_result_fail("msrguard events --follow: output: %.600s\n", out);
}

/* journald's native protocol socket, played by this test. */
static void test_tool_journal(struct suite *s)
{
	const char *args[] = { "events", "--journal", NULL };
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	struct guest_result res;
	char msg[8192] = "";
	int sock, fd, status;
	ssize_t n = -1;
	pid_t pid;

	drain(s->fd);
	mkdir("/run/systemd", 0755);
	mkdir("/run/systemd/journal", 0755);
	strcpy(addr.sun_path, "/run/systemd/journal/socket");
	unlink(addr.sun_path);
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || bind(sock, (struct sockaddr *)&addr, sizeof(addr))) {
		ksft_test_result_fail("journal: cannot play journald's socket: %s\n", strerror(errno));
		return;
	}
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	guest_access(s, guest_wrmsr, MSR_IA32_UCODE_WRITE, 0x1000, &res);
	pid = spawn_tool(args, &fd);
	n = recv(sock, msg, sizeof(msg) - 1, 0);
	waitpid(pid, &status, 0);
	close(fd);
	close(sock);
	unlink(addr.sun_path);
	if (n > 0)
		msg[n] = 0;
	if (n > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    strstr(msg, "MESSAGE_ID=4d5352475541524431323535300a0001\n") &&
	    strstr(msg, "MSR=0x79\n") && strstr(msg, "IS_WRITE=1\n") && strstr(msg, "PC=0x1003\n") &&
	    strstr(msg, "ACCESS_STATUS=blocked-gp\n") && strstr(msg, "MSR_VALUE=0x1000\n") &&
	    strstr(msg, "PRIORITY=4\n"))
		ksft_test_result_pass("msrguard events --journal: native-protocol entry with MESSAGE_ID, MSR, IS_WRITE, PC\n");
	else
		ksft_test_result_fail("msrguard events --journal: recv %zd, exit %d, datagram: %.400s\n", n,
				      WIFEXITED(status) ? WEXITSTATUS(status) : -1, msg);
}

static void test_tool_stats_and_policy(struct suite *s)
{
	const char *stats_args[] = { "stats", "--json", NULL };
	const char *policy_args[] = { "policy", NULL };
	char out[16384], want[64];
	int fd;
	pid_t pid;
	bool ok;

	pid = spawn_tool(stats_args, &fd);
	read_output(fd, out, sizeof(out), 5000, NULL);
	waitpid(pid, NULL, 0);
	close(fd);
	snprintf(want, sizeof(want), "\"abi_version\":%d", MSRGUARD_ABI_VERSION);
	ok = json_has(out, want) && json_has(out, "\"mode\":\"enforce\"");
	pid = spawn_tool(policy_args, &fd);
	read_output(fd, out, sizeof(out), 5000, NULL);
	waitpid(pid, NULL, 0);
	close(fd);
	ok = ok && strstr(out, "0x79 ") && strstr(out, "MSR_IA32_UCODE_WRITE") &&
	     strstr(out, "0x800-0x8ff") && strstr(out, "0x400c51889");
	(void)s;
	if (ok)
		ksft_test_result_pass("msrguard stats --json and msrguard policy read the loaded module\n");
	else
		ksft_test_result_fail("msrguard stats/policy: %.400s\n", out);
}

/* ---- Image attribution: a real PE DLL in a long-mode guest ------------- */

/* Where the DLL is mapped: a Windows kernel-like address, and its memory. */
#define IMAGE_VA	0xfffff80000200000ull
#define IMAGE_GPA	0x40000ull
#define IMAGE_MAX	(GUEST_MEM_SIZE - IMAGE_GPA)
#define PARAM_DIR	"/sys/module/msrguard/parameters/"

/* The DLL's file, and what its headers say (read here, from the file). */
struct pe_file {
	uint8_t *data;
	size_t len;
	uint32_t lfanew, size, headers, checksum, timestamp, export_rva;
};

static uint32_t file32(const struct pe_file *f, size_t off)
{
	return off + 4 <= f->len ? (uint32_t)le(f->data + off, 4) : 0;
}

/* Reads selftests/pe/msrguard_probe.dll, next to this program; 0 or -errno. */
static int pe_read(struct pe_file *f, char *why, size_t whylen)
{
	char path[4096];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 64);
	FILE *fp;
	uint32_t opt;

	memset(f, 0, sizeof(*f));
	if (n <= 0)
		return -errno;
	path[n] = '\0';
	strcpy(strrchr(path, '/') + 1, "pe/msrguard_probe.dll");
	fp = fopen(path, "re");
	if (!fp) {
		snprintf(why, whylen, "%.300s: %s (built by selftests/Makefile with MinGW-w64)", path,
			 strerror(errno));
		return -ENOENT;
	}
	f->data = malloc(IMAGE_MAX);
	f->len = f->data ? fread(f->data, 1, IMAGE_MAX, fp) : 0;
	fclose(fp);
	f->lfanew = file32(f, 0x3c);
	opt = f->lfanew + 24;
	f->timestamp = file32(f, f->lfanew + 8);
	f->size = file32(f, opt + 56);
	f->headers = file32(f, opt + 60);
	f->checksum = file32(f, opt + 64);
	f->export_rva = file32(f, opt + 112);	/* PE32+ data directory 0 */
	if (f->len < 0x400 || memcmp(f->data, "MZ", 2) || !f->size || f->size > IMAGE_MAX ||
	    f->headers > f->len || !f->export_rva) {
		snprintf(why, whylen, "%.300s: not the expected PE32+ DLL", path);
		return -EINVAL;
	}
	return 0;
}

/*
 * Loads the DLL as Windows' loader lays it out: headers and each section at
 * IMAGE_GPA + VirtualAddress, every page of the image mapped at IMAGE_VA.
 */
static int pe_load(struct vm *vm, const struct pe_file *f)
{
	uint32_t nsect = (uint32_t)le(f->data + f->lfanew + 6, 2);
	uint32_t opt_size = (uint32_t)le(f->data + f->lfanew + 20, 2);
	uint8_t *mem = vm->mem + IMAGE_GPA;
	uint32_t i, sh = f->lfanew + 24 + opt_size;
	int ret = 0;

	memset(mem, 0, f->size);
	memcpy(mem, f->data, f->headers);
	for (i = 0; i < nsect; i++, sh += 40) {
		uint32_t va = file32(f, sh + 12), raw_size = file32(f, sh + 16);
		uint32_t raw = file32(f, sh + 20);

		if (va > f->size || raw_size > f->size - va || raw > f->len || raw_size > f->len - raw)
			return -EINVAL;
		memcpy(mem + va, f->data + raw, raw_size);
	}
	for (i = 0; i < f->size && !ret; i += 4096)
		ret = vm_map_page(vm, IMAGE_VA + i, IMAGE_GPA + i);
	return ret;
}

static uint64_t param_u64(const char *name)
{
	char path[256], buf[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), PARAM_DIR "%s", name);
	f = fopen(path, "re");
	if (!f)
		return ~0ull;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return strtoull(buf, NULL, 0);
}

static void set_param(const char *name, const char *value)
{
	char path[256];

	snprintf(path, sizeof(path), PARAM_DIR "%s", name);
	write_file(path, value);
}

/* Runs guest code at @entry (guest.S) once and reads the event it caused. */
static int image_event(struct suite *s, struct vm *v, const char *entry, struct event *e)
{
	struct guest_result res;
	int ret;

	drain(s->fd);
	ret = vm_run_entry(v, entry, MSR_IA32_UCODE_WRITE, 0x1000, 0, &res);
	if (ret)
		return ret;
	if (res.exit_reason != KVM_EXIT_HLT || res.fault_vector != GP_VECTOR)
		return -EPROTO;
	/* The record is queued before the vCPU re-enters the guest. */
	return next_event(s->fd, e) == 1 ? 0 : -ENOMSG;
}

static bool image_empty(const struct event *e)
{
	return !e->image_base && !e->image_checksum && !e->image_timestamp && !e->image_name[0];
}

/* Largest number of guest page reads one search of @pages pages may do. */
static uint64_t read_bound(uint64_t pages)
{
	/* Each read is at most PE_MAX_READ bytes: at most two pages. */
	return 2 * (pages * MSRGUARD_PE_READS_PER_PAGE + MSRGUARD_PE_READS_PER_IMAGE);
}

#define IMAGE_TESTS 8

static void test_image_attribution(struct suite *s)
{
	struct pe_file f;
	struct vm v;
	struct event e;
	char why[512] = "", cmd[1024], name[MSRGUARD_IMAGE_NAME_LEN + 1] = "";
	uint64_t fn_va, pc, reads, hits, lookups, seed = 0x9e3779b97f4a7c15ull;
	struct guest_result res;
	struct event extra;
	int got, more;
	uint8_t *img, pristine[4096];
	uint32_t fn_rva;
	int ret, i, ok, bad;

	ret = pe_read(&f, why, sizeof(why));
	if (ret) {
		for (i = 0; i < IMAGE_TESTS; i++)
			ksft_test_result_skip("image attribution: %s\n", why);
		free(f.data);
		return;
	}
	ret = vm_create(&v);
	if (!ret)
		ret = vm_set_mode(&v, GUEST_LONG_MODE);
	if (!ret)
		ret = pe_load(&v, &f);
	if (ret) {
		for (i = 0; i < IMAGE_TESTS; i++)
			ksft_test_result_fail("image attribution: no guest with the DLL: %s\n", strerror(-ret));
		free(f.data);
		return;
	}
	img = v.mem + IMAGE_GPA;
	/* The export directory, as loaded: its name, its first function. */
	strncpy(name, (char *)img + (uint32_t)le(img + f.export_rva + 12, 4), MSRGUARD_IMAGE_NAME_LEN - 1);
	fn_rva = (uint32_t)le(img + (uint32_t)le(img + f.export_rva + 28, 4), 4);
	fn_va = IMAGE_VA + fn_rva;
	memcpy(v.mem + GUEST_CALL_TARGET_GPA, &fn_va, 8);
	for (pc = fn_va; pc < fn_va + 32 && memcmp(img + (pc - IMAGE_VA), "\x0f\x30", 2); pc++)
		;
	set_param("image_cache_ms", "10000");

	/* 1: the export's WRMSR. */
	reads = param_u64("image_reads");
	ret = image_event(s, &v, guest_call64, &e);
	ok = !ret && e.msr == MSR_IA32_UCODE_WRITE && e.pc == pc && e.image_base == IMAGE_VA &&
	     e.image_checksum == f.checksum && e.image_timestamp == f.timestamp &&
	     !strcmp(e.image_name, name) && f.checksum && f.timestamp;
	ksft_test_result(ok, "image: WRMSR in a MinGW-w64 DLL's export at %#llx: ImageBase %#llx, CheckSum %#x, TimeDateStamp %#x, ImageName %s as in the file (got %d: pc %#llx base %#llx %#x %#x '%s'; %llu page reads)\n",
			 (unsigned long long)pc, IMAGE_VA, f.checksum, f.timestamp, name, ret,
			 (unsigned long long)e.pc, (unsigned long long)e.image_base, e.image_checksum,
			 e.image_timestamp, e.image_name,
			 (unsigned long long)(param_u64("image_reads") - reads));

	/* 2: again, from the cache. */
	reads = param_u64("image_reads");
	hits = param_u64("image_cache_hits");
	ret = image_event(s, &v, guest_call64, &e);
	ok = !ret && e.image_base == IMAGE_VA && !strcmp(e.image_name, name) &&
	     param_u64("image_reads") == reads && param_u64("image_cache_hits") == hits + 1;
	ksft_test_result(ok, "image: the same access again is a cache hit with the same fields and no guest read (ret %d, reads +%llu)\n",
			 ret, (unsigned long long)(param_u64("image_reads") - reads));

	/* 3: trace event and log line. */
	snprintf(cmd, sizeof(cmd),
		 "grep -q 'seq=%llu .*ImageBase=0x%llx ImageChecksum=0x%x ImageTimestamp=0x%x ImageName=%s ' %s/trace && dmesg | grep -q 'seq=%llu .* pc=0x%llx image=%s+0x%llx reason='",
		 (unsigned long long)e.seq, IMAGE_VA, f.checksum, f.timestamp, name, TRACE_DIR,
		 (unsigned long long)e.seq, (unsigned long long)pc, name,
		 (unsigned long long)(pc - IMAGE_VA));
	ksft_test_result(!system(cmd), "image: trace event fields and log line image=%s+0x%llx\n",
			 name, (unsigned long long)(pc - IMAGE_VA));

	/*
	 * 4: Pc outside any image (guest.S's code, identity-mapped); again,
	 * the page is known to be in none: no guest read.
	 */
	ret = image_event(s, &v, guest_wrmsr, &e);
	ok = !ret && image_empty(&e);
	reads = param_u64("image_reads");
	ret = ret ?: image_event(s, &v, guest_wrmsr, &e);
	reads = param_u64("image_reads") - reads;
	ksft_test_result(ok && !ret && image_empty(&e) && !reads,
			 "image: Pc outside any image: empty fields; again from the same page: no guest read (ret %d, base %#llx, reads %llu)\n",
			 ret, (unsigned long long)e.image_base, (unsigned long long)reads);

	/* 5: the header page unmapped (no cache from here on). */
	set_param("image_cache_ms", "0");
	vm_map_page(&v, IMAGE_VA, (uint64_t)-1);
	ret = image_event(s, &v, guest_call64, &e);
	vm_map_page(&v, IMAGE_VA, IMAGE_GPA);
	ksft_test_result(!ret && image_empty(&e),
			 "image: header page unmapped: empty fields (ret %d, base %#llx)\n", ret,
			 (unsigned long long)e.image_base);

	/* 6: the scan bound: the header is one page below Pc's page. */
	set_param("image_scan_pages", "1");
	reads = param_u64("image_reads");
	ret = image_event(s, &v, guest_call64, &e);
	reads = param_u64("image_reads") - reads;
	ok = !ret && image_empty(&e) && reads <= read_bound(1);
	set_param("image_scan_pages", "2");
	ret = ret ?: image_event(s, &v, guest_call64, &e);
	ok = ok && !ret && e.image_base == IMAGE_VA;
	ksft_test_result(ok, "image: image_scan_pages=1 misses a header one page down (%llu page reads, bound %llu), 2 finds it\n",
			 (unsigned long long)reads, (unsigned long long)read_bound(1));

	/*
	 * 7: a repeat coalesced into its VM's queued record asks for no image
	 * (without the cache, any lookup would be counted and read the guest).
	 */
	drain(s->fd);
	lookups = param_u64("image_lookups");
	reads = param_u64("image_reads");
	ret = vm_run_entry(&v, guest_call64, MSR_IA32_UCODE_WRITE, 0x1000, 0, &res);
	if (!ret)
		ret = vm_run_entry(&v, guest_call64, MSR_IA32_UCODE_WRITE, 0x1000, 0, &res);
	lookups = param_u64("image_lookups") - lookups;
	reads = param_u64("image_reads") - reads;
	got = ret ? ret : next_event(s->fd, &e);
	more = got == 1 ? next_event(s->fd, &extra) : 0;
	ok = got == 1 && !more && e.repeat == 1 && e.image_base == IMAGE_VA && lookups == 1 &&
	     reads <= read_bound(2);
	ksft_test_result(ok, "image: a repeat coalesced into the queued record asks for no image (records %d+%d, repeat %llu, base %#llx, lookups %llu, reads %llu)\n",
			 got, more, (unsigned long long)e.repeat, (unsigned long long)e.image_base,
			 (unsigned long long)lookups, (unsigned long long)reads);

	/* 8: fuzzed headers, fixed seed: empty or consistent, bounded, no splat. */
	set_param("image_scan_pages", "16");
	memcpy(pristine, img, sizeof(pristine));
	bad = 0;
	for (i = 0; i < 64 && !bad; i++) {
		int k, nmut;

		memcpy(img, pristine, sizeof(pristine));
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		nmut = 1 + seed % 6;
		for (k = 0; k < nmut; k++) {
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			/* Mostly the DOS and NT headers, sometimes the whole page. */
			img[(seed >> 8) % ((seed & 3) ? 0x200 : 4096)] = (uint8_t)(seed >> 32);
		}
		reads = param_u64("image_reads");
		ret = image_event(s, &v, guest_call64, &e);
		reads = param_u64("image_reads") - reads;
		if (ret || reads > read_bound(16) ||
		    !(image_empty(&e) || (e.image_base == IMAGE_VA && e.pc - IMAGE_VA < 0x100000)))
			bad = i + 1;
	}
	memcpy(img, pristine, sizeof(pristine));
	ksft_test_result(!bad, "image: 64 randomly corrupted headers (fixed seed): empty or consistent fields, at most %llu page reads each%s\n",
			 (unsigned long long)read_bound(16), bad ? " (FAILED at one)" : "");
	if (bad)
		ksft_print_msg("fuzz case %d: ret %d reads %llu base %#llx name '%s'\n", bad - 1, ret,
			       (unsigned long long)reads, (unsigned long long)e.image_base, e.image_name);

	set_param("image_scan_pages", "4096");
	set_param("image_cache_ms", "10000");
	vm_destroy(&v);
	free(f.data);
}

/* Last: a locked module stays until reboot. */
static void test_lock(struct suite *s)
{
	int ret1, ret2, ret3;

	ret1 = write_file("/sys/module/msrguard/parameters/lock", "1");
	ret2 = write_file("/sys/module/msrguard/parameters/mode", "audit");
	close(s->fd);
	s->fd = -1;
	ret3 = unload_module();
	if (!ret1 && ret2 == -EPERM && ret3 == -EWOULDBLOCK)
		ksft_test_result_pass("lock=1: mode cannot be weakened (EPERM), module cannot be unloaded (in use)\n");
	else
		ksft_test_result_fail("lock: set %d, mode=audit %d, rmmod %d\n", ret1, ret2, ret3);
}

/*
 * One hook on an allowed access: in enforce mode only the decision ftrace_ops
 * sits on KVM's access functions; audit mode adds the read-completion fprobe
 * while it lasts; unload leaves nothing behind.
 */
static void test_hooks_armed(void)
{
	const char *get = "kvm_get_msr_ignored_check", *set = "kvm_set_msr_ignored_check";
	int enforce_get, enforce_set, audit_get, back_get, gone_get = -1, gone_set = -1;
	int ret;

	ret = load_module("");
	enforce_get = ftrace_callbacks(get);
	enforce_set = ftrace_callbacks(set);
	write_file("/sys/module/msrguard/parameters/mode", "audit");
	audit_get = ftrace_callbacks(get);
	write_file("/sys/module/msrguard/parameters/mode", "enforce");
	back_get = ftrace_callbacks(get);
	if (!ret && !unload_module()) {
		gone_get = ftrace_callbacks(get);
		gone_set = ftrace_callbacks(set);
	}
	if (!ret && enforce_get == 1 && enforce_set == 1 && audit_get == 2 && back_get == 1 &&
	    gone_get == 0 && gone_set == 0)
		ksft_test_result_pass("hooks: one ftrace callback per access function in enforce mode, +1 (read completion) only while mode=audit, none after rmmod\n");
	else
		ksft_test_result_fail("hooks: load %d; callbacks get/set enforce %d/%d, audit %d, enforce again %d, after rmmod %d/%d\n",
				      ret, enforce_get, enforce_set, audit_get, back_get, gone_get, gone_set);
}

int main(int argc, char **argv)
{
	struct suite s = { .fd = -1 };
	int failed, ret;

	if (argc != 4) {
		fprintf(stderr, "usage: %s MODULE.ko TESTPOLICY_MODULE.ko MSRGUARD_TOOL\n", argv[0]);
		return 2;
	}
	module_path = argv[1];
	testpolicy_path = argv[2];
	tool_path = argv[3];

	ksft_print_header();
	ksft_set_plan(49 + IMAGE_TESTS);

	test_module_load_unload();

	ret = load_kvm();
	if (!ret)
		ret = vm_create(&s.vm);
	if (ret)
		ksft_exit_fail_msg("no KVM guest inside the VM: %s\n", strerror(-ret));
	test_baseline(&s);
	test_hooks_armed();

	ret = load_module("");
	s.fd = ret ? -1 : open_device();
	if (s.fd < 0)
		ksft_exit_fail_msg("cannot load msrguard.ko and open %s\n", DEVICE_PATH);
	write_file(TRACE_DIR "/events/msrguard/msrguard_access/enable", "1");

	test_guard_cases(&s);
	test_emulator_path(&s);
	test_long_mode(&s);
	test_image_attribution(&s);
	test_audit_mode(&s);
	test_log_line();
	test_nonblock_and_short_read(&s);
	test_poll_wakes(&s);
	test_two_readers(&s);
	test_stats(&s);
	test_coalescing(&s);
	test_user_space_exit(&s);
	test_vmm_with_own_filter(&s);
	test_vmm_inval_exits(&s);
	test_tool_events_json(&s);
	test_tool_follow(&s);
	test_tool_journal(&s);
	test_tool_stats_and_policy(&s);
	test_unload_while_reading(&s);

	close(s.fd);
	s.fd = -1;
	if (unload_module())
		ksft_test_result_fail("rmmod msrguard after the guard cases\n");
	else
		ksft_test_result_pass("rmmod msrguard after the guard cases (hooks disarmed)\n");

	test_bad_params();
	test_drop_count(&s);
	vm_destroy(&s.vm);
	test_load_order();
	test_passthrough_denied();

	/* Lock last: it pins the module until the VM powers off. */
	load_module("");
	s.fd = open_device();
	test_lock(&s);

	ksft_print_cnts();
	failed = ksft_get_fail_cnt() + ksft_get_error_cnt();
	printf("%u passed, %u failed\n", ksft_get_pass_cnt(), failed);
	return failed ? KSFT_FAIL : KSFT_PASS;
}
