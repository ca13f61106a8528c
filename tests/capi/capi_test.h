/* Shared helpers for the C API tests (tests/capi/capi_*.c). */
#ifndef CAPI_TEST_H
#define CAPI_TEST_H

#include "skynet_cluster.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int capi_failures;

#define EXPECT(cond)                                                                   \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: FAILED: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, skc_last_error());                                          \
            capi_failures++;                                                           \
        }                                                                              \
    } while (0)

/* A call that must succeed: aborts the test on failure (the rest would cascade). */
#define MUST(call)                                                                        \
    do {                                                                                  \
        skc_status must_rc_ = (call);                                                     \
        if (must_rc_ != SKC_OK) {                                                         \
            fprintf(stderr, "%s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #call,     \
                    skc_status_name(must_rc_), skc_last_error());                         \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

#define EXPECT_RC(want, call)                                                                \
    do {                                                                                     \
        skc_status rc_ = (call);                                                             \
        if (rc_ != (want)) {                                                                 \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (last error: %s)\n", __FILE__, \
                    __LINE__, #call, skc_status_name(rc_), skc_status_name(want),            \
                    skc_last_error());                                                       \
            capi_failures++;                                                                 \
        }                                                                                    \
    } while (0)

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits (hang guard only: 30 s) until *flag becomes non-zero. */
#define WAIT_FOR(cond)                                                     \
    do {                                                                   \
        int waited_ = 0;                                                   \
        while (!(cond)) {                                                  \
            if (waited_++ > 15000) {                                       \
                fprintf(stderr, "%s:%d: hang guard: %s\n", __FILE__, __LINE__, #cond); \
                exit(1);                                                   \
            }                                                              \
            sleep_ms(2);                                                   \
        }                                                                  \
    } while (0)

#endif
