/*
 * pg_hosts.h — PostgreSQL host names resolved off the loop.
 *
 * libpq looks host names up with a blocking getaddrinfo inside
 * PQconnectStart/PQconnectPoll, which would stall every request of the
 * worker for as long as DNS takes. So when a connection string names hosts,
 * the PostgreSQL backend resolves them first on libuv's thread pool and
 * hands libpq the addresses (hostaddr) next to the names (host, still used
 * for TLS verification and messages): libpq then resolves nothing.
 */
#ifndef CF_IO_PG_HOSTS_H
#define CF_IO_PG_HOSTS_H

#include <uv.h>

typedef struct pg_hosts pg_hosts;
typedef struct pg_resolve pg_resolve;

/* What conninfo (a URL or key=value string, with PGHOST/PGHOSTADDR/PGPORT
 * as libpq would use them) needs resolved; NULL when nothing does (Unix
 * sockets, numeric addresses, hostaddr given) or it cannot be parsed (then
 * libpq reports the error). */
pg_hosts *pg_hosts_parse(const char *conninfo);
void pg_hosts_free(pg_hosts *h);

/* Called once on the loop with the PQconnectStartParams keywords and
 * values (expand_dbname = 1), or with an error message; both are valid
 * during the call only. */
typedef void (*pg_resolved_cb)(void *ud, const char *const *keys, const char *const *values,
                               const char *error);

/* Starts the lookups (h must outlive them); NULL, without calling cb, if
 * none could start (out of memory). cb is never called from in here. */
pg_resolve *pg_resolve_start(uv_loop_t *loop, const pg_hosts *h, pg_resolved_cb cb, void *ud);
/* The callback will not be called; the lookups end on their own. */
void pg_resolve_abandon(pg_resolve *r);

#endif
