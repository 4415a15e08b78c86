#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing, builds, and runs every test
# through ctest, first in the Release build, then in the ASan+UBSan build; between the two it
# fuzzes the ONNX importer for two minutes (libFuzzer under ASan+UBSan, scripts/fuzz-onnx.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/build.sh
(cd build && ctest -j "$(nproc)" --output-on-failure --timeout 1500)

bash scripts/fuzz-onnx.sh "${CARDINAL_FUZZ_SECONDS:-120}"

bash scripts/build.sh --sanitize
# libHalide and LLVM keep some allocations until exit: not leaks of ours.
export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
(cd build-asan && ctest -j "$(nproc)" --output-on-failure --timeout 1500)
