/*
 * queue.h — internals of the durable task queue (queue.c) for the loops'
 * owners: a server worker and the test client start the consumer of the
 * app's queue on their loop, and stop it when they begin to stop.
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
/* Jobs in the queue (not dead), read blocking on the calling thread; -1 on
 * error or without a queue. For the test client. */
int64_t cf_queue_count_sync(cf_app *app);

#endif
