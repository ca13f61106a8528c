/* C client against a C server over loopback, both through the C API (one process, two nodes):
 * every size class, async calls (callback and completion queue with its eventfd), pushes,
 * name queries, remote errors, timeouts, trace tags, stats, pack helpers, server gone. */
#define _POSIX_C_SOURCE 200809L
#include "capi_test.h"
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

enum { ECHO = 1, LATER = 2, FAIL = 3, HOLD = 4, TWICE = 5, BLOCKING = 6, NEVER = 7 };

static atomic_int pushes;
static atomic_long push_bytes;
static atomic_int second_answer_rc = -1;
static atomic_int blocking_rc = -1;
static skc_responder *_Atomic held;
static atomic_int never_seen;
static atomic_int bad_peer;
static skc_node *server_node;
static char last_trace[256];

static void *answer_later(void *arg) {
    void **a = arg;
    skc_responder *r = a[0];
    uint8_t *copy = a[1];
    size_t len = (size_t)a[2];
    sleep_ms(1);
    skc_respond(r, copy, len);
    free(copy);
    free(a);
    return NULL;
}

/* The server: echo, answer from another thread, fail, hold, answer twice, ".db" GET. */
static void handler(void *ud, const skc_request *req, skc_responder *r) {
    (void)ud;
    if (req->trace) {
        size_t n = req->trace_len < sizeof last_trace - 1 ? req->trace_len : sizeof last_trace - 1;
        memcpy(last_trace, req->trace, n);
        last_trace[n] = 0;
    }
    if (!req->peer || strncmp(req->peer, "127.0.0.1:", 10) != 0) bad_peer = 1;
    if (!r) { /* a push */
        atomic_fetch_add(&pushes, 1);
        atomic_fetch_add(&push_bytes, (long)req->len);
        return;
    }
    if (req->name && strcmp(req->name, ".db") == 0) {
        skc_values *v;
        const uint8_t *cmd, *key;
        size_t cl, kl;
        if (skc_unpack(req->data, req->len, &v) != SKC_OK) {
            skc_respond_error(r, skc_last_error());
            return;
        }
        skc_pack *p;
        uint8_t *out;
        size_t n;
        if (skc_values_string(v, 0, &cmd, &cl) == SKC_OK && cl == 3 && memcmp(cmd, "GET", 3) == 0 &&
            skc_values_string(v, 1, &key, &kl) == SKC_OK) {
            skc_pack_new(&p);
            skc_pack_string(p, "value of ");
            skc_pack_lstring(p, key, kl);
            skc_pack_finish(p, &out, &n);
            skc_respond(r, out, n);
            skc_free(out);
        } else {
            skc_respond_error(r, "bad command");
        }
        skc_values_free(v);
        return;
    }
    switch (req->id) {
    case ECHO:
        skc_respond(r, req->data, req->len);
        break;
    case LATER: {
        pthread_t t;
        void **a = malloc(3 * sizeof(void *));
        uint8_t *copy = malloc(req->len ? req->len : 1);
        memcpy(copy, req->data, req->len);
        a[0] = r;
        a[1] = copy;
        a[2] = (void *)req->len;
        pthread_create(&t, NULL, answer_later, a);
        pthread_detach(t);
        break;
    }
    case FAIL:
        skc_respond_error(r, "boom");
        break;
    case HOLD:
        r = atomic_exchange(&held, r);
        if (r) skc_respond_error(r, "replaced");
        break;
    case NEVER:
        /* Never answered: the responder is freed when the server node is destroyed. */
        atomic_fetch_add(&never_seen, 1);
        break;
    case TWICE:
        skc_respond(r, req->data, req->len);
        atomic_store(&second_answer_rc, skc_respond(r, req->data, req->len));
        break;
    case BLOCKING: {
        uint8_t *out = NULL;
        size_t n = 0;
        /* A blocking call from the I/O thread must fail, not deadlock. */
        atomic_store(&blocking_rc, skc_call(server_node, "self", NULL, ECHO, NULL, 0, 1000, &out, &n));
        skc_respond_error(r, "done");
        break;
    }
    default:
        skc_respond_error(r, "no such service");
    }
}

static uint8_t *pattern(size_t n, uint8_t seed) {
    uint8_t *b = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(i * 31 + seed);
    return b;
}

