/*
 * lifecycle.c — the serving hooks: registration, and running them once
 * per loop when it starts and stops serving the app (lifecycle.h).
 *
 * The hooks run like a background task: a request object of their own on
 * an exchange that sends nothing, so they have memory, storage, a scope
 * for children, and every await works. They run one after the other in
 * one task; the caller learns the outcome when the scope is released,
 * i.e. when every child and pool job of theirs has ended too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/lifecycle.h"
#include "app/req.h"

typedef struct cf_serving_hook {
    cf_serving_fn fn;
    char *name;
} cf_serving_hook;

void cf_serving_add(cf_app *app, bool after, cf_serving_fn fn, const char *name)
{
    if (!app || !fn)
        cf_setup_fail("cf_%s_serving: app and hook are required", after ? "after" : "before");
    size_t n = app->nserving[after];
    cf_serving_hook *hooks = realloc(app->serving[after], (n + 1) * sizeof *hooks);
    char *copy = strdup(name ? name : "(unnamed)");
    if (!hooks || !copy)
        cf_setup_fail("out of memory");
    hooks[n] = (cf_serving_hook){fn, copy};
    app->serving[after] = hooks;
    app->nserving[after] = n + 1;
}

void cf_serving_free(cf_app *app)
{
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < app->nserving[k]; i++)
            free(app->serving[k][i].name);
        free(app->serving[k]);
        app->serving[k] = NULL;
        app->nserving[k] = 0;
    }
}

static void life_send(cf_exchange *x) { (void)x; }

static void life_end(cf_lifecycle *l)
{
    l->rq = NULL;
    l->running = false;
    l->done(l->ctx, l->rc);
}

static void life_finished(cf_exchange *x) { life_end(x->proto); }

static void life_crashed(cf_exchange *x)
{
    cf_lifecycle *l = x->proto;
    fprintf(stderr, "carafe: %s crashed\n", cf_req_of(x)->label);
    if (!l->rc)
        l->rc = CF_EFAIL;
    life_end(l); /* its memory stays: it may be inconsistent */
}

static const cf_exchange_ops life_ops = {
    .send = life_send, .finished = life_finished, .crashed = life_crashed};

static int life_main(void *ctx, void *arg)
{
    cf_req *rq = ctx;
    cf_lifecycle *l = arg;
    bool after = strcmp(rq->x.path, "after_serving") == 0;
    size_t n = rq->app->nserving[after];
    for (size_t k = 0; k < n; k++) {
        /* after_serving undoes before_serving: newest first */
        cf_serving_hook *h = &rq->app->serving[after][after ? n - 1 - k : k];
        rq->errmsg = NULL;
        rq->label = cf_sprintf(rq, "%s hook %s", rq->x.path, h->name);
        int rc = h->fn(rq);
        if (rc >= 0)
            continue;
        const char *msg = cf_errmsg(rq);
        cf_log(rq, CF_LOG_ERROR, "%s failed: %s%s%s", rq->label, cf_strerror(rc), *msg ? ": " : "",
               msg);
        if (!l->rc)
            l->rc = rc;
        if (!after)
            break; /* the app is not ready: serve nothing */
    }
    return l->rc;
}

void cf_lifecycle_run(cf_lifecycle *l, cf_app *app, bool after, void (*done)(void *ctx, int rc),
                      void *ctx)
{
    memset(l, 0, sizeof *l);
    l->done = done;
    l->ctx = ctx;
    if (!app->nserving[after]) {
        done(ctx, 0);
        return;
    }
    cf_req *rq = cf_context_new(app, &life_ops, l, "SERVE", after ? "after_serving" : "before_serving");
    if (!rq || cf_context_start(rq, life_main, l) != 0) {
        done(ctx, CF_ENOMEM);
        return;
    }
    l->rq = rq;
    l->running = true;
    cf_sched_run();
}

void cf_lifecycle_cancel(cf_lifecycle *l)
{
    if (l->rq)
        cf_task_cancel(&l->rq->main);
}
