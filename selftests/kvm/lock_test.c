// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's lock parameter as a KVM selftest. lock=1 pins msrguard until
 * reboot, so this program needs a boot where nothing runs after it:
 * selftests/kvm/run.sh runs it last. Locking in audit mode is refused.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

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

TEST_F(lock, pins_the_module_and_its_enforce_mode_until_reboot)
{
	char buf[16];

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
}

TEST_HARNESS_MAIN
