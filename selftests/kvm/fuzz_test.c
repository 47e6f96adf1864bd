// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's interface fuzz test, run inside the test VM as root
 * (scripts/test.sh). A KVM guest keeps doing blocked WRMSRs (so reads
 * return data, and the small ring drops some) while this program does
 * random operations on /dev/msrguard from a seeded generator (the seed is
 * printed; pass it back to replay a failure):
 *
 *  1. the documented partial-fault read: a buffer whose record k runs into
 *     a PROT_NONE page gets exactly k records, and the rest stay queued;
 *  2. single-threaded random operations: read (sizes 0..4 KiB, good,
 *     NULL, PROT_NONE, read-only, kernel, non-canonical and part-way
 *     faulting buffers), ioctl (random commands, the real ones with wrong
 *     sizes and directions, the same pointers), poll, open, close, write,
 *     pread, lseek, mmap, fcntl(O_NONBLOCK), and rmmod of msrguard and of
 *     the KVM vendor module while they are in use. Each call's outcome is
 *     computed beforehand from the documented semantics and must match;
 *     every record read must carry the next sequence number (nothing lost
 *     or repeated by a failed copy);
 *  3. the same from several threads at once (open/read/poll/ioctl/close/
 *     rmmod, blocking reads interrupted by signals): only documented
 *     outcomes, and each record delivered exactly once over all threads;
 *  4. accounting: the guest's events = access records + their repeats +
 *     reported drops, and the module's counters agree.
 *
 * Records are decoded only through struct msrguard_record and the
 * constants of msrguard_abi.h, generated from rust/core/record.rs.
 *
 * Usage: fuzz_test [SEED [OPS]], with the module in MSRGUARD_KO (run.sh sets it)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"

#include "msrguard_guest.h"
#include "msrguard_kvm.h"
#include "msrguard_stats.h"

#define PAGE		4096
#define RING_RECORDS	128	/* small: the guest overflows it, drops are fuzzed too */
#define MAX_BATCH	64	/* records per read() at most (rust/module/device.rs) */
#define GUEST_CHUNK	64	/* accesses per KVM_RUN */
#define NFDS		6	/* per-thread table of open files */
#define THREADS		4
#define THREAD_OPS	5000
#define DEFAULT_SEED	0x6d737267ull	/* fixed, so CI runs repeat; argv[2] overrides */

static const char *vendor_module;	/* kvm_amd or kvm_intel */
static uint64_t seed;
static unsigned long nops = 100000;
static uint32_t policy_entries;

/* ---- Random numbers (xorshift64*: small, and the same on every libc) ---- */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static uint32_t rndn(uint64_t *s, uint32_t n)
{
	return (uint32_t)(rnd(s) >> 32) % n;
}

/* ---- Outcome counters ------------------------------------------------------- */

enum call { C_READ, C_IOCTL, C_POLL, C_OPEN, C_CLOSE, C_WRITE, C_PREAD, C_LSEEK, C_MMAP,
	    C_FCNTL, C_RMMOD, C_RMMOD_KVM, C_NR };
static const char *const call_name[C_NR] = {
	"read", "ioctl", "poll", "open", "close", "write", "pread", "lseek", "mmap",
	"fcntl", "rmmod-msrguard", "rmmod-kvm",
};
#define MAX_ERRNO 134
static atomic_ulong outcomes[C_NR][MAX_ERRNO + 1];	/* [call][0 = success, else errno] */

/* The first unexpected outcome, for the failure line. */
static char failure[400];
static atomic_bool failed;
static pthread_mutex_t failure_lock = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&failure_lock);
	if (!failed) {
		va_start(ap, fmt);
		vsnprintf(failure, sizeof(failure), fmt, ap);
		va_end(ap);
		atomic_store(&failed, true);
	}
	pthread_mutex_unlock(&failure_lock);
}

static void count(enum call c, long ret, int err)
{
	int k = ret >= 0 ? 0 : err;

	atomic_fetch_add(&outcomes[c][k > 0 && k <= MAX_ERRNO ? k : 0], 1);
}

static const char *errname(int e)
{
	const char *n = e ? strerrorname_np(e) : "ok";

	return n ? n : "?";
}

/* "read: ok=1 EAGAIN=2; ioctl: ..." for the calls made, into @buf. */
static void outcome_summary(char *buf, size_t len)
{
	size_t at = 0;
	int c, e;

	buf[0] = 0;
	for (c = 0; c < C_NR; c++) {
		bool any = false;

		for (e = 0; e <= MAX_ERRNO; e++) {
			unsigned long n = atomic_load(&outcomes[c][e]);

			if (!n || at >= len)
				continue;
			if (!any)
				at += snprintf(buf + at, len - at, "%s%s:", at ? "; " : "", call_name[c]);
			if (at < len)
				at += snprintf(buf + at, len - at, " %s=%lu", errname(e), n);
			any = true;
		}
	}
}

