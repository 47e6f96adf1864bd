// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's in-VM benchmark: guest-clock nanoseconds per guest MSR exit,
 * for each kind of access, without msrguard and with it, in the same boot.
 * Under QEMU's instruction counting (scripts/bench.sh boots the VM with
 * -icount shift=0) one nanosecond is one instruction, so the figures repeat
 * from run to run; without it they are wall-clock time under TCG, and noise.
 *
 * The long-mode cases run on LIBKVM's standard guest, their loop copied
 * into what the guest's memory makes a PE image (a header page, then the
 * code): with image attribution (msrguard's default) and without
 * (image_scan_pages=0).
 *
 * Each case checks that the guest saw what the case claims (the fault it
 * expects, one exit per access) and fails otherwise: a figure for an access
 * that did not exit, or was not vetoed, would measure something else.
 *
 * Every case's guest runs a loop of a few instructions around each access
 * and a four-instruction #GP handler, so an exit's figure is KVM's and
 * msrguard's work, not the guest's. The real-mode cases run on realmode.c's
 * guest, which halts to the host (no in-kernel LAPIC).
 *
 * The pinned cases run with msrguard in both columns: KVM intercepts LSTAR
 * writes only for a VM whose profile pins it, so their baseline is an
 * allowed write that exits (PAT) of a VM in the default profile.
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

/* bench_long_mode.S */
extern const char bench_lm_code_start[], bench_lm_code_end[];
extern const char bench_lm_wrmsr_loop[], bench_lm_wrmsr_steps[];
extern const char bench_lm_gp_handler[];

/* A guest access measured without and with msrguard. */
struct bench_case {
	const char *name;
	const char *access;
	const char *entry;		/* guest_{rdmsr,wrmsr}_loop, guest_wrmsr_steps,
					 * bench_lm_wrmsr_{loop,steps} */
	uint32_t msr;
	uint64_t value;			/* written by a WRMSR loop */
	const char *params;		/* "with" loads msrguard with these; NULL: none */
	bool long_mode;			/* LIBKVM's guest, the loop in a PE image */
	enum { IMG_NONE, IMG_OFF, IMG_REPEAT, IMG_NEW } image; /* what "with" claims */
	/*
	 * "with" gives the VM this profile (MSRGUARD_IOC_SET_PROFILE). A
	 * pinned MSR's write exits only while msrguard keeps it intercepted,
	 * in that profile: "without" is then msrguard loaded, the VM in the
	 * default profile, writing @base_msr (an allowed write that exits).
	 */
	const char *profile;
	uint64_t pinned;		/* the VMM writes this first (KVM_SET_MSRS): the pin */
	uint32_t base_msr;
	uint64_t base_value;
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
	  .entry = bench_lm_wrmsr_loop, .msr = 0x79, .value = 0x1000, .long_mode = true,
	  .params = "image_scan_pages=0", .vector_with = GP_VECTOR, .image = IMG_OFF },
	{ .name = "LM blocked+img", .access = "WRMSR 0x79, long mode",
	  .entry = bench_lm_wrmsr_loop, .msr = 0x79, .value = 0x1000, .long_mode = true,
	  .params = "image_scan_pages=4096", .vector_with = GP_VECTOR, .image = IMG_REPEAT },
	{ .name = "LM new", .access = "WRMSR 0x79, a new value each",
	  .entry = bench_lm_wrmsr_steps, .msr = 0x79, .value = 0x1000, .long_mode = true,
	  .params = "image_scan_pages=0", .vector_with = GP_VECTOR, .image = IMG_OFF },
	{ .name = "LM new+img", .access = "WRMSR 0x79, a new value each",
	  .entry = bench_lm_wrmsr_steps, .msr = 0x79, .value = 0x1000, .long_mode = true,
	  .params = "image_scan_pages=4096", .vector_with = GP_VECTOR, .image = IMG_NEW },
	/*
	 * The hardened profile's pins (policy/profiles/hardened.toml): a
	 * kernel's LSTAR write of the value it pinned (Linux's resume from
	 * suspend does it), and a rootkit's write of another, vetoed (a repeat,
	 * coalesced). Against an allowed write that exits, PAT's, in the
	 * default profile (an unpinned VM's LSTAR write does not exit).
	 */
	{ .name = "LM pinned", .access = "WRMSR LSTAR, the pinned value",
	  .entry = bench_lm_wrmsr_loop, .msr = 0xc0000082, .value = 0xffffffff81a00000ull,
	  .long_mode = true, .profile = "hardened", .pinned = 0xffffffff81a00000ull,
	  .base_msr = 0x277, .base_value = 0x0007040600070406ull },
	{ .name = "LM pin veto", .access = "WRMSR LSTAR, another value",
	  .entry = bench_lm_wrmsr_loop, .msr = 0xc0000082, .value = 0xffffffff8badc0deull,
	  .long_mode = true, .profile = "hardened", .pinned = 0xffffffff81a00000ull,
	  .base_msr = 0x277, .base_value = 0x0007040600070406ull, .vector_with = GP_VECTOR },
};

