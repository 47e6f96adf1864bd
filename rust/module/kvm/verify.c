// SPDX-License-Identifier: GPL-2.0
/*
 * Before msrguard arms a hook: is the function it hooks the one every guest
 * access goes through, in the KVM this kernel runs?
 *
 * The decision hooks sit on kvm_get_msr_ignored_check() and
 * kvm_set_msr_ignored_check(), static functions of arch/x86/kvm/msrs.c. A
 * different compiler, other options or LTO may clone them
 * (name.constprop.0, .isra.0, .part.0) or inline them into the guest paths
 * while keeping an out-of-line copy for other callers. msrguard would then
 * arm, say so, and see only the VMM's calls: no veto, no event. So, on the
 * running kernel's code:
 *
 *  - no clone: no traceable function is named "<hooked>.*" (ftrace's own
 *    list of functions; one search for the two decision hooks, each
 *    search reading every traceable function's name);
 *  - every guest entry point reaches the hooked function: its machine code
 *    calls or jumps to it (rel32 forms, and rel8 jumps the assembler
 *    shortened), directly or through the functions
 *    of KVM's call chain between them, each of which, when the compiler
 *    kept it out of line, is read the same way. A path whose copy of the
 *    chain is inlined with the hooked function in it calls nothing hooked,
 *    and fails.
 *
 * The prototypes are the compiler's to check, when msrguard is built
 * against the tree (kvm_probe.c). A mismatch refuses to arm with
 * one log line naming it.
 *
 * The VM lifetime hooks (kvm_mmu_init_vm, kvm_mmu_uninit_vm,
 * kvm_arch_vcpu_precreate) are called from a few places in KVM's source,
 * whose ways in are the entry points: read the same way, that covers a
 * clone too.
 *
 * The intercept hooks (svm/vmx_set_intercept_for_msr) are read the same
 * way: each of the vendor's global functions that changes MSR intercepts
 * (recalc_intercepts, set_msr, the LBR and x2APIC/AVIC updates) must reach
 * them, or KVM could drop an intercept the policy keeps (a pass-through
 * FS_BASE, SPEC_CTRL after its first write) unseen.
 *
 * One call found per entry point is enough: a function whose calls the
 * compiler inlined only in part passes. What this catches is the whole
 * function inlined into a path, or cloned.
 */

#define pr_fmt(fmt) "msrguard: " fmt

#include <linux/ftrace.h>
#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/unaligned.h>

#include "msrguard_boundary.h"

/*
 * Test only: "clone" makes the clone check match the hooked function
 * itself, as a clone would; "caller" (kvm) and "vendor_caller" (kvm_amd,
 * kvm_intel) add an entry point that does not reach the hooked function,
 * as an inlined caller would not. Each makes arming fail: a load with it
 * must be refused.
 */
static char *verify_inject = "";
module_param(verify_inject, charp, 0444);
MODULE_PARM_DESC(verify_inject,
		 "Test only: clone, caller or vendor_caller, a hook check that must fail");

/* Bodies larger than this are not read (KVM's entry points are far smaller). */
#define BODY_MAX	SZ_64K
/* Functions of a chain read at most, and how deep. */
#define VISITED_MAX	32
#define DEPTH_MAX	6

/*
 * One hooked function and what must reach it: the entry points other code
 * calls (exported, or reached through an ops table, so out of line), and
 * the functions between them in KVM's source, which may be inlined.
 */
struct chain {
	const char *hooked;
	/*
	 * A glob of its compiler clones, which must not exist (NULL: another
	 * chain's glob covers it, or every caller of it is an entry point).
	 */
	const char *clones;
	const char *const *entries;
	const char *const *optional_entries;	/* configuration-dependent */
	const char *const *links;
	/* What goes unseen if an entry point does not reach it. */
	const char *unseen;
	/*
	 * Test only: the verify_inject value that adds the decoy as an entry,
	 * a function of the module that never reaches the hooked one.
	 */
	const char *inject;
	const char *const *decoy;
};

