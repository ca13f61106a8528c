// The C API from C++: small RAII owners around the handles, exceptions for errors.
// Calls `@echo` on HOST:PORT with several sizes and a packed request, queries a name, runs
// calls through a completion queue, and with --stop pushes to the server (examples/server.c
// stops on a push). Usage: cpp_client HOST:PORT [--stop]
#include <skynet_cluster.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace skc {

struct Error : std::runtime_error {
    skc_status status;
    Error(skc_status s, const char *what)
        : std::runtime_error(std::string(skc_status_name(s)) + ": " + skc_last_error() + " (" + what + ")"), status(s) {}
};

inline void check(skc_status s, const char *what) {
    if (s != SKC_OK) throw Error(s, what);
}

struct NodeFree { void operator()(skc_node *n) const { skc_node_destroy(n); } };
struct ValuesFree { void operator()(skc_values *v) const { skc_values_free(v); } };
struct QueueFree { void operator()(skc_queue *q) const { skc_queue_free(q); } };
struct BufFree { void operator()(uint8_t *b) const { skc_free(b); } };
using Node = std::unique_ptr<skc_node, NodeFree>;
using Values = std::unique_ptr<skc_values, ValuesFree>;
using Queue = std::unique_ptr<skc_queue, QueueFree>;
using Buf = std::unique_ptr<uint8_t, BufFree>;

inline Node make_node(const char *peer, const std::string &addr) {
    skc_node *n = nullptr;
    check(skc_node_new(nullptr, &n), "skc_node_new");
    Node node(n);
    const char *names[] = {peer};
    const char *addrs[] = {addr.c_str()};
    check(skc_reload(node.get(), names, addrs, 1), "skc_reload");
    return node;
}

inline std::vector<uint8_t> pack_strings(const std::vector<std::string> &args) {
    skc_pack *p = nullptr;
    check(skc_pack_new(&p), "skc_pack_new");
    for (const auto &a : args) {
        skc_status s = skc_pack_lstring(p, reinterpret_cast<const uint8_t *>(a.data()), a.size());
        if (s != SKC_OK) {
            skc_pack_free(p);
            throw Error(s, "skc_pack_lstring");
        }
    }
    uint8_t *out = nullptr;
    size_t n = 0;
    check(skc_pack_finish(p, &out, &n), "skc_pack_finish");  // p is consumed either way
    Buf owner(out);
    return std::vector<uint8_t>(out, out + n);
}

inline std::vector<uint8_t> call(skc_node *node, const char *peer, const char *service, const std::vector<uint8_t> &req) {
    uint8_t *resp = nullptr;
    size_t n = 0;
    check(skc_call(node, peer, service, 0, req.data(), req.size(), 10000, &resp, &n), "skc_call");
    Buf owner(resp);
    return std::vector<uint8_t>(resp, resp + n);
}

}  // namespace skc

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: cpp_client HOST:PORT [--stop]\n");
        return 2;
    }
    try {
        skc::Node node = skc::make_node("srv", argv[1]);
        for (size_t size : {size_t(0), size_t(1), size_t(32767), size_t(32768), size_t(65536), size_t(1) << 20}) {
            std::vector<uint8_t> req(size);
            for (size_t i = 0; i < size; i++) req[i] = static_cast<uint8_t>(i * 7);
            if (skc::call(node.get(), "srv", "@echo", req) != req) throw std::runtime_error("echo differs");
        }
        std::vector<uint8_t> answer = skc::call(node.get(), "srv", "@echo", skc::pack_strings({"GET", "a"}));
        skc_values *v = nullptr;
        skc::check(skc_unpack(answer.data(), answer.size(), &v), "skc_unpack");
        skc::Values values(v);
        const uint8_t *s = nullptr;
        size_t len = 0;
        skc::check(skc_values_string(values.get(), 1, &s, &len), "skc_values_string");
        std::printf("cpp_client: echo of \"GET\", \"a\" -> second value \"%.*s\"\n", static_cast<int>(len), reinterpret_cast<const char *>(s));

        uint32_t id = 0;
        skc::check(skc_query(node.get(), "srv", "echo", 10000, &id), "skc_query");
        std::printf("cpp_client: query echo -> %u\n", id);

        skc_queue *q = nullptr;
        skc::check(skc_queue_new(&q), "skc_queue_new");
        skc::Queue queue(q);
        for (uint64_t t = 0; t < 16; t++) {
            skc::check(skc_call_queued(node.get(), "srv", nullptr, id, reinterpret_cast<const uint8_t *>(&t), sizeof t, 10000, queue.get(), t),
                       "skc_call_queued");
        }
        for (int i = 0; i < 16; i++) {
            skc_completion c;
            skc::check(skc_queue_wait(queue.get(), 10000, &c, sizeof c), "skc_queue_wait");
            skc::Buf data(c.data);
            if (c.status != SKC_OK || c.len != sizeof(uint64_t) || std::memcmp(c.data, &c.token, sizeof c.token) != 0)
                throw std::runtime_error("bad completion");
        }
        skc_stats st;
        skc::check(skc_stats_get(node.get(), "srv", &st, sizeof st), "skc_stats_get");
        std::printf("cpp_client: %llu calls, p50 %llu us\n", static_cast<unsigned long long>(st.calls), static_cast<unsigned long long>(st.p50_us));
        if (argc > 2 && std::strcmp(argv[2], "--stop") == 0) {
            // On an idle, connected link the push is written before skc_push returns.
            skc::check(skc_push(node.get(), "srv", "@echo", 0, nullptr, 0), "skc_push");
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "cpp_client: %s\n", e.what());
        return 1;
    }
    std::printf("cpp_client: passed\n");
    return 0;
}