/* ---- Memory the calls point at ----------------------------------------- */

/*
 * Kinds of user pointer. readable/writable: bytes from the start that the
 * kernel can copy from / to (SIZE_MAX: any length we use).
 */
enum ptr_kind { P_GOOD, P_NULL, P_NONE, P_RO, P_SPLIT, P_KERNEL, P_KTEXT, P_NONCANON, P_NR };
static const char *const ptr_name[P_NR] = {
	"good", "NULL", "PROT_NONE", "read-only", "split", "kernel", "kernel-text", "non-canonical",
};

struct ptr {
	enum ptr_kind kind;
	uint8_t *p;
	size_t readable, writable;
	bool user;			/* passes access_ok() */
};

static uint8_t *none_page, *ro_page;

static int setup_memory(void)
{
	none_page = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ro_page = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return none_page == MAP_FAILED || ro_page == MAP_FAILED ? -1 : 0;
}

/*
 * Each reader's own buffers (what a read copies out is parsed afterwards):
 * a good one, and two pages whose second is PROT_NONE, for a buffer that
 * faults part-way.
 */
static int worker_memory(uint8_t **good, uint8_t **split)
{
	*good = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	*split = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*good == MAP_FAILED || *split == MAP_FAILED || mprotect(*split + PAGE, PAGE, PROT_NONE))
		return -1;
	return 0;
}

/* A buffer in @split with @room bytes before the PROT_NONE page. */
static struct ptr split_ptr(uint8_t *split, size_t room)
{
	return (struct ptr){ P_SPLIT, split + PAGE - room, room, room, true };
}

static struct ptr random_ptr(uint64_t *s, enum ptr_kind kind, uint8_t *good, uint8_t *split)
{
	switch (kind) {
	case P_GOOD:
		return (struct ptr){ kind, good + rndn(s, 64), SIZE_MAX, SIZE_MAX, true };
	case P_NULL:
		return (struct ptr){ kind, NULL, 0, 0, true };
	case P_NONE:
		return (struct ptr){ kind, none_page + rndn(s, PAGE), 0, 0, true };
	case P_RO: {
		uint32_t off = rndn(s, PAGE);

		return (struct ptr){ kind, ro_page + off, PAGE - off, 0, true };
	}
	case P_SPLIT:
		return split_ptr(split, rndn(s, PAGE + 1));
	case P_KERNEL:
		return (struct ptr){ kind, (uint8_t *)0xffff888000000000ull + rndn(s, 1 << 20) * 64ull, 0, 0, false };
	case P_KTEXT:
		return (struct ptr){ kind, (uint8_t *)0xffffffff81000000ull, 0, 0, false };
	default:
		/* Bit 63 set, bits 62..47 not: non-canonical with 4- or 5-level paging. */
		return (struct ptr){ kind, (uint8_t *)(0x8000000000000000ull + rnd(s) % (1ull << 46)),
				     0, 0, false };
	}
}

static enum ptr_kind random_kind(uint64_t *s)
{
	/* Mostly good and part-way faulting buffers, the rest spread. */
	uint32_t r = rndn(s, 16);

	return r < 7 ? P_GOOD : r < 10 ? P_SPLIT : (enum ptr_kind)(r - 9);
}

/* ---- Records ------------------------------------------------------------ */

static uint32_t guest_vm_id;
static atomic_bool vm_id_known;

/* Records read by one reader: their count, their sequence numbers. */
struct tally {
	struct flood_count n;
	uint64_t *seqs;
	size_t nseqs, cap;
	uint64_t next_seq;		/* strict order check (single reader); 0: off */
};

static void tally_add(struct tally *t, const struct msrguard_record *r)
{
	char why[160];

	if (flood_count_add(&t->n, r, why, sizeof(why))) {
		fail("%s", why);
		return;
	}
	if (t->next_seq) {
		if (r->sequence != t->next_seq)
			fail("record has sequence %llu, expected %llu: a record lost or repeated",
			     (unsigned long long)r->sequence, (unsigned long long)t->next_seq);
		t->next_seq = r->sequence + 1;
	}
	if (t->nseqs == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 4096;
		uint64_t *p = realloc(t->seqs, cap * sizeof(*p));

		if (!p) {
			fail("out of memory");
			return;
		}
		t->seqs = p;
		t->cap = cap;
	}
	t->seqs[t->nseqs++] = r->sequence;
	if (!atomic_load(&vm_id_known)) {
		guest_vm_id = r->vm_id;
		atomic_store(&vm_id_known, true);
	} else if (r->vm_id != guest_vm_id) {
		fail("record seq %llu: vm_id %#x, the only VM is %#x",
		     (unsigned long long)r->sequence, r->vm_id, guest_vm_id);
	}
}

