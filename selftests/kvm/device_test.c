// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/msrguard and what a VMM sees, as KVM selftests: the record queue
 * (non-blocking and short reads, poll, two readers, a reader stuck in its
 * copy holding no other, coalescing, overflow, a printable VMM name, VM
 * ids never reused),
 * the stats ioctl, the kernel log line, and VMMs that take MSR exits
 * themselves. Each test loads msrguard (MSRGUARD_KO) in its fixture, runs a
 * guest that does the accesses the test asks for, and unloads msrguard.
 */
#include <asm/msr-index.h>

#include <linux/userfaultfd.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"
#include "kselftest_harness.h"

#include "msrguard_guest.h"
#include "msrguard_kvm.h"
#include "msrguard_stats.h"

/* msrguard loaded, its device open, one VM. */
struct dev {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	int fd;
};

static void dev_setup(struct __test_metadata *_metadata, struct dev *self, const char *params)
{
	self->vm = NULL;
	self->fd = -1;
	ASSERT_EQ(0, msrguard_load(POLICY_DEFAULT, params))
		TH_LOG("cannot load msrguard (MSRGUARD_KO in the environment)");
	self->fd = open_device();
	ASSERT_LE(0, self->fd) TH_LOG("%s: %s", DEVICE_PATH, strerror(errno));
	self->vm = vm_create_with_one_vcpu(&self->vcpu, access_guest);
}

static void dev_teardown(struct dev *self)
{
	if (self->vm)
		kvm_vm_free(self->vm);
	if (self->fd >= 0)
		close(self->fd);
	unload_msrguard();
}

FIXTURE(device) { struct dev d; };
FIXTURE_SETUP(device) { dev_setup(_metadata, &self->d, ""); }
FIXTURE_TEARDOWN(device) { dev_teardown(&self->d); }

TEST_F(device, empty_queue_read_is_eagain)
{
	struct msrguard_record rec;

	EXPECT_EQ(-1, read(self->d.fd, &rec, sizeof(rec)));
	EXPECT_EQ(EAGAIN, errno);
}

TEST_F(device, short_read_is_einval_and_keeps_the_record)
{
	struct msrguard_record rec;
	struct event e;

	ASSERT_EQ(GP_VECTOR, access_in_guest(self->d.vcpu, MSR_UNKNOWN, false, 0, NULL));
	EXPECT_EQ(-1, read(self->d.fd, &rec, sizeof(rec) - 1));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(1, next_event(self->d.fd, &e));
	EXPECT_EQ(MSR_UNKNOWN, e.msr);
}

struct poller {
	int fd, ret, revents;
};

static void *poll_thread(void *arg)
{
	struct poller *p = arg;
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };

	p->ret = poll(&pfd, 1, 10000);
	p->revents = pfd.revents;
	return NULL;
}

TEST_F(device, poll_wakes_when_an_event_arrives)
{
	struct pollfd pfd = { .fd = self->d.fd, .events = POLLIN };
	struct poller p = { .fd = self->d.fd };
	pthread_t t;

	ASSERT_EQ(0, poll(&pfd, 1, 0)) TH_LOG("readable with an empty queue");
	ASSERT_EQ(0, pthread_create(&t, NULL, poll_thread, &p));
	usleep(200 * 1000);
	ASSERT_EQ(GP_VECTOR, access_in_guest(self->d.vcpu, MSR_UNKNOWN, false, 0, NULL));
	pthread_join(t, NULL);
	EXPECT_EQ(1, p.ret);
	EXPECT_TRUE(p.revents & POLLIN);
}

/* A blocking read() of one record into @buf, on a thread of its own. */
struct blocking_reader {
	int fd;
	void *buf;
	pid_t tid;		/* set once the thread runs */
	ssize_t ret;
	int err;
	bool done;
};

