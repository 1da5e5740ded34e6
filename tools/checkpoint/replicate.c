/* Replicas: after the checkpoint, each part copied to other hosts of the
 * set (ckpt.h). A memory server's part (host-K.mem, host-K.present) goes
 * server to server: this tool asks server K to send it. The main host's
 * part (main.mem, main.loc, main.present, then the manifest) is sent from
 * here. Copies of a part go to distinct memory servers other than its own
 * host: part K to K+1, K+2, ... (wrapping), the main host's to 1, 2, ... */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "dcres/log.h"
#include "dcres/manifest.h"
#include "dcres/memclient.h"

#define REPLICA_CONNECT_MS 5000

int replicate_check(struct ckpt_run *r)
{
	unsigned n = r->before.nservers;
	int err;

	if (!r->opts.replicas)
		return 0;
	if (!r->split || r->opts.conventional) {
		pr_err("--replicas %u: only a D-CRES checkpoint of a split-memory VM has parts "
		       "on its memory servers to copy", r->opts.replicas);
		return -EINVAL;
	}
	if (n < r->opts.replicas + 1) {
		pr_err("--replicas %u needs at least %u memory servers (no two copies of a "
		       "server's part on one host); the VM has %u", r->opts.replicas,
		       r->opts.replicas + 1, n);
		return -EINVAL;
	}
	if (!r->opts.psk_path) {
		pr_err("--replicas needs --psk (the memory servers' pre-shared key)");
		return -EINVAL;
	}
	if ((err = dcres_psk_load(r->opts.psk_path, &r->psk)))
		pr_err("--psk %s: cannot load the key", r->opts.psk_path);
	return err;
}

/* The memory server (1..n) receiving copy j of part p. */
static unsigned target_of(unsigned p, unsigned j, unsigned n)
{
	return p == 0 ? 1 + j % n : 1 + (p + j) % n;
}

/* Connects to memory server k (1-based) attached to the VM; err gets why
 * not. */
static int connect_server(const struct ckpt_run *r, unsigned k, struct dcres_memclient **c,
			  char *err, size_t err_len)
{
	const char *addr = r->parts[k - 1].address;
	int ret = dcres_memclient_connect(addr, &r->psk, REPLICA_CONNECT_MS, c);

	if (ret) {
		snprintf(err, err_len, "memory server %u (%s) cannot be reached: %s", k, addr,
			 strerror(-ret));
		return ret;
	}
	ret = dcres_memclient_attach(*c, r->uuid, r->ram_size);
	if (ret) {
		snprintf(err, err_len, "memory server %u (%s): %s", k, addr,
			 dcres_memclient_error(*c));
		dcres_memclient_close(*c);
		*c = NULL;
	}
	return ret;
}

/* Sends the main host's files names[0..n) (in r->dir, sums in files) to
 * the server of c; adds the bytes sent to *bytes. */
static int send_main_files(const struct ckpt_run *r, struct dcres_memclient *c,
			   const struct ckpt_file_sum *files, unsigned n, uint64_t *bytes,
			   char *err, size_t err_len)
{
	for (unsigned i = 0; i < n; i++) {
		struct dcres_file_sum f = { .name = files[i].name, .size = files[i].size,
					    .crc32c = files[i].crc };
		char path[PATH_MAX + 64];
		uint64_t sent;
		int fd, ret;

		snprintf(path, sizeof(path), "%s/%s", r->dir, files[i].name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			ret = -errno;
			snprintf(err, err_len, "%s: %s", path, strerror(errno));
			return ret;
		}
		ret = dcres_memclient_put_file(c, r->server_dir, &f, fd, path, &sent);
		close(fd);
		if (ret) {
			snprintf(err, err_len, "copying %s to %s: %s", path, dcres_memclient_peer(c),
				 *dcres_memclient_error(c) ? dcres_memclient_error(c)
							   : strerror(-ret));
			return ret;
		}
		*bytes += sent;
	}
	return 0;
}

/* One copy (a thread each). */
struct job {
	struct ckpt_run *r;
	struct ckpt_replica *c;
	pthread_t thread;
	bool started;
};

