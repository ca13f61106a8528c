/* Who may connect and what they may call (issue 14) through the C API: the skc_config setters
 * for the allowlist, the bound per source address, the exposure policy and TLS (each bad value
 * refused with a text that names it; TLS files that cannot be read fail skc_node_new_with,
 * naming the file, with nothing leaked), played against raw sockets bound to different
 * loopback sources (127.0.0.x) and against a C client node; every refusal is counted in
 * skc_health, whose older, shorter version is still served. */
#define _POSIX_C_SOURCE 200809L
#include "capi_test.h"
#include "capi_net.h"
#include <stdatomic.h>
#include <stddef.h>

enum { ECHO = 1, ADMIN = 2 };

static atomic_int handled;

static void echo(void *ud, const skc_request *req, skc_responder *r) {
    (void)ud;
    atomic_fetch_add(&handled, 1);
    if (r) skc_respond(r, req->data, req->len);
}

static skc_health health(skc_node *node) {
    skc_health h;
    memset(&h, 0xff, sizeof h);
    MUST(skc_health_get(node, &h, sizeof h));
    return h;
}

static int last_error_has(const char *s) {
    return strstr(skc_last_error(), s) != NULL;
}

/* One echo call to ECHO on a raw connection, answered. */
static int echo_ok(int fd, uint32_t session) {
    uint32_t s;
    int type;
    uint8_t b[16];
    if (send_call(fd, ECHO, session, (const uint8_t *)"ping", 4) != 0) return 0;
    return read_response(fd, &s, &type, b, sizeof b, 10000) == 4 && s == session && type == 1 &&
           memcmp(b, "ping", 4) == 0;
}

/* A call on a raw connection that the node closes without answering (a write may fail
 * already, with EPIPE or ECONNRESET, when the close came first). */
static int refused(int fd) {
    uint32_t s;
    int type;
    uint8_t b[16];
    (void)send_call(fd, ECHO, 1, (const uint8_t *)"ping", 4);
    return read_response(fd, &s, &type, b, sizeof b, 10000) == -1;
}

static void setters(void) {
    skc_config *cfg;
    MUST(skc_config_new(&cfg));
    EXPECT_RC(SKC_ERR_NULL, skc_config_set_allow(NULL, "10.0.0.0/8"));
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_allow(cfg, "10.0.0.0/8,10.1.2.300/32"));
    EXPECT(last_error_has("allow: `10.1.2.300/32` is not a CIDR block"));
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_allow(cfg, "10.0.0.0/40"));
    EXPECT(last_error_has("10.0.0.0/40"));
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_allow(cfg, "127.0.0.1,,::1"));
    EXPECT(last_error_has("empty block"));
    EXPECT_RC(SKC_OK, skc_config_set_allow(cfg, "127.0.0.1/32, ::1/128, fd00::/8, 10.0.0.7"));
    EXPECT_RC(SKC_OK, skc_config_set_allow(cfg, ""));   /* from anywhere */
    EXPECT_RC(SKC_OK, skc_config_set_allow(cfg, NULL)); /* the same */

    EXPECT_RC(SKC_OK, skc_config_set_max_links_per_source(cfg, 0)); /* no bound */
    EXPECT_RC(SKC_OK, skc_config_set_max_links_per_source(cfg, 4));
    EXPECT_RC(SKC_ERR_HANDLE, skc_config_set_max_links_per_source((skc_config *)8, 4));

    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_exposure(cfg, ""));
    EXPECT(last_error_has("exposure"));
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_exposure(cfg, "echo,,db"));
    EXPECT(last_error_has("1 to 255 bytes"));
    EXPECT_RC(SKC_OK, skc_config_set_exposure(cfg, "registered"));
    EXPECT_RC(SKC_OK, skc_config_set_exposure(cfg, "*"));
    EXPECT_RC(SKC_OK, skc_config_set_exposure(cfg, "echo, @db"));
    EXPECT_RC(SKC_OK, skc_config_set_exposure(cfg, NULL));

    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_tls(cfg, "on", "ca.pem", "n.pem", "n.key"));
    EXPECT(last_error_has("\"off\", \"prefer\" or \"require\""));
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_tls(cfg, "REQUIRE", "ca.pem", "n.pem", "n.key"));
    EXPECT_RC(SKC_ERR_NULL, skc_config_set_tls(cfg, NULL, "ca.pem", "n.pem", "n.key"));
    EXPECT_RC(SKC_ERR_NULL, skc_config_set_tls(cfg, "require", "ca.pem", NULL, "n.key"));
    EXPECT(last_error_has("cert"));
    EXPECT_RC(SKC_ERR_INVALID, skc_config_set_tls(cfg, "prefer", "ca.pem", "n.pem", ""));
    EXPECT(last_error_has("key"));
    EXPECT_RC(SKC_OK, skc_config_set_tls(cfg, "off", NULL, NULL, NULL));
    /* Refused settings left the config as it was: a node starts from it. */
    skc_node *node;
    MUST(skc_node_new_with(cfg, &node));
    EXPECT_RC(SKC_OK, skc_node_reload_tls(node)); /* TLS off: nothing to read */
    MUST(skc_node_destroy(node));
    EXPECT_RC(SKC_ERR_HANDLE, skc_node_reload_tls(node));
    EXPECT_RC(SKC_ERR_NULL, skc_node_reload_tls(NULL));
    MUST(skc_config_free(cfg));
}

