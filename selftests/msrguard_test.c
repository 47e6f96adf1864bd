// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's VM test suite, run inside the test VM as root (see
 * scripts/test.sh). TAP output through the kernel's kselftest.h; a final
 * "N passed, N failed" line for CI.
 *
 * Every guard case has a KVM guest do one access and checks what the guest
 * saw (#GP, value, success) and the exact event read back from
 * /dev/msrguard and from tracefs, with Pc equal to the instruction's
 * address. The record layout comes from msrguard_abi.h, generated from
 * rust/core/record.rs.
 *
 * What is left here needs this real-mode harness: the
 * guard tables in real mode (events with mode=real and 16-bit Pcs; the same
 * tables run by selftests/msrguard_vmx_test under Bochs), long mode, image
 * attribution. Everything else moved to the KVM-selftest suite in
 * selftests/kvm/ (guard table on every path, nested guests, device, module
 * lifetime, the tool, lock).
 *
 * Usage: msrguard_test MODULE.ko
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest.h"
#include "guard.h"
#include "guard_suite.h"

static const char *module_path;

/* ---- Helpers ------------------------------------------------------------ */

static int load_module(const char *params)
{
	return load_module_file(module_path, params);
}

/* ---- Phases ------------------------------------------------------------- */

/* Without msrguard, KVM accepts what the guard cases show msrguard refusing. */
static void test_baseline(struct suite *s)
{
	struct guest_result r1, r2, r3, r4;
	int ret;

	ret = guest_access(s, guest_rdmsr, MSR_IA32_CR_PAT, 0, &r1) ||
	      guest_access(s, guest_wrmsr, MSR_IA32_UCODE_WRITE, 0x1000, &r2) ||
	      guest_access(s, guest_rdmsr, MSR_FS_BASE, 0, &r3) ||
	      guest_access(s, guest_rdmsr, MSR_IA32_MISC_ENABLE, 0, &r4);
	if (ret) {
		ksft_test_result_fail("baseline without msrguard: KVM_RUN failed\n");
		return;
	}
	report_baseline(s, &r1, &r2, &r3, &r4);
}

/* ---- Image attribution: a real PE DLL in a long-mode guest ------------- */

/* Where the DLL is mapped: a Windows kernel-like address, and its memory. */
#define IMAGE_VA	0xfffff80000200000ull
#define IMAGE_GPA	0x40000ull
#define IMAGE_MAX	(GUEST_MEM_SIZE - IMAGE_GPA)
#define PARAM_DIR	"/sys/module/msrguard/parameters/"

/* The DLL's file, and what its headers say (read here, from the file). */
struct pe_file {
	uint8_t *data;
	size_t len;
	uint32_t lfanew, size, headers, checksum, timestamp, export_rva;
};

static uint32_t file32(const struct pe_file *f, size_t off)
{
	return off + 4 <= f->len ? (uint32_t)le(f->data + off, 4) : 0;
}

/* Reads selftests/pe/msrguard_probe.dll, next to this program; 0 or -errno. */
static int pe_read(struct pe_file *f, char *why, size_t whylen)
{
	char path[4096];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 64);
	FILE *fp;
	uint32_t opt;

	memset(f, 0, sizeof(*f));
	if (n <= 0)
		return -errno;
	path[n] = '\0';
	strcpy(strrchr(path, '/') + 1, "pe/msrguard_probe.dll");
	fp = fopen(path, "re");
	if (!fp) {
		snprintf(why, whylen, "%.300s: %s (built by selftests/Makefile with MinGW-w64)", path,
			 strerror(errno));
		return -ENOENT;
	}
	f->data = malloc(IMAGE_MAX);
	f->len = f->data ? fread(f->data, 1, IMAGE_MAX, fp) : 0;
	fclose(fp);
	f->lfanew = file32(f, 0x3c);
	opt = f->lfanew + 24;
	f->timestamp = file32(f, f->lfanew + 8);
	f->size = file32(f, opt + 56);
	f->headers = file32(f, opt + 60);
	f->checksum = file32(f, opt + 64);
	f->export_rva = file32(f, opt + 112);	/* PE32+ data directory 0 */
	if (f->len < 0x400 || memcmp(f->data, "MZ", 2) || !f->size || f->size > IMAGE_MAX ||
	    f->headers > f->len || !f->export_rva) {
		snprintf(why, whylen, "%.300s: not the expected PE32+ DLL", path);
		return -EINVAL;
	}
	return 0;
}

