#!/usr/bin/env bash
# Coordinator under load: 1,000 long-polling fake agents (real HTTPS
# clients on loopback, one connection each) against the real
# custody-coordinator binary, a steady stream of deployments, and the
# coordinator's RSS and job dispatch latency p50/p99 — beside a 10-agent
# reference run in the same command.
# Targets: RSS <= 100 MiB at 1,000 agents, p99 dispatch <= 50 ms.
# Knobs: CUSTODY_BENCH_AGENTS (1000), CUSTODY_BENCH_SECONDS (20), CUSTODY_BENCH_RATE (5/s).
set -euo pipefail
cd "$(dirname "$0")/.."
# Two file descriptors per agent on this machine (client and server side).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
  echo "bench-3: needs at least 4096 open files (ulimit -n is $(ulimit -n))" >&2
  exit 1
fi
cargo bench -q -p custody-coordinator --bench coordinator_load
