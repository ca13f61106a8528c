/* Calls a skynet service with string arguments and prints the answer, one value a line.
 * Usage: client HOST:PORT SERVICE [ARGS...]    e.g. client 127.0.0.1:2528 @sdb GET a */
#include <skynet_cluster.h>
#include <stdio.h>

int main(int argc, char **argv) {
    skc_node *node; skc_pack *p; skc_values *v; uint8_t *req, *resp; size_t n, rn, count, sl;
    const char *names[] = {"db"}, *addrs[] = {argc > 1 ? argv[1] : ""};
    if (argc < 3) return fprintf(stderr, "usage: client HOST:PORT SERVICE [ARGS...]\n"), 2;
    skc_node_new(NULL, &node);
    skc_reload(node, names, addrs, 1);                 /* the node map: db = "HOST:PORT" */
    skc_pack_new(&p);                                  /* skynet.pack(ARGS...) */
    for (int i = 3; i < argc; i++) skc_pack_string(p, argv[i]);
    skc_pack_finish(p, &req, &n);
    int rc = skc_call(node, "db", argv[2], 0, req, n, 5000, &resp, &rn); /* cluster.call("db", SERVICE, ...) */
    if (rc != SKC_OK) fprintf(stderr, "%s: %s\n", skc_status_name(rc), skc_last_error());
    else if (skc_unpack(resp, rn, &v) == SKC_OK && skc_values_count(v, &count) == SKC_OK) {
        for (size_t i = 0; i < count; i++) {
            const uint8_t *s; int64_t x;
            if (skc_values_string(v, i, &s, &sl) == SKC_OK) printf("%.*s\n", (int)sl, (const char *)s);
            else if (skc_values_integer(v, i, &x) == SKC_OK) printf("%lld\n", (long long)x);
            else printf("(not a string or an integer)\n");
        }
        skc_values_free(v);
    }
    if (rc == SKC_OK) skc_free(resp);
    skc_free(req);
    skc_node_destroy(node);
    return rc != SKC_OK;
}