/*
 * Where the long-mode guest's image is mapped (a Windows kernel-like
 * address, as image_test's): a header page, then the loops.
 */
#define LM_IMAGE_VA	0xfffff80000200000ull
#define LM_CODE_VA	(LM_IMAGE_VA + 0x1000)
#define LM_IMAGE_SIZE	0x2000

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	while (bytes--) {
		*p++ = (uint8_t)v;
		v >>= 8;
	}
}

/*
 * A PE32+ header whose image spans the loops: the smallest header
 * rust/core/pe.rs accepts (no data directories, so no name).
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
	put_le(mem + opt + 56, LM_IMAGE_SIZE, 4);	/* SizeOfImage */
	put_le(mem + opt + 60, 0x400, 4);		/* SizeOfHeaders */
	put_le(mem + opt + 64, 0x5eed0002, 4);		/* CheckSum */
	put_le(mem + opt + 108, 0, 4);			/* NumberOfRvaAndSizes */
}

/* The loop the long-mode guest calls next (sync_global_to_guest). */
static struct {
	uint64_t entry;		/* its address in the image */
	uint32_t msr, count;
	uint64_t value;
} lm_args;

/*
 * The guest's own IDT while a loop runs: only the #GP gate, to
 * bench_lm_gp_handler. LIBKVM's handlers (route_exception() and the
 * registers it saves) would add tens of guest instructions to each vetoed
 * access, which the real-mode cases do not pay.
 */
static struct idt_entry lm_idt[GP_VECTOR + 1];

/* Runs the loop lm_args names, then GUEST_SYNCs the vector it saw (0 or #GP). */
static void lm_guest(void)
{
	uint64_t handler = (uint64_t)bench_lm_gp_handler;
	struct desc_ptr own = { .size = sizeof(lm_idt) - 1, .address = (uint64_t)lm_idt };
	struct idt_entry *gp = &lm_idt[GP_VECTOR];
	uint16_t cs;

	asm volatile("mov %%cs, %0" : "=r"(cs));
	gp->offset0 = handler;
	gp->selector = cs;
	gp->type = 14;		/* 64-bit interrupt gate */
	gp->p = 1;
	gp->offset1 = handler >> 16;
	gp->offset2 = handler >> 32;
	for (;;) {
		struct desc_ptr libkvm = get_idt();
		uint32_t eax = (uint32_t)lm_args.value, edx = lm_args.value >> 32;
		uint32_t count = lm_args.count, vector = 0;

		set_idt(&own);
		/* Below the red zone: the call and a #GP push onto this stack. */
		asm volatile("sub $128, %%rsp\n\t"
			     "call *%[entry]\n\t"
			     "add $128, %%rsp"
			     : "+b"(count), "+a"(eax), "+d"(edx), "+D"(vector)
			     : "c"(lm_args.msr), "S"(0), [entry] "r"(lm_args.entry)
			     : "memory", "cc");
		set_idt(&libkvm);
		GUEST_SYNC(vector);
	}
}

/* The VM a case runs in: realmode.c's, or LIBKVM's long-mode one. */
struct bench_vm {
	struct guest rm;
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
};

