// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's trace event and kernel log line for a recorded event: the
 * macros Rust cannot expand.
 */

#define pr_fmt(fmt) "msrguard: " fmt

#include <linux/printk.h>
#include <linux/sprintf.h>

#include "msrguard_boundary.h"

#define CREATE_TRACE_POINTS
#include "msrguard_trace.h"

void msrguard_report(const struct msrguard_access *a, const struct msrguard_outcome *o)
{
	struct msrguard_names names = {};
	/* " image=name+0xoffset", the base when the image has no name. */
	char image[64] = "";

	/* Most repeats of a flood are shown by neither: name nothing for them. */
	if (!trace_msrguard_access_enabled() && !o->log)
		return;
	msrguard_rust_name(a, &names);
	trace_msrguard_access(a, o, &names);
	/* Rate limited per VM (Rust's answer); coalesced repeats never log. */
	if (!o->log)
		return;
	if (a->image_base && a->image_name[0])
		snprintf(image, sizeof(image), " image=%.40s+%#llx", a->image_name,
			 a->pc - a->image_base);
	else if (a->image_base)
		snprintf(image, sizeof(image), " image=%#llx+%#llx", a->image_base,
			 a->pc - a->image_base);
	pr_warn("seq=%llu %s %s msr=%#x (%s) value=%#llx pc=%#llx%s reason=%s vm=%08x profile=%.16s vmm=%u/%.16s vcpu=%u%s%s\n",
		o->sequence, names.status, a->is_write ? "WRMSR" : "RDMSR",
		a->msr, names.msr, a->value, a->pc, image, names.reason, a->vm_id,
		names.profile, a->vmm_pid, a->vmm_comm, a->vcpu_id,
		(a->flags & MSRGUARD_FLAG_NESTED) ? " nested" : "",
		(a->flags & MSRGUARD_FLAG_OUTSIDE_RUN) ? " outside-run" : "");
}
