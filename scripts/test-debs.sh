#!/usr/bin/env bash
# Installs the three .debs built by scripts/build-debs.sh with apt-get (as
# CI does: PID 1 is not systemd there), checks files, modes, users and
# directories, that every path in selinux/custody.fc exists once installed,
# and that the installed units verify; reinstalls (postinst on an existing
# install), then purges and checks what is left: nothing but the system
# users, as is Debian's convention.
#
#   DEB_DIR=DIR scripts/test-debs.sh     (default target/debian)
#
# Must run as root. Refuses to run when the packages are already installed
# (it would purge them), unless FORCE=1.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_DIR=${DEB_DIR:-target/debian}
version=$(awk -F'"' '/^\[workspace.package\]/{w=1} w && /^version *=/{print $2; exit}' Cargo.toml)
arch=$(dpkg --print-architecture)
pkgs=(custody-agent custody-coordinator custody)
debs=()
for p in "${pkgs[@]}"; do
    deb=$(realpath "$DEB_DIR/${p}_${version}_${arch}.deb")
    [ -f "$deb" ] || { echo "missing $deb (run scripts/build-debs.sh)" >&2; exit 1; }
    debs+=("$deb")
done
[ "$(id -u)" = 0 ] || { echo "test-debs: must run as root" >&2; exit 1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q ' installed$'; }
for p in "${pkgs[@]}"; do
    if installed "$p" && [ "${FORCE:-0}" != 1 ]; then
        echo "test-debs: $p is installed already; FORCE=1 to test (and purge) anyway" >&2
        exit 1
    fi
done

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok    $*"; }

# expect PATH TYPE MODE OWNER GROUP
expect() {
    local path=$1 type=$2 mode=$3 owner=$4 group=$5 got
    if [ ! -e "$path" ]; then
        fail "$path missing"
        return
    fi
    got=$(stat -c '%F %a %U %G' "$path")
    got=${got/regular empty file/regular file}
    case "$type" in f) type="regular file" ;; d) type=directory ;; esac
    if [ "$got" = "$type $mode $owner $group" ]; then
        pass "$path ($mode $owner:$group)"
    else
        fail "$path is '$got', expected '$type $mode $owner $group'"
    fi
}

start=$(date +%s)
echo "== install"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${debs[@]}" >/tmp/test-debs-apt.log 2>&1 \
    || { cat /tmp/test-debs-apt.log; echo "FAIL: apt-get install"; exit 1; }
for p in "${pkgs[@]}"; do
    installed "$p" && pass "$p installed" || fail "$p not installed"
done

echo "== files"
expect /usr/sbin/custody-agent f 755 root root
expect /usr/sbin/custody-coordinator f 755 root root
expect /usr/bin/custody f 755 root root
for u in custody-agent custody-coordinator; do
    expect "/usr/lib/systemd/system/$u.service" f 644 root root
    expect "/usr/lib/sysusers.d/$u.conf" f 644 root root
    expect "/usr/lib/tmpfiles.d/$u.conf" f 644 root root
    expect "/usr/share/selinux/packages/$u/custody.pp" f 644 root root
    expect "/usr/share/doc/$u/HARDENING.md" f 644 root root
done
for m in man8/custody-agent.8.gz man8/custody-coordinator.8.gz man1/custody.1.gz; do
    expect "/usr/share/man/$m" f 644 root root
    zcat "/usr/share/man/$m" | grep -q '^\.TH ' && pass "$m is a man page" || fail "$m is not a man page"
done
ls /usr/share/doc/custody-agent/examples/*.toml >/dev/null 2>&1 \
    && pass "agent example configs shipped" || fail "no agent example configs"
/usr/sbin/custody-agent --version >/dev/null && pass "custody-agent --version runs" \
    || fail "custody-agent --version"
/usr/bin/custody --version >/dev/null && pass "custody --version runs" || fail "custody --version"

echo "== users and directories"
for u in custody-agent custody-coordinator; do
    if entry=$(getent passwd "$u"); then
        shell=${entry##*:}
        [ "$shell" = /usr/sbin/nologin ] && pass "user $u (shell $shell)" \
            || fail "user $u has shell $shell"
    else
        fail "user $u missing"
    fi
done
id -nG custody-agent | tr ' ' '\n' | grep -qx tss && pass "custody-agent is in group tss" \
    || fail "custody-agent is not in group tss"
expect /etc/custody d 755 root root
expect /etc/custody/token-pin f 600 root root
expect /var/lib/custody d 700 custody-agent custody-agent
expect /var/lib/custody/staging d 700 custody-agent custody-agent
expect /var/log/custody d 750 custody-agent custody-agent
expect /var/lib/custody-coordinator d 700 custody-coordinator custody-coordinator

echo "== SELinux file contexts match the installed paths"
while read -r spec _; do
    case "$spec" in '' | '#'*) continue ;; esac
    path=${spec%%(*}   # the literal part before any regular expression
    [ -e "$path" ] && pass "custody.fc: $spec" || fail "custody.fc names $path, which is not installed"
done <selinux/custody.fc

echo "== installed units verify (binaries present now)"
for u in custody-agent custody-coordinator; do
    out=$(systemd-analyze verify --man=no "/usr/lib/systemd/system/$u.service" 2>&1) || true
    [ -z "$out" ] && pass "$u.service verifies" || fail "$u.service: $out"
done

echo "== reinstall (postinst on an installed system)"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall "${debs[@]}" >>/tmp/test-debs-apt.log 2>&1 \
    && pass "reinstall" || { tail -20 /tmp/test-debs-apt.log; fail "reinstall"; }

echo "== purge"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "${pkgs[@]}" >>/tmp/test-debs-apt.log 2>&1 \
    || { tail -20 /tmp/test-debs-apt.log; fail "apt-get purge"; }
for p in "${pkgs[@]}"; do
    installed "$p" && fail "$p still installed" || pass "$p purged"
done
for path in /usr/sbin/custody-agent /usr/sbin/custody-coordinator /usr/bin/custody \
    /usr/lib/systemd/system/custody-agent.service /var/lib/custody /var/log/custody \
    /var/lib/custody-coordinator /etc/custody; do
    [ -e "$path" ] && fail "$path left after purge" || pass "$path gone"
done
for u in custody-agent custody-coordinator; do
    getent passwd "$u" >/dev/null && pass "user $u kept (Debian convention)" \
        || fail "user $u removed"
done

echo "test-debs: $failures failure(s) in $(($(date +%s) - start)) s"
[ "$failures" = 0 ]