static const char *const get_entries[] = {
	"kvm_emulate_rdmsr", "kvm_emulate_rdmsr_imm", "kvm_emulator_get_msr_with_filter",
	"kvm_emulator_get_msr", "kvm_emulate_msr_read", "__kvm_emulate_msr_read",
	"kvm_task_switch", NULL,
};
static const char *const get_links[] = {
	"__kvm_emulate_rdmsr", "kvm_emulate_msr_read", "__kvm_emulate_msr_read", NULL,
};
static const char *const set_entries[] = {
	"kvm_emulate_wrmsr", "kvm_emulate_wrmsr_imm", "kvm_emulator_set_msr_with_filter",
	"kvm_emulate_msr_write", "__kvm_emulate_msr_write", NULL,
};
static const char *const set_optional[] = { "emulator_leave_smm", NULL };
static const char *const set_links[] = {
	"__kvm_emulate_wrmsr", "kvm_emulate_msr_write", "__kvm_emulate_msr_write",
	"rsm_load_state_64", NULL,
};
static const char *const kvm_decoy[] = { "kvm_get_msr_common", NULL };
/*
 * The VM lifetime hooks: KVM's source calls each from the functions
 * listed here (or, for kvm_mmu_init_vm, from kvm_arch_init_vm, reached
 * only from the VM-creating ioctl), so a clone (or a copy inlined) would
 * fail the chain: no clone search for them.
 */
static const char *const init_vm_entries[] = { "kvm_dev_ioctl", NULL };
static const char *const init_vm_links[] = {
	"kvm_dev_ioctl_create_vm", "kvm_create_vm", "kvm_arch_init_vm", NULL,
};
static const char *const uninit_vm_entries[] = { "kvm_arch_destroy_vm", "kvm_arch_init_vm", NULL };
static const char *const precreate_entries[] = { "kvm_vm_ioctl", NULL };
static const char *const precreate_links[] = { "kvm_vm_ioctl_create_vcpu", NULL };

/*
 * The vendors' paths to their intercept hook in 7.3: the recalculation
 * (MSRs, PMU, CET, SEV-ES), set_msr (SPEC_CTRL; on VMX also XFD and PT),
 * LBR virtualization, and the x2APIC/AVIC switch.
 */
static const char *const svm_entries[] = {
	"svm_recalc_intercepts", "svm_set_msr", "svm_enable_lbrv", "svm_update_lbrv",
	"avic_init_vmcb", "avic_refresh_apicv_exec_ctrl", NULL,
};
static const char *const svm_links[] = {
	"svm_recalc_msr_intercepts", "svm_recalc_lbr_msr_intercepts",
	"svm_recalc_pmu_msr_intercepts", "sev_es_recalc_msr_intercepts",
	"svm_disable_intercept_for_msr", "svm_enable_intercept_for_msr",
	"avic_refresh_virtual_apic_mode", "avic_activate_vmcb", "avic_deactivate_vmcb",
	"avic_set_x2apic_msr_interception", NULL,
};
static const char *const svm_decoy[] = { "svm_get_msr", NULL };
static const char *const vmx_entries[] = {
	"vmx_recalc_intercepts", "vmx_set_msr", "vmx_passthrough_lbr_msrs",
	"vmx_refresh_apicv_exec_ctrl", "vmx_set_virtual_apic_mode", NULL,
};
static const char *const vmx_links[] = {
	"vmx_recalc_msr_intercepts", "vmx_recalc_pmu_msr_intercepts",
	"vmx_update_msr_bitmap_x2apic", "vmx_disable_lbr_msrs_passthrough",
	"vmx_enable_lbr_msrs_passthrough", "vmx_update_intercept_for_lbr_msrs",
	"pt_update_intercept_for_msr", "vmx_disable_intercept_for_msr",
	"vmx_enable_intercept_for_msr", NULL,
};
static const char *const vmx_decoy[] = { "vmx_get_msr", NULL };
static const char *const none[] = { NULL };

