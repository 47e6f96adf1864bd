// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's module lifetime as KVM selftests: load and unload, bad
 * parameters, the hooks it arms, a reader pinning it, loading it before
 * KVM, the hook verification refusing injected mismatches, the vendor
 * module held with a VM msrguard holds, and VMMs killed with image
 * lookups pending. Each test starts and ends with msrguard unloaded and
 * kvm_amd (or kvm_intel) loaded. The lock parameter, which pins the module
 * until reboot, is lock_test's, which runs last in its boot.
 */
#include <asm/msr-index.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"
#include "kselftest_harness.h"

#include "msrguard_guest.h"
#include "msrguard_kvm.h"

#define MODE_PARAM "/sys/module/msrguard/parameters/mode"

FIXTURE(lifetime) {};
FIXTURE_SETUP(lifetime)
{
	log_mark();
	ASSERT_EQ(0, msrguard_load(POLICY_NONE, NULL));
}
FIXTURE_TEARDOWN(lifetime)
{
	unload_msrguard();
	if (access("/dev/kvm", F_OK))
		load_kvm();
}

TEST_F(lifetime, load_makes_a_0600_device_and_unload_removes_it)
{
	struct stat st;

	ASSERT_EQ(0, msrguard_load(POLICY_DEFAULT, NULL));
	ASSERT_EQ(0, stat(DEVICE_PATH, &st));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(0600, st.st_mode & 07777);
	EXPECT_EQ(GP_VECTOR, ucode_write_vector());
	ASSERT_EQ(0, unload_msrguard());
	EXPECT_NE(0, stat(DEVICE_PATH, &st));
	EXPECT_EQ(ENOENT, errno);
	/* Unloaded means disarmed: KVM accepts the write again. */
	EXPECT_EQ(0, ucode_write_vector());
}

TEST_F(lifetime, bad_parameters_fail_the_load_cleanly)
{
	EXPECT_EQ(-EINVAL, msrguard_load(POLICY_DEFAULT, "ring_records=0"));
	EXPECT_EQ(-EINVAL, msrguard_load(POLICY_DEFAULT, "mode=bogus"));
	EXPECT_EQ(0, msrguard_load(POLICY_DEFAULT, NULL));
	EXPECT_EQ(0, unload_msrguard());
}

/*
 * One hook on an allowed access: in enforce mode only the decision
 * ftrace_ops sits on KVM's access functions; audit mode adds the
 * read-completion fprobe while it lasts; unload leaves nothing behind.
 */
TEST_F(lifetime, hooks_one_per_access_function_plus_one_in_audit_none_after_unload)
{
	const char *get = "kvm_get_msr_ignored_check", *set = "kvm_set_msr_ignored_check";

	ASSERT_EQ(0, msrguard_load(POLICY_DEFAULT, NULL));
	EXPECT_EQ(1, ftrace_callbacks(get));
	EXPECT_EQ(1, ftrace_callbacks(set));
	ASSERT_EQ(0, write_file(MODE_PARAM, "audit"));
	EXPECT_EQ(2, ftrace_callbacks(get));
	ASSERT_EQ(0, write_file(MODE_PARAM, "enforce"));
	EXPECT_EQ(1, ftrace_callbacks(get));
	ASSERT_EQ(0, unload_msrguard());
	EXPECT_EQ(0, ftrace_callbacks(get));
	EXPECT_EQ(0, ftrace_callbacks(set));
}

struct blocked_reader {
	int fd;
	ssize_t n;
};

static void *blocking_read(void *arg)
{
	struct blocked_reader *r = arg;
	struct msrguard_record rec;

	r->n = read(r->fd, &rec, sizeof(rec));
	return NULL;
}

