/* Issue 12, "nothing a peer does takes a node down": a C server whose handler keeps every
 * skc_responder and never answers must not keep the sockets of links that closed. 300 raw
 * clients each send one call and close; the process's descriptors return to the baseline
 * while all 300 responders are still held. Answering them afterwards is harmless (SKC_OK,
 * counted in skc_health.late_answers) and the node still serves new calls. */
#define _POSIX_C_SOURCE 200809L
#include "capi_test.h"
#include "capi_net.h"
#include <stdatomic.h>

enum { N = 300, KEEP = 1, ECHO = 2 };

static skc_responder *kept[N];
static atomic_int nkept;
static atomic_int extra; /* calls to KEEP beyond N: a bug in this test or the library */

static void handler(void *ud, const skc_request *req, skc_responder *r) {
    (void)ud;
    if (!r) return;
    if (req->id == KEEP) {
        int i = atomic_fetch_add(&nkept, 1);
        if (i < N) kept[i] = r; /* never answered while its link is open */
        else {
            atomic_fetch_add(&extra, 1);
            skc_respond_error(r, "too many");
        }
    } else {
        skc_respond(r, req->data, req->len);
    }
}

static skc_health health(skc_node *node) {
    skc_health h;
    memset(&h, 0xff, sizeof h);
    MUST(skc_health_get(node, &h, sizeof h));
    return h;
}

int main(void) {
    skc_config *cfg;
    skc_node *server;
    uint16_t port;
    MUST(skc_config_new(&cfg));
    MUST(skc_config_set_nodename(cfg, "fdtest"));
    MUST(skc_node_new_with(cfg, &server));
    MUST(skc_config_free(cfg));
    MUST(skc_listen(server, "127.0.0.1:0", &port));
    MUST(skc_serve(server, handler, NULL));

    /* Warm up: one call answered on a link that then closes, so whatever the node opens once
     * (nothing, today) is in the baseline. */
    {
        int fd = tcp_connect(port);
        uint32_t s;
        int type;
        uint8_t b[16];
        EXPECT(send_call(fd, ECHO, 1, (const uint8_t *)"hi", 2) == 0);
        EXPECT(read_response(fd, &s, &type, b, sizeof b, 10000) == 2 && s == 1 && type == 1 && memcmp(b, "hi", 2) == 0);
        close(fd);
        WAIT_FOR(health(server).links == 0);
    }
    int baseline = count_fds();

    /* 300 links, each with one call the handler keeps. */
    static int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_connect(port);
        EXPECT(send_call(fds[i], KEEP, (uint32_t)i + 1, (const uint8_t *)"x", 1) == 0);
    }
    WAIT_FOR(atomic_load(&nkept) >= N);
    skc_health h = health(server);
    EXPECT(h.links == N);
    int held = count_fds();
    EXPECT(held >= baseline + 2 * N); /* our 300 client sockets and the node's 300 */
    printf("fd baseline %d, with %d links open %d\n", baseline, N, held);

    /* Every client closes. The node's sockets must go too, although every responder is kept. */
    double t0 = now_s();
    for (int i = 0; i < N; i++) close(fds[i]);
    int now = count_fds();
    while (now > baseline + 5 && now_s() - t0 < 10.0) { /* hang guard; expected: well under 1 s */
        sleep_ms(5);
        now = count_fds();
    }
    double took = now_s() - t0;
    printf("after the closes: %d fds after %.3f s (baseline %d)\n", now, took, baseline);
    EXPECT(now <= baseline + 5);
    WAIT_FOR(health(server).links == 0);
    WAIT_FOR(count_fds() <= baseline); /* every one of them, in the end */
    h = health(server);
    EXPECT(h.late_answers == 0);
    EXPECT(h.refused_links == 0);

    /* The kept responders are still live handles; answering them is fine and dropped. */
    for (int i = 0; i < N; i++) EXPECT_RC(SKC_OK, skc_respond(kept[i], (const uint8_t *)"late", 4));
    EXPECT_RC(SKC_ERR_HANDLE, skc_respond(kept[0], NULL, 0)); /* answered: freed */
    h = health(server);
    EXPECT(h.late_answers == N);
    printf("late_answers %llu\n", (unsigned long long)h.late_answers);
    EXPECT(atomic_load(&extra) == 0);
    EXPECT(count_fds() <= baseline + 5);

    /* The node still serves: a raw client, then a C API client node. */
    {
        int fd = tcp_connect(port);
        uint32_t s;
        int type;
        uint8_t b[16];
        EXPECT(send_call(fd, ECHO, 7, (const uint8_t *)"again", 5) == 0);
        EXPECT(read_response(fd, &s, &type, b, sizeof b, 10000) == 5 && s == 7 && type == 1 &&
               memcmp(b, "again", 5) == 0);
        close(fd);
    }
    {
        skc_node *client;
        char map[64];
        uint8_t *resp;
        size_t rn;
        MUST(skc_node_new(NULL, &client));
        snprintf(map, sizeof map, "srv = \"127.0.0.1:%u\"", port);
        MUST(skc_reload_text(client, map));
        skc_status rc = skc_call(client, "srv", NULL, ECHO, (const uint8_t *)"hello", 5, 10000, &resp, &rn);
        EXPECT(rc == SKC_OK);
        if (rc == SKC_OK) {
            EXPECT(rn == 5 && memcmp(resp, "hello", 5) == 0);
            skc_free(resp);
        }
        MUST(skc_node_destroy(client));
    }
    EXPECT(health(server).late_answers == N);
    MUST(skc_node_destroy(server));
    if (capi_failures) {
        fprintf(stderr, "capi_fd_release: %d failure(s)\n", capi_failures);
        return 1;
    }
    printf("capi_fd_release: passed\n");
    return 0;
}
