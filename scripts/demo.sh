#!/usr/bin/env bash
# `make demo` (for now): the offline package round trip on a generated
# sample, printing what each step proves. A later issue replaces this with
# the full flow (enroll, push, approve, deploy on SoftHSM2/swtpm).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -q -p custody-cli --bin custody
CUSTODY=$PWD/target/debug/custody
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

step() { printf '\n== %s\n' "$*"; }
proves() { printf '   proves: %s\n' "$*"; }
refused() { # run a command that must fail; show its one-line error
  if "$@" 2>"$W/err"; then echo "   UNEXPECTED SUCCESS" >&2; exit 1; fi
  printf '   refused: %s\n' "$(cat "$W/err")"
}

step "1. a sample release: an app tree with a secret-looking config, tarred"
mkdir -p "$W/app/bin" "$W/app/etc"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$W/app/bin/server"
echo "db_password = SAMPLE-SECRET-MARKER" >"$W/app/etc/app.conf"
tar -C "$W" -cf "$W/app.tar" app
echo "   $(stat -c %s "$W/app.tar") bytes in app.tar"

step "2. a fresh release key (32 random bytes, stored as hex)"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$W/rk.hex"
head -c 32 /dev/urandom >"$W/other.key"
echo "   release key file: rk.hex (64 hex characters)"

step "3. encrypt, bound to account/app/release"
"$CUSTODY" package encrypt --key-file "$W/rk.hex" --account acme --app web --release 2024.06.01-1 \
  "$W/app.tar" "$W/app.pkg"
echo "   $(stat -c %s "$W/app.pkg") bytes in app.pkg"
if grep -q SAMPLE-SECRET-MARKER "$W/app.pkg"; then echo "   plaintext leaked!" >&2; exit 1; fi
proves "the package holds no plaintext (the secret marker is not in it)"

step "4. inspect the header (readable without the key, not trusted until opened)"
"$CUSTODY" package inspect "$W/app.pkg" | sed 's/^/   /'
proves "routing information is visible; the body stays sealed"

step "5. decrypt with the right key"
"$CUSTODY" package decrypt --key-file "$W/rk.hex" "$W/app.pkg" "$W/out.tar"
cmp "$W/app.tar" "$W/out.tar"
proves "round trip is exact (cmp: identical), and the output appeared only after every chunk verified"

step "6. decrypt with another key"
refused "$CUSTODY" package decrypt --key-file "$W/other.key" "$W/app.pkg" "$W/wrong.tar"
test ! -e "$W/wrong.tar"
proves "a wrong key fails at the key commitment, before any chunk; no output file exists"

step "7. flip one bit deep inside the package"
cp "$W/app.pkg" "$W/flipped.pkg"
off=$(( $(stat -c %s "$W/flipped.pkg") / 2 ))
printf "$(printf '\\x%02x' $(( $(od -An -tu1 -j "$off" -N1 "$W/flipped.pkg") ^ 1 )))" |
  dd of="$W/flipped.pkg" bs=1 seek="$off" conv=notrunc status=none
refused "$CUSTODY" package decrypt --key-file "$W/rk.hex" "$W/flipped.pkg" "$W/flipped.tar"
test ! -e "$W/flipped.tar"
proves "tampering is detected per chunk; nothing is installed"

step "8. cut the package short (drop its final chunk)"
head -c $(( $(stat -c %s "$W/app.pkg") - 5000 )) "$W/app.pkg" >"$W/short.pkg"
refused "$CUSTODY" package decrypt --key-file "$W/rk.hex" "$W/short.pkg" "$W/short.tar"
test ! -e "$W/short.tar"
proves "truncation is detected (the last chunk must be short and verify at its index)"

step "9. move the body under another release's header"
python3 - "$W/app.pkg" "$W/moved.pkg" <<'PY'
import sys
b = open(sys.argv[1], 'rb').read()
n = int.from_bytes(b[8:10], 'big')
h = b[10:10 + n].replace(b'2024.06.01-1', b'2024.06.01-2')
open(sys.argv[2], 'wb').write(b[:8] + len(h).to_bytes(2, 'big') + h + b[10 + n:])
PY
refused "$CUSTODY" package decrypt --key-file "$W/rk.hex" "$W/moved.pkg" "$W/moved.tar"
test ! -e "$W/moved.tar"
proves "the header is the encryption context: a body cannot be replayed as another release"

leftover=$(find "$W" -name '.*.custody-*.tmp' | wc -l)
echo
echo "demo: all steps behaved as expected (temporary files left behind: $leftover)"
