// SPDX-License-Identifier: GPL-2.0
/*
 * The host side of msrguard shared by every test program: loading and
 * unloading the modules, reading records from /dev/msrguard, tracefs. No
 * KVM here, so the libkvm suite (selftests/kvm/) links it too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "msrguard_host.h"

int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	ssize_t n;
	int err;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	err = n < 0 ? -errno : 0;
	close(fd);
	return err;
}

uint64_t param_u64(const char *name)
{
	char path[256], buf[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/sys/module/msrguard/parameters/%s", name);
	f = fopen(path, "re");
	if (!f)
		return ~0ull;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return strtoull(buf, NULL, 0);
}

uint64_t le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	int i;

	for (i = bytes - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void decode(const struct msrguard_record *rec, struct event *e)
{
	memset(e, 0, sizeof(*e));
	e->seq = rec->sequence;
	e->value = rec->msr_value;
	e->pc = rec->pc;
	e->repeat = rec->repeat;
	e->msr = rec->msr;
	e->pid = rec->vmm_pid;
	e->vcpu = rec->vcpu_id;
	e->vm_id = rec->vm_id;
	e->is_write = rec->is_write;
	e->status = rec->access_status;
	e->reason = rec->reason;
	e->mode = rec->guest_mode;
	e->flags = rec->flags;
	e->profile = rec->profile;
	memcpy(e->comm, rec->vmm_comm, MSRGUARD_COMM_LEN);
	e->image_base = rec->image_base;
	e->image_checksum = rec->image_checksum;
	e->image_timestamp = rec->image_timestamp;
	memcpy(e->image_name, rec->image_name, MSRGUARD_IMAGE_NAME_LEN);
}

/* Reads one record without blocking: 1, 0 if none, -errno. */
int next_event(int fd, struct event *e)
{
	struct msrguard_record rec;
	ssize_t n = read(fd, &rec, sizeof(rec));

	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	if (n != sizeof(rec))
		return -EIO;
	if (rec.abi_version != MSRGUARD_ABI_VERSION)
		return -EPROTO;
	decode(&rec, e);
	return 1;
}

void drain(int fd)
{
	struct event e;

	while (next_event(fd, &e) > 0)
		;
}

int open_device(void)
{
	return open(DEVICE_PATH, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
}

int profile_index(int fd, const char *name)
{
	struct msrguard_profile p;
	uint32_t i;

	for (i = 0;; i++) {
		memset(&p, 0, sizeof(p));
		p.index = i;
		if (ioctl(fd, MSRGUARD_IOC_PROFILE, &p))
			return -1;
		if (!strncmp(p.name, name, sizeof(p.name)))
			return (int)i;
	}
}

bool vmm_vm(int fd, pid_t vmm, uint32_t skip, struct msrguard_vm_info *out)
{
	struct msrguard_vm_info v;
	uint32_t i;

	for (i = 0;; i++) {
		memset(&v, 0, sizeof(v));
		v.position = i;
		if (ioctl(fd, MSRGUARD_IOC_VM, &v))
			return false;
		if (v.vmm_pid == (uint32_t)vmm && v.vm_id != skip) {
			*out = v;
			return true;
		}
	}
}

bool my_vm(int fd, uint32_t skip, struct msrguard_vm_info *out)
{
	return vmm_vm(fd, getpid(), skip, out);
}

int set_profile(int fd, uint32_t vm_id, uint8_t profile)
{
	struct msrguard_set_profile s = { .vm_id = vm_id, .profile = profile };

	return ioctl(fd, MSRGUARD_IOC_SET_PROFILE, &s) ? -errno : 0;
}

void trace_clear(void)
{
	write_file(TRACE_DIR "/trace", "");
}

/* Finds the tracefs line of event @want->seq and checks its 12550 fields. */
const char *status_name(uint8_t status)
{
	static const struct {
		uint8_t status;
		const char *name;
	} names[] = { MSRGUARD_STATUS_SYMBOLS };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].status == status)
			return names[i].name;
	return "?";
}

int check_trace(const struct event *want, const char *status_name, char *why, size_t whylen)
{
	char line[1024], key[64], field[128];
	FILE *f = fopen(TRACE_DIR "/trace", "r");
	int found = 0;

	if (!f) {
		snprintf(why, whylen, "cannot read tracefs: %s", strerror(errno));
		return -1;
	}
	snprintf(key, sizeof(key), "seq=%llu ", (unsigned long long)want->seq);
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, "msrguard_access:") || !strstr(line, key))
			continue;
		found = 1;
		snprintf(field, sizeof(field), "Msr=0x%x ", want->msr);
		if (!strstr(line, field))
			break;
		snprintf(field, sizeof(field), "IsWrite=%u ", want->is_write);
		if (!strstr(line, field))
			break;
		snprintf(field, sizeof(field), "MsrValue=0x%llx ", (unsigned long long)want->value);
		if (!strstr(line, field))
			break;
		snprintf(field, sizeof(field), "AccessStatus=%s ", status_name);
		if (!strstr(line, field))
			break;
		snprintf(field, sizeof(field), "Pc=0x%llx ", (unsigned long long)want->pc);
		if (!strstr(line, field))
			break;
		if (!strstr(line, "ImageBase=0x0 ") || !strstr(line, "ImageName= "))
			break;
		fclose(f);
		return 0;
	}
	fclose(f);
	if (found)
		snprintf(why, whylen, "tracefs line differs: %.300s", line);
	else
		snprintf(why, whylen, "no tracefs line for seq %llu", (unsigned long long)want->seq);
	return -1;
}

/*
 * How many ftrace callbacks are attached to @function (its "(N)" count in
 * tracefs' enabled_functions); 0 if none.
 */
int ftrace_callbacks(const char *function)
{
	FILE *f = fopen(TRACE_DIR "/enabled_functions", "re");
	char line[512];
	size_t len = strlen(function);
	int n = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, function, len) && line[len] == ' ' &&
		    sscanf(strchr(line, '(') ? strchr(line, '(') : "", "(%d)", &n) == 1)
			break;
	fclose(f);
	return n;
}

int load_kvm(void)
{
	return system("modprobe kvm_amd 2>/dev/null || modprobe kvm_intel 2>/dev/null") ? -ENODEV : 0;
}

const char *kvm_vendor_module(void)
{
	return access("/sys/module/kvm_amd", F_OK) ? "kvm_intel" : "kvm_amd";
}

int unload_kvm(void)
{
	return system("modprobe -r kvm_amd kvm_intel kvm 2>/dev/null") ? -EBUSY : 0;
}

int load_module_file(const char *path, const char *params)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, params, 0);
	ret = ret ? -errno : 0;
	close(fd);
	return ret;
}

int unload_msrguard(void)
{
	unlink(INSTANCE_NOTE);
	return syscall(SYS_delete_module, "msrguard", O_NONBLOCK) ? -errno : 0;
}
