// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's storm test, run inside the test VM as root (scripts/test.sh):
 * two KVM VMs of two vCPUs each (one thread per vCPU). The noisy VM floods
 * blocked WRMSRs (vCPU 0 all distinct values, vCPU 1 runs of 16 identical
 * ones, so coalescing is exercised but does not absorb the flood) while
 * the quiet VM does 20 distinct ones spread over the flood. Three runs:
 * no reader until the end, a slow reader, a fast reader.
 *
 * Each run asserts exactly, per VM (told apart by vm_id, learnt from the
 * value ranges): events generated (known here) = access records delivered
 * + their repeats + the events of the drop reports; every quiet event is
 * delivered, as its own record; records arrive in order with gap-free
 * sequence numbers; the module's counters agree. A 10 ms timer thread
 * measures its worst lateness during the storm: the host must stay
 * responsive (a liveness bound, not a benchmark). A kernel splat fails the
 * VM run itself (scripts/vm-run.sh). A guest that stops anywhere but its
 * report, or runs 30 s without exiting, fails the run with its registers
 * (vcpu_dump()). Under QEMU TCG the guests run without nested paging: see
 * kvm_for_nested().
 *
 * Records are decoded only through struct msrguard_record and the
 * constants of msrguard_abi.h, generated from rust/core/record.rs.
 *
 * Usage: storm_test [--control] [NOISY_EVENTS_PER_VCPU [absent|slow|fast]], with
 * the module in MSRGUARD_KO (run.sh sets it). --control: the same guests
 * under KVM alone; MSRGUARD_STORM_TRACE=1 in the environment keeps KVM trace
 * events for a failure's diagnosis.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"

#include "msrguard_guest.h"
#include "msrguard_kvm.h"
#include "msrguard_stats.h"

/* Value ranges (bits 28..31) tell the VMs and vCPUs apart. */
#define NOISY_BASE0	0x10000000u	/* noisy vCPU 0: all distinct */
#define NOISY_BASE1	0x20000000u	/* noisy vCPU 1: runs of RUN_LEN */
#define QUIET_BASE	0x30000000u	/* quiet vCPU n: QUIET_BASE + n * 0x100 + i */
#define RANGE(v)	((uint32_t)((v) >> 28))

#define RUN_LEN		16		/* identical accesses per run (noisy vCPU 1) */
#define CHUNK		1024		/* noisy accesses per KVM_RUN (a multiple of RUN_LEN) */
#define QUIET_PER_VCPU	10
#define TIMER_PERIOD_NS	10000000ll	/* 10 ms */
#define LATENESS_BOUND_NS 2000000000ll	/* 2 s: generous for TCG */

/* --control: the same guests with KVM alone (no msrguard). */
static bool control;
static uint32_t noisy_per_vcpu = 50 * CHUNK;

enum reader { READER_ABSENT, READER_SLOW, READER_FAST };
/* The names start with what argv[3] selects. */
static const char *const reader_name[] = { "absent reader", "slow reader", "fast reader" };

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* ---- Records read back ---------------------------------------------------- */

static struct msrguard_record *recs;
static size_t nrecs, recs_cap;
static char read_error[160];

/*
 * One non-blocking read of up to @max records, appended to recs: the
 * number read, 0 if none queued, -1 on an unexpected error.
 */
static int read_some(int fd, int max)
{
	static __thread struct msrguard_record buf[64];
	ssize_t n;

	if (max > 64)
		max = 64;
	n = read(fd, buf, max * sizeof(buf[0]));
	if (n < 0) {
		if (errno == EAGAIN)
			return 0;
		snprintf(read_error, sizeof(read_error), "read: %s", strerror(errno));
		return -1;
	}
	if (n == 0 || n % MSRGUARD_RECORD_SIZE) {
		snprintf(read_error, sizeof(read_error), "read returned %zd bytes", n);
		return -1;
	}
	n /= MSRGUARD_RECORD_SIZE;
	if (nrecs + n > recs_cap) {
		size_t cap = recs_cap ? recs_cap * 2 : 65536;
		struct msrguard_record *p;

		while (cap < nrecs + n)
			cap *= 2;
		p = realloc(recs, cap * sizeof(*p));
		if (!p) {
			snprintf(read_error, sizeof(read_error), "out of memory");
			return -1;
		}
		recs = p;
		recs_cap = cap;
	}
	memcpy(recs + nrecs, buf, n * sizeof(buf[0]));
	nrecs += n;
	return n;
}

/* ---- Threads ---------------------------------------------------------------- */

