#!/usr/bin/env bash
# `make bench`: every bench-*.sh in scripts/, in name order. Each prints its
# figures beside a reference run on the same machine, in the same command.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "=== custody-envelope (criterion: package encrypt/decrypt throughput) ==="
cargo bench -q -p custody-envelope --bench package 2>&1 | grep -E '^[a-z_/0-9 -]+$|time:|thrpt:' || true
echo
for b in scripts/bench-*.sh; do
  [ -e "$b" ] || continue
  echo "=== $(basename "$b" .sh) ==="
  bash "$b"
  echo
done
