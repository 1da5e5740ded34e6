/* Unit test of libdcres-qmp.
 *
 * Part 1 talks to a fake QMP server (a thread) that cuts the greeting into
 * pieces, sends several objects in one write, an object split across two
 * writes, a stale reply, an error, a late reply after a timeout, and then
 * closes the socket. Part 2 runs a real QEMU ($DCRES_QEMU, default
 * $DCRES_BUILD_DIR/qemu/build/qemu-system-x86_64; skipped with 77 when
 * absent): query-version, an unknown command, the STOP event of stop,
 * quit and a killed QEMU. Prints "qmp: ok" last. */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dcres/qmp.h"

/* Checks that call (an int expression) returns want, printing err if not. */
#define CHECK_RET(call, want)                                                    \
	do {                                                                     \
		int got_ = (call);                                               \
		if (got_ != (want)) {                                            \
			fprintf(stderr, "%s:%d: %s = %d (%s), want %d; err: %s\n", \
				__FILE__, __LINE__, #call, got_, strerror(-got_), \
				(want), err);                                    \
			exit(1);                                                 \
		}                                                                \
	} while (0)

static char tmpdir[] = "/tmp/dcres-qmp-test.XXXXXX";
static pid_t qemu_pids[2];

/* Kills the QEMUs still running and removes the scratch directory. */
static void cleanup(void)
{
	char cmd[128];

	for (int i = 0; i < 2; i++) {
		if (qemu_pids[i] > 0) {
			kill(qemu_pids[i], SIGKILL);
			waitpid(qemu_pids[i], NULL, 0);
		}
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

/* ---- Part 1: a fake QMP server ---- */

struct fake {
	int listen_fd;
};

/* Writes a string to fd, all of it. */
static void put(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len) {
		ssize_t n = write(fd, s, len);

		CHECK(n > 0);
		s += n;
		len -= (size_t)n;
	}
}

/* Reads one command line from fd and returns its id; checks the command
 * name is want. */
static long long get_command(int fd, const char *want)
{
	char line[4096];
	size_t len = 0;
	struct json_object *msg, *v;
	long long id;

	for (;;) {
		ssize_t n = read(fd, line + len, 1);

		CHECK(n == 1);
		if (line[len] == '\n')
			break;
		CHECK(++len < sizeof(line) - 1);
	}
	line[len] = '\0';
	msg = json_tokener_parse(line);
	CHECK(msg);
	CHECK(json_object_object_get_ex(msg, "execute", &v));
	if (strcmp(json_object_get_string(v), want)) {
		fprintf(stderr, "fake server: got %s, want %s\n", json_object_get_string(v), want);
		exit(1);
	}
	CHECK(json_object_object_get_ex(msg, "id", &v));
	id = json_object_get_int64(v);
	json_object_put(msg);
	return id;
}

/* The fake server's script (see the file comment). */
static void *fake_main(void *arg)
{
	struct fake *f = arg;
	char buf[1024];
	long long id;
	int fd = accept(f->listen_fd, NULL, NULL);

	CHECK(fd >= 0);
	put(fd, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, ");
	usleep(20000);
	put(fd, "\"minor\": 0, \"major\": 10}, \"package\": \"fake\"}, \"capa");
	usleep(20000);
	put(fd, "bilities\": []}}\r\n");
	id = get_command(fd, "qmp_capabilities");
	snprintf(buf, sizeof(buf), "{\"return\": {}, \"id\": %lld}\r\n", id);
	put(fd, buf);

	/* An event, a stale reply, the reply and half an event in one write. */
	id = get_command(fd, "fake-cmd");
	snprintf(buf, sizeof(buf),
		 "{\"event\": \"EV1\", \"data\": {\"n\": 1}}\r\n"
		 "{\"return\": {\"stale\": true}, \"id\": 999}\r\n"
		 "{\"return\": {\"x\": 1}, \"id\": %lld}\r\n"
		 "{\"event\": \"EV2\", \"da",
		 id);
	put(fd, buf);
	usleep(50000);
	put(fd, "ta\": {\"n\": 2}}\r\n");

	id = get_command(fd, "fail-cmd");
	snprintf(buf, sizeof(buf),
		 "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": "
		 "\"The command fail-cmd has not been found\"}, \"id\": %lld}\r\n", id);
	put(fd, buf);

	/* No reply until the client gave up; then a late one. */
	id = get_command(fd, "hang-cmd");
	usleep(400000);
	snprintf(buf, sizeof(buf), "{\"return\": {\"late\": true}, \"id\": %lld}\r\n", id);
	put(fd, buf);
	id = get_command(fd, "after-cmd");
	snprintf(buf, sizeof(buf), "{\"return\": [1, 2], \"id\": %lld}\r\n", id);
	put(fd, buf);
	close(fd);
	return NULL;
}

/* Returns the integer member key of object obj. */
static long long member_int(struct json_object *obj, const char *key)
{
	struct json_object *v;

	CHECK(json_object_object_get_ex(obj, key, &v));
	return json_object_get_int64(v);
}

/* Returns the "event" name of event ev. */
static const char *event_name(struct json_object *ev)
{
	struct json_object *v;

	CHECK(json_object_object_get_ex(ev, "event", &v));
	return json_object_get_string(v);
}

static void test_fake(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char err[DCRES_QMP_ERR_MAX] = "";
	struct json_object *ret, *ev, *data;
	struct dcres_qmp *q;
	struct fake f;
	pthread_t th;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/fake.qmp", tmpdir);
	f.listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(f.listen_fd >= 0);
	CHECK(!bind(f.listen_fd, (struct sockaddr *)&sa, sizeof(sa)));
	CHECK(!listen(f.listen_fd, 1));
	CHECK(!pthread_create(&th, NULL, fake_main, &f));

	CHECK_RET(dcres_qmp_connect(sa.sun_path, 2000, 300, &q, err, sizeof(err)), 0);
	CHECK(dcres_qmp_greeting(q));

	CHECK_RET(dcres_qmp_execute(q, "fake-cmd", json_object_new_object(), &ret, err,
				    sizeof(err)), 0);
	CHECK(member_int(ret, "x") == 1);
	json_object_put(ret);
	/* EV2 is completed by a later write; EV1 stays queued meanwhile. */
	CHECK_RET(dcres_qmp_wait_event(q, "EV2", 1000, &ev, err, sizeof(err)), 0);
	CHECK(json_object_object_get_ex(ev, "data", &data) && member_int(data, "n") == 2);
	json_object_put(ev);
	CHECK_RET(dcres_qmp_wait_event(q, NULL, 0, &ev, err, sizeof(err)), 0);
	CHECK(!strcmp(event_name(ev), "EV1"));
	json_object_put(ev);
	CHECK_RET(dcres_qmp_wait_event(q, NULL, 0, &ev, err, sizeof(err)), -ETIMEDOUT);

	CHECK_RET(dcres_qmp_execute(q, "fail-cmd", NULL, &ret, err, sizeof(err)), -EREMOTEIO);
	CHECK(!ret);
	CHECK(strstr(err, "CommandNotFound") && strstr(err, "has not been found"));
	CHECK(!strcmp(dcres_qmp_error_class(q), "CommandNotFound"));

	CHECK_RET(dcres_qmp_execute(q, "hang-cmd", NULL, NULL, err, sizeof(err)), -ETIMEDOUT);
	CHECK(strstr(err, "no reply to hang-cmd"));
	CHECK(!strcmp(dcres_qmp_error_class(q), ""));
	/* The late reply to hang-cmd must not be taken for after-cmd's. */
	dcres_qmp_set_reply_timeout(q, 2000);
	CHECK_RET(dcres_qmp_execute(q, "after-cmd", NULL, &ret, err, sizeof(err)), 0);
	CHECK(json_object_is_type(ret, json_type_array) && json_object_array_length(ret) == 2);
	json_object_put(ret);

	/* The server closed the socket. */
	CHECK_RET(dcres_qmp_wait_event(q, "EV3", 1000, &ev, err, sizeof(err)), -ECONNRESET);
	CHECK(strstr(err, "closed the connection"));
	CHECK_RET(dcres_qmp_execute(q, "any", NULL, NULL, err, sizeof(err)), -ECONNRESET);
	CHECK(strstr(err, "closed the connection"));
	dcres_qmp_close(q);
	pthread_join(th, NULL);
	close(f.listen_fd);

	/* Nobody listening: a clear error once the connect timeout passes. */
	CHECK_RET(dcres_qmp_connect(sa.sun_path, 200, 0, &q, err, sizeof(err)), -ECONNREFUSED);
	CHECK(strstr(err, "cannot connect"));
	printf("qmp: fake server ok\n");
}

/* ---- Part 2: a real QEMU ---- */

/* Starts QEMU with QMP on sock; returns its pid. */
static pid_t start_qemu(const char *qemu, const char *sock)
{
	char qmp_arg[512];
	pid_t pid;

	snprintf(qmp_arg, sizeof(qmp_arg), "unix:%s,server=on,wait=off", sock);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		execl(qemu, qemu, "-machine", "none", "-nodefaults", "-display", "none",
		      "-qmp", qmp_arg, (char *)NULL);
		perror(qemu);
		_exit(127);
	}
	return pid;
}

static void test_qemu(const char *qemu)
{
	char err[DCRES_QMP_ERR_MAX] = "", sock[256];
	struct json_object *ret, *v, *ev;
	struct dcres_qmp *q;

	snprintf(sock, sizeof(sock), "%s/qemu1.qmp", tmpdir);
	qemu_pids[0] = start_qemu(qemu, sock);
	CHECK_RET(dcres_qmp_connect(sock, 20000, 10000, &q, err, sizeof(err)), 0);

	CHECK_RET(dcres_qmp_execute(q, "query-version", NULL, &ret, err, sizeof(err)), 0);
	CHECK(json_object_object_get_ex(ret, "qemu", &v) && member_int(v, "major") >= 10);
	json_object_put(ret);

	CHECK_RET(dcres_qmp_execute(q, "no-such-command", NULL, &ret, err, sizeof(err)),
		  -EREMOTEIO);
	CHECK(strstr(err, "CommandNotFound"));
	CHECK(!strcmp(dcres_qmp_error_class(q), "CommandNotFound"));

	/* The STOP event comes before stop's reply: it must be queued. */
	CHECK_RET(dcres_qmp_execute(q, "stop", NULL, NULL, err, sizeof(err)), 0);
	CHECK_RET(dcres_qmp_wait_event(q, "STOP", 5000, &ev, err, sizeof(err)), 0);
	CHECK(json_object_object_get_ex(ev, "timestamp", NULL));
	json_object_put(ev);
	CHECK_RET(dcres_qmp_execute(q, "cont", NULL, NULL, err, sizeof(err)), 0);
	CHECK_RET(dcres_qmp_wait_event(q, "RESUME", 5000, &ev, err, sizeof(err)), 0);
	json_object_put(ev);

	/* QEMU exits: the next command says so. */
	CHECK_RET(dcres_qmp_execute(q, "quit", NULL, NULL, err, sizeof(err)), 0);
	CHECK_RET(dcres_qmp_execute(q, "query-status", NULL, NULL, err, sizeof(err)),
		  -ECONNRESET);
	CHECK(strstr(err, "closed the connection (did it exit?)"));
	dcres_qmp_close(q);
	waitpid(qemu_pids[0], NULL, 0);
	qemu_pids[0] = 0;

	/* QEMU killed while the client waits for an event. */
	snprintf(sock, sizeof(sock), "%s/qemu2.qmp", tmpdir);
	qemu_pids[1] = start_qemu(qemu, sock);
	CHECK_RET(dcres_qmp_connect(sock, 20000, 10000, &q, err, sizeof(err)), 0);
	kill(qemu_pids[1], SIGKILL);
	waitpid(qemu_pids[1], NULL, 0);
	qemu_pids[1] = 0;
	CHECK_RET(dcres_qmp_wait_event(q, "STOP", 5000, &ev, err, sizeof(err)), -ECONNRESET);
	CHECK_RET(dcres_qmp_execute(q, "query-status", NULL, NULL, err, sizeof(err)),
		  -ECONNRESET);
	CHECK(strstr(err, "closed the connection"));
	dcres_qmp_close(q);
	printf("qmp: QEMU ok\n");
}

int main(void)
{
	char qemu[4096];
	const char *env;

	CHECK(mkdtemp(tmpdir));
	atexit(cleanup);
	test_fake();

	env = getenv("DCRES_QEMU");
	if (env && *env)
		snprintf(qemu, sizeof(qemu), "%s", env);
	else
		snprintf(qemu, sizeof(qemu), "%s/qemu/build/qemu-system-x86_64",
			 getenv("DCRES_BUILD_DIR") ? getenv("DCRES_BUILD_DIR") : "build");
	if (access(qemu, X_OK)) {
		printf("qmp: SKIP the QEMU part: no QEMU at %s (set DCRES_QEMU)\n", qemu);
		return 77;
	}
	test_qemu(qemu);
	printf("qmp: ok\n");
	return 0;
}