struct storm {
	enum reader reader;
	int fd;
	struct kvm_vm *noisy, *quiet;
	atomic_uint noisy_done;		/* noisy accesses completed */
	atomic_bool guests_done, stop_reader, stop_timer;
	int64_t max_lateness_ns;
	uint64_t timer_ticks;
	char guest_error[160];
	pthread_mutex_t lock;		/* guest_error */
	struct vcpu_job *jobs;		/* 4, for the timer task's watchdog */
};

struct vcpu_job {
	struct storm *s;
	struct kvm_vcpu *vcpu;
	bool noisy;
	int index;			/* vCPU index in its VM, and its wrmsr_steps slot */
	pthread_t thread;
	_Atomic int64_t run_since_ns;	/* start of the current KVM_RUN, or 0 */
	atomic_bool kicked;
};

/*
 * One KVM_RUN does at most CHUNK accesses (well under a second); one that
 * lasts this long has a guest looping without exits, and is interrupted
 * (SIGUSR1) so that its state can be reported instead of hanging.
 */
#define STUCK_NS	30000000000ll	/* 30 s */

static void on_kick(int sig)
{
	(void)sig;	/* only interrupts KVM_RUN (-EINTR) */
}

/*
 * @count WRMSRs from @value (wrmsr_steps_guest()): the number that raised
 * #GP, or -errno of a failed KVM_RUN (-EINTR: kicked, stuck), or -EPROTO if
 * the guest stopped anywhere but its report.
 */
static int run_guest(struct vcpu_job *j, uint32_t value, uint32_t count, uint32_t hold)
{
	int ret;

	wrmsr_steps_set(j->vcpu, j->index, MSR_UNKNOWN, value, count, hold);
	atomic_store(&j->run_since_ns, now_ns());
	/* Other signals' EINTR resumes the guest; the watchdog's kick ends it. */
	do
		ret = __vcpu_run(j->vcpu) ? -errno : 0;
	while (ret == -EINTR && !atomic_load(&j->kicked));
	atomic_store(&j->run_since_ns, 0);
	if (ret)
		return ret;
	ret = wrmsr_steps_result(j->vcpu);
	return ret < 0 ? -EPROTO : ret;
}

/*
 * With MSRGUARD_STORM_TRACE=1 in the environment, KVM's trace events are
 * kept in the kernel's ring buffer (oldest overwritten) during each run;
 * a guest that stops wrongly prints its thread's last ones.
 */
#define TRACEFS "/sys/kernel/tracing/"
static bool kvm_trace;

static void trace_write(const char *file, const char *value)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), TRACEFS "%s", file);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0 || write(fd, value, strlen(value)) < 0)
		ksft_print_msg("trace: %s: %s\n", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* The last @max trace lines of thread @tid, as diagnostics. */
static void trace_dump(pid_t tid, int max)
{
	char pat[32], line[512], (*ring)[512];
	int n = 0, i;
	FILE *f;

	trace_write("tracing_on", "0");
	f = fopen(TRACEFS "trace", "re");
	ring = calloc(max, sizeof(*ring));
	if (!f || !ring) {
		ksft_print_msg("trace: cannot read " TRACEFS "trace\n");
		goto out;
	}
	snprintf(pat, sizeof(pat), "-%d ", tid);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, pat))
			snprintf(ring[n++ % max], sizeof(ring[0]), "%s", line);
	ksft_print_msg("trace: the last %d of %d KVM events of thread %d:\n", n < max ? n : max, n, tid);
	for (i = n > max ? n - max : 0; i < n; i++)
		printf("#   %s", ring[i % max]);
out:
	if (f)
		fclose(f);
	free(ring);
}

