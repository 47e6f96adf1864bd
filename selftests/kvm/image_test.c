// SPDX-License-Identifier: GPL-2.0
/*
 * Image attribution, as KVM selftests: a real PE DLL (selftests/pe, built
 * with MinGW-w64) loaded into a long-mode guest at a Windows kernel-like
 * address, whose export does a WRMSR the default policy denies. The event
 * must name the image as its file does (ImageBase, CheckSum, TimeDateStamp,
 * the export directory's name), from the cache the second time; Pc outside
 * any image, an unmapped header, the scan bound, a coalesced repeat and
 * corrupted headers give empty fields within the read bound.
 */
#include <asm/msr-index.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"
#include "kselftest_harness.h"

#include "msrguard_kvm.h"

/* Where the DLL is mapped: a Windows kernel-like address. */
#define IMAGE_VA	0xfffff80000200000ull
#define IMAGE_MAX	0x40000
#define PARAM_DIR	"/sys/module/msrguard/parameters/"

/* ---- The guest ----------------------------------------------------------- */

/* The export to call, or 0: a WRMSR in this program's code (in no image). */
static u64 image_fn;
/* Calls (or WRMSRs) per run. */
static u32 image_calls;
/* #GPs taken, by skip_wrmsr(): every #GP of this guest goes there. */
static volatile u32 image_gps;

/* The WRMSR raises #GP: skip its two bytes, as a fixup would. */
static void skip_wrmsr(struct ex_regs *regs)
{
	image_gps++;
	regs->rip += 2;
}

/* GUEST_SYNC's argument: the number of #GPs of the run. */
static void image_guest(void)
{
	for (;;) {
		u32 gps = image_gps, i;

		/* The host may have unmapped or remapped a page of the image. */
		set_cr3(get_cr3());
		for (i = 0; i < image_calls; i++) {
			if (image_fn)
				((void (__attribute__((ms_abi)) *)(void))image_fn)();
			else
				asm volatile("wrmsr" : : "c"(MSR_IA32_UCODE_WRITE), "a"(0x1000), "d"(0));
		}
		GUEST_SYNC(image_gps - gps);
	}
}

/* ---- The DLL, as its file says ------------------------------------------- */

struct pe_file {
	uint8_t *data;
	size_t len;
	uint32_t lfanew, size, headers, checksum, timestamp, export_rva;
};

static uint32_t file32(const struct pe_file *f, size_t off)
{
	return off + 4 <= f->len ? (uint32_t)le(f->data + off, 4) : 0;
}

/* Reads ../pe/msrguard_probe.dll, next to this program's directory: 0 or -errno. */
static int pe_read(struct pe_file *f, char *why, size_t whylen)
{
	char path[4096];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 64);
	uint32_t opt;
	FILE *fp;

	memset(f, 0, sizeof(*f));
	if (n <= 0)
		return -errno;
	path[n] = '\0';
	strcpy(strrchr(path, '/') + 1, "../pe/msrguard_probe.dll");
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
 * Loads the DLL as Windows' loader lays it out, headers and each section
 * at its VirtualAddress, into fresh guest pages mapped at IMAGE_VA; returns
 * the image as the host sees it, or NULL if a section lies outside it.
 */
static uint8_t *pe_load(struct kvm_vm *vm, const struct pe_file *f)
{
	uint32_t nsect = (uint32_t)le(f->data + f->lfanew + 6, 2);
	uint32_t opt_size = (uint32_t)le(f->data + f->lfanew + 20, 2);
	uint32_t pages = (f->size + 4095) / 4096, i, sh = f->lfanew + 24 + opt_size;
	gpa_t gpa = vm_phy_pages_alloc(vm, pages, 0x100000, 0);
	uint8_t *mem = addr_gpa2hva(vm, gpa);

	memset(mem, 0, pages * 4096);
	memcpy(mem, f->data, f->headers);
	for (i = 0; i < nsect; i++, sh += 40) {
		uint32_t va = file32(f, sh + 12), raw_size = file32(f, sh + 16);
		uint32_t raw = file32(f, sh + 20);

		if (va > f->size || raw_size > f->size - va || raw > f->len || raw_size > f->len - raw)
			return NULL;
		memcpy(mem + va, f->data + raw, raw_size);
	}
	for (i = 0; i < pages; i++)
		virt_pg_map(vm, IMAGE_VA + i * 4096, gpa + i * 4096);
	return mem;
}

/* ---- The fixture ----------------------------------------------------------- */

FIXTURE(image) {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	int fd;
	struct pe_file f;
	uint8_t *img;		/* the loaded image, as the host sees it */
	uint64_t fn_va, pc;	/* the export, its WRMSR */
	char name[MSRGUARD_IMAGE_NAME_LEN + 1];
};

