#!/usr/bin/python3
"""Draws `cardinal bench --json` results (Debian's python3-matplotlib).

    plot_bench.py RESULTS.json OUT.png
        the network-level comparison (median latency per engine, min-max whiskers, GFLOP/s and
        % of peak), and when the results hold per-layer data (--layers), the roofline of this
        machine with every generated step and oneDNN primitive on it, and per-layer GFLOP/s along
        the network against the attainable bound. `cardinal bench --plot` runs this.
    plot_bench.py --summary OUT.png A.json B.json ...
        one group of bars (% of peak per engine) per results file, e.g. every zoo network at 1
        and 2 threads (scripts/benchmarks.sh).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"generated": "#1f77b4", "reference": "#7f7f7f", "onednn": "#ff7f0e",
          "pytorch": "#d62728"}
ORDER = ["generated", "onednn", "pytorch", "reference"]


def network_panel(ax, data):
    results = {r["engine"]: r for r in data["results"]}
    missing = {m["engine"]: m["reason"] for m in data.get("missing", [])}
    names = [e for e in ORDER if e in results or e in missing]
    worst = max([r["max_ms"] for r in results.values()] or [1])
    best = min([r["min_ms"] for r in results.values()] or [1])
    log = worst / best > 20  # the reference is orders of magnitude slower
    for i, e in enumerate(names):
        if e not in results:
            continue
        r = results[e]
        ax.barh(i, r["median_ms"], color=COLORS.get(e, "gray"),
                xerr=[[r["median_ms"] - r["min_ms"]], [r["max_ms"] - r["median_ms"]]],
                capsize=3)
        ax.text(r["max_ms"] * (1.08 if log else 1.0) + (0 if log else worst * 0.02), i,
                "%.2f ms  %.1f GFLOP/s  %.0f%% of peak" % (r["median_ms"], r["gflops"],
                                                           100 * r["peak_fraction"]),
                va="center", fontsize=8)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(best / 2, worst * 25)
    else:
        ax.set_xlim(0, worst * 1.9)
    for i, e in enumerate(names):
        if e in missing:
            ax.text(ax.get_xlim()[0], i, "  %s: missing (%s)" % (e, missing[e][:110]),
                    va="center", fontsize=8)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlabel("latency, ms (median; whiskers: min-max)%s" % (", log scale" if log else ""))
    ax.set_title("%s, batch %d, %d thread(s): peak %.0f GFLOP/s (%s)" %
                 (data["model"], data["batch"], data["threads"], data["peak_gflops"],
                  data.get("peak_isa", "")), fontsize=10)


def roofline_panel(ax, data):
    roof = data["roofline"]
    peak, bw = roof["peak_gflops"], roof["bandwidth_gbs"]
    pts = {}
    for key, engine in (("layers", "generated"), ("onednn_layers", "onednn")):
        pts[engine] = [(s["intensity"], s["gflops"]) for s in data.get(key, [])
                       if s["macs"] and s["intensity"] > 0]
    xs = [x for v in pts.values() for x, _ in v] or [1.0]
    lo, hi = min(xs + [roof["ridge_flop_per_byte"]]) / 2, max(xs + [roof["ridge_flop_per_byte"]]) * 2
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(grid, [min(peak, bw * x) for x in grid], color="black", lw=1.2,
            label="roofline: %.0f GFLOP/s, %.0f GB/s" % (peak, bw))
    for engine, marker in (("generated", "o"), ("onednn", "^")):
        if pts[engine]:
            ax.scatter([x for x, _ in pts[engine]], [y for _, y in pts[engine]], s=14,
                       marker=marker, alpha=0.7, color=COLORS[engine], label=engine)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity, flop/byte (compulsory traffic); above the slope: "
                  "cache-resident")
    ax.set_ylabel("GFLOP/s")
    ax.set_title("per-layer roofline", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)


def layers_panel(ax, data):
    roof = data["roofline"]
    peak, bw = roof["peak_gflops"], roof["bandwidth_gbs"]
    gen = [s for s in data.get("layers", []) if s["macs"]]
    dnn = {s["layers"].split("+")[0]: s for s in data.get("onednn_layers", []) if s["macs"]}
    if not gen:  # oneDNN alone
        gen_keys = list(dnn)
        ax.plot(range(len(gen_keys)), [dnn[k]["gflops"] for k in gen_keys], ".-",
                color=COLORS["onednn"], lw=0.8, label="onednn")
        return
    x = list(range(len(gen)))
    ax.plot(x, [min(peak, bw * s["intensity"]) if s["intensity"] else peak for s in gen],
            color="black", lw=0.8, ls="--", label="attainable (roofline)")
    ax.plot(x, [s["gflops"] for s in gen], ".-", color=COLORS["generated"], lw=0.8,
            label="generated")
    xs, ys = [], []
    for i, s in enumerate(gen):
        d = dnn.get(s["layers"].split("+")[0])
        if d:
            xs.append(i)
            ys.append(d["gflops"])
    if ys:
        ax.plot(xs, ys, ".-", color=COLORS["onednn"], lw=0.8, label="onednn")
    ax.set_xlabel("convolution / dense steps in network order")
    ax.set_ylabel("GFLOP/s")
    ax.set_title("per-layer throughput along the network", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)


def summary_figure(files, out):
    """Several result files: grouped bars of GFLOP/s per (network, threads)."""
    runs = [json.load(open(f)) for f in files]
    labels = ["%s\n%dT" % (d["model"], d["threads"]) for d in runs]
    engines = [e for e in ORDER if any(r["engine"] == e for d in runs for r in d["results"])]
    width = 0.8 / max(1, len(engines))
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(runs)), 5))
    for k, e in enumerate(engines):
        vals = []
        for d in runs:
            r = [r for r in d["results"] if r["engine"] == e]
            vals.append(100 * r[0]["peak_fraction"] if r else 0)
        ax.bar([i + (k - (len(engines) - 1) / 2) * width for i in range(len(runs))], vals,
               width, color=COLORS.get(e, "gray"), label=e)
    ax.set_xticks(range(len(runs)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("% of measured FMA peak (same thread count)")
    ax.set_title("whole networks, batch %s, fp32: %% of the FMA peak measured in the same run"
                 % ",".join(sorted({str(d["batch"]) for d in runs})), fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--summary":
        summary_figure(sys.argv[3:], sys.argv[2])
        return 0
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    data = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    if "roofline" in data:
        fig = plt.figure(figsize=(13, 9))
        network_panel(fig.add_subplot(2, 2, 1), data)
        roofline_panel(fig.add_subplot(2, 2, 2), data)
        layers_panel(fig.add_subplot(2, 1, 2), data)
    else:
        fig, ax = plt.subplots(figsize=(10, 3.2))
        network_panel(ax, data)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
