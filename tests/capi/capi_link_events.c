/* Link events (skc_set_link_callback): a client node and a server node watch their links go
 * up and down, with the reason (reload, peer closed, connect failed) and every field of the
 * event checked; the callback runs as a node callback (destroying its node from it fails
 * with SKC_ERR_DEADLOCK, so does a blocking call on the I/O thread); a reload's down event
 * comes on the reloading thread; clearing the callback (or destroying the node) waits for a
 * call still running on another thread, and it can clear itself from inside; a node's own
 * destroy is not reported. */
#define _POSIX_C_SOURCE 200809L
#include "capi_test.h"
#include "capi_net.h"
#include <pthread.h>
#include <stdatomic.h>

enum { ECHO = 1, MAXEV = 64 };

typedef struct {
    int dir, up, reason, has_peer, destroy_rc, call_rc, on_main;
    uint64_t link;
    size_t node_len, reason_len;
    char node[64], peer[64], text[256];
} rec;

typedef struct {
    pthread_mutex_t mu;
    skc_node *self; /* destroyed (refused) and called from inside the callback */
    rec ev[MAXEV];
    atomic_int n;
} evlog;

static pthread_t main_thread;

static void copy(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src);
}

static void on_link(void *ud, const skc_link_event *ev) {
    evlog *l = ud;
    pthread_mutex_lock(&l->mu);
    int i = atomic_load(&l->n);
    if (i < MAXEV) {
        rec *r = &l->ev[i];
        r->dir = ev->dir;
        r->up = ev->up;
        r->reason = ev->reason;
        r->link = ev->link;
        r->node_len = ev->node_len;
        r->reason_len = ev->reason_len;
        r->has_peer = ev->peer != NULL;
        copy(r->node, sizeof r->node, ev->node);
        copy(r->peer, sizeof r->peer, ev->peer ? ev->peer : "");
        copy(r->text, sizeof r->text, ev->reason_text);
        r->on_main = pthread_equal(pthread_self(), main_thread);
        r->destroy_rc = r->call_rc = -1;
        if (l->self) {
            /* Its own node cannot be destroyed from a callback: refused, the node lives on. */
            r->destroy_rc = skc_node_destroy(l->self);
            if (!r->on_main) { /* on the I/O thread, a blocking call would deadlock: refused */
                uint8_t *resp = NULL;
                size_t rn = 0;
                r->call_rc = skc_call(l->self, "srv", NULL, ECHO, NULL, 0, 1, &resp, &rn);
            }
        }
        atomic_store(&l->n, i + 1);
    }
    pthread_mutex_unlock(&l->mu);
}

static evlog clog_ = {PTHREAD_MUTEX_INITIALIZER, NULL, {{0}}, 0};
static evlog slog_ = {PTHREAD_MUTEX_INITIALIZER, NULL, {{0}}, 0};
static atomic_ullong last_req_link;

static void echo(void *ud, const skc_request *req, skc_responder *r) {
    (void)ud;
    atomic_store(&last_req_link, req->link);
    if (r) skc_respond(r, req->data, req->len);
}

static skc_status call_srv(skc_node *node, const char *msg) {
    uint8_t *resp;
    size_t rn;
    skc_status rc = skc_call(node, "srv", NULL, ECHO, (const uint8_t *)msg, strlen(msg), 10000, &resp, &rn);
    if (rc == SKC_OK) {
        EXPECT(rn == strlen(msg) && memcmp(resp, msg, rn) == 0);
        skc_free(resp);
    }
    return rc;
}

static void set_map(skc_node *node, uint16_t port) {
    char map[64];
    if (port) snprintf(map, sizeof map, "srv = \"127.0.0.1:%u\"", port);
    else snprintf(map, sizeof map, "srv = false");
    MUST(skc_reload_text(node, map));
}

/* A callback that takes its time (a bad host, but the test needs a call in flight). */
static atomic_int slow_started, slow_finished;
static void slow(void *ud, const skc_link_event *ev) {
    (void)ud;
    (void)ev;
    atomic_store(&slow_started, 1);
    sleep_ms(300);
    atomic_store(&slow_finished, 1);
}