/* TLS files are read when the node starts: a missing or unusable one fails skc_node_new_with
 * with a text naming the file; *out is NULL and nothing is leaked (valgrind). */
static void tls_files(void) {
    char dir[] = "/tmp/capi_admission_XXXXXX", garbage[64], missing[64];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(garbage, sizeof garbage, "%s/garbage.pem", dir);
    snprintf(missing, sizeof missing, "%s/no-such-ca.pem", dir);
    FILE *f = fopen(garbage, "w");
    if (!f) {
        perror(garbage);
        exit(1);
    }
    fputs("this is not a PEM file\n", f);
    fclose(f);

    skc_config *cfg;
    skc_node *node = (skc_node *)1;
    MUST(skc_config_new(&cfg));
    MUST(skc_config_set_tls(cfg, "require", missing, garbage, garbage));
    EXPECT_RC(SKC_ERR_INVALID, skc_node_new_with(cfg, &node));
    EXPECT(node == NULL);
    EXPECT(last_error_has("cannot start node: tls: CA file"));
    EXPECT(last_error_has(missing));
    node = (skc_node *)1;
    MUST(skc_config_set_tls(cfg, "prefer", garbage, garbage, garbage));
    EXPECT_RC(SKC_ERR_INVALID, skc_node_new_with(cfg, &node));
    EXPECT(node == NULL);
    EXPECT(last_error_has(garbage) && last_error_has("holds no certificate"));
    MUST(skc_config_free(cfg));
    unlink(garbage);
    rmdir(dir);
}

/* Only 127.0.0.1 is allowed: a client from 127.0.0.2 is closed before its call is read, one
 * from 127.0.0.1 is served; each refusal is counted once, nothing else is. */
static void allowlist(void) {
    skc_config *cfg;
    skc_node *node;
    uint16_t port;
    MUST(skc_config_new(&cfg));
    MUST(skc_config_set_allow(cfg, "127.0.0.1/32,::1/128"));
    MUST(skc_node_new_with(cfg, &node));
    MUST(skc_config_free(cfg));
    MUST(skc_listen(node, "127.0.0.1:0", &port));
    MUST(skc_serve(node, echo, NULL));
    int base = count_fds();
    atomic_store(&handled, 0);

    int ok = tcp_connect_from("127.0.0.1", port);
    EXPECT(echo_ok(ok, 1));
    int no = tcp_connect_from("127.0.0.2", port);
    EXPECT(refused(no));
    close(no);
    int no2 = tcp_connect_from("127.0.0.2", port);
    EXPECT(refused(no2));
    close(no2);
    EXPECT(echo_ok(ok, 2)); /* the allowed link is untouched */
    skc_health h = health(node);
    EXPECT(h.refused_not_allowed == 2);
    EXPECT(h.refused_per_source == 0 && h.refused_links == 0 && h.refused_exposure == 0);
    EXPECT(h.links == 1);
    EXPECT(atomic_load(&handled) == 2);
    close(ok);
    WAIT_FOR(health(node).links == 0);
    /* The node holds no descriptor for the refused or closed links. */
    WAIT_FOR(count_fds() == base);
    MUST(skc_node_destroy(node));
}

/* At most 2 links per source address: the third from 127.0.0.1 is closed, one from
 * 127.0.0.3 is served; once a 127.0.0.1 link closes, a new one gets in. */
static void per_source(void) {
    skc_config *cfg;
    skc_node *node;
    uint16_t port;
    MUST(skc_config_new(&cfg));
    MUST(skc_config_set_max_links_per_source(cfg, 2));
    MUST(skc_node_new_with(cfg, &node));
    MUST(skc_config_free(cfg));
    MUST(skc_listen(node, "127.0.0.1:0", &port));
    MUST(skc_serve(node, echo, NULL));

    int a = tcp_connect_from("127.0.0.1", port), b = tcp_connect_from("127.0.0.1", port);
    EXPECT(echo_ok(a, 1));
    EXPECT(echo_ok(b, 1));
    int c = tcp_connect_from("127.0.0.1", port);
    EXPECT(refused(c));
    close(c);
    int other = tcp_connect_from("127.0.0.3", port);
    EXPECT(echo_ok(other, 1));
    skc_health h = health(node);
    EXPECT(h.refused_per_source == 1);
    EXPECT(h.refused_not_allowed == 0 && h.refused_links == 0);
    EXPECT(h.links == 3);
    close(a);
    WAIT_FOR(health(node).links == 2);
    int d = tcp_connect_from("127.0.0.1", port);
    EXPECT(echo_ok(d, 1));
    EXPECT(echo_ok(b, 2));
    EXPECT(health(node).refused_per_source == 1);
    close(b);
    close(d);
    close(other);
    MUST(skc_node_destroy(node));
}

