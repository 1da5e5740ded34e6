/* QMP client (dcres/qmp.h).
 *
 * Input is read in chunks of up to QMP_READ_CHUNK bytes and fed to a json-c
 * tokener that keeps the state of an object cut between reads; each
 * complete object is sorted right away: a reply to the command in flight
 * (matched by the "id" we sent), an event (queued), the greeting, or
 * dropped (a late reply to a command that timed out). */
#define _GNU_SOURCE
#include "dcres/qmp.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define QMP_READ_CHUNK 65536
#define QMP_JSON_DEPTH 64
#define QMP_CONNECT_RETRY_MS 10

struct qmp_event {
	struct json_object *obj;
	struct qmp_event *next;
};

struct dcres_qmp {
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	json_tokener *tok;
	int reply_timeout_ms;
	int64_t next_id;
	int64_t want_id;          /* id of the command in flight, -1 if none */
	struct json_object *reply; /* its reply, once read */
	struct json_object *greeting;
	struct qmp_event *ev_head, *ev_tail;
	size_t nevents;
	int dead;                 /* 0, or the error every call now returns */
	char dead_msg[DCRES_QMP_ERR_MAX];
	char err_class[64];
	char rbuf[QMP_READ_CHUNK];
};

/* Formats a message into err (if not NULL) and returns ret. */
static int __attribute__((format(printf, 4, 5)))
set_err(int ret, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

/* Milliseconds of CLOCK_MONOTONIC. */
static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Marks the connection unusable with error ret and message msg (kept for
 * every later call); returns ret with msg copied into err. */
static int kill_conn(struct dcres_qmp *q, int ret, char *err, size_t errlen, const char *msg)
{
	q->dead = ret;
	snprintf(q->dead_msg, sizeof(q->dead_msg), "%s", msg);
	return set_err(ret, err, errlen, "%s", q->dead_msg);
}

/* Returns the error of a dead connection (with its message), or 0. */
static int check_dead(const struct dcres_qmp *q, char *err, size_t errlen)
{
	if (!q->dead)
		return 0;
	return set_err(q->dead, err, errlen, "%s", q->dead_msg);
}

/* Appends event obj (taken) to the queue, dropping the oldest beyond the
 * limit. */
static int queue_event(struct dcres_qmp *q, struct json_object *obj)
{
	struct qmp_event *ev = malloc(sizeof(*ev));

	if (!ev) {
		json_object_put(obj);
		return -ENOMEM;
	}
	ev->obj = obj;
	ev->next = NULL;
	if (q->ev_tail)
		q->ev_tail->next = ev;
	else
		q->ev_head = ev;
	q->ev_tail = ev;
	if (++q->nevents > DCRES_QMP_EVENT_QUEUE_MAX) {
		struct qmp_event *old = q->ev_head;

		q->ev_head = old->next;
		json_object_put(old->obj);
		free(old);
		q->nevents--;
	}
	return 0;
}

/* Removes and returns the oldest queued event named name (any if NULL),
 * or NULL. */
static struct json_object *take_event(struct dcres_qmp *q, const char *name)
{
	struct qmp_event **pp, *ev, *prev = NULL;
	struct json_object *obj;

	for (pp = &q->ev_head; (ev = *pp); prev = ev, pp = &ev->next) {
		struct json_object *jname;

		if (name && (!json_object_object_get_ex(ev->obj, "event", &jname) ||
			     strcmp(json_object_get_string(jname), name)))
			continue;
		*pp = ev->next;
		if (q->ev_tail == ev)
			q->ev_tail = prev;
		q->nevents--;
		obj = ev->obj;
		free(ev);
		return obj;
	}
	return NULL;
}

/* Sorts one complete message obj (taken): reply, event or greeting.
 * Returns 0, or -EPROTO for something that is not a QMP message. */
static int handle_message(struct dcres_qmp *q, struct json_object *obj)
{
	struct json_object *v;

	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return -EPROTO;
	}
	if (json_object_object_get_ex(obj, "event", &v) &&
	    json_object_is_type(v, json_type_string))
		return queue_event(q, obj);
	if (json_object_object_get_ex(obj, "return", NULL) ||
	    json_object_object_get_ex(obj, "error", NULL)) {
		/* A reply without our id, or to a command that timed out, is
		 * not the one awaited: drop it. */
		if (q->want_id >= 0 && !q->reply &&
		    json_object_object_get_ex(obj, "id", &v) &&
		    json_object_is_type(v, json_type_int) &&
		    json_object_get_int64(v) == q->want_id) {
			q->reply = obj;
			return 0;
		}
		json_object_put(obj);
		return 0;
	}
	if (json_object_object_get_ex(obj, "QMP", NULL)) {
		if (!q->greeting) {
			q->greeting = obj;
			return 0;
		}
		json_object_put(obj);
		return 0;
	}
	json_object_put(obj);
	return -EPROTO;
}

