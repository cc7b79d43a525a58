/*
 * service.c — the app's list of attached I/O modules (see service.h).
 */
#include "app/app.h"
#include "app/req.h"
#include "app/service.h"

void *cf_app_service_state(const cf_app *app, const cf_service *svc)
{
    for (size_t i = 0; app && i < app->nservices; i++)
        if (app->services[i].svc == svc)
            return app->services[i].state;
    return NULL;
}

int cf_app_attach_service(cf_app *app, const cf_service *svc, void *state)
{
    for (size_t i = 0; i < app->nservices; i++)
        if (app->services[i].svc == svc) {
            app->services[i].state = state;
            return 0;
        }
    if (app->nservices == CF_APP_MAX_SERVICES)
        return CF_ENOMEM;
    app->services[app->nservices++] = (cf_app_service){svc, state};
    return 0;
}

int cf_app_services_prepare(cf_app *app)
{
    for (size_t i = 0; i < app->nservices; i++) {
        const cf_service *svc = app->services[i].svc;
        int rc = svc->prepare ? svc->prepare(app, app->services[i].state) : 0;
        if (rc != 0)
            return rc;
    }
    return 0;
}

void cf_app_services_loop_start(cf_app *app)
{
    for (size_t i = 0; i < app->nservices; i++)
        if (app->services[i].svc->loop_start)
            app->services[i].svc->loop_start(app, app->services[i].state);
}

void cf_app_services_loop_stop(cf_app *app)
{
    for (size_t i = app->nservices; i-- > 0;)
        if (app->services[i].svc->loop_stop)
            app->services[i].svc->loop_stop(app, app->services[i].state);
}

void cf_app_services_crashed(cf_req *rq)
{
    cf_app *app = rq->app;
    for (size_t i = 0; i < app->nservices; i++)
        if (app->services[i].svc->request_crashed)
            app->services[i].svc->request_crashed(rq, app->services[i].state);
}

/* Called by cf_app_free, newest first: the queue may use the database. */
void cf_app_services_free(cf_app *app)
{
    for (size_t i = app->nservices; i-- > 0;)
        if (app->services[i].svc->free)
            app->services[i].svc->free(app->services[i].state);
    app->nservices = 0;
}

int cf_app_open(cf_app *app) { return cf_app_services_prepare(app); }
