/* The memory server: listening socket, connections, request dispatch. */
#ifndef DCRES_MEMSERVER_SERVER_H
#define DCRES_MEMSERVER_SERVER_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>

#include "arena.h"
#include "dcres/auth.h"
#include "vmstore.h"

#define SERVER_MAX_CONNS 256
#define SERVER_AUTH_TIMEOUT_S 10

struct server {
	struct arena arena;
	struct vmstore store;
	struct dcres_psk psk;
	char dir[PATH_MAX];         /* checkpoint files live below it (for logs) */
	int dir_fd;                 /* the same, opened: every file is reached from it */
	int listen_fd;
	pthread_mutex_t lock;       /* guards conns[] and nconns */
	pthread_cond_t idle;        /* signalled when a connection ends */
	int conns[SERVER_MAX_CONNS];/* fds of live connections, -1 free */
	unsigned nconns;
	uint64_t next_conn_id;
};

/* Binds and listens on "ADDR:PORT". */
int server_listen(struct server *srv, const char *addr);

/* Accepts connections until server_shutdown; one thread per connection. */
void server_accept_loop(struct server *srv);

/* Stops accepting, closes every connection (aborting the checkpoints they
 * run) and waits for their threads. */
void server_shutdown(struct server *srv);

#endif