/* Feeds len bytes of input to the tokener and handles every object they
 * complete; an incomplete object stays in the tokener for the next read.
 * Returns 0 or a negative errno (the connection is then dead). */
static int feed(struct dcres_qmp *q, const char *buf, size_t len, char *err, size_t errlen)
{
	char msg[DCRES_QMP_ERR_MAX];
	size_t off = 0;
	int ret;

	while (off < len) {
		struct json_object *obj;
		enum json_tokener_error jerr;
		size_t used;

		obj = json_tokener_parse_ex(q->tok, buf + off, (int)(len - off));
		jerr = json_tokener_get_error(q->tok);
		if (jerr == json_tokener_continue)
			return 0; /* all consumed, the object continues */
		used = json_tokener_get_parse_end(q->tok);
		json_tokener_reset(q->tok);
		if (jerr != json_tokener_success || !obj || used == 0) {
			json_object_put(obj);
			snprintf(msg, sizeof(msg), "QMP %s: QEMU sent invalid JSON (%s)", q->path,
				 jerr != json_tokener_success ? json_tokener_error_desc(jerr)
							      : "not an object");
			return kill_conn(q, -EPROTO, err, errlen, msg);
		}
		off += used;
		ret = handle_message(q, obj);
		if (ret == -EPROTO) {
			snprintf(msg, sizeof(msg), "QMP %s: QEMU sent a message that is not QMP",
				 q->path);
			return kill_conn(q, ret, err, errlen, msg);
		}
		if (ret)
			return set_err(ret, err, errlen, "QMP %s: %s", q->path, strerror(-ret));
	}
	return 0;
}

/* Waits until the socket is readable or the deadline (CLOCK_MONOTONIC ms)
 * passes, then reads once and feeds what came. Returns 0 after a read,
 * -ETIMEDOUT (err untouched) when nothing came in time, or another negative
 * errno (end of file: -ECONNRESET; the connection is then dead). */
