// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's C shim: the parts of msrguard that Rust for Linux cannot yet
 * express in an out-of-tree module.
 */

#define pr_fmt(fmt) "msrguard: " fmt

#include <linux/module.h>
#include <linux/kvm_host.h>

int msrguard_shim_init(void);
void msrguard_shim_exit(void);

int msrguard_shim_init(void)
{
	return 0;
}

void msrguard_shim_exit(void)
{
}
