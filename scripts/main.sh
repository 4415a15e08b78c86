#!/usr/bin/env bash
# The main job on a fresh machine: build cardinal, generate ResNeXt-50 (32x4d) for this CPU,
# run it on an input, and benchmark it against the reference implementation.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
cardinal=./build/cardinal
out=out/resnext50_32x4d
mkdir -p out

"$cardinal" inspect --model resnext50_32x4d | tail -n 4
"$cardinal" generate --model resnext50_32x4d --out "$out"
/usr/bin/python3 -c 'import numpy as np; np.save("out/input.npy", np.random.default_rng(0).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32))'
"$cardinal" run --model resnext50_32x4d --input out/input.npy --output out/output.npy
"$cardinal" bench --model resnext50_32x4d --runs 20
