#!/usr/bin/env bash
# Set up tinykeras on a fresh machine: system tools (apt), a virtualenv in .venv, the package and its dev extras.
# Idempotent: rerunning only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="gcc g++ make gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib libstdc++-arm-none-eabi-dev qemu-system-arm espeak-ng sox chromium clang libclang-rt-14-dev qemu-system-misc gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf"
missing=""
for pkg in $APT_PACKAGES; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "[setup] installing system packages:$missing"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
echo "[setup] installing tinykeras and its dependencies (TensorFlow is large: a few minutes the first time)"
.venv/bin/python -m pip install -q -e ".[dev]"
echo "[setup] done: activate with 'source .venv/bin/activate'"
