#!/usr/bin/env bash
# Package encryption against age, on the same 1 GiB file on tmpfs, same
# machine, same command: `custody package encrypt|decrypt` (parallel by
# default) vs `age -e|-d` with a generated X25519 recipient. One warm-up
# run, then BENCH_RUNS (default 5) timed runs each; prints medians and the
# ratio (age time / custody time: above 1 means custody is faster).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${BENCH_RUNS:-5}
SIZE_MIB=${BENCH_SIZE_MIB:-1024}
for tool in age age-keygen hyperfine python3; do
  command -v "$tool" >/dev/null || { echo "bench-1-package: $tool is missing (make deps)" >&2; exit 1; }
done

cargo build --release -q -p custody-cli --bin custody
BIN=$PWD/target/release/custody

W=$(mktemp -d /dev/shm/custody-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$W/in"
head -c 32 /dev/urandom >"$W/key"
age-keygen -o "$W/age.key" 2>/dev/null
RCPT=$(age-keygen -y "$W/age.key")

echo "input: ${SIZE_MIB} MiB of random bytes on tmpfs ($W); $(nproc) cores; $RUNS runs after 1 warm-up"
ENC="$BIN package encrypt --key-file $W/key --account bench --app app --release r1 $W/in $W/c.pkg"
DEC="$BIN package decrypt --key-file $W/key $W/c.pkg $W/c.out"
AENC="age -e -r $RCPT -o $W/a.age $W/in"
ADEC="age -d -i $W/age.key -o $W/a.out $W/a.age"

hyperfine -N --style basic --warmup 1 --runs "$RUNS" --export-json "$W/enc.json" \
  -n "custody encrypt" "$ENC" -n "age -e" "$AENC" >/dev/null
hyperfine -N --style basic --warmup 1 --runs "$RUNS" --export-json "$W/dec.json" \
  -n "custody decrypt" "$DEC" -n "age -d" "$ADEC" >/dev/null

cmp -s "$W/in" "$W/c.out" || { echo "custody round trip differs!" >&2; exit 1; }
cmp -s "$W/in" "$W/a.out" || { echo "age round trip differs!" >&2; exit 1; }

python3 - "$W/enc.json" "$W/dec.json" "$SIZE_MIB" <<'PY'
import json, sys
size = int(sys.argv[3]) / 1024  # GiB
for path in sys.argv[1:3]:
    res = json.load(open(path))["results"]
    (ours, ref) = res
    print(f"{ours['command']:>16}: median {ours['median']:.3f} s  ({size / ours['median']:.2f} GiB/s)   "
          f"[min {ours['min']:.3f} max {ours['max']:.3f}]")
    print(f"{ref['command']:>16}: median {ref['median']:.3f} s  ({size / ref['median']:.2f} GiB/s)   "
          f"[min {ref['min']:.3f} max {ref['max']:.3f}]")
    print(f"{'ratio':>16}: custody is {ref['median'] / ours['median']:.2f}x as fast as age (target >= 2.00x)")
PY
