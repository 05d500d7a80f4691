# Act 1 of scripts/demo.sh (sourced): the package format on its own, no
# servers. What the live flow relies on: a package holds no plaintext, opens
# only with its key, and refuses tampering and replay under another
# release's header before it writes a byte.

act_offline() {
  local d=$W/offline
  mkdir -p "$d/app"
  head -c $((2 * 1024 * 1024)) /dev/urandom >"$d/app/server.bin"
  echo "db_password = OFFLINE-SECRET-MARKER" >"$d/app/app.conf"
  tar -C "$d" -cf "$d/app.tar" app
  head -c 32 /dev/urandom >"$d/rk"
  head -c 32 /dev/urandom >"$d/other"

  step "1.1 Encrypt a 2 MiB release tar under a fresh 256-bit release key, bound to account/app/release"
  run custody package encrypt --key-file "$d/rk" --account acme --app web --release r1 "$d/app.tar" "$d/app.pkg"
  if grep -q OFFLINE-SECRET-MARKER "$d/app.pkg"; then fail "the package holds plaintext"; fi
  run custody package inspect "$d/app.pkg"
  proves "the package holds no plaintext (grep for the secret marker: no hit); only its routing header is readable"

  step "1.2 Decrypt with the right key, then with a wrong key"
  run custody package decrypt --key-file "$d/rk" "$d/app.pkg" "$d/out.tar"
  cmp "$d/app.tar" "$d/out.tar" || fail "the round trip differs"
  refused custody package decrypt --key-file "$d/other" "$d/app.pkg" "$d/wrong.tar"
  [ ! -e "$d/wrong.tar" ] || fail "a wrong key left an output file"
  proves "the round trip is exact (cmp); a wrong key fails at the key commitment, before any chunk, and writes nothing"

  step "1.3 Flip one bit in the middle; move the body under another release's header"
  cp "$d/app.pkg" "$d/flipped.pkg"
  python3 - "$d/app.pkg" "$d/flipped.pkg" "$d/moved.pkg" <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read())
f = bytearray(b); f[len(f) // 2] ^= 1
open(sys.argv[2], 'wb').write(f)
n = int.from_bytes(b[8:10], 'big')
h = bytes(b[10:10 + n]).replace(b'"r1"', b'"r2"')
open(sys.argv[3], 'wb').write(bytes(b[:8]) + len(h).to_bytes(2, 'big') + h + bytes(b[10 + n:]))
PY
  refused custody package decrypt --key-file "$d/rk" "$d/flipped.pkg" "$d/flipped.tar"
  refused custody package decrypt --key-file "$d/rk" "$d/moved.pkg" "$d/moved.tar"
  [ ! -e "$d/flipped.tar" ] && [ ! -e "$d/moved.tar" ] || fail "a refused package left an output file"
  proves "tampering is caught per 16 KiB chunk and the header is the encryption context: a body cannot be replayed as another release; nothing is written"
  rm -rf "$d"
}
