#!/usr/bin/env bash
# Package encryption against age, on the same 1 GiB file on tmpfs, same
# machine, same command: `custody package encrypt|decrypt` (parallel by
# default) vs `age -e|-d` with a generated X25519 recipient. One warm-up
# run, then BENCH_RUNS (default 5) timed runs each; prints medians and the
# ratio (age time / custody time: above 1 means custody is faster).
# Runs are interleaved with a plain `date +%s.%N` clock (hyperfine would
# time all of one tool, then all of the other, under different load).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${BENCH_RUNS:-5}
SIZE_MIB=${BENCH_SIZE_MIB:-1024}
for tool in age age-keygen bc python3; do
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

echo "input: ${SIZE_MIB} MiB of random bytes on tmpfs ($W); $(nproc) cores; $RUNS interleaved runs after 1 warm-up"
ENC="$BIN package encrypt --key-file $W/key --account bench --app app --release r1 $W/in $W/c.pkg"
DEC="$BIN package decrypt --key-file $W/key $W/c.pkg $W/c.out"
AENC="age -e -r $RCPT -o $W/a.age $W/in"
ADEC="age -d -i $W/age.key -o $W/a.out $W/a.age"
# The floor: the same bytes read and written once more, with no crypto
# (1 MiB reads and writes, as both tools do). Every tool that writes its
# output to this tmpfs pays at least this.
COPY="dd if=$W/in of=$W/copy bs=1M status=none"

# Interleaved runs (custody, age, custody, age, …) so both see the same
# background load; one untimed warm-up of each first.
t() { # label command…: run once, append "label seconds" to $W/times
  local label=$1 s e
  shift
  s=$(date +%s.%N)
  "$@" >/dev/null 2>"$W/err" || { echo "bench: $label failed: $(cat "$W/err")" >&2; exit 1; }
  e=$(date +%s.%N)
  echo "$label $(echo "$e - $s" | bc)" >>"$W/times"
}
for c in "$ENC" "$AENC" "$DEC" "$ADEC" "$COPY"; do $c >/dev/null 2>&1; done
: >"$W/times"
for _ in $(seq "$RUNS"); do
  t "enc custody" $ENC
  t "enc age" $AENC
  t "dec custody" $DEC
  t "dec age" $ADEC
  t "copy dd" $COPY
done

cmp -s "$W/in" "$W/c.out" || { echo "custody round trip differs!" >&2; exit 1; }
cmp -s "$W/in" "$W/a.out" || { echo "age round trip differs!" >&2; exit 1; }

python3 - "$W/times" "$SIZE_MIB" <<'PY'
import statistics, sys
size = int(sys.argv[2]) / 1024  # GiB
runs = {}
for line in open(sys.argv[1]):
    op, tool, secs = line.split()
    runs.setdefault((op, tool), []).append(float(secs))
for op, what in (("enc", "encrypt"), ("dec", "decrypt")):
    ours, ref = runs[(op, "custody")], runs[(op, "age")]
    mo, mr = statistics.median(ours), statistics.median(ref)
    print(f"custody {what}: median {mo:.3f} s ({size / mo:.2f} GiB/s)  min {min(ours):.3f}  max {max(ours):.3f}")
    print(f"age     {what}: median {mr:.3f} s ({size / mr:.2f} GiB/s)  min {min(ref):.3f}  max {max(ref):.3f}")
    print(f"  {what}: custody is {mr / mo:.2f}x as fast as age by median, {min(ref) / min(ours):.2f}x by best run (target >= 2.00x)")
copy = runs[("copy", "dd")]
mc = statistics.median(copy)
print(f"floor: a plain copy of the same file (dd, no crypto): median {mc:.3f} s ({size / mc:.2f} GiB/s)  min {min(copy):.3f}  max {max(copy):.3f}")
for op, what in (("enc", "encrypt"), ("dec", "decrypt")):
    mr = statistics.median(runs[(op, "age")])
    print(f"  2x age {what} needs <= {mr / 2:.3f} s: {mr / 2 / mc:.2f}x the plain copy's time; custody takes {statistics.median(runs[(op, 'custody')]) / mc:.2f}x it")
PY
echo "(load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); other work on the machine skews both tools)"
