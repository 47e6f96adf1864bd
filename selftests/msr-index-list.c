// SPDX-License-Identifier: GPL-2.0
/*
 * Runs inside a real guest (selftests/distro-guest-init, linked statically
 * by scripts/guest-kernels.sh): prints the MSR list of the guest's own KVM
 * (KVM_GET_MSR_INDEX_LIST), which KVM built at load by probing every MSR it
 * may save with rdmsr_safe. selftests/distro_guests.sh compares it with
 * and without msrguard on the host: a guard that only takes away leaves
 * every probe's outcome, so the list, as it is.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

int main(void)
{
	struct kvm_msr_list probe = { .nmsrs = 0 }, *list;
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	unsigned int i;

	if (fd < 0) {
		perror("/dev/kvm");
		return 1;
	}
	/* The first call fails with E2BIG and says how many. */
	ioctl(fd, KVM_GET_MSR_INDEX_LIST, &probe);
	list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(list->indices[0]));
	if (!list)
		return 1;
	list->nmsrs = probe.nmsrs;
	if (ioctl(fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		perror("KVM_GET_MSR_INDEX_LIST");
		return 1;
	}
	printf("MSRGUARD-GUEST-MSRS %u:", list->nmsrs);
	for (i = 0; i < list->nmsrs; i++)
		printf(" %#x", list->indices[i]);
	printf("\n");
	return 0;
}