static int pump(struct dcres_qmp *q, int64_t deadline, char *err, size_t errlen)
{
	struct pollfd pfd = { .fd = q->fd, .events = POLLIN };
	char msg[DCRES_QMP_ERR_MAX];
	ssize_t n;
	int ret;

	for (;;) {
		int64_t left = deadline - now_ms();

		ret = poll(&pfd, 1, left > 0 ? (left > INT32_MAX ? INT32_MAX : (int)left) : 0);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			return set_err(-errno, err, errlen, "QMP %s: poll: %s", q->path,
				       strerror(errno));
		if (ret == 0) {
			if (left > 0)
				continue;
			return -ETIMEDOUT;
		}
		n = read(q->fd, q->rbuf, sizeof(q->rbuf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			snprintf(msg, sizeof(msg),
				 "QMP %s: QEMU closed the connection (did it exit?)", q->path);
			return kill_conn(q, -ECONNRESET, err, errlen, msg);
		}
		if (n < 0) {
			snprintf(msg, sizeof(msg), "QMP %s: read: %s", q->path, strerror(errno));
			return kill_conn(q, -errno, err, errlen, msg);
		}
		return feed(q, q->rbuf, (size_t)n, err, errlen);
	}
}

/* Writes all len bytes of buf before the deadline. */
static int send_all(struct dcres_qmp *q, const char *buf, size_t len, int64_t deadline,
		    char *err, size_t errlen)
{
	char msg[DCRES_QMP_ERR_MAX];

	while (len) {
		ssize_t n = send(q->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = q->fd, .events = POLLOUT };
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return set_err(-ETIMEDOUT, err, errlen,
					       "QMP %s: QEMU does not read its socket", q->path);
			if (poll(&pfd, 1, (int)(left > INT32_MAX ? INT32_MAX : left)) < 0 &&
			    errno != EINTR)
				return set_err(-errno, err, errlen, "QMP %s: poll: %s", q->path,
					       strerror(errno));
			continue;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			snprintf(msg, sizeof(msg),
				 "QMP %s: QEMU closed the connection (did it exit?)", q->path);
			return kill_conn(q, -ECONNRESET, err, errlen, msg);
		}
		if (n < 0)
			return set_err(-errno, err, errlen, "QMP %s: send: %s", q->path,
				       strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Turns a QMP error reply into -EREMOTEIO with "COMMAND failed: CLASS:
 * DESC" in err and the class remembered. */
static int reply_error(struct dcres_qmp *q, const char *command, struct json_object *error,
		       char *err, size_t errlen)
{
	struct json_object *jclass = NULL, *jdesc = NULL;
	const char *cls = "unknown", *desc = "(no description)";

	if (json_object_object_get_ex(error, "class", &jclass) &&
	    json_object_is_type(jclass, json_type_string))
		cls = json_object_get_string(jclass);
	if (json_object_object_get_ex(error, "desc", &jdesc) &&
	    json_object_is_type(jdesc, json_type_string))
		desc = json_object_get_string(jdesc);
	snprintf(q->err_class, sizeof(q->err_class), "%s", cls);
	return set_err(-EREMOTEIO, err, errlen, "%s failed: %s: %s", command, cls, desc);
}

/* dcres_qmp_execute with an explicit deadline (CLOCK_MONOTONIC ms). */
static int execute_until(struct dcres_qmp *q, const char *command, struct json_object *args,
			 struct json_object **ret, int64_t deadline, char *err, size_t errlen)
{
	int64_t start = now_ms();
	struct json_object *msg, *reply, *v;
	const char *text;
	char *line;
	size_t len;
	int r;

	q->err_class[0] = '\0';
	r = check_dead(q, err, errlen);
	if (r) {
		json_object_put(args);
		return r;
	}
	msg = json_object_new_object();
	if (!msg) {
		json_object_put(args);
		return set_err(-ENOMEM, err, errlen, "QMP %s: out of memory", q->path);
	}
	json_object_object_add(msg, "execute", json_object_new_string(command));
	if (args)
		json_object_object_add(msg, "arguments", args);
	q->want_id = q->next_id++;
	json_object_object_add(msg, "id", json_object_new_int64(q->want_id));
	text = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN |
						   JSON_C_TO_STRING_NOSLASHESCAPE);
	len = strlen(text);
	line = malloc(len + 2);
	if (!line) {
		json_object_put(msg);
		q->want_id = -1;
		return set_err(-ENOMEM, err, errlen, "QMP %s: out of memory", q->path);
	}
	memcpy(line, text, len);
	memcpy(line + len, "\n", 2);
	json_object_put(msg);
	r = send_all(q, line, len + 1, deadline, err, errlen);
	free(line);
	while (!r && !q->reply) {
		r = pump(q, deadline, err, errlen);
		if (r == -ETIMEDOUT)
			set_err(r, err, errlen, "QMP %s: no reply to %s within %lld ms", q->path,
				command, (long long)(deadline - start));
	}
	reply = q->reply;
	q->reply = NULL;
	q->want_id = -1;
	if (r) {
		json_object_put(reply);
		return r;
	}
	if (json_object_object_get_ex(reply, "error", &v)) {
		r = reply_error(q, command, v, err, errlen);
		json_object_put(reply);
		return r;
	}
	if (ret) {
		json_object_object_get_ex(reply, "return", &v);
		*ret = json_object_get(v);
	}
	json_object_put(reply);
	return 0;
}

int dcres_qmp_execute(struct dcres_qmp *q, const char *command, struct json_object *args,
		      struct json_object **ret, char *err, size_t errlen)
{
	if (ret)
		*ret = NULL;
	return execute_until(q, command, args, ret, now_ms() + q->reply_timeout_ms, err,
			     errlen);
}

/* Connects q->fd to q->path before the deadline, retrying while the socket
 * is missing or refuses (QEMU starting). */
static int connect_socket(struct dcres_qmp *q, int64_t deadline, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memcpy(sa.sun_path, q->path, sizeof(q->path));
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int e;

		if (fd < 0)
			return set_err(-errno, err, errlen, "QMP %s: socket: %s", q->path,
				       strerror(errno));
		if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
			q->fd = fd;
			return 0;
		}
		e = errno;
		close(fd);
		if (e == EINTR)
			continue;
		if ((e != ENOENT && e != ECONNREFUSED && e != EAGAIN) || now_ms() >= deadline)
			return set_err(-e, err, errlen, "QMP %s: cannot connect: %s%s", q->path,
				       strerror(e),
				       e == ENOENT || e == ECONNREFUSED ? " (is QEMU running?)" : "");
		usleep(QMP_CONNECT_RETRY_MS * 1000);
	}
}

