// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's lock parameter as a KVM selftest. lock=1 pins msrguard until
 * reboot, so this program needs a boot where nothing runs after it:
 * selftests/kvm/run.sh runs it last. Locking in audit mode is refused; a
 * locked module refuses to change a VM's profile.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"
#include "kselftest_harness.h"

#include "msrguard_kvm.h"

#define PARAM_DIR "/sys/module/msrguard/parameters/"

static void read_param(const char *name, char *buf, size_t len)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), PARAM_DIR "%s", name);
	f = fopen(path, "re");
	buf[0] = '\0';
	if (f) {
		if (!fgets(buf, len, f))
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
}

/*
 * Locking in audit mode is refused, at load ("mode=audit lock=1" fails to
 * load) and later: a locked module that vetoes nothing is not what an
 * operator who locks wants. First, as it must not leave msrguard locked.
 */
TEST(refuses_to_lock_in_audit_mode)
{
	char buf[16];

	EXPECT_NE(0, msrguard_load(POLICY_DEFAULT, "mode=audit lock=1"));
	EXPECT_NE(0, access("/sys/module/msrguard", F_OK))
		TH_LOG("msrguard loaded with mode=audit lock=1");
	ASSERT_EQ(0, msrguard_load(POLICY_DEFAULT, "mode=audit"));
	EXPECT_EQ(-EPERM, write_file(PARAM_DIR "lock", "1"));
	read_param("lock", buf, sizeof(buf));
	EXPECT_STREQ("N", buf);
	EXPECT_EQ(0, unload_msrguard());
}

static void idle_guest(void)
{
	GUEST_DONE();
}

FIXTURE(lock) {};
FIXTURE_SETUP(lock)
{
	char locked[8];

	read_param("lock", locked, sizeof(locked));
	if (!strcmp(locked, "Y"))
		SKIP(return, "msrguard is already locked in this boot: lock_test needs a fresh boot");
	ASSERT_EQ(0, msrguard_load(POLICY_DEFAULT, NULL));
}
FIXTURE_TEARDOWN(lock) {}

TEST_F(lock, pins_the_module_its_enforce_mode_and_the_profiles_until_reboot)
{
	struct msrguard_set_profile s = { .profile = 1 };
	struct msrguard_vm_info v = { .position = 0 };
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	char buf[16];
	int fd;

	ASSERT_EQ(0, write_file(PARAM_DIR "lock", "1"));
	read_param("lock", buf, sizeof(buf));
	EXPECT_STREQ("Y", buf);

	EXPECT_EQ(-EPERM, write_file(PARAM_DIR "mode", "audit"));
	EXPECT_EQ(-EPERM, write_file(PARAM_DIR "lock", "0"));
	/* Setting it again, or enforce again, is not weakening. */
	EXPECT_EQ(0, write_file(PARAM_DIR "lock", "1"));
	EXPECT_EQ(0, write_file(PARAM_DIR "mode", "enforce"));
	read_param("mode", buf, sizeof(buf));
	EXPECT_STREQ("enforce", buf);

	/* The module holds a reference on itself: "in use", not unloaded. */
	EXPECT_EQ(-EWOULDBLOCK, unload_msrguard());
	EXPECT_EQ(0, access("/sys/module/msrguard", F_OK));
	EXPECT_EQ(0, access(DEVICE_PATH, F_OK));

	/* And it still guards. */
	EXPECT_EQ(GP_VECTOR, ucode_write_vector());

	/* A VM's profile is frozen too. */
	vm = vm_create_with_one_vcpu(&vcpu, idle_guest);
	fd = open_device();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, MSRGUARD_IOC_VM, &v)) TH_LOG("no VM listed: %s", strerror(errno));
	s.vm_id = v.vm_id;
	EXPECT_EQ(-1, ioctl(fd, MSRGUARD_IOC_SET_PROFILE, &s));
	EXPECT_EQ(EPERM, errno);
	v.position = 0;
	ASSERT_EQ(0, ioctl(fd, MSRGUARD_IOC_VM, &v));
	EXPECT_EQ(0, v.profile);
	close(fd);
	kvm_vm_free(vm);
}

TEST_HARNESS_MAIN