/* A callback that clears itself on its first event. */
static atomic_int once_calls, once_rc = -1;
static skc_node *once_node;
static void once(void *ud, const skc_link_event *ev) {
    (void)ud;
    (void)ev;
    atomic_fetch_add(&once_calls, 1);
    atomic_store(&once_rc, skc_set_link_callback(once_node, NULL, NULL));
}

int main(void) {
    skc_node *server, *client;
    uint16_t port;
    char want_peer[32];
    main_thread = pthread_self();

    MUST(skc_node_new("S", &server));
    MUST(skc_listen(server, "127.0.0.1:0", &port));
    MUST(skc_serve(server, echo, NULL));
    MUST(skc_set_link_callback(server, on_link, &slog_));
    MUST(skc_node_new("C", &client));
    clog_.self = client;
    MUST(skc_set_link_callback(client, on_link, &clog_));
    snprintf(want_peer, sizeof want_peer, "127.0.0.1:%u", port);

    EXPECT_RC(SKC_ERR_NULL, skc_set_link_callback(NULL, on_link, NULL));
    {
        skc_config *cfg;
        MUST(skc_config_new(&cfg));
        EXPECT_RC(SKC_ERR_HANDLE, skc_set_link_callback((skc_node *)cfg, on_link, NULL));
        MUST(skc_config_free(cfg));
    }

    /* 1. Up, on both sides. */
    set_map(client, port);
    EXPECT_RC(SKC_OK, call_srv(client, "one"));
    WAIT_FOR(atomic_load(&clog_.n) >= 1 && atomic_load(&slog_.n) >= 1);
    rec *c0 = &clog_.ev[0], *s0 = &slog_.ev[0];
    EXPECT(c0->dir == SKC_LINK_OUTBOUND && c0->up && c0->reason == SKC_DOWN_NONE);
    EXPECT(strcmp(c0->node, "srv") == 0 && c0->node_len == 3);
    EXPECT(c0->has_peer && strcmp(c0->peer, want_peer) == 0);
    EXPECT(c0->text[0] == 0 && c0->reason_len == 0);
    EXPECT(!c0->on_main && c0->destroy_rc == SKC_ERR_DEADLOCK && c0->call_rc == SKC_ERR_DEADLOCK);
    EXPECT(s0->dir == SKC_LINK_INBOUND && s0->up && s0->reason == SKC_DOWN_NONE);
    EXPECT(s0->node[0] == 0 && s0->node_len == 0);
    EXPECT(s0->has_peer && strncmp(s0->peer, "127.0.0.1:", 10) == 0);
    EXPECT(s0->link == atomic_load(&last_req_link)); /* the link id of the requests on it */

    /* 2. The client's reload takes the address away: its link closes (reason: reload), and
     * the server sees the peer close. */
    set_map(client, 0);
    WAIT_FOR(atomic_load(&clog_.n) >= 2 && atomic_load(&slog_.n) >= 2);
    rec *c1 = &clog_.ev[1], *s1 = &slog_.ev[1];
    EXPECT(c1->dir == SKC_LINK_OUTBOUND && !c1->up && c1->reason == SKC_DOWN_RELOAD);
    EXPECT(c1->link == c0->link && strcmp(c1->node, "srv") == 0 && strcmp(c1->peer, want_peer) == 0);
    EXPECT(strcmp(c1->text, "node address changed") == 0 && c1->reason_len == strlen(c1->text));
    EXPECT(c1->on_main && c1->destroy_rc == SKC_ERR_DEADLOCK); /* on this thread, inside skc_reload_text */
    EXPECT(s1->dir == SKC_LINK_INBOUND && !s1->up && s1->reason == SKC_DOWN_PEER_CLOSED);
    EXPECT(s1->link == s0->link && strcmp(s1->peer, s0->peer) == 0);
    EXPECT(strcmp(s1->text, "peer closed the connection") == 0);
    EXPECT_RC(SKC_ERR_NODE_DOWN, call_srv(client, "nope"));

    /* 3. Up again; then the server goes away: the client sees its link go down (the peer
     * closed it), the server reports nothing about its own shutdown. */
    set_map(client, port);
    EXPECT_RC(SKC_OK, call_srv(client, "two"));
    WAIT_FOR(atomic_load(&clog_.n) >= 3 && atomic_load(&slog_.n) >= 3);
    EXPECT(clog_.ev[2].up && clog_.ev[2].dir == SKC_LINK_OUTBOUND);
    EXPECT(slog_.ev[2].up && slog_.ev[2].dir == SKC_LINK_INBOUND);
    int server_events = atomic_load(&slog_.n);
    MUST(skc_node_destroy(server));
    WAIT_FOR(atomic_load(&clog_.n) >= 4);
    rec *c3 = &clog_.ev[3];
    EXPECT(c3->dir == SKC_LINK_OUTBOUND && !c3->up && c3->link == clog_.ev[2].link);
    EXPECT(c3->reason == SKC_DOWN_PEER_CLOSED || c3->reason == SKC_DOWN_IO);
    EXPECT(c3->reason_len > 0 && strlen(c3->text) == c3->reason_len);
    printf("server gone: reason %d \"%s\"\n", c3->reason, c3->text);
    EXPECT(atomic_load(&slog_.n) == server_events);

    /* 4. Nobody listens any more: the next call's connect fails, and says so. */
    skc_status rc = call_srv(client, "three");
    EXPECT(rc == SKC_ERR_CONNECT || rc == SKC_ERR_LINK_DOWN);
    WAIT_FOR(atomic_load(&clog_.n) >= 5);
    rec *c4 = &clog_.ev[4];
    EXPECT(c4->dir == SKC_LINK_OUTBOUND && !c4->up && c4->reason == SKC_DOWN_CONNECT_FAILED);
    EXPECT(strcmp(c4->node, "srv") == 0 && c4->reason_len > 0);
    printf("connect failed: \"%s\"\n", c4->text);
    int client_events = atomic_load(&clog_.n);
    EXPECT(client_events == 5);
    for (int i = 0; i < client_events; i++) {
        EXPECT(clog_.ev[i].destroy_rc == SKC_ERR_DEADLOCK);
        EXPECT(clog_.ev[i].on_main || clog_.ev[i].call_rc == SKC_ERR_DEADLOCK);
    }

    /* 5. Clearing waits for a call of the old callback running on another thread. */
    MUST(skc_node_new(NULL, &server));
    MUST(skc_listen(server, "127.0.0.1:0", &port));
    MUST(skc_set_link_callback(server, slow, NULL));
    int fd = tcp_connect(port); /* accepted on the I/O thread: `slow` runs there */
    WAIT_FOR(atomic_load(&slow_started));
    MUST(skc_set_link_callback(server, NULL, NULL));
    EXPECT(atomic_load(&slow_finished) == 1);
    close(fd);

    /* 6. A callback may clear itself from inside (no wait on itself, no deadlock). */
    once_node = server;
    MUST(skc_set_link_callback(server, once, NULL));
    fd = tcp_connect(port);
    WAIT_FOR(atomic_load(&once_rc) != -1);
    EXPECT(atomic_load(&once_rc) == SKC_OK);
    close(fd); /* a down event nobody hears */
    int fd2 = tcp_connect(port);
    skc_health h;
    WAIT_FOR(skc_health_get(server, &h, sizeof h) == SKC_OK && h.links == 1);
    close(fd2);
    WAIT_FOR(skc_health_get(server, &h, sizeof h) == SKC_OK && h.links == 0);
    EXPECT(atomic_load(&once_calls) == 1);

    /* 7. Destroying the node waits for a call of its link callback, too. */
    atomic_store(&slow_started, 0);
    atomic_store(&slow_finished, 0);
    MUST(skc_set_link_callback(server, slow, NULL));
    fd = tcp_connect(port);
    WAIT_FOR(atomic_load(&slow_started));
    MUST(skc_node_destroy(server));
    EXPECT(atomic_load(&slow_finished) == 1);
    close(fd);

    MUST(skc_node_destroy(client));
    EXPECT(atomic_load(&clog_.n) == client_events); /* the client's own destroy: not reported */
    if (capi_failures) {
        fprintf(stderr, "capi_link_events: %d failure(s)\n", capi_failures);
        return 1;
    }
    printf("capi_link_events: passed\n");
    return 0;
}
