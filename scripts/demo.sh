#!/usr/bin/env bash
# `make demo`: Custody's secure release flow end to end on one machine, as
# root, with real processes on loopback:
#
#   act 1  the package format offline (encrypt, wrong key, tampering)
#   act 2  a coordinator (TLS, pinned CA), two key managers (SoftHSM2 and
#          swtpm, stood up by hsm-sim), one target, each a sandboxed
#          `custody-agent run`; enroll, master key, secure app, environments,
#          a secret variable, publisher key, push, deploy to dev, deploy to
#          prod through a signed approval, a tampered package refused, a
#          stolen coordinator state searched, the audit chain verified.
#
# Prints what each step proves. Exits non-zero at the first failed step,
# naming it, with the tail of every log. Stops everything it started and
# removes its temporary directory on exit, failed or not.
#
# Touches outside its temp dir only: the system user `custody-demo` (created
# when missing, kept), and /srv/app, the install root the securekeys
# example's manifest names (created and removed by the demo; the demo
# refuses to run if /srv/app exists and is not its own).
#
#   DEMO_PROFILE=release scripts/demo.sh   use a release build (default: debug)
#   DEMO_KEEP=1 scripts/demo.sh            keep the temp dir (for a look after)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$SECONDS
export NO_COLOR=1 TSS2_LOG=all+NONE

# shellcheck source=demo/lib.sh
. scripts/demo/lib.sh
# shellcheck source=demo/offline.sh
. scripts/demo/offline.sh
AUDIT="python3 $ROOT/scripts/demo/audit.py"

DEMO_USER=custody-demo
INSTALL_ROOT=/srv/app
MARKER=.custody-demo-install-root
W=""
MADE_ROOT=0

[ "$(id -u)" = 0 ] || { echo "demo: run as root (make demo): the agents switch to a service user, and the example installs under $INSTALL_ROOT" >&2; exit 1; }
for tool in cargo python3 setpriv useradd sha256sum; do
  command -v "$tool" >/dev/null || { echo "demo: $tool is missing (make deps; cargo from rustup)" >&2; exit 1; }
done