static void bench_vm_create(struct bench_vm *b, bool long_mode)
{
	size_t code = bench_lm_code_end - bench_lm_code_start;
	gpa_t gpa;
	uint8_t *img;

	memset(b, 0, sizeof(*b));
	if (!long_mode) {
		guest_create(&b->rm);
		b->vm = b->rm.vm;
		b->vcpu = b->rm.vcpu;
		return;
	}
	b->vm = vm_create_with_one_vcpu(&b->vcpu, lm_guest);
	TEST_ASSERT(code <= LM_IMAGE_SIZE - (LM_CODE_VA - LM_IMAGE_VA), "loops larger than the image");
	gpa = vm_phy_pages_alloc(b->vm, LM_IMAGE_SIZE / 4096, 0x100000, 0);
	img = addr_gpa2hva(b->vm, gpa);
	memset(img, 0, LM_IMAGE_SIZE);
	put_pe_header(img);
	memcpy(img + (LM_CODE_VA - LM_IMAGE_VA), bench_lm_code_start, code);
	virt_map(b->vm, LM_IMAGE_VA, gpa, LM_IMAGE_SIZE / 4096);
}

static void bench_vm_destroy(struct bench_vm *b)
{
	if (b->rm.vm)
		guest_destroy(&b->rm);
	else if (b->vm)
		kvm_vm_free(b->vm);
	memset(b, 0, sizeof(*b));
}

/*
 * One run of @c's loop of @exits accesses (@base: of its baseline's MSR
 * and value): 0 and the vector the guest saw, or -1 with a message if it
 * did not come back as it should.
 */
