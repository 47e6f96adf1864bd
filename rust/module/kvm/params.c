// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's runtime parameters, writable through sysfs (Rust module
 * parameters are read-only once loaded): mode and lock.
 */

#define pr_fmt(fmt) "msrguard: " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/string.h>

#include "ffi.h"

/* Serializes changes of both parameters. */
static DEFINE_MUTEX(param_lock);
static bool audit_mode;
static bool locked;

static int mode_set(const char *val, const struct kernel_param *kp)
{
	bool audit;
	int ret = 0;

	if (sysfs_streq(val, "enforce"))
		audit = false;
	else if (sysfs_streq(val, "audit"))
		audit = true;
	else
		return -EINVAL;

	mutex_lock(&param_lock);
	if (audit == audit_mode)
		goto out;
	if (locked && audit) {
		pr_warn("mode: refusing to weaken enforce to audit: msrguard is locked\n");
		ret = -EPERM;
		goto out;
	}
	/*
	 * The hooks audit mode needs are armed before audit mode starts and
	 * disarmed after it ends: enforce never runs without its hooks.
	 */
	if (audit) {
		ret = msrguard_hooks_set_audit(true);
		if (ret)
			goto out;
		WRITE_ONCE(audit_mode, true);
	} else {
		WRITE_ONCE(audit_mode, false);
		msrguard_hooks_set_audit(false);
	}
out:
	mutex_unlock(&param_lock);
	return ret;
}

static int mode_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s\n", READ_ONCE(audit_mode) ? "audit" : "enforce");
}

static const struct kernel_param_ops mode_ops = {
	.set = mode_set,
	.get = mode_get,
};
module_param_cb(mode, &mode_ops, NULL, 0644);
MODULE_PARM_DESC(mode, "enforce (veto forbidden accesses, default) or audit (report them, allow them)");

static int lock_set(const char *val, const struct kernel_param *kp)
{
	bool lock;
	int ret;

	ret = kstrtobool(val, &lock);
	if (ret)
		return ret;

	mutex_lock(&param_lock);
	if (locked && !lock) {
		ret = -EPERM;
	} else if (!locked && lock && audit_mode) {
		/*
		 * A module locked in audit mode would veto nothing until an
		 * enforce nobody may have planned (modprobe.d's "mode=audit
		 * lock=1" refuses to load).
		 */
		pr_warn("lock: refusing to lock in audit mode: set mode=enforce first\n");
		ret = -EPERM;
	} else if (!locked && lock) {
		/* The reference is never dropped: no unload until reboot. */
		__module_get(THIS_MODULE);
		WRITE_ONCE(locked, true);
		pr_info("locked: no unload and no weaker mode until reboot\n");
	}
	mutex_unlock(&param_lock);
	return ret;
}

static int lock_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%c\n", READ_ONCE(locked) ? 'Y' : 'N');
}

static const struct kernel_param_ops lock_ops = {
	.set = lock_set,
	.get = lock_get,
};
module_param_cb(lock, &lock_ops, NULL, 0644);
MODULE_PARM_DESC(lock, "once set to 1, msrguard cannot be unloaded and its mode cannot be weakened until reboot");

bool msrguard_param_audit(void)
{
	return READ_ONCE(audit_mode);
}

bool msrguard_param_locked(void)
{
	return READ_ONCE(locked);
}
