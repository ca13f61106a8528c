/*
 * skynet_double: a test double of the few skynet functions the skcluster C service
 * (src/skynet) uses, so that CI can drive the service without skynet.
 *
 * Build with -Wl,-E (the service resolves skynet_* with dlsym(RTLD_DEFAULT), exactly as
 * in a real skynet process) and run as
 *
 *     skynet_double path/to/libskynet_cluster.so
 *
 * What it defines, and how faithfully (skynet-src/skynet.h semantics):
 *   skynet_send       copies the message unless PTYPE_TAG_DONTCOPY, allocates a session
 *                     for PTYPE_TAG_ALLOCSESSION, uses the context's handle for source 0,
 *                     returns -1 (freeing the copy) for a destination that does not
 *                     exist; thread-safe (the engine's I/O thread calls it). Messages go
 *                     into one FIFO, dispatched by the main thread one at a time (skynet
 *                     runs a service's callback one message at a time too).
 *   skynet_callback   records the service's callback; a callback returning 0 has its
 *                     message freed afterwards, as skynet does.
 *   skynet_error      prints "log <text>".
 *   skynet_queryname  ".name" from the names given on stdin, ":hex" parsed, else 0.
 *   skynet_command    "REG" with no name: the context's handle as ":%08x"; "GETENV":
 *                     this process's environment variable of that name.
 *   skynet_getenv     the same environment variable (skynet: a key of the config file).
 *   skynet_context_message_dispatch, skynet_globalmq_push/_pop, skynet_monitor_new/
 *   _delete/_check, skynet_mq_handle/_pop:
 *                     the service's inline dispatch. The double has one message queue
 *                     (skynet has one per service plus a global queue of queues):
 *                     dispatching runs its next message on the calling thread (the
 *                     engine's I/O thread); when the next is the service's, the service's
 *                     "queue" is handed out and read with skynet_mq_pop. One lock keeps
 *                     messages one at a time and in order across that thread and main(),
 *                     as skynet runs one service on one thread at a time. Dispatch
 *                     triggers the monitor around each message and _check warns about a
 *                     message running since the previous check, as skynet_monitor.c does.
 * Not defined: skynet_socket_bind / skynet_socket_close (the service then runs without
 * its worker wake-up channel, which only matters inside skynet), skynet_free (the
 * service falls back to free, which is what skynet_free is without jemalloc).
 *
 * Lua (Debian's liblua5.4, linked in so that the library finds the Lua API as it does
 * in skynet): the command "lua CHUNK" runs one line of Lua in a state where `direct` is
 * skcluster.direct (loaded from the library with package.loadlib, as cluster.lua does)
 * and `pack_hex(hex)` returns a malloc'd message and its size, as skynet.pack does. It
 * runs on the stdin thread, which plays a skynet worker running a caller. Prints
 * "lua ok" or "lua error <message>".
 *
 * Fakes around the service (the "other services" of the node):
 *   echo services     a handle made an echo service answers a PTYPE_LUA call whose first
 *                     packed value is the string "echo" with the rest of the message
 *                     (= skynet.pack of the remaining arguments, what stock's echo
 *                     returns; "slow" does the same after 20 ms, a handler that takes
 *                     long, "hang" after 10.3 s, one that skynet's endless-loop check
 *                     flags), any other command with PTYPE_ERROR (what a Lua service
 *                     that raises sends), and prints pushes ("push <dest> <hex>") and
 *                     trace tags ("trace <dest> <hex>").
 *   callers           handles that exist and print what they receive
 *                     ("deliver <source> <dest> <type> <session> <hex>").
 *   mute services     handles that exist and never answer (as skynet's logger, a C
 *                     service that answers no call): messages are counted and freed.
 *
 * stdin, one command a line (handles in hex):
 *   caller H | echo H | mute H | name .NAME H | msg SOURCE DEST TYPE SESSION HEX | sync N | stats |
 *   lua CHUNK | workers off | workers on | quit
 * ("workers off": the main thread, which plays skynet's workers, leaves ordinary messages
 * alone until "workers on", so only the service's inline dispatch runs them.)
 * stdout: "ready <service handle>", then deliver/push/trace/log/sync lines ("stats
 * inline=N own=M muted=K": messages run by inline dispatch so far, M of them read from
 * the service's own queue; K messages to mute services), and
 * "released" after quit (the service is released with skcluster_release).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#define PTYPE_RESPONSE 1
#define PTYPE_ERROR 7
#define PTYPE_LUA 10
#define PTYPE_TRACE 12
#define PTYPE_TAG_DONTCOPY 0x10000
#define PTYPE_TAG_ALLOCSESSION 0x20000
#define SPECIAL_QUIT (-1)
#define SPECIAL_SYNC (-2)

struct skynet_context;
typedef int (*skynet_cb)(struct skynet_context *, void *ud, int type, int session, uint32_t source, const void *msg, size_t sz);

struct skynet_context {
	uint32_t handle;
	void *ud;
	skynet_cb cb;
	int session_id;
};

struct msg {
	uint32_t source, dest;
	int type, session;
	void *data;
	size_t sz;
	struct msg *next;
};

static struct skynet_context SERVICE = { 0x10, NULL, NULL, 0 };
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static struct msg *head, *tail;
/* Held while a message runs, by main() or by inline dispatch: one at a time, in order. */
static pthread_mutex_t dispatch_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long dispatched_inline, dispatched_own;