struct async_result {
    atomic_int done;
    skc_status status;
    uint8_t *data;
    size_t len;
};

static void on_done(void *ud, skc_status status, const uint8_t *data, size_t len) {
    struct async_result *r = ud;
    r->status = status;
    r->data = malloc(len ? len : 1);
    memcpy(r->data, data, len);
    r->len = len;
    atomic_store(&r->done, 1);
}

struct worker {
    skc_node *node;
    int id;
    int failures;
};

/* One of several threads calling on the same node at once, answers echoed from the I/O thread
 * or from the server's helper threads. */
static void *caller_thread(void *arg) {
    struct worker *w = arg;
    for (int i = 0; i < 100; i++) {
        size_t n = (size_t)((i * 7919 + w->id * 104729) % 70000);
        uint8_t *req = malloc(n ? n : 1), *resp = NULL;
        size_t rn = 0;
        for (size_t k = 0; k < n; k++) req[k] = (uint8_t)(k + (size_t)i + (size_t)w->id);
        if (skc_call(w->node, "srv", NULL, i % 2 ? ECHO : LATER, req, n, 30000, &resp, &rn) != SKC_OK || rn != n ||
            (n && memcmp(req, resp, n) != 0))
            w->failures++;
        skc_free(resp);
        free(req);
    }
    return NULL;
}

