#!/usr/bin/env bash
# Keystore unwraps per second (soft, PKCS#11 on SoftHSM2, TPM on swtpm),
# 1 thread and N threads, each beside the raw rate of the same hardware in
# the same run: `openssl speed` for the CPU (the soft keystore's
# reference), a raw C_Decrypt loop for SoftHSM2 and a raw TPM2_RSA_Decrypt
# loop for swtpm (both inside the bench binary, agent/benches/keystore.rs).
# Target: the keystore layer costs at most 10% over the raw rate.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${CUSTODY_BENCH_THREADS:-$(nproc)}"
[ "$N" -ge 2 ] || N=2
# Build first, so the reference and the measurements run back to back.
cargo bench -q -p custody-agent --bench keystore --no-run 2>/dev/null
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
echo "--- reference (CPU): openssl speed -seconds 3 rsa2048 rsa3072, 1 process, then -multi $N (total)"
echo "    (the private-key op is sign/s; an OAEP decryption costs the same exponentiation)"
openssl speed -seconds 3 rsa2048 rsa3072 2>/dev/null | grep -E '^(rsa|  *sign)'
openssl speed -seconds 3 -multi "$N" rsa2048 rsa3072 2>/dev/null | grep -E '^rsa'
echo "--- keystores"
CUSTODY_BENCH_THREADS="$N" cargo bench -q -p custody-agent --bench keystore 2>/dev/null
