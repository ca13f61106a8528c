/* A skynet cluster node in C: serves `@echo` (every call is answered with its own request);
 * any push stops it. Usage: server [HOST:PORT] (default 127.0.0.1:2528; port 0 = any). */
#define _POSIX_C_SOURCE 200809L
#include <skynet_cluster.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

static atomic_int stop;

static void handle(void *ud, const skc_request *req, skc_responder *r) {
    (void)ud;
    if (r) skc_respond(r, req->data, req->len); /* a call: answer now (or later, from any thread) */
    else atomic_store(&stop, 1);                /* a push: no answer */
}

int main(int argc, char **argv) {
    skc_node *node;
    uint16_t port;
    if (skc_node_new(NULL, &node) != SKC_OK || skc_listen(node, argc > 1 ? argv[1] : "127.0.0.1:2528", &port) != SKC_OK) {
        fprintf(stderr, "server: %s\n", skc_last_error());
        return 1;
    }
    skc_register(node, "echo", 1); /* cluster.register("echo", 1): reachable as "@echo" */
    skc_serve(node, handle, NULL);
    printf("listening on port %u\n", port);
    fflush(stdout);
    while (!atomic_load(&stop)) nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    return skc_node_destroy(node);
}