/* The open file pins the module: rmmod is refused, the reader is unharmed. */
TEST_F(lifetime, unload_while_a_reader_blocks_is_refused)
{
	struct blocked_reader r = { .n = -2 };
	pthread_t t;

	ASSERT_EQ(0, msrguard_load(POLICY_DEFAULT, NULL));
	r.fd = open(DEVICE_PATH, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, r.fd);
	ASSERT_EQ(0, pthread_create(&t, NULL, blocking_read, &r));
	usleep(200 * 1000);
	/* delete_module() says "in use" with EWOULDBLOCK (== EAGAIN). */
	EXPECT_EQ(-EWOULDBLOCK, unload_msrguard());
	EXPECT_EQ(GP_VECTOR, ucode_write_vector());
	pthread_join(t, NULL);
	close(r.fd);
	EXPECT_EQ(MSRGUARD_RECORD_SIZE, r.n);
}

/* msrguard before kvm: hooks arm when kvm loads, disarm when it goes. */
TEST_F(lifetime, loaded_before_kvm_vetoes_once_kvm_loads_and_after_a_kvm_reload)
{
	struct event e;
	int fd;

	ASSERT_EQ(0, unload_kvm());
	ASSERT_EQ(0, msrguard_load(POLICY_DEFAULT, NULL));
	ASSERT_EQ(0, load_kvm());
	fd = open_device();
	ASSERT_LE(0, fd);
	EXPECT_EQ(GP_VECTOR, ucode_write_vector());
	EXPECT_EQ(1, next_event(fd, &e));
	EXPECT_EQ(MSR_IA32_UCODE_WRITE, e.msr);
	close(fd);
	/* kvm goes and comes back while msrguard stays. */
	ASSERT_EQ(0, unload_kvm());
	ASSERT_EQ(0, load_kvm());
	EXPECT_EQ(GP_VECTOR, ucode_write_vector());
}

/* Loading with @params is refused, with one new log line containing @line. */
static void load_refused(struct __test_metadata *_metadata, const char *params, const char *line)
{
	int before = log_lines(line);

	EXPECT_NE(0, msrguard_load(POLICY_DEFAULT, params));
	EXPECT_NE(0, access("/sys/module/msrguard", F_OK)) TH_LOG("loaded with %s", params);
	EXPECT_EQ(before + 1, log_lines(line)) TH_LOG("no log line \"%s\"", line);
}

/*
 * msrguard verifies what it hooks before arming (rust/module/kvm/verify.c): a
 * clone of a hooked function, or an entry point that does not call it
 * (kvm's MSR paths, or the vendor's intercept updates), refuses the load
 * with a line naming it (each injected with verify_inject); KVM as built
 * passes, and says so.
 */
TEST_F(lifetime, hooks_verified_before_arming)
{
	const char *verified = "msrguard: verified (kvm): no clone of a hooked function, "
			       "every guest MSR entry point calls the hooked ones";
	const char *vendor = kvm_vendor_module();
	/* svm_ or vmx_: the vendor's MSR functions. */
	const char *prefix = strcmp(vendor, "kvm_amd") ? "vmx" : "svm";
	char vendor_verified[160], vendor_refused[160];
	int before, vendor_before;

	snprintf(vendor_verified, sizeof(vendor_verified),
		 "msrguard: verified (%s): no clone of a hooked function, "
		 "every function updating MSR intercepts calls the hooked one", vendor);
	snprintf(vendor_refused, sizeof(vendor_refused),
		 "msrguard: refusing to arm: %s_get_msr does not call %s_set_intercept_for_msr "
		 "(inlined into it?): its intercept changes", prefix, prefix);
	before = log_lines(verified);
	vendor_before = log_lines(vendor_verified);

	/* One search covers both decision hooks' clones. */
	load_refused(_metadata, "verify_inject=clone",
		     "msrguard: refusing to arm: kvm_get_msr_ignored_check has a compiler clone "
		     "(kvm_[gs]et_msr_ignored_check*)");
	load_refused(_metadata, "verify_inject=caller",
		     "msrguard: refusing to arm: kvm_get_msr_common does not call "
		     "kvm_get_msr_ignored_check (inlined into it?)");
	load_refused(_metadata, "verify_inject=vendor_caller", vendor_refused);
	/* Refused means nothing stayed hooked: KVM accepts the write. */
	EXPECT_EQ(0, ucode_write_vector());
	ASSERT_EQ(0, msrguard_load(POLICY_DEFAULT, NULL));
	/* vendor_caller's refusal came after kvm was verified and armed. */
	EXPECT_EQ(before + 2, log_lines(verified));
	EXPECT_EQ(vendor_before + 1, log_lines(vendor_verified));
	EXPECT_EQ(GP_VECTOR, ucode_write_vector());
	EXPECT_EQ(0, unload_msrguard());
}