/* A call from the client node to `srv`: its status (the answer is checked and freed). */
static skc_status call(skc_node *client, const char *name, uint32_t id) {
    uint8_t *resp;
    size_t n;
    skc_status rc = skc_call(client, "srv", name, id, (const uint8_t *)"hi", 2, 10000, &resp, &n);
    if (rc == SKC_OK) {
        EXPECT(n == 2 && memcmp(resp, "hi", 2) == 0);
        skc_free(resp);
    }
    return rc;
}

/* A server that registered @echo and @admin but exposes only echo: a numeric handle, a
 * `.name`, the hidden @admin and an unregistered name are answered `Invalid name` (what
 * stock answers for an unknown name) without reaching the handler, a query for admin says
 * `name not found`; @echo answers. Then the same under "registered": @admin answers too. */
static void exposure_with(const char *policy, int admin_exposed) {
    skc_config *cfg;
    skc_node *srv, *client;
    uint16_t port;
    char map[64];
    MUST(skc_config_new(&cfg));
    MUST(skc_config_set_exposure(cfg, policy));
    MUST(skc_node_new_with(cfg, &srv));
    MUST(skc_config_free(cfg));
    MUST(skc_listen(srv, "127.0.0.1:0", &port));
    MUST(skc_serve(srv, echo, NULL));
    MUST(skc_register(srv, "echo", ECHO));
    MUST(skc_register(srv, "admin", ADMIN));
    MUST(skc_node_new(NULL, &client));
    snprintf(map, sizeof map, "srv = \"127.0.0.1:%u\"", port);
    MUST(skc_reload_text(client, map));
    atomic_store(&handled, 0);

    EXPECT_RC(SKC_OK, call(client, "@echo", 0));
    EXPECT_RC(SKC_ERR_REMOTE, call(client, NULL, ECHO));
    EXPECT(strcmp(skc_last_error(), "Invalid name") == 0);
    EXPECT_RC(SKC_ERR_REMOTE, call(client, ".echo", 0));
    EXPECT(strcmp(skc_last_error(), "Invalid name") == 0);
    EXPECT_RC(SKC_ERR_REMOTE, call(client, "@nobody", 0)); /* unknown: not a refusal */
    EXPECT(strcmp(skc_last_error(), "Invalid name") == 0);
    uint32_t id = 0;
    EXPECT_RC(SKC_OK, skc_query(client, "srv", "echo", 10000, &id));
    EXPECT(id == ECHO);
    int refusals = 2;
    if (admin_exposed) {
        EXPECT_RC(SKC_OK, call(client, "@admin", 0));
        EXPECT_RC(SKC_OK, skc_query(client, "srv", "admin", 10000, &id));
        EXPECT(id == ADMIN);
    } else {
        EXPECT_RC(SKC_ERR_REMOTE, call(client, "@admin", 0));
        EXPECT(strcmp(skc_last_error(), "Invalid name") == 0);
        EXPECT_RC(SKC_ERR_REMOTE, skc_query(client, "srv", "admin", 10000, &id));
        EXPECT(strcmp(skc_last_error(), "name not found") == 0);
        refusals += 2;
    }
    EXPECT(atomic_load(&handled) == 1 + admin_exposed);
    skc_health h = health(srv);
    EXPECT(h.refused_exposure == (uint64_t)refusals);
    EXPECT(h.refused_not_allowed == 0 && h.refused_per_source == 0 && h.protocol_errors == 0);
    EXPECT(h.tls_links == 0 && h.refused_plain == 0 && h.tls_failures == 0);
    MUST(skc_node_destroy(client));
    MUST(skc_node_destroy(srv));
}

/* skc_health_get serves the struct's first version (before the issue 14 counters) to a
 * program built with the older header: only those fields are written. */
static void health_versions(void) {
    skc_node *node;
    MUST(skc_node_new(NULL, &node));
    skc_health h;
    size_t v1 = offsetof(skc_health, refused_not_allowed);
    memset(&h, 0xab, sizeof h);
    EXPECT_RC(SKC_OK, skc_health_get(node, &h, v1));
    EXPECT(h.max_links == 16384 && h.accept_stalls == 0);
    EXPECT(h.refused_not_allowed == 0xababababababababull && h.tls_failures == 0xababababababababull);
    EXPECT_RC(SKC_ERR_SIZE, skc_health_get(node, &h, v1 - 8));
    EXPECT_RC(SKC_ERR_SIZE, skc_health_get(node, &h, v1 + 8));
    EXPECT_RC(SKC_OK, skc_health_get(node, &h, sizeof h));
    EXPECT(h.refused_not_allowed == 0 && h.tls_failures == 0);
    MUST(skc_node_destroy(node));
}

int main(void) {
    setters();
    tls_files();
    allowlist();
    per_source();
    exposure_with("echo", 0);
    exposure_with("registered", 1);
    health_versions();
    if (capi_failures) {
        fprintf(stderr, "capi_admission: %d failure(s)\n", capi_failures);
        return 1;
    }
    printf("capi_admission: passed\n");
    return 0;
}
