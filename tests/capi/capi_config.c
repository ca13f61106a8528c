/* skc_config (settings checked as they are given, copied into the node), skc_health_get, and
 * the limits they set, played against raw sockets: a listener's max_clients (skc_listen_max)
 * and the node-wide max_links refuse the connection beyond them while the links already open
 * keep working; idle and multi-part timeouts close the links that sit on them. */
#define _POSIX_C_SOURCE 200809L
#include "capi_test.h"
#include "capi_net.h"
#include <stdatomic.h>

enum { ECHO = 1 };

static void echo(void *ud, const skc_request *req, skc_responder *r) {
    (void)ud;
    if (r) skc_respond(r, req->data, req->len);
}

static skc_health health(skc_node *node) {
    skc_health h;
    memset(&h, 0xff, sizeof h);
    MUST(skc_health_get(node, &h, sizeof h));
    return h;
}

/* One echo call on a raw connection, answered. */
static int echo_ok(int fd, uint32_t session) {
    uint32_t s;
    int type;
    uint8_t b[16];
    if (send_call(fd, ECHO, session, (const uint8_t *)"ping", 4) != 0) return 0;
    return read_response(fd, &s, &type, b, sizeof b, 10000) == 4 && s == session && type == 1 &&
           memcmp(b, "ping", 4) == 0;
}

static int last_error_has(const char *s) {
    return strstr(skc_last_error(), s) != NULL;
}

static atomic_int expired_events;
static void on_link(void *ud, const skc_link_event *ev) {
    (void)ud;
    if (!ev->up && ev->reason == SKC_DOWN_EXPIRED && ev->dir == SKC_LINK_INBOUND) atomic_fetch_add(&expired_events, 1);
}

