#!/usr/bin/env bash
# Runs the README's walk-through exactly as written: every ```sh block
# between "## Walk-through" and the next "## " heading, in order, in one
# bash with `set -euo pipefail`, then checks what it should have left
# (secret.cred from prod, mode 0600; the audit log verified). Stops what the
# walk-through started (by the process ids it records) and removes its
# directory and /srv/app on exit, also on failure. As root; refuses to run
# when /srv/app or port 8443 is in use.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "check-readme: run as root" >&2; exit 1; }
[ ! -e /srv/app ] || { echo "check-readme: /srv/app exists; the walk-through installs there" >&2; exit 1; }
if (exec 3<>/dev/tcp/127.0.0.1/8443) 2>/dev/null; then
  echo "check-readme: something listens on 127.0.0.1:8443" >&2
  exit 1
fi

script=$(mktemp /tmp/custody-readme.XXXXXX.sh)
trap 'rm -f "$script"' EXIT
{
  cat <<'HEAD'
set -euo pipefail
cleanup() {
  rc=$?
  set +e
  [ -n "${AGENT[*]:-}" ] && kill "${AGENT[@]}" 2>/dev/null
  [ -n "${COORD:-}" ] && kill "$COORD" 2>/dev/null
  sleep 2
  exec 9>&- 2>/dev/null
  wait
  [ -n "${D:-}" ] && rm -rf "$D"
  rm -rf /srv/app
  exit $rc
}
trap cleanup EXIT
trap 'echo "check-readme: FAILED at README line block ${BLOCK:-?}: $BASH_COMMAND" >&2' ERR
HEAD
  awk '
    /^## Walk-through/ { on = 1; next }
    on && /^## / { on = 0 }
    on && /^```sh$/ { inblock = 1; n++; print "BLOCK=" n; next }
    inblock && /^```$/ { inblock = 0; next }
    inblock { print }
  ' README.md
  cat <<'TAIL'
BLOCK=checks
TAIL
} >"$script"
# The checks run before the tear-down block, so insert them ahead of it.
python3 - "$script" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
blocks = s.split("\nBLOCK=")
checks = '''
[ "$(stat -c %a /srv/app/securekeys/secret.cred)" = 600 ]
cmp /srv/app/securekeys/secret.cred examples/securekeys/secret.cred.prod
custody audit verify "$D/audit.jsonl" >/dev/null
echo "check-readme: walk-through ran; secret.cred is prod's, 0600; audit verified"
'''
# blocks[-1] is "checks"; blocks[-2] is the tear-down: put the checks before it.
teardown = blocks[-2]
blocks[-2] = "checks" + checks + "\nBLOCK=" + teardown
blocks = blocks[:-1]
open(p, "w").write("\nBLOCK=".join(blocks) + "\n")
PY
start=$SECONDS
bash "$script"
echo "check-readme: done in $((SECONDS - start)) s"
