/* dcres-status: the state of a split-memory VM, from its QEMU's QMP
 * socket (query-dcres), for a person: where its pages are, how paging
 * goes, the servers, and a checkpoint or restore under way.
 * usage: dcres-status --qmp SOCKET
 * Exit 0; 1 if QEMU cannot be asked or the VM is not split; 2 on usage. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "dcres/qmp.h"

#define TIMEOUT_MS 5000

static uint64_t u64(struct json_object *o, const char *key)
{
	uint64_t v = 0;

	dcres_qmp_get_u64(o, key, &v);
	return v;
}

static const char *str(struct json_object *o, const char *key)
{
	const char *s = dcres_qmp_get_str(o, key);

	return s ? s : "";
}

/* Prints query-dcres's answer a as lines of text. */
static void print_status(struct json_object *a)
{
	struct json_object *servers = dcres_qmp_get_obj(a, "servers");
	size_t n = servers && json_object_is_type(servers, json_type_array)
			   ? json_object_array_length(servers) : 0;
	uint64_t v;

	printf("dcres-split %s: %" PRIu64 " pages resident, local limit %" PRIu64 " pages%s\n",
	       str(a, "id"), u64(a, "resident"), u64(a, "local-limit"),
	       u64(a, "local-limit") ? "" : " (none)");
	printf("  page-ins %" PRIu64 ", page-outs %" PRIu64 ", zero-fills %" PRIu64
	       ", waiting faults %" PRIu64 "\n", u64(a, "page-ins"), u64(a, "page-outs"),
	       u64(a, "zero-fills"), u64(a, "waiting-faults"));
	printf("  page-in latency p50 %" PRIu64 " us, p99 %" PRIu64 " us\n",
	       u64(a, "fault-latency-p50"), u64(a, "fault-latency-p99"));
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(servers, i);

		printf("  server %zu %s: %" PRIu64 " pages, %s", i + 1, str(s, "address"),
		       u64(s, "pages"), dcres_qmp_get_bool(s, "connected") ? "connected" : "LOST");
		if (dcres_qmp_get_u64(s, "restore-pending", &v) && v)
			printf(", %" PRIu64 " restored pages to load (%" PRIu64 " failed their "
			       "check)", v, u64(s, "restore-bad"));
		printf("\n");
	}
	if (dcres_qmp_get_u64(a, "restore-pending", &v))
		printf("  restore: %" PRIu64 " pages loaded (%" PRIu64 " on access), %" PRIu64
		       " to load%s%s\n", u64(a, "restore-loaded"), u64(a, "restore-fault-loads"),
		       v, *str(a, "restore-error") ? ": " : "", str(a, "restore-error"));
	if (dcres_qmp_get_u64(a, "restore-bad", &v) && v)
		printf("  restore: %" PRIu64 " pages failed their check (never given to the "
		       "guest; QEMU's log names the file)\n", v);
	if (*str(a, "checkpoint-dir"))
		printf("  checkpoint %s: %s%s%s\n", str(a, "checkpoint-dir"),
		       str(a, "checkpoint-state"), *str(a, "checkpoint-error") ? ": " : "",
		       str(a, "checkpoint-error"));
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "qmp", required_argument, NULL, 'q' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	const char *socket = NULL;
	struct json_object *ret;
	struct dcres_qmp *q;
	char err[512];
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'q') {
			socket = optarg;
		} else {
			fprintf(stderr, "usage: dcres-status --qmp SOCKET\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (!socket || optind != argc) {
		fprintf(stderr, "usage: dcres-status --qmp SOCKET\n");
		return 2;
	}
	if (dcres_qmp_connect(socket, TIMEOUT_MS, TIMEOUT_MS, &q, err, sizeof(err))) {
		fprintf(stderr, "dcres-status: QEMU at %s: %s\n", socket, err);
		return 1;
	}
	if (dcres_qmp_execute(q, "query-dcres", NULL, &ret, err, sizeof(err))) {
		fprintf(stderr, "dcres-status: query-dcres at %s: %s\n", socket, err);
		dcres_qmp_close(q);
		return 1;
	}
	print_status(ret);
	json_object_put(ret);
	dcres_qmp_close(q);
	return 0;
}
