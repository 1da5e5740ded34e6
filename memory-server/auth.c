#include "dcres/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcres/log.h"
#include "dcres/wire.h"

#define NONCE_LEN 32
#define MAC_LEN 32

int dcres_psk_load(const char *path, struct dcres_psk *psk)
{
	struct stat sb;
	ssize_t n;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		pr_perror("pre-shared key %s", path);
		return ret;
	}
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 0077)) {
		pr_err("pre-shared key %s is readable by others (mode %03o); chmod 600 it",
		       path, sb.st_mode & 0777);
		close(fd);
		return -EPERM;
	}
	n = read(fd, psk->key, sizeof(psk->key));
	if (n < 0) {
		ret = -errno;
		pr_perror("read pre-shared key %s", path);
	}
	close(fd);
	if (ret)
		return ret;
	while (n > 0 && (psk->key[n - 1] == '\n' || psk->key[n - 1] == '\r'))
		n--;
	if (n < DCRES_PSK_MIN_LEN) {
		pr_err("pre-shared key %s: %zd bytes, at least %d needed", path, n,
		       DCRES_PSK_MIN_LEN);
		return -EINVAL;
	}
	psk->len = (size_t)n;
	return 0;
}

/* mac = HMAC-SHA256(key, label || a || b). */
static void compute_mac(const struct dcres_psk *psk, const char *label,
			const uint8_t *a, const uint8_t *b, uint8_t mac[MAC_LEN])
{
	uint8_t msg[16 + 2 * NONCE_LEN];
	size_t llen = strlen(label);
	unsigned int maclen = MAC_LEN;

	memcpy(msg, label, llen);
	memcpy(msg + llen, a, NONCE_LEN);
	memcpy(msg + llen + NONCE_LEN, b, NONCE_LEN);
	HMAC(EVP_sha256(), psk->key, (int)psk->len, msg, llen + 2 * NONCE_LEN, mac, &maclen);
}

static int fresh_nonce(uint8_t nonce[NONCE_LEN])
{
	return getrandom(nonce, NONCE_LEN, 0) == NONCE_LEN ? 0 : -EIO;
}

/* Receives a frame of type want; anything else is -EPROTO. */
static int recv_type(int fd, struct dcres_frame *f, Dcres__MsgType want, const char *peer)
{
	int ret = dcres_frame_recv(fd, f, peer);

	if (ret) {
		dcres_frame_destroy(f);
		return ret;
	}
	if (f->hdr->type != want) {
		pr_err("%s: expected %s during authentication, got %s", peer,
		       dcres_msg_name(want), dcres_msg_name(f->hdr->type));
		dcres_frame_destroy(f);
		return -EPROTO;
	}
	return 0;
}

int dcres_auth_client(int fd, const struct dcres_psk *psk, const char *peer)
{
	Dcres__Header h = DCRES__HEADER__INIT;
	uint8_t nc[NONCE_LEN], mac[MAC_LEN];
	struct dcres_frame f = DCRES_FRAME_INIT;
	int ret;

	if ((ret = fresh_nonce(nc)))
		return ret;
	h.has_type = 1;
	h.type = DCRES__MSG_TYPE__MSG_HELLO;
	h.has_nonce = 1;
	h.nonce = (ProtobufCBinaryData){ NONCE_LEN, nc };
	if ((ret = dcres_frame_send(fd, &h, NULL, 0)))
		return ret;
	ret = dcres_frame_recv(fd, &f, peer);
	if (ret) {
		dcres_frame_destroy(&f);
		return ret;
	}
	if (f.hdr->type == DCRES__MSG_TYPE__MSG_REPLY) {
		pr_err("%s refused the connection: %s", peer, f.hdr->error ? f.hdr->error : "");
		ret = f.hdr->status ? f.hdr->status : -EPROTO;
		dcres_frame_destroy(&f);
		return ret;
	}
	if (f.hdr->type != DCRES__MSG_TYPE__MSG_HELLO || !f.hdr->has_nonce ||
	    f.hdr->nonce.len != NONCE_LEN || !f.hdr->has_proof || f.hdr->proof.len != MAC_LEN) {
		pr_err("%s: malformed authentication answer", peer);
		dcres_frame_destroy(&f);
		return -EPROTO;
	}
	compute_mac(psk, "dcres-server", nc, f.hdr->nonce.data, mac);
	if (CRYPTO_memcmp(mac, f.hdr->proof.data, MAC_LEN) != 0) {
		pr_err("%s: server failed authentication (wrong pre-shared key?)", peer);
		dcres_frame_destroy(&f);
		return -EACCES;
	}
	compute_mac(psk, "dcres-client", f.hdr->nonce.data, nc, mac);
	dcres_frame_destroy(&f);

	Dcres__Header a = DCRES__HEADER__INIT;
	a.has_type = 1;
	a.type = DCRES__MSG_TYPE__MSG_AUTH;
	a.has_proof = 1;
	a.proof = (ProtobufCBinaryData){ MAC_LEN, mac };
	if ((ret = dcres_frame_send(fd, &a, NULL, 0)))
		return ret;
	if ((ret = recv_type(fd, &f, DCRES__MSG_TYPE__MSG_REPLY, peer)))
		return ret;
	ret = f.hdr->status;
	if (ret)
		pr_err("%s refused authentication: %s", peer, f.hdr->error ? f.hdr->error : "");
	dcres_frame_destroy(&f);
	return ret;
}