#define MAXH 64
static uint32_t echos[MAXH], callers[MAXH], mutes[MAXH];
static int n_echo, n_caller, n_mute;
static unsigned long muted;
static struct { char name[64]; uint32_t handle; } names[MAXH];
static int n_names;

static int in_set(const uint32_t *set, int n, uint32_t h) {
	for (int i = 0; i < n; i++)
		if (set[i] == h) return 1;
	return 0;
}

static int exists(uint32_t h) {
	int r;
	pthread_mutex_lock(&mu);
	r = h == SERVICE.handle || in_set(echos, n_echo, h) || in_set(callers, n_caller, h) || in_set(mutes, n_mute, h);
	pthread_mutex_unlock(&mu);
	return r;
}

static void out_hex(const char *prefix, const void *data, size_t sz) {
	static const char hx[] = "0123456789abcdef";
	const unsigned char *p = data;
	pthread_mutex_lock(&out_mu);
	fputs(prefix, stdout);
	for (size_t i = 0; i < sz; i++) {
		putchar(hx[p[i] >> 4]);
		putchar(hx[p[i] & 15]);
	}
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&out_mu);
}

static void enqueue(uint32_t source, uint32_t dest, int type, int session, void *data, size_t sz) {
	struct msg *m = malloc(sizeof(*m));
	m->source = source; m->dest = dest; m->type = type; m->session = session;
	m->data = data; m->sz = sz; m->next = NULL;
	pthread_mutex_lock(&mu);
	if (tail) tail->next = m; else head = m;
	tail = m;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
}

int skynet_send(struct skynet_context *ctx, uint32_t source, uint32_t dest, int type, int session, void *data, size_t sz) {
	if (type & PTYPE_TAG_ALLOCSESSION) {
		pthread_mutex_lock(&mu);
		session = ++ctx->session_id;
		if (ctx->session_id >= 0x7fffffff) ctx->session_id = 0;
		pthread_mutex_unlock(&mu);
	}
	if (data && !(type & PTYPE_TAG_DONTCOPY)) {
		void *copy = malloc(sz + 1);
		memcpy(copy, data, sz);
		data = copy;
	}
	if (source == 0) source = ctx->handle;
	if (dest == 0 || !exists(dest)) {
		free(data);
		return -1;
	}
	enqueue(source, dest, type & 0xff, session, data, sz);
	return session;
}

void skynet_callback(struct skynet_context *ctx, void *ud, skynet_cb cb) {
	ctx->ud = ud;
	ctx->cb = cb;
}

