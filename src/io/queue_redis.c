/*
 * queue_redis.c — the task queue's Redis Streams store (QUEUE_URL
 * redis://..., through hiredis): the URL and its AUTH and SELECT, the
 * connections, and each operation as Redis commands and Lua scripts.
 *
 * Each loop has one asynchronous connection (hiredis on libuv), opened on
 * first use; a task sends a command and awaits the reply, which is copied
 * into its request. Checking that the server answers (when the app is
 * about to be served) and counting the jobs for the test client
 * (cf_queue_count_sync) use a blocking connection of their own.
 *
 * Keys (in the URL's database):
 *   cf:q:s:<name>   a stream per job name, consumer group "cf"; an entry has
 *                   id (the job id), name, payload, attempts (failures so far)
 *   cf:q:delayed    sorted set of delayed jobs and retries (score: due time,
 *                   member: JSON {name,id,payload,attempts}); moved into the
 *                   streams by a Lua script, atomically
 *   cf:q:dead       list of dead letters (JSON)
 *   cf:q:names      set of the job names (for counting)
 *   cf:q:seq, cf:q:deadseq   id counters
 *   cf:q:p:<name>:<period_start>   SET NX: who enqueues that period's job
 * Stuck jobs (consumer died) are taken back with XAUTOCLAIM after the
 * visibility timeout.
 */
#include "io/queue_int.h"

#include <inttypes.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* AUTH's arguments: ("AUTH", password) or ("AUTH", user, password). */
static int redis_auth_argv(const char *user, const char *pass, const char **argv)
{
    argv[0] = "AUTH";
    argv[1] = user ? user : pass;
    argv[2] = pass;
    return user ? 3 : 2;
}