/* @ret: run_guest()'s, for a run of @count accesses. */
static void guest_fail(struct storm *s, const char *what, struct vcpu_job *j, int ret,
		       uint32_t count)
{
	pthread_mutex_lock(&s->lock);
	if (!s->guest_error[0]) {
		if (ret >= 0)
			snprintf(s->guest_error, sizeof(s->guest_error),
				 "%s, vCPU %d: %d of %u WRMSRs raised #GP", what, j->index, ret,
				 count);
		else
			snprintf(s->guest_error, sizeof(s->guest_error),
				 "%s, vCPU %d: %s (exit reason %u)", what, j->index,
				 ret == -EPROTO ? "stopped before its report" : strerror(-ret),
				 j->vcpu->run->exit_reason);
		ksft_print_msg("%s; its state:\n", s->guest_error);
		vcpu_dump(stdout, j->vcpu, 4);
		if (kvm_trace)
			trace_dump(gettid(), 120);
	}
	pthread_mutex_unlock(&s->lock);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu_job *j = arg;
	struct storm *s = j->s;
	uint32_t c, i;
	int ret;

	if (j->noisy) {
		for (c = 0; c < noisy_per_vcpu / CHUNK; c++) {
			uint32_t value = j->index ? NOISY_BASE1 + c * (CHUNK / RUN_LEN)
						  : NOISY_BASE0 + c * CHUNK;

			ret = run_guest(j, value, CHUNK, j->index ? RUN_LEN - 1 : 0);
			if (ret != CHUNK) {
				guest_fail(s, "noisy guest", j, ret, CHUNK);
				break;
			}
			atomic_fetch_add(&s->noisy_done, CHUNK);
		}
		return NULL;
	}
	/* Spread the quiet accesses over the flood. */
	for (i = 0; i < QUIET_PER_VCPU; i++) {
		uint32_t due = (uint64_t)2 * noisy_per_vcpu * (2 * i + 1 + j->index) /
			       (2 * QUIET_PER_VCPU + 2);

		while (atomic_load(&s->noisy_done) < due && !s->guest_error[0])
			usleep(1000);
		ret = run_guest(j, QUIET_BASE + j->index * 0x100 + i, 1, 0);
		if (ret != 1) {
			guest_fail(s, "quiet guest", j, ret, 1);
			break;
		}
	}
	return NULL;
}

/* A periodic timer task: its worst lateness is the host's responsiveness. */
static void *timer_thread(void *arg)
{
	struct storm *s = arg;
	struct timespec next;
	int64_t target;

	clock_gettime(CLOCK_MONOTONIC, &next);
	target = next.tv_sec * 1000000000ll + next.tv_nsec;
	while (!atomic_load(&s->stop_timer)) {
		int64_t late;

		target += TIMER_PERIOD_NS;
		next.tv_sec = target / 1000000000ll;
		next.tv_nsec = target % 1000000000ll;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
		late = now_ns() - target;
		if (late > s->max_lateness_ns)
			s->max_lateness_ns = late;
		s->timer_ticks++;
		for (int i = 0; i < 4; i++) {
			int64_t since = atomic_load(&s->jobs[i].run_since_ns);

			if (since && now_ns() - since > STUCK_NS &&
			    !atomic_exchange(&s->jobs[i].kicked, true))
				pthread_kill(s->jobs[i].thread, SIGUSR1);
		}
		/* Missed periods are lateness, not a backlog to catch up on. */
		if (late > TIMER_PERIOD_NS)
			target = now_ns();
	}
	return NULL;
}

static void *reader_thread(void *arg)
{
	struct storm *s = arg;

	while (!atomic_load(&s->stop_reader)) {
		int n;

		if (s->reader == READER_SLOW) {
			/* 16 records per 20 ms: slower than the flood. */
			n = read_some(s->fd, 16);
			usleep(20000);
		} else {
			struct pollfd p = { .fd = s->fd, .events = POLLIN };

			if (poll(&p, 1, 50) < 0 && errno != EINTR) {
				snprintf(read_error, sizeof(read_error), "poll: %s", strerror(errno));
				return NULL;
			}
			n = read_some(s->fd, 64);
		}
		if (n < 0)
			return NULL;
	}
	return NULL;
}

/* ---- Checks ------------------------------------------------------------- */

/* One VM's records: its id, learnt from its records' values, and their count. */
struct tally {
	uint32_t vm_id;
	bool known;
	uint64_t generated;
	struct flood_count n;
};


#define CHECK(cond, ...)							\
	do {									\
		if (!(cond)) {							\
			snprintf(why, whylen, __VA_ARGS__);			\
			return false;						\
		}								\
	} while (0)

