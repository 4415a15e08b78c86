#!/usr/bin/env bash
# Installs the Debian (bookworm) packages cardinal needs. Idempotent: installs only what is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build clang-format
  libhalide14-0-dev llvm-14-dev
  libboost-program-options-dev catch2 nlohmann-json3-dev libbenchmark-dev
  libonnx-dev libprotobuf-dev protobuf-compiler
  libdnnl-dev
  python3-torch python3-torchvision python3-onnx python3-numpy python3-matplotlib
  clang-14 libclang-rt-14-dev
  g++-aarch64-linux-gnu qemu-user
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
