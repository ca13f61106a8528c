/* A plain C program with no Lua at all: dlopen()s libskynet_cluster.so with RTLD_NOW|RTLD_LOCAL,
 * so every undefined symbol of the library must resolve now, without any Lua in the process.
 * Looks up luaopen_skynet_cluster_core (must exist, is NOT called: there is no Lua here) and
 * skc_version (called). Usage: dlopen_plain /path/to/libskynet_cluster.so. Exit 0 on success. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s /path/to/libskynet_cluster.so\n", argv[0]); return 2; }
    dlerror();
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) { fprintf(stderr, "FAIL dlopen(%s): %s\n", argv[1], dlerror()); return 1; }
    const char *e = dlerror();
    if (e != NULL) { fprintf(stderr, "FAIL dlerror after dlopen: %s\n", e); return 1; }
    void *open = dlsym(h, "luaopen_skynet_cluster_core");
    if ((e = dlerror()) != NULL || open == NULL) {
        fprintf(stderr, "FAIL dlsym(luaopen_skynet_cluster_core): %s\n", e ? e : "NULL");
        return 1;
    }
    const char *(*version)(void);
    *(void **)&version = dlsym(h, "skc_version");
    if ((e = dlerror()) != NULL || version == NULL) {
        fprintf(stderr, "FAIL dlsym(skc_version): %s\n", e ? e : "NULL");
        return 1;
    }
    const char *v = version();
    if (v == NULL || v[0] == '\0') { fprintf(stderr, "FAIL skc_version returned an empty version\n"); return 1; }
    printf("dlopen_plain: loaded %s without Lua, luaopen_skynet_cluster_core found, skc_version() = %s\n", argv[1], v);
    if (dlclose(h) != 0) { fprintf(stderr, "FAIL dlclose: %s\n", dlerror()); return 1; }
    return 0;
}
