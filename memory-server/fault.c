/* Fault injection for tests: fault.h. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dcres/log.h"
#include "dcres/wire.h"
#include "fault.h"

void fault_before_request(const char *path, Dcres__MsgType type)
{
	char action[16], msg[48];
	FILE *f;
	int sig, n;

	if (!path || type == DCRES__MSG_TYPE__MSG_PAGE_IN || type == DCRES__MSG_TYPE__MSG_PAGE_OUT)
		return;
	f = fopen(path, "re");
	if (!f)
		return;
	n = fscanf(f, "%15s %47s", action, msg);
	fclose(f);
	if (n != 2 || (strcmp(action, "stop") && strcmp(action, "kill"))) {
		pr_warn("--fault-file %s: expected \"stop|kill MSG_NAME\"; ignored", path);
		return;
	}
	if (strcmp(msg, dcres_msg_name(type)))
		return;
	sig = action[0] == 's' ? SIGSTOP : SIGKILL;
	if (unlink(path) < 0) {
		pr_perror("--fault-file %s: cannot remove it; the fault does not fire", path);
		return;
	}
	pr_warn("--fault-file %s: %s before %s", path, action, msg);
	raise(sig);
}