/*
 * A vendor module that loads after msrguard and fails the verification is
 * refused: no KVM without its hooks. The next one that passes loads.
 */
TEST_F(lifetime, a_kvm_that_fails_verification_is_refused_its_load)
{
	const char *vendor = kvm_vendor_module();
	char refused[80], sysfs[40];
	int before;

	snprintf(refused, sizeof(refused), "msrguard: refusing to let %s load unguarded", vendor);
	snprintf(sysfs, sizeof(sysfs), "/sys/module/%s", vendor);
	before = log_lines(refused);
	ASSERT_EQ(0, unload_kvm());
	ASSERT_EQ(0, msrguard_load(POLICY_DEFAULT, "verify_inject=vendor_caller"));
	EXPECT_NE(0, load_kvm());
	EXPECT_NE(0, access(sysfs, F_OK)) TH_LOG("%s loaded unguarded", vendor);
	EXPECT_EQ(before + 1, log_lines(refused));
	EXPECT_EQ(0, unload_msrguard());
	ASSERT_EQ(0, load_kvm());
	EXPECT_EQ(0, ucode_write_vector());
}

/* Polls (10 ms) until msrguard's initstate reads @state; false after 3 s. */
static bool msrguard_state_is(const char *state)
{
	char now[16] = "";
	int i;

	for (i = 0; i < 300; i++, usleep(10000)) {
		FILE *f = fopen("/sys/module/msrguard/initstate", "re");

		if (!f)
			continue;
		if (!fgets(now, sizeof(now), f))
			now[0] = '\0';
		fclose(f);
		if (!strncmp(now, state, strlen(state)))
			return true;
	}
	return false;
}

/*
 * The unload disarms every hook before it stops following the KVM modules
 * (rust/module/kvm/hooks.c, disarm_all): held in between
 * (test_exit_pause_ms), nothing is hooked any more, and a vendor module
 * reloaded then gets no hook. In the other order the hooks stayed armed
 * there, and a reload could be hooked at the old address.
 */
TEST_F(lifetime, unload_disarms_before_it_stops_following_kvm)
{
	const char *vendor = kvm_vendor_module();
	const char *intercepts = strcmp(vendor, "kvm_amd") ? "vmx_set_intercept_for_msr" :
							     "svm_set_intercept_for_msr";
	char reload[80], unhooked[80];
	int status, i;
	pid_t pid;

	/* modprobe -r also removes kvm, then unused: both come back. */
	snprintf(reload, sizeof(reload), "modprobe -r %s && modprobe %s", vendor, vendor);
	snprintf(unhooked, sizeof(unhooked), "msrguard: %s loads while msrguard goes: not hooked",
		 vendor);
	ASSERT_EQ(0, msrguard_load(POLICY_DEFAULT, "test_exit_pause_ms=10000"));
	EXPECT_EQ(1, ftrace_callbacks(intercepts));
	EXPECT_EQ(1, ftrace_callbacks("kvm_set_msr_ignored_check"));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		_exit(unload_msrguard() ? 1 : 0);
	ASSERT_TRUE(msrguard_state_is("going"));
	/* Disarmed within 4 s of the unload's start, before the pause ends. */
	for (i = 0; i < 400 && ftrace_callbacks("kvm_set_msr_ignored_check"); i++)
		usleep(10000);
	EXPECT_EQ(0, ftrace_callbacks("kvm_set_msr_ignored_check"));
	EXPECT_EQ(0, ftrace_callbacks(intercepts));
	EXPECT_EQ(0, system(reload));
	EXPECT_EQ(0, ftrace_callbacks(intercepts)) TH_LOG("%s hooked while msrguard goes", vendor);
	EXPECT_EQ(0, ftrace_callbacks("kvm_set_msr_ignored_check"));
	/* The reload fell inside the window: msrguard saw it and let it be. */
	EXPECT_EQ(1, log_lines(unhooked));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	EXPECT_NE(0, access("/sys/module/msrguard", F_OK));
	EXPECT_EQ(0, ftrace_callbacks(intercepts));
	EXPECT_EQ(0, ucode_write_vector());
}