/* Attributes each record to a VM and checks it; fills @t (noisy 0, quiet 1). */
static bool check_records(struct tally *t, bool *quiet_seen, uint64_t *first_noisy_value,
			  char *why, size_t whylen)
{
	size_t i;

	/* Pass 1: learn the VMs' ids from their access records' values. */
	for (i = 0; i < nrecs; i++) {
		const struct msrguard_record *r = &recs[i];
		int v;

		if (r->access_status == MSRGUARD_STATUS_DROPPED)
			continue;
		v = RANGE(r->msr_value) == RANGE(QUIET_BASE);
		if (!t[v].known) {
			t[v].known = true;
			t[v].vm_id = r->vm_id;
		}
		CHECK(r->vm_id == t[v].vm_id, "record seq %llu: %s VM has two vm_ids (%#x, %#x)",
		      (unsigned long long)r->sequence, v ? "quiet" : "noisy", t[v].vm_id, r->vm_id);
	}
	CHECK(t[0].known && t[1].known && t[0].vm_id != t[1].vm_id,
	      "cannot tell the VMs apart (noisy %d %#x, quiet %d %#x)", t[0].known, t[0].vm_id,
	      t[1].known, t[1].vm_id);

	/* Pass 2: every record. */
	for (i = 0; i < nrecs; i++) {
		const struct msrguard_record *r = &recs[i];
		int v = r->vm_id == t[1].vm_id;

		if (flood_count_add(&t[v].n, r, why, whylen))
			return false;
		CHECK(r->sequence == i + 1, "record %zu has sequence %llu: not in order, or a gap",
		      i, (unsigned long long)r->sequence);
		CHECK(r->vm_id == t[0].vm_id || r->vm_id == t[1].vm_id,
		      "record seq %llu: unknown vm_id %#x", (unsigned long long)r->sequence, r->vm_id);
		if (r->access_status == MSRGUARD_STATUS_DROPPED)
			continue;
		if (v) {
			uint32_t n = r->msr_value - QUIET_BASE;
			uint32_t vcpu = n / 0x100, k = n % 0x100;

			CHECK(vcpu < 2 && k < QUIET_PER_VCPU && r->vcpu_id == vcpu && !r->repeat &&
			      !quiet_seen[vcpu * QUIET_PER_VCPU + k],
			      "quiet record seq %llu: value %#llx vcpu %u repeat %llu (seen before: %d)",
			      (unsigned long long)r->sequence, (unsigned long long)r->msr_value,
			      r->vcpu_id, (unsigned long long)r->repeat,
			      vcpu < 2 && k < QUIET_PER_VCPU ? quiet_seen[vcpu * QUIET_PER_VCPU + k] : -1);
			quiet_seen[vcpu * QUIET_PER_VCPU + k] = true;
		} else {
			uint32_t want_vcpu = RANGE(r->msr_value) == RANGE(NOISY_BASE1);

			CHECK(r->vcpu_id == want_vcpu && (want_vcpu || !r->repeat),
			      "noisy record seq %llu: value %#llx vcpu %u repeat %llu",
			      (unsigned long long)r->sequence, (unsigned long long)r->msr_value,
			      r->vcpu_id, (unsigned long long)r->repeat);
			if (*first_noisy_value == UINT64_MAX)
				*first_noisy_value = r->msr_value;
		}
	}
	return true;
}