/*
 * Loads the DLL as Windows' loader lays it out: headers and each section at
 * IMAGE_GPA + VirtualAddress, every page of the image mapped at IMAGE_VA.
 */
static int pe_load(struct vm *vm, const struct pe_file *f)
{
	uint32_t nsect = (uint32_t)le(f->data + f->lfanew + 6, 2);
	uint32_t opt_size = (uint32_t)le(f->data + f->lfanew + 20, 2);
	uint8_t *mem = vm->mem + IMAGE_GPA;
	uint32_t i, sh = f->lfanew + 24 + opt_size;
	int ret = 0;

	memset(mem, 0, f->size);
	memcpy(mem, f->data, f->headers);
	for (i = 0; i < nsect; i++, sh += 40) {
		uint32_t va = file32(f, sh + 12), raw_size = file32(f, sh + 16);
		uint32_t raw = file32(f, sh + 20);

		if (va > f->size || raw_size > f->size - va || raw > f->len || raw_size > f->len - raw)
			return -EINVAL;
		memcpy(mem + va, f->data + raw, raw_size);
	}
	for (i = 0; i < f->size && !ret; i += 4096)
		ret = vm_map_page(vm, IMAGE_VA + i, IMAGE_GPA + i);
	return ret;
}

static void set_param(const char *name, const char *value)
{
	char path[256];

	snprintf(path, sizeof(path), PARAM_DIR "%s", name);
	write_file(path, value);
}

/* Runs guest code at @entry (guest.S) once and reads the event it caused. */
static int image_event(struct suite *s, struct vm *v, const char *entry, struct event *e)
{
	struct guest_result res;
	int ret;

	drain(s->fd);
	ret = vm_run_entry(v, entry, MSR_IA32_UCODE_WRITE, 0x1000, 0, &res);
	if (ret)
		return ret;
	if (res.exit_reason != KVM_EXIT_HLT || res.fault_vector != GP_VECTOR)
		return -EPROTO;
	/* The record is queued before the vCPU re-enters the guest. */
	return next_event(s->fd, e) == 1 ? 0 : -ENOMSG;
}

static bool image_empty(const struct event *e)
{
	return !e->image_base && !e->image_checksum && !e->image_timestamp && !e->image_name[0];
}

/* Largest number of guest page reads one search of @pages pages may do. */
static uint64_t read_bound(uint64_t pages)
{
	/* Each read is at most PE_MAX_READ bytes: at most two pages. */
	return 2 * (pages * MSRGUARD_PE_READS_PER_PAGE + MSRGUARD_PE_READS_PER_IMAGE);
}

#define IMAGE_TESTS 8

