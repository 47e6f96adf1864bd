// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's in-VM benchmark: guest-clock nanoseconds per guest MSR exit,
 * for each kind of access, without msrguard and with it, in the same boot.
 * Under QEMU's instruction counting (scripts/bench.sh boots the VM with
 * -icount shift=0) one nanosecond is one instruction, so the figures repeat
 * from run to run; without it they are wall-clock time under TCG, and noise.
 *
 * The long-mode cases run their loop inside what the guest's memory makes a
 * PE image (a header at page 0 whose SizeOfImage covers the code): with
 * image attribution (msrguard's default) and without (image_scan_pages=0).
 *
 * Each case checks that the guest saw what the case claims (the fault it
 * expects, one exit per access) and fails otherwise: a figure for an access
 * that did not exit, or was not vetoed, would measure something else.
 *
 * The guests are realmode.c's: loops of a few instructions around each
 * access, on a VM without in-kernel LAPIC, as before LIBKVM ran them.
 *
 * Usage: msrguard_bench MODULE.ko [EXITS]
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"

#include "msrguard_kvm.h"
#include "realmode.h"

#define ROUNDS 3

/* A guest access measured without and with msrguard. */
struct bench_case {
	const char *name;
	const char *access;
	const char *entry;		/* guest_{rdmsr,wrmsr}_loop, guest_wrmsr_steps */
	uint32_t msr;
	uint64_t value;			/* written by a WRMSR loop */
	const char *params;		/* "with" loads msrguard with these; NULL: none */
	bool long_mode;			/* paging on, the code in a PE image */
	enum { IMG_NONE, IMG_OFF, IMG_REPEAT, IMG_NEW } image; /* what "with" claims */
	uint32_t vector_without;	/* fault the guest sees: 0 or GP_VECTOR */
	uint32_t vector_with;
	double ns[2][2];		/* [without, with][best, worst] */
};

static struct bench_case cases[] = {
	{ .name = "allowed read", .access = "RDMSR 0x1b APIC_BASE",
	  .entry = guest_rdmsr_loop, .msr = 0x1b },
	{ .name = "allowed write", .access = "WRMSR 0x277 PAT (reset value)",
	  .entry = guest_wrmsr_loop, .msr = 0x277, .value = 0x0007040600070406ull },
	/* KVM itself refuses it: #GP either way. */
	{ .name = "blocked read", .access = "RDMSR 0x4b564dff (unknown)",
	  .entry = guest_rdmsr_loop, .msr = 0x4b564dff,
	  .vector_without = GP_VECTOR, .vector_with = GP_VECTOR },
	/* KVM accepts it; the default policy denies it. */
	{ .name = "blocked write", .access = "WRMSR 0x79 UCODE_WRITE",
	  .entry = guest_wrmsr_loop, .msr = 0x79, .value = 0x1000,
	  .vector_with = GP_VECTOR },
	/* The default policy's write = "ignore": dropped, no fault. */
	{ .name = "ignored write", .access = "WRMSR 0x1fc POWER_CTL",
	  .entry = guest_wrmsr_loop, .msr = 0x1fc, .value = 0x2 },
	/*
	 * The same with a new value each time (guest_wrmsr_steps with ESI 0,
	 * as guest_run() sets it): no repeat to coalesce, each event a new
	 * record, or, once the VM's share of the ring is full (nobody reads),
	 * a dropped one.
	 */
	{ .name = "ignored, new", .access = "WRMSR 0x1fc, a new value each",
	  .entry = guest_wrmsr_steps, .msr = 0x1fc, .value = 0x2 },
	/*
	 * The default policy's read = "ignore", of an MSR KVM answers (0 on
	 * SVM): KVM's read runs first (a guard only takes away), then 0.
	 */
	{ .name = "ignored read", .access = "RDMSR 0x1db LASTBRANCHFROMIP",
	  .entry = guest_rdmsr_loop, .msr = 0x1db },
	/* "ignore" of an MSR KVM refuses here (no Intel PT): KVM's #GP, no event. */
	{ .name = "ignore, KVM #GP", .access = "RDMSR 0x570 RTIT_CTL",
	  .entry = guest_rdmsr_loop, .msr = 0x570,
	  .vector_without = GP_VECTOR, .vector_with = GP_VECTOR },
	/* Denied by the default policy, answered by KVM; mode=audit allows it. */
	{ .name = "audited read", .access = "RDMSR 0x198 PERF_STATUS",
	  .entry = guest_rdmsr_loop, .msr = 0x198, .params = "mode=audit" },
	/*
	 * A paging guest, whose events are attributed to the image holding Pc:
	 * a repeat is coalesced before attribution is asked, so the first
	 * pair should cost the same; each new record (second pair) asks the
	 * image cache, which answers without a guest read. Each pair's "with"
	 * has a load of msrguard of its own (the default scan named), so the
	 * ring is as empty for one as for the other: a ring already full
	 * drops every event, and no drop is coalesced.
	 */
	{ .name = "LM blocked", .access = "WRMSR 0x79, long mode",
	  .entry = guest_wrmsr_loop64, .msr = 0x79, .value = 0x1000, .long_mode = true,
	  .params = "image_scan_pages=0", .vector_with = GP_VECTOR, .image = IMG_OFF },
	{ .name = "LM blocked+img", .access = "WRMSR 0x79, long mode",
	  .entry = guest_wrmsr_loop64, .msr = 0x79, .value = 0x1000, .long_mode = true,
	  .params = "image_scan_pages=4096", .vector_with = GP_VECTOR, .image = IMG_REPEAT },
	{ .name = "LM new", .access = "WRMSR 0x79, a new value each",
	  .entry = guest_wrmsr_steps64, .msr = 0x79, .value = 0x1000, .long_mode = true,
	  .params = "image_scan_pages=0", .vector_with = GP_VECTOR, .image = IMG_OFF },
	{ .name = "LM new+img", .access = "WRMSR 0x79, a new value each",
	  .entry = guest_wrmsr_steps64, .msr = 0x79, .value = 0x1000, .long_mode = true,
	  .params = "image_scan_pages=4096", .vector_with = GP_VECTOR, .image = IMG_NEW },
};

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	while (bytes--) {
		*p++ = (uint8_t)v;
		v >>= 8;
	}
}

