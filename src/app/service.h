/*
 * service.h — how a module of a later layer (the database, the task
 * queue, the HTTP client in src/io/) plugs into the app without the app
 * naming it.
 *
 * A module attaches its state to the app once, at set-up (the first
 * cf_db_open, cf_queue_open, ...), with a table of hooks. Set-up only
 * records what to open, so a program run with --help needs no database
 * or queue; the app calls the hooks at the moments only it knows: it is
 * about to be served (connect, create schemas), a loop starts or stops
 * serving the app (a server worker, the test client), a request crashed and its
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
    /* The app is about to be served: once by cf_run before it forks its
     * workers (after dropping privileges, so files get the right owner),
     * and by a test client when it starts. Connect, check, run what set-up
     * recorded (schema scripts); blocking, and the next calls do nothing
     * once it succeeded. Non-zero stops the start; the module printed why. */
    int (*prepare)(cf_app *app, void *state);
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
 * (loop_stop: in reverse). prepare stops at the first failure and returns
 * its code (0 when all are ready). */
int cf_app_services_prepare(cf_app *app);
void cf_app_services_loop_start(cf_app *app);
void cf_app_services_loop_stop(cf_app *app);
void cf_app_services_crashed(cf_req *rq);

#endif