int dcres_qmp_connect(const char *path, int connect_timeout_ms, int reply_timeout_ms,
		      struct dcres_qmp **out, char *err, size_t errlen)
{
	int64_t deadline = now_ms() + (connect_timeout_ms > 0 ? connect_timeout_ms : 0);
	struct dcres_qmp *q;
	int ret;

	*out = NULL;
	if (strlen(path) >= sizeof(q->path))
		return set_err(-ENAMETOOLONG, err, errlen, "QMP %s: socket path too long", path);
	q = calloc(1, sizeof(*q));
	if (!q)
		return set_err(-ENOMEM, err, errlen, "QMP %s: out of memory", path);
	q->fd = -1;
	q->want_id = -1;
	snprintf(q->path, sizeof(q->path), "%s", path);
	dcres_qmp_set_reply_timeout(q, reply_timeout_ms);
	q->tok = json_tokener_new_ex(QMP_JSON_DEPTH);
	if (!q->tok) {
		free(q);
		return set_err(-ENOMEM, err, errlen, "QMP %s: out of memory", path);
	}
	ret = connect_socket(q, deadline, err, errlen);
	while (!ret && !q->greeting) {
		ret = pump(q, deadline, err, errlen);
		if (ret == -ETIMEDOUT)
			set_err(ret, err, errlen,
				"QMP %s: no greeting from QEMU within %d ms (QEMU serves one "
				"client per socket: is another one connected?)",
				path, connect_timeout_ms);
	}
	if (!ret)
		ret = execute_until(q, "qmp_capabilities", NULL, NULL, deadline, err, errlen);
	if (ret) {
		dcres_qmp_close(q);
		return ret;
	}
	*out = q;
	return 0;
}

void dcres_qmp_close(struct dcres_qmp *q)
{
	struct json_object *ev;

	if (!q)
		return;
	while ((ev = take_event(q, NULL)))
		json_object_put(ev);
	json_object_put(q->reply);
	json_object_put(q->greeting);
	if (q->tok)
		json_tokener_free(q->tok);
	if (q->fd >= 0)
		close(q->fd);
	free(q);
}

void dcres_qmp_set_reply_timeout(struct dcres_qmp *q, int reply_timeout_ms)
{
	q->reply_timeout_ms = reply_timeout_ms > 0 ? reply_timeout_ms
						   : DCRES_QMP_DEFAULT_REPLY_TIMEOUT_MS;
}

const char *dcres_qmp_error_class(const struct dcres_qmp *q)
{
	return q->err_class;
}

int dcres_qmp_wait_event(struct dcres_qmp *q, const char *name, int timeout_ms,
			 struct json_object **event, char *err, size_t errlen)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	int ret;

	for (;;) {
		*event = take_event(q, name);
		if (*event)
			return 0;
		ret = check_dead(q, err, errlen);
		if (ret)
			return ret;
		ret = pump(q, deadline, err, errlen);
		if (ret == -ETIMEDOUT)
			return set_err(ret, err, errlen, "QMP %s: no %s%sevent within %d ms",
				       q->path, name ? name : "", name ? " " : "", timeout_ms);
		if (ret)
			return ret;
	}
}

struct json_object *dcres_qmp_greeting(const struct dcres_qmp *q)
{
	return q->greeting;
}