static void *blocking_read(void *arg)
{
	struct blocking_reader *r = arg;

	__atomic_store_n(&r->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	r->ret = read(r->fd, r->buf, sizeof(struct msrguard_record));
	r->err = errno;
	__atomic_store_n(&r->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static void interrupt(int sig) {}

/* Thread @tid's state letter (R, S, D, ...) from /proc, '?' if unknown. */
static char thread_state(pid_t tid)
{
	char path[64], stat[256], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	f = fopen(path, "re");
	if (!f)
		return '?';
	p = fgets(stat, sizeof(stat), f);
	fclose(f);
	p = p ? strrchr(stat, ')') : NULL;
	return p && p[1] == ' ' ? p[2] : '?';
}

/* Waits (at most 10 s) until @r's thread has entered read() and sleeps. */
static char wait_asleep(struct blocking_reader *r)
{
	char state = '?';
	int i;

	for (i = 0; i < 200; i++) {
		pid_t tid = __atomic_load_n(&r->tid, __ATOMIC_ACQUIRE);

		state = tid ? thread_state(tid) : '?';
		if (state == 'S' || state == 'D')
			break;
		usleep(50 * 1000);
	}
	return state;
}

/*
 * Reader A copies a record into a userfaultfd page nobody fills: it waits
 * in copy_to_user with its turn taken. Reader B waits for its turn; a
 * signal must end that wait (EINTR), as it ends every other wait of a
 * read(). A turn taken uninterruptibly left B in D state for as long as A
 * waited.
 */
TEST_F(device, reader_stuck_in_its_copy_holds_no_other)
{
	struct sigaction sa = { .sa_handler = interrupt };	/* no SA_RESTART */
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_zeropage zero = {};
	struct blocking_reader a = {}, b = {};
	struct msrguard_record rec;
	struct uffd_msg msg;
	long page = sysconf(_SC_PAGESIZE);
	pthread_t ta, tb;
	char state;
	int uffd, i;

	uffd = syscall(__NR_userfaultfd, O_CLOEXEC);
	ASSERT_LE(0, uffd) TH_LOG("userfaultfd: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_API, &api));
	a.buf = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, a.buf);
	reg.range.start = (unsigned long)a.buf;
	reg.range.len = page;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_REGISTER, &reg)) TH_LOG("%s", strerror(errno));
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));

	ASSERT_EQ(GP_VECTOR, access_in_guest(self->d.vcpu, MSR_UNKNOWN, false, 0, NULL));
	a.fd = open(DEVICE_PATH, O_RDONLY | O_CLOEXEC);
	b.fd = open(DEVICE_PATH, O_RDONLY | O_CLOEXEC);
	b.buf = &rec;
	ASSERT_LE(0, a.fd);
	ASSERT_LE(0, b.fd);
	ASSERT_EQ(0, pthread_create(&ta, NULL, blocking_read, &a));
	/* The fault's message: A is in its copy, turn taken. */
	ASSERT_EQ(sizeof(msg), read(uffd, &msg, sizeof(msg)));
	ASSERT_EQ(UFFD_EVENT_PAGEFAULT, msg.event);

	ASSERT_EQ(0, pthread_create(&tb, NULL, blocking_read, &b));
	state = wait_asleep(&b);
	ASSERT_TRUE(state == 'S' || state == 'D') TH_LOG("second reader's state: %c", state);
	pthread_kill(tb, SIGUSR1);
	for (i = 0; i < 200 && !__atomic_load_n(&b.done, __ATOMIC_ACQUIRE); i++)
		usleep(50 * 1000);
	EXPECT_TRUE(__atomic_load_n(&b.done, __ATOMIC_ACQUIRE))
		TH_LOG("second reader still waiting 10 s after a signal (state %c, was %c)",
		       thread_state(b.tid), state);
	EXPECT_EQ(-1, b.ret);
	EXPECT_EQ(EINTR, b.err);

	/* A's page comes: A gets the record. */
	zero.range.start = (unsigned long)a.buf;
	zero.range.len = page;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_ZEROPAGE, &zero)) TH_LOG("%s", strerror(errno));
	pthread_join(ta, NULL);
	EXPECT_EQ(sizeof(rec), a.ret) TH_LOG("first reader: %s", strerror(a.err));
	EXPECT_EQ(MSR_UNKNOWN, ((struct msrguard_record *)a.buf)->msr);
	/* B, if the signal did not end its wait, ends on the next one. */
	while (!__atomic_load_n(&b.done, __ATOMIC_ACQUIRE)) {
		pthread_kill(tb, SIGUSR1);
		usleep(50 * 1000);
	}
	pthread_join(tb, NULL);
	close(a.fd);
	close(b.fd);
	close(uffd);
}