FIXTURE_SETUP(image)
{
	char why[512] = "";
	uint32_t fn_rva;

	self->vm = NULL;
	self->fd = -1;
	if (pe_read(&self->f, why, sizeof(why)))
		SKIP(return, "%s", why);
	ASSERT_EQ(0, msrguard_load_or_reuse(POLICY_DEFAULT, ""))
		TH_LOG("cannot load msrguard (MSRGUARD_KO in the environment)");
	self->fd = open_device();
	ASSERT_LE(0, self->fd) TH_LOG("%s: %s", DEVICE_PATH, strerror(errno));
	write_file(TRACE_DIR "/events/msrguard/msrguard_access/enable", "1");

	self->vm = vm_create_with_one_vcpu(&self->vcpu, image_guest);
	vm_install_exception_handler(self->vm, GP_VECTOR, skip_wrmsr);
	self->img = pe_load(self->vm, &self->f);
	ASSERT_NE(NULL, self->img) TH_LOG("a section of the DLL lies outside its image");
	/* The export directory, as loaded: its name, its first function. */
	snprintf(self->name, sizeof(self->name), "%.*s", MSRGUARD_IMAGE_NAME_LEN - 1,
		 (char *)self->img + (uint32_t)le(self->img + self->f.export_rva + 12, 4));
	fn_rva = (uint32_t)le(self->img + (uint32_t)le(self->img + self->f.export_rva + 28, 4), 4);
	self->fn_va = IMAGE_VA + fn_rva;
	for (self->pc = self->fn_va; self->pc < self->fn_va + 32; self->pc++)
		if (!memcmp(self->img + (self->pc - IMAGE_VA), "\x0f\x30", 2))
			break;
	ASSERT_LT(self->pc, self->fn_va + 32) TH_LOG("no WRMSR in the export's first bytes");
}

FIXTURE_TEARDOWN(image)
{
	/* Back to the defaults, so the next program may reuse this msrguard. */
	write_file(PARAM_DIR "image_cache_ms", "10000");
	write_file(PARAM_DIR "image_scan_pages", "4096");
	if (self->vm)
		kvm_vm_free(self->vm);
	if (self->fd >= 0)
		close(self->fd);
	free(self->f.data);
}

static void set_param(const char *name, const char *value)
{
	char path[256];

	snprintf(path, sizeof(path), PARAM_DIR "%s", name);
	write_file(path, value);
}

/* @calls calls of the export (or WRMSRs outside any image, @fn 0): the #GPs. */
static int image_run(struct kvm_vcpu *vcpu, uint64_t fn, uint32_t calls)
{
	image_fn = fn;
	image_calls = calls;
	sync_global_to_guest(vcpu->vm, image_fn);
	sync_global_to_guest(vcpu->vm, image_calls);
	return run_to_sync(vcpu);
}

