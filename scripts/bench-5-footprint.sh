#!/usr/bin/env bash
# Footprint: the release binaries' stripped sizes (custody-agent,
# custody-coordinator, custody), and the idle resident memory of a running
# agent — main process and installer child, one per keystore kind — and of
# a running coordinator (tests/src/bin/footprint_bench.rs, on the
# custody-e2e harness: real processes, sandboxed agents).
# Targets: agent <= 8 MiB stripped, <= 10 MiB idle RSS.
# Reference in the same run: the size of the system's own stripped
# binaries of similar jobs (ssh client, openssl), for scale.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p custody-agent -p custody-coordinator -p custody-cli -p custody-e2e \
  --bin custody-agent --bin custody-coordinator --bin custody --bin footprint_bench
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }
echo "stripped release binaries (profile.release: lto thin, codegen-units 1, panic abort, strip symbols; strip --strip-all again to be sure):"
for b in custody-agent custody-coordinator custody; do
  strip --strip-all -o "$W/$b" "target/release/$b"
  size=$(stat -c %s "$W/$b")
  verdict=""
  if [ "$b" = custody-agent ]; then
    if [ "$size" -le $((8 * 1048576)) ]; then verdict="(target <= 8 MiB: met)"; else verdict="(target <= 8 MiB: MISSED)"; fi
  fi
  printf '  %-22s %10s bytes  %6s MiB  %s\n' "$b" "$size" "$(mib "$size")" "$verdict"
done
for ref in ssh openssl; do
  p=$(command -v "$ref" 2>/dev/null) || continue
  printf '  %-22s %10s bytes  %6s MiB  (reference: %s)\n' "$ref" "$(stat -L -c %s "$p")" "$(mib "$(stat -L -c %s "$p")")" "$p"
done
echo "shared libraries the agent links: $(ldd target/release/custody-agent | awk '{print $1}' | tr '\n' ' ')"
echo
export TSS2_LOG=all+NONE
target/release/footprint_bench
