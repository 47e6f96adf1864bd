/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The stats ioctl and its fields, read at the generated header's offsets
 * (msrguard_abi.h, from rust/core/record.rs): shared by the suite, the storm
 * and the fuzz programs.
 */
#ifndef MSRGUARD_STATS_H
#define MSRGUARD_STATS_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>

#include "msrguard_abi.h"

/* MSRGUARD_IOC_STATS into @stats (MSRGUARD_STATS_SIZE bytes): 0 or -errno. */
static inline int get_stats(int fd, uint8_t *stats)
{
	return ioctl(fd, MSRGUARD_IOC_STATS, stats) ? -errno : 0;
}

static inline uint64_t stats_u64(const uint8_t *stats, int off)
{
	uint64_t v;

	memcpy(&v, stats + off, sizeof(v));
	return v;
}

static inline uint32_t stats_u32(const uint8_t *stats, int off)
{
	uint32_t v;

	memcpy(&v, stats + off, sizeof(v));
	return v;
}

#endif
