/*
 * pipeline.c — one request's way through the app, run in its main task:
 *
 *   app-wide wrappers (cf_wrap), around all that follows up to the send
 *   (a request the protocol refused goes straight to its error handler)
 *   before_request hooks (app first, then groups inward)
 *   → routing outcome (404, 405, 308, automatic OPTIONS) or
 *     middleware chain → handler (on the loop, or on the thread pool)
 *   → error handler when aborted or failed (innermost group first)
 *   → CORS headers (cors.c)
 *   → after_request hooks (innermost first, newest first)
 *   → the session cookie (session.c), after the wrappers too
 *   → response handed to the exchange's protocol (then a streaming body's producer)
 *   → teardown hooks, always.
 *
 * Every step is ordinary C on the task's coroutine, so any of them may
 * await. When the client goes away the task is cancelled: the pending
 * await returns CF_ECANCELED, no response is built, teardown still runs.
 */
#include <stdio.h>
#include <string.h>

#include "app/compress.h"
#include "app/req.h"
#include "app/session.h"

#define MAX_DEPTH 32

/* Groups from the root (index 0) to `g`. */
static size_t group_path(cf_group *g, cf_group **out)
{
    cf_group *rev[MAX_DEPTH];
    size_t n = 0;
    for (; g && n < MAX_DEPTH; g = g->parent)
        rev[n++] = g;
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    return n;
}

static void default_error_page(cf_req *rq, int status)
{
    const char *reason = cf_reason_phrase(status);
    bool show = rq->errmsg && rq->errmsg[0] && (status < 500 || rq->app->opt[CF_OPT_DEBUG]);
    if (show)
        cf_textf(rq, status, "%d %s: %s\n", status, reason, rq->errmsg);
    else
        cf_textf(rq, status, "%d %s\n", status, reason);
}

static void handle_error(cf_req *rq, cf_group **path, size_t depth)
{
    int status = rq->abort_status;
    if (status >= 500 && rq->errmsg && rq->app->opt[CF_OPT_DEBUG])
        fprintf(stderr, "carafe: %s failed: %s\n", rq->label ? rq->label : "request", rq->errmsg);
    for (size_t i = depth; i-- > 0;) {
        cf_group *g = path[i];
        for (size_t k = 0; k < g->nerrh; k++) {
            if (g->errh[k].status != status)
                continue;
            g->errh[k].fn(rq);
            if (rq->responded && !rq->abort_status)
                return;
            default_error_page(rq, rq->abort_status ? rq->abort_status : status);
            return;
        }
    }
    default_error_page(rq, status);
}

static int run_on_thread(void *arg)
{
    cf_req *rq = arg;
    rq->route->handler(rq);
    return 0;
}

static void run_app(cf_req *rq);

/* The app-wide wrappers (cf_wrap) around run_app: cf_next in one runs the
 * next, and the last one's runs the app. */
static void next_wrapper(cf_req *rq)
{
    cf_handler_list *w = &rq->app->wraps;
    if (rq->wrap_pos < w->len) {
        w->fn[rq->wrap_pos++](rq);
    } else if (rq->wrap_pos == w->len) {
        rq->wrap_pos++;
        rq->wrapping = false; /* cf_next in there is the route's chain */
        run_app(rq);
        rq->wrapping = true;
    } /* else: called twice */
}

void cf_next(cf_req *rq)
{
    if (rq->wrapping) {
        next_wrapper(rq);
        return;
    }
    cf_route *r = rq->route;
    if (!r || rq->chain_pos > r->nchain)
        return; /* called twice, or outside a route's chain */
    if (rq->chain_pos < r->nchain) {
        cf_middleware mw = r->chain[rq->chain_pos++];
        mw(rq);
        return;
    }
    rq->chain_pos++;
    if (!r->threaded) {
        r->handler(rq);
        return;
    }
    cf_task *job = cf_to_thread(rq, run_on_thread, rq);
    if (!job) {
        cf_fail(rq, "cannot start the handler on the thread pool");
        return;
    }
    /* The handler touches the request from its thread until it returns, so
     * nothing may go on with the request before that, cancelled or not. */
    cf_waitable_detach((cf_waitable *)job);
    cf_task_await_shielded(job);
}

static void answer_route_status(cf_req *rq)
{
    char allow[160];
    switch (rq->route_status) {
    case 404:
        rq->errmsg = "The requested URL was not found on the server.";
        cf_abort(rq, 404);
        break;
    case 405:
        cf_allow_header(rq->allowed, cf_rule_data(rq->rule), allow, sizeof allow);
        cf_set_header(rq, "Allow", allow);
        rq->errmsg = "The method is not allowed for the requested URL.";
        cf_abort(rq, 405);
        break;
    case 308: {
        const char *q = rq->x.query && rq->x.query[0] ? rq->x.query : NULL;
        /* The target as sent (still encoded) keeps odd characters intact. */
        size_t plen = strcspn(rq->x.target, "?");
        const char *t = rq->x.target;
        if (strncmp(t, "http://", 7) == 0 || strncmp(t, "https://", 8) == 0) {
            t = strchr(strchr(t, ':') + 3, '/');
            plen = t ? strcspn(t, "?") : 0;
        }
        char *loc = cf_sprintf(rq, "%.*s/%s%s", (int)plen, t ? t : "", q ? "?" : "", q ? q : "");
        cf_redirect(rq, 308, loc);
        break;
    }
    default: /* OPTIONS on a rule without an OPTIONS route */
        cf_allow_header(rq->allowed, cf_rule_data(rq->rule), allow, sizeof allow);
        cf_set_header(rq, "Allow", allow);
        cf_send(rq, cf_cors_options_status(rq), NULL, "", 0);
    }
}

