/*
 * access_log.c — the worker's access log records: one per exchange that
 * ended (common log format with duration and request id, or JSON with
 * --log-format json), and one for what the server did on its own (a
 * framing error, a timeout). Records go to the worker's buffer, flushed
 * before the loop next waits (worker.c).
 */
#include <stdio.h>
#include <string.h>

#include "app/req.h"
#include "server/worker.h"

void cf_access_log_exchange(cf_worker *w, cf_exchange *x)
{
    cf_req *rq = cf_req_of(x);
    int status = x->status;
    char line[2048];
    double ms = (double)(cf_now_ns() - x->start_ns) / 1e6;
    const char *id = x->request_id ? x->request_id : "-";
    /* Why the server refused it (a body over the limit, a dot segment). */
    const char *why = x->refused ? x->refused_reason : NULL;
    int n;
    if (w->log_json) {
        char target[1024], ua[256], err[256] = "";
        cf_json_escape(target, sizeof target, x->target);
        const char *agent = cf_exchange_header(x, "User-Agent");
        cf_json_escape(ua, sizeof ua, agent ? agent : "");
        if (why) {
            memcpy(err, ",\"error\":\"", 10);
            size_t e = 10 + cf_json_escape(err + 10, sizeof err - 12, why);
            memcpy(err + e, "\"", 2);
        }
        n = snprintf(line, sizeof line,
                     "{\"time\":\"%s\",\"remote\":\"%s\",\"request_id\":\"%s\",\"method\":\"%s\","
                     "\"target\":\"%s\",\"protocol\":\"HTTP/1.%d\",\"status\":%d,\"bytes\":%zu,"
                     "\"duration_ms\":%.3f,\"route\":\"%s\",\"user_agent\":\"%s\"%s}\n",
                     w->log_date, x->peer, id, x->method, target, x->minor, status, x->bytes_sent,
                     ms, rq->route ? rq->route->name : "", ua, err);
    } else {
        n = snprintf(line, sizeof line, "%s - - [%s] \"%s %.900s HTTP/1.%d\" %d %zu %.3fms %s%s%.200s%s\n",
                     x->peer, w->log_date, x->method, x->target, x->minor, status,
                     x->bytes_sent, ms, id, why ? " (" : "", why ? why : "", why ? ")" : "");
    }
    if (n < 0)
        return;
    if (n > (int)sizeof line - 1)
        n = (int)sizeof line - 1, line[n - 1] = '\n';
    cf_worker_log(w, line, (size_t)n);
}

/* An access log line for what the server did on its own (a framing error,
 * a timeout), with no request to name; status 0 is logged as "-". */
void cf_access_log_event(cf_worker *w, const char *peer, int status, size_t bytes,
                         const char *what)
{
    if (!w->access_log)
        return;
    char line[640], st[8] = "-", esc[256];
    if (status)
        snprintf(st, sizeof st, "%d", status);
    int n;
    if (w->log_json) {
        cf_json_escape(esc, sizeof esc, what);
        n = snprintf(line, sizeof line,
                     "{\"time\":\"%s\",\"remote\":\"%s\",\"status\":%s,\"bytes\":%zu,"
                     "\"error\":\"%s\"}\n", w->log_date, peer, status ? st : "null", bytes, esc);
    } else {
        n = snprintf(line, sizeof line, "%s - - [%s] \"-\" %s %zu 0.000ms - (%s)\n", peer,
                     w->log_date, st, bytes, what);
    }
    if (n > 0)
        cf_worker_log(w, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}