int main(void) {
    skc_node *srv, *cli;
    uint16_t port;
    char addr[64];

    MUST(skc_node_new("capi-server", &srv));
    server_node = srv;
    MUST(skc_listen(srv, "127.0.0.1:0", &port));
    MUST(skc_register(srv, "echo", ECHO));
    MUST(skc_serve(srv, handler, NULL));
    snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
    {
        const char *names[] = {"self"};
        const char *addrs[] = {addr};
        MUST(skc_reload(srv, names, addrs, 1));
    }

    MUST(skc_node_new("capi-client", &cli));
    {
        char map[256];
        snprintf(map, sizeof map, "-- the node map, stock format\nsrv = \"%s\"\ndown = false\n", addr);
        MUST(skc_reload_text(cli, map));
    }

    /* Every size class, echoed, blocking and through another thread. */
    size_t sizes[] = {0, 1, 100, 32767, 32768, 32769, 65536, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (uint32_t id = ECHO; id <= LATER; id++) {
            uint8_t *req = pattern(sizes[i], (uint8_t)i), *resp = NULL;
            size_t n = 12345;
            MUST(skc_call(cli, "srv", NULL, id, req, sizes[i], 30000, &resp, &n));
            EXPECT(resp != NULL);
            EXPECT(n == sizes[i]);
            EXPECT(n == 0 || memcmp(req, resp, n) == 0);
            skc_free(resp);
            free(req);
        }
    }
    /* By registered name. */
    {
        uint8_t *resp;
        size_t n;
        MUST(skc_call(cli, "srv", "@echo", 0, (const uint8_t *)"hi", 2, 30000, &resp, &n));
        EXPECT(n == 2 && memcmp(resp, "hi", 2) == 0);
        skc_free(resp);
        EXPECT_RC(SKC_ERR_REMOTE, skc_call(cli, "srv", "@nope", 0, NULL, 0, 30000, &resp, &n));
        EXPECT(strcmp(skc_last_error(), "Invalid name") == 0);
        EXPECT(resp == NULL && n == 0);
    }

    /* skynet.pack round trip through a ".db" service: "GET", "a" -> "value of a". */
    {
        skc_pack *p;
        uint8_t *req, *resp;
        size_t n, rn, count, sl;
        const uint8_t *s;
        skc_values *v;
        MUST(skc_pack_new(&p));
        MUST(skc_pack_string(p, "GET"));
        MUST(skc_pack_string(p, "a"));
        MUST(skc_pack_finish(p, &req, &n));
        EXPECT(n == 6 && memcmp(req, "\x1cGET\x0c" "a", 6) == 0);
        MUST(skc_call(cli, "srv", ".db", 0, req, n, 30000, &resp, &rn));
        MUST(skc_unpack(resp, rn, &v));
        MUST(skc_values_count(v, &count));
        EXPECT(count == 2);
        MUST(skc_values_string(v, 1, &s, &sl));
        EXPECT(sl == 1 && s[0] == 'a');
        skc_values_free(v);
        skc_free(resp);
        skc_free(req);
    }

    /* Remote error, unknown service. */
    {
        uint8_t *resp;
        size_t n;
        EXPECT_RC(SKC_ERR_REMOTE, skc_call(cli, "srv", NULL, FAIL, NULL, 0, 30000, &resp, &n));
        EXPECT(strcmp(skc_last_error(), "boom") == 0 && skc_last_error_len() == 4);
        EXPECT_RC(SKC_ERR_REMOTE, skc_call(cli, "srv", NULL, 99, NULL, 0, 30000, &resp, &n));
        EXPECT(strcmp(skc_last_error(), "no such service") == 0);
    }

    /* A second answer to the same request is refused (and sends nothing). */
    {
        uint8_t *resp;
        size_t n;
        MUST(skc_call(cli, "srv", NULL, TWICE, (const uint8_t *)"x", 1, 30000, &resp, &n));
        skc_free(resp);
        WAIT_FOR(atomic_load(&second_answer_rc) != -1);
        EXPECT(atomic_load(&second_answer_rc) == SKC_ERR_HANDLE);
    }

    /* A blocking call from a handler fails with SKC_ERR_DEADLOCK. */
    {
        uint8_t *resp;
        size_t n;
        EXPECT_RC(SKC_ERR_REMOTE, skc_call(cli, "srv", NULL, BLOCKING, NULL, 0, 30000, &resp, &n));
        EXPECT(atomic_load(&blocking_rc) == SKC_ERR_DEADLOCK);
    }

    /* Timeout: the server holds the request. */
    {
        uint8_t *resp;
        size_t n;
        EXPECT_RC(SKC_ERR_TIMEOUT, skc_call(cli, "srv", NULL, HOLD, NULL, 0, 50, &resp, &n));
        WAIT_FOR(atomic_load(&held) != NULL);
        /* The late answer is dropped by the client; the link stays usable. */
        MUST(skc_respond(atomic_exchange(&held, NULL), (const uint8_t *)"late", 4));
        MUST(skc_call(cli, "srv", NULL, ECHO, (const uint8_t *)"ok", 2, 30000, &resp, &n));
        EXPECT(n == 2);
        skc_free(resp);
    }

    /* Name query. */
    {
        uint32_t id = 0;
        MUST(skc_query(cli, "srv", "echo", 30000, &id));
        EXPECT(id == ECHO);
        EXPECT_RC(SKC_ERR_REMOTE, skc_query(cli, "srv", "missing", 30000, &id));
        EXPECT(strcmp(skc_last_error(), "name not found") == 0);
    }

    /* Pushes of every size class, then a call: pushes arrive first (same link, in order). */
    {
        long total = 0;
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            uint8_t *b = pattern(sizes[i], 3);
            MUST(skc_push(cli, "srv", "@echo", 0, b, sizes[i]));
            total += (long)sizes[i];
            free(b);
        }
        uint8_t *resp;
        size_t n;
        MUST(skc_call(cli, "srv", NULL, ECHO, NULL, 0, 30000, &resp, &n));
        skc_free(resp);
        EXPECT(atomic_load(&pushes) == (int)(sizeof sizes / sizeof sizes[0]));
        EXPECT(atomic_load(&push_bytes) == total);
    }

    /* Four threads calling at once on one node. */
    {
        pthread_t t[4];
        struct worker w[4];
        for (int i = 0; i < 4; i++) {
            w[i] = (struct worker){cli, i, 0};
            pthread_create(&t[i], NULL, caller_thread, &w[i]);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(t[i], NULL);
            EXPECT(w[i].failures == 0);
        }
    }

    /* Async call with a callback. */
    {
        struct async_result r = {0};
        MUST(skc_call_async(cli, "srv", NULL, LATER, (const uint8_t *)"async", 5, 30000, on_done, &r));
        WAIT_FOR(atomic_load(&r.done));
        EXPECT(r.status == SKC_OK && r.len == 5 && memcmp(r.data, "async", 5) == 0);
        free(r.data);
        struct async_result e = {0};
        MUST(skc_call_async(cli, "srv", NULL, FAIL, NULL, 0, 30000, on_done, &e));
        WAIT_FOR(atomic_load(&e.done));
        EXPECT(e.status == SKC_ERR_REMOTE && e.len == 4 && memcmp(e.data, "boom", 4) == 0);
        free(e.data);
        /* Not sent: the callback never runs. */
        EXPECT_RC(SKC_ERR_NODE_DOWN, skc_call_async(cli, "down", NULL, ECHO, NULL, 0, 0, on_done, &e));
        EXPECT_RC(SKC_ERR_NULL, skc_call_async(cli, "srv", NULL, ECHO, NULL, 0, 0, NULL, NULL));
    }

    /* Completion queue driven by poll() on its eventfd: 64 calls in flight. */
    {
        skc_queue *q;
        int fd;
        MUST(skc_queue_new(&q));
        MUST(skc_queue_fd(q, &fd));
        skc_completion c;
        EXPECT_RC(SKC_ERR_AGAIN, skc_queue_pop(q, &c, sizeof c));
        enum { N = 64 };
        int seen[N] = {0};
        for (uint64_t i = 0; i < N; i++) {
            uint8_t b[8];
            memcpy(b, &i, 8);
            MUST(skc_call_queued(cli, "srv", NULL, i % 2 ? ECHO : LATER, b, 8, 30000, q, i));
        }
        MUST(skc_call_queued(cli, "srv", NULL, FAIL, NULL, 0, 30000, q, 1000));
        int got = 0, errors = 0;
        while (got < N + 1) {
            struct pollfd pfd = {fd, POLLIN, 0};
            EXPECT(poll(&pfd, 1, 30000) == 1);
            skc_status rc;
            while ((rc = skc_queue_pop(q, &c, sizeof c)) == SKC_OK) {
                if (c.token == 1000) {
                    EXPECT(c.status == SKC_ERR_REMOTE && strcmp((char *)c.data, "boom") == 0);
                    errors++;
                } else {
                    uint64_t v;
                    EXPECT(c.status == SKC_OK && c.len == 8);
                    memcpy(&v, c.data, 8);
                    EXPECT(v == c.token && v < N);
                    if (v < N) seen[v]++;
                }
                skc_free(c.data);
                got++;
            }
            EXPECT(rc == SKC_ERR_AGAIN);
        }
        for (int i = 0; i < N; i++) EXPECT(seen[i] == 1);
        EXPECT(errors == 1);
        /* Drained: the fd is no longer readable. */
        struct pollfd pfd = {fd, POLLIN, 0};
        EXPECT(poll(&pfd, 1, 0) == 0);
        /* Blocking wait on the queue. */
        MUST(skc_call_queued(cli, "srv", NULL, ECHO, (const uint8_t *)"w", 1, 30000, q, 7));
        MUST(skc_queue_wait(q, 30000, &c, sizeof c));
        EXPECT(c.token == 7 && c.status == SKC_OK && c.len == 1);
        skc_free(c.data);
        /* A call still pending when the queue is freed completes into nothing. */
        MUST(skc_call_queued(cli, "srv", NULL, LATER, (const uint8_t *)"z", 1, 30000, q, 8));
        MUST(skc_queue_free(q));
    }

    /* Trace tags. */
    {
        uint8_t *resp;
        size_t n;
        MUST(skc_trace("mytag"));
        MUST(skc_call(cli, "srv", NULL, ECHO, NULL, 0, 30000, &resp, &n));
        skc_free(resp);
        MUST(skc_trace(NULL));
        const char *suffix = "-srv-";
        EXPECT(strncmp(last_trace, "(capi-client", 12) == 0);
        EXPECT(strstr(last_trace, suffix) != NULL);
        size_t tl = strlen(last_trace);
        EXPECT(tl > 6 && strcmp(last_trace + tl - 6, ")mytag") == 0);
    }

    /* Stats. */
    {
        skc_stats s;
        MUST(skc_stats_get(cli, "srv", &s, sizeof s));
        EXPECT(s.calls > 440 && s.pushes == sizeof sizes / sizeof sizes[0] && s.link_up);
        EXPECT(s.timeouts == 1 && s.latency_count > 0 && s.bytes_out > (1 << 21));
        MUST(skc_stats_get(srv, NULL, &s, sizeof s));
        EXPECT(s.calls > 40);
        EXPECT_RC(SKC_ERR_NOT_FOUND, skc_stats_get(cli, "never", &s, sizeof s));
        bool up = false;
        MUST(skc_link_up(cli, "srv", &up));
        EXPECT(up);
    }

    /* Node map: marked down, absent with nowaiting, parse errors. */
    {
        uint8_t *resp;
        size_t n;
        EXPECT_RC(SKC_ERR_NODE_DOWN, skc_call(cli, "down", NULL, ECHO, NULL, 0, 30000, &resp, &n));
        MUST(skc_set_nowaiting(cli, true));
        EXPECT_RC(SKC_ERR_NODE_ABSENT, skc_call(cli, "nowhere", NULL, ECHO, NULL, 0, 30000, &resp, &n));
        EXPECT_RC(SKC_ERR_NODE_ABSENT, skc_push(cli, "nowhere", NULL, ECHO, NULL, 0));
        EXPECT_RC(SKC_ERR_INVALID, skc_reload_text(cli, "srv = 127.0.0.1:1"));
        EXPECT_RC(SKC_ERR_INVALID, skc_call(cli, "srv", "", 0, NULL, 0, 30000, &resp, &n));
    }

    /* Calls pending when their node is destroyed end before skc_node_destroy returns: the
     * callback runs, the completion is queued. A call to a node with no address yet waits for
     * a reload until its timeout. */
    {
        skc_node *c2;
        skc_queue *q;
        skc_completion c;
        uint8_t *resp;
        size_t n;
        char map[128];
        struct async_result r = {0};
        MUST(skc_node_new(NULL, &c2));
        snprintf(map, sizeof map, "srv = \"%s\"", addr);
        MUST(skc_reload_text(c2, map));
        EXPECT_RC(SKC_ERR_TIMEOUT, skc_call(c2, "later", NULL, ECHO, NULL, 0, 20, &resp, &n));
        MUST(skc_queue_new(&q));
        MUST(skc_call_async(c2, "srv", NULL, HOLD, NULL, 0, 0, on_done, &r));
        MUST(skc_call_queued(c2, "srv", NULL, NEVER, NULL, 0, 0, q, 99));
        WAIT_FOR(atomic_load(&held) != NULL && atomic_load(&never_seen) == 1);
        MUST(skc_node_destroy(c2));
        EXPECT(atomic_load(&r.done) == 1);
        EXPECT(r.status == SKC_ERR_LINK_DOWN || r.status == SKC_ERR_SHUTDOWN);
        free(r.data);
        MUST(skc_queue_pop(q, &c, sizeof c));
        EXPECT(c.token == 99 && (c.status == SKC_ERR_LINK_DOWN || c.status == SKC_ERR_SHUTDOWN));
        skc_free(c.data);
        MUST(skc_queue_free(q));
        /* The server still holds a responder for the first call: its link is gone, so the
         * answer is discarded. */
        MUST(skc_respond(atomic_exchange(&held, NULL), NULL, 0));
        EXPECT_RC(SKC_ERR_HANDLE, skc_call(c2, "srv", NULL, ECHO, NULL, 0, 0, &resp, &n));
    }

    /* Server gone: its node is destroyed; the client's next calls fail, they do not hang. */
    {
        uint8_t *resp;
        size_t n;
        MUST(skc_node_destroy(srv));
        skc_status rc = skc_call(cli, "srv", NULL, ECHO, NULL, 0, 30000, &resp, &n);
        EXPECT(rc == SKC_ERR_LINK_DOWN || rc == SKC_ERR_CONNECT);
        rc = skc_call(cli, "srv", NULL, ECHO, NULL, 0, 30000, &resp, &n);
        EXPECT(rc == SKC_ERR_LINK_DOWN || rc == SKC_ERR_CONNECT);
        /* A pending async call fails when the client node is destroyed. */
    }

    EXPECT(atomic_load(&bad_peer) == 0);
    MUST(skc_node_destroy(cli));
    if (capi_failures) {
        fprintf(stderr, "capi_roundtrip: %d failure(s)\n", capi_failures);
        return 1;
    }
    printf("capi_roundtrip: passed\n");
    return 0;
}
