#!/usr/bin/env bash
# Regenerates the measured part of docs/BENCHMARKS.md: every zoo network at 1 and 2 threads,
# generated code against oneDNN and PyTorch (and the reference, at 1 thread), plus the pictures
# in docs/benchmarks/. Run it on a quiet machine: nothing else running, not on battery.
#
#   bash scripts/benchmarks.sh [--build DIR] [--runs N] [--threads "1 2"] [--models "a b"]
#                              [--out DIR] [--no-doc]
#
# Every `cardinal bench` run writes its JSON into the output folder (default out/benchmarks);
# scripts/benchmarks_report.py turns them into the table between the GENERATED markers of
# docs/BENCHMARKS.md (unless --no-doc) and bench/peers/plot_bench.py into the pictures.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

build=build
runs=20
threads_list="1 2"
models="resnet50 resnet101 resnext50_32x4d resnext101_32x4d resnext101_64x4d resnext101_32x8d xception mobilenet_v2"
out=out/benchmarks
doc=1
while (($#)); do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --threads) threads_list=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-doc) doc=0; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "benchmarks.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

if [[ ! -x "$build/cardinal" ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build" --target cardinal
cardinal="$root/$build/cardinal"
mkdir -p "$out" docs/benchmarks
rm -f "$out"/*.json

{
  echo "date_utc=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "cpus=$(nproc)"
  echo "preset=$("$cardinal" targets | sed -n 's/^host = //p')"
  echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo '+local changes')"
  echo "runs=$runs"
} > "$out/machine.txt"

commands=()
for model in $models; do
  for t in $threads_list; do
    # The reference is single-threaded and slow: one run, at the first thread count only.
    if [[ "$t" == "${threads_list%% *}" ]]; then
      peers="reference,onednn,pytorch"
    else
      peers="onednn,pytorch"
    fi
    cmd=(bench --model "$model" --threads "$t" --peers "$peers" --runs "$runs" --warmup 3
         --reference-runs 1 --json "$out/$model-$t.json")
    commands+=("cardinal ${cmd[*]}")
    echo "== cardinal ${cmd[*]}" >&2
    "$cardinal" "${cmd[@]}" | tee "$out/$model-$t.txt"
  done
done

# Per-layer view of ResNeXt-50 at the first thread count, with the roofline.
t=${threads_list%% *}
cmd=(bench --model resnext50_32x4d --threads "$t" --peers onednn,pytorch --runs "$runs" --layers
     --json "$out/layers-resnext50_32x4d-$t.json" --plot docs/benchmarks/resnext50_32x4d-layers.png)
commands+=("cardinal ${cmd[*]}")
"$cardinal" "${cmd[@]}" > "$out/layers-resnext50_32x4d-$t.txt"

echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"
printf '%s\n' "${commands[@]}" > "$out/commands.txt"

summary=()
for m in $models; do for t in $threads_list; do summary+=("$out/$m-$t.json"); done; done
/usr/bin/python3 bench/peers/plot_bench.py --summary docs/benchmarks/summary.png "${summary[@]}"

if ((doc)); then
  /usr/bin/python3 scripts/benchmarks_report.py "$out" docs/BENCHMARKS.md
  echo "benchmarks.sh: docs/BENCHMARKS.md and docs/benchmarks/*.png updated" >&2
fi