static void misuse_and_validation(void) {
    skc_config *cfg, *freed;
    skc_node *node = (skc_node *)1;
    skc_health h;

    EXPECT_RC(SKC_ERR_NULL, skc_config_new(NULL));
    EXPECT_RC(SKC_ERR_NULL, skc_config_free(NULL));
    EXPECT_RC(SKC_ERR_NULL, skc_config_set_max_links(NULL, 5));
    EXPECT_RC(SKC_ERR_NULL, skc_node_new_with(NULL, &node));
    EXPECT(node == NULL);

    MUST(skc_config_new(&cfg));
    EXPECT_RC(SKC_ERR_NULL, skc_node_new_with(cfg, NULL));
    /* Each value that makes no sense is refused, with a text that names it. */
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_max_links(cfg, 0));
    EXPECT(last_error_has("max_links"));
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_max_reassembly_total(cfg, 0));
    EXPECT(last_error_has("max_reassembly_total"));
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_max_send_total(cfg, 0));
    EXPECT(last_error_has("max_send_total"));
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_max_send_queue(cfg, 0));
    EXPECT(last_error_has("max_send_queue"));
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_max_message(cfg, 0));
    EXPECT(last_error_has("max_message"));
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_max_inflight(cfg, 0));
    EXPECT(last_error_has("max_inflight"));
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_max_multi_pending(cfg, 0));
    EXPECT(last_error_has("max_multi_pending"));
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_connect_timeout_ms(cfg, 0));
    EXPECT(last_error_has("connect_timeout"));
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_heartbeat_ms(cfg, 0, 100));
    EXPECT(last_error_has("heartbeat"));
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_heartbeat_ms(cfg, 100, 0));
    EXPECT_RC(SKC_OK, skc_config_set_heartbeat_ms(cfg, 0, 0)); /* off */
    EXPECT_RC(SKC_OK, skc_config_set_multi_timeout_ms(cfg, 0)); /* off */
    EXPECT_RC(SKC_OK, skc_config_set_idle_timeout_ms(cfg, 0));  /* off */
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_nodename(cfg, ""));
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_nodename(cfg, "\xff\xfe"));
    EXPECT_RC(SKC_OK, skc_config_set_nodename(cfg, NULL)); /* the default */
    EXPECT_RC(SKC_OK, skc_config_set_nodename(cfg, "cfgtest"));

    /* A refused value leaves the one before it. */
    MUST(skc_config_set_max_links(cfg, 3));
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_max_links(cfg, 0));
    MUST(skc_config_set_max_reassembly_total(cfg, 1 << 20));
    MUST(skc_config_set_max_send_total(cfg, 2 << 20));
    MUST(skc_node_new_with(cfg, &node));
    skc_node *second;
    MUST(skc_node_new_with(cfg, &second)); /* one config, any number of nodes */
    MUST(skc_config_set_max_links(cfg, 99)); /* the nodes have their own copy */
    h = health(node);
    EXPECT(h.max_links == 3 && h.max_reassembly_bytes == (1 << 20) && h.max_send_bytes == (2 << 20));
    EXPECT(h.links == 0 && h.reassembly_bytes == 0 && h.send_bytes == 0);
    EXPECT(h.late_answers == 0 && h.refused_links == 0 && h.over_budget == 0 && h.heartbeat_timeouts == 0);
    EXPECT(h.expired == 0 && h.protocol_errors == 0 && h.accept_stalls == 0);
    EXPECT(health(second).max_links == 3);
    MUST(skc_node_destroy(second));

    /* Handles of the wrong kind, and after free. */
    EXPECT_RC(SKC_ERR_HANDLE, skc_listen((skc_node *)cfg, "127.0.0.1:0", NULL));
    EXPECT(last_error_has("skc_config"));
    EXPECT_RC(SKC_ERR_HANDLE, skc_config_set_max_links((skc_config *)node, 5));
    EXPECT_RC(SKC_ERR_HANDLE, skc_config_free((skc_config *)node));
    freed = cfg;
    MUST(skc_config_free(cfg));
    EXPECT_RC(SKC_ERR_HANDLE, skc_config_free(freed));
    EXPECT_RC(SKC_ERR_HANDLE, skc_config_set_max_links(freed, 5));
    second = (skc_node *)1;
    EXPECT_RC(SKC_ERR_HANDLE, skc_node_new_with(freed, &second));
    EXPECT(second == NULL);

    /* skc_health_get and skc_listen_max arguments. */
    EXPECT_RC(SKC_ERR_NULL, skc_health_get(NULL, &h, sizeof h));
    EXPECT_RC(SKC_ERR_NULL, skc_health_get(node, NULL, sizeof h));
    EXPECT_RC(SKC_ERR_SIZE, skc_health_get(node, &h, sizeof h - 1));
    EXPECT_RC(SKC_ERR_NULL, skc_listen_max(node, NULL, 2, NULL));
    EXPECT_RC(SKC_ERR_INVALID, skc_listen_max(node, "127.0.0.1:0", 0, NULL));
    EXPECT(last_error_has("max_clients"));
    EXPECT_RC(SKC_ERR_IO, skc_listen_max(node, "not an address", 2, NULL));
    MUST(skc_node_destroy(node));
}

/* A listener with max_clients 2: the third connection is closed at once, the first two
 * keep working; once one of them closes, a new one gets in. */
static void listener_bound(void) {
    skc_node *node;
    uint16_t port, free_port;
    MUST(skc_node_new(NULL, &node));
    MUST(skc_listen_max(node, "127.0.0.1:0", 2, &port));
    MUST(skc_listen(node, "127.0.0.1:0", &free_port)); /* a second listener, unbounded */
    MUST(skc_serve(node, echo, NULL));
    int a = tcp_connect(port), b = tcp_connect(port);
    EXPECT(echo_ok(a, 1));
    EXPECT(echo_ok(b, 1));
    int c = tcp_connect(port); /* the kernel completes the handshake; the node closes it */
    EXPECT(closed_by_peer(c, 10000));
    close(c);
    skc_health h = health(node);
    EXPECT(h.refused_links == 1);
    EXPECT(h.links == 2);
    EXPECT(echo_ok(a, 2));
    EXPECT(echo_ok(b, 2));
    int other = tcp_connect(free_port); /* the bound is the listener's, not the node's */
    EXPECT(echo_ok(other, 1));
    close(other);
    close(a);
    WAIT_FOR(health(node).links == 1);
    int d = tcp_connect(port);
    EXPECT(echo_ok(d, 1));
    EXPECT(echo_ok(b, 3));
    EXPECT(health(node).refused_links == 1);
    close(b);
    close(d);
    MUST(skc_node_destroy(node));
}

