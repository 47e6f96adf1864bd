// SPDX-License-Identifier: GPL-2.0
/*
 * The msrguard tool (MSRGUARD_TOOL) against real events, as KVM selftests:
 * `events --json`, `events --follow`, `events --journal` (journald's
 * native protocol, its socket played here), `stats --json`, `policy`,
 * `vms` and `profile list/set`.
 * Each test loads msrguard (MSRGUARD_KO) in its fixture, has a long-mode
 * guest do the accesses, runs the tool and checks what it printed against
 * what the guest did (MSR, value, the instruction's address), then unloads
 * msrguard.
 */
#include <asm/msr-index.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"
#include "kselftest_harness.h"

#include "msrguard_guest.h"
#include "msrguard_kvm.h"
#include "msrguard_stats.h"

/* The default policy vetoes writes to it (the microcode update trigger). */
#define UCODE_WRITE	MSR_IA32_UCODE_WRITE
#define JOURNAL_SOCKET	"/run/systemd/journal/socket"

FIXTURE(tool) {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	const char *tool;
};

FIXTURE_SETUP(tool)
{
	self->vm = NULL;
	self->tool = getenv("MSRGUARD_TOOL");
	if (!self->tool)
		SKIP(return, "no MSRGUARD_TOOL in the environment (selftests/kvm/run.sh sets it)");
	ASSERT_EQ(0, access(self->tool, X_OK)) TH_LOG("MSRGUARD_TOOL=%s: %s", self->tool, strerror(errno));
	ASSERT_EQ(0, msrguard_load(POLICY_DEFAULT, ""))
		TH_LOG("cannot load msrguard (MSRGUARD_KO in the environment)");
	self->vm = vm_create_with_one_vcpu(&self->vcpu, access_guest);
}

FIXTURE_TEARDOWN(tool)
{
	if (self->vm)
		kvm_vm_free(self->vm);
	unload_msrguard();
}

/* Starts the tool with @args (NULL-terminated); its stdout is *@out. */
static pid_t spawn_tool(const char *tool, const char *const *args, int *out)
{
	const char *argv[8] = { tool };
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
		execv(tool, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	*out = p[0];
	return pid;
}

/* What the tool prints within @timeout_ms (or until @until), into @buf. */
static void read_output(int fd, char *buf, size_t len, int timeout_ms, const char *until)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t used = 0;
	ssize_t n;

	buf[0] = 0;
	while (used < len - 1 && poll(&pfd, 1, timeout_ms) > 0) {
		n = read(fd, buf + used, len - 1 - used);
		if (n <= 0)
			break;
		used += n;
		buf[used] = 0;
		if (until && strstr(buf, until))
			break;
	}
}

