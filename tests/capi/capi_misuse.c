/* Every API misuse a C programmer makes gets an error code, not a crash: NULL handles and
 * pointers, double destroy/free, use after destroy, wrong struct sizes, wrong handle kinds,
 * builder calls out of order, bad bytes, destroying a node from its own callback. */
#define _POSIX_C_SOURCE 200809L
#include "capi_test.h"
#include <stdatomic.h>

static atomic_int destroy_rc = -1;
static skc_node *self_node;

static void destroy_self(void *ud, const skc_request *req, skc_responder *r) {
    (void)ud;
    (void)req;
    atomic_store(&destroy_rc, skc_node_destroy(self_node));
    if (r) skc_respond(r, NULL, 0);
}

int main(void) {
    uint8_t *buf = NULL;
    size_t n = 0;
    skc_stats st;
    skc_completion c;
    uint32_t id;
    bool b;

    /* NULL everywhere. */
    EXPECT_RC(SKC_ERR_NULL, skc_node_new(NULL, NULL));
    EXPECT_RC(SKC_ERR_NULL, skc_node_destroy(NULL));
    EXPECT(strstr(skc_last_error(), "NULL") != NULL && skc_last_error_len() > 0);
    EXPECT_RC(SKC_ERR_NULL, skc_listen(NULL, "127.0.0.1:0", NULL));
    EXPECT_RC(SKC_ERR_NULL, skc_call(NULL, "x", NULL, 1, NULL, 0, 0, &buf, &n));
    EXPECT(buf == NULL && n == 0);
    EXPECT_RC(SKC_ERR_NULL, skc_push(NULL, "x", NULL, 1, NULL, 0));
    EXPECT_RC(SKC_ERR_NULL, skc_query(NULL, "x", "y", 0, &id));
    EXPECT_RC(SKC_ERR_NULL, skc_serve(NULL, destroy_self, NULL));
    EXPECT_RC(SKC_ERR_NULL, skc_stats_get(NULL, NULL, &st, sizeof st));
    EXPECT_RC(SKC_ERR_NULL, skc_respond(NULL, NULL, 0));
    EXPECT_RC(SKC_ERR_NULL, skc_respond_error(NULL, "x"));
    EXPECT_RC(SKC_ERR_NULL, skc_pack_string(NULL, "x"));
    EXPECT_RC(SKC_ERR_NULL, skc_pack_finish(NULL, &buf, &n));
    EXPECT_RC(SKC_ERR_NULL, skc_pack_free(NULL));
    EXPECT_RC(SKC_ERR_NULL, skc_values_free(NULL));
    EXPECT_RC(SKC_ERR_NULL, skc_values_count(NULL, &n));
    EXPECT_RC(SKC_ERR_NULL, skc_queue_free(NULL));
    EXPECT_RC(SKC_ERR_NULL, skc_queue_pop(NULL, &c, sizeof c));
    EXPECT_RC(SKC_ERR_NULL, skc_unpack(NULL, 5, NULL));
    skc_free(NULL); /* ignored */

    skc_node *node;
    MUST(skc_node_new(NULL, &node));
    EXPECT_RC(SKC_ERR_NULL, skc_listen(node, NULL, NULL));
    EXPECT_RC(SKC_ERR_NULL, skc_call(node, NULL, NULL, 1, NULL, 0, 0, &buf, &n));
    EXPECT_RC(SKC_ERR_NULL, skc_call(node, "x", NULL, 1, NULL, 5, 0, &buf, &n)); /* NULL data, len 5 */
    EXPECT_RC(SKC_ERR_NULL, skc_call(node, "x", NULL, 1, NULL, 0, 0, NULL, &n));
    EXPECT_RC(SKC_ERR_NULL, skc_reload(node, NULL, NULL, 1));
    EXPECT_RC(SKC_ERR_NULL, skc_register(node, NULL, 1));
    EXPECT_RC(SKC_ERR_NULL, skc_serve(node, NULL, NULL));
    EXPECT_RC(SKC_ERR_NULL, skc_stats_get(node, NULL, NULL, sizeof st));
    EXPECT_RC(SKC_ERR_NULL, skc_link_up(node, "x", NULL));
    EXPECT_RC(SKC_ERR_NULL, skc_query(node, "x", "y", 0, NULL));

    /* Wrong sizes. */
    EXPECT_RC(SKC_ERR_SIZE, skc_stats_get(node, NULL, &st, sizeof st - 1));
    EXPECT_RC(SKC_ERR_SIZE, skc_stats_get(node, NULL, &st, 0));
    skc_queue *q;
    MUST(skc_queue_new(&q));
    EXPECT_RC(SKC_ERR_SIZE, skc_queue_pop(q, &c, 4));
    EXPECT_RC(SKC_ERR_SIZE, skc_queue_wait(q, 1, &c, sizeof c - 8));
    EXPECT_RC(SKC_ERR_SIZE, skc_call(node, "x", NULL, 1, (const uint8_t *)"", (size_t)-1, 0, &buf, &n));
    {
        char big[300];
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = 0;
        EXPECT_RC(SKC_ERR_INVALID, skc_register(node, big, 1));
        EXPECT_RC(SKC_ERR_INVALID, skc_push(node, "x", big, 0, NULL, 0));
        EXPECT_RC(SKC_ERR_IO, skc_listen(node, "not an address", NULL));
    }
    {
        skc_node *bad = node;
        EXPECT_RC(SKC_ERR_INVALID, skc_node_new("\xff\xfe", &bad));
        EXPECT(bad == NULL); /* a failing constructor leaves NULL behind */
    }

    {
        const char *names[] = {"a"}, *addrs[] = {"127.0.0.1:1"};
        EXPECT_RC(SKC_ERR_SIZE, skc_reload(node, names, addrs, SIZE_MAX));
        EXPECT_RC(SKC_ERR_INVALID, skc_reload_text(node, "a = 1"));
        EXPECT_RC(SKC_ERR_INVALID, skc_reload_text(node, "a = \"x\"\nbad line"));
        EXPECT(strstr(skc_last_error(), "line 2") != NULL);
        EXPECT_RC(SKC_ERR_SIZE, skc_trace(NULL) == SKC_OK ? SKC_ERR_SIZE : SKC_OK);
    }

    /* Wrong handle kinds (a C cast away from a type error). */
    skc_pack *p;
    MUST(skc_pack_new(&p));
    EXPECT_RC(SKC_ERR_HANDLE, skc_node_destroy((skc_node *)p));
    EXPECT_RC(SKC_ERR_HANDLE, skc_values_free((skc_values *)p));
    EXPECT_RC(SKC_ERR_HANDLE, skc_queue_free((skc_queue *)node));
    EXPECT_RC(SKC_ERR_HANDLE, skc_respond((skc_responder *)q, NULL, 0));
    EXPECT_RC(SKC_ERR_HANDLE, skc_call_queued(node, "x", NULL, 1, NULL, 0, 0, (skc_queue *)p, 1));
    /* Not a handle at all (never dereferenced). */
    EXPECT_RC(SKC_ERR_HANDLE, skc_listen((skc_node *)(uintptr_t)0x1234, "127.0.0.1:0", NULL));
    EXPECT_RC(SKC_ERR_HANDLE, skc_pack_nil((skc_pack *)&st));
    /* The wrong-kind calls left the handles alive. */
    MUST(skc_pack_integer(p, 1));

    /* Builder out of order. */
    EXPECT_RC(SKC_ERR_STATE, skc_pack_table_end(p));
    EXPECT_RC(SKC_ERR_STATE, skc_pack_key(p));
    EXPECT_RC(SKC_ERR_STATE, skc_pack_field(p, "x"));
    MUST(skc_pack_table_begin(p));
    MUST(skc_pack_key(p));
    EXPECT_RC(SKC_ERR_ENCODE, skc_pack_nil(p)); /* nil key */
    EXPECT_RC(SKC_ERR_STATE, skc_pack_key(p));
    MUST(skc_pack_string(p, "k"));
    EXPECT_RC(SKC_ERR_STATE, skc_pack_table_end(p)); /* key without value */
    MUST(skc_pack_integer(p, 2));
    MUST(skc_pack_table_begin(p));
    EXPECT_RC(SKC_ERR_STATE, skc_pack_finish(p, &buf, &n)); /* tables open: p is consumed anyway */
    EXPECT(buf == NULL);
    EXPECT_RC(SKC_ERR_HANDLE, skc_pack_free(p));
    EXPECT_RC(SKC_ERR_HANDLE, skc_pack_string(p, "after finish"));
    /* Too deep for skynet.pack. */
    MUST(skc_pack_new(&p));
    skc_status deep = SKC_OK;
    for (int i = 0; i < 40 && deep == SKC_OK; i++) deep = skc_pack_table_begin(p);
    EXPECT(deep == SKC_ERR_ENCODE);
    MUST(skc_pack_free(p));
    EXPECT_RC(SKC_ERR_HANDLE, skc_pack_free(p)); /* double free */
    MUST(skc_pack_new(&p));
    EXPECT_RC(SKC_ERR_NULL, skc_pack_finish(p, NULL, &n)); /* consumed even then */
    EXPECT_RC(SKC_ERR_HANDLE, skc_pack_free(p));

    /* Reader: bad bytes, type and range errors, double free. */
    skc_values *v;
    EXPECT_RC(SKC_ERR_DECODE, skc_unpack((const uint8_t *)"\x05\x02", 2, &v));
    EXPECT(v == NULL);
    MUST(skc_pack_new(&p));
    MUST(skc_pack_integer(p, 42));
    MUST(skc_pack_table_begin(p));
    MUST(skc_pack_string(p, "one"));
    MUST(skc_pack_field(p, "x"));
    MUST(skc_pack_real(p, 1.5));
    MUST(skc_pack_table_end(p));
    MUST(skc_pack_finish(p, &buf, &n));
    MUST(skc_unpack(buf, n, &v));
    skc_free(buf);
    {
        int64_t i64;
        double d;
        const uint8_t *s;
        size_t sl, cnt;
        skc_type t;
        skc_values *arr, *hash;
        MUST(skc_values_integer(v, 0, &i64));
        EXPECT(i64 == 42);
        EXPECT_RC(SKC_ERR_TYPE, skc_values_string(v, 0, &s, &sl));
        EXPECT_RC(SKC_ERR_TYPE, skc_values_boolean(v, 0, &b));
        EXPECT_RC(SKC_ERR_RANGE, skc_values_integer(v, 2, &i64));
        EXPECT_RC(SKC_ERR_RANGE, skc_values_type(v, 99, &t));
        EXPECT_RC(SKC_ERR_TYPE, skc_values_array(v, 0, &arr));
        MUST(skc_values_type(v, 1, &t));
        EXPECT(t == SKC_TYPE_TABLE);
        MUST(skc_values_array(v, 1, &arr));
        MUST(skc_values_hash(v, 1, &hash));
        MUST(skc_values_count(arr, &cnt));
        EXPECT(cnt == 1);
        MUST(skc_values_string(arr, 0, &s, &sl));
        EXPECT(sl == 3 && memcmp(s, "one", 3) == 0);
        MUST(skc_values_count(hash, &cnt));
        EXPECT(cnt == 2);
        MUST(skc_values_real(hash, 1, &d));
        EXPECT(d == 1.5);
        MUST(skc_values_free(arr));
        MUST(skc_values_free(hash));
        EXPECT_RC(SKC_ERR_HANDLE, skc_values_free(hash));
    }
    MUST(skc_values_free(v));
    EXPECT_RC(SKC_ERR_HANDLE, skc_values_free(v));
    EXPECT_RC(SKC_ERR_HANDLE, skc_values_count(v, &n));

    /* Queue: double free, use after free. */
    MUST(skc_queue_free(q));
    EXPECT_RC(SKC_ERR_HANDLE, skc_queue_free(q));
    EXPECT_RC(SKC_ERR_HANDLE, skc_queue_pop(q, &c, sizeof c));

    /* Destroying a node from its own handler is refused; the node stays usable. */
    {
        uint16_t port;
        char map[64];
        self_node = node;
        MUST(skc_listen(node, "127.0.0.1:0", &port));
        MUST(skc_serve(node, destroy_self, NULL));
        snprintf(map, sizeof map, "me = \"127.0.0.1:%u\"", port);
        MUST(skc_reload_text(node, map));
        MUST(skc_call(node, "me", NULL, 1, NULL, 0, 30000, &buf, &n));
        skc_free(buf);
        EXPECT(atomic_load(&destroy_rc) == SKC_ERR_DEADLOCK);
    }

    /* Double destroy, use after destroy. */
    MUST(skc_node_destroy(node));
    EXPECT_RC(SKC_ERR_HANDLE, skc_node_destroy(node));
    EXPECT_RC(SKC_ERR_HANDLE, skc_call(node, "me", NULL, 1, NULL, 0, 0, &buf, &n));
    EXPECT_RC(SKC_ERR_HANDLE, skc_push(node, "me", NULL, 1, NULL, 0));
    EXPECT_RC(SKC_ERR_HANDLE, skc_listen(node, "127.0.0.1:0", NULL));
    EXPECT_RC(SKC_ERR_HANDLE, skc_stats_get(node, NULL, &st, sizeof st));
    EXPECT(strstr(skc_last_error(), "not live") != NULL);

    EXPECT(strcmp(skc_status_name(SKC_ERR_TIMEOUT), "SKC_ERR_TIMEOUT") == 0);
    EXPECT(strcmp(skc_status_name(12345), "SKC_ERR_UNKNOWN") == 0);
    EXPECT(skc_version() != NULL && skc_version()[0] != 0);

    if (capi_failures) {
        fprintf(stderr, "capi_misuse: %d failure(s)\n", capi_failures);
        return 1;
    }
    printf("capi_misuse: passed\n");
    return 0;
}