/*
 * A VMM names its threads: control and non-ASCII bytes of the name reach
 * neither the record nor the log line (which shares the record's comm).
 */
TEST_F(device, vmm_comm_is_printable)
{
	char name[16] = "vmm\x1b[2J\xff\x07ok";
	struct event e;

	ASSERT_EQ(0, prctl(PR_SET_NAME, name));
	ASSERT_EQ(GP_VECTOR, access_in_guest(self->d.vcpu, MSR_UNKNOWN, false, 0, NULL));
	ASSERT_EQ(1, next_event(self->d.fd, &e));
	EXPECT_STREQ("vmm?[2J??ok", e.comm);
}

TEST_F(device, two_readers_share_one_queue)
{
	struct msrguard_record buf[2];
	u64 first = 0, seen = 0;
	int fd2, i;

	/* Distinct values: no two events coalesce. */
	for (i = 0; i < 4; i++)
		ASSERT_EQ(GP_VECTOR, access_in_guest(self->d.vcpu, MSR_UNKNOWN, true, i, NULL));
	fd2 = open_device();
	ASSERT_LE(0, fd2);
	ASSERT_EQ(sizeof(buf), read(self->d.fd, buf, sizeof(buf)));
	first = buf[0].sequence;
	seen |= 1ull << 0 | 1ull << (buf[1].sequence - first);
	ASSERT_EQ(sizeof(buf), read(fd2, buf, sizeof(buf)));
	for (i = 0; i < 2; i++)
		seen |= 1ull << (buf[i].sequence - first);
	close(fd2);
	EXPECT_EQ(0xf, seen) TH_LOG("each of 4 events read exactly once");
	EXPECT_EQ(0, next_event(self->d.fd, &(struct event){}));
}

TEST_F(device, stats_ioctl_counts)
{
	u8 st0[MSRGUARD_STATS_SIZE], st[MSRGUARD_STATS_SIZE];

	ASSERT_EQ(0, get_stats(self->d.fd, st0));
	/* Distinct values: no two events coalesce. */
	ASSERT_EQ(GP_VECTOR, access_in_guest(self->d.vcpu, MSR_UNKNOWN, true, 1, NULL));
	ASSERT_EQ(GP_VECTOR, access_in_guest(self->d.vcpu, MSR_UNKNOWN, true, 2, NULL));
	drain(self->d.fd);
	ASSERT_EQ(0, get_stats(self->d.fd, st));
	EXPECT_EQ(MSRGUARD_ABI_VERSION, le(st + MSRGUARD_STATS_OFF_ABI_VERSION, 4));
	EXPECT_EQ(MSRGUARD_RECORD_SIZE, le(st + MSRGUARD_STATS_OFF_RECORD_SIZE, 4));
	EXPECT_EQ(stats_u64(st0, MSRGUARD_STATS_OFF_GENERATED) + 2,
		  stats_u64(st, MSRGUARD_STATS_OFF_GENERATED));
	EXPECT_EQ(stats_u64(st0, MSRGUARD_STATS_OFF_BLOCKED_GP) + 2,
		  stats_u64(st, MSRGUARD_STATS_OFF_BLOCKED_GP));
	EXPECT_EQ(stats_u64(st0, MSRGUARD_STATS_OFF_DELIVERED) + 2,
		  stats_u64(st, MSRGUARD_STATS_OFF_DELIVERED));
	EXPECT_EQ(0, le(st + MSRGUARD_STATS_OFF_QUEUED, 4));
}