static void tally_bytes(struct tally *t, const uint8_t *buf, size_t n)
{
	struct msrguard_record r;
	size_t i;

	for (i = 0; i + sizeof(r) <= n; i += sizeof(r)) {
		memcpy(&r, buf + i, sizeof(r));
		tally_add(t, &r);
	}
}

/* ---- The guest ------------------------------------------------------------ */

static struct kvm_vcpu *guest;
static atomic_bool guest_stop;
static atomic_ulong guest_generated;

static void *guest_thread(void *arg)
{
	uint32_t chunk = 0;
	sigset_t set;
	int gp;

	(void)arg;
	/* The signals that interrupt the fuzzer's reads are not the guest's. */
	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	while (!atomic_load(&guest_stop)) {
		/* Alternately distinct values and runs of 8 identical ones. */
		wrmsr_steps_set(guest, 0, MSR_UNKNOWN, 0x10000000u + chunk * GUEST_CHUNK,
				GUEST_CHUNK, chunk % 2 ? 7 : 0);
		vcpu_run(guest);
		gp = wrmsr_steps_result(guest);
		if (gp != GUEST_CHUNK) {
			fail("guest: %d of %d WRMSRs raised #GP (exit %u)", gp, GUEST_CHUNK,
			     guest->run->exit_reason);
			break;
		}
		atomic_fetch_add(&guest_generated, GUEST_CHUNK);
		chunk++;
	}
	return NULL;
}

/* ---- Helpers -------------------------------------------------------------- */

static void on_signal(int sig)
{
	(void)sig;
}


static bool stats_consistent(const uint8_t *st)
{
	return stats_u32(st, MSRGUARD_STATS_OFF_ABI_VERSION) == MSRGUARD_ABI_VERSION &&
	       stats_u32(st, MSRGUARD_STATS_OFF_RECORD_SIZE) == MSRGUARD_RECORD_SIZE &&
	       stats_u32(st, MSRGUARD_STATS_OFF_CAPACITY) == RING_RECORDS &&
	       stats_u64(st, MSRGUARD_STATS_OFF_GENERATED) ==
		       stats_u64(st, MSRGUARD_STATS_OFF_DELIVERED) +
			       stats_u32(st, MSRGUARD_STATS_OFF_QUEUED) +
			       stats_u64(st, MSRGUARD_STATS_OFF_COALESCED) +
			       stats_u64(st, MSRGUARD_STATS_OFF_DROPPED);
}

static uint32_t queued_now(int fd)
{
	uint8_t st[MSRGUARD_STATS_SIZE];

	return get_stats(fd, st) ? 0 : stats_u32(st, MSRGUARD_STATS_OFF_QUEUED);
}

/* Commands do_vfs_ioctl() handles itself (FIOCLEX, FIONBIO, FIFREEZE, ...): not ours to fuzz. */
static bool vfs_ioctl_type(uint32_t cmd)
{
	uint32_t type = _IOC_TYPE(cmd);

	return type == 'T' || type == 'f' || type == 'X' || type == 0x94 || type == 0x15 ||
	       cmd == FIGETBSZ;
}

static uint32_t random_cmd(uint64_t *s)
{
	uint32_t cmd;

	do {
		switch (rndn(s, 6)) {
		case 0:
		case 1:
			cmd = MSRGUARD_IOC_STATS;
			break;
		case 2:
			cmd = MSRGUARD_IOC_POLICY_ENTRY;
			break;
		case 3:	/* anything */
			cmd = (uint32_t)rnd(s);
			break;
		case 4:	/* our type, any number, direction and size */
			cmd = _IOC(rndn(s, 4), 'M', rndn(s, 8), rndn(s, 1 << _IOC_SIZEBITS));
			break;
		default: {	/* a real command with another size or direction */
			uint32_t real = rndn(s, 2) ? MSRGUARD_IOC_STATS : MSRGUARD_IOC_POLICY_ENTRY;

			cmd = rndn(s, 2) ? _IOC(_IOC_DIR(real), 'M', _IOC_NR(real), rndn(s, 256))
					 : _IOC(rndn(s, 4), 'M', _IOC_NR(real), _IOC_SIZE(real));
		}
		}
	} while (vfs_ioctl_type(cmd));
	return cmd;
}

/* ---- One operation ---------------------------------------------------------- */

struct fdslot {
	int fd;
	int flags;			/* O_ACCMODE | O_NONBLOCK */
};

