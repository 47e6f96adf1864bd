/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The host side of msrguard shared by every test program (msrguard_host.c):
 * modules, records from /dev/msrguard, tracefs. The record layout comes
 * from msrguard_abi.h, generated from rust/core/record.rs.
 */
#ifndef MSRGUARD_HOST_H
#define MSRGUARD_HOST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "msrguard_abi.h"

#define DEVICE_PATH "/dev/msrguard"
#define TRACE_DIR "/sys/kernel/tracing"

/* A record, in the layout of the generated struct msrguard_record. */
struct event {
	uint64_t seq, value, pc, repeat;
	uint32_t msr, pid, vcpu, vm_id;
	uint8_t is_write, status, reason, mode, flags, profile;
	char comm[MSRGUARD_COMM_LEN + 1];
	uint64_t image_base;
	uint32_t image_checksum, image_timestamp;
	char image_name[MSRGUARD_IMAGE_NAME_LEN + 1];
};

int write_file(const char *path, const char *text);
/* A numeric parameter of the loaded msrguard (~0 if it cannot be read). */
uint64_t param_u64(const char *name);
uint64_t le(const uint8_t *p, int bytes);
int open_device(void);
/* Reads one record without blocking: 1, 0 if none, -errno. */
int next_event(int fd, struct event *e);
void drain(int fd);
/* Profiles and VMs, through ioctls: the index of the module's profile @name, or -1. */
int profile_index(int fd, const char *name);
/*
 * The listing's entry of a live VM whose VMM is @vmm and whose id is not
 * @skip (0: none skipped); false if there is none. my_vm(): this process's.
 */
bool vmm_vm(int fd, pid_t vmm, uint32_t skip, struct msrguard_vm_info *out);
bool my_vm(int fd, uint32_t skip, struct msrguard_vm_info *out);
/* Root gives VM @vm_id profile @profile: 0 or -errno. */
int set_profile(int fd, uint32_t vm_id, uint8_t profile);
void trace_clear(void);
/* Finds the tracefs line of event @want->seq and checks its 12550 fields. */
/* An access status as tracefs prints it (from the generated header). */
const char *status_name(uint8_t status);
int check_trace(const struct event *want, const char *status_name, char *why, size_t whylen);
/* How many ftrace callbacks sit on @function (tracefs enabled_functions); 0 if none. */
int ftrace_callbacks(const char *function);

/* Loading modules inside the test VM: 0 or a negative errno. */
int load_kvm(void);		/* kvm_amd, or kvm_intel */
/* The vendor module KVM runs on here: "kvm_amd" if it is loaded, else "kvm_intel". */
const char *kvm_vendor_module(void);
int unload_kvm(void);		/* kvm_amd, kvm_intel and kvm */
int load_module_file(const char *path, const char *params);
/* Unloads msrguard and forgets a noted instance (INSTANCE_NOTE). */
int unload_msrguard(void);

/* The msrguard instance a libkvm test may reuse (selftests/kvm/msrguard_kvm.c). */
#define INSTANCE_NOTE "/run/msrguard-selftest-instance"

#endif
