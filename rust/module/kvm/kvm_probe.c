// SPDX-License-Identifier: GPL-2.0
/*
 * Built with msrguard, never linked into it (Kbuild: always-y): the
 * compiler checks that the KVM functions msrguard hooks have the
 * prototypes its handlers assume, in the very tree msrguard is built
 * against. hooks.c reads their arguments from the registers of
 * the calling convention, zeroes a vetoed read's *data and rewrites the
 * intercept hook's bool: a changed prototype would make it read and write
 * something else. The decision functions are static, so their file is
 * compiled here whole; the intercept functions are declared in the vendor
 * headers. A mismatch fails the build, naming the function.
 */

#include "msrs.c"
#include "svm/svm.h"

#ifdef MSRGUARD_PROBE_INJECT_PROTOTYPE
/* Test only: the prototype msrguard would assume if kvm changed the data argument. */
#define DATA_ARG u64
#else
#define DATA_ARG u64 *
#endif

#define HOOK_PROTOTYPE(fn, type)						\
	static_assert(__builtin_types_compatible_p(typeof(fn), type),		\
		      #fn " does not have the prototype hooks.c assumes: " __stringify(type))

HOOK_PROTOTYPE(kvm_get_msr_ignored_check, int(struct kvm_vcpu *, u32, DATA_ARG, bool));
HOOK_PROTOTYPE(kvm_set_msr_ignored_check, int(struct kvm_vcpu *, u32, u64, bool));
HOOK_PROTOTYPE(kvm_arch_vcpu_precreate, int(struct kvm *, unsigned int));
HOOK_PROTOTYPE(svm_set_intercept_for_msr, void(struct kvm_vcpu *, u32, int, bool));
HOOK_PROTOTYPE(vmx_set_intercept_for_msr, void(struct kvm_vcpu *, u32, int, bool));
