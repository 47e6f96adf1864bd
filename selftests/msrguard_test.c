// SPDX-License-Identifier: GPL-2.0
/*
 * msrguard's VM test suite, run inside the test VM as root (see
 * scripts/test.sh). TAP output through the kernel's kselftest.h; a final
 * "N passed, N failed" line for CI.
 *
 * Every guard case has a KVM guest do one access and checks what the guest
 * saw (#GP, value, success) and the exact event read back from
 * /dev/msrguard and from tracefs, with Pc equal to the instruction's
 * address. The record layout comes from msrguard_abi.h, generated from
 * rust/record.rs.
 *
 * What is left here needs this real-mode harness or pins the module: the
 * guard tables in real mode (events with mode=real and 16-bit Pcs; the same
 * tables run by selftests/msrguard_vmx_test under Bochs), the tool against
 * those events, and lock=1 last. Everything else moved to the KVM-selftest
 * suite in selftests/kvm/ (guard table on every path, nested guests,
 * device, module lifetime).
 *
 * Usage: msrguard_test MODULE.ko MSRGUARD_TOOL
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest.h"
#include "guard.h"
#include "guard_suite.h"
#include "msrguard_stats.h"

static const char *module_path;
static const char *tool_path;

/* ---- Helpers ------------------------------------------------------------ */

static int load_module(const char *params)
{
	return load_module_file(module_path, params);
}

static int unload_module(void)
{
	return unload_msrguard();
}

/* ---- Phases ------------------------------------------------------------- */

/* Without msrguard, KVM accepts what the guard cases show msrguard refusing. */
static void test_baseline(struct suite *s)
{
	struct guest_result r1, r2, r3, r4;
	int ret;

	ret = guest_access(s, guest_rdmsr, MSR_IA32_CR_PAT, 0, &r1) ||
	      guest_access(s, guest_wrmsr, MSR_IA32_UCODE_WRITE, 0x1000, &r2) ||
	      guest_access(s, guest_rdmsr, MSR_FS_BASE, 0, &r3) ||
	      guest_access(s, guest_rdmsr, MSR_IA32_MISC_ENABLE, 0, &r4);
	if (ret) {
		ksft_test_result_fail("baseline without msrguard: KVM_RUN failed\n");
		return;
	}
	report_baseline(s, &r1, &r2, &r3, &r4);
}

/* ---- The msrguard tool against real events ------------------------------ */

/* Starts the tool with @args; its stdout is *@out. Returns the pid. */
static pid_t spawn_tool(const char *const *args, int *out)
{
	const char *argv[8] = { tool_path };
	int p[2], i;
	pid_t pid;

	for (i = 0; args[i] && i < 6; i++)
		argv[i + 1] = args[i];
	if (pipe(p))
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execv(tool_path, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	*out = p[0];
	return pid;
}

/* Reads what the tool prints within @timeout_ms into @buf. */
static size_t read_output(int fd, char *buf, size_t len, int timeout_ms, const char *until)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t used = 0;
	ssize_t n;

	while (used < len - 1 && poll(&pfd, 1, timeout_ms) > 0) {
		n = read(fd, buf + used, len - 1 - used);
		if (n <= 0)
			break;
		used += n;
		buf[used] = 0;
		if (until && strstr(buf, until))
			break;
	}
	buf[used] = 0;
	return used;
}