/* max_links 2, node-wide: a third accepted connection is closed at once, and a call that
 * needs a new outbound link fails. */
static void node_bound(void) {
    skc_config *cfg;
    skc_node *node, *other;
    uint16_t port, other_port;
    char map[64];
    MUST(skc_config_new(&cfg));
    MUST(skc_config_set_max_links(cfg, 2));
    MUST(skc_node_new_with(cfg, &node));
    MUST(skc_config_free(cfg));
    MUST(skc_listen(node, "127.0.0.1:0", &port));
    MUST(skc_serve(node, echo, NULL));
    MUST(skc_node_new(NULL, &other));
    MUST(skc_listen(other, "127.0.0.1:0", &other_port));
    MUST(skc_serve(other, echo, NULL));
    snprintf(map, sizeof map, "other = \"127.0.0.1:%u\"", other_port);
    MUST(skc_reload_text(node, map));

    int a = tcp_connect(port), b = tcp_connect(port);
    EXPECT(echo_ok(a, 1));
    EXPECT(echo_ok(b, 1));
    int c = tcp_connect(port);
    EXPECT(closed_by_peer(c, 10000));
    close(c);
    EXPECT(health(node).refused_links == 1);
    uint8_t *resp;
    size_t rn;
    EXPECT_RC(SKC_ERR_CONNECT, skc_call(node, "other", NULL, ECHO, NULL, 0, 10000, &resp, &rn));
    EXPECT(last_error_has("max_links"));
    EXPECT(echo_ok(a, 2));
    close(a);
    WAIT_FOR(health(node).links == 1);
    EXPECT(health(node).max_links == 2);
    close(b);
    MUST(skc_node_destroy(other));
    MUST(skc_node_destroy(node));
}

/* idle_timeout and multi_timeout close the links that sit on them (counted as expired). */
static void timeouts(void) {
    skc_config *cfg;
    skc_node *node;
    uint16_t port;
    MUST(skc_config_new(&cfg));
    MUST(skc_config_set_idle_timeout_ms(cfg, 300));
    MUST(skc_config_set_multi_timeout_ms(cfg, 300));
    MUST(skc_node_new_with(cfg, &node));
    MUST(skc_config_free(cfg));
    MUST(skc_listen(node, "127.0.0.1:0", &port));
    MUST(skc_serve(node, echo, NULL));
    MUST(skc_set_link_callback(node, on_link, NULL));

    /* A link that sends nothing. */
    int idle = tcp_connect(port);
    EXPECT(closed_by_peer(idle, 10000));
    close(idle);
    WAIT_FOR(health(node).expired == 1);

    /* A link that starts a multi-part request (header: type 0x01, id, session, total) and
     * keeps sending other traffic, so only the unfinished message can expire it. */
    int multi = tcp_connect(port);
    uint8_t hdr[2 + 13] = {0, 13, 0x01, ECHO, 0, 0, 0, 9, 0, 0, 0, 0x00, 0x00, 0x01, 0x00}; /* 65536 bytes */
    EXPECT(write_all(multi, hdr, sizeof hdr) == 0);
    double t0 = now_s();
    int closed = 0;
    uint32_t session = 100;
    while (!closed && now_s() - t0 < 10.0) { /* hang guard; expected: ~0.3 s */
        if (!echo_ok(multi, session++)) closed = 1;
        else sleep_ms(50);
    }
    EXPECT(closed && closed_by_peer(multi, 10000));
    close(multi);
    WAIT_FOR(health(node).expired == 2);
    WAIT_FOR(atomic_load(&expired_events) == 2);
    MUST(skc_node_destroy(node));
}

int main(void) {
    misuse_and_validation();
    listener_bound();
    node_bound();
    timeouts();
    if (capi_failures) {
        fprintf(stderr, "capi_config: %d failure(s)\n", capi_failures);
        return 1;
    }
    printf("capi_config: passed\n");
    return 0;
}
