/*
 * service.h — how a module of a later layer (the database, the task
 * queue, the HTTP client in src/io/) plugs into the app without the app
 * naming it.
 *
 * A module attaches its state to the app once, at set-up (the first
 * cf_db_open, cf_queue_open, ...), with a table of hooks. The app calls
 * them at the moments only it knows: a loop starts or stops serving the
 * app (a server worker, the test client), a request crashed and its
 * memory is abandoned (give back what it holds: a database connection,
 * a transaction to roll back), and the app is freed. Per-request clean-up
 * on a normal end needs no hook: a module registers a cf_defer on the
 * request, which runs when its memory goes.
 */
#ifndef CF_APP_SERVICE_H
#define CF_APP_SERVICE_H

#include <stdint.h>

#include "carafe.h"

typedef struct cf_service {
    const char *name;
    /* This thread's loop starts serving the app: start its per-loop work
     * (e.g. claiming queued jobs). May be NULL, like every hook. */
    void (*loop_start)(cf_app *app, void *state);
    /* That loop begins to stop: take no new work; what runs finishes. */
    void (*loop_stop)(cf_app *app, void *state);
    /* A task of rq crashed (server workers): rq never ends, its cf_defer
     * never run; give back what the module holds for it. */
    void (*request_crashed)(cf_req *rq, void *state);
    /* cf_app_free: free the state. */
    void (*free)(void *state);
} cf_service;

#define CF_APP_MAX_SERVICES 8

typedef struct cf_app_service {
    const cf_service *svc;
    void *state;
} cf_app_service;

/* The state `svc` attached to the app, or NULL. */
void *cf_app_service_state(const cf_app *app, const cf_service *svc);
/* Attach (or replace) svc's state. Returns 0, or CF_ENOMEM when full. */
int cf_app_attach_service(cf_app *app, const cf_service *svc, void *state);
/* Call the hook of every attached service, in the order they attached
 * (loop_stop: in reverse). */
void cf_app_services_loop_start(cf_app *app);
void cf_app_services_loop_stop(cf_app *app);
void cf_app_services_crashed(cf_req *rq);

#endif
