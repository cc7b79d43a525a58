/*
 * queue.h — internals of the durable task queue (queue.c) for the loops'
 * owners. A server worker and the test client start the app's services
 * on their loop (the queue's service starts its consumer there, and stops
 * it when they begin to stop); the test client also asks what is left.
 */
#ifndef CF_IO_QUEUE_H
#define CF_IO_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "app/req.h"

/* Start consuming the app's queue on this loop (no-op without handlers).
 * Jobs run as background tasks, so the owner's wait for background tasks
 * (graceful stop, cf_test_wait_background) waits for running jobs. */
void cf_queue_loop_start(cf_app *app);
/* Claim no more jobs on this loop; running jobs go on. */
void cf_queue_loop_stop(void);
/* This loop has a consumer (the app's queue has handlers). */
bool cf_queue_loop_active(void);
/* Jobs in the queue (not dead), read blocking on the calling thread; -1 on
 * error or without a queue. For the test client. */
int64_t cf_queue_count_sync(cf_app *app);

#endif