static int bench_vm_run(struct bench_vm *b, const struct bench_case *c, bool base,
			uint32_t exits, uint32_t *vector)
{
	struct guest_result res;
	struct ucall uc;
	int ret;

	if (!c->long_mode) {
		ret = guest_run(&b->rm, c->entry, c->msr, c->value, exits, &res);
		if (ret || res.exit_reason != KVM_EXIT_HLT) {
			fprintf(stderr, "bench: %s: guest did not halt (ret %d, exit reason %u)\n",
				c->name, ret, res.exit_reason);
			return -1;
		}
		*vector = res.fault_vector;
		return 0;
	}
	lm_args.entry = LM_CODE_VA + (uint64_t)(c->entry - bench_lm_code_start);
	lm_args.msr = base ? c->base_msr : c->msr;
	lm_args.value = base ? c->base_value : c->value;
	lm_args.count = exits;
	sync_global_to_guest(b->vm, lm_args);
	ret = __vcpu_run(b->vcpu);
	if (ret || get_ucall(b->vcpu, &uc) != UCALL_SYNC) {
		fprintf(stderr, "bench: %s: guest did not sync (ret %d, exit reason %u)\n",
			c->name, ret, b->vcpu->run->exit_reason);
		return -1;
	}
	*vector = (uint32_t)uc.args[1];
	return 0;
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

static int exit_counter_open(struct kvm_vcpu *vcpu, struct exit_counter *c)
{
	struct kvm_stats_header h;
	struct kvm_stats_desc *d;
	size_t size;
	char *descs;
	uint32_t i;

	c->fd = ioctl(vcpu->fd, KVM_GET_STATS_FD, NULL);
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

/* Gives this process's one live VM the profile @name; false with a message if it cannot. */
static bool give_profile(const char *name)
{
	struct msrguard_set_profile set = {};
	struct msrguard_vm_info vm = {};
	struct msrguard_profile p;
	bool found = false;
	int fd = open_device();
	uint32_t i;

	if (fd < 0) {
		fprintf(stderr, "bench: %s: %s\n", DEVICE_PATH, strerror(errno));
		return false;
	}
	for (p.index = 0;; p.index++) {
		if (ioctl(fd, MSRGUARD_IOC_PROFILE, &p))
			break;
		if (!strncmp(p.name, name, sizeof(p.name))) {
			found = true;
			break;
		}
	}
	for (i = 0; found; i++) {
		vm.position = i;
		if (ioctl(fd, MSRGUARD_IOC_VM, &vm)) {
			found = false;
			break;
		}
		if (vm.vmm_pid == (uint32_t)getpid())
			break;
	}
	if (!found) {
		fprintf(stderr, "bench: no profile %s, or no VM of this process: %s\n", name,
			strerror(errno));
		close(fd);
		return false;
	}
	set.vm_id = vm.vm_id;
	set.profile = p.index;
	found = !ioctl(fd, MSRGUARD_IOC_SET_PROFILE, &set);
	if (!found)
		fprintf(stderr, "bench: profile %s for VM %u: %s\n", name, vm.vm_id, strerror(errno));
	close(fd);
	return found;
}

/*
 * Runs @exits accesses of @c ROUNDS times in a fresh VM; stores the best and
 * worst ns per exit in c->ns[@with]. Returns false, with a message, if the
 * guest did not behave as the case says.
 */
static bool measure(struct bench_case *c, int with, uint32_t exits)
{
	uint32_t want = with ? c->vector_with : c->vector_without, vector;
	const char *which = with ? "with" : "without";
	struct exit_counter counter = { .fd = -1 };
	struct bench_vm b;
	bool ok = true;
	int i, ret;

	bench_vm_create(&b, c->long_mode);
	if (with && c->profile && !give_profile(c->profile)) {
		bench_vm_destroy(&b);
		return false;
	}
	if (with && c->pinned)
		vcpu_set_msr(b.vcpu, c->msr, c->pinned);
	ret = exit_counter_open(b.vcpu, &counter);
	if (ret) {
		fprintf(stderr, "bench: %s: vCPU exit counter: %s\n", c->name, strerror(-ret));
		if (counter.fd >= 0)
			close(counter.fd);
		bench_vm_destroy(&b);
		return false;
	}
	/*
	 * One untimed round first: a new VM's first run also faults in its
	 * memory and warms KVM's caches, which no later exit pays again.
	 */
	if (bench_vm_run(&b, c, !with && c->base_msr, exits, &vector)) {
		fprintf(stderr, "bench: %s %s msrguard: warm-up failed\n", c->name, which);
		ok = false;
	}
	for (i = 0; i < ROUNDS && ok; i++) {
		uint64_t e0 = exit_count(&counter), e1;
		double t0 = now_ns(), t;

		ret = bench_vm_run(&b, c, !with && c->base_msr, exits, &vector);
		t = (now_ns() - t0) / exits;
		e1 = exit_count(&counter);
		if (ret) {
			fprintf(stderr, "bench: %s %s msrguard: round %d failed\n", c->name, which, i);
			ok = false;
		} else if (vector != want) {
			fprintf(stderr, "bench: %s %s msrguard: guest saw vector %u, expected %u\n",
				c->name, which, vector, want);
			ok = false;
		} else if (e1 - e0 < exits) {
			fprintf(stderr, "bench: %s %s msrguard: %llu exits for %u accesses: the MSR is not intercepted\n",
				c->name, which, (unsigned long long)(e1 - e0), exits);
			ok = false;
		}
		if (!i || t < c->ns[with][0])
			c->ns[with][0] = t;
		if (!i || t > c->ns[with][1])
			c->ns[with][1] = t;
	}
	close(counter.fd);
	bench_vm_destroy(&b);
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
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		if (strcmp(params_of(&cases[i]), params))
			continue;
		/* A profile's case: its baseline is the default profile's, here. */
		if (cases[i].profile)
			ok = measure(&cases[i], 0, exits) && ok;
		ok = measure_attributed(&cases[i], exits) && ok;
	}
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
	/* Baselines first, with no msrguard loaded at all (but a profile's). */
	for (i = 0; i < ARRAY_SIZE(cases); i++)
		if (!cases[i].profile)
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

		printf("# bench: %-14s %-30s %9.0f %9.0f %7.3f %+8.0f%s%s%s%s%s%s\n", c->name, c->access, w0,
		       w1, w1 / w0, w1 - w0, c->params ? "  (" : "", params_of(c), c->params ? ")" : "",
		       c->profile ? "  (" : "", c->profile ? c->profile : "",
		       c->profile ? " profile; without: WRMSR PAT, default profile)" : "");
		spread = c->ns[0][1] / c->ns[0][0] - 1;
		worst = spread > worst ? spread : worst;
		spread = c->ns[1][1] / c->ns[1][0] - 1;
		worst = spread > worst ? spread : worst;
	}
	printf("# bench: largest spread between rounds of one measurement: %.2f %%\n", worst * 100);
	return 0;
}