/* The handler deadline, a cancelled task, a missing response, an abort:
 * what the request's outcome is so far, with its error page. Run after the
 * app and again after the wrappers, which may have changed it. */
static void settle(cf_req *rq)
{
    cf_timer_stop(&rq->deadline); /* it covers the app, not what follows */
    if (rq->timed_out) {
        /* The handler deadline cancelled the task: answer for it. */
        rq->timed_out = false;
        rq->main.cancelled = false;
        rq->error = CF_ETIMEDOUT;
        rq->errmsg = "the request took longer than the handler timeout";
        cf_abort(rq, 503);
    }
    if (rq->main.cancelled) {
        rq->error = CF_ECANCELED;
        rq->errmsg = "the client went away";
        return;
    }
    if (!cf_responded(rq)) {
        rq->error = CF_EFAIL;
        rq->errmsg = "the handler returned without a response";
        cf_abort(rq, 500);
    }
    if (rq->abort_status)
        handle_error(rq, rq->gpath, rq->gdepth);
}

/* Everything the app does for a request, inside the wrappers. */
static void run_app(cf_req *rq)
{
    cf_group **path = rq->gpath;
    size_t depth = rq->gdepth;
    /* Refused by the protocol (a body over the limit, a path it will not
     * route): no hook or handler runs, the error handlers answer. */
    if (rq->x.refused) {
        rq->errmsg = rq->x.refused_reason;
        cf_abort(rq, rq->x.refused);
    }
    for (size_t i = 0; i < depth && !cf_responded(rq); i++)
        for (size_t k = 0; k < path[i]->before.len && !cf_responded(rq); k++)
            path[i]->before.fn[k](rq);

    if (!cf_responded(rq)) {
        if (!rq->route) {
            answer_route_status(rq);
        } else {
            cf_route_build_chain(rq->route);
            rq->chain_pos = 0;
            cf_next(rq);
        }
    }
    settle(rq);
    if (rq->main.cancelled)
        return;
    /* A session written without SECRET_KEY: Flask's RuntimeError, a 500. */
    if (cf_session_failed(rq)) {
        cf_abort(rq, 500);
        handle_error(rq, path, depth);
    }
    cf_cors_apply(rq);
    for (size_t i = depth; i-- > 0;) {
        for (size_t k = path[i]->after.len; k-- > 0;) {
            path[i]->after.fn[k](rq);
            if (rq->abort_status) /* an after hook failed: its error page is final */
                handle_error(rq, path, depth);
        }
    }
}

static int pipeline_main(void *ctx, void *arg)
{
    cf_req *rq = ctx;
    (void)arg;
    cf_group *path[MAX_DEPTH];
    size_t depth = group_path(rq->route ? rq->route->group : &rq->app->root, path);
    rq->gpath = path;
    rq->gdepth = depth;

    if (rq->app->wraps.len) {
        rq->wrapping = true;
        next_wrapper(rq);
        rq->wrapping = false;
        settle(rq); /* what the wrappers left */
    } else {
        run_app(rq);
    }
    if (!rq->main.cancelled) {
        rq->x.upgrade = rq->wants_ws && rq->stream_fn;
        rq->x.streaming = rq->stream_fn &&
                          (rq->x.upgrade || (!rq->x.is_head && cf_status_has_body(rq->x.status)));
        /* Flask saves the session after the after_request hooks; here also
         * after the wrappers, for every response (errors, redirects, a
         * stream's head). */
        cf_session_save(rq);
        cf_compress_response(rq);
        rq->x.sent = true;
        rq->x.ops->send(&rq->x);
        if (rq->x.streaming)
            cf_stream_run(rq); /* the body, still on this task */
    }

    /* Teardown runs even for a cancelled request, and may await again. */
    rq->main.cancelled = false;
    for (size_t i = depth; i-- > 0;)
        for (size_t k = path[i]->teardown.len; k-- > 0;)
            path[i]->teardown.fn[k](rq);
    return 0;
}

void cf_req_dispatch(cf_req *rq)
{
    int64_t limit = rq->app->opt[CF_OPT_HANDLER_TIMEOUT];
    if (limit > 0)
        cf_timer_start(&rq->deadline, (uint64_t)limit);
    if (!cf_task_start(&rq->main, &rq->scope, rq, pipeline_main, NULL, rq->label)) {
        /* No coroutine stack to be had (memory exhausted): answer anyway. */
        cf_text(rq, 503, "503 Service Unavailable: out of coroutine stacks\n");
        rq->x.sent = true;
        rq->x.ops->send(&rq->x);
        cf_scope_ref(&rq->scope);
        cf_scope_unref(&rq->scope);
        return;
    }
    cf_sched_run();
}