struct worker {
	uint64_t rng;
	struct fdslot fds[NFDS];
	int shared_fd;			/* never closed by the worker */
	struct tally t;
	uint8_t *good, *split;		/* this worker's buffers (worker_memory) */
	bool concurrent;		/* other readers exist: weaker read checks */
	unsigned long ops;
};

static bool readable_mode(int flags)
{
	return (flags & O_ACCMODE) != O_WRONLY;
}

static void check(struct worker *w, enum call c, long ret, int err, bool ok, const char *detail)
{
	count(c, ret, err);
	if (!ok)
		fail("op %lu: %s returned %ld (%s)%s%s", w->ops, call_name[c], ret,
		     ret < 0 ? errname(err) : "ok", detail[0] ? ": " : "", detail);
}

static void op_read(struct worker *w, struct fdslot *f, struct ptr p, size_t len)
{
	bool nonblock = f->flags & O_NONBLOCK;
	size_t want = len / MSRGUARD_RECORD_SIZE, fit = p.writable / MSRGUARD_RECORD_SIZE;
	uint32_t before = 0;
	char detail[160];
	long ret;
	int err;
	bool ok;

	if (want > MAX_BATCH)
		want = MAX_BATCH;
	if (!w->concurrent && nonblock)
		before = queued_now(w->shared_fd);
	if (!nonblock && !w->concurrent)
		alarm(1);	/* a blocking read gets EINTR if no event comes */
	ret = read(f->fd, p.p, len);
	err = errno;
	if (!nonblock && !w->concurrent)
		alarm(0);
	snprintf(detail, sizeof(detail), "fd flags %#x, %s buffer, len %zu, %u queued before",
		 f->flags, ptr_name[p.kind], len, before);
	if (!readable_mode(f->flags)) {
		ok = ret < 0 && err == EBADF;
	} else if (!p.user) {
		ok = ret < 0 && err == EFAULT;
	} else if (len < MSRGUARD_RECORD_SIZE) {
		ok = ret < 0 && err == EINVAL;
	} else if (ret < 0) {
		/*
		 * EAGAIN: non-blocking and nothing queued (or, concurrently,
		 * another reader copying); EINTR: a blocking read signalled;
		 * EFAULT: record 0 does not fit where it can be written.
		 */
		ok = (err == EAGAIN && nonblock && (w->concurrent || before == 0)) ||
		     (err == EINTR && !nonblock) || (err == EFAULT && !fit);
	} else {
		size_t got = ret / MSRGUARD_RECORD_SIZE;
		size_t most = want < fit ? want : fit;
		size_t least = before < most ? before : most;

		ok = ret % MSRGUARD_RECORD_SIZE == 0 && got >= 1 && got <= most &&
		     (w->concurrent || !nonblock || got >= least);
		if (ret % MSRGUARD_RECORD_SIZE == 0 && got <= most)
			tally_bytes(&w->t, p.p, ret);
	}
	check(w, C_READ, ret, err, ok, detail);
}

static void op_ioctl(struct worker *w, struct fdslot *f, struct ptr p)
{
	uint32_t cmd = random_cmd(&w->rng);
	uint32_t index = rndn(&w->rng, policy_entries + 4);
	char detail[160];
	int expect = 0;
	long ret;
	int err;
	bool ok;

	if (cmd == MSRGUARD_IOC_POLICY_ENTRY && p.readable >= 4) {
		if (p.writable >= 4)
			memcpy(p.p, &index, 4);
		else
			memcpy(&index, p.p, 4);	/* what the kernel will read */
	}
	if (cmd == MSRGUARD_IOC_STATS)
		expect = p.writable >= MSRGUARD_STATS_SIZE ? 0 : EFAULT;
	else if (cmd == MSRGUARD_IOC_POLICY_ENTRY)
		expect = p.readable < 4 ? EFAULT : index >= policy_entries ? ENOENT :
			 p.writable < MSRGUARD_POLICY_ENTRY_SIZE ? EFAULT : 0;
	else
		expect = ENOTTY;
	ret = ioctl(f->fd, cmd, p.p);
	err = errno;
	ok = expect ? ret == -1 && err == expect : ret == 0;
	if (ok && !expect && cmd == MSRGUARD_IOC_STATS && !stats_consistent(p.p))
		ok = false;
	snprintf(detail, sizeof(detail), "cmd %#x, %s pointer, index %u, expected %s%s", cmd,
		 ptr_name[p.kind], index, errname(expect),
		 ok || ret ? "" : " (stats identity broken)");
	check(w, C_IOCTL, ret, err, ok, detail);
}