/* One vetoed access at @fn (0: outside any image) and its record. */
static void image_event(struct __test_metadata *_metadata, FIXTURE_DATA(image) *self,
			uint64_t fn, struct event *e)
{
	drain(self->fd);
	ASSERT_EQ(1, image_run(self->vcpu, fn, 1)) TH_LOG("the WRMSR did not raise #GP");
	/* The record is queued before the vCPU re-enters the guest. */
	ASSERT_EQ(1, next_event(self->fd, e));
	EXPECT_EQ(MSR_IA32_UCODE_WRITE, e->msr);
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

TEST_F(image, export_wrmsr_names_the_dll_as_its_file_does)
{
	uint64_t reads = param_u64("image_reads");
	struct event e;

	image_event(_metadata, self, self->fn_va, &e);
	EXPECT_EQ(self->pc, e.pc);
	EXPECT_EQ(IMAGE_VA, e.image_base);
	EXPECT_NE(0, self->f.checksum);
	EXPECT_NE(0, self->f.timestamp);
	EXPECT_EQ(self->f.checksum, e.image_checksum);
	EXPECT_EQ(self->f.timestamp, e.image_timestamp);
	EXPECT_STREQ(self->name, e.image_name);
	TH_LOG("%s at %#llx: %llu page reads", self->name, (unsigned long long)e.pc,
	       (unsigned long long)(param_u64("image_reads") - reads));
}

TEST_F(image, the_same_access_again_is_a_cache_hit_without_guest_reads)
{
	uint64_t reads, hits;
	struct event e;

	image_event(_metadata, self, self->fn_va, &e);
	reads = param_u64("image_reads");
	hits = param_u64("image_cache_hits");
	image_event(_metadata, self, self->fn_va, &e);
	EXPECT_EQ(IMAGE_VA, e.image_base);
	EXPECT_STREQ(self->name, e.image_name);
	EXPECT_EQ(reads, param_u64("image_reads"));
	EXPECT_EQ(hits + 1, param_u64("image_cache_hits"));
}

/*
 * Only this test's trace and log lines: with MSRGUARD_FRESH_LOAD=1 each
 * fixture loads msrguard anew and sequence numbers start again at 1.
 */
TEST_F(image, trace_event_and_log_line_carry_the_image)
{
	char cmd[512], line[128];
	struct event e;

	trace_clear();
	log_mark();
	image_event(_metadata, self, self->fn_va, &e);
	snprintf(cmd, sizeof(cmd),
		 "grep -q 'seq=%llu .*ImageBase=0x%llx ImageChecksum=0x%x ImageTimestamp=0x%x ImageName=%s ' %s/trace",
		 (unsigned long long)e.seq, IMAGE_VA, self->f.checksum, self->f.timestamp,
		 self->name, TRACE_DIR);
	EXPECT_EQ(0, system(cmd)) TH_LOG("%s", cmd);
	snprintf(line, sizeof(line), " pc=%#llx image=%s+%#llx reason=",
		 (unsigned long long)self->pc, self->name, (unsigned long long)(self->pc - IMAGE_VA));
	EXPECT_EQ(1, log_lines(line)) TH_LOG("no log line with \"%s\"", line);
}

/* This program's own code, mapped where its ELF file says: no PE header below. */
TEST_F(image, pc_outside_any_image_is_empty_and_cached_as_such)
{
	uint64_t reads;
	struct event e;

	image_event(_metadata, self, 0, &e);
	EXPECT_TRUE(image_empty(&e));
	reads = param_u64("image_reads");
	image_event(_metadata, self, 0, &e);
	EXPECT_TRUE(image_empty(&e));
	EXPECT_EQ(reads, param_u64("image_reads")) TH_LOG("the page known to be in no image was read again");
}

TEST_F(image, unmapped_header_page_gives_empty_fields)
{
	uint64_t *pte = vm_get_pte(self->vm, IMAGE_VA);
	struct event e;

	set_param("image_cache_ms", "0");
	*pte &= ~PTE_PRESENT_MASK(&self->vm->mmu);
	image_event(_metadata, self, self->fn_va, &e);
	*pte |= PTE_PRESENT_MASK(&self->vm->mmu);
	EXPECT_TRUE(image_empty(&e)) TH_LOG("base %#llx", (unsigned long long)e.image_base);
}

/* The export's page is one above the header's. */
TEST_F(image, image_scan_pages_bounds_the_search)
{
	uint64_t reads;
	struct event e;

	ASSERT_EQ(1, (self->fn_va - IMAGE_VA) / 4096) TH_LOG("the export is not on the second page");
	set_param("image_cache_ms", "0");
	set_param("image_scan_pages", "1");
	reads = param_u64("image_reads");
	image_event(_metadata, self, self->fn_va, &e);
	reads = param_u64("image_reads") - reads;
	EXPECT_TRUE(image_empty(&e));
	EXPECT_LE(reads, read_bound(1));
	set_param("image_scan_pages", "2");
	image_event(_metadata, self, self->fn_va, &e);
	EXPECT_EQ(IMAGE_VA, e.image_base);
}

/* Without the cache, any lookup would be counted and read the guest. */
TEST_F(image, a_repeat_coalesced_into_the_queued_record_asks_for_no_image)
{
	uint64_t lookups, reads;
	struct event e, extra;

	set_param("image_cache_ms", "0");
	drain(self->fd);
	lookups = param_u64("image_lookups");
	reads = param_u64("image_reads");
	ASSERT_EQ(2, image_run(self->vcpu, self->fn_va, 2));
	ASSERT_EQ(1, next_event(self->fd, &e));
	EXPECT_EQ(0, next_event(self->fd, &extra));
	EXPECT_EQ(1, e.repeat);
	EXPECT_EQ(IMAGE_VA, e.image_base);
	EXPECT_EQ(1, param_u64("image_lookups") - lookups);
	EXPECT_LE(param_u64("image_reads") - reads, read_bound(2));
}

/* Fixed seed: each case's fields are empty or consistent, its reads bounded. */
TEST_F(image, corrupted_headers_give_empty_or_consistent_fields)
{
	uint64_t reads, seed = 0x9e3779b97f4a7c15ull;
	uint8_t pristine[4096];
	struct event e;
	int i, k;

	set_param("image_cache_ms", "0");
	set_param("image_scan_pages", "16");
	memcpy(pristine, self->img, sizeof(pristine));
	for (i = 0; i < 64; i++) {
		int nmut;

		memcpy(self->img, pristine, sizeof(pristine));
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		nmut = 1 + seed % 6;
		for (k = 0; k < nmut; k++) {
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			/* Mostly the DOS and NT headers, sometimes the whole page. */
			self->img[(seed >> 8) % ((seed & 3) ? 0x200 : 4096)] = (uint8_t)(seed >> 32);
		}
		reads = param_u64("image_reads");
		image_event(_metadata, self, self->fn_va, &e);
		reads = param_u64("image_reads") - reads;
		ASSERT_LE(reads, read_bound(16)) TH_LOG("case %d", i);
		ASSERT_TRUE(image_empty(&e) || (e.image_base == IMAGE_VA && e.pc - IMAGE_VA < IMAGE_MAX))
			TH_LOG("case %d: base %#llx name '%s'", i, (unsigned long long)e.image_base,
			       e.image_name);
	}
	memcpy(self->img, pristine, sizeof(pristine));
}

TEST_HARNESS_MAIN
