/* Minimal Lua interpreter for the tests: `lua55 script.lua [args...]`.
 * Built by mk/lua.mk against the lua-src crate's Lua 5.5 sources with -Wl,-E, so that C modules
 * loaded by `require` (libskynet_cluster.so, testmsg.so) resolve the Lua C API from this executable.
 * Sets `arg` like lua.c does (arg[0] = script, arg[1..] = its arguments, arg[-1] = this program). */
#include <stdio.h>
#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s script.lua [args...]\n", argv[0]); return 1; }
    lua_State *L = luaL_newstate();
    if (L == NULL) { fprintf(stderr, "%s: cannot create state\n", argv[0]); return 1; }
    luaL_openlibs(L);
    lua_createtable(L, argc - 2, 2);
    for (int i = 0; i < argc; i++) { lua_pushstring(L, argv[i]); lua_rawseti(L, -2, i - 1); }
    lua_setglobal(L, "arg");
    int status = luaL_loadfile(L, argv[1]);
    if (status == LUA_OK) {
        for (int i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
        status = lua_pcall(L, argc - 2, 0, 0);
    }
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        fprintf(stderr, "%s: %s\n", argv[0], msg ? msg : "(error object is not a string)");
        lua_close(L);
        return 1;
    }
    lua_close(L);
    return 0;
}
