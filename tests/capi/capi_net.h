/* Raw-socket helpers for the C API tests that play a peer by hand (tests/capi/capi_*.c): a client
 * that speaks the cluster wire format (2-byte big-endian length, then the body), a mute
 * listener, and the process's open file descriptor count. Include after capi_test.h. */
#ifndef CAPI_NET_H
#define CAPI_NET_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

/* Open file descriptors of this process (entries of /proc/self/fd, without the one reading it). */
static inline int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        perror("opendir /proc/self/fd");
        exit(1);
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1;
}

static inline struct sockaddr_in loopback(uint16_t port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/* A blocking TCP connection to 127.0.0.1:port; exits the test on failure. */
static inline int tcp_connect(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = loopback(port);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        exit(1);
    }
    return fd;
}

/* A blocking TCP connection to 127.0.0.1:port from the source address `src` (any 127.0.0.x:
 * the client socket is bound to it before connecting, so the node sees that source); exits
 * the test on failure. */
static inline int tcp_connect_from(const char *src, uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in local = loopback(0), a = loopback(port);
    if (fd < 0 || inet_pton(AF_INET, src, &local.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&local, sizeof local) != 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect from a source address");
        exit(1);
    }
    return fd;
}

/* A listener on 127.0.0.1 with a free port (written to *port); exits on failure. */
static inline int tcp_listen(uint16_t *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = loopback(0);
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0) {
        perror("listen");
        exit(1);
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static inline int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Sends a single-frame call to service `id` (wire type 0x00: id and session little-endian). */
static inline int send_call(int fd, uint32_t id, uint32_t session, const uint8_t *payload, size_t len) {
    uint8_t f[2 + 9 + 256];
    size_t body = 9 + len;
    if (len > 256) return -1;
    f[0] = (uint8_t)(body >> 8);
    f[1] = (uint8_t)body;
    f[2] = 0x00;
    for (int i = 0; i < 4; i++) f[3 + i] = (uint8_t)(id >> (8 * i));
    for (int i = 0; i < 4; i++) f[7 + i] = (uint8_t)(session >> (8 * i));
    if (len) memcpy(f + 11, payload, len);
    return write_all(fd, f, 2 + body);
}

/* Waits up to timeout_ms for fd to be readable: 1 readable (data, EOF or error), 0 not. */
static inline int wait_readable(int fd, int timeout_ms) {
    struct pollfd p = {fd, POLLIN, 0};
    int r;
    do r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    return r > 0;
}

/* Reads exactly n bytes, waiting up to timeout_ms for each chunk: 0 done, -1 EOF or error,
 * -2 timeout. */
static inline int read_exact(int fd, uint8_t *p, size_t n, int timeout_ms) {
    while (n > 0) {
        if (!wait_readable(fd, timeout_ms)) return -2;
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Reads one response frame: its session, its type byte (1 = ok, 0 = error) and payload into
 * buf (at most cap bytes). Returns the payload length, -1 on EOF or error, -2 on timeout. */
static inline long read_response(int fd, uint32_t *session, int *type, uint8_t *buf, size_t cap, int timeout_ms) {
    uint8_t h[2], body[0x10000];
    int r = read_exact(fd, h, 2, timeout_ms);
    if (r != 0) return r;
    size_t len = ((size_t)h[0] << 8) | h[1];
    if (len < 5) return -1;
    if ((r = read_exact(fd, body, len, timeout_ms)) != 0) return r;
    *session = (uint32_t)body[0] | (uint32_t)body[1] << 8 | (uint32_t)body[2] << 16 | (uint32_t)body[3] << 24;
    *type = body[4];
    size_t n = len - 5 < cap ? len - 5 : cap;
    memcpy(buf, body + 5, n);
    return (long)n;
}

/* True when the peer closed fd (EOF or reset) within timeout_ms; data that arrives first
 * is read and ignored. */
static inline int closed_by_peer(int fd, int timeout_ms) {
    uint8_t b[256];
    for (;;) {
        if (!wait_readable(fd, timeout_ms)) return 0;
        ssize_t r = read(fd, b, sizeof b);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 1;
    }
}

static inline double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

#endif