static void op_poll(struct worker *w)
{
	struct pollfd pfd[NFDS + 1];
	int n = 0, i, ret, err;
	bool ok, seen = false, order = true;

	pfd[n++] = (struct pollfd){ .fd = w->shared_fd, .events = POLLIN };
	for (i = 0; i < NFDS; i++)
		if (w->fds[i].fd >= 0 && rndn(&w->rng, 2))
			pfd[n++] = (struct pollfd){ .fd = w->fds[i].fd, .events = POLLIN | POLLOUT };
	ret = poll(pfd, n, w->concurrent ? (int)rndn(&w->rng, 10) : 0);
	err = errno;
	ok = ret >= 0 || (err == EINTR && w->concurrent);
	for (i = 0; ret >= 0 && i < n; i++) {
		if (pfd[i].revents & ~(POLLIN | POLLRDNORM))
			ok = false;
		/* One queue: once one file is readable, the later ones are. */
		if (pfd[i].revents & POLLIN)
			seen = true;
		else if (seen)
			order = false;
	}
	if (!w->concurrent && !order)
		ok = false;
	check(w, C_POLL, ret, err, ok, "revents beyond POLLIN|POLLRDNORM, or readiness not shared");
}

static void op_open(struct worker *w, struct fdslot *f)
{
	static const int modes[] = { O_RDONLY, O_RDONLY, O_RDWR, O_WRONLY };
	int flags = modes[rndn(&w->rng, 4)] | (rndn(&w->rng, 4) ? O_NONBLOCK : 0);
	int fd = open(DEVICE_PATH, flags | O_CLOEXEC);

	check(w, C_OPEN, fd, errno, fd >= 0, "");
	f->fd = fd;
	f->flags = flags;
}

static void op_close(struct worker *w, struct fdslot *f)
{
	int ret = close(f->fd);

	check(w, C_CLOSE, ret, errno, ret == 0, "");
	f->fd = -1;
}

static void op_vfs(struct worker *w, struct fdslot *f)
{
	bool rd = readable_mode(f->flags);
	bool wr = (f->flags & O_ACCMODE) != O_RDONLY;
	size_t len = rndn(&w->rng, PAGE);
	long ret;
	void *m;
	int err;

	switch (rndn(&w->rng, 4)) {
	case 0:	/* no write operation: EINVAL once the mode allows writing */
		ret = write(f->fd, w->good, len);
		err = errno;
		check(w, C_WRITE, ret, err, ret < 0 && err == (wr ? EINVAL : EBADF), "");
		break;
	case 1:	/* a stream: no positioned I/O, no seeking */
		ret = pread(f->fd, w->good, len, rndn(&w->rng, 1 << 20));
		err = errno;
		check(w, C_PREAD, ret, err, ret < 0 && err == ESPIPE, "");
		break;
	case 2:
		ret = lseek(f->fd, rndn(&w->rng, 1 << 20), rndn(&w->rng, 3));
		err = errno;
		check(w, C_LSEEK, ret, err, ret < 0 && err == ESPIPE, "");
		break;
	default:	/* no mmap */
		m = mmap(NULL, PAGE, PROT_READ, rndn(&w->rng, 2) ? MAP_SHARED : MAP_PRIVATE,
			 f->fd, 0);
		err = errno;
		if (m != MAP_FAILED)
			munmap(m, PAGE);
		ret = m == MAP_FAILED ? -1 : 0;
		check(w, C_MMAP, ret, err, ret < 0 && err == (rd ? ENODEV : EACCES), "");
	}
}

static void op_fcntl(struct worker *w, struct fdslot *f)
{
	int ret = fcntl(f->fd, F_SETFL, (f->flags ^ O_NONBLOCK) & O_NONBLOCK);

	check(w, C_FCNTL, ret, errno, ret == 0, "");
	if (!ret)
		f->flags ^= O_NONBLOCK;
}

static void op_rmmod(struct worker *w, bool kvm)
{
	/* Both are in use (our open files; our VM): refused, never removed. */
	long ret = syscall(SYS_delete_module, kvm ? vendor_module : "msrguard", O_NONBLOCK);
	int err = errno;

	check(w, kvm ? C_RMMOD_KVM : C_RMMOD, ret, err,
	      ret < 0 && (err == EWOULDBLOCK || err == EBUSY || (err == EINTR && w->concurrent)),
	      "a module in use must not unload");
	if (!ret)
		ksft_exit_fail_msg("%s was unloaded while in use\n", kvm ? vendor_module : "msrguard");
}

