/*
 * background.c — tasks that outlive the request that started them.
 *
 * A background task gets a request object of its own, on an exchange
 * that sends nothing (a context, also used by the serving hooks): so it has its own arena, storage and scope, and every
 * primitive that works in a handler works in it. The scheduler counts them
 * and keeps a list, so a stopping worker (or the test client) can wait for
 * them and name the ones it had to cancel.
 */
#include <stdio.h>
#include <string.h>

#include "app/req.h"

typedef struct bg_task {
    cf_req *rq;
    char *name;
    cf_task_fn fn;
    void *arg;
    struct bg_task *next, *prev;
} bg_task;

static void bg_send(cf_exchange *x) { (void)x; }

static void bg_unlink(bg_task *b)
{
    cf_sched *s = cf_sched_get();
    if (b->prev)
        b->prev->next = b->next;
    else
        s->background = b->next;
    if (b->next)
        b->next->prev = b->prev;
    s->nbackground--;
    if (s->nbackground == 0 && s->background_idle)
        s->background_idle(s->background_idle_arg);
}

static void bg_finished(cf_exchange *x) { bg_unlink(x->proto); }

static void bg_crashed(cf_exchange *x)
{
    bg_task *b = x->proto;
    fprintf(stderr, "carafe: background task %s crashed\n", b->name);
    bg_unlink(b); /* its memory stays: it may be inconsistent */
}

static const cf_exchange_ops bg_ops = {.send = bg_send, .finished = bg_finished, .crashed = bg_crashed};

static int bg_main(void *ctx, void *arg)
{
    cf_req *rq = ctx;
    bg_task *b = arg;
    int rc = b->fn(rq, b->arg);
    if (rc < 0) {
        const char *msg = cf_errmsg(rq);
        fprintf(stderr, "carafe: background task %s ended with an error: %s%s%s\n", b->name, cf_strerror(rc),
                *msg ? ": " : "", msg);
    }
    return rc;
}

cf_req *cf_context_new(cf_app *app, const cf_exchange_ops *ops, void *proto, const char *method,
                       const char *path)
{
    cf_req *rq = cf_req_new(app, ops, proto);
    if (!rq)
        return NULL;
    rq->x.method = cf_strdup(rq, method);
    rq->x.path = rq->x.target = cf_strdup(rq, path);
    rq->x.query = cf_strdup(rq, "");
    rq->label = rq->x.path;
    return rq;
}

int cf_context_start(cf_req *rq, cf_task_body fn, void *arg)
{
    if (!cf_task_start(&rq->main, &rq->scope, rq, fn, arg, rq->label)) {
        cf_req_free(rq);
        return CF_ENOMEM;
    }
    /* Not a child of the caller: the caller's cancellation must not reach it. */
    cf_waitable_detach(&rq->main.w);
    rq->main.cancelled = false;
    return 0;
}

int cf_background(cf_req *parent, const char *name, cf_task_fn fn, const void *arg,
                  size_t arg_size)
{
    cf_sched *s = cf_sched_get();
    if (!s || !fn)
        return CF_EPERM;
    cf_req *rq = cf_context_new(parent->app, &bg_ops, NULL, "TASK", name ? name : "(unnamed)");
    if (!rq)
        return CF_ENOMEM;
    bg_task *b = cf_alloc(rq, sizeof *b);
    memset(b, 0, sizeof *b);
    b->rq = rq;
    b->name = rq->x.path;
    b->fn = fn;
    b->arg = (void *)arg;
    if (arg && arg_size) {
        b->arg = cf_alloc(rq, arg_size);
        memcpy(b->arg, arg, arg_size);
    }
    rq->x.proto = b;
    rq->label = cf_sprintf(rq, "background task %s", b->name);
    if (cf_context_start(rq, bg_main, b) != 0)
        return CF_ENOMEM;
    b->next = s->background;
    if (b->next)
        b->next->prev = b;
    s->background = b;
    s->nbackground++;
    cf_sched_run();
    return 0;
}

size_t cf_background_count(void)
{
    cf_sched *s = cf_sched_get();
    return s ? s->nbackground : 0;
}

void cf_background_cancel_all(void)
{
    cf_sched *s = cf_sched_get();
    for (bg_task *b = s ? s->background : NULL; b; b = b->next) {
        fprintf(stderr, "carafe: cancelling background task %s (graceful timeout)\n", b->name);
        cf_task_cancel(&b->rq->main);
    }
}