static bool check_run(struct storm *s, struct tally *t, const uint8_t *stats, char *why,
		      size_t whylen)
{
	bool quiet_seen[2 * QUIET_PER_VCPU] = { false };
	uint64_t first_noisy = UINT64_MAX, total;
	uint64_t generated = stats_u64(stats, MSRGUARD_STATS_OFF_GENERATED);
	uint64_t delivered = stats_u64(stats, MSRGUARD_STATS_OFF_DELIVERED);
	uint64_t coalesced = stats_u64(stats, MSRGUARD_STATS_OFF_COALESCED);
	uint64_t dropped = stats_u64(stats, MSRGUARD_STATS_OFF_DROPPED);
	uint64_t blocked = stats_u64(stats, MSRGUARD_STATS_OFF_BLOCKED_GP);
	uint32_t queued = stats_u32(stats, MSRGUARD_STATS_OFF_QUEUED);
	int i;

	CHECK(!s->guest_error[0], "%s", s->guest_error);
	CHECK(!read_error[0], "%s", read_error);
	if (!check_records(t, quiet_seen, &first_noisy, why, whylen))
		return false;
	t[0].generated = 2ull * noisy_per_vcpu;
	t[1].generated = 2 * QUIET_PER_VCPU;
	for (i = 0; i < 2; i++)
		CHECK(t[i].generated == t[i].n.records + t[i].n.repeats + t[i].n.reported_drops,
		      "%s VM: generated %llu != %llu records + %llu repeats + %llu reported drops",
		      i ? "quiet" : "noisy", (unsigned long long)t[i].generated,
		      (unsigned long long)t[i].n.records, (unsigned long long)t[i].n.repeats,
		      (unsigned long long)t[i].n.reported_drops);
	CHECK(t[1].n.records == 2 * QUIET_PER_VCPU && !t[1].n.reports,
	      "quiet VM: %llu of %d events delivered, %llu drop reports",
	      (unsigned long long)t[1].n.records, 2 * QUIET_PER_VCPU,
	      (unsigned long long)t[1].n.reports);
	/* What is kept is the oldest evidence: the flood's first access. */
	CHECK(first_noisy == NOISY_BASE0 || first_noisy == NOISY_BASE1,
	      "the noisy VM's first record is value %#llx, not a vCPU's first access",
	      (unsigned long long)first_noisy);
	total = t[0].generated + t[1].generated;
	CHECK(queued == 0 && generated == total && blocked == total &&
	      generated == delivered + queued + coalesced + dropped &&
	      delivered == t[0].n.records + t[1].n.records &&
	      coalesced == t[0].n.repeats + t[1].n.repeats &&
	      dropped == t[0].n.reported_drops + t[1].n.reported_drops,
	      "stats: generated %llu (want %llu) blocked %llu delivered %llu queued %u coalesced %llu dropped %llu",
	      (unsigned long long)generated, (unsigned long long)total,
	      (unsigned long long)blocked, (unsigned long long)delivered, queued,
	      (unsigned long long)coalesced, (unsigned long long)dropped);
	/* Both mechanisms under test must have been exercised. */
	CHECK(t[0].n.repeats > 0, "no noisy access was coalesced");
	CHECK(s->reader == READER_FAST || t[0].n.reported_drops > 0,
	      "the flood lost nothing with a %s", reader_name[s->reader]);
	CHECK(s->timer_ticks > 0 && s->max_lateness_ns < LATENESS_BOUND_NS,
	      "timer task %llu ticks, worst lateness %.1f ms (bound %.0f ms)",
	      (unsigned long long)s->timer_ticks, s->max_lateness_ns / 1e6,
	      LATENESS_BOUND_NS / 1e6);
	return true;
}