/* /sys/module/@name/refcnt, or -1. */
static int module_refcount(const char *name)
{
	char path[64];
	int n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/module/%s/refcnt", name);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fscanf(f, "%d", &n) != 1)
		n = -1;
	fclose(f);
	return n;
}

/* Vetoed writes of new values, forever: each record waits for its lookup. */
static void vetoed_writes_forever(void)
{
	u64 i;

	for (i = 0;; i++)
		wrmsr_safe(MSR_UNKNOWN, i);
}

/* A VMM for the profile change below: a VM with a vCPU (never run) until @go. */
static void vmm_until(int ready, int go)
{
	struct kvm_vcpu *vcpu;
	char c = 0;

	vm_create_with_one_vcpu(&vcpu, vetoed_writes_forever);
	/* Only the parent's ends open: its failure ends this VMM too. */
	if (write(ready, &c, 1) != 1 || read(go, &c, 1) != 1)
		_exit(1);
	_exit(0);	/* the VM's files close here, its last ones */
}

struct profile_change {
	int fd, vm_id, profile, ret;
	pid_t tid;
};

static void *change_profile(void *arg)
{
	struct profile_change *c = arg;

	WRITE_ONCE(c->tid, gettid());
	c->ret = set_profile(c->fd, c->vm_id, c->profile);
	return NULL;
}

/* Polls (10 ms) until thread @tid sleeps uninterruptibly (msleep); false after 5 s. */
static bool in_uninterruptible_sleep(pid_t tid)
{
	char path[64], stat[256], *state;
	int i;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	for (i = 0; i < 500; i++, usleep(10000)) {
		FILE *f = fopen(path, "re");

		if (!f)
			continue;
		state = fgets(stat, sizeof(stat), f) ? strrchr(stat, ')') : NULL;
		fclose(f);
		if (state && state[1] == ' ' && state[2] == 'D')
			return true;
	}
	return false;
}

/*
 * A profile change holds the VM it changes while it tells each vCPU to
 * recompute its intercepts (rust/module/kvm/hooks.c, msrguard_kvm_get), and
 * with it the vendor module: should the VMM close the VM meanwhile,
 * msrguard's put is the last and destroys the VM through kvm_amd's code.
 * Held there (test_profile_pause_ms) after the VMM exited, the vendor
 * module is "in use"; once msrguard let go the VM is gone and the vendor
 * unloads. Without the vendor reference the unload went through and the
 * VM was destroyed through the unloaded module's code. The vendor module
 * is reloaded after msrguard, which then knows it from the module
 * notifier (vmm_killed_with_lookups_pending covers one loaded before).
 */