static void test_image_attribution(struct suite *s)
{
	struct pe_file f;
	struct vm v;
	struct event e;
	char why[512] = "", cmd[1024], name[MSRGUARD_IMAGE_NAME_LEN + 1] = "";
	uint64_t fn_va, pc, reads, hits, lookups, seed = 0x9e3779b97f4a7c15ull;
	struct guest_result res;
	struct event extra;
	int got, more;
	uint8_t *img, pristine[4096];
	uint32_t fn_rva;
	int ret, i, ok, bad;

	ret = pe_read(&f, why, sizeof(why));
	if (ret) {
		for (i = 0; i < IMAGE_TESTS; i++)
			ksft_test_result_skip("image attribution: %s\n", why);
		free(f.data);
		return;
	}
	ret = vm_create(&v);
	if (!ret)
		ret = vm_set_mode(&v, GUEST_LONG_MODE);
	if (!ret)
		ret = pe_load(&v, &f);
	if (ret) {
		for (i = 0; i < IMAGE_TESTS; i++)
			ksft_test_result_fail("image attribution: no guest with the DLL: %s\n", strerror(-ret));
		free(f.data);
		return;
	}
	img = v.mem + IMAGE_GPA;
	/* The export directory, as loaded: its name, its first function. */
	strncpy(name, (char *)img + (uint32_t)le(img + f.export_rva + 12, 4), MSRGUARD_IMAGE_NAME_LEN - 1);
	fn_rva = (uint32_t)le(img + (uint32_t)le(img + f.export_rva + 28, 4), 4);
	fn_va = IMAGE_VA + fn_rva;
	memcpy(v.mem + GUEST_CALL_TARGET_GPA, &fn_va, 8);
	for (pc = fn_va; pc < fn_va + 32 && memcmp(img + (pc - IMAGE_VA), "\x0f\x30", 2); pc++)
		;
	set_param("image_cache_ms", "10000");

	/* 1: the export's WRMSR. */
	reads = param_u64("image_reads");
	ret = image_event(s, &v, guest_call64, &e);
	ok = !ret && e.msr == MSR_IA32_UCODE_WRITE && e.pc == pc && e.image_base == IMAGE_VA &&
	     e.image_checksum == f.checksum && e.image_timestamp == f.timestamp &&
	     !strcmp(e.image_name, name) && f.checksum && f.timestamp;
	ksft_test_result(ok, "image: WRMSR in a MinGW-w64 DLL's export at %#llx: ImageBase %#llx, CheckSum %#x, TimeDateStamp %#x, ImageName %s as in the file (got %d: pc %#llx base %#llx %#x %#x '%s'; %llu page reads)\n",
			 (unsigned long long)pc, IMAGE_VA, f.checksum, f.timestamp, name, ret,
			 (unsigned long long)e.pc, (unsigned long long)e.image_base, e.image_checksum,
			 e.image_timestamp, e.image_name,
			 (unsigned long long)(param_u64("image_reads") - reads));

	/* 2: again, from the cache. */
	reads = param_u64("image_reads");
	hits = param_u64("image_cache_hits");
	ret = image_event(s, &v, guest_call64, &e);
	ok = !ret && e.image_base == IMAGE_VA && !strcmp(e.image_name, name) &&
	     param_u64("image_reads") == reads && param_u64("image_cache_hits") == hits + 1;
	ksft_test_result(ok, "image: the same access again is a cache hit with the same fields and no guest read (ret %d, reads +%llu)\n",
			 ret, (unsigned long long)(param_u64("image_reads") - reads));

	/* 3: trace event and log line. */
	snprintf(cmd, sizeof(cmd),
		 "grep -q 'seq=%llu .*ImageBase=0x%llx ImageChecksum=0x%x ImageTimestamp=0x%x ImageName=%s ' %s/trace && dmesg | grep -q 'seq=%llu .* pc=0x%llx image=%s+0x%llx reason='",
		 (unsigned long long)e.seq, IMAGE_VA, f.checksum, f.timestamp, name, TRACE_DIR,
		 (unsigned long long)e.seq, (unsigned long long)pc, name,
		 (unsigned long long)(pc - IMAGE_VA));
	ksft_test_result(!system(cmd), "image: trace event fields and log line image=%s+0x%llx\n",
			 name, (unsigned long long)(pc - IMAGE_VA));

	/*
	 * 4: Pc outside any image (guest.S's code, identity-mapped); again,
	 * the page is known to be in none: no guest read.
	 */
	ret = image_event(s, &v, guest_wrmsr, &e);
	ok = !ret && image_empty(&e);
	reads = param_u64("image_reads");
	ret = ret ?: image_event(s, &v, guest_wrmsr, &e);
	reads = param_u64("image_reads") - reads;
	ksft_test_result(ok && !ret && image_empty(&e) && !reads,
			 "image: Pc outside any image: empty fields; again from the same page: no guest read (ret %d, base %#llx, reads %llu)\n",
			 ret, (unsigned long long)e.image_base, (unsigned long long)reads);

	/* 5: the header page unmapped (no cache from here on). */
	set_param("image_cache_ms", "0");
	vm_map_page(&v, IMAGE_VA, (uint64_t)-1);
	ret = image_event(s, &v, guest_call64, &e);
	vm_map_page(&v, IMAGE_VA, IMAGE_GPA);
	ksft_test_result(!ret && image_empty(&e),
			 "image: header page unmapped: empty fields (ret %d, base %#llx)\n", ret,
			 (unsigned long long)e.image_base);

	/* 6: the scan bound: the header is one page below Pc's page. */
	set_param("image_scan_pages", "1");
	reads = param_u64("image_reads");
	ret = image_event(s, &v, guest_call64, &e);
	reads = param_u64("image_reads") - reads;
	ok = !ret && image_empty(&e) && reads <= read_bound(1);
	set_param("image_scan_pages", "2");
	ret = ret ?: image_event(s, &v, guest_call64, &e);
	ok = ok && !ret && e.image_base == IMAGE_VA;
	ksft_test_result(ok, "image: image_scan_pages=1 misses a header one page down (%llu page reads, bound %llu), 2 finds it\n",
			 (unsigned long long)reads, (unsigned long long)read_bound(1));

	/*
	 * 7: a repeat coalesced into its VM's queued record asks for no image
	 * (without the cache, any lookup would be counted and read the guest).
	 */
	drain(s->fd);
	lookups = param_u64("image_lookups");
	reads = param_u64("image_reads");
	ret = vm_run_entry(&v, guest_call64, MSR_IA32_UCODE_WRITE, 0x1000, 0, &res);
	if (!ret)
		ret = vm_run_entry(&v, guest_call64, MSR_IA32_UCODE_WRITE, 0x1000, 0, &res);
	lookups = param_u64("image_lookups") - lookups;
	reads = param_u64("image_reads") - reads;
	got = ret ? ret : next_event(s->fd, &e);
	more = got == 1 ? next_event(s->fd, &extra) : 0;
	ok = got == 1 && !more && e.repeat == 1 && e.image_base == IMAGE_VA && lookups == 1 &&
	     reads <= read_bound(2);
	ksft_test_result(ok, "image: a repeat coalesced into the queued record asks for no image (records %d+%d, repeat %llu, base %#llx, lookups %llu, reads %llu)\n",
			 got, more, (unsigned long long)e.repeat, (unsigned long long)e.image_base,
			 (unsigned long long)lookups, (unsigned long long)reads);

	/* 8: fuzzed headers, fixed seed: empty or consistent, bounded, no splat. */
	set_param("image_scan_pages", "16");
	memcpy(pristine, img, sizeof(pristine));
	bad = 0;
	for (i = 0; i < 64 && !bad; i++) {
		int k, nmut;

		memcpy(img, pristine, sizeof(pristine));
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		nmut = 1 + seed % 6;
		for (k = 0; k < nmut; k++) {
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			/* Mostly the DOS and NT headers, sometimes the whole page. */
			img[(seed >> 8) % ((seed & 3) ? 0x200 : 4096)] = (uint8_t)(seed >> 32);
		}
		reads = param_u64("image_reads");
		ret = image_event(s, &v, guest_call64, &e);
		reads = param_u64("image_reads") - reads;
		if (ret || reads > read_bound(16) ||
		    !(image_empty(&e) || (e.image_base == IMAGE_VA && e.pc - IMAGE_VA < 0x100000)))
			bad = i + 1;
	}
	memcpy(img, pristine, sizeof(pristine));
	ksft_test_result(!bad, "image: 64 randomly corrupted headers (fixed seed): empty or consistent fields, at most %llu page reads each%s\n",
			 (unsigned long long)read_bound(16), bad ? " (FAILED at one)" : "");
	if (bad)
		ksft_print_msg("fuzz case %d: ret %d reads %llu base %#llx name '%s'\n", bad - 1, ret,
			       (unsigned long long)reads, (unsigned long long)e.image_base, e.image_name);

	set_param("image_scan_pages", "4096");
	set_param("image_cache_ms", "10000");
	vm_destroy(&v);
	free(f.data);
}

