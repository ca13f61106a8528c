#!/usr/bin/env python3
"""make ab: prints the side-by-side table of ab/abclient.lua's rows and writes a PNG chart.

usage: report.py ROWS FLOOR_TXT OUT_PNG
"""
import sys

rows_path, floor_path, png = sys.argv[1:4]
rows, pushes, local_pushes = {}, {}, {}
for line in open(rows_path):
    f = line.split()
    if not f:
        continue
    if f[0] == "row":
        mode, size, conc, calls, secs, nbytes, p50, p99, cc, cs = f[1:11]
        errors = int(f[11]) if len(f) > 11 else 0
        calls, secs = int(calls), float(secs)
        rows[(mode, size, int(conc))] = dict(
            cps=calls / secs, mbs=calls * int(nbytes) / secs / 1e6, p50=float(p50), p99=float(p99),
            cpu_c=float(cc) / calls * 1e5 if calls else 0, cpu_s=float(cs) / calls * 1e5 if calls else 0, err=errors)
    elif f[0] == "localpush":
        local_pushes[f[1]] = float(f[2])
    elif f[0] == "push":
        mode, n, secs, cc, cs = f[1:6]
        n, secs = int(n), float(secs)
        pushes[mode] = dict(ps=n / secs, cpu_c=float(cc) / n * 1e5, cpu_s=float(cs) / n * 1e5)

# floor.txt: `skynet-cluster bench` against the native server, twice (ab.sh). Its "floor"
# row is the raw loopback ping-pong; its "tiny 1" row is the engine alone on the calling
# side (no skynet there) against the native skynet server. The fastest p50 of each counts.
floor_p50, half_p50 = None, None
try:
    for line in open(floor_path):
        f = line.split()
        if f and f[0] == "floor":
            p = float(f[4])
            floor_p50 = p if floor_p50 is None else min(floor_p50, p)
        elif len(f) > 5 and f[0] == "tiny" and f[1] == "1":
            p = float(f[5])
            half_p50 = p if half_p50 is None else min(half_p50, p)
except OSError:
    pass

keys = sorted({(s, c) for (_, s, c) in rows}, key=lambda k: (k[0] != "int", int(k[0]) if k[0] != "int" else 0, k[1]))
def label(s):
    return {"int": "int", "1024": "1k", "16384": "16k", "65536": "64k", "1048576": "1m"}.get(s, s)

hdr = ("size conc |   calls/s stock   native     x |   MB/s stock  native |  p50 us stock native |"
       "  p99 us stock native | cli CPU s/100k st  nat |  srv CPU s/100k st  nat")
print(hdr)
print("-" * len(hdr))
def g(mode, k, f):
    r = rows.get((mode, k[0], k[1]))
    return r[f] if r else float("nan")
for k in keys:
    s, n = g("stock", k, "cps"), g("native", k, "cps")
    print(f"{label(k[0]):>4} {k[1]:>4} | {s:15.0f} {n:8.0f} {n / s if s else 0:5.1f} |"
          f" {g('stock', k, 'mbs'):10.1f} {g('native', k, 'mbs'):7.1f} |"
          f" {g('stock', k, 'p50'):12.0f} {g('native', k, 'p50'):6.0f} |"
          f" {g('stock', k, 'p99'):12.0f} {g('native', k, 'p99'):6.0f} |"
          f" {g('stock', k, 'cpu_c'):17.2f} {g('native', k, 'cpu_c'):4.2f} |"
          f" {g('stock', k, 'cpu_s'):17.2f} {g('native', k, 'cpu_s'):4.2f}"
          + "".join(f"  ({m}: {int(g(m, k, 'err'))} failed calls)" for m in ("stock", "native") if g(m, k, "err") > 0))
