#!/usr/bin/env bash
# Rewrites generated/: the generated C++ of every zoo network for the x86-64-avx2 preset
# with the built-in default schedules (what tests/generated_sources_test.cpp checks; sources
# only: the objects and weights are reproducible and not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x build/cardinal ]] || bash scripts/build.sh
for model in resnet50 resnet101 resnext50_32x4d resnext101_32x4d resnext101_64x4d \
             resnext101_32x8d xception mobilenet_v2; do
  ./build/cardinal generate --model "$model" --target x86-64-avx2 --schedules none --sources-only \
    --out "generated/$model"
done
