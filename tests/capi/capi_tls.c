/* TLS through the C API (issue 14): two C nodes in `require` mode call each other over
 * mutually authenticated TLS; a C node whose certificate comes from another CA is refused
 * (counted in skc_health.tls_failures, an inbound down event with SKC_DOWN_TLS) and so is a
 * plain-text one (refused_plain), while the good link goes on; skc_node_reload_tls reads
 * the files again and, when one is gone, fails naming it and keeps the certificates in use.
 * Certificates come from `skynet-cluster certs` (mk/capi.mk writes them before the tests
 * and passes their directories in SKC_CAPI_CERTS and SKC_CAPI_CERTS_OTHER). Run under
 * valgrind like every C API test: nothing leaks. */
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

static int last_error_has(const char *s) {
    return strstr(skc_last_error(), s) != NULL;
}

static atomic_int tls_downs;
static void on_link(void *ud, const skc_link_event *ev) {
    (void)ud;
    if (!ev->up && ev->dir == SKC_LINK_INBOUND && ev->reason == SKC_DOWN_TLS) atomic_fetch_add(&tls_downs, 1);
}

static const char *env_dir(const char *var) {
    const char *d = getenv(var);
    if (!d || !*d) {
        fprintf(stderr, "capi_tls: %s is not set (run it through `make test-capi`, which makes the certificates)\n",
                var);
        exit(1);
    }
    return d;
}

/* path = dir/name */
static void path(char *out, size_t cap, const char *dir, const char *name) {
    if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap) {
        fprintf(stderr, "capi_tls: path too long: %s/%s\n", dir, name);
        exit(1);
    }
}

static void copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[4096];
    size_t n;
    if (!in || !out) {
        perror(in ? to : from);
        exit(1);
    }
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
}

/* A node with TLS `mode` (CA of `ca_dir`, certificate and key `cert_dir/<name>.pem|.key`),
 * listening on a free port (written to *port when port is not NULL) and serving echo. */
static skc_node *tls_node(const char *mode, const char *ca_dir, const char *cert_dir, const char *name,
                          uint16_t *port) {
    char ca[512], cert[512], key[512], file[128];
    skc_config *cfg;
    skc_node *node;
    path(ca, sizeof ca, ca_dir, "ca.pem");
    snprintf(file, sizeof file, "%s.pem", name);
    path(cert, sizeof cert, cert_dir, file);
    snprintf(file, sizeof file, "%s.key", name);
    path(key, sizeof key, cert_dir, file);
    MUST(skc_config_new(&cfg));
    MUST(skc_config_set_nodename(cfg, name));
    MUST(skc_config_set_tls(cfg, mode, ca, cert, key));
    MUST(skc_node_new_with(cfg, &node));
    MUST(skc_config_free(cfg));
    if (port) {
        MUST(skc_listen(node, "127.0.0.1:0", port));
        MUST(skc_serve(node, echo, NULL));
    }
    return node;
}

static void map(skc_node *node, const char *name, uint16_t port) {
    char text[96];
    snprintf(text, sizeof text, "%s = \"127.0.0.1:%u\"", name, port);
    MUST(skc_reload_text(node, text));
}

/* An echo call of `msg` to peer `peer`: its status (the answer checked and freed). */
static skc_status call(skc_node *node, const char *peer, const char *msg) {
    uint8_t *resp;
    size_t n, len = strlen(msg);
    skc_status rc = skc_call(node, peer, NULL, ECHO, (const uint8_t *)msg, len, 20000, &resp, &n);
    if (rc == SKC_OK) {
        EXPECT(n == len && memcmp(resp, msg, len) == 0);
        skc_free(resp);
    }
    return rc;
}

int main(void) {
    const char *dir = env_dir("SKC_CAPI_CERTS"), *other = env_dir("SKC_CAPI_CERTS_OTHER");
    char live[] = "/tmp/capi_tls_XXXXXX";
    char from[512], to[512];
    if (!mkdtemp(live)) {
        perror("mkdtemp");
        exit(1);
    }
    /* Node a reads its files from a directory of its own, so that they can be changed. */
    const char *files[] = {"ca.pem", "a.pem", "a.key"};
    for (int i = 0; i < 3; i++) {
        path(from, sizeof from, dir, files[i]);
        path(to, sizeof to, live, files[i]);
        copy_file(from, to);
    }

    uint16_t pa, pb;
    skc_node *a = tls_node("require", live, live, "a", &pa);
    skc_node *b = tls_node("require", dir, dir, "b", &pb);
    MUST(skc_set_link_callback(a, on_link, NULL));
    map(a, "b", pb);
    map(b, "a", pa);

    /* Both ways, over TLS. */
    EXPECT_RC(SKC_OK, call(b, "a", "b to a"));
    EXPECT_RC(SKC_OK, call(a, "b", "a to b"));
    EXPECT(health(a).tls_links == 2 && health(b).tls_links == 2); /* a link each way */
    EXPECT(health(a).tls_failures == 0 && health(b).tls_failures == 0);

    /* A node that trusts the cluster CA but whose own certificate comes from another CA:
     * a refuses the handshake; the intruder's call fails with the link. */
    skc_node *intruder = tls_node("require", dir, other, "intruder", NULL);
    map(intruder, "a", pa);
    EXPECT_RC(SKC_ERR_LINK_DOWN, call(intruder, "a", "let me in"));
    WAIT_FOR(health(a).tls_failures == 1);
    WAIT_FOR(atomic_load(&tls_downs) == 1);
    EXPECT(health(a).tls_links == 2);
    MUST(skc_node_destroy(intruder));

    /* A plain-text node (TLS off) calling a node in require mode: refused, said why. */
    skc_node *plain;
    MUST(skc_node_new(NULL, &plain));
    map(plain, "a", pa);
    EXPECT(call(plain, "a", "plain") != SKC_OK);
    EXPECT(last_error_has("tls required"));
    WAIT_FOR(health(a).refused_plain == 1);
    WAIT_FOR(atomic_load(&tls_downs) == 2);
    MUST(skc_node_destroy(plain));

    /* The good links went on, untouched. */
    EXPECT_RC(SKC_OK, call(b, "a", "still"));
    EXPECT_RC(SKC_OK, call(a, "b", "still"));
    skc_health h = health(a);
    EXPECT(h.tls_links == 2 && h.tls_failures == 1 && h.refused_plain == 1);
    EXPECT(h.refused_not_allowed == 0 && h.refused_exposure == 0);

    /* Reload: the same files again, then with the key gone (fails naming it; the
     * certificates in use stay: a new node still gets a TLS link to a). */
    EXPECT_RC(SKC_OK, skc_node_reload_tls(a));
    path(to, sizeof to, live, "a.key");
    unlink(to);
    EXPECT_RC(SKC_ERR_INVALID, skc_node_reload_tls(a));
    EXPECT(last_error_has(to));
    skc_node *c = tls_node("require", dir, dir, "b", NULL); /* b's certificate, a new node */
    map(c, "a", pa);
    EXPECT_RC(SKC_OK, call(c, "a", "after a failed reload"));
    WAIT_FOR(health(a).tls_links == 3);
    MUST(skc_node_destroy(c));

    MUST(skc_node_destroy(b));
    MUST(skc_node_destroy(a));
    for (int i = 0; i < 3; i++) {
        path(to, sizeof to, live, files[i]);
        unlink(to);
    }
    rmdir(live);
    if (capi_failures) {
        fprintf(stderr, "capi_tls: %d failure(s)\n", capi_failures);
        return 1;
    }
    printf("capi_tls: passed\n");
    return 0;
}
