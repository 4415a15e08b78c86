#!/usr/bin/env bash
# Fuzzes the ONNX importer for a bounded time: builds tests/fuzz/onnx_fuzz.cpp with clang-14
# (libFuzzer + AddressSanitizer + UndefinedBehaviorSanitizer, LeakSanitizer on) into its own
# build-fuzz/ folder (the main build uses g++), then runs it from the committed seed corpus
# tests/fuzz/corpus/ for SECONDS seconds (default 120). Exits non-zero on any crash, leak,
# exception other than cardinal::Error, timeout (an input taking > 10 s) or out-of-memory
# (> 2 GB); the input that caused it is left in build-fuzz/artifacts/.
#
# Usage: scripts/fuzz-onnx.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || ((seconds < 1)); then
  echo "usage: scripts/fuzz-onnx.sh [SECONDS]" >&2
  exit 2
fi
bash scripts/install-deps.sh

dir=build-fuzz
cmake -S tests/fuzz -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
cmake --build "$dir" -j "$(nproc)"

# New inputs go to build-fuzz/corpus (not committed); the seeds are only read.
mkdir -p "$dir/corpus" "$dir/artifacts"
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
exec "$dir/onnx_fuzz" "$dir/corpus" tests/fuzz/corpus \
  -dict=tests/fuzz/onnx.dict \
  -max_total_time="$seconds" \
  -timeout=10 \
  -rss_limit_mb=2048 \
  -max_len=65536 \
  -print_final_stats=1 \
  -print_funcs=0 \
  -artifact_prefix="$dir/artifacts/"
