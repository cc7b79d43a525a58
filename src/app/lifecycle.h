/*
 * lifecycle.h — running the app's serving hooks (cf_before_serving,
 * cf_after_serving) on a loop: what a server worker and the test client
 * call when they start and stop serving the app.
 */
#ifndef CF_APP_LIFECYCLE_H
#define CF_APP_LIFECYCLE_H

#include "app/app.h"

typedef struct cf_lifecycle {
    void (*done)(void *ctx, int rc);
    void *ctx;
    cf_req *rq;  /* the hooks' context while they run, else NULL */
    int rc;      /* 0, or the first failure */
    bool running;
} cf_lifecycle;

/* Run the before_serving (after = false) or after_serving hooks of app in
 * a task of their own; done(ctx, rc) is called on the loop once they and
 * their children ended: rc 0, or the failing hook's code (before_serving
 * stops at the first failure, after_serving runs every hook). With no
 * hooks, done is called before this returns. */
void cf_lifecycle_run(cf_lifecycle *l, cf_app *app, bool after, void (*done)(void *ctx, int rc),
                      void *ctx);
/* Cancel running hooks: their awaits return CF_ECANCELED. */
void cf_lifecycle_cancel(cf_lifecycle *l);

#endif
