/*
 * master.c — the prefork master: starts the workers, restarts any that
 * exit or die (with a back-off when they die in a loop), and handles the
 * signals:
 *
 *   SIGTERM, SIGINT  forward SIGTERM (workers drain within the graceful
 *                    timeout), SIGKILL what is left after it, exit 0
 *   SIGHUP           start a new set of workers, then retire the old ones
 *                    gracefully (lossless: they share the listening socket)
 *   SIGQUIT          stop everything at once
 *
 * A worker that stops on its own (a crash in a handler, --max-requests)
 * says so first (CF_SIG_LEAVING) and is replaced at once, while it drains.
 * A worker whose before_serving hook failed (exit CF_EXIT_BOOT) is started
 * again after 1 s, 2 s, 4 s ... up to 30 s, until one reports that it
 * serves (CF_SIG_READY): retrying heals what time heals (a database not up
 * yet), the growing delay keeps a broken app from spinning.
 *
 * The master runs no application code and no event loop: it blocks the
 * signals and takes them one at a time with sigtimedwait, so there is no
 * async-signal-safety puzzle and nothing of its state leaks into workers.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server/server.h"

typedef struct worker_proc {
    pid_t pid;
    int slot;
    unsigned generation;
    bool retiring; /* sent SIGTERM by us, or leaving on its own: not counted
                      as serving, not restarted when it exits */
} worker_proc;

typedef struct master {
    cf_app *app;
    const cf_server_opts *o;
    int fd;
    bool is_unix;
    cf_metrics *metrics;
    worker_proc *w;
    int cap;           /* 2 x workers: old and new sets overlap on reload */
    unsigned generation;
    int pending;       /* current-generation workers to (re)start */
    double restart_at; /* monotonic seconds; back-off */
    double crash_times[8];
    int ncrash;
    int boot_failures; /* before_serving failures since a worker last served */
    bool stopping;
    double stop_deadline;
    int status;
} master;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static sigset_t master_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, CF_SIG_LEAVING);
    sigaddset(&set, CF_SIG_READY);
    return set;
}

static int free_slot(master *m)
{
    for (int s = 0; s < m->cap; s++) {
        bool used = false;
        for (int i = 0; i < m->cap; i++)
            used |= m->w[i].pid > 0 && m->w[i].slot == s;
        if (!used)
            return s;
    }
    return -1;
}

/* Start a current-generation worker; false if no slot is free (old
 * workers still draining) or fork failed. */
static bool spawn(master *m)
{
    int i = 0;
    while (i < m->cap && m->w[i].pid > 0)
        i++;
    int slot = free_slot(m);
    if (i == m->cap || slot < 0)
        return false;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "carafe: cannot start a worker: %s\n", strerror(errno));
        return false;
    }
    if (pid == 0) {
        sigset_t set = master_signals();
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        signal(SIGHUP, SIG_IGN); /* reload is the master's business */
        /* exit, not _exit: stdio was flushed before the fork, and the
         * sanitizers' exit checks should cover the worker. */
        exit(cf_worker_run(m->app, m->o, m->fd, m->is_unix, m->metrics, slot));
    }
    m->w[i] = (worker_proc){pid, slot, m->generation, false};
    return true;
}

static int live(master *m, bool current_only)
{
    int n = 0;
    for (int i = 0; i < m->cap; i++)
        if (m->w[i].pid > 0 &&
            (!current_only || (m->w[i].generation == m->generation && !m->w[i].retiring)))
            n++;
    return n;
}

static void signal_all(master *m, int sig)
{
    for (int i = 0; i < m->cap; i++) {
        if (m->w[i].pid <= 0)
            continue;
        /* A retiring worker has had its SIGTERM (and is counted as such). */
        if (sig == SIGTERM && m->w[i].retiring)
            continue;
        kill(m->w[i].pid, sig);
        if (sig == SIGTERM)
            m->w[i].retiring = true;
    }
}

/* After a reload, old workers are retired as their replacements start,
 * never before: the number of workers accepting connections does not drop,
 * even when a second SIGHUP comes while the first set still drains (the
 * slots are full then, and the new set starts as the old one exits). */
static void retire_replaced(master *m)
{
    int serving = 0;
    for (int i = 0; i < m->cap; i++)
        serving += m->w[i].pid > 0 && !m->w[i].retiring;
    for (int i = 0; i < m->cap && serving > m->o->workers; i++) {
        worker_proc *w = &m->w[i];
        if (w->pid > 0 && !w->retiring && w->generation != m->generation) {
            kill(w->pid, SIGTERM);
            w->retiring = true;
            serving--;
        }
    }
}

/* Start the current-generation workers that are missing; what cannot start
 * yet stays pending (retried when a worker exits, or within a second). */
static void start_missing(master *m)
{
    while (live(m, true) < m->o->workers && spawn(m))
        ;
    m->pending = live(m, true) < m->o->workers;
    retire_replaced(m);
}

/* Deaths in a loop (a crash at start-up, say) are restarted ever slower:
 * at most 3 in 10 s go at once, then 0.5 s, 1 s, ... up to 30 s. */
static void schedule_restart(master *m, bool crashed)
{
    double t = now_s(), delay = 0;
    if (crashed) {
        memmove(m->crash_times + 1, m->crash_times, sizeof m->crash_times - sizeof(double));
        m->crash_times[0] = t;
        if (m->ncrash < 8)
            m->ncrash++;
        int recent = 0;
        for (int i = 0; i < m->ncrash; i++)
            recent += t - m->crash_times[i] < 10;
        if (recent > 3) {
            delay = 0.5;
            for (int i = 4; i < recent; i++)
                delay *= 2;
            if (delay > 30)
                delay = 30;
            fprintf(stderr, "carafe: workers keep dying; next restart in %.1f s\n", delay);
        }
    }
    m->pending++;
    if (t + delay > m->restart_at)
        m->restart_at = t + delay;
}

