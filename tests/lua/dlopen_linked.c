/* Linked directly with -lskynet_cluster (no Lua): shows that the linker accepts the library with
 * no undefined lua_* symbols left for it to resolve, and that the C API is callable. */
#include <stdio.h>

const char *skc_version(void);

int main(void) {
    const char *v = skc_version();
    if (v == NULL || v[0] == '\0') { fprintf(stderr, "FAIL skc_version returned an empty version\n"); return 1; }
    printf("dlopen_linked: linked with -lskynet_cluster, skc_version() = %s\n", v);
    return 0;
}
