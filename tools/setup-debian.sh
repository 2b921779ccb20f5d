#!/usr/bin/env bash
# Installs what Parity needs on a fresh Debian 12 machine with Swift: the C libraries it links (HDF5, OpenBLAS)
# and pkg-config, which SwiftPM uses to find them. Installs only what is missing; safe to run repeatedly.
set -euo pipefail
packages=(libhdf5-dev libopenblas-dev zlib1g-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}"
fi
