/* skc_set_log_callback: the node's log lines reach the host's callback instead of stderr, with
 * a level and, for a link going down, the typed reason; NULL sends them back to stderr; after
 * the callback is replaced, the old one is never called again. */
#define _POSIX_C_SOURCE 200809L
#include "capi_test.h"
#include "capi_net.h"
#include <pthread.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int lines, connect_failed_warn, refused_warn, after_clear;
static char last[512];

static void on_log(void *ud, const skc_log_record *r) {
    pthread_mutex_lock(&mu);
    lines++;
    if (ud != (void *)&lines) after_clear++;
    if (r->level == SKC_LOG_WARN && r->reason == SKC_DOWN_CONNECT_FAILED && strstr(r->text, "connect")) connect_failed_warn++;
    if (r->level == SKC_LOG_WARN && r->reason == SKC_DOWN_NONE && strstr(r->text, "refused")) refused_warn++;
    if (strlen(r->text) != r->text_len) after_clear += 100; /* text_len must be the text's length */
    snprintf(last, sizeof last, "%s", r->text);
    pthread_mutex_unlock(&mu);
}

static int count(int *v) {
    pthread_mutex_lock(&mu);
    int n = *v;
    pthread_mutex_unlock(&mu);
    return n;
}

int main(void) {
    skc_config *cfg;
    skc_node *node;
    uint16_t port;
    MUST(skc_config_new(&cfg));
    MUST(skc_config_set_max_links(cfg, 1));
    MUST(skc_node_new_with(cfg, &node));
    MUST(skc_config_free(cfg));
    EXPECT_RC(SKC_ERR_NULL, skc_set_log_callback(NULL, on_log, NULL));
    MUST(skc_set_log_callback(node, on_log, &lines));

    /* A link that cannot connect: one warning, with its typed reason. */
    MUST(skc_reload_text(node, "nowhere = \"127.0.0.1:1\"\nnowhere2 = \"127.0.0.1:1\""));
    uint8_t *resp = NULL;
    size_t rlen = 0;
    EXPECT(skc_call(node, "nowhere", "@echo", 0, (const uint8_t *)"x", 1, 5000, &resp, &rlen) != SKC_OK);
    WAIT_FOR(count(&connect_failed_warn) == 1);

    /* A connection beyond max_links (one link: the first raw connection holds it). */
    MUST(skc_listen(node, "127.0.0.1:0", &port));
    int a = tcp_connect(port);
    sleep_ms(100);
    int b = tcp_connect(port);
    WAIT_FOR(count(&refused_warn) == 1);
    close(a);
    close(b);

    /* Cleared: lines go to stderr again, the callback is never called after this returns. */
    MUST(skc_set_log_callback(node, NULL, NULL));
    int before = count(&lines);
    /* Another node: its own rate limit, so its failure is logged (to stderr now). */
    EXPECT(skc_call(node, "nowhere2", "@echo", 0, (const uint8_t *)"x", 1, 5000, &resp, &rlen) != SKC_OK);
    sleep_ms(200);
    EXPECT(count(&lines) == before);
    EXPECT(count(&after_clear) == 0);
    MUST(skc_node_destroy(node));
    if (capi_failures) return 1;
    printf("capi_log: passed (%d lines through the callback, last: %s)\n", before, last);
    return 0;
}