/*
 * One clone search reads the name of every traceable function of the
 * kernel (seconds in an emulated VM): the two decision hooks share one.
 */
static const struct chain chains[] = {
	{ "kvm_get_msr_ignored_check", "kvm_[gs]et_msr_ignored_check.*", get_entries, none,
	  get_links, "guest accesses", "caller", kvm_decoy },
	{ "kvm_set_msr_ignored_check", NULL, set_entries, set_optional, set_links,
	  "guest accesses", "caller", kvm_decoy },
	{ "kvm_mmu_init_vm", NULL, init_vm_entries, none, init_vm_links,
	  "VM creations", "", none },
	{ "kvm_mmu_uninit_vm", NULL, uninit_vm_entries, none, none,
	  "VM destructions", "", none },
	{ "kvm_arch_vcpu_precreate", NULL, precreate_entries, none, precreate_links,
	  "vCPU creations", "", none },
	{ "svm_set_intercept_for_msr", "svm_set_intercept_for_msr.*", svm_entries, none,
	  svm_links, "intercept changes", "vendor_caller", svm_decoy },
	{ "vmx_set_intercept_for_msr", "vmx_set_intercept_for_msr.*", vmx_entries, none,
	  vmx_links, "intercept changes", "vendor_caller", vmx_decoy },
};

/* Where a function's code is: its start and size, and its name. */
struct extent {
	unsigned long start, size;
	/* Where ftrace hooks it (lookup() only); 0 if not traceable. */
	unsigned long ftrace_site;
	char name[KSYM_NAME_LEN];
};

/*
 * The extent of the function holding @addr, from kallsyms' line
 * "name+0xoff/0xsize [module]"; false if none. Not inlined: its buffer
 * stays out of reaches()' recursive frames.
 */
static noinline bool extent_of(unsigned long addr, struct extent *x)
{
	char line[KSYM_SYMBOL_LEN], *plus, *slash;
	unsigned long off;

	if (!sprint_symbol(line, addr))
		return false;
	plus = strrchr(line, '+');
	slash = plus ? strchr(plus, '/') : NULL;
	if (!plus || !slash)
		return false;
	*slash = '\0';
	if (kstrtoul(plus + 1, 0, &off) || off > addr)
		return false;
	if (sscanf(slash + 1, "%lx", &x->size) != 1 || !x->size)
		return false;
	*plus = '\0';
	strscpy(x->name, line, sizeof(x->name));
	x->start = addr - off;
	return true;
}

/*
 * The extent of @module's function @name: kallsyms through a kprobe that
 * is registered disabled, so never armed (kallsyms_lookup_name is not
 * exported). False if the module has no such function.
 */
static bool lookup(const char *module, const char *name, struct extent *x)
{
	char qualified[MODULE_NAME_LEN + KSYM_NAME_LEN + 2];
	struct kprobe kp = { .symbol_name = qualified, .flags = KPROBE_FLAG_DISABLED };
	unsigned long addr;

	snprintf(qualified, sizeof(qualified), "%s:%s", module, name);
	if (register_kprobe(&kp))
		return false;
	addr = (unsigned long)kp.addr;
	/* A probe on a function's ftrace call site goes through ftrace. */
	x->ftrace_site = (kp.flags & KPROBE_FLAG_FTRACE) ? addr : 0;
	unregister_kprobe(&kp);
	/* kp.addr may be past an ENDBR: back to the symbol's start. */
	return extent_of(addr, x) && !strcmp(x->name, name);
}

struct walk {
	const struct chain *chain;
	unsigned long hooked;
	unsigned long visited[VISITED_MAX];
	unsigned int nr_visited;
	/* Scratch, never held across a recursion: the stack stays small. */
	struct extent scratch;
	u8 *body;
};

/* Whether @name, without a clone suffix, is one of the chain's links. */
static bool is_link(const struct chain *c, const char *name)
{
	size_t len = strcspn(name, ".");
	int i;

	for (i = 0; c->links[i]; i++)
		if (strlen(c->links[i]) == len && !strncmp(c->links[i], name, len))
			return true;
	return false;
}

