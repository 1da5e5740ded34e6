/* Fault injection for tests (--fault-file): a server stopped or killed at
 * a chosen step of the protocol, deterministically. */
#ifndef DCRES_MEMSERVER_FAULT_H
#define DCRES_MEMSERVER_FAULT_H

#include "dcres/wire.pb-c.h"

/* When the file at path (may be NULL: nothing) reads "ACTION MSG", with
 * ACTION "stop" or "kill" and MSG a request's name such as MSG_CKPT_FINAL,
 * and type is that request: removes the file (the fault fires once), logs
 * it and stops (SIGSTOP) or kills (SIGKILL) this whole process before the
 * request is handled. Any other content is logged and ignored. Page
 * requests are never checked (their path stays as it is). */
void fault_before_request(const char *path, Dcres__MsgType type);

#endif
