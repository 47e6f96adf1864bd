// SPDX-License-Identifier: GPL-2.0
/*
 * Runs inside a real guest (selftests/distro-guest-init, linked statically
 * by scripts/guest-kernels.sh) as a compromised kernel would act after
 * boot: through the msr driver, on each CPU, it moves every MSR a profile
 * pins and clears its set-only bits. selftests/distro_guests.sh gives the
 * profile's MSRs (from policy/profiles/hardened.toml) on the kernel's
 * command line, and /init passes them on:
 *
 *   guest-pin-attack pin:0xc0000082 ... set_only:0xc0000080:0x800
 *
 * Under that profile each write must fail (msrguard vetoes it: #GP, which
 * the msr driver turns into EIO); one line per write says which:
 *
 *   MSRGUARD-GUEST-PIN cpu=0 msr=0xc0000082 vetoed
 *
 * A write that succeeds is undone at once (best effort: the kernel may
 * not survive a moved system call entry).
 *
 *   guest-pin-attack --drain
 *
 * only waits until the console has sent what was written to it (/init's
 * last step before poweroff, whose own message goes straight to the
 * console and would otherwise cut the lines still queued).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* pin:MSR -> the value moved by a page; set_only:MSR:BITS -> the bits cleared. */
static int parse(const char *spec, uint32_t *msr, uint64_t *clear)
{
	char *end;

	if (!strncmp(spec, "pin:", 4)) {
		*msr = strtoul(spec + 4, &end, 0);
		*clear = 0;
		return *end ? -1 : 0;
	}
	if (!strncmp(spec, "set_only:", 9)) {
		*msr = strtoul(spec + 9, &end, 0);
		if (*end != ':')
			return -1;
		*clear = strtoull(end + 1, &end, 0);
		return *end || !*clear ? -1 : 0;
	}
	return -1;
}

int main(int argc, char **argv)
{
	char path[32];
	unsigned int cpu;
	int i;

	if (argc == 2 && !strcmp(argv[1], "--drain"))
		return tcdrain(STDOUT_FILENO) ? 1 : 0;
	for (i = 1; i < argc; i++) {
		uint32_t msr;
		uint64_t clear;

		if (parse(argv[i], &msr, &clear)) {
			fprintf(stderr, "guest-pin-attack: bad spec %s\n", argv[i]);
			return 2;
		}
	}
	for (cpu = 0;; cpu++) {
		int fd;

		snprintf(path, sizeof(path), "/dev/cpu/%u/msr", cpu);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			if (cpu == 0) {
				perror(path);
				return 1;
			}
			return 0;
		}
		for (i = 1; i < argc; i++) {
			uint64_t v, w, clear;
			uint32_t msr;

			parse(argv[i], &msr, &clear);
			if (pread(fd, &v, 8, msr) != 8) {
				printf("MSRGUARD-GUEST-PIN cpu=%u msr=%#x unreadable: %s\n", cpu, msr,
				       strerror(errno));
				continue;
			}
			w = clear ? v & ~clear : v + 0x1000;
			if (w == v) {
				printf("MSRGUARD-GUEST-PIN cpu=%u msr=%#x bits %#" PRIx64 " not set\n",
				       cpu, msr, clear);
			} else if (pwrite(fd, &w, 8, msr) == 8) {
				if (pwrite(fd, &v, 8, msr) != 8)
					printf("MSRGUARD-GUEST-PIN cpu=%u msr=%#x not restored\n", cpu, msr);
				printf("MSRGUARD-GUEST-PIN cpu=%u msr=%#x changed\n", cpu, msr);
			} else {
				printf("MSRGUARD-GUEST-PIN cpu=%u msr=%#x %s\n", cpu, msr,
				       errno == EIO ? "vetoed" : strerror(errno));
			}
			fflush(stdout);
		}
		close(fd);
	}
}
