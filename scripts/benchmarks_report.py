#!/usr/bin/python3
"""Writes the measured section of docs/BENCHMARKS.md from scripts/benchmarks.sh's results.

    benchmarks_report.py OUT_DIR docs/BENCHMARKS.md

OUT_DIR holds one `cardinal bench --json` file per network and thread count (NAME-THREADS.json),
machine.txt and commands.txt. The text between the BEGIN/END MEASURED markers is replaced; the
rest of the document is left as written.
"""

import glob
import json
import os
import re
import sys

BEGIN = "<!-- BEGIN MEASURED: written by scripts/benchmarks.sh, do not edit by hand -->"
END = "<!-- END MEASURED -->"
ORDER = ["resnet50", "resnet101", "resnext50_32x4d", "resnext101_32x4d", "resnext101_64x4d",
         "resnext101_32x8d", "xception", "mobilenet_v2"]


def cell(results, engine):
    r = results.get(engine)
    if r is None:
        return "-"
    return "%.1f (%.0f%%)" % (r["median_ms"], 100 * r["peak_fraction"])


def main():
    out_dir, doc_path = sys.argv[1], sys.argv[2]
    machine = {}
    with open(os.path.join(out_dir, "machine.txt")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            machine[k] = v
    with open(os.path.join(out_dir, "commands.txt")) as f:
        commands = [l.strip() for l in f if l.strip()]

    rows = []
    for path in glob.glob(os.path.join(out_dir, "*-*.json")):
        if os.path.basename(path).startswith("layers-"):
            continue
        with open(path) as f:
            rows.append(json.load(f))
    rows.sort(key=lambda d: (ORDER.index(d["model"]) if d["model"] in ORDER else 99,
                             d["model"], d["threads"]))

    lines = [BEGIN, ""]
    cpus = float(machine.get("cpus", "1") or 1)
    def one_minute_load(key):
        fields = machine.get(key, "").split()
        return float(fields[0]) if fields else 0.0
    # Before the run the machine should be idle; after it, the 1-minute average includes the
    # benchmark's own threads (up to one per CPU), so only more than that means other jobs.
    before, after = one_minute_load("load_before"), one_minute_load("load_after")
    if before > 0.5 * cpus or after > 1.5 * cpus:
        lines += ["> **Noisy measurement:** the 1-minute load average was %.1f before and %.1f "
                  "after this run on %d CPUs (other jobs shared the machine). These numbers only "
                  "show that every engine runs and agrees; rerun `bash scripts/benchmarks.sh` on "
                  "a quiet machine before reading anything into them." % (before, after, cpus),
                  ""]
    lines += ["Measured %s on %s (%s CPUs, cardinal's host preset %s), cardinal %s, %s timed "
              "runs per engine after 3 warm-up rounds, interleaved. Load average (1, 5, 15 min) "
              "before: %s, after: %s." %
              (machine.get("date_utc", "?"), machine.get("cpu", "?"), machine.get("cpus", "?"),
               machine.get("preset", "?"), machine.get("commit", "?"), machine.get("runs", "?"),
               machine.get("load_before", "?"), machine.get("load_after", "?")),
              "",
              "Median latency in ms (fraction of this machine's FMA peak, measured in the same run "
              "at that thread count: the peak column). Ratios are generated time / peer time: "
              "below 1, generated code is faster. The reference is single-threaded (one run, at "
              "1 thread only). Agreement: the largest relative L2 difference between any two "
              "engines' outputs (0 for xception: its softmax saturates with random weights; the "
              "tests compare its logits).",
              "",
              "| network | threads | generated | oneDNN | PyTorch | gen/oneDNN | gen/PyTorch | "
              "reference | peak GFLOP/s | agreement |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for d in rows:
        res = {r["engine"]: r for r in d["results"]}
        ratios = {r["peer"]: r["generated_over_peer"] for r in d.get("ratios", [])}
        agree = max([a["relative_l2"] for a in d.get("agreement", [])] or [float("nan")])
        missing = ", ".join("%s missing: %s" % (m["engine"], m["reason"])
                            for m in d.get("missing", []))
        lines.append("| %s %d | %d | %s | %s | %s | %s | %s | %s | %.0f | %.1e |" % (
            d["model"], d["resolution"], d["threads"], cell(res, "generated"),
            cell(res, "onednn"), cell(res, "pytorch"),
            "%.2f" % ratios["onednn"] if "onednn" in ratios else "-",
            "%.2f" % ratios["pytorch"] if "pytorch" in ratios else "-",
            "%.0f" % res["reference"]["median_ms"] if "reference" in res else "-",
            d["peak_gflops"], agree))
        if missing:
            lines.append("| | | %s | | | | | | | |" % missing)
    lines += ["",
              "![every network: % of peak per engine](benchmarks/summary.png)",
              "",
              "![ResNeXt-50 per layer: roofline and GFLOP/s along the network]"
              "(benchmarks/resnext50_32x4d-layers.png)",
              "",
              "The exact commands (`bash scripts/benchmarks.sh` ran them):",
              "",
              "```sh"] + commands + ["```", "", END]

    with open(doc_path) as f:
        doc = f.read()
    section = "\n".join(lines)
    if BEGIN in doc and END in doc:
        doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda m: section, doc,
                     flags=re.S)
    else:
        doc += "\n" + section + "\n"
    with open(doc_path, "w") as f:
        f.write(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
