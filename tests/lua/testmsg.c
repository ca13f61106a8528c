/* Test-only Lua C module `testmsg`: makes lightuserdata messages (malloc'ed buffers, as skynet's
 * skynet_malloc would) from Lua strings, and reads / frees the ones a module hands back.
 * NOT part of the production library: built by mk/lua.mk into $(BUILD)/lua/testmsg.so.
 *
 * Built against the Lua 5.4 headers without linking Lua; every function used here has the same
 * ABI in Lua 5.4 and 5.5 (no luaL_newlib / luaL_checkversion, which embed the version number),
 * so the same .so loads in lua5.4 and in the 5.5 test interpreter.
 *
 *   new(str)        -> ptr, sz   malloc(max(#str,1)) + copy; the pointer is never NULL, even for ""
 *   read(ptr, sz)   -> string    copy of sz bytes at ptr (does not free)
 *   free(ptr)                    free() a buffer (ours or one returned by the module under test)
 *   read_free(ptr, sz) -> string read, then free
 *   disown(ptr)                  a buffer made by new() was handed to a function that frees it
 *   live()          -> integer   buffers made by new() not yet freed here nor disowned
 *   islight(v)      -> boolean   v is a light userdata (type() says "userdata" for both kinds)
 *   null()          -> ptr       a NULL light userdata
 *   scrub(n)                     push n nils and drop them: overwrites stale stack slots above
 *                                the caller's top (stale lightuserdata there hide leaks)
 *   leaked()        -> integer|nil  under valgrind memcheck: run a leak check now and return the
 *                                definitely+indirectly lost bytes; nil when not under valgrind
 *                                (or built without valgrind's headers)
 */
#include <stdlib.h>
#include <string.h>
#include "lua.h"
#include "lauxlib.h"

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define HAVE_MEMCHECK 1
#endif
#endif

static lua_Integer live_count = 0;

static void *checkptr(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TLIGHTUSERDATA) luaL_argerror(L, idx, "lightuserdata expected");
    return lua_touserdata(L, idx);
}

static lua_Integer checksize(lua_State *L, int idx) {
    lua_Integer sz = luaL_checkinteger(L, idx);
    if (sz < 0) luaL_argerror(L, idx, "negative size");
    return sz;
}

static int lnew(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    void *p = malloc(len ? len : 1);
    if (p == NULL) return luaL_error(L, "testmsg.new: out of memory (%d bytes)", (int)len);
    memcpy(p, s, len);
    live_count++;
    lua_pushlightuserdata(L, p);
    lua_pushinteger(L, (lua_Integer)len);
    return 2;
}

static int lread(lua_State *L) {
    void *p = checkptr(L, 1);
    lua_Integer sz = checksize(L, 2);
    if (p == NULL && sz > 0) return luaL_error(L, "testmsg.read: NULL pointer with size %d", (int)sz);
    lua_pushlstring(L, (const char *)p, (size_t)sz);
    return 1;
}

static int lfree(lua_State *L) {
    free(checkptr(L, 1));
    return 0;
}

static int lread_free(lua_State *L) {
    lread(L);
    free(lua_touserdata(L, 1));
    return 1;
}

/* free / disown of a buffer made by new(): keeps live() honest. */
static int lfree_own(lua_State *L) {
    free(checkptr(L, 1));
    live_count--;
    return 0;
}

static int ldisown(lua_State *L) {
    checkptr(L, 1);
    live_count--;
    return 0;
}

static int llive(lua_State *L) {
    lua_pushinteger(L, live_count);
    return 1;
}

static int lislight(lua_State *L) {
    lua_pushboolean(L, lua_type(L, 1) == LUA_TLIGHTUSERDATA);
    return 1;
}

static int lnull(lua_State *L) {
    lua_pushlightuserdata(L, NULL);
    return 1;
}

static int lscrub(lua_State *L) {
    int n = (int)luaL_checkinteger(L, 1);
    luaL_checkstack(L, n, "testmsg.scrub");
    for (int i = 0; i < n; i++) lua_pushnil(L);
    lua_settop(L, 0);
    return 0;
}

static int lleaked(lua_State *L) {
#ifdef HAVE_MEMCHECK
    if (RUNNING_ON_VALGRIND) {
        unsigned long leaked = 0, dubious = 0, reachable = 0, suppressed = 0;
        VALGRIND_DO_QUICK_LEAK_CHECK;
        VALGRIND_COUNT_LEAKS(leaked, dubious, reachable, suppressed);
        (void)dubious; (void)reachable; (void)suppressed;
        lua_pushinteger(L, (lua_Integer)leaked);
        return 1;
    }
#endif
    lua_pushnil(L);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"new", lnew},
    {"read", lread},
    {"free", lfree},
    {"read_free", lread_free},
    {"free_own", lfree_own},
    {"disown", ldisown},
    {"live", llive},
    {"islight", lislight},
    {"leaked", lleaked},
    {"scrub", lscrub},
    {"null", lnull},
    {NULL, NULL},
};

int luaopen_testmsg(lua_State *L) {
    lua_createtable(L, 0, sizeof(funcs) / sizeof(funcs[0]) - 1);
    luaL_setfuncs(L, funcs, 0);
    return 1;
}
