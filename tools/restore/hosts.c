/* The target hosts: --hosts and --capacity (restore.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "restore.h"

/* The index of host name in r->hosts, or -1. */
static int host_index(const struct rst_run *r, const char *name)
{
	for (unsigned i = 0; i < r->nhosts; i++)
		if (!strcmp(r->hosts[i].name, name))
			return (int)i;
	return -1;
}

/* Whether s looks like HOST:PORT with a port of 1..65535. */
static bool host_port(const char *s)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	if (!colon || colon == s)
		return false;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	return !errno && end != colon + 1 && !*end && port >= 1 && port <= 65535;
}

int hosts_parse(struct rst_run *r, const char *arg)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	r->nhosts = 0;
	for (tok = strtok_r(copy, ",", &save); tok && !ret; tok = strtok_r(NULL, ",", &save)) {
		struct rst_host *h = &r->hosts[r->nhosts];

		if (r->nhosts == RST_MAX_HOSTS) {
			fprintf(stderr, "dcres-restore: --hosts: at most %u sub-hosts\n",
				DCRES_PLAN_MAX_SUBS);
			ret = -EINVAL;
		} else if (strlen(tok) >= sizeof(h->name)) {
			fprintf(stderr, "dcres-restore: --hosts: name too long: %s\n", tok);
			ret = -EINVAL;
		} else if (host_index(r, tok) >= 0) {
			fprintf(stderr, "dcres-restore: --hosts: %s is listed twice\n", tok);
			ret = -EINVAL;
		} else if (r->nhosts > 0 && !host_port(tok)) {
			fprintf(stderr, "dcres-restore: --hosts: sub-host %s is not HOST:PORT\n",
				tok);
			ret = -EINVAL;
		} else {
			snprintf(h->name, sizeof(h->name), "%s", tok);
			r->nhosts++;
		}
	}
	free(copy);
	if (!ret && r->nhosts == 0) {
		fprintf(stderr, "dcres-restore: --hosts: no host given\n");
		ret = -EINVAL;
	}
	return ret;
}

/* Parses a size in bytes with an optional K, M, G or T suffix (powers of
 * 1024) into *bytes; false if malformed or too large. */
static bool parse_size(const char *s, uint64_t *bytes)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return false;
	*bytes = (uint64_t)v << shift;
	return true;
}

int hosts_parse_capacity(struct rst_run *r, const char *arg)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok && !ret; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strrchr(tok, '=');
		uint64_t bytes;
		int i;

		if (!eq) {
			fprintf(stderr, "dcres-restore: --capacity: %s is not HOST=SIZE\n", tok);
			ret = -EINVAL;
			break;
		}
		*eq = '\0';
		i = host_index(r, tok);
		if (i < 0) {
			fprintf(stderr, "dcres-restore: --capacity: %s is not one of --hosts\n",
				tok);
			ret = -EINVAL;
		} else if (!parse_size(eq + 1, &bytes)) {
			fprintf(stderr, "dcres-restore: --capacity: %s: bad size %s (bytes, "
				"with K, M, G or T)\n", tok, eq + 1);
			ret = -EINVAL;
		} else {
			r->hosts[i].has_capacity = true;
			r->hosts[i].capacity = bytes / RST_PAGE_SIZE;
		}
	}
	free(copy);
	return ret;
}
