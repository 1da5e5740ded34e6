/* Robustness of the frame parser: 20000 frames, valid ones mutated by byte
 * flips, truncation and random lengths, fed through a socket pair to
 * dcres_frame_recv. It must return 0 or a negative errno, never crash or
 * leak (run under ASan/UBSan in CI), and valid frames must still parse. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "dcres/log.h"
#include "dcres/wire.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void drop_line(enum dcres_log_level level, const char *line)
{
	(void)level;
	(void)line;
}

/* Writes a valid frame into buf (at most cap bytes); returns its length. */
static size_t make_frame(uint8_t *buf, size_t cap, size_t *payload_len)
{
	Dcres__Header h = DCRES__HEADER__INIT;
	uint64_t pages[8];
	uint8_t uuid[16];
	size_t n = next() % 8, hl;

	h.has_version = 1;
	h.version = DCRES__WIRE_VERSION__WIRE_VERSION;
	h.has_type = 1;
	h.type = (Dcres__MsgType)(next() % 13);
	h.has_seq = 1;
	h.seq = next();
	for (size_t i = 0; i < n; i++)
		pages[i] = next() % 100000;
	h.n_pages = n;
	h.pages = pages;
	memset(uuid, (int)(next() & 0xff), sizeof(uuid));
	h.has_vm_uuid = next() & 1;
	h.vm_uuid = (ProtobufCBinaryData){ 16, uuid };
	h.path = next() & 1 ? "ckpt/a" : NULL;
	*payload_len = (next() % 3) * 4096;
	h.has_payload_len = *payload_len > 0;
	h.payload_len = *payload_len;
	hl = dcres__header__get_packed_size(&h);
	if (8 + hl + *payload_len > cap)
		abort();
	uint32_t pre[2] = { htonl(DCRES_WIRE_MAGIC), htonl((uint32_t)hl) };
	memcpy(buf, pre, 8);
	dcres__header__pack(&h, buf + 8);
	for (size_t i = 0; i < *payload_len; i++)
		buf[8 + hl + i] = (uint8_t)next();
	return 8 + hl + *payload_len;
}

/* Runs dcres_frame_recv_auth on sv[1], the peer's end sv[0] still open as
 * a stalling peer's is, with a deadline deadline_ms from now; *took_ms gets
 * the time it took. Closes both ends. */
static int recv_auth_pair(int sv[2], uint64_t deadline_ms, uint64_t *took_ms)
{
	struct dcres_frame f = DCRES_FRAME_INIT;
	struct timeval backstop = { 2, 0 }; /* a deadline ignored fails, not hangs */
	uint64_t t0;
	int ret;

	setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &backstop, sizeof(backstop));
	t0 = dcres_wire_now_ms();
	ret = dcres_frame_recv_auth(sv[1], &f, "fuzz", t0 + deadline_ms);

	*took_ms = dcres_wire_now_ms() - t0;
	dcres_frame_destroy(&f);
	close(sv[0]);
	close(sv[1]);
	return ret;
}

/* The pre-authentication limits of dcres_frame_recv_auth: a header over
 * DCRES_WIRE_MAX_AUTH_HEADER or any payload is refused without waiting for
 * the rest, a half-sent frame ends at the deadline, a HELLO still parses.
 * Returns the number of failures. */
static int check_auth_limits(void)
{
	Dcres__Header h = DCRES__HEADER__INIT;
	static uint8_t payload[DCRES_PAGE_SIZE];
	uint32_t pre[2] = { htonl(DCRES_WIRE_MAGIC), htonl(DCRES_WIRE_MAX_AUTH_HEADER + 1) };
	uint64_t took;
	int sv[4][2], failures = 0, ret;

	h.has_type = 1;
	h.type = DCRES__MSG_TYPE__MSG_HELLO;
	for (int i = 0; i < 4; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) < 0) {
			perror("socketpair");
			exit(1);
		}
	if (write(sv[0][0], pre, sizeof(pre)) != sizeof(pre) ||
	    write(sv[1][0], pre, 6) != 6 ||
	    dcres_frame_send(sv[2][0], &h, payload, sizeof(payload)) ||
	    dcres_frame_send(sv[3][0], &h, NULL, 0)) {
		perror("write");
		exit(1);
	}
	if ((ret = recv_auth_pair(sv[0], 5000, &took)) != -EMSGSIZE || took > 1000) {
		fprintf(stderr, "FAIL a %u-byte header before authentication: %d after %llu ms\n",
			DCRES_WIRE_MAX_AUTH_HEADER + 1, ret, (unsigned long long)took);
		failures++;
	}
	if ((ret = recv_auth_pair(sv[1], 100, &took)) != -ETIMEDOUT || took < 90 || took > 1000) {
		fprintf(stderr, "FAIL a half-sent prefix with a 100 ms deadline: %d after %llu ms\n",
			ret, (unsigned long long)took);
		failures++;
	}
	if ((ret = recv_auth_pair(sv[2], 5000, &took)) != -EMSGSIZE) {
		fprintf(stderr, "FAIL a payload before authentication: %d\n", ret);
		failures++;
	}
	if ((ret = recv_auth_pair(sv[3], 5000, &took)) != 0) {
		fprintf(stderr, "FAIL a HELLO did not parse before authentication: %d\n", ret);
		failures++;
	}
	return failures;
}

int main(void)
{
	static uint8_t buf[16384];
	unsigned parsed_valid = 0, valid = 0, refused = 0;
	struct dcres_frame f = DCRES_FRAME_INIT;
	int failures = 0;

	dcres_log_set_sink(drop_line);
	for (int it = 0; it < 20000; it++) {
		size_t plen, len = make_frame(buf, sizeof(buf), &plen);
		int mutate = it % 4 != 0, sv[2], ret;

		if (mutate) {
			switch (next() % 3) {
			case 0: /* flip bytes */
				for (unsigned k = 1 + next() % 4; k; k--)
					buf[next() % len] ^= (uint8_t)(1u << (next() % 8));
				break;
			case 1: /* truncate */
				len = next() % len;
				break;
			default: /* random header length */
				buf[4 + next() % 4] = (uint8_t)next();
				break;
			}
		}
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
			perror("socketpair");
			return 1;
		}
		if (len && write(sv[0], buf, len) != (ssize_t)len) {
			perror("write");
			return 1;
		}
		close(sv[0]);
		ret = dcres_frame_recv(sv[1], &f, "fuzz");
		close(sv[1]);
		if (ret > 0) {
			fprintf(stderr, "FAIL iteration %d: positive return %d\n", it, ret);
			failures++;
		}
		if (!mutate) {
			valid++;
			if (ret == 0 && f.payload_len == plen)
				parsed_valid++;
		} else if (ret) {
			refused++;
		}
		dcres_frame_free(&f);
	}
	dcres_frame_destroy(&f);
	failures += check_auth_limits();
	if (parsed_valid != valid) {
		fprintf(stderr, "FAIL only %u of %u valid frames parsed\n", parsed_valid, valid);
		failures++;
	}
	if (refused == 0) {
		fprintf(stderr, "FAIL no mutated frame was refused\n");
		failures++;
	}
	printf("wire-fuzz-test: %s (%u valid frames parsed, %u mutated frames refused)\n",
	       failures ? "FAILED" : "ok", parsed_valid, refused);
	return failures ? 1 : 0;
}
