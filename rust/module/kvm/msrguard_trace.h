/* SPDX-License-Identifier: GPL-2.0 */
/*
 * msrguard's trace events: one `msrguard:msrguard_access` event per vetoed
 * (or, in audit mode, reported) guest MSR access, with the fields of
 * Windows event 12550 and the VM's identity.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM msrguard

#if !defined(_MSRGUARD_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _MSRGUARD_TRACE_H

#include <linux/tracepoint.h>

#include "msrguard_boundary.h"

TRACE_EVENT(msrguard_access,
	TP_PROTO(const struct msrguard_access *a, const struct msrguard_outcome *o,
		 const struct msrguard_names *names),
	TP_ARGS(a, o, names),
	TP_STRUCT__entry(
		__field(u64, seq)
		__field(u64, repeat)
		__field(u32, vm_id)
		__field(u8, flags)
		__field(u32, msr)
		__field(u8, is_write)
		__field(u64, msr_value)
		__field(u8, access_status)
		__field(u8, reason)
		__array(char, msr_name, 40)
		__field(u64, pc)
		__field(u64, image_base)
		__field(u32, image_checksum)
		__field(u32, image_timestamp)
		__string(image_name, a->image_name)
		__field(u32, vmm_pid)
		__array(char, vmm_comm, 16)
		__field(u32, vcpu_id)
		__field(u8, guest_cpl)
		__field(u8, guest_mode)
		__array(char, profile, 16)
	),
	TP_fast_assign(
		__entry->seq = o->sequence;
		__entry->repeat = o->repeat;
		__entry->vm_id = a->vm_id;
		__entry->flags = a->flags;
		__entry->msr = a->msr;
		__entry->is_write = a->is_write;
		__entry->msr_value = a->value;
		__entry->access_status = a->status;
		__entry->reason = a->reason;
		memcpy(__entry->msr_name, names->msr, 40);
		__entry->pc = a->pc;
		__entry->image_base = a->image_base;
		__entry->image_checksum = a->image_checksum;
		__entry->image_timestamp = a->image_timestamp;
		__assign_str(image_name);
		__entry->vmm_pid = a->vmm_pid;
		memcpy(__entry->vmm_comm, a->vmm_comm, 16);
		__entry->vcpu_id = a->vcpu_id;
		__entry->guest_cpl = a->guest_cpl;
		__entry->guest_mode = a->guest_mode;
		memcpy(__entry->profile, names->profile, 16);
	),
	TP_printk("seq=%llu repeat=%llu vm=%08x flags=%#x Msr=0x%x (%s) IsWrite=%u MsrValue=0x%llx AccessStatus=%s reason=%s Pc=0x%llx ImageBase=0x%llx ImageChecksum=0x%x ImageTimestamp=0x%x ImageName=%s vmm_pid=%u vmm_comm=%s vcpu=%u cpl=%u mode=%s profile=%s",
		  __entry->seq, __entry->repeat, __entry->vm_id, __entry->flags, __entry->msr, __entry->msr_name, __entry->is_write,
		  __entry->msr_value,
		  __print_symbolic(__entry->access_status, MSRGUARD_STATUS_SYMBOLS),
		  __print_symbolic(__entry->reason, MSRGUARD_REASON_SYMBOLS),
		  __entry->pc, __entry->image_base, __entry->image_checksum,
		  __entry->image_timestamp, __get_str(image_name),
		  __entry->vmm_pid, __entry->vmm_comm, __entry->vcpu_id,
		  __entry->guest_cpl,
		  __print_symbolic(__entry->guest_mode, MSRGUARD_MODE_SYMBOLS), __entry->profile)
);

#endif /* _MSRGUARD_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE msrguard_trace
#include <trace/define_trace.h>