void skynet_error(struct skynet_context *ctx, const char *fmt, ...) {
	char buf[1024];
	va_list ap;
	(void)ctx;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&out_mu);
	printf("log %s\n", buf);
	fflush(stdout);
	pthread_mutex_unlock(&out_mu);
}

uint32_t skynet_queryname(struct skynet_context *ctx, const char *name) {
	uint32_t h = 0;
	(void)ctx;
	if (name[0] == ':') return (uint32_t)strtoul(name + 1, NULL, 16);
	if (name[0] != '.') return 0;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < n_names; i++)
		if (strcmp(names[i].name, name) == 0) h = names[i].handle;
	pthread_mutex_unlock(&mu);
	return h;
}

const char *skynet_command(struct skynet_context *ctx, const char *cmd, const char *parm) {
	static __thread char buf[16];
	if (strcmp(cmd, "REG") == 0 && (parm == NULL || parm[0] == 0)) {
		snprintf(buf, sizeof(buf), ":%08x", ctx->handle);
		return buf;
	}
	if (strcmp(cmd, "GETENV") == 0 && parm) return getenv(parm);
	return NULL;
}

const char *skynet_getenv(const char *key) {
	return getenv(key);
}

/* The first packed value when it is a string: its bytes and the size of the value. */
static int packed_string(const unsigned char *p, size_t sz, const unsigned char **s, size_t *len, size_t *used) {
	if (sz < 1) return 0;
	int type = p[0] & 7, cookie = p[0] >> 3;
	size_t hdr;
	if (type == 4) { *len = cookie; hdr = 1; }
	else if (type == 5 && cookie == 2 && sz >= 3) { *len = p[1] | p[2] << 8; hdr = 3; }
	else if (type == 5 && cookie == 4 && sz >= 5) { *len = p[1] | p[2] << 8 | p[3] << 16 | (size_t)p[4] << 24; hdr = 5; }
	else return 0;
	if (hdr + *len > sz) return 0;
	*s = p + hdr;
	*used = hdr + *len;
	return 1;
}

static void echo_dispatch(struct msg *m) {
	struct skynet_context self = { m->dest, NULL, NULL, 0 };
	char prefix[64];
	if (m->type == PTYPE_TRACE) {
		snprintf(prefix, sizeof(prefix), "trace %x ", m->dest);
		out_hex(prefix, m->data, m->sz);
		return;
	}
	if (m->type != PTYPE_LUA) return;
	if (m->session == 0) {
		snprintf(prefix, sizeof(prefix), "push %x ", m->dest);
		out_hex(prefix, m->data, m->sz);
		return;
	}
	const unsigned char *cmd;
	size_t len, used;
	int ok = packed_string(m->data, m->sz, &cmd, &len, &used) && len == 4;
	if (ok && (memcmp(cmd, "slow", 4) == 0 || memcmp(cmd, "hang", 4) == 0)) {
		usleep(cmd[0] == 's' ? 20000 : 10300000);
		skynet_send(&self, 0, m->source, PTYPE_RESPONSE, m->session, (char *)m->data + used, m->sz - used);
	} else if (ok && memcmp(cmd, "echo", 4) == 0) {
		skynet_send(&self, 0, m->source, PTYPE_RESPONSE, m->session, (char *)m->data + used, m->sz - used);
	} else {
		skynet_send(&self, 0, m->source, PTYPE_ERROR, m->session, NULL, 0);
	}
}

static void *inst;
static void (*release)(void *);
static int released;

/* Runs one ordinary message (not quit/sync); frees it. Called with dispatch_mu held. */
static void run_message(struct msg *m) {
	if (m->dest == SERVICE.handle) {
		if (released || !SERVICE.cb || SERVICE.cb(&SERVICE, SERVICE.ud, m->type, m->session, m->source, m->data, m->sz) == 0)
			free(m->data);
		m->data = NULL;
	} else if (in_set(echos, n_echo, m->dest)) {
		echo_dispatch(m);
	} else if (in_set(mutes, n_mute, m->dest)) {
		muted++;
	} else {
		char prefix[96];
		snprintf(prefix, sizeof(prefix), "deliver %x %x %d %d ", m->source, m->dest, m->type, m->session);
		out_hex(prefix, m->data, m->sz);
	}
	free(m->data);
	free(m);
}