/* A command on a blocking connection that must answer +OK: NULL, or why not. */
static const char *redis_sync_ok(redisContext *c, redisReply *r, char *err, size_t cap)
{
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    snprintf(err, cap, "%s", r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
    if (r)
        freeReplyObject(r);
    return ok ? NULL : err;
}

/* AUTH, SELECT and PING on a new blocking connection: NULL, or why not. */
static const char *redis_sync_setup(redisContext *c, const char *user, const char *pass, int db,
                                    char *err, size_t cap)
{
    const char *why = NULL;
    if (pass) {
        const char *argv[3];
        int argc = redis_auth_argv(user, pass, argv);
        why = redis_sync_ok(c, redisCommandArgv(c, argc, argv, NULL), err, cap);
    }
    if (!why && db)
        why = redis_sync_ok(c, redisCommand(c, "SELECT %d", db), err, cap);
    if (!why) /* a server wanting a password we do not have says so here */
        why = redis_sync_ok(c, redisCommand(c, "PING"), err, cap);
    return why;
}

/* One piece of the URL's user information, percent-decoded (NULL: empty
 * or badly encoded). */
static char *userinfo_part(const char *s, size_t len)
{
    if (!len)
        return NULL;
    char *out = malloc(len + 1);
    if (!out)
        abort();
    memcpy(out, s, len);
    out[len] = 0;
    if (cf_url_decode(out, len, CF_URL_STRICT) < 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* redis://[[user]:password@]host[:port][/db] */
int cf__queue_redis_open(cf_app *app, const char *url, const char *from)
{
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    char *user = NULL, *pass = NULL;
    bool bad = false;
    if (at) {
        const char *sep = memchr(p, ':', (size_t)(at - p));
        if (sep) {
            user = userinfo_part(p, (size_t)(sep - p));
            pass = userinfo_part(sep + 1, (size_t)(at - sep - 1));
        }
        bad = !pass; /* a user name alone: AUTH needs a password */
        p = at + 1;
    }
    const char *colon = strchr(p, ':'), *slash = strchr(p, '/');
    size_t hlen = colon && (!slash || colon < slash) ? (size_t)(colon - p)
                  : slash                          ? (size_t)(slash - p)
                                                   : strlen(p);
    int port = 6379, db = 0;
    if (colon && (!slash || colon < slash))
        port = atoi(colon + 1);
    if (slash && slash[1])
        db = atoi(slash + 1);
    if (bad || hlen == 0 || hlen > 255 || port <= 0 || port > 65535 || db < 0) {
        /* not the URL itself: it may hold a password */
        fprintf(stderr, "carafe: %s is not redis://[[user]:password@]host[:port][/db]\n", from);
        free(user);
        free(pass);
        return CF_EDBURL;
    }
    cf_queue *q = cf__queue_of(app);
    free(q->rhost);
    free(q->ruser);
    free(q->rpass);
    q->rhost = strndup(p, hlen);
    if (!q->rhost)
        abort();
    q->rport = port;
    q->rdb = db;
    q->ruser = user;
    q->rpass = pass;
    q->kind = Q_REDIS;
    q->ready = false;
    return 0;
}

int cf__queue_redis_prepare(cf_queue *q)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(q->rhost, q->rport, tv);
    char err[256];
    const char *why = !c     ? "out of memory"
                      : c->err ? c->errstr
                               : redis_sync_setup(c, q->ruser, q->rpass, q->rdb, err, sizeof err);
    if (why)
        fprintf(stderr, "carafe: cannot use the task queue redis://%s%s%s:%d/%d: %s\n",
                q->ruser ? q->ruser : "", q->rpass ? ":***@" : "", q->rhost, q->rport, q->rdb,
                why);
    if (c)
        redisFree(c);
    return why ? CF_EDBCONN : 0;
}

/* A reply copied into the request (hiredis frees its own after the callback). */
typedef struct q_rep {
    int type;
    long long integer;
    char *str;
    size_t len, n;
    struct q_rep **el;
} q_rep;

static q_rep *rep_copy(cf_req *rq, const redisReply *r)
{
    q_rep *o = cf_alloc(rq, sizeof *o);
    memset(o, 0, sizeof *o);
    o->type = r->type;
    o->integer = r->integer;
    if (r->str) {
        o->str = cf_alloc(rq, r->len + 1);
        memcpy(o->str, r->str, r->len);
        o->str[r->len] = 0;
        o->len = r->len;
    }
    if (r->type == REDIS_REPLY_ARRAY) {
        o->n = r->elements;
        o->el = cf_alloc(rq, (r->elements + 1) * sizeof *o->el);
        for (size_t i = 0; i < r->elements; i++)
            o->el[i] = rep_copy(rq, r->element[i]);
    }
    return o;
}

typedef struct r_wait {
    cf_waitable w;
    cf_req *rq;
    cf_scope *scope;
    q_rep *rep;
    char err[128];
} r_wait;

static void r_cancel(cf_waitable *w) { cf_waitable_complete(w, CF_ECANCELED); }

static uv_handle_t *r_handle(const redisAsyncContext *c)
{
    redisLibuvEvents *ev = c ? c->ev.data : NULL;
    return ev ? (uv_handle_t *)&ev->handle : NULL;
}

static void r_reply(redisAsyncContext *c, void *reply, void *priv)
{
    r_wait *w = priv;
    q_loop *L = c->data;
    if (L && L->inflight && --L->inflight == 0 && L->rc == c && r_handle(c))
        uv_unref(r_handle(c));
    int rc = 0;
    if (!reply) {
        rc = CF_EDBCONN;
        snprintf(w->err, sizeof w->err, "task queue: Redis connection lost");
    } else if (!w->w.done) {
        w->rep = rep_copy(w->rq, reply);
        if (w->rep->type == REDIS_REPLY_ERROR) {
            rc = CF_EDB;
            snprintf(w->err, sizeof w->err, "task queue: Redis: %s", w->rep->str);
        }
    }
    if (!w->w.done)
        cf_waitable_complete(&w->w, rc);
    cf_scope_unref(w->scope); /* may release the request: last */
}

static void r_disconnected(const redisAsyncContext *c, int status)
{
    q_loop *L = c->data;
    (void)status;
    if (L && L->rc == c) {
        L->rc = NULL;
        L->groups_ok = false;
    }
}

static void r_connected(const redisAsyncContext *c, int status)
{
    if (status != REDIS_OK) {
        q_loop *L = c->data;
        fprintf(stderr, "carafe: task queue: cannot connect to Redis: %s\n", c->errstr);
        if (L && L->rc == c) {
            L->rc = NULL;
            L->groups_ok = false;
        }
    }
}

static void r_setup_reply(redisAsyncContext *c, void *reply, void *what)
{
    redisReply *r = reply;
    (void)c;
    if (r && r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "carafe: task queue: Redis refused %s: %s\n", (const char *)what, r->str);
}

static redisAsyncContext *r_conn(q_loop *L)
{
    if (L->rc)
        return L->rc;
    redisAsyncContext *c = redisAsyncConnect(L->q->rhost, L->q->rport);
    if (!c)
        return NULL;
    if (c->err) {
        redisAsyncFree(c);
        return NULL;
    }
    c->data = L;
    redisLibuvAttach(c, cf_sched_get()->loop);
    L->inflight = 0;
    uv_unref(r_handle(c)); /* only while replies are awaited (redis_cmd) */
    redisAsyncSetConnectCallback(c, r_connected);
    redisAsyncSetDisconnectCallback(c, r_disconnected);
    /* Sent ahead of any command (hiredis keeps the order); a refusal is
     * logged, and the commands after it fail with Redis's NOAUTH. */
    if (L->q->rpass) {
        const char *argv[3];
        int argc = redis_auth_argv(L->q->ruser, L->q->rpass, argv);
        redisAsyncCommandArgv(c, r_setup_reply, "AUTH", argc, argv, NULL);
    }
    if (L->q->rdb)
        redisAsyncCommand(c, r_setup_reply, "SELECT", "SELECT %d", L->q->rdb);
    L->rc = c;
    return c;
}

void cf__queue_redis_disconnect(q_loop *L)
{
    if (L->rc) {
        redisAsyncContext *rc = L->rc;
        L->rc = NULL;
        rc->data = NULL;
        redisAsyncFree(rc);
    }
}

/* Send one command (argv form) and wait for its reply. */
static q_rep *redis_cmd(cf_req *rq, q_op *op, int argc, const char **argv, const size_t *lens)
{
    q_loop *L = cf_sched_local_get(&cf__queue_loop_key);
    redisAsyncContext *c = L ? r_conn(L) : NULL;
    if (!c) {
        snprintf(op->err, sizeof op->err, "task queue: cannot connect to Redis");
        op->result = CF_EDBCONN;
        return NULL;
    }
    r_wait *w = cf_alloc(rq, sizeof *w);
    memset(w, 0, sizeof *w);
    w->rq = rq;
    w->scope = cf__req_scope(rq);
    cf_waitable_init(&w->w, r_cancel);
    if (redisAsyncCommandArgv(c, r_reply, w, argc, argv, lens) != REDIS_OK) {
        cf_waitable_detach(&w->w);
        snprintf(op->err, sizeof op->err, "task queue: Redis: cannot send");
        op->result = CF_EDBCONN;
        return NULL;
    }
    cf_scope_ref(w->scope);
    if (L->inflight++ == 0 && r_handle(c))
        uv_ref(r_handle(c));
    int rc = cf_await(rq, &w->w, -1);
    if (rc != 0) {
        if (w->err[0])
            snprintf(op->err, sizeof op->err, "%s", w->err);
        op->result = rc;
        return NULL;
    }
    return w->rep;
}

/* rcmd with NUL-terminated arguments. */
#define RCMD(rq, op, ...)                                                            \
    redis_cmd((rq), (op), (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(char *)), \
         (const char *[]){__VA_ARGS__}, NULL)

static const char lua_move[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1000)\n"
    "for _, m in ipairs(due) do\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "  local j = cjson.decode(m)\n"
    "  redis.call('XADD', 'cf:q:s:' .. j.name, '*', 'id', j.id, 'name', j.name,"
    "             'payload', j.payload, 'attempts', j.attempts)\n"
    "end\n"
    "return #due\n";

static const char lua_periodic[] =
    "if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then\n"
    "  local id = redis.call('INCR', 'cf:q:seq')\n"
    "  redis.call('SADD', 'cf:q:names', ARGV[2])\n"
    "  redis.call('XADD', 'cf:q:s:' .. ARGV[2], '*', 'id', id, 'name', ARGV[2],"
    "             'payload', ARGV[3], 'attempts', 0)\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

static const char lua_count[] =
    "local n = redis.call('ZCARD', 'cf:q:delayed')\n"
    "for _, nm in ipairs(redis.call('SMEMBERS', 'cf:q:names')) do\n"
    "  if ARGV[1] == '' or ARGV[1] == nm then\n"
    "    n = n + redis.call('XLEN', 'cf:q:s:' .. nm)\n"
    "  end\n"
    "end\n"
    "return n\n";

static const char lua_requeue[] =
    "local all = redis.call('LRANGE', 'cf:q:dead', 0, -1)\n"
    "local n = 0\n"
    "for _, m in ipairs(all) do\n"
    "  local j = cjson.decode(m)\n"
    "  if ARGV[1] == '0' or tostring(j.id) == ARGV[1] then\n"
    "    redis.call('LREM', 'cf:q:dead', 1, m)\n"
    "    redis.call('XADD', 'cf:q:s:' .. j.name, '*', 'id', j.job_id, 'name', j.name,"
    "               'payload', j.payload, 'attempts', 0)\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

/* Reset the idle time of a pending entry, if this consumer still owns it
 * (XAUTOCLAIM may have given it to another after the lease ran out). */
static const char lua_extend[] =
    "local p = redis.call('XPENDING', KEYS[1], 'cf', ARGV[2], ARGV[2], 1, ARGV[1])\n"
    "if #p == 0 then return 0 end\n"
    "redis.call('XCLAIM', KEYS[1], 'cf', ARGV[1], 0, ARGV[2], 'JUSTID')\n"
    "return 1\n";

static const char *stream_key(cf_req *rq, const char *name) { return cf_sprintf(rq, "cf:q:s:%s", name); }
static const char *i2s(cf_req *rq, int64_t v) { return cf_sprintf(rq, "%" PRId64, v); }

static bool r_fail(q_op *op, q_rep *r)
{
    if (r)
        return false;
    if (!op->result)
        op->result = CF_EDB;
    return true;
}

/* Stream entries [[id, [f, v, ...]], ...] into jobs. */
static void r_take_entries(q_op *op, q_claim *c, q_rep *arr, q_jobblk ***tail)
{
    for (size_t k = 0; arr && arr->type == REDIS_REPLY_ARRAY && k < arr->n; k++) {
        q_rep *e = arr->el[k];
        if (!e || e->type != REDIS_REPLY_ARRAY || e->n < 2 || e->el[1]->type != REDIS_REPLY_ARRAY)
            continue; /* deleted meanwhile */
        q_rep *f = e->el[1];
        const char *payload = "{}";
        int64_t id = 0;
        int attempts = 0;
        for (size_t i = 0; i + 1 < f->n; i += 2) {
            const char *k2 = f->el[i]->str, *v = f->el[i + 1]->str;
            if (!k2 || !v)
                continue;
            if (!strcmp(k2, "payload"))
                payload = v;
            else if (!strcmp(k2, "id"))
                id = atoll(v);
            else if (!strcmp(k2, "attempts"))
                attempts = atoi(v);
        }
        size_t len = strlen(payload);
        q_jobblk *b = malloc(sizeof *b + len + 1);
        if (!b)
            return;
        b->next = NULL;
        b->hidx = c->hidx;
        b->id = id;
        b->attempts = attempts + 1;
        snprintf(b->sid, sizeof b->sid, "%s", e->el[0]->str ? e->el[0]->str : "0-0");
        memcpy(b->payload, payload, len + 1);
        **tail = b;
        *tail = &b->next;
        c->got++;
    }
}

static int redis_claim(cf_req *rq, q_op *op, q_loop *L)
{
    const char *now = i2s(rq, cf__queue_now_ms());
    if (!L->groups_ok) {
        for (size_t i = 0; i < L->q->nh; i++) {
            q_rep *r = RCMD(rq, op, "XGROUP", "CREATE", stream_key(rq, L->q->h[i].name), "cf",
                            "0", "MKSTREAM");
            if (!r && op->result != CF_EDB)
                return op->result;
            op->result = 0;
            op->err[0] = 0;
        }
        L->groups_ok = true;
    }
    if (r_fail(op, RCMD(rq, op, "EVAL", lua_move, "1", "cf:q:delayed", now)))
        return (int)op->result;
    q_jobblk **tail = &op->jobs;
    for (size_t i = 0; i < op->nclaims; i++) {
        q_claim *c = &op->claims[i];
        if (c->period_start > 0) {
            q_handler *h = &L->q->h[c->hidx];
            const char *key = cf_sprintf(rq, "cf:q:p:%s:%" PRId64, c->name, c->period_start);
            const char *payload = cf_sprintf(rq, "{\"period_start\": %" PRId64 "}", c->period_start);
            if (r_fail(op, RCMD(rq, op, "EVAL", lua_periodic, "1", key, i2s(rq, (h->period_s > 0 ? h->period_s * 10 : 3600) + 60),
                                c->name, payload)))
                return (int)op->result;
            c->period_done = true;
        }
        if (c->want <= 0)
            continue;
        const char *key = stream_key(rq, c->name);
        q_rep *r = RCMD(rq, op, "XAUTOCLAIM", key, "cf", L->consumer, i2s(rq, c->visibility_ms),
                        "0-0", "COUNT", i2s(rq, c->want));
        if (r_fail(op, r))
            return (int)op->result;
        q_jobblk **stolen = tail;
        if (r->type == REDIS_REPLY_ARRAY && r->n >= 2)
            r_take_entries(op, c, r->el[1], &tail);
        /* Taken over from a consumer that died with them: each delivery
         * counts as an attempt, as on SQLite, so a job that kills its
         * worker every time ends in the dead letters instead of looping. */
        for (q_jobblk *b = *stolen; b; b = b->next) {
            q_rep *p = RCMD(rq, op, "XPENDING", key, "cf", b->sid, b->sid, "1");
            if (r_fail(op, p))
                return (int)op->result;
            if (p->type == REDIS_REPLY_ARRAY && p->n == 1 && p->el[0]->type == REDIS_REPLY_ARRAY &&
                p->el[0]->n >= 4 && p->el[0]->el[3]->type == REDIS_REPLY_INTEGER)
                b->attempts += (int)p->el[0]->el[3]->integer - 1;
        }
        if (c->got < c->want) {
            r = RCMD(rq, op, "XREADGROUP", "GROUP", "cf", L->consumer, "COUNT",
                     i2s(rq, c->want - c->got), "STREAMS", key, ">");
            if (r_fail(op, r))
                return (int)op->result;
            if (r->type == REDIS_REPLY_ARRAY && r->n >= 1 && r->el[0]->type == REDIS_REPLY_ARRAY &&
                r->el[0]->n >= 2)
                r_take_entries(op, c, r->el[0]->el[1], &tail);
        }
    }
    return 0;
}

static const char *job_json(cf_req *rq, q_op *op, int attempts)
{
    json_t *j = json_pack("{s:s,s:I,s:s,s:i}", "name", op->name, "id", (json_int_t)op->id,
                          "payload", op->payload ? op->payload : "{}", "attempts", attempts);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    const char *out = cf_strdup(rq, s ? s : "{}");
    free(s);
    return out;
}

static int r_ackdel(cf_req *rq, q_op *op)
{
    const char *key = stream_key(rq, op->name);
    if (r_fail(op, RCMD(rq, op, "XACK", key, "cf", op->sid)))
        return (int)op->result;
    if (r_fail(op, RCMD(rq, op, "XDEL", key, op->sid)))
        return (int)op->result;
    return 0;
}

int cf__queue_redis_op(cf_req *rq, q_op *op)
{
    q_loop *L = cf__queue_loop_get(rq->app);
    if (!L)
        return CF_ENOMEM;
    op->result = 0;
    q_rep *r;
    int64_t now = cf__queue_now_ms();
    switch (op->kind) {
    case OP_ENQUEUE: {
        r = RCMD(rq, op, "INCR", "cf:q:seq");
        if (r_fail(op, r))
            return (int)op->result;
        op->id = r->integer;
        if (r_fail(op, RCMD(rq, op, "SADD", "cf:q:names", op->name)))
            return (int)op->result;
        if (op->at > now)
            r = RCMD(rq, op, "ZADD", "cf:q:delayed", i2s(rq, op->at), job_json(rq, op, 0));
        else
            r = RCMD(rq, op, "XADD", stream_key(rq, op->name), "*", "id", i2s(rq, op->id), "name",
                     op->name, "payload", op->payload, "attempts", "0");
        if (r_fail(op, r))
            return (int)op->result;
        op->result = op->id;
        return 0;
    }
    case OP_CLAIM:
        return redis_claim(rq, op, L);
    case OP_ACK:
        return r_ackdel(rq, op);
    case OP_RETRY:
        if (r_fail(op, RCMD(rq, op, "ZADD", "cf:q:delayed", i2s(rq, now + op->at),
                            job_json(rq, op, op->attempts))))
            return (int)op->result;
        return r_ackdel(rq, op);
    case OP_DEAD: {
        r = RCMD(rq, op, "INCR", "cf:q:deadseq");
        if (r_fail(op, r))
            return (int)op->result;
        json_t *j = json_pack("{s:I,s:I,s:s,s:s,s:i,s:s?,s:I}", "id", (json_int_t)r->integer,
                              "job_id", (json_int_t)op->id, "name", op->name, "payload",
                              op->payload ? op->payload : "{}", "attempts", op->attempts, "error",
                              op->error, "failed_at", (json_int_t)now);
        char *s = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        const char *txt = cf_strdup(rq, s ? s : "{}");
        free(s);
        if (r_fail(op, RCMD(rq, op, "RPUSH", "cf:q:dead", txt)))
            return (int)op->result;
        return r_ackdel(rq, op);
    }
    case OP_RELEASE:
        return 0; /* left pending: XAUTOCLAIM takes them after the lease */
    case OP_EXTEND:
        r = RCMD(rq, op, "EVAL", lua_extend, "1", stream_key(rq, op->name), L->consumer, op->sid);
        if (r_fail(op, r))
            return (int)op->result;
        op->result = r->integer;
        return 0;
    case OP_LIST:
        r = RCMD(rq, op, "LRANGE", "cf:q:dead", "0", "-1");
        if (r_fail(op, r))
            return (int)op->result;
        op->json = json_array();
        for (size_t i = 0; i < r->n && (int64_t)json_array_size(op->json) < op->n; i++) {
            json_t *j = r->el[i]->str ? json_loads(r->el[i]->str, 0, NULL) : NULL;
            const char *nm = json_string_value(json_object_get(j, "name"));
            if (j && (!op->name || (nm && !strcmp(nm, op->name))))
                json_array_append(op->json, j);
            json_decref(j);
        }
        return 0;
    case OP_REQUEUE:
        r = RCMD(rq, op, "EVAL", lua_requeue, "0", i2s(rq, op->id));
        if (r_fail(op, r))
            return (int)op->result;
        op->result = r->integer;
        return 0;
    case OP_COUNT:
        r = RCMD(rq, op, "EVAL", lua_count, "0", op->name ? op->name : "");
        if (r_fail(op, r))
            return (int)op->result;
        op->result = r->integer;
        return 0;
    }
    return CF_EINVAL;
}

int64_t cf__queue_redis_count_sync(cf_queue *q)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(q->rhost, q->rport, tv);
    int64_t n = -1;
    char err[256];
    if (c && !c->err && !redis_sync_setup(c, q->ruser, q->rpass, q->rdb, err, sizeof err)) {
        redisReply *r = redisCommand(c, "EVAL %s 0 %s", lua_count, "");
        if (r && r->type == REDIS_REPLY_INTEGER)
            n = r->integer;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return n;
}
