/* Heartbeat (skc_config_set_heartbeat_ms): a fake peer that accepts and reads but never
 * answers anything. With a 200 ms / 200 ms heartbeat, a call with a 30 s timeout fails with
 * SKC_ERR_LINK_DOWN ("heartbeat: ...") long before its timeout, the link event says
 * SKC_DOWN_HEARTBEAT, and skc_health counts it. A live peer whose handler takes its time
 * answers the probes meanwhile and its call succeeds (that node's deadline is 1 s, so that a
 * loaded machine under valgrind does not make a live peer look dead). */
#define _POSIX_C_SOURCE 200809L
#include "capi_test.h"
#include "capi_net.h"
#include <pthread.h>
#include <stdatomic.h>

enum { SLOW = 1 };

/* The mute peer: accepts, reads everything, answers nothing. */
static int mute_listener;
static atomic_int mute_stop, mute_accepts;
static uint8_t mute_bytes[1 << 16];
static atomic_size_t mute_len;

static void *mute_peer(void *arg) {
    (void)arg;
    struct pollfd p[9];
    int n = 1;
    p[0] = (struct pollfd){mute_listener, POLLIN, 0};
    while (!atomic_load(&mute_stop)) {
        if (poll(p, (nfds_t)n, 20) <= 0) continue;
        if ((p[0].revents & POLLIN) && n < 9) {
            int fd = accept(mute_listener, NULL, NULL);
            if (fd >= 0) {
                p[n++] = (struct pollfd){fd, POLLIN, 0};
                atomic_fetch_add(&mute_accepts, 1);
            }
        }
        for (int i = 1; i < n; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            uint8_t b[4096];
            ssize_t r = read(p[i].fd, b, sizeof b);
            if (r <= 0) { /* closed by the node: keep the slot, stop polling it */
                close(p[i].fd);
                p[i].fd = -1;
                continue;
            }
            size_t at = atomic_load(&mute_len);
            size_t take = (size_t)r < sizeof mute_bytes - at ? (size_t)r : sizeof mute_bytes - at;
            memcpy(mute_bytes + at, b, take);
            atomic_store(&mute_len, at + take);
        }
    }
    for (int i = 1; i < n; i++)
        if (p[i].fd >= 0) close(p[i].fd);
    return NULL;
}

static int contains(const uint8_t *h, size_t hn, const char *needle) {
    size_t nn = strlen(needle);
    for (size_t i = 0; i + nn <= hn; i++)
        if (memcmp(h + i, needle, nn) == 0) return 1;
    return 0;
}

static atomic_int hb_events, other_down;
static char hb_node[64], hb_text[256];
static void on_link(void *ud, const skc_link_event *ev) {
    (void)ud;
    if (ev->up) return;
    if (ev->reason == SKC_DOWN_HEARTBEAT) {
        snprintf(hb_node, sizeof hb_node, "%s", ev->node);
        snprintf(hb_text, sizeof hb_text, "%s", ev->reason_text);
        atomic_fetch_add(&hb_events, 1);
    } else {
        atomic_fetch_add(&other_down, 1);
    }
}

/* A live server whose handler answers 2.5 s later, from another thread. */
static void *answer_later(void *r) {
    sleep_ms(2500);
    skc_respond(r, (const uint8_t *)"slow", 4);
    return NULL;
}
static void slow_handler(void *ud, const skc_request *req, skc_responder *r) {
    (void)ud;
    (void)req;
    pthread_t t;
    if (!r) return;
    if (pthread_create(&t, NULL, answer_later, r) == 0) pthread_detach(t);
    else skc_respond_error(r, "no thread");
}