TEST_F(lifetime, a_profile_change_holds_the_vendor_module_with_the_vm)
{
	const char *vendor = kvm_vendor_module();
	struct profile_change change = { .tid = 0 };
	struct msrguard_vm_info v;
	int ready[2], go[2], status;
	char c, reload[80];
	pthread_t t;
	pid_t vmm;

	ASSERT_EQ(0, msrguard_load(POLICY_DEFAULT, "test_profile_pause_ms=3000"));
	snprintf(reload, sizeof(reload), "modprobe -r %s && modprobe %s", vendor, vendor);
	ASSERT_EQ(0, system(reload));
	change.fd = open_device();
	ASSERT_LE(0, change.fd);
	change.profile = profile_index(change.fd, "hardened");
	ASSERT_LT(0, change.profile);
	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(go));
	vmm = fork();
	ASSERT_LE(0, vmm);
	if (!vmm) {
		close(ready[0]);
		close(go[1]);
		vmm_until(ready[1], go[0]);
	}
	close(ready[1]);
	close(go[0]);
	ASSERT_EQ(1, read(ready[0], &c, 1));
	ASSERT_TRUE(vmm_vm(change.fd, vmm, 0, &v));
	change.vm_id = v.vm_id;

	ASSERT_EQ(0, pthread_create(&t, NULL, change_profile, &change));
	while (!READ_ONCE(change.tid))
		usleep(1000);
	ASSERT_TRUE(in_uninterruptible_sleep(change.tid)) TH_LOG("the change did not pause");
	/* The VMM goes: msrguard's reference on the VM is the last. */
	ASSERT_EQ(1, write(go[1], "", 1));
	ASSERT_EQ(vmm, waitpid(vmm, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	EXPECT_TRUE(vmm_vm(change.fd, vmm, 0, &v)) TH_LOG("the VM went while msrguard held it");
	EXPECT_EQ(-1, syscall(SYS_delete_module, vendor, O_NONBLOCK));
	EXPECT_EQ(EWOULDBLOCK, errno) TH_LOG("%s unloaded under msrguard's VM", vendor);

	pthread_join(t, NULL);
	EXPECT_EQ(0, change.ret);
	EXPECT_FALSE(vmm_vm(change.fd, vmm, 0, &v)) TH_LOG("msrguard's put left the VM");
	close(change.fd);
	EXPECT_EQ(0, syscall(SYS_delete_module, vendor, O_NONBLOCK)) TH_LOG("%s: %s", vendor,
									  strerror(errno));
	EXPECT_EQ(0, load_kvm());
}

/*
 * A VMM killed (SIGKILL) while its vCPU's records wait for their image
 * lookups (image_cache_ms=0: every record of this paging guest looks its
 * image up, from task work on the vCPU thread), 50 times at random
 * moments: the work runs in do_exit(), holding the VM, and records without
 * image fields; the VM is destroyed after it. No kernel warning (the VM
 * runner fails the run on one), nothing leaks: msrguard unloads, and no
 * reference on the vendor module stays. msrguard loads after the vendor
 * module here and finds it by name: without it no work is queued.
 */
TEST_F(lifetime, vmm_killed_with_lookups_pending)
{
	u64 lookups, events = 0;
	struct event e;
	int fd, i, status;

	ASSERT_EQ(0, msrguard_load(POLICY_DEFAULT, "image_cache_ms=0"));
	fd = open_device();
	ASSERT_LE(0, fd);
	srand(time(NULL));
	for (i = 0; i < 50; i++) {
		pid_t vmm = fork();

		ASSERT_LE(0, vmm);
		if (!vmm) {
			struct kvm_vcpu *vcpu;

			vm_create_with_one_vcpu(&vcpu, vetoed_writes_forever);
			vcpu_run(vcpu);
			_exit(1);	/* KVM_RUN ends only on the signal */
		}
		usleep(20000 + rand() % 200000);
		ASSERT_EQ(0, kill(vmm, SIGKILL));
		ASSERT_EQ(vmm, waitpid(vmm, &status, 0));
		ASSERT_TRUE(WIFSIGNALED(status)) TH_LOG("VMM %d: status %#x", i, status);
		while (next_event(fd, &e) == 1)
			events++;
	}
	lookups = param_u64("image_lookups");
	ksft_print_msg("%lu events, %lu image lookups\n", events, lookups);
	/* The premise: records did wait for lookups. */
	EXPECT_LT(0, lookups);
	EXPECT_LT(0, events);
	close(fd);
	EXPECT_EQ(0, unload_msrguard());
	/* Each work dropped the vendor module's reference it held. */
	EXPECT_EQ(0, module_refcount(kvm_vendor_module()));
}

TEST_HARNESS_MAIN
