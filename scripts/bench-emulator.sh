#!/usr/bin/env bash
# Device-side benchmarks (docs/BENCHMARKS.md, "Device emulator" section): prints the machine,
# the command, and the Markdown tables the benchmark measured.
#   FLEET=1000  devices in the fleet run (0 skips it; it needs about 9 GiB of RAM and 4 GiB of disk)
#   CUTS=20     random power cuts per protocol in the resume benchmark
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p fota-cli
echo "Machine: $(nproc) cores"
lscpu | head -n 15
echo
echo "Command: FLEET=${FLEET:-1000} CUTS=${CUTS:-20} scripts/bench-emulator.sh ($(git rev-parse --short HEAD))"
echo
FOTA_BIN="$PWD/target/release/fota" cargo bench --locked -p fota-emulator --bench update