if pushes:
    s, n = pushes.get("stock", {}), pushes.get("native", {})
    print(f"pushes/s: stock {s.get('ps', 0):.0f}, native {n.get('ps', 0):.0f} (x{n.get('ps', 0) / max(s.get('ps', 1), 1):.1f});"
          f" CPU s/100k pushes client {s.get('cpu_c', 0):.2f} -> {n.get('cpu_c', 0):.2f},"
          f" server {s.get('cpu_s', 0):.2f} -> {n.get('cpu_s', 0):.2f}")

print()
print("goals:")
def goal(text, ok):
    print(f"  [{'met' if ok else 'NOT met'}] {text}")
k = ("int", 64)
if ("stock", "int", 64) in rows and ("native", "int", 64) in rows:
    for side, f in (("client", "cpu_c"), ("server", "cpu_s")):
        s, n = g("stock", k, f), g("native", k, f)
        goal(f"CPU per tiny call, conc 64, {side} node: {s * 10:.1f} us stock -> {n * 10:.1f} us native"
             f" ({s / n if n else float('inf'):.1f}x, goal >= 5x)", n > 0 and s / n >= 5)
if ("native", "int", 1) in rows and floor_p50:
    n = g("native", ("int", 1), "p50")
    goal(f"p50 of one outstanding tiny call: {n:.0f} us native, raw loopback floor {floor_p50:.0f} us this run"
         f" ({n / floor_p50:.2f}x, goal <= 1.5x)", n <= 1.5 * floor_p50)
if ("native", "65536", 1) in rows:
    s, n = g("stock", ("65536", 1), "cps"), g("native", ("65536", 1), "cps")
    goal(f"64 KiB at conc 1: {s:.0f} calls/s stock -> {n:.0f} native (no stall)", n > 10 * s)
if "stock" in pushes and "native" in pushes:
    r = pushes["native"]["ps"] / pushes["stock"]["ps"]
    goal(f"pushes/s: {r:.1f}x stock (goal >= 5x)", r >= 5)

print()
print("context (same run):")
if local_pushes and "native" in pushes:
    bound = max(local_pushes.values())
    print(f"  pushes/s into a sink from a service on its own node (skynet.send, no cluster): {bound:.0f}"
          f" (what one Lua sink takes in without any cluster); native cluster pushes reach {pushes['native']['ps'] / bound * 100:.0f}% of it"
          + (f", stock {pushes['stock']['ps'] / bound * 100:.0f}%" if "stock" in pushes else ""))
if half_p50 and floor_p50:
    print(f"  p50 of one tiny call from skynet-cluster bench (engine only on the calling side) to the native"
          f" skynet server: {half_p50:.0f} us ({half_p50 / floor_p50:.2f}x floor)")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None
if plt is None:
    print(f"\n(no chart: matplotlib not available; `make ab-venv` installs it)")
    sys.exit(0)
names = [f"{label(s)}/{c}" for s, c in keys]
x = range(len(keys))
fig, axes = plt.subplots(2, 2, figsize=(14, 9))
for ax, f, title, log in ((axes[0][0], "cps", "calls/s (higher is better)", True),
                          (axes[0][1], "p50", "p50 latency, us (lower is better)", True),
                          (axes[1][0], "cpu_c", "client CPU s per 100k calls", True),
                          (axes[1][1], "cpu_s", "server CPU s per 100k calls", True)):
    for i, mode in enumerate(("stock", "native")):
        ax.bar([j + i * 0.4 for j in x], [g(mode, k, f) for k in keys], 0.4, label=mode)
    ax.set_xticks([j + 0.2 for j in x])
    ax.set_xticklabels(names, rotation=60, fontsize=8)
    ax.set_title(title)
    if log:
        ax.set_yscale("log")
    ax.legend()
if pushes:
    fig.suptitle("skynet cluster: stock vs native engine (size/concurrency); pushes/s stock %.0f, native %.0f"
                 % (pushes.get("stock", {}).get("ps", 0), pushes.get("native", {}).get("ps", 0)))
fig.tight_layout()
fig.savefig(png, dpi=90)
print(f"\nchart: {png}")