static bool json_has(const char *json, const char *fmt, ...)
{
	char field[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(field, sizeof(field), fmt, ap);
	va_end(ap);
	return strstr(json, field) != NULL;
}

static void test_tool_events_json(struct suite *s)
{
	const char *args[] = { "events", "--json", NULL };
	uint64_t pc = guest_gpa(guest_wrmsr);
	struct guest_result res;
	char out[4096];
	int fd, status;
	pid_t pid;

	drain(s->fd);
	guest_access(s, guest_wrmsr, MSR_IA32_UCODE_WRITE, 0x1000, &res);
	guest_access(s, guest_rdmsr, MSR_UNKNOWN, 0, &res);
	pid = spawn_tool(args, &fd);
	read_output(fd, out, sizeof(out), 5000, NULL);
	close(fd);
	waitpid(pid, &status, 0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    json_has(out, "\"msr\":%u,\"msr_name\":\"MSR_IA32_UCODE_WRITE\"", MSR_IA32_UCODE_WRITE) &&
	    json_has(out, "\"is_write\":true") && json_has(out, "\"msr_value\":\"0x1000\"") &&
	    json_has(out, "\"access_status\":\"blocked-gp\"") && json_has(out, "\"pc\":\"%#llx\"", (unsigned long long)pc) &&
	    json_has(out, "\"vmm_pid\":%d", getpid()) && json_has(out, "\"guest_mode\":\"real\"") &&
	    json_has(out, "\"msr\":%u", MSR_UNKNOWN) && json_has(out, "\"reason\":\"unknown-msr\"") &&
	    json_has(out, "\"id\":12550") && strchr(out, '\n') != strrchr(out, '\n'))
		ksft_test_result_pass("msrguard events --json: both vetoed accesses with their fields\n");
	else
		ksft_test_result_fail("msrguard events --json: exit %d, output: %.600s\n",
				      WIFEXITED(status) ? WEXITSTATUS(status) : -1, out);
}

static void test_tool_follow(struct suite *s)
{
	const char *args[] = { "events", "--follow", "--json", NULL };
	struct guest_result res;
	char out[4096];
	int fd;
	pid_t pid;

	drain(s->fd);
	pid = spawn_tool(args, &fd);
	usleep(500 * 1000);
	guest_access(s, guest_wrmsr, MSR_IA32_UCODE_WRITE, 0x4242, &res);
	read_output(fd, out, sizeof(out), 5000, "\n");
	kill(pid, SIGINT);
	waitpid(pid, NULL, 0);
	close(fd);
	if (json_has(out, "\"msr\":%u", MSR_IA32_UCODE_WRITE) && json_has(out, "\"msr_value\":\"%#x\"", 0x4242))
		ksft_test_result_pass("msrguard events --follow: receives an event produced after it started\n");
	else
		ksft_test_result_fail("msrguard events --follow: output: %.600s\n", out);
}

/* journald's native protocol socket, played by this test. */
static void test_tool_journal(struct suite *s)
{
	const char *args[] = { "events", "--journal", NULL };
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	struct guest_result res;
	char msg[8192] = "";
	int sock, fd, status;
	ssize_t n = -1;
	pid_t pid;

	drain(s->fd);
	mkdir("/run/systemd", 0755);
	mkdir("/run/systemd/journal", 0755);
	strcpy(addr.sun_path, "/run/systemd/journal/socket");
	unlink(addr.sun_path);
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || bind(sock, (struct sockaddr *)&addr, sizeof(addr))) {
		ksft_test_result_fail("journal: cannot play journald's socket: %s\n", strerror(errno));
		return;
	}
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	guest_access(s, guest_wrmsr, MSR_IA32_UCODE_WRITE, 0x1000, &res);
	pid = spawn_tool(args, &fd);
	n = recv(sock, msg, sizeof(msg) - 1, 0);
	waitpid(pid, &status, 0);
	close(fd);
	close(sock);
	unlink(addr.sun_path);
	if (n > 0)
		msg[n] = 0;
	if (n > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    strstr(msg, "MESSAGE_ID=4d5352475541524431323535300a0001\n") &&
	    strstr(msg, "MSR=0x79\n") && strstr(msg, "IS_WRITE=1\n") && strstr(msg, "PC=0x1003\n") &&
	    strstr(msg, "ACCESS_STATUS=blocked-gp\n") && strstr(msg, "MSR_VALUE=0x1000\n") &&
	    strstr(msg, "PRIORITY=4\n"))
		ksft_test_result_pass("msrguard events --journal: native-protocol entry with MESSAGE_ID, MSR, IS_WRITE, PC\n");
	else
		ksft_test_result_fail("msrguard events --journal: recv %zd, exit %d, datagram: %.400s\n", n,
				      WIFEXITED(status) ? WEXITSTATUS(status) : -1, msg);
}

