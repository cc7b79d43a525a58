/*
 * db_sqlite_wal.c — the SQLite backend's bound on the write-ahead log.
 *
 * Why. SQLite's automatic checkpoint (every 1000 pages, PASSIVE) copies
 * what it can into the database but never waits for readers, and the log
 * only starts over from its beginning when a writer finds it fully copied
 * and no reader using it. Under concurrent load the pool threads of
 * several workers always have some reader on the log, so that moment
 * never comes: the log grew to hundreds of megabytes in seconds and stayed
 * so until the next start.
 *
 * What. Each connection watches the log's length through its WAL hook
 * (told after every commit, no extra system call), and still runs the
 * usual PASSIVE checkpoint every 1000 pages in it. When the log holds
 * more than CF_DB_WAL_LIMIT bytes, the pool thread that just finished a
 * statement runs a RESTART checkpoint: it holds new writers off (they
 * back off on the loop, as for any lock), waits up to CKPT_WAIT_MS for
 * the readers still on the log (new readers read the database file and
 * do not wait), and copies the rest, so the next writer starts the log
 * over; journal_size_limit (the same limit) then cuts the file back to
 * it. RESTART rather than TRUNCATE: the file is reused rather than grown
 * again block by block (measured with TRUNCATE: about a quarter fewer
 * inserts per second).
 * One thread per process tries at a time; one that cannot because a read
 * outlasted the wait leaves it to a later commit after a pause that
 * doubles up to CKPT_PAUSE_MAX_MS (retrying sooner would only stall the
 * writers: the log cannot restart under that reader anyway).
 *
 * Everything here runs on pool threads (or at start-up), never on the loop.
 */
#include "io/db.h"
#include "io/db_sqlite_int.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#define AUTOCHECKPOINT_PAGES 1000 /* SQLite's default, kept */
#define CKPT_WAIT_MS 50           /* for readers on the log; writers wait meanwhile */
#define CKPT_PAUSE_MS 20          /* after a checkpoint that could not finish... */
#define CKPT_PAUSE_MAX_MS 1000    /* ...doubling up to this */

int cf__sq_spin_ms(const sq_db *s)
{
    return s->db->busy_timeout_ms < BUSY_SPIN_MS ? (int)s->db->busy_timeout_ms : BUSY_SPIN_MS;
}

/* After each commit on c: the log holds `frames` pages. Replaces SQLite's
 * own hook (sqlite3_wal_autocheckpoint), so it does that one's work too. */
static int on_commit(void *arg, sqlite3 *h, const char *name, int frames)
{
    sq_conn *c = arg;
    c->wal_frames = frames;
    /* Past the limit the RESTART checkpoint follows (cf__sq_wal_bound); a
     * PASSIVE one now would only hold the checkpoint lock it needs. */
    if (frames >= AUTOCHECKPOINT_PAGES && frames <= c->wal_max_frames)
        sqlite3_wal_checkpoint_v2(h, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

int cf__sq_wal_setup(sq_db *s, sq_conn *c, char *msg, size_t cap)
{
    if (s->memory)
        return 0;
    sqlite3_stmt *st = NULL;
    int64_t page = 4096;
    if (sqlite3_prepare_v2(c->h, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        page = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    /* A frame is a page and its 24-byte header; the log's own is 32 bytes. */
    int64_t limit = s->db->wal_limit;
    c->wal_max_frames = limit > 32 ? (limit - 32) / (page + 24) : 0;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA journal_size_limit=%lld", (long long)limit);
    char *e = NULL;
    if (sqlite3_exec(c->h, sql, NULL, NULL, &e) != SQLITE_OK) {
        snprintf(msg, cap, "cannot set up SQLite database %s: %s", s->shown, e ? e : "?");
        sqlite3_free(e);
        return CF_EDBCONN;
    }
    sqlite3_wal_hook(c->h, on_commit, c);
    return 0;
}

/* The checkpoint's busy handler: poll every 100 µs until the deadline.
 * SQLite's own sleeps 1, 2, 5, 10... ms between tries, and writers that
 * commit every millisecond would take the lock in every gap. */
static int ckpt_busy(void *arg, int tries)
{
    (void)tries;
    if (cf_now_ns() >= *(uint64_t *)arg)
        return 0;
    usleep(100);
    return 1;
}

void cf__sq_wal_bound(sq_db *s, sq_conn *c)
{
    if (c->wal_frames <= c->wal_max_frames)
        return;
    uint64_t now = cf_now_ns() / 1000000u;
    if (now < atomic_load(&s->ckpt_not_before) || atomic_exchange(&s->ckpt_running, true))
        return; /* paused after a failure, or another thread is at it */
    uint64_t deadline = cf_now_ns() + CKPT_WAIT_MS * 1000000ull;
    sqlite3_busy_handler(c->h, ckpt_busy, &deadline);
    int rc = sqlite3_wal_checkpoint_v2(c->h, "main", SQLITE_CHECKPOINT_RESTART, NULL, NULL);
    sqlite3_busy_timeout(c->h, cf__sq_spin_ms(s));
    uint64_t took = cf_now_ns() / 1000000u - now;
    /* The next commit on c says how long the log is then (another
     * connection may have restarted it meanwhile). */
    c->wal_frames = 0;
    if (rc == SQLITE_OK) {
        s->ckpt_pause_ms = 0;
    } else if (took + 1 < CKPT_WAIT_MS) {
        /* Refused at once: another checkpoint (of any connection or
         * process) held the lock. A later commit tries again. */
    } else { /* a read outlasted the wait: it holds the log until it ends */
        s->ckpt_pause_ms = s->ckpt_pause_ms ? s->ckpt_pause_ms * 2 : CKPT_PAUSE_MS;
        if (s->ckpt_pause_ms > CKPT_PAUSE_MAX_MS)
            s->ckpt_pause_ms = CKPT_PAUSE_MAX_MS;
        atomic_store(&s->ckpt_not_before, now + s->ckpt_pause_ms);
    }
    atomic_store(&s->ckpt_running, false);
}