/* A worker's before_serving failed: no restart at once, however few died. */
static void schedule_boot_retry(master *m)
{
    m->boot_failures++;
    double delay = 1;
    for (int i = 1; i < m->boot_failures && delay < 30; i++)
        delay *= 2;
    if (delay > 30)
        delay = 30;
    fprintf(stderr, "carafe: a worker failed to start (before_serving); next try in %.0f s\n", delay);
    m->pending++;
    if (now_s() + delay > m->restart_at)
        m->restart_at = now_s() + delay;
}

/* A current worker stops on its own (CF_SIG_LEAVING): it crashed in a
 * handler (status 70) or reached --max-requests (0). It drains its
 * requests outside the set while its replacement starts now. */
static void leaving(master *m, pid_t pid, int status)
{
    for (int i = 0; i < m->cap; i++) {
        worker_proc *w = &m->w[i];
        if (w->pid != pid || w->pid <= 0 || w->retiring || w->generation != m->generation ||
            m->stopping)
            continue;
        w->retiring = true;
        cf_metrics_count_restart(m->metrics);
        schedule_restart(m, status != 0);
    }
}

static void reap(master *m)
{
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0)
            return;
        int i = 0;
        while (i < m->cap && m->w[i].pid != pid)
            i++;
        if (i == m->cap)
            continue;
        worker_proc w = m->w[i];
        m->w[i].pid = 0;
        bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (WIFSIGNALED(st))
            fprintf(stderr, "carafe: worker %d killed by signal %d (%s)\n", (int)pid, WTERMSIG(st),
                    strsignal(WTERMSIG(st)));
        else if (!clean)
            fprintf(stderr, "carafe: worker %d exited with status %d%s\n", (int)pid,
                    WEXITSTATUS(st), WEXITSTATUS(st) == 70 ? " after a crash in a handler"
                                     : WEXITSTATUS(st) == CF_EXIT_BOOT ? " (before_serving failed)"
                                                                      : "");
        if (m->stopping || w.generation != m->generation || w.retiring) {
            if (!clean && !w.retiring)
                m->status = 1;
            continue; /* not replaced, or replaced already (see leaving) */
        }
        /* A current worker ended without notice (killed, crashed outside
         * a handler, failed to start): it is replaced. */
        cf_metrics_count_restart(m->metrics);
        if (WIFEXITED(st) && WEXITSTATUS(st) == CF_EXIT_BOOT)
            schedule_boot_retry(m);
        else
            schedule_restart(m, !clean);
    }
}

int cf_master_run(cf_app *app, const cf_server_opts *o, int fd, bool is_unix, cf_metrics *metrics)
{
    master m;
    memset(&m, 0, sizeof m);
    m.app = app;
    m.o = o;
    m.fd = fd;
    m.is_unix = is_unix;
    m.metrics = metrics;
    m.cap = 2 * o->workers;
    m.w = calloc((size_t)m.cap, sizeof *m.w);
    if (!m.w)
        return 1;
    sigset_t set = master_signals();
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (int i = 0; i < o->workers; i++)
        spawn(&m);
    double graceful = (double)app->opt[CF_OPT_GRACEFUL_TIMEOUT] / 1000.0;

    for (;;) {
        if (m.stopping && live(&m, false) == 0)
            break;
        double t = now_s(), wait = 1.0;
        if (m.pending && !m.stopping) {
            if (t >= m.restart_at) {
                start_missing(&m);
            } else if (m.restart_at - t < wait) {
                wait = m.restart_at - t;
            }
        }
        if (m.stopping && t >= m.stop_deadline) {
            fprintf(stderr, "carafe: workers still busy after the graceful timeout: killing them\n");
            signal_all(&m, SIGKILL);
            m.stop_deadline = t + 3600;
        }
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        siginfo_t info;
        int sig = sigtimedwait(&set, &info, &ts);
        if (sig < 0)
            continue; /* timeout or EINTR */
        if (sig == CF_SIG_READY) {
            m.boot_failures = 0;
            continue;
        }
        if (sig == CF_SIG_LEAVING) {
            leaving(&m, info.si_pid, info.si_value.sival_int);
            continue;
        }
        switch (sig) {
        case SIGCHLD:
            reap(&m);
            break;
        case SIGHUP:
            if (m.stopping)
                break;
            fprintf(stderr, "carafe: SIGHUP: starting %d new worker(s), retiring the old ones\n",
                    o->workers);
            m.generation++;
            m.restart_at = 0; /* a reload starts at once, back-off or not */
            start_missing(&m);
            break;
        case SIGTERM:
        case SIGINT:
            if (m.stopping) {
                signal_all(&m, SIGKILL); /* asked twice: stop now */
                break;
            }
            fprintf(stderr, "carafe: %s: draining %d worker(s) (up to %.0f s)\n",
                    sig == SIGTERM ? "SIGTERM" : "SIGINT", live(&m, false), graceful);
            m.stopping = true;
            m.stop_deadline = now_s() + graceful + 5;
            signal_all(&m, SIGTERM);
            break;
        case SIGQUIT:
            fprintf(stderr, "carafe: SIGQUIT: stopping at once\n");
            signal_all(&m, SIGKILL);
            m.stopping = true;
            m.stop_deadline = now_s() + 3600;
            break;
        }
    }
    free(m.w);
    if (is_unix && o->unix_path)
        unlink(o->unix_path);
    fprintf(stderr, "carafe: stopped\n");
    return m.status;
}