static void one_op(struct worker *w)
{
	struct fdslot *f = &w->fds[rndn(&w->rng, NFDS)];
	uint32_t r = rndn(&w->rng, 100);
	size_t len;

	w->ops++;
	if (f->fd < 0) {
		op_open(w, f);
		return;
	}
	if (r < 45) {
		/* Sizes 0..4 KiB, often a multiple of the record size or near it. */
		len = rndn(&w->rng, 3) ? rndn(&w->rng, PAGE + 1)
				       : (rndn(&w->rng, 28) + 1) * MSRGUARD_RECORD_SIZE -
						 rndn(&w->rng, 2);
		/* Blocking reads only where an event is sure to come. */
		if (!(f->flags & O_NONBLOCK) && rndn(&w->rng, 8))
			op_fcntl(w, f);
		op_read(w, f, random_ptr(&w->rng, random_kind(&w->rng), w->good, w->split), len);
	} else if (r < 70) {
		op_ioctl(w, f, random_ptr(&w->rng, random_kind(&w->rng), w->good, w->split));
	} else if (r < 78) {
		op_poll(w);
	} else if (r < 84) {
		op_close(w, f);
	} else if (r < 92) {
		op_vfs(w, f);
	} else if (r < 97) {
		op_fcntl(w, f);
	} else if (r < 99) {
		op_rmmod(w, false);
	} else {
		op_rmmod(w, true);
	}
}

static void close_all(struct worker *w)
{
	int i;

	for (i = 0; i < NFDS; i++)
		if (w->fds[i].fd >= 0)
			op_close(w, &w->fds[i]);
}

/* ---- Tests -------------------------------------------------------------- */

static int holder = -1;		/* keeps the module in use; the final drain */
static uint8_t *main_good, *main_split;
static struct tally main_tally;

/* Waits until at least @n records are queued (the guest keeps adding). */
static bool wait_queued(uint32_t n)
{
	int i;

	for (i = 0; i < 2000 && !failed; i++) {
		if (queued_now(holder) >= n)
			return true;
		usleep(5000);
	}
	return false;
}

static void test_partial_fault(void)
{
	static const uint32_t ks[] = { 0, 1, 2, 5, 13, 27 };
	uint8_t buf[2 * MSRGUARD_RECORD_SIZE];
	char why[512] = "";
	unsigned int i, cases = 0;
	int aligned;

	for (i = 0; i < sizeof(ks) / sizeof(ks[0]) && !why[0]; i++) {
		for (aligned = 0; aligned < 2 && !why[0]; aligned++) {
			uint32_t k = ks[i];
			/* Record k straddles the page boundary, or starts on it. */
			struct ptr p = split_ptr(main_split, k * MSRGUARD_RECORD_SIZE + (aligned ? 0 : 17));
			uint64_t next = main_tally.next_seq;
			ssize_t n;

			if (!wait_queued(k + 2)) {
				snprintf(why, sizeof(why), "fewer than %u records queued after 10 s", k + 2);
				break;
			}
			n = read(holder, p.p, (k + 2) * MSRGUARD_RECORD_SIZE);
			if (k == 0 ? !(n == -1 && errno == EFAULT) : n != (ssize_t)k * MSRGUARD_RECORD_SIZE) {
				snprintf(why, sizeof(why), "record %u faults: read returned %zd (%s), expected %s",
					 k, n, n < 0 ? errname(errno) : "ok", k ? "k records" : "EFAULT");
				break;
			}
			if (n > 0)
				tally_bytes(&main_tally, p.p, n);
			/* The faulting record is the next one read: it stayed queued. */
			n = read(holder, buf, MSRGUARD_RECORD_SIZE);
			if (n != MSRGUARD_RECORD_SIZE) {
				snprintf(why, sizeof(why), "read after the fault: %zd", n);
				break;
			}
			tally_bytes(&main_tally, buf, n);
			if (main_tally.next_seq != next + k + 1)
				snprintf(why, sizeof(why), "after a fault on record %u the next read got sequence %llu, expected %llu",
					 k, (unsigned long long)main_tally.next_seq - 1,
					 (unsigned long long)(next + k));
			cases++;
		}
	}
	if (!why[0] && failed)
		snprintf(why, sizeof(why), "%s", failure);
	if (why[0])
		ksft_test_result_fail("fuzz: partial-fault read: %s\n", why);
	else
		ksft_test_result_pass("fuzz: a read faulting on record k returns k records (EFAULT for k=0) and keeps the rest queued: %u cases, k = 0,1,2,5,13,27, straddling and page-aligned\n",
				      cases);
}