/*
 * A PE32+ header at guest physical (and, identity-mapped, virtual) address
 * 0 whose image spans the guest code: the smallest header rust/core/pe.rs
 * accepts (no data directories, so no name).
 */
static void put_pe_header(uint8_t *mem)
{
	const uint32_t nt = 0x80, opt = nt + 24;

	memcpy(mem, "MZ", 2);
	put_le(mem + 0x3c, nt, 4);
	memcpy(mem + nt, "PE\0\0", 4);
	put_le(mem + nt + 4, 0x8664, 2);		/* Machine: x86-64 */
	put_le(mem + nt + 8, 0x5eed0001, 4);		/* TimeDateStamp */
	put_le(mem + nt + 20, 112, 2);			/* SizeOfOptionalHeader */
	put_le(mem + opt, 0x20b, 2);			/* PE32+ */
	put_le(mem + opt + 56, 0x10000, 4);		/* SizeOfImage */
	put_le(mem + opt + 60, 0x400, 4);		/* SizeOfHeaders */
	put_le(mem + opt + 64, 0x5eed0002, 4);		/* CheckSum */
	put_le(mem + opt + 108, 0, 4);			/* NumberOfRvaAndSizes */
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* The vCPU's "exits" counter, from KVM's binary statistics. */
struct exit_counter {
	int fd;
	off_t offset;
};

static int exit_counter_open(struct guest *g, struct exit_counter *c)
{
	struct kvm_stats_header h;
	struct kvm_stats_desc *d;
	size_t size;
	char *descs;
	uint32_t i;

	c->fd = ioctl(g->vcpu->fd, KVM_GET_STATS_FD, NULL);
	if (c->fd < 0)
		return -errno;
	if (pread(c->fd, &h, sizeof(h), 0) != sizeof(h))
		return -EIO;
	size = sizeof(*d) + h.name_size;
	descs = calloc(h.num_desc, size);
	if (!descs)
		return -ENOMEM;
	if (pread(c->fd, descs, h.num_desc * size, h.desc_offset) != (ssize_t)(h.num_desc * size)) {
		free(descs);
		return -EIO;
	}
	for (i = 0; i < h.num_desc; i++) {
		d = (struct kvm_stats_desc *)(descs + i * size);
		if (!strcmp(d->name, "exits") && d->size == 1) {
			c->offset = h.data_offset + d->offset;
			free(descs);
			return 0;
		}
	}
	free(descs);
	return -ENOENT;
}

static uint64_t exit_count(const struct exit_counter *c)
{
	uint64_t v = 0;

	if (pread(c->fd, &v, sizeof(v), c->offset) != sizeof(v))
		return 0;
	return v;
}

/*
 * Runs @exits accesses of @c ROUNDS times in a fresh VM; stores the best and
 * worst ns per exit in c->ns[@with]. Returns false, with a message, if the
 * guest did not behave as the case says.
 */
static bool measure(struct bench_case *c, int with, uint32_t exits)
{
	uint32_t want = with ? c->vector_with : c->vector_without;
	struct exit_counter counter = { .fd = -1 };
	struct guest_result res;
	struct guest g;
	bool ok = true;
	int i, ret;

	guest_create(&g);
	if (c->long_mode) {
		guest_set_mode(&g, GUEST_LONG_MODE);
		put_pe_header(g.mem);
	}
	ret = exit_counter_open(&g, &counter);
	if (ret) {
		fprintf(stderr, "bench: %s: vCPU exit counter: %s\n", c->name, strerror(-ret));
		if (counter.fd >= 0)
			close(counter.fd);
		guest_destroy(&g);
		return false;
	}
	/*
	 * One untimed round first: a new VM's first run also faults in its
	 * memory and warms KVM's caches, which no later exit pays again.
	 */
	ret = guest_run(&g, c->entry, c->msr, c->value, exits, &res);
	if (ret || res.exit_reason != KVM_EXIT_HLT) {
		fprintf(stderr, "bench: %s %s msrguard: warm-up did not halt (ret %d, exit reason %u)\n",
			c->name, with ? "with" : "without", ret, res.exit_reason);
		ok = false;
	}
	for (i = 0; i < ROUNDS && ok; i++) {
		uint64_t e0 = exit_count(&counter), e1;
		double t0 = now_ns(), t;

		ret = guest_run(&g, c->entry, c->msr, c->value, exits, &res);
		t = (now_ns() - t0) / exits;
		e1 = exit_count(&counter);
		if (ret || res.exit_reason != KVM_EXIT_HLT) {
			fprintf(stderr, "bench: %s %s msrguard: guest did not halt (ret %d, exit reason %u)\n",
				c->name, with ? "with" : "without", ret, res.exit_reason);
			ok = false;
		} else if (res.fault_vector != want) {
			fprintf(stderr, "bench: %s %s msrguard: guest saw vector %u, expected %u\n",
				c->name, with ? "with" : "without", res.fault_vector, want);
			ok = false;
		} else if (e1 - e0 < exits) {
			fprintf(stderr, "bench: %s %s msrguard: %llu exits for %u accesses: the MSR is not intercepted\n",
				c->name, with ? "with" : "without",
				(unsigned long long)(e1 - e0), exits);
			ok = false;
		}
		if (!i || t < c->ns[with][0])
			c->ns[with][0] = t;
		if (!i || t > c->ns[with][1])
			c->ns[with][1] = t;
	}
	close(counter.fd);
	guest_destroy(&g);
	return ok;
}

static bool load(const char *ko, const char *params)
{
	int ret = load_module_file(ko, params);

	if (ret)
		fprintf(stderr, "bench: insmod %s %s: %s\n", ko, params, strerror(-ret));
	return !ret;
}

static bool unload(void)
{
	int ret = unload_msrguard();

	if (ret)
		fprintf(stderr, "bench: rmmod msrguard: %s\n", strerror(-ret));
	return !ret;
}

/*
 * measure() "with" msrguard, then what @c claims of image attribution:
 * off, no lookup; a repeat, at most one lookup per run (the first access
 * of each; the rest are coalesced before attribution is asked) and the
 * image found; a new record each, every one attributed (from the cache).
 */
static bool measure_attributed(struct bench_case *c, uint32_t exits)
{
	uint64_t lookups = param_u64("image_lookups"), found = param_u64("image_found");
	bool ok = measure(c, 1, exits);

	lookups = param_u64("image_lookups") - lookups;
	found = param_u64("image_found") - found;
	if ((c->image == IMG_OFF && lookups) ||
	    (c->image == IMG_REPEAT && (lookups > ROUNDS + 1 || !found)) ||
	    (c->image == IMG_NEW && found < (uint64_t)exits * (ROUNDS + 1))) {
		fprintf(stderr, "bench: %s: %llu image lookups, %llu found: not what the case claims\n",
			c->name, (unsigned long long)lookups, (unsigned long long)found);
		return false;
	}
	return ok;
}

static const char *params_of(const struct bench_case *c)
{
	return c->params ? c->params : "";
}

/* Measures every case whose "with" loads msrguard with @params. */
static bool measure_with(const char *ko, const char *params, uint32_t exits)
{
	bool ok;
	size_t i;

	if (!load(ko, params))
		return false;
	ok = true;
	for (i = 0; i < ARRAY_SIZE(cases); i++)
		if (!strcmp(params_of(&cases[i]), params))
			ok = measure_attributed(&cases[i], exits) && ok;
	return unload() && ok;
}

int main(int argc, char **argv)
{
	uint32_t exits = argc > 2 ? strtoul(argv[2], NULL, 0) : 3000;
	double spread, worst = 0;
	bool ok = true;
	size_t i, j;

	if (argc < 2 || !exits) {
		fprintf(stderr, "usage: %s MODULE.ko [EXITS]\n", argv[0]);
		return 2;
	}
	/* Baselines first, with no msrguard loaded at all. */
	for (i = 0; i < ARRAY_SIZE(cases); i++)
		ok = measure(&cases[i], 0, exits) && ok;
	/* One load of msrguard per distinct parameter string, in case order. */
	for (i = 0; i < ARRAY_SIZE(cases) && ok; i++) {
		for (j = 0; j < i && strcmp(params_of(&cases[j]), params_of(&cases[i])); j++)
			;
		if (j == i)
			ok = measure_with(argv[1], params_of(&cases[i]), exits);
	}
	if (!ok) {
		fprintf(stderr, "bench: FAILED: a case did not behave as described; no figures\n");
		return 1;
	}

	printf("# bench: guest-clock ns per MSR exit (instructions under QEMU -icount shift=0), %u exits, best of %d rounds after one warm-up\n",
	       exits, ROUNDS);
	printf("# bench: %-14s %-30s %9s %9s %7s %8s\n", "case", "guest access", "without", "with",
	       "ratio", "added");
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct bench_case *c = &cases[i];
		double w0 = c->ns[0][0], w1 = c->ns[1][0];

		printf("# bench: %-14s %-30s %9.0f %9.0f %7.3f %+8.0f%s%s%s\n", c->name, c->access, w0,
		       w1, w1 / w0, w1 - w0, c->params ? "  (" : "", params_of(c), c->params ? ")" : "");
		spread = c->ns[0][1] / c->ns[0][0] - 1;
		worst = spread > worst ? spread : worst;
		spread = c->ns[1][1] / c->ns[1][0] - 1;
		worst = spread > worst ? spread : worst;
	}
	printf("# bench: largest spread between rounds of one measurement: %.2f %%\n", worst * 100);
	return 0;
}