/* The next message when it is an ordinary one (quit and sync stay for main()), and,
 * with `only_service`, one for the service. */
static struct msg *pop_ordinary(int only_service) {
	pthread_mutex_lock(&mu);
	struct msg *m = head;
	if (m && m->type >= 0 && (!only_service || m->dest == SERVICE.handle)) {
		head = m->next;
		if (!head) tail = NULL;
	} else {
		m = NULL;
	}
	pthread_mutex_unlock(&mu);
	return m;
}

/* Queues as skynet hands them out to a dispatching thread: the service's own, and one
 * standing for all the others. Holding the service's queue means holding dispatch_mu, as
 * skynet's queue ownership keeps one thread on a service: taken when the queue is handed
 * out, given up when skynet_mq_pop finds it empty, or when it is pushed or passed back. */
static int service_queue, other_queue;
/* "workers off": main() runs no ordinary message (skynet's workers all busy), so only
 * inline dispatch runs them; guarded by mu. */
static int workers_off;

void *skynet_globalmq_pop(void) {
	pthread_mutex_lock(&mu);
	int ordinary = head && head->type >= 0;
	int ours = ordinary && head->dest == SERVICE.handle;
	pthread_mutex_unlock(&mu);
	if (!ordinary) return NULL;
	if (!ours) return &other_queue;
	pthread_mutex_lock(&dispatch_mu);
	return &service_queue;
}

uint32_t skynet_mq_handle(void *q) {
	return q == &service_queue ? SERVICE.handle : 0;
}

/* Skynet's own layout (skynet_mq.h): the type in the top byte of sz. */
struct skynet_message {
	uint32_t source;
	int session;
	void *data;
	size_t sz;
};

int skynet_mq_pop(void *q, struct skynet_message *out) {
	if (q != &service_queue) return 1;
	struct msg *m = released ? NULL : pop_ordinary(1);
	if (!m) {
		pthread_mutex_unlock(&dispatch_mu); /* empty: the queue is given up */
		return 1;
	}
	dispatched_inline++;
	dispatched_own++;
	out->source = m->source;
	out->session = m->session;
	out->data = m->data;
	out->sz = m->sz | ((size_t)m->type << ((sizeof(size_t) - 1) * 8));
	free(m);
	return 0;
}

struct skynet_monitor;
static void monitor_trigger(struct skynet_monitor *sm, uint32_t source, uint32_t destination);
void *skynet_context_message_dispatch(struct skynet_monitor *sm, void *q, int weight) {
	(void)weight;
	if (q == &service_queue) pthread_mutex_unlock(&dispatch_mu); /* passed back: run it as any */
	pthread_mutex_lock(&dispatch_mu);
	struct msg *m = pop_ordinary(0);
	if (m) {
		dispatched_inline++;
		monitor_trigger(sm, m->source, m->dest);
		run_message(m);
		monitor_trigger(sm, 0, 0);
	}
	pthread_mutex_unlock(&dispatch_mu);
	return m ? skynet_globalmq_pop() : NULL;
}

void skynet_globalmq_push(void *q) {
	if (q == &service_queue) pthread_mutex_unlock(&dispatch_mu);
}
/* skynet_monitor.c's monitor: the dispatching thread bumps `version` around each
 * message; the check (skynet's monitor thread, here the service's own) warns when a
 * message still runs since the previous check. */