int main(void) {
    uint16_t mute_port, live_port;
    pthread_t peer;
    mute_listener = tcp_listen(&mute_port);
    if (pthread_create(&peer, NULL, mute_peer, NULL) != 0) return 1;

    skc_node *live;
    MUST(skc_node_new(NULL, &live));
    MUST(skc_listen(live, "127.0.0.1:0", &live_port));
    MUST(skc_serve(live, slow_handler, NULL));

    skc_config *cfg;
    skc_node *node, *patient;
    char map[128];
    MUST(skc_config_new(&cfg));
    MUST(skc_config_set_heartbeat_ms(cfg, 200, 200));
    MUST(skc_node_new_with(cfg, &node));
    MUST(skc_config_set_heartbeat_ms(cfg, 200, 1000));
    MUST(skc_node_new_with(cfg, &patient));
    MUST(skc_config_free(cfg));
    MUST(skc_set_link_callback(node, on_link, NULL));
    MUST(skc_set_link_callback(patient, on_link, NULL));
    snprintf(map, sizeof map, "mute = \"127.0.0.1:%u\"", mute_port);
    MUST(skc_reload_text(node, map));
    snprintf(map, sizeof map, "live = \"127.0.0.1:%u\"", live_port);
    MUST(skc_reload_text(patient, map));

    /* The mute peer: the call fails with the heartbeat, long before its 30 s timeout. */
    uint8_t *resp = NULL;
    size_t rn = 0;
    double t0 = now_s();
    EXPECT_RC(SKC_ERR_LINK_DOWN, skc_call(node, "mute", NULL, 1, (const uint8_t *)"x", 1, 30000, &resp, &rn));
    double took = now_s() - t0;
    EXPECT(strstr(skc_last_error(), "heartbeat") != NULL);
    printf("call to the mute peer failed after %.3f s: %s\n", took, skc_last_error());
    EXPECT(took < 10.0); /* expected ~0.4-0.6 s; the bound only has to beat the 30 s timeout */
    EXPECT(resp == NULL && rn == 0);
    WAIT_FOR(atomic_load(&hb_events) == 1);
    EXPECT(strcmp(hb_node, "mute") == 0);
    EXPECT(strncmp(hb_text, "heartbeat: ", 11) == 0);
    skc_health h;
    MUST(skc_health_get(node, &h, sizeof h));
    EXPECT(h.heartbeat_timeouts == 1);
    EXPECT(atomic_load(&mute_accepts) == 1);
    /* The peer saw the call, then the probe: a query for the reserved name. */
    WAIT_FOR(contains(mute_bytes, atomic_load(&mute_len), "__skc.heartbeat"));

    /* A live peer that is slow to answer is not mistaken for a dead one: the probes (one
     * every ~0.2 s of silence) are answered while the call waits, and the call succeeds. */
    t0 = now_s();
    skc_status rc = skc_call(patient, "live", NULL, SLOW, NULL, 0, 30000, &resp, &rn);
    EXPECT(rc == SKC_OK);
    if (rc == SKC_OK) {
        EXPECT(rn == 4 && memcmp(resp, "slow", 4) == 0);
        skc_free(resp);
    }
    printf("call to the slow live peer answered after %.3f s\n", now_s() - t0);
    MUST(skc_health_get(patient, &h, sizeof h));
    EXPECT(h.heartbeat_timeouts == 0);
    EXPECT(atomic_load(&hb_events) == 1);
    EXPECT(atomic_load(&other_down) == 0);
    bool up = false;
    MUST(skc_link_up(patient, "live", &up));
    EXPECT(up);
    skc_stats st;
    MUST(skc_stats_get(patient, "live", &st, sizeof st));
    /* Probes are not the host's calls; the link never dropped. (`errors` is not checked: the
     * engine counts each probe's "name not found" answer there today.) */
    EXPECT(st.calls == 1 && st.timeouts == 0 && st.connects == 1 && st.drops == 0);
    MUST(skc_stats_get(live, NULL, &st, sizeof st));
    EXPECT(st.calls >= 2); /* the live peer saw the call and at least one probe (a name query) */
    printf("the live peer answered %llu requests (the call, and probes)\n", (unsigned long long)st.calls);

    MUST(skc_node_destroy(patient));
    MUST(skc_node_destroy(node));
    MUST(skc_node_destroy(live));
    atomic_store(&mute_stop, 1);
    pthread_join(peer, NULL);
    close(mute_listener);
    if (capi_failures) {
        fprintf(stderr, "capi_heartbeat: %d failure(s)\n", capi_failures);
        return 1;
    }
    printf("capi_heartbeat: passed\n");
    return 0;
}