TEST_F(device, identical_accesses_coalesce)
{
	u8 st[MSRGUARD_STATS_SIZE];
	struct event e;
	int i;

	for (i = 0; i < 5; i++)
		ASSERT_EQ(GP_VECTOR, access_in_guest(self->d.vcpu, MSR_UNKNOWN, false, 0, NULL));
	ASSERT_EQ(1, next_event(self->d.fd, &e));
	EXPECT_EQ(4, e.repeat);
	EXPECT_EQ(0, next_event(self->d.fd, &e));
	ASSERT_EQ(0, get_stats(self->d.fd, st));
	EXPECT_LE(4, stats_u64(st, MSRGUARD_STATS_OFF_COALESCED));
}

/*
 * A VM's id is given when KVM creates it, counting up, and never to another
 * VM while msrguard is loaded, even one KVM puts where a destroyed VM was.
 */
TEST_F(device, vm_ids_count_up_and_are_never_reused)
{
	uint64_t tracked = param_u64("vms_tracked");
	uint32_t first, prev;
	struct event e;
	int i;

	/* At least the fixture's VM, created after msrguard loaded. */
	EXPECT_LE(1, tracked);
	ASSERT_EQ(GP_VECTOR, access_in_guest(self->d.vcpu, MSR_UNKNOWN, false, 0, NULL));
	ASSERT_EQ(1, next_event(self->d.fd, &e));
	ASSERT_NE(0, e.vm_id);
	first = prev = e.vm_id;
	for (i = 0; i < 16; i++) {
		struct kvm_vcpu *vcpu;
		struct kvm_vm *vm = vm_create_with_one_vcpu(&vcpu, access_guest);

		ASSERT_EQ(GP_VECTOR, access_in_guest(vcpu, MSR_UNKNOWN, false, 0, NULL));
		EXPECT_EQ(tracked + 1, param_u64("vms_tracked"));
		kvm_vm_free(vm);
		/* Its destruction was seen: the table forgot it. */
		EXPECT_EQ(tracked, param_u64("vms_tracked"));
		ASSERT_EQ(1, next_event(self->d.fd, &e));
		EXPECT_GT(e.vm_id, prev) TH_LOG("VM %d (created after VM id %#x) has id %#x", i,
						 prev, e.vm_id);
		prev = e.vm_id;
	}
	/* The first VM, still alive, keeps its id. */
	ASSERT_EQ(GP_VECTOR, access_in_guest(self->d.vcpu, MSR_UNKNOWN, true, 1, NULL));
	ASSERT_EQ(1, next_event(self->d.fd, &e));
	EXPECT_EQ(first, e.vm_id);
}

TEST_F(device, kernel_log_line_per_event)
{
	char cmd[512];
	struct event e;

	ASSERT_EQ(GP_VECTOR, access_in_guest(self->d.vcpu, MSR_IA32_UCODE_WRITE, true, 0x1000, NULL));
	ASSERT_EQ(1, next_event(self->d.fd, &e));
	snprintf(cmd, sizeof(cmd),
		 "dmesg | grep -q 'msrguard: seq=%lu blocked-gp WRMSR msr=0x%x (MSR_IA32_UCODE_WRITE) value=0x1000 pc=0x%lx reason=write-denied'",
		 e.seq, MSR_IA32_UCODE_WRITE, e.pc);
	EXPECT_EQ(0, system(cmd)) TH_LOG("no kernel log line: %s", cmd);
}

/* A VMM that asked for filtered-MSR exits (and has no filter) gets the veto as its exit. */
TEST_F(device, vmm_with_filter_exits_gets_the_veto_as_an_exit)
{
	vm_enable_cap(self->d.vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);
	ASSERT_EQ(-1, access_in_guest(self->d.vcpu, MSR_IA32_UCODE_WRITE, true, 0x1000, NULL));
	EXPECT_EQ(KVM_EXIT_X86_WRMSR, self->d.vcpu->run->exit_reason);
	EXPECT_EQ(MSR_IA32_UCODE_WRITE, self->d.vcpu->run->msr.index);
	EXPECT_EQ(KVM_MSR_EXIT_REASON_FILTER, self->d.vcpu->run->msr.reason);
	EXPECT_EQ(0x1000, self->d.vcpu->run->msr.data);
}