struct skynet_monitor {
	int version; /* atomic */
	int check_version;
	uint32_t source;
	uint32_t destination;
};
void *skynet_monitor_new(void) { return calloc(1, sizeof(struct skynet_monitor)); }
void skynet_monitor_delete(void *m) { free(m); }
static void monitor_trigger(struct skynet_monitor *sm, uint32_t source, uint32_t destination) {
	if (!sm) return;
	sm->source = source;
	sm->destination = destination;
	__atomic_add_fetch(&sm->version, 1, __ATOMIC_SEQ_CST);
}
void skynet_monitor_check(void *p) {
	struct skynet_monitor *sm = p;
	int v = __atomic_load_n(&sm->version, __ATOMIC_SEQ_CST);
	if (v == sm->check_version) {
		if (sm->destination)
			skynet_error(NULL, "error: A message from [ :%08x ] to [ :%08x ] maybe in an endless loop (version = %d)",
				sm->source, sm->destination, v);
	} else {
		sm->check_version = v;
	}
}

static int nibble(char c) {
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

static int unhex(const char *s, unsigned char **out, size_t *sz) {
	size_t n = strlen(s);
	if (n % 2) return 0;
	*sz = n / 2;
	*out = malloc(*sz + 1);
	for (size_t i = 0; i < *sz; i++) {
		int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
		if (hi < 0 || lo < 0) { free(*out); return 0; }
		(*out)[i] = (unsigned char)(hi << 4 | lo);
	}
	return 1;
}

static const char *lib_path;
static lua_State *L;

/* pack_hex(hex) -> lightuserdata, size: a malloc'd message, as skynet.pack returns. */
static int l_pack_hex(lua_State *L) {
	unsigned char *data = NULL;
	size_t sz = 0;
	if (!unhex(luaL_checkstring(L, 1), &data, &sz)) return luaL_error(L, "bad hex");
	lua_pushlightuserdata(L, data);
	lua_pushinteger(L, (lua_Integer)sz);
	return 2;
}

static void run_lua(const char *chunk) {
	if (!L) {
		L = luaL_newstate();
		luaL_openlibs(L);
		lua_pushcfunction(L, l_pack_hex);
		lua_setglobal(L, "pack_hex");
		lua_pushstring(L, lib_path);
		lua_setglobal(L, "LIB");
		if (luaL_dostring(L, "direct = assert(package.loadlib(LIB, 'luaopen_skcluster_direct'))()") != LUA_OK) {
			printf("lua error %s\n", lua_tostring(L, -1));
			fflush(stdout);
			lua_pop(L, 1);
			return;
		}
	}
	int rc = luaL_dostring(L, chunk);
	pthread_mutex_lock(&out_mu);
	if (rc == LUA_OK) printf("lua ok\n");
	else printf("lua error %s\n", lua_tostring(L, -1));
	fflush(stdout);
	pthread_mutex_unlock(&out_mu);
	lua_settop(L, 0);
}

static void *reader(void *arg) {
	size_t cap = 0;
	char *line = NULL;
	(void)arg;
	while (getline(&line, &cap, stdin) > 0) {
		line[strcspn(line, "\r\n")] = 0;
		unsigned a, b;
		int type, session;
		char name[64];
		if (sscanf(line, "caller %x", &a) == 1) {
			pthread_mutex_lock(&mu); if (n_caller < MAXH) callers[n_caller++] = a; pthread_mutex_unlock(&mu);
		} else if (sscanf(line, "mute %x", &a) == 1) {
			pthread_mutex_lock(&mu); if (n_mute < MAXH) mutes[n_mute++] = a; pthread_mutex_unlock(&mu);
		} else if (sscanf(line, "echo %x", &a) == 1) {
			pthread_mutex_lock(&mu); if (n_echo < MAXH) echos[n_echo++] = a; pthread_mutex_unlock(&mu);
		} else if (sscanf(line, "name %63s %x", name, &a) == 2) {
			pthread_mutex_lock(&mu);
			if (n_names < MAXH) { strcpy(names[n_names].name, name); names[n_names++].handle = a; }
			pthread_mutex_unlock(&mu);
		} else if (sscanf(line, "msg %x %x %d %d", &a, &b, &type, &session) == 4) {
			char *hex = line;
			for (int i = 0; i < 5 && hex; i++) { hex = strchr(hex, ' '); if (hex) hex++; }
			unsigned char *data = NULL;
			size_t sz = 0;
			if (hex && *hex && !unhex(hex, &data, &sz)) { fprintf(stderr, "bad hex\n"); continue; }
			enqueue(a, b, type, session, data, sz);
		} else if (sscanf(line, "sync %d", &session) == 1) {
			enqueue(0, 0, SPECIAL_SYNC, session, NULL, 0);
		} else if (strncmp(line, "lua ", 4) == 0) {
			run_lua(line + 4);
		} else if (strcmp(line, "stats") == 0) {
			pthread_mutex_lock(&dispatch_mu);
			unsigned long n = dispatched_inline, own = dispatched_own, mu_n = muted;
			pthread_mutex_unlock(&dispatch_mu);
			pthread_mutex_lock(&out_mu);
			printf("stats inline=%lu own=%lu muted=%lu\n", n, own, mu_n);
			fflush(stdout);
			pthread_mutex_unlock(&out_mu);
		} else if (strcmp(line, "workers off") == 0 || strcmp(line, "workers on") == 0) {
			pthread_mutex_lock(&mu);
			workers_off = line[9] == 'f';
			pthread_cond_signal(&cv);
			pthread_mutex_unlock(&mu);
		} else if (strcmp(line, "quit") == 0) {
			break;
		} else {
			fprintf(stderr, "skynet_double: unknown command: %s\n", line);
		}
	}
	free(line);
	if (L) lua_close(L);
	enqueue(0, 0, SPECIAL_QUIT, 0, NULL, 0);
	return NULL;
}

int main(int argc, char **argv) {
	if (argc < 2) { fprintf(stderr, "usage: %s libskynet_cluster.so\n", argv[0]); return 2; }
	lib_path = argv[1];
	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
	if (!lib) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 2; }
	void *(*create)(void) = (void *(*)(void))dlsym(lib, "skcluster_create");
	int (*init)(void *, struct skynet_context *, const char *) = (int (*)(void *, struct skynet_context *, const char *))dlsym(lib, "skcluster_init");
	release = (void (*)(void *))dlsym(lib, "skcluster_release");
	if (!create || !init || !release) { fprintf(stderr, "missing skcluster_* symbols\n"); return 2; }
	inst = create();
	if (!inst || init(inst, &SERVICE, "") != 0) { fprintf(stderr, "skcluster_init failed\n"); return 1; }
	printf("ready %x\n", SERVICE.handle);
	fflush(stdout);
	pthread_t t;
	pthread_create(&t, NULL, reader, NULL);
	for (;;) {
		pthread_mutex_lock(&mu);
		while (!head || (workers_off && head->type >= 0)) pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
		/* Pop under dispatch_mu: inline dispatch may take messages meanwhile, and a
		 * sync or quit popped here comes after every earlier message has finished. */
		pthread_mutex_lock(&dispatch_mu);
		pthread_mutex_lock(&mu);
		struct msg *m = head;
		if (m) {
			head = m->next;
			if (!head) tail = NULL;
		}
		pthread_mutex_unlock(&mu);
		if (m && m->type >= 0) {
			run_message(m);
			m = NULL;
		}
		int quit = m && m->type == SPECIAL_QUIT, was_released = released;
		if (quit) released = 1; /* as in skynet: a released service gets no more messages */
		pthread_mutex_unlock(&dispatch_mu);
		if (!m) continue;
		if (quit) {
			free(m);
			if (was_released) break;
			release(inst); /* pending calls fail: their errors are queued, then we stop */
			enqueue(0, 0, SPECIAL_QUIT, 0, NULL, 0);
			continue;
		}
		/* SPECIAL_SYNC */
		pthread_mutex_lock(&out_mu);
		printf("sync %d\n", m->session);
		fflush(stdout);
		pthread_mutex_unlock(&out_mu);
		free(m);
	}
	printf("released\n");
	fflush(stdout);
	pthread_join(t, NULL);
	dlclose(lib);
	return 0;
}