static void *job_main(void *arg)
{
	struct job *j = arg;
	struct ckpt_run *r = j->r;
	struct ckpt_replica *c = j->c;
	struct dcres_memclient *m = NULL;
	int64_t t0 = ckpt_now_ms();

	if (c->part == 0) {
		c->ret = connect_server(r, c->target, &m, c->error, sizeof(c->error));
		if (!c->ret)
			c->ret = send_main_files(r, m, r->main_files, r->nmain_files, &c->bytes,
						 c->error, sizeof(c->error));
	} else {
		const struct dcres_loc_part *p = &r->parts[c->part - 1];
		struct dcres_file_sum files[2] = {
			{ .name = "", .size = p->mem_size, .crc32c = p->mem_crc },
			{ .name = "", .size = p->present_size, .crc32c = p->present_crc },
		};
		char mem[32], present[32];

		snprintf(mem, sizeof(mem), "host-%u.mem", p->host);
		snprintf(present, sizeof(present), "host-%u.present", p->host);
		files[0].name = mem;
		files[1].name = present;
		c->ret = connect_server(r, c->part, &m, c->error, sizeof(c->error));
		if (!c->ret) {
			c->ret = dcres_memclient_replicate(m, r->server_dir, files, 2,
							   r->parts[c->target - 1].address,
							   &c->bytes);
			if (c->ret)
				snprintf(c->error, sizeof(c->error), "%s",
					 dcres_memclient_error(m));
		}
	}
	dcres_memclient_close(m);
	c->ms = ckpt_now_ms() - t0;
	return NULL;
}

/* Sends the rewritten manifest to each server that received the main
 * host's files (a copy without it would not be a checkpoint there). */
static void send_manifest(struct ckpt_run *r)
{
	struct ckpt_file_sum man = { .name = "manifest" };
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/manifest", r->dir);
	if (dcres_file_checksum(path, &man.size, &man.crc)) {
		pr_err("%s: cannot checksum it to send it", path);
		return;
	}
	for (unsigned i = 0; i < r->nreplicas; i++) {
		struct ckpt_replica *c = &r->replicas[i];
		struct dcres_memclient *m = NULL;

		if (c->part != 0 || c->ret)
			continue;
		c->ret = connect_server(r, c->target, &m, c->error, sizeof(c->error));
		if (!c->ret)
			c->ret = send_main_files(r, m, &man, 1, &c->bytes, c->error,
						 sizeof(c->error));
		dcres_memclient_close(m);
	}
}

int replicate_run(struct ckpt_run *r)
{
	unsigned n = r->nparts, copies = r->opts.replicas, failed = 0;
	struct job *jobs;
	int err;

	if (!copies)
		return 0;
	if (!r->dcres_mode || n < copies + 1) {
		pr_err("--replicas %u: main.loc records %u memory servers' parts; the copies "
		       "need %u", copies, n, copies + 1);
		return -EINVAL;
	}
	r->nreplicas = (n + 1) * copies;
	r->replicas = calloc(r->nreplicas, sizeof(*r->replicas));
	jobs = calloc(r->nreplicas, sizeof(*jobs));
	if (!r->replicas || !jobs) {
		free(jobs);
		return -ENOMEM;
	}
	for (unsigned p = 0, i = 0; p <= n; p++) {
		for (unsigned j = 0; j < copies; j++, i++) {
			r->replicas[i] = (struct ckpt_replica){ .part = p,
								.target = target_of(p, j, n) };
			jobs[i] = (struct job){ .r = r, .c = &r->replicas[i] };
		}
	}
	for (unsigned i = 0; i < r->nreplicas; i++) {
		err = pthread_create(&jobs[i].thread, NULL, job_main, &jobs[i]);
		jobs[i].started = err == 0;
		if (err) {
			jobs[i].c->ret = -err;
			snprintf(jobs[i].c->error, sizeof(jobs[i].c->error), "no thread: %s",
				 strerror(err));
		}
	}
	for (unsigned i = 0; i < r->nreplicas; i++)
		if (jobs[i].started)
			pthread_join(jobs[i].thread, NULL);
	free(jobs);
	/* The manifest names the copies made; it goes out last, with main's. */
	err = manifest_out(r);
	if (!err)
		send_manifest(r);
	for (unsigned i = 0; i < r->nreplicas; i++) {
		const struct ckpt_replica *c = &r->replicas[i];

		if (!c->ret)
			continue;
		failed++;
		pr_err("replica of %s's part on memory server %u (%s) is missing: %s",
		       c->part ? r->parts[c->part - 1].address : "the main host", c->target,
		       r->parts[c->target - 1].address, c->error);
	}
	r->replicated_ms = ckpt_now_ms();
	if (err)
		return err;
	return failed ? -EIO : 0;
}

unsigned replicate_survivable(const struct ckpt_run *r)
{
	unsigned fewest = r->opts.replicas;

	for (unsigned p = 0; p <= r->nparts; p++) {
		unsigned made = 0;

		for (unsigned i = 0; i < r->nreplicas; i++)
			made += r->replicas[i].part == p && r->replicas[i].ret == 0;
		if (made < fewest)
			fewest = made;
	}
	return r->nreplicas ? fewest : 0;
}