/* Runs the tool to its end: its exit status (-1 if it did not exit), output in @buf. */
static int run_tool(const char *tool, const char *const *args, char *buf, size_t len)
{
	int fd, status;
	pid_t pid;

	pid = spawn_tool(tool, args, &fd);
	if (pid < 0)
		return -1;
	read_output(fd, buf, len, 5000, NULL);
	close(fd);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Whether @text holds the string @fmt formats to. */
static bool has(const char *text, const char *fmt, ...)
{
	char field[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(field, sizeof(field), fmt, ap);
	va_end(ap);
	return strstr(text, field) != NULL;
}

TEST_F(tool, events_json_shows_both_vetoed_accesses)
{
	const char *argv[] = { "events", "--json", NULL };
	char out[4096];
	u64 pc;

	ASSERT_EQ(GP_VECTOR, access_in_guest(self->vcpu, UCODE_WRITE, true, 0x1000, &pc));
	ASSERT_EQ(GP_VECTOR, access_in_guest(self->vcpu, MSR_UNKNOWN, false, 0, NULL));
	EXPECT_EQ(0, run_tool(self->tool, argv, out, sizeof(out)));
	EXPECT_TRUE(has(out, "\"msr\":%u,\"msr_name\":\"MSR_IA32_UCODE_WRITE\"", UCODE_WRITE));
	EXPECT_TRUE(has(out, "\"is_write\":true"));
	EXPECT_TRUE(has(out, "\"msr_value\":\"0x1000\""));
	EXPECT_TRUE(has(out, "\"access_status\":\"blocked-gp\""));
	EXPECT_TRUE(has(out, "\"pc\":\"%#lx\"", pc));
	EXPECT_TRUE(has(out, "\"vmm_pid\":%d", getpid()));
	EXPECT_TRUE(has(out, "\"guest_mode\":\"long\""));
	EXPECT_TRUE(has(out, "\"msr\":%u", MSR_UNKNOWN));
	EXPECT_TRUE(has(out, "\"reason\":\"unknown-msr\""));
	EXPECT_TRUE(has(out, "\"id\":12550"));
	/* Two events, one line each. */
	EXPECT_NE(strchr(out, '\n'), strrchr(out, '\n'));
	if (_metadata->exit_code == KSFT_FAIL)
		TH_LOG("output: %.800s", out);
}

TEST_F(tool, events_follow_receives_a_later_event)
{
	const char *argv[] = { "events", "--follow", "--json", NULL };
	char out[4096];
	int fd;
	pid_t pid;

	pid = spawn_tool(self->tool, argv, &fd);
	ASSERT_LT(0, pid);
	/* The tool waits on an empty queue before the access happens. */
	usleep(500 * 1000);
	ASSERT_EQ(GP_VECTOR, access_in_guest(self->vcpu, UCODE_WRITE, true, 0x4242, NULL));
	read_output(fd, out, sizeof(out), 5000, "\n");
	kill(pid, SIGINT);
	waitpid(pid, NULL, 0);
	close(fd);
	EXPECT_TRUE(has(out, "\"msr\":%u", UCODE_WRITE)) TH_LOG("output: %.600s", out);
	EXPECT_TRUE(has(out, "\"msr_value\":\"%#x\"", 0x4242)) TH_LOG("output: %.600s", out);
}

TEST_F(tool, events_journal_sends_a_native_protocol_entry)
{
	const char *argv[] = { "events", "--journal", NULL };
	struct sockaddr_un addr = { .sun_family = AF_UNIX, .sun_path = JOURNAL_SOCKET };
	struct timeval tv = { .tv_sec = 5 };
	char msg[8192] = "", out[1024];
	ssize_t n;
	int sock;
	u64 pc;

	mkdir("/run/systemd", 0755);
	mkdir("/run/systemd/journal", 0755);
	unlink(JOURNAL_SOCKET);
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, sock);
	ASSERT_EQ(0, bind(sock, (struct sockaddr *)&addr, sizeof(addr)))
		TH_LOG("cannot play journald's socket: %s", strerror(errno));
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ASSERT_EQ(GP_VECTOR, access_in_guest(self->vcpu, UCODE_WRITE, true, 0x1000, &pc));
	EXPECT_EQ(0, run_tool(self->tool, argv, out, sizeof(out)));
	n = recv(sock, msg, sizeof(msg) - 1, MSG_DONTWAIT);
	close(sock);
	unlink(JOURNAL_SOCKET);
	ASSERT_LT(0, n) TH_LOG("no datagram on the journal socket: %s", strerror(errno));
	msg[n] = 0;
	EXPECT_TRUE(has(msg, "MESSAGE_ID=4d5352475541524431323535300a0001\n"));
	EXPECT_TRUE(has(msg, "MSR=%#x\n", UCODE_WRITE));
	EXPECT_TRUE(has(msg, "IS_WRITE=1\n"));
	EXPECT_TRUE(has(msg, "PC=%#lx\n", pc));
	EXPECT_TRUE(has(msg, "ACCESS_STATUS=blocked-gp\n"));
	EXPECT_TRUE(has(msg, "MSR_VALUE=0x1000\n"));
	EXPECT_TRUE(has(msg, "PRIORITY=4\n"));
	if (_metadata->exit_code == KSFT_FAIL)
		TH_LOG("datagram: %.600s", msg);
}

TEST_F(tool, stats_and_policy_read_the_loaded_module)
{
	const char *stats[] = { "stats", "--json", NULL };
	const char *policy[] = { "policy", NULL };
	char out[16384];

	EXPECT_EQ(0, run_tool(self->tool, stats, out, sizeof(out)));
	EXPECT_TRUE(has(out, "\"abi_version\":%d", MSRGUARD_ABI_VERSION)) TH_LOG("stats: %.400s", out);
	EXPECT_TRUE(has(out, "\"mode\":\"enforce\"")) TH_LOG("stats: %.400s", out);
	/* The fixture's VM, in the default profile. */
	EXPECT_TRUE(has(out, "\"vms\":{\"default\":1}")) TH_LOG("stats: %.400s", out);
	EXPECT_EQ(0, run_tool(self->tool, policy, out, sizeof(out)));
	/* Entries of policy/default.toml: the module's table, read back. */
	EXPECT_TRUE(has(out, "%#x ", UCODE_WRITE) && has(out, "MSR_IA32_UCODE_WRITE"))
		TH_LOG("policy: %.400s", out);
	EXPECT_TRUE(has(out, "0x800-0x8ff")) TH_LOG("policy: %.400s", out);
	EXPECT_TRUE(has(out, "0x400c51889")) TH_LOG("policy: %.400s", out);
}

/*
 * `vms` lists this process's VM with its profile, `profile set` gives it
 * another (by id, then by VMM pid), and the VM's events carry its name.
 */
TEST_F(tool, vms_and_profile_set_change_a_running_vms_profile)
{
	const char *vms[] = { "vms", "--json", NULL };
	const char *list[] = { "profile", "list", NULL };
	const char *by_pid[] = { "profile", "set", "--pid", NULL, "default", NULL };
	const char *by_id[] = { "profile", "set", "--vm", NULL, "hardened", NULL };
	const char *unknown[] = { "profile", "set", "--vm", NULL, "no-such-profile", NULL };
	const char *events[] = { "events", "--json", NULL };
	char out[4096], id[16], pid[16], *p;

	EXPECT_EQ(0, run_tool(self->tool, list, out, sizeof(out)));
	EXPECT_TRUE(has(out, "default ") && has(out, "hardened ")) TH_LOG("profile list: %.400s", out);
	EXPECT_EQ(0, run_tool(self->tool, vms, out, sizeof(out)));
	snprintf(pid, sizeof(pid), "%d", getpid());
	p = strstr(out, "\"vm_id\":\"");
	ASSERT_NE(NULL, p) TH_LOG("vms: %.400s", out);
	snprintf(id, sizeof(id), "%.8s", p + strlen("\"vm_id\":\""));
	EXPECT_TRUE(has(out, "\"profile\":\"default\",\"vm_id\":\"%s\",\"vmm_pid\":%s", id, pid))
		TH_LOG("vms: %.400s", out);

	by_id[3] = id;
	EXPECT_EQ(0, run_tool(self->tool, by_id, out, sizeof(out))) TH_LOG("profile set: %.400s", out);
	EXPECT_EQ(0, run_tool(self->tool, vms, out, sizeof(out)));
	EXPECT_TRUE(has(out, "\"profile\":\"hardened\",\"vm_id\":\"%s\"", id)) TH_LOG("vms: %.400s", out);
	ASSERT_EQ(GP_VECTOR, access_in_guest(self->vcpu, UCODE_WRITE, true, 0x1000, NULL));
	EXPECT_EQ(0, run_tool(self->tool, events, out, sizeof(out)));
	EXPECT_TRUE(has(out, "\"profile\":\"hardened\"")) TH_LOG("events: %.400s", out);

	unknown[3] = id;
	EXPECT_NE(0, run_tool(self->tool, unknown, out, sizeof(out)));
	by_pid[3] = pid;
	EXPECT_EQ(0, run_tool(self->tool, by_pid, out, sizeof(out))) TH_LOG("profile set: %.400s", out);
	EXPECT_EQ(0, run_tool(self->tool, vms, out, sizeof(out)));
	EXPECT_TRUE(has(out, "\"profile\":\"default\",\"vm_id\":\"%s\"", id)) TH_LOG("vms: %.400s", out);
}

TEST_HARNESS_MAIN