cleanup() {
  local rc=$?
  trap - ERR
  set +e
  echo
  echo "== stopping everything the demo started"
  stop_all
  if [ -n "${TPM_FIFO_OPEN:-}" ]; then
    exec 8>&-   # hsm-sim swtpm stops and tears down swtpm at the end of its input
    wait "$HSM_SIM_PID" 2>/dev/null
    alive "${SWTPM_PID:-0}" && kill -KILL "$SWTPM_PID"
    echo "   stopped hsm-sim swtpm and its swtpm"
  fi
  if [ "$MADE_ROOT" = 1 ]; then
    rm -rf "$INSTALL_ROOT"
    echo "   removed $INSTALL_ROOT"
  fi
  if [ -n "$W" ] && [ -d "$W" ]; then
    if [ "${DEMO_KEEP:-0}" = 1 ]; then
      echo "   kept $W (DEMO_KEEP=1)"
    else
      rm -rf "$W"
      echo "   removed the temporary directory $W"
    fi
  fi
  echo "   kept the system user $DEMO_USER (userdel $DEMO_USER removes it)"
  if [ "$rc" = 0 ]; then
    echo
    echo "demo: every step behaved as expected, in $((SECONDS - START)) s (build included)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'on_err $LINENO "${BASH_SOURCE[0]}" $?' ERR

# ---------------------------------------------------------------- build
step "0. Build custody, custody-agent, custody-coordinator and hsm-sim (${DEMO_PROFILE:-debug})"
profile_args=()
bin_dir=target/debug
if [ "${DEMO_PROFILE:-debug}" = release ]; then profile_args=(--release); bin_dir=target/release; fi
t0=$SECONDS
cargo build -q "${profile_args[@]}" -p custody-cli -p custody-agent -p custody-coordinator -p hsm-sim \
  --bin custody --bin custody-agent --bin custody-coordinator --bin hsm-sim \
  || fail "cargo build failed"
note "built in $((SECONDS - t0)) s"
W=$(mktemp -d /tmp/custody-demo.XXXXXX)
chmod 0755 "$W"
# Our own copies: the service user can run them, and a rebuild in the
# checkout during the demo changes nothing here.
mkdir "$W/bin"
for b in custody custody-agent custody-coordinator hsm-sim; do install -m 0755 "$bin_dir/$b" "$W/bin/$b"; done
export PATH="$W/bin:$PATH"
note "binaries copied to \$W/bin, first on PATH; \$W is $W"

# ------------------------------------------------------------- act 1
printf '\n######## Act 1: the package format, offline\n'
act_offline

# ------------------------------------------------------------- act 2
printf '\n######## Act 2: the secure release flow, across real processes\n'

step "2.1 A service user for the agents and the coordinator"
if id "$DEMO_USER" >/dev/null 2>&1; then
  note "system user $DEMO_USER exists; reusing it"
else
  run useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$DEMO_USER"
fi
if [ -e "$INSTALL_ROOT" ]; then
  [ -e "$INSTALL_ROOT/$MARKER" ] || fail "$INSTALL_ROOT exists and is not the demo's: the securekeys example installs to $INSTALL_ROOT/securekeys; move it away first"
  rm -rf "$INSTALL_ROOT"
  note "removed $INSTALL_ROOT left by an interrupted demo"
fi
MADE_ROOT=1
run install -d -o "$DEMO_USER" -g "$DEMO_USER" -m 0755 "$INSTALL_ROOT"
touch "$INSTALL_ROOT/$MARKER"
ABI=$(landlock_abi)
SANDBOX_EXTRA=""
if [ "$ABI" -ge 4 ]; then
  note "this kernel's Landlock ABI is $ABI: file and TCP rules are enforced"
elif [ "$ABI" -ge 1 ]; then
  SANDBOX_EXTRA="landlock_min_abi = $ABI"
  note "this kernel's Landlock ABI is $ABI (< 4: no TCP rules); the agents accept it by 'landlock_min_abi = $ABI' (a unit's IPAddressAllow= covers the network in production)"
else
  SANDBOX_EXTRA="require = false"
  note "WARNING: this kernel has no Landlock; the agents run with 'require = false' (seccomp, own user, no capabilities, but no file-system rules)"
fi
proves "agents start as root only to acquire their keystore, then drop to $DEMO_USER with no capabilities; the coordinator runs as $DEMO_USER from the start (the .debs use custody-agent and custody-coordinator)"

# ------------------------------------------------------- coordinator
step "2.2 Coordinator: init (account, CA, TLS certificate, owner token), then run"
PORT=$(free_port)
MPORT=$(free_port)
URL="https://127.0.0.1:$PORT"
install -d -o "$DEMO_USER" -g "$DEMO_USER" -m 0700 "$W/coordinator"
cat >"$W/coordinator.toml" <<EOF
listen = "127.0.0.1:$PORT"
metrics_listen = "127.0.0.1:$MPORT"
state_dir = "$W/coordinator/state"
public_url = "$URL"
EOF
AS_DEMO=(setpriv --reuid="$DEMO_USER" --regid="$DEMO_USER" --clear-groups)
capture INIT "${AS_DEMO[@]}" custody-coordinator init --config "$W/coordinator.toml"
FP=$(sed -n 's/^ca fingerprint: *//p' <<<"$INIT")
OWNER_TOKEN=$(sed -n 's/^owner token: *//p' <<<"$INIT")
[ -n "$FP" ] && [ -n "$OWNER_TOKEN" ] || fail "init printed no CA fingerprint or owner token: $INIT"
sed 's/^owner token: .*/owner token:      cst_… (kept in the demo, shown once)/' <<<"$INIT" | indent
show_line "${AS_DEMO[*]} custody-coordinator run --config $W/coordinator.toml &"
bg coordinator "$W/coordinator.log" "${AS_DEMO[@]}" custody-coordinator run --config "$W/coordinator.toml"
COORD_PID=$LAST_PID
wait_until 30 "the coordinator to listen" log_has "$COORD_PID" "$W/coordinator.log" "listening on"
export CUSTODY_CONFIG=$W/owner/config.toml
refused env CUSTODY_TOKEN="$OWNER_TOKEN" custody login --url "$URL" --ca-fingerprint "$(printf '0%.0s' {1..64})"
run env CUSTODY_TOKEN="$OWNER_TOKEN" custody login --url "$URL" --ca-fingerprint "$FP"
proves "the CLI talks TLS to a pinned CA only: a wrong fingerprint is refused before the token is sent; the login file is 0600 ($(stat -c %a "$CUSTODY_CONFIG"))"

# -------------------------------------------------------- simulators
step "2.3 Hardware: two SoftHSM2 tokens (km-hsm, web-1) and a swtpm TPM (km-tpm), via hsm-sim"
for a in km-hsm km-tpm web-1; do mkdir -p "$W/$a/agent.toml.d"; done
for a in km-hsm web-1; do
  show_line "hsm-sim softhsm --dir $W/$a/hsm"
  hsm-sim softhsm --dir "$W/$a/hsm" </dev/null >"$W/$a/hsm.env" 2>"$W/$a/hsm.err" || { indent <"$W/$a/hsm.err"; fail "hsm-sim softhsm failed"; }
  indent <"$W/$a/hsm.env"
done
mkfifo "$W/tpm.stdin"
show_line "hsm-sim swtpm --dir $W/km-tpm/tpm &   # runs until its standard input ends"
hsm-sim swtpm --dir "$W/km-tpm/tpm" <"$W/tpm.stdin" >"$W/km-tpm/tpm.env" 2>"$W/km-tpm/tpm.err" &
HSM_SIM_PID=$!
exec 8>"$W/tpm.stdin"
TPM_FIFO_OPEN=1
LOGS+=("$W/km-tpm/tpm.err")
wait_until 30 "swtpm to be ready" grep -q '^# ready' "$W/km-tpm/tpm.env"
indent <"$W/km-tpm/tpm.env"
SWTPM_PID=$(sed -n 's/^export HSM_SIM_SWTPM_PID=//p' "$W/km-tpm/tpm.env")
proves "the key managers' and the target's private keys will be generated inside a PKCS#11 token or a TPM, never in a file"

# ------------------------------------------------------------ agents
# agent_config NAME KEYSTORE-TOML [TARGET-TOML]
agent_config() {
  install -d -o root -g root -m 0700 "$W/$1/state"
  cat >"$W/$1/agent.toml" <<EOF
[keystore]
$2

[state]
dir = "$W/$1/state"
${3:-}
[sandbox]
user = "$DEMO_USER"
$SANDBOX_EXTRA

[log]
level = "info"
EOF
}
hsm_keystore() { # NAME
  # shellcheck disable=SC1090
  . "$W/$1/hsm.env"
  printf 'kind = "pkcs11"\nmodule = "%s"\ntoken_label = "%s"\npin = { file = "%s" }\nkey_bits = 3072\nsessions = 2\n' \
    "$HSM_SIM_MODULE" "$HSM_SIM_TOKEN_LABEL" "$HSM_SIM_PIN_FILE"
}
# shellcheck disable=SC1091
TCTI=$(. "$W/km-tpm/tpm.env" && echo "$HSM_SIM_TCTI")
agent_config km-hsm "$(hsm_keystore km-hsm)"
agent_config km-tpm "kind = \"tpm\"
tcti = \"$TCTI\""
agent_config web-1 "$(hsm_keystore web-1)" "
[target]
install_roots = [\"$INSTALL_ROOT\"]
publisher_keys = []   # pinned in step 2.8
"
agent_env() { # NAME: the environment its keystore needs
  if [ -f "$W/$1/hsm.env" ]; then echo "SOFTHSM2_CONF=$W/$1/hsm/softhsm2.conf"; else echo "TSS2_LOG=all+NONE"; fi
}

step "2.4 Enroll the three agents with one-time join tokens (each makes its key pair in its hardware)"
declare -A SERVER_FP
for a in km-hsm km-tpm web-1; do
  roles=key_manager
  [ "$a" = web-1 ] && roles=target
  capture JT custody servers join-token --ttl 600
  show_line "CUSTODY_JOIN_TOKEN=cjt_… $(agent_env "$a") custody-agent enroll --config $W/$a/agent.toml --coordinator $URL --ca-fingerprint $FP --roles $roles --name $a"
  env CUSTODY_JOIN_TOKEN="$JT" "$(agent_env "$a")" custody-agent enroll --config "$W/$a/agent.toml" \
    --coordinator "$URL" --ca-fingerprint "$FP" --roles "$roles" --name "$a" >"$W/.out" 2>&1 \
    || { indent <"$W/.out"; fail "enrolling $a failed"; }
  indent <"$W/.out"
  SERVER_FP[$a]=$(sed -n 's/.*(key \([A-Za-z0-9_-]*\)).*/\1/p' "$W/.out")
  [ -n "${SERVER_FP[$a]}" ] || fail "enroll printed no key fingerprint for $a"
  [ "$a" = km-hsm ] && KM_HSM_TOKEN=$JT
done
refused env CUSTODY_JOIN_TOKEN="$KM_HSM_TOKEN" "$(agent_env km-hsm)" custody-agent enroll --config "$W/km-hsm/agent.toml" \
  --coordinator "$URL" --ca-fingerprint "$FP" --name km-hsm-again
proves "a join token enrolls one agent once (reusing km-hsm's is refused); each credential is stored 0600 in the agent's state dir"

step "2.5 Start the agents: \`custody-agent run\`, sandboxed, connecting out to the coordinator"
for a in km-hsm km-tpm web-1; do
  # The service user owns the state dir (credential, TPM blobs) and the SoftHSM2 token.
  chown -R "$DEMO_USER:$DEMO_USER" "$W/$a/state"
  [ -d "$W/$a/hsm" ] && chown -R "$DEMO_USER:$DEMO_USER" "$W/$a/hsm"
  show_line "$(agent_env "$a") custody-agent run --config $W/$a/agent.toml &"
  bg "$a" "$W/$a/agent.log" env "$(agent_env "$a")" custody-agent run --config "$W/$a/agent.toml"
  declare "PID_${a//-/_}=$LAST_PID"
done
for a in km-hsm km-tpm web-1; do
  pid_var="PID_${a//-/_}"
  wait_until 60 "$a to connect" log_has "${!pid_var}" "$W/$a/agent.log" "connected to the coordinator"
done
note "process                       uid  CapEff            NoNewPrivs Seccomp"
for a in km-hsm km-tpm web-1; do
  pid_var="PID_${a//-/_}"
  pids=("${!pid_var}")
  [ "$a" = web-1 ] && pids+=($(pgrep -P "${!pid_var}" || true))
  for p in "${pids[@]}"; do
    kind=main
    [ "$p" != "${!pid_var}" ] && kind=installer
    uid=$(proc_line "$p" Uid | awk '{print $2}')
    printf '     | %-27s %5s %s %-10s %s\n' "$a $kind ($p)" "$uid" "$(proc_line "$p" CapEff)" \
      "$(proc_line "$p" NoNewPrivs)" "$(proc_line "$p" Seccomp)"
    [ "$uid" = "$(id -u "$DEMO_USER")" ] && [ "$(proc_line "$p" CapEff)" = 0000000000000000 ] \
      && [ "$(proc_line "$p" NoNewPrivs)" = 1 ] && [ "$(proc_line "$p" Seccomp)" = 2 ] \
      || fail "$a $kind is not sandboxed as expected"
  done
done
grep -h 'sandbox applied' "$W/km-hsm/agent.log" | head -n 1 | cut -c1-160 | indent
run custody servers list
proves "every agent process runs as $DEMO_USER (uid $(id -u "$DEMO_USER")) with no capabilities, no_new_privs and a seccomp filter (mode 2); the target's installer is a separate, separately sandboxed process; no agent listens on a port"

step "2.6 Enable the key managers: the first makes the master key, the second learns it"
run custody app create securekeys
run custody servers enable-km km-hsm
refused custody app secure securekeys
run custody servers enable-km km-tpm
holders() { [ "$(custody servers list --json | python3 -c 'import json,sys; print(sum(s["holds_master_key"] for s in json.load(sys.stdin)))')" = 2 ]; }
wait_until 60 "both key managers to hold the master key" holders
run custody servers list
custody audit export -o "$W/audit-mk.jsonl" 2>/dev/null
$AUDIT master-key "$W/audit-mk.jsonl" | indent
run custody app secure securekeys
proves "an app cannot be made secure with one key manager (refused above); MK was made inside km-hsm's job and reached km-tpm only wrapped to km-tpm's TPM key; the coordinator stores only wrap(P_i, MK)"

step "2.7 Environments dev and prod with the target; STAGE on each, secret in dev"
for e in dev prod; do
  run custody env create securekeys "$e"
  run custody env add-server securekeys "$e" web-1
done
note "trust on first use: compare the key managers' fingerprints with what each printed at enroll"
custody servers list --json | python3 -c 'import json,sys
for s in json.load(sys.stdin):
    print(s["name"], s["key_fingerprint"])' >"$W/fps"
for a in km-hsm km-tpm; do
  grep -qx "$a ${SERVER_FP[$a]}" "$W/fps" || fail "$a's fingerprint at the coordinator differs from the one it printed at enroll"
  note "  $a: enrolled with ${SERVER_FP[$a]}, the coordinator lists the same"
done
show_line "printf dev | custody env set-var securekeys dev STAGE --secret --accept-new-key-manager"
printf dev | custody env set-var securekeys dev STAGE --secret --accept-new-key-manager >"$W/.out" 2>&1 \
  || { indent <"$W/.out"; fail "set-var --secret failed"; }
indent <"$W/.out"
sealed() { [[ $(custody env show securekeys dev) == *"(secret, sealed)"* ]]; }
wait_until 60 "a key manager to seal STAGE" sealed
run custody env set-var securekeys prod STAGE prod
run custody env show securekeys dev
proves "the secret value was wrapped on this machine to the key managers' public keys and sealed under MK by one of them: the coordinator never sees it, listings show only that it is set"

step "2.8 Publisher key: \`custody keygen\`, pinned in the target's config (drop-in + SIGHUP)"
capture PUBKEY custody keygen
[ "${#PUBKEY}" = 64 ] || fail "keygen printed no 64-hex public key: $PUBKEY"
note "$PUBKEY"
printf '[target]\npublisher_keys = ["%s"]\n' "$PUBKEY" >"$W/web-1/agent.toml.d/publisher.toml"
show_line "echo '[target] publisher_keys = [\"$PUBKEY\"]' > $W/web-1/agent.toml.d/publisher.toml; kill -HUP <web-1>"
kill -HUP "$PID_web_1"
wait_until 30 "web-1 to reload its publisher keys" log_has "$PID_web_1" "$W/web-1/agent.log" "publisher_keys=1"
grep -h 'configuration reloaded' "$W/web-1/agent.log" | tail -n 1 | indent
proves "the publisher's private key stays on the pushing machine ($(stat -c %a "$W/owner/publisher.key")); the target will accept only releases signed by the key it pins"

step "2.9 Push the securekeys example: encrypted here, release key wrapped to both key managers"
capture REL custody push "$ROOT/examples/securekeys" --app securekeys --wait
[[ $REL == rel_* ]] || fail "push printed no release id: $REL"
ARTIFACT=$(find "$W/coordinator/state/artifacts" -type f | head -n 1)
[ -n "$ARTIFACT" ] || fail "no artifact stored"
hits=$(grep -c -a -F -e FAKE-dev-password -e FAKE-prod-password "$ARTIFACT" || true)
note "release $REL; stored package ${ARTIFACT//$W/\$W}: $(stat -c %s "$ARTIFACT") bytes, $hits plaintext hits"
[ "$hits" = 0 ] || fail "the stored package holds plaintext"
proves "the package was encrypted on this machine before upload and signed; a key manager turned wrap(P_k, RK) into seal(MK, RK) (--wait returned once it did)"

step "2.10 Deploy to dev and follow it live"
run timeout 180 custody deploy securekeys --release "$REL" --env dev --follow
grep -q 'secret.cred is now secret.cred.\*\*\* (mode 0600)' "$W/.out" || fail "the hook output did not show STAGE redacted"
run stat -c '%A %a %U %n' "$INSTALL_ROOT/securekeys/secret.cred" "$INSTALL_ROOT/securekeys/README.md"
[ "$(stat -c %a "$INSTALL_ROOT/securekeys/secret.cred")" = 600 ] || fail "secret.cred is not 0600"
cmp -s "$INSTALL_ROOT/securekeys/secret.cred" examples/securekeys/secret.cred.dev || fail "secret.cred is not the dev credentials"
[ -z "$(ls -A "$W/web-1/state/staging")" ] || fail "plaintext left in web-1's staging dir"
proves "web-1 unwrapped DK in its own token, checked the publisher signature and the package digest, decrypted into private staging, and its installer put the files in place: secret.cred is secret.cred.dev, mode 0600; the hook's output reached the coordinator with the secret STAGE value as ***; staging is empty"

step "2.11 prod needs an approval: an approver with her own Ed25519 key"
run custody users add alice --role approver
capture ALICE_TOKEN custody tokens create --user alice --label demo
ALICE=$W/alice/config.toml
run env CUSTODY_CONFIG="$ALICE" CUSTODY_TOKEN="$ALICE_TOKEN" custody login --url "$URL" --ca-fingerprint "$FP"
run env CUSTODY_CONFIG="$ALICE" custody keygen --user
run custody users set-key alice --public-key "$W/alice/approver.key.pub"
run custody groups add prod-approvers
run custody groups add-member prod-approvers alice
run custody env set-approval securekeys prod --group prod-approvers --quorum 1
proves "alice's private approval key never leaves her machine; the coordinator holds only its public half"

step "2.12 Deploy to prod: it waits for approval, and no key manager is asked for anything"
capture DEP custody deploy securekeys --release "$REL" --env prod
[[ $DEP == dep_* ]] || fail "deploy printed no deployment id: $DEP"
custody deployments show "$DEP" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print("state:", d["state"]); sys.exit(d["state"] != "pending_approval")' | indent
sleep 2   # give a (wrongly) queued job time to show up in the audit log
custody audit export -o "$W/audit-pending.jsonl" 2>/dev/null
n=$($AUDIT count-jobs "$W/audit-pending.jsonl" "$DEP")
note "jobs queued for $DEP so far (audit log): $n"
[ "$n" = 0 ] || fail "a job was queued for a deployment pending approval"
proves "until quorum is met, no key-manager job exists for the deployment: no deploy key is made or wrapped for the target"

step "2.13 alice approves (signed statement) and asks to deploy; the target installs"
run env CUSTODY_CONFIG="$ALICE" custody approvals list
run env CUSTODY_CONFIG="$ALICE" custody approve "$DEP" --deploy
run timeout 180 custody deployments show "$DEP" --follow
run custody deployments show "$DEP"
grep -q 'signature verifies' "$W/.out" || fail "the approval's signature does not show as verified"
cmp -s "$INSTALL_ROOT/securekeys/secret.cred" examples/securekeys/secret.cred.prod || fail "secret.cred is not the prod credentials"
run stat -c '%A %a %U %n' "$INSTALL_ROOT/securekeys/secret.cred"
custody audit export -o "$W/audit-prod.jsonl" 2>/dev/null
$AUDIT jobs "$W/audit-prod.jsonl" "$DEP" | indent
proves "alice's Ed25519 signature over (deployment, release, digest, environment, targets, expiry) counted toward the quorum; only then were the prepare and wrap jobs queued, run by the key managers, and secret.cred is now secret.cred.prod (0600)"

step "2.14 A tampered package in the coordinator's store is refused by the target"
before=$(sha256sum "$INSTALL_ROOT/securekeys/"* | sha256sum)
show_line "python3 -c '…flip the middle byte…' ${ARTIFACT//$W/\$W}"
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[len(b)//2]^=1; open(p,"wb").write(b)' "$ARTIFACT"
refused timeout 180 custody deploy securekeys --release "$REL" --env dev --follow
grep -q 'digest_mismatch' "$W/.out" || fail "the deploy did not fail on the package digest"
[ "$before" = "$(sha256sum "$INSTALL_ROOT/securekeys/"* | sha256sum)" ] || fail "the destination changed"
[ -z "$(ls -A "$W/web-1/state/staging")" ] || fail "something left in web-1's staging dir"
proves "the target checks the package's SHA-256 against the signed key list before decrypting: the deploy failed with a reason, nothing at the destination changed, staging is empty"

step "2.15 What a stolen coordinator (database, WAL, artifacts, keys) yields"
files=$(find "$W/coordinator/state" -type f | wc -l)
bytes=$(du -sb "$W/coordinator/state" | cut -f1)
show_line "grep -r -a -l -e FAKE-dev-password -e FAKE-prod-password -e FAKE-stage-password -e API_KEY= $W/coordinator/state | wc -l"
hits=$(grep -r -a -l -e FAKE-dev-password -e FAKE-prod-password -e FAKE-stage-password -e API_KEY= "$W/coordinator/state" | wc -l || true)
note "$hits of $files files ($bytes bytes) hold any of the release's secrets"
[ "$hits" = 0 ] || fail "the coordinator's state holds plaintext"
run python3 "$ROOT/scripts/demo/db_peek.py" "$W/coordinator/state/coordinator.db"
proves "the coordinator's database holds only ciphertext: grep for the secrets finds nothing; every key it keeps is a JWE wrapped to an HSM/TPM key or sealed under MK"

step "2.16 Export and verify the audit log; then break one entry"
run custody audit export -o "$W/audit.jsonl"
run custody audit verify "$W/audit.jsonl"
$AUDIT summary "$W/audit.jsonl" | fold -s -w 100 | indent
$AUDIT tamper "$W/audit.jsonl" "$W/audit-tampered.jsonl" | indent
refused custody audit verify "$W/audit-tampered.jsonl"
proves "every state change and key operation above is in one hash chain, ending in a checkpoint signed by the coordinator key pinned at login; changing one entry breaks it"