int dcres_auth_server(int fd, const struct dcres_psk *psk, const char *peer,
		      unsigned timeout_ms)
{
	uint64_t deadline = dcres_wire_now_ms() + timeout_ms;
	Dcres__Header h = DCRES__HEADER__INIT;
	uint8_t ns[NONCE_LEN], nc[NONCE_LEN], mac[MAC_LEN];
	struct dcres_frame f = DCRES_FRAME_INIT;
	int ret;

	ret = dcres_frame_recv_auth(fd, &f, peer, deadline);
	if (ret) {
		dcres_frame_destroy(&f);
		return ret;
	}
	if (f.hdr->type != DCRES__MSG_TYPE__MSG_HELLO || !f.hdr->has_nonce ||
	    f.hdr->nonce.len != NONCE_LEN) {
		pr_err("%s: %s before authentication", peer, dcres_msg_name(f.hdr->type));
		dcres_reply_error(fd, f.hdr->has_seq ? f.hdr->seq : 0, -EACCES,
				  DCRES__ERROR_REASON__ERR_REFUSED, "authenticate first (HELLO)");
		dcres_frame_destroy(&f);
		return -EACCES;
	}
	memcpy(nc, f.hdr->nonce.data, NONCE_LEN);
	dcres_frame_destroy(&f);
	if ((ret = fresh_nonce(ns)))
		return ret;
	compute_mac(psk, "dcres-server", nc, ns, mac);
	h.has_type = 1;
	h.type = DCRES__MSG_TYPE__MSG_HELLO;
	h.has_nonce = 1;
	h.nonce = (ProtobufCBinaryData){ NONCE_LEN, ns };
	h.has_proof = 1;
	h.proof = (ProtobufCBinaryData){ MAC_LEN, mac };
	if ((ret = dcres_frame_send(fd, &h, NULL, 0)))
		return ret;

	ret = dcres_frame_recv_auth(fd, &f, peer, deadline);
	if (ret) {
		dcres_frame_destroy(&f);
		return ret;
	}
	compute_mac(psk, "dcres-client", ns, nc, mac);
	if (f.hdr->type != DCRES__MSG_TYPE__MSG_AUTH || !f.hdr->has_proof ||
	    f.hdr->proof.len != MAC_LEN || CRYPTO_memcmp(mac, f.hdr->proof.data, MAC_LEN) != 0) {
		pr_warn("%s: client failed authentication (wrong pre-shared key?)", peer);
		dcres_reply_error(fd, 0, -EACCES, DCRES__ERROR_REASON__ERR_REFUSED,
				  "authentication failed");
		dcres_frame_destroy(&f);
		return -EACCES;
	}
	dcres_frame_destroy(&f);

	Dcres__Header ok = dcres_reply_header(0, 0);
	return dcres_frame_send(fd, &ok, NULL, 0);
}
