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

#include "msrguard_boundary.h"

/*
 * Serializes changes of both parameters. Their state and rules are Rust's
 * (rust/core/mode.rs); this file parses and pins.
 */
static DEFINE_MUTEX(param_lock);

static int mode_set(const char *val, const struct kernel_param *kp)
{
	bool audit;
	int ret;

	if (sysfs_streq(val, "enforce"))
		audit = false;
	else if (sysfs_streq(val, "audit"))
		audit = true;
	else
		return -EINVAL;

	mutex_lock(&param_lock);
	ret = msrguard_rust_set_mode(audit);
	mutex_unlock(&param_lock);
	return ret;
}

static int mode_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s\n", msrguard_rust_audit() ? "audit" : "enforce");
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
	ret = msrguard_rust_set_lock(lock);
	/* Now locked: the reference is never dropped, no unload until reboot. */
	if (ret > 0) {
		__module_get(THIS_MODULE);
		ret = 0;
	}
	mutex_unlock(&param_lock);
	return ret;
}

static int lock_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%c\n", msrguard_rust_locked() ? 'Y' : 'N');
}

static const struct kernel_param_ops lock_ops = {
	.set = lock_set,
	.get = lock_get,
};
module_param_cb(lock, &lock_ops, NULL, 0644);
MODULE_PARM_DESC(lock, "once set to 1, msrguard cannot be unloaded and its mode cannot be weakened until reboot");

static int vms_tracked_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%llu\n", msrguard_rust_vms_tracked());
}

static const struct kernel_param_ops vms_tracked_ops = {
	.get = vms_tracked_get,
};
module_param_cb(vms_tracked, &vms_tracked_ops, NULL, 0444);
MODULE_PARM_DESC(vms_tracked, "VMs msrguard tracks now, each with its id (read-only)");

static int pins_unchecked_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%llu\n", msrguard_rust_pins_unchecked());
}

static const struct kernel_param_ops pins_unchecked_ops = {
	.get = pins_unchecked_get,
};
module_param_cb(pins_unchecked, &pins_unchecked_ops, NULL, 0444);
MODULE_PARM_DESC(pins_unchecked, "guest writes of pinned MSRs not checked: no room for their vCPU's pinned values (read-only)");