/*
 * The hooked function itself: a call may also land in its padding, where
 * call depth tracking (retbleed) puts a thunk, or past its ENDBR.
 */
static bool is_hooked(const struct walk *w, unsigned long target)
{
	return target + 16 >= w->hooked && target <= w->hooked + 4;
}

static bool visited(const struct walk *w, unsigned long start)
{
	unsigned int v;

	for (v = 0; v < w->nr_visited; v++)
		if (w->visited[v] == start)
			return true;
	return false;
}

/* Links called from one body, read before the next body replaces it. */
#define LINKS_MAX	8

/* Whether the code at [@start, @start + @size) reaches the hooked function. */
static bool reaches(struct walk *w, unsigned long start, unsigned long size, int depth)
{
	unsigned long link_start[LINKS_MAX], link_size[LINKS_MAX], i;
	unsigned int nr_links = 0, l;

	if (depth > DEPTH_MAX || w->nr_visited == VISITED_MAX)
		return false;
	w->visited[w->nr_visited++] = start;
	size = min_t(unsigned long, size, BODY_MAX);
	if (copy_from_kernel_nofault(w->body, (void *)start, size))
		return false;
	/*
	 * CALL rel32 (E8), JMP rel32 (E9) and Jcc rel32 (0F 80-8F): a call,
	 * a tail call, a conditional tail call. Other bytes may look like
	 * these; only an exact landing on the hooked function or on a link's
	 * start counts, which a stray byte makes only by rare coincidence.
	 */
	for (i = 0; i + 2 <= size; i++) {
		unsigned long len, target;
		u8 op = w->body[i];

		/*
		 * JMP rel8 and Jcc rel8: a tail call the assembler shortened, to
		 * a callee within 127 bytes (no frame pointers: GCC tail-calls).
		 * Only an exact landing on the hooked function counts.
		 */
		if ((op == 0xeb || (op & 0xf0) == 0x70) &&
		    start + i + 2 + (long)(s8)w->body[i + 1] == w->hooked)
			return true;
		if (i + 5 > size)
			continue;
		if (op == 0xe8 || op == 0xe9)
			len = 5;
		else if (op == 0x0f && i + 6 <= size && (w->body[i + 1] & 0xf0) == 0x80)
			len = 6;
		else
			continue;
		target = start + i + len + (long)get_unaligned((s32 *)&w->body[i + len - 4]);
		if (is_hooked(w, target))
			return true;
		if (nr_links < LINKS_MAX && extent_of(target, &w->scratch) &&
		    w->scratch.start == target && is_link(w->chain, w->scratch.name) &&
		    !visited(w, target)) {
			link_start[nr_links] = target;
			link_size[nr_links++] = w->scratch.size;
		}
	}
	for (l = 0; l < nr_links; l++)
		if (!visited(w, link_start[l]) && reaches(w, link_start[l], link_size[l], depth + 1))
			return true;
	return false;
}

/* Whether any traceable function is named @pattern (a glob). */
static bool traceable_match(const char *pattern)
{
	struct ftrace_ops probe = {};
	bool match;

	/* ftrace_set_filter() fails (-EINVAL) when nothing matches. */
	match = !ftrace_set_filter(&probe, (unsigned char *)pattern, strlen(pattern), 1);
	ftrace_free_filter(&probe);
	return match;
}

/*
 * No compiler clone of @c's hooked function(s), anywhere ftrace sees
 * (the glob "name.*"; verify_inject=clone drops the dot, so that the
 * function itself matches, as a clone would).
 */