static void test_tool_stats_and_policy(struct suite *s)
{
	const char *stats_args[] = { "stats", "--json", NULL };
	const char *policy_args[] = { "policy", NULL };
	char out[16384], want[64];
	int fd;
	pid_t pid;
	bool ok;

	pid = spawn_tool(stats_args, &fd);
	read_output(fd, out, sizeof(out), 5000, NULL);
	waitpid(pid, NULL, 0);
	close(fd);
	snprintf(want, sizeof(want), "\"abi_version\":%d", MSRGUARD_ABI_VERSION);
	ok = json_has(out, want) && json_has(out, "\"mode\":\"enforce\"");
	pid = spawn_tool(policy_args, &fd);
	read_output(fd, out, sizeof(out), 5000, NULL);
	waitpid(pid, NULL, 0);
	close(fd);
	ok = ok && strstr(out, "0x79 ") && strstr(out, "MSR_IA32_UCODE_WRITE") &&
	     strstr(out, "0x800-0x8ff") && strstr(out, "0x400c51889");
	(void)s;
	if (ok)
		ksft_test_result_pass("msrguard stats --json and msrguard policy read the loaded module\n");
	else
		ksft_test_result_fail("msrguard stats/policy: %.400s\n", out);
}

/* Last: a locked module stays until reboot. */
static void test_lock(struct suite *s)
{
	int ret1, ret2, ret3;

	ret1 = write_file("/sys/module/msrguard/parameters/lock", "1");
	ret2 = write_file("/sys/module/msrguard/parameters/mode", "audit");
	close(s->fd);
	s->fd = -1;
	ret3 = unload_module();
	if (!ret1 && ret2 == -EPERM && ret3 == -EWOULDBLOCK)
		ksft_test_result_pass("lock=1: mode cannot be weakened (EPERM), module cannot be unloaded (in use)\n");
	else
		ksft_test_result_fail("lock: set %d, mode=audit %d, rmmod %d\n", ret1, ret2, ret3);
}

int main(int argc, char **argv)
{
	struct suite s = { .fd = -1 };
	int failed, ret;

	if (argc != 3) {
		fprintf(stderr, "usage: %s MODULE.ko MSRGUARD_TOOL\n", argv[0]);
		return 2;
	}
	module_path = argv[1];
	tool_path = argv[2];

	ksft_print_header();
	/* baseline 1, the real-mode tables, long mode, the tool 4, lock 1 */
	ksft_set_plan(1 + 12 + 5 + 3 + 4 + 1);

	ret = load_kvm();
	if (!ret)
		ret = vm_create(&s.vm);
	if (ret)
		ksft_exit_fail_msg("no KVM guest inside the VM: %s\n", strerror(-ret));
	test_baseline(&s);

	ret = load_module("");
	s.fd = ret ? -1 : open_device();
	if (s.fd < 0)
		ksft_exit_fail_msg("cannot load msrguard.ko and open %s\n", DEVICE_PATH);
	write_file(TRACE_DIR "/events/msrguard/msrguard_access/enable", "1");

	test_guard_cases(&s);
	test_emulator_path(&s);
	test_long_mode(&s);
	test_tool_events_json(&s);
	test_tool_follow(&s);
	test_tool_journal(&s);
	test_tool_stats_and_policy(&s);

	/* Lock last: it pins the module until the VM powers off. */
	test_lock(&s);
	vm_destroy(&s.vm);

	ksft_print_cnts();
	failed = ksft_get_fail_cnt() + ksft_get_error_cnt();
	printf("%u passed, %u failed\n", ksft_get_pass_cnt(), failed);
	return failed ? KSFT_FAIL : KSFT_PASS;
}