/*
 * A VMM like QEMU enables filter exits and installs a filter of its own
 * (here: reads of PAT). It expects exits for its MSRs only, so
 * msrguard's vetoes reach its guest as #GP.
 */
TEST_F(device, vmm_with_its_own_filter_sees_vetoes_as_gp)
{
	u8 deny = 0;
	struct kvm_msr_filter filter = {
		.flags = KVM_MSR_FILTER_DEFAULT_ALLOW,
		.ranges[0] = { .flags = KVM_MSR_FILTER_READ, .nmsrs = 1,
			       .base = MSR_IA32_CR_PAT, .bitmap = &deny },
	};
	struct event e;

	vm_enable_cap(self->d.vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);
	vm_ioctl(self->d.vm, KVM_X86_SET_MSR_FILTER, &filter);
	EXPECT_EQ(GP_VECTOR, access_in_guest(self->d.vcpu, MSR_IA32_UCODE_WRITE, true, 0x1000, NULL));
	ASSERT_EQ(1, next_event(self->d.fd, &e));
	EXPECT_EQ(MSR_IA32_UCODE_WRITE, e.msr);
	ASSERT_EQ(-1, access_in_guest(self->d.vcpu, MSR_IA32_CR_PAT, false, 0, NULL));
	EXPECT_EQ(KVM_EXIT_X86_RDMSR, self->d.vcpu->run->exit_reason);
}

/* A VMM that asked for every failed MSR access gets msrguard's vetoes too. */
TEST_F(device, vmm_with_inval_exits_gets_the_veto_as_an_exit)
{
	vm_enable_cap(self->d.vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_INVAL);
	ASSERT_EQ(-1, access_in_guest(self->d.vcpu, MSR_IA32_UCODE_WRITE, true, 0x1000, NULL));
	EXPECT_EQ(KVM_EXIT_X86_WRMSR, self->d.vcpu->run->exit_reason);
	EXPECT_EQ(MSR_IA32_UCODE_WRITE, self->d.vcpu->run->msr.index);
	EXPECT_EQ(KVM_MSR_EXIT_REASON_INVAL, self->d.vcpu->run->msr.reason);
}

/* A small buffer overflows: the newest events are dropped, exactly counted. */
FIXTURE(small_ring) { struct dev d; };
FIXTURE_SETUP(small_ring) { dev_setup(_metadata, &self->d, "ring_records=8"); }
FIXTURE_TEARDOWN(small_ring) { dev_teardown(&self->d); }

TEST_F(small_ring, overflow_keeps_the_oldest_and_reports_the_drop)
{
	u8 st[MSRGUARD_STATS_SIZE];
	u64 kept_max, reported = 0;
	int i, got = 0, reports = 0;
	struct event e;

	/* Distinct values: no two events coalesce. */
	for (i = 0; i < 20; i++)
		ASSERT_EQ(GP_VECTOR, access_in_guest(self->d.vcpu, MSR_UNKNOWN, true, i, NULL));
	ASSERT_EQ(0, get_stats(self->d.fd, st));
	/* One VM alone: it stops where the reserve for other VMs starts. */
	kept_max = le(st + MSRGUARD_STATS_OFF_CAPACITY, 4) - le(st + MSRGUARD_STATS_OFF_VM_RESERVE, 4);
	while (next_event(self->d.fd, &e) == 1) {
		EXPECT_EQ((u64)(got + reports + 1), e.seq);
		if (e.status == MSRGUARD_STATUS_DROPPED) {
			reports++;
			reported += e.repeat;
		} else {
			EXPECT_EQ((u64)got, e.value);
			got++;
		}
	}
	EXPECT_EQ(20, stats_u64(st, MSRGUARD_STATS_OFF_GENERATED));
	EXPECT_EQ(20 - kept_max, stats_u64(st, MSRGUARD_STATS_OFF_DROPPED));
	EXPECT_EQ(kept_max, (u64)got);
	EXPECT_EQ(1, reports);
	EXPECT_EQ(20 - kept_max, reported);
}

TEST_HARNESS_MAIN