int main(int argc, char **argv)
{
	struct suite s = { .fd = -1 };
	int failed, ret;

	if (argc != 2) {
		fprintf(stderr, "usage: %s MODULE.ko\n", argv[0]);
		return 2;
	}
	module_path = argv[1];

	ksft_print_header();
	/* baseline 1, the real-mode tables, long mode, image attribution */
	ksft_set_plan(1 + GUARD_EXIT_CASES + GUARD_EMULATOR_CASES + 3 + IMAGE_TESTS);

	ret = load_kvm();
	if (!ret)
		ret = vm_create(&s.vm);
	if (ret)
		ksft_exit_fail_msg("no KVM guest inside the VM: %s\n", strerror(-ret));
	test_baseline(&s);

	ret = load_module("");
	s.fd = ret ? -1 : open_device();
	if (s.fd < 0)
		ksft_exit_fail_msg("cannot load msrguard.ko and open %s\n", DEVICE_PATH);
	write_file(TRACE_DIR "/events/msrguard/msrguard_access/enable", "1");

	test_guard_cases(&s);
	test_emulator_path(&s);
	test_long_mode(&s);
	test_image_attribution(&s);
	vm_destroy(&s.vm);
	close(s.fd);
	if (unload_msrguard())
		ksft_print_msg("msrguard stays loaded: %s\n", strerror(errno));

	ksft_print_cnts();
	failed = ksft_get_fail_cnt() + ksft_get_error_cnt();
	printf("%u passed, %u failed\n", ksft_get_pass_cnt(), failed);
	return failed ? KSFT_FAIL : KSFT_PASS;
}
