/* libdcres-qmp: a small synchronous client for QEMU's QMP over a unix
 * socket, shared by the dcres tools.
 *
 * One connection runs one command at a time: dcres_qmp_execute() sends it
 * and reads until its reply arrives. Asynchronous events that QEMU sends
 * meanwhile are kept in a queue (oldest first, at most
 * DCRES_QMP_EVENT_QUEUE_MAX; older ones are dropped beyond that) and taken
 * with dcres_qmp_wait_event(). Messages are JSON objects parsed
 * incrementally (json-c), so partial reads and several objects per read
 * are fine.
 *
 * Like the rest of dcres's libraries this one never logs: every function
 * returns 0 or a negative errno and, when err is not NULL, writes one line
 * describing the failure into err (errlen bytes, NUL-terminated, no
 * newline). Errors:
 *   -EREMOTEIO   QEMU answered with an error; the text carries the
 *                command, QMP's class and desc, and the class is also
 *                available from dcres_qmp_error_class()
 *   -ECONNRESET  QEMU closed the connection (it exited or was killed);
 *                every later call fails the same way
 *   -ETIMEDOUT   no reply (or greeting, or event) in time
 *   -EPROTO      QEMU sent something that is not QMP
 *   others       from socket(2), connect(2), read(2) and malloc
 * The library is not thread-safe: use one connection per thread. */
#ifndef DCRES_QMP_H
#define DCRES_QMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define DCRES_QMP_ERR_MAX 512            /* a comfortable size for err */
#define DCRES_QMP_EVENT_QUEUE_MAX 4096   /* queued events kept at most */
#define DCRES_QMP_DEFAULT_REPLY_TIMEOUT_MS 60000

struct dcres_qmp;

/* Connects to the QMP server at the unix socket path, retrying while the
 * socket does not exist yet or refuses connections (QEMU still starting)
 * for up to connect_timeout_ms; reads the greeting and negotiates
 * capabilities (qmp_capabilities) within that time too. Later commands
 * wait reply_timeout_ms for their reply (<= 0: the default). On success
 * *out is a connection to free with dcres_qmp_close(). */
int dcres_qmp_connect(const char *path, int connect_timeout_ms, int reply_timeout_ms,
		      struct dcres_qmp **out, char *err, size_t errlen);

/* Closes the connection and drops queued events; NULL is a no-op. */
void dcres_qmp_close(struct dcres_qmp *q);

/* Changes the reply timeout of later commands (<= 0: the default). */
void dcres_qmp_set_reply_timeout(struct dcres_qmp *q, int reply_timeout_ms);

/* Runs command with arguments args (a JSON object, or NULL for none).
 * args is consumed: the call drops the caller's reference whatever the
 * outcome. On success, when ret is not NULL, *ret is a new reference to
 * the command's "return" value (an object for most commands, an array for
 * some), to release with json_object_put(). On failure *ret is NULL. */
int dcres_qmp_execute(struct dcres_qmp *q, const char *command, struct json_object *args,
		      struct json_object **ret, char *err, size_t errlen);

/* QMP's error class ("GenericError", "CommandNotFound", ...) of the last
 * command that failed with -EREMOTEIO, or "" if the last command did not
 * fail that way. Valid until the next call on q. */
const char *dcres_qmp_error_class(const struct dcres_qmp *q);

/* Takes the oldest queued event named name (any event when name is NULL),
 * reading more from QEMU for up to timeout_ms when none is queued yet
 * (0: only what has already arrived). *event is a new reference to the
 * whole event object ({"event", "data", "timestamp"}); -ETIMEDOUT when no
 * such event came. Events of other names stay queued. */
int dcres_qmp_wait_event(struct dcres_qmp *q, const char *name, int timeout_ms,
			 struct json_object **event, char *err, size_t errlen);

/* The greeting QEMU sent ({"QMP": {"version": ..., "capabilities": ...}});
 * borrowed, valid until dcres_qmp_close(). */
struct json_object *dcres_qmp_greeting(const struct dcres_qmp *q);

/* Reading members of answers and events (qmp-json.c). Each takes obj
 * NULL or not an object as "absent". */
/* Member key as a string (borrowed from obj), or NULL if absent or not a
 * string. */
const char *dcres_qmp_get_str(struct json_object *obj, const char *key);
/* Member key as an unsigned integer into *v; false if absent or not a
 * number (negative values read as 0). */
bool dcres_qmp_get_u64(struct json_object *obj, const char *key, uint64_t *v);
/* Member key as a boolean (false if absent). */
bool dcres_qmp_get_bool(struct json_object *obj, const char *key);
/* Member key as an object or array (borrowed), or NULL. */
struct json_object *dcres_qmp_get_obj(struct json_object *obj, const char *key);

#endif