static void test_single(void)
{
	struct worker w = { .rng = seed, .shared_fd = holder };
	char summary[1500];
	int i;

	for (i = 0; i < NFDS; i++)
		w.fds[i].fd = -1;
	w.good = main_good;
	w.split = main_split;
	w.t = main_tally;
	while (w.ops < nops && !failed)
		one_op(&w);
	close_all(&w);
	main_tally = w.t;
	outcome_summary(summary, sizeof(summary));
	if (failed)
		ksft_test_result_fail("fuzz: single thread, seed %llu: %s\n", (unsigned long long)seed,
				      failure);
	else
		ksft_test_result_pass("fuzz: %lu random operations in one thread, seed %llu, every outcome as documented: %s\n",
				      w.ops, (unsigned long long)seed, summary);
}

static struct worker workers[THREADS];
static atomic_bool workers_done;

static void *worker_thread(void *arg)
{
	struct worker *w = arg;
	unsigned long i;

	for (i = 0; i < THREAD_OPS && !failed; i++)
		one_op(w);
	close_all(w);
	return NULL;
}

/* Interrupts the workers now and then: blocking reads and polls get EINTR. */
static void *signal_thread(void *arg)
{
	pthread_t *threads = arg;
	int i;

	while (!atomic_load(&workers_done)) {
		usleep(20000);
		for (i = 0; i < THREADS; i++)
			pthread_kill(threads[i], SIGUSR1);
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void test_concurrent(void)
{
	pthread_t threads[THREADS], sig;
	char summary[1500];
	unsigned long total_ops = 0;
	int c, e, i, j;

	/* Outcomes are counted per test. */
	for (c = 0; c < C_NR; c++)
		for (e = 0; e <= MAX_ERRNO; e++)
			atomic_store(&outcomes[c][e], 0);
	for (i = 0; i < THREADS; i++) {
		workers[i] = (struct worker){
			.rng = seed ^ (0x9e3779b97f4a7c15ull * (i + 1)),
			.shared_fd = holder,
			.concurrent = true,
		};
		if (worker_memory(&workers[i].good, &workers[i].split))
			ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
		for (j = 0; j < NFDS; j++)
			workers[i].fds[j].fd = -1;
		pthread_create(&threads[i], NULL, worker_thread, &workers[i]);
	}
	pthread_create(&sig, NULL, signal_thread, threads);
	for (i = 0; i < THREADS; i++) {
		pthread_join(threads[i], NULL);
		total_ops += workers[i].ops;
	}
	atomic_store(&workers_done, true);
	pthread_join(sig, NULL);
	outcome_summary(summary, sizeof(summary));
	if (failed)
		ksft_test_result_fail("fuzz: %d threads, seed %llu: %s\n", THREADS,
				      (unsigned long long)seed, failure);
	else
		ksft_test_result_pass("fuzz: %lu random operations from %d threads at once (signals interrupting), seed %llu, every outcome as documented: %s\n",
				      total_ops, THREADS, (unsigned long long)seed, summary);
}

static void test_accounting(pthread_t guest_tid)
{
	uint8_t st[MSRGUARD_STATS_SIZE];
	struct tally all = { 0 };
	uint64_t generated, *seqs;
	size_t n = 0, i;
	char why[512] = "";
	int k;

	atomic_store(&guest_stop, true);
	pthread_join(guest_tid, NULL);
	/* The rest, drop reports included; in order from here on. */
	main_tally.next_seq = 0;
	for (;;) {
		uint8_t buf[MAX_BATCH * MSRGUARD_RECORD_SIZE];
		ssize_t r = read(holder, buf, sizeof(buf));

		if (r <= 0)
			break;
		tally_bytes(&main_tally, buf, r);
	}
	generated = atomic_load(&guest_generated);
	all = main_tally;
	for (k = 0; k < THREADS; k++) {
		all.n.records += workers[k].t.n.records;
		all.n.repeats += workers[k].t.n.repeats;
		all.n.reports += workers[k].t.n.reports;
		all.n.reported_drops += workers[k].t.n.reported_drops;
		n += workers[k].t.nseqs;
	}
	n += main_tally.nseqs;
	seqs = malloc((n + 1) * sizeof(*seqs));
	if (!seqs)
		ksft_exit_fail_msg("out of memory\n");
	memcpy(seqs, main_tally.seqs, main_tally.nseqs * sizeof(*seqs));
	i = main_tally.nseqs;
	for (k = 0; k < THREADS; k++) {
		memcpy(seqs + i, workers[k].t.seqs, workers[k].t.nseqs * sizeof(*seqs));
		i += workers[k].t.nseqs;
	}
	qsort(seqs, n, sizeof(*seqs), cmp_u64);
	for (i = 0; i < n && !why[0]; i++)
		if (seqs[i] != i + 1)
			snprintf(why, sizeof(why), "sequence %llu delivered %s",
				 (unsigned long long)(i + 1),
				 seqs[i] > i + 1 ? "never" : "twice");
	if (!why[0] && get_stats(holder, st))
		snprintf(why, sizeof(why), "stats ioctl: %s", strerror(errno));
	if (!why[0] && generated != all.n.records + all.n.repeats + all.n.reported_drops)
		snprintf(why, sizeof(why), "guest generated %llu events, read %llu records + %llu repeats + %llu reported drops",
			 (unsigned long long)generated, (unsigned long long)all.n.records,
			 (unsigned long long)all.n.repeats, (unsigned long long)all.n.reported_drops);
	if (!why[0] && (!stats_consistent(st) || stats_u32(st, MSRGUARD_STATS_OFF_QUEUED) ||
			stats_u64(st, MSRGUARD_STATS_OFF_GENERATED) != generated ||
			stats_u64(st, MSRGUARD_STATS_OFF_DELIVERED) != all.n.records ||
			stats_u64(st, MSRGUARD_STATS_OFF_COALESCED) != all.n.repeats ||
			stats_u64(st, MSRGUARD_STATS_OFF_DROPPED) != all.n.reported_drops))
		snprintf(why, sizeof(why), "stats: generated %llu delivered %llu queued %u coalesced %llu dropped %llu",
			 (unsigned long long)stats_u64(st, MSRGUARD_STATS_OFF_GENERATED),
			 (unsigned long long)stats_u64(st, MSRGUARD_STATS_OFF_DELIVERED),
			 stats_u32(st, MSRGUARD_STATS_OFF_QUEUED),
			 (unsigned long long)stats_u64(st, MSRGUARD_STATS_OFF_COALESCED),
			 (unsigned long long)stats_u64(st, MSRGUARD_STATS_OFF_DROPPED));
	if (!why[0] && failed)
		snprintf(why, sizeof(why), "%s", failure);
	if (why[0])
		ksft_test_result_fail("fuzz: accounting: %s\n", why);
	else
		ksft_test_result_pass("fuzz: accounting: guest %llu events = %llu records + %llu coalesced + %llu dropped (%llu drop reports); sequences 1..%zu each delivered exactly once; stats agree\n",
				      (unsigned long long)generated, (unsigned long long)all.n.records,
				      (unsigned long long)all.n.repeats,
				      (unsigned long long)all.n.reported_drops,
				      (unsigned long long)all.n.reports, n);
	free(seqs);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART */
	uint8_t entry[MSRGUARD_POLICY_ENTRY_SIZE];
	pthread_t guest_tid;
	struct kvm_vm *vm;
	char params[32];
	int ret;

	if (argc > 3) {
		fprintf(stderr, "usage: %s [SEED [OPS]] (the module in MSRGUARD_KO)\n", argv[0]);
		return 2;
	}
	seed = argc > 1 ? strtoull(argv[1], NULL, 0) : DEFAULT_SEED;
	if (!seed)
		seed = 1;	/* xorshift's one fixed point */
	if (argc > 2)
		nops = strtoul(argv[2], NULL, 0);

	ksft_print_header();
	ksft_set_plan(4);
	ksft_print_msg("seed %llu (replay: %s %llu %lu)\n", (unsigned long long)seed, argv[0],
		       (unsigned long long)seed, nops);
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	if (setup_memory() || worker_memory(&main_good, &main_split))
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	/* LIBKVM fails the program if the VM cannot be created. */
	vm = vm_create_with_one_vcpu(&guest, wrmsr_steps_guest);
	vcpu_args_set(guest, 1, 0);
	vendor_module = kvm_vendor_module();
	snprintf(params, sizeof(params), "ring_records=%d", RING_RECORDS);
	ret = msrguard_load(POLICY_DEFAULT, params);
	holder = ret ? -1 : open(DEVICE_PATH, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (holder < 0)
		ksft_exit_fail_msg("cannot load msrguard (MSRGUARD_KO) and open %s: %s\n",
				   DEVICE_PATH, strerror(ret ? -ret : errno));
	/* The policy table's length, for the expected ENOENT. */
	for (policy_entries = 0; policy_entries < 100000; policy_entries++) {
		memcpy(entry, &policy_entries, 4);
		if (ioctl(holder, MSRGUARD_IOC_POLICY_ENTRY, entry))
			break;
	}
	main_tally.next_seq = 1;
	pthread_create(&guest_tid, NULL, guest_thread, NULL);

	test_partial_fault();
	test_single();
	test_concurrent();
	test_accounting(guest_tid);

	close(holder);
	kvm_vm_free(vm);
	ret = unload_msrguard();
	if (ret)
		ksft_exit_fail_msg("rmmod msrguard after the fuzz: %s\n", strerror(-ret));
	ksft_finished();
}
