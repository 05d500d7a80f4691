#!/usr/bin/env bash
# The secure flow across real processes on loopback (tests/src/bin/flow_bench/,
# on the custody-e2e harness), each figure beside a reference from the same
# run; medians of FLOW_BENCH_RUNS (3) runs:
#
#  (a) private-key unwraps per second through key-manager jobs (seal-secret-
#      variable jobs, 2 unwraps each; coordinator + one key-manager agent
#      with its default job slots) beside the same keystore's raw unwrap rate
#      with as many threads (a child process opening the agent's own key):
#      soft and PKCS#11 (SoftHSM2). Target: >= 0.8x.
#  (b) a 100 MB release deployed to 1 target and to 10 targets (soft
#      keystores: coordination is measured, not an HSM): wall time and CPU
#      time per target (agent main + installer, /proc). Target:
#      wall(10) <= 1.5 x max(wall(1), 10 x cpu(1) / cores).
#
# Knobs: FLOW_BENCH_PART=a|b|all, FLOW_BENCH_RUNS, FLOW_BENCH_KEYSTORES
# (soft,pkcs11), FLOW_BENCH_SIZE_MB (100), FLOW_BENCH_TARGETS (10).
# As root the agents run sandboxed as the custody-test user (created when
# missing), as in the end-to-end tests. Needs ~2.5 GB free in $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
# Release binaries, side by side: the harness finds the coordinator and the
# agent next to flow_bench.
cargo build -q --release -p custody-agent -p custody-coordinator -p custody-e2e \
  --bin custody-agent --bin custody-coordinator --bin flow_bench
export TSS2_LOG=all+NONE
exec target/release/flow_bench
