/* The memory server: listening socket, connections, request dispatch. */
#ifndef DCRES_MEMSERVER_SERVER_H
#define DCRES_MEMSERVER_SERVER_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "dcres/auth.h"
#include "dcres/uuid.h"
#include "vmstore.h"

#define SERVER_MAX_CONNS 256
/* Connections still authenticating may hold only a few slots, so that they
 * can never take the ones authenticated peers need: at most this many at
 * once (a new one then closes the oldest), and this many per address
 * (refused beyond). Each has this long for the whole handshake. */
#define SERVER_MAX_UNAUTH 32
#define SERVER_MAX_UNAUTH_PER_PEER 8
#define SERVER_AUTH_DEADLINE_MS 5000
/* What a closing connection may take to drain its peer's unread input. */
#define SERVER_LINGER_MS 200

/* A connection's slot. */
struct server_slot {
	int fd;                     /* -1: free */
	bool unauth;                /* still authenticating */
	uint64_t conn_id;           /* accept order */
	char host[64];              /* peer address, numeric */
};

struct server {
	uint8_t id[16];             /* reported in STATS (server_id_load) */
	char id_str[DCRES_UUID_STR_LEN];
	struct arena arena;
	struct vmstore store;
	struct dcres_psk psk;
	char dir[PATH_MAX];         /* checkpoint files live below it (for logs) */
	int dir_fd;                 /* the same, opened: every file is reached from it */
	int listen_fd;
	const char *fault_file;     /* --fault-file (fault.h), or NULL */
	pthread_mutex_t lock;       /* guards slots[], nconns and nunauth */
	pthread_cond_t idle;        /* signalled when a connection ends */
	struct server_slot slots[SERVER_MAX_CONNS];
	unsigned nconns, nunauth;
	uint64_t next_conn_id;
};

/* Sets srv's id from the UUID in path, or a new random one (written to
 * path when path is given and missing, so it stays across restarts). */
int server_id_load(struct server *srv, const char *path);

/* Marks every connection slot free. */
void server_init_slots(struct server *srv);

/* Binds and listens on "ADDR:PORT". */
int server_listen(struct server *srv, const char *addr);

/* Accepts connections until server_shutdown; one thread per connection. */
void server_accept_loop(struct server *srv);

/* Stops accepting, closes every connection (aborting the checkpoints they
 * run) and waits for their threads. */
void server_shutdown(struct server *srv);

#endif
