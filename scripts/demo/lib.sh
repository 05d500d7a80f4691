# Helpers for scripts/demo.sh (sourced, not run). Output conventions:
#   == N. title          a step
#      $ command         what runs (the temp dir shown as $W)
#      | output          its output
#      proves: …         what the step showed
# A failing step stops the demo with its name, the failed command and the
# tail of every log; the EXIT trap then stops everything the demo started.

STEP="(setup)"
PIDS=()       # background processes, in start order
PID_NAMES=()  # their names, for the stop messages
LOGS=()       # log files shown when a step fails

step() {
  STEP="$*"
  printf '\n== %s\n' "$*"
}

proves() { printf '   proves: %s\n' "$*"; }
note() { printf '   %s\n' "$*"; }

# Shows a command the way a reader would type it: arguments with spaces or
# shell characters single-quoted, tokens shortened, the temp dir as $W.
show() {
  local a line="" q
  for a in "$@"; do
    if [[ $a =~ ^([A-Z_]+=)?(cst_|cjt_) ]]; then a="${BASH_REMATCH[0]}…"; fi
    if [[ $a =~ [[:space:]\"\'\$\;\&\|\<\>\(\)\*\?\[] ]]; then
      q=${a//\'/\'\\\'\'}
      a="'$q'"
    fi
    line+="${line:+ }$a"
  done
  show_line "$line"
}

# show_line TEXT: a command line already written out.
show_line() {
  local line=$1
  [ -n "${W:-}" ] && line=${line//$W/\$W}
  printf '   $ %s\n' "$line"
}

indent() {
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    [ -n "${W:-}" ] && line=${line//$W/\$W}
    printf '     | %s\n' "$line"
  done
}

# run CMD…: shows and runs a command, its output (both streams) indented.
run() {
  show "$@"
  "$@" >"$W/.out" 2>&1 || {
    local rc=$?
    indent <"$W/.out"
    fail "\`$*\` exited with status $rc"
  }
  indent <"$W/.out"
}

# capture VAR CMD…: like run, but VAR receives standard output (trimmed)
# and only standard error is shown.
capture() {
  local var=$1
  shift
  show "$@"
  "$@" >"$W/.out" 2>"$W/.err" || {
    local rc=$?
    indent <"$W/.err"
    indent <"$W/.out"
    fail "\`$*\` exited with status $rc"
  }
  indent <"$W/.err"
  printf -v "$var" '%s' "$(tr -d '\r' <"$W/.out" | sed -e 's/[[:space:]]*$//')"
}

# refused CMD…: a command that must fail; shows its error.
refused() {
  show "$@"
  if "$@" >"$W/.out" 2>&1; then
    indent <"$W/.out"
    fail "\`$*\` succeeded but must be refused"
  fi
  indent <"$W/.out"
}

# fail MESSAGE: stops the demo, naming the step, with the logs' tails.
fail() {
  trap - ERR
  printf '\ndemo: FAILED at step "%s": %s\n' "$STEP" "$*" >&2
  local log
  for log in "${LOGS[@]}"; do
    [ -s "$log" ] || continue
    printf -- '--- last lines of %s\n' "${log//$W/\$W}" >&2
    tail -n 25 "$log" | sed 's/^/    /' >&2
  done
  exit 1
}

on_err() { fail "the command at line $1 of ${2##*/} exited with status $3"; }

# wait_until SECONDS WHAT CMD…: polls CMD (quietly) until it succeeds.
wait_until() {
  local secs=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for $what"
    sleep 0.2
  done
}

# bg NAME LOG CMD…: starts a background process (standard input /dev/null,
# without the demo's own extra descriptors), remembered for the cleanup.
bg() {
  local name=$1 log=$2
  shift 2
  "$@" >>"$log" 2>&1 </dev/null 8>&- &
  PIDS+=("$!")
  PID_NAMES+=("$name")
  LOGS+=("$log")
  LAST_PID=$!
}

alive() { kill -0 "$1" 2>/dev/null; }

# log_has PID LOG TEXT: the process runs and its log holds TEXT.
log_has() {
  alive "$1" || fail "$(basename "$(dirname "$2")") exited; see its log"
  grep -qF -- "$3" "$2"
}

# stop_all: SIGTERM to every process started, newest first; SIGKILL after 15 s.
stop_all() {
  local i pid name deadline
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    name=${PID_NAMES[i]}
    alive "$pid" || continue
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 15))
    while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if alive "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
      echo "   stopped $name (pid $pid) with SIGKILL: it did not stop on SIGTERM within 15 s"
    else
      echo "   stopped $name (pid $pid)"
    fi
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
  PID_NAMES=()
}

# The Landlock ABI of the running kernel (0: none), asked from the kernel
# itself: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION),
# syscall 444 on every architecture.
landlock_abi() {
  python3 -c 'import ctypes
r = ctypes.CDLL(None, use_errno=True).syscall(444, None, 0, 1)
print(r if r > 0 else 0)' 2>/dev/null || echo 0
}

# A free TCP port on loopback (the kernel picks it).
free_port() {
  python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# proc_line PID FIELD: one field of /proc/PID/status.
proc_line() { awk -v f="$2:" '$1 == f { $1 = ""; sub(/^ /, ""); print; exit }' "/proc/$1/status"; }