static void storm_run(enum reader reader)
{
	struct vcpu_job jobs[4];
	pthread_t timer, rd;
	struct tally t[2] = { { 0 } };
	uint8_t stats[MSRGUARD_STATS_SIZE];
	char why[400] = "";
	int64_t t0, t_storm, t_run = now_ns();
	struct kvm_vcpu *noisy_vcpus[2], *quiet_vcpus[2];
	struct storm *s;
	bool ok = false;
	int i, ret;

	s = calloc(1, sizeof(*s));
	if (!s)
		ksft_exit_fail_msg("out of memory\n");
	s->reader = reader;
	s->fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	nrecs = 0;
	read_error[0] = 0;
	if (kvm_trace) {
		trace_write("tracing_on", "0");
		trace_write("trace", "");
		trace_write("buffer_size_kb", "8192");
		trace_write("events/kvm/enable", "1");
		trace_write("tracing_on", "1");
	}

	ret = control ? 0 : msrguard_load(POLICY_DEFAULT, "");
	if (ret) {
		ksft_test_result_fail("storm, %s: insmod: %s\n", reader_name[reader], strerror(-ret));
		free(s);
		return;
	}
	if (!control)
		s->fd = open(DEVICE_PATH, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (!control && s->fd < 0) {
		snprintf(why, sizeof(why), "cannot open %s: %s", DEVICE_PATH, strerror(errno));
		goto out;
	}
	/* LIBKVM fails the program if they cannot be created. */
	s->noisy = vm_create_with_vcpus(2, wrmsr_steps_guest, noisy_vcpus);
	s->quiet = vm_create_with_vcpus(2, wrmsr_steps_guest, quiet_vcpus);

	for (i = 0; i < 4; i++) {
		bool noisy = i < 2;

		jobs[i] = (struct vcpu_job){
			.s = s,
			.vcpu = noisy ? noisy_vcpus[i % 2] : quiet_vcpus[i % 2],
			.noisy = noisy,
			.index = i % 2,
		};
		vcpu_args_set(jobs[i].vcpu, 1, i % 2);
	}
	s->jobs = jobs;
	pthread_create(&timer, NULL, timer_thread, s);
	if (reader != READER_ABSENT && !control)
		pthread_create(&rd, NULL, reader_thread, s);
	t0 = now_ns();
	for (i = 0; i < 4; i++)
		pthread_create(&jobs[i].thread, NULL, vcpu_thread, &jobs[i]);
	for (i = 0; i < 4; i++)
		pthread_join(jobs[i].thread, NULL);
	t_storm = now_ns() - t0;
	atomic_store(&s->stop_timer, true);
	pthread_join(timer, NULL);
	if (control) {
		/* Only the guests' outcomes: KVM alone raises the same #GPs. */
		ok = !s->guest_error[0];
		snprintf(why, sizeof(why), "%s", s->guest_error);
		goto out;
	}
	if (reader != READER_ABSENT) {
		atomic_store(&s->stop_reader, true);
		pthread_join(rd, NULL);
	}
	/* Everything left, drop reports included (a read makes room for them). */
	while (!read_error[0] && read_some(s->fd, 64) > 0)
		;
	if (get_stats(s->fd, stats)) {
		snprintf(why, sizeof(why), "stats ioctl: %s", strerror(errno));
		goto out;
	}
	ok = check_run(s, t, stats, why, sizeof(why));
out:
	if (kvm_trace) {
		trace_write("tracing_on", "0");
		trace_write("events/kvm/enable", "0");
	}
	if (s->fd >= 0)
		close(s->fd);
	if (s->noisy)
		kvm_vm_free(s->noisy);
	if (s->quiet)
		kvm_vm_free(s->quiet);
	ret = control ? 0 : unload_msrguard();
	if (ok && ret) {
		ok = false;
		snprintf(why, sizeof(why), "rmmod after the run: %s", strerror(-ret));
	}
	if (ok && control)
		ksft_test_result_pass("storm control without msrguard: %llu noisy and %d quiet accesses, every one #GP; storm %.1f s\n",
				      2ull * noisy_per_vcpu, 2 * QUIET_PER_VCPU, t_storm / 1e9);
	else if (ok)
		ksft_test_result_pass("storm, %s: noisy VM %llu events = %llu records + %llu coalesced + %llu dropped (%llu drop reports); quiet VM %llu/%d delivered; %zu records in order; timer worst lateness %.1f ms; storm %.1f s (%.0f us/event), run %.1f s\n",
				      reader_name[reader], (unsigned long long)t[0].generated,
				      (unsigned long long)t[0].n.records, (unsigned long long)t[0].n.repeats,
				      (unsigned long long)t[0].n.reported_drops,
				      (unsigned long long)t[0].n.reports, (unsigned long long)t[1].n.records,
				      2 * QUIET_PER_VCPU, nrecs, s->max_lateness_ns / 1e6,
				      t_storm / 1e9, t_storm / 1e3 / (t[0].generated + t[1].generated),
				      (now_ns() - t_run) / 1e9);
	else if (control)
		ksft_test_result_fail("storm control without msrguard: %s\n", why);
	else
		ksft_test_result_fail("storm, %s: %s\n", reader_name[reader], why);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int main(int argc, char **argv)
{
	const char *only;
	int r;

	control = argc > 1 && !strcmp(argv[1], "--control");
	argv += control;
	argc -= control;
	if (argc > 3) {
		fprintf(stderr, "usage: %s [--control] [NOISY_EVENTS_PER_VCPU [absent|slow|fast]] (the module in MSRGUARD_KO)\n",
			argv[0]);
		return 2;
	}
	only = argc > 2 ? argv[2] : NULL;
	kvm_trace = getenv("MSRGUARD_STORM_TRACE") && !strcmp(getenv("MSRGUARD_STORM_TRACE"), "1");
	if (argc > 1)
		noisy_per_vcpu = strtoul(argv[1], NULL, 0) / CHUNK * CHUNK;
	if (noisy_per_vcpu < CHUNK)
		noisy_per_vcpu = CHUNK;

	ksft_print_header();
	ksft_set_plan(only ? 1 : 3);
	/* No SA_RESTART: the kick must end KVM_RUN with EINTR. */
	sigaction(SIGUSR1, &(struct sigaction){ .sa_handler = on_kick }, NULL);
	/*
	 * Under QEMU 7.2's TCG, KVM's guests run with nested paging off: with
	 * it, a guest here (msrguard loaded or not, the control fails the same
	 * way) now and then executed memory that is not its own (the test VM's
	 * SeaBIOS) or resumed with the host kernel's CS:RIP and looped without
	 * exits; with shadow paging it has not. MSR exits, and so msrguard's
	 * path, are the same either way.
	 */
	r = kvm_for_nested();
	if (r && r != -ENODEV)
		ksft_exit_fail_msg("cannot reload kvm_amd with npt=0: %s\n", strerror(-r));
	for (r = READER_ABSENT; r <= READER_FAST; r++)
		if (!only || !strncmp(reader_name[r], only, strlen(only)))
			storm_run(r);

	ksft_finished();
}