static int check_no_clone(const struct chain *c)
{
	/* The globs here are short: 1 KiB of KSYM_NAME_LEN buffers is not. */
	char pattern[64], searched[64];
	size_t dot;

	if (!c->clones)
		return 0;
	if (WARN_ON_ONCE(strscpy(pattern, c->clones, sizeof(pattern)) < 0))
		return -EINVAL;
	/* Every glob here ends in ".*". */
	dot = strlen(pattern) - 2;
	if (!strcmp(verify_inject, "clone"))
		strscpy(pattern + dot, "*", sizeof(pattern) - dot);
	/* ftrace parses the glob in place. */
	strscpy(searched, pattern, sizeof(searched));
	if (!traceable_match(pattern))
		return 0;
	pr_err("refusing to arm: %s has a compiler clone (%s): calls through it would not be hooked\n",
	       c->hooked, searched);
	return -ENOEXEC;
}

/* Every entry point of @c in @module reaches the hooked function. */
static int check_chain(const char *module, const struct chain *c, struct walk *w)
{
	const char *const *lists[] = {
		c->entries, c->optional_entries,
		strcmp(verify_inject, c->inject) ? none : c->decoy,
	};
	int l, i;

	w->chain = c;
	if (!lookup(module, c->hooked, &w->scratch)) {
		pr_err("refusing to arm: %s has no function %s\n", module, c->hooked);
		return -ENOENT;
	}
	w->hooked = w->scratch.start;
	for (l = 0; l < ARRAY_SIZE(lists); l++) {
		for (i = 0; lists[l][i]; i++) {
			if (!lookup(module, lists[l][i], &w->scratch)) {
				if (lists[l] == c->optional_entries)
					continue;
				pr_err("refusing to arm: %s has no function %s, a caller of %s\n",
				       module, lists[l][i], c->hooked);
				return -ENOEXEC;
			}
			w->nr_visited = 0;
			if (!reaches(w, w->scratch.start, w->scratch.size, 0)) {
				pr_err("refusing to arm: %s does not call %s (inlined into it?): its %s would not be hooked\n",
				       lists[l][i], c->hooked, c->unseen);
				return -ENOEXEC;
			}
		}
	}
	return 0;
}

/* @module's function @name: where it starts, where ftrace hooks it (0s: none). */
static void function_of(const char *module, const char *name, unsigned long *start,
			unsigned long *ftrace_site)
{
	struct extent *x = kzalloc_obj(*x, GFP_KERNEL);

	*start = 0;
	*ftrace_site = 0;
	if (x && lookup(module, name, x)) {
		*start = x->start;
		*ftrace_site = x->ftrace_site;
	}
	kfree(x);
}

unsigned long msrguard_function_address(const char *module, const char *name)
{
	unsigned long start, site;

	function_of(module, name, &start, &site);
	return start;
}

unsigned long msrguard_ftrace_site(const char *module, const char *name)
{
	unsigned long start, site;

	function_of(module, name, &start, &site);
	return site;
}

int msrguard_verify_hooks(const char *module, const char *const *functions, unsigned int nr)
{
	struct walk *w;
	unsigned int i, c;
	int ret = 0;

	for (i = 0; i < nr && !ret; i++) {
		for (c = 0; c < ARRAY_SIZE(chains); c++)
			if (!strcmp(chains[c].hooked, functions[i]))
				break;
		/* Every hooked function is checked. */
		if (WARN_ON_ONCE(c == ARRAY_SIZE(chains)))
			return -EINVAL;
		ret = check_no_clone(&chains[c]);
	}
	if (ret)
		return ret;
	w = kzalloc_obj(*w, GFP_KERNEL);
	if (!w)
		return -ENOMEM;
	w->body = kmalloc(BODY_MAX, GFP_KERNEL);
	for (i = 0; i < nr && !ret && w->body; i++)
		for (c = 0; c < ARRAY_SIZE(chains) && !ret; c++)
			if (!strcmp(chains[c].hooked, functions[i]))
				ret = check_chain(module, &chains[c], w);
	if (!w->body)
		ret = -ENOMEM;
	kfree(w->body);
	kfree(w);
	if (!ret)
		pr_info("verified (%s): no clone of a hooked function, %s\n", module,
			strcmp(module, "kvm") ?
			"every function updating MSR intercepts calls the hooked one" :
			"every guest MSR entry point calls the hooked ones");
	return ret;
}
