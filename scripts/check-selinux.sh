#!/usr/bin/env bash
# Compiles the SELinux policy module (selinux/) to custody.pp with the
# reference policy's devel Makefile (Debian: selinux-policy-dev), in a
# scratch copy so the source tree stays clean. With OUT=DIR, leaves
# custody.pp there (scripts/build-debs.sh uses this).
# Also refuses a policy that grants what the design forbids.
set -euo pipefail
cd "$(dirname "$0")/.."

devel=/usr/share/selinux/devel/Makefile
if [ ! -f "$devel" ]; then
    echo "check-selinux: $devel missing (apt-get install selinux-policy-dev)" >&2
    exit 1
fi

# Grants the policy must never contain.
forbidden='dac_override|dac_read_search|corenet_tcp_bind_all_ports|corenet_tcp_connect_all_ports|corenet_tcp_bind_all_unreserved_ports|sys_admin|sys_ptrace|setuid|setgid|net_bind_service'
if sed 's/#.*//' selinux/custody.te | grep -nE "$forbidden"; then
    echo "check-selinux: custody.te grants something forbidden (above)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp selinux/custody.te selinux/custody.fc selinux/custody.if "$work/"
if ! make -s -C "$work" -f "$devel" custody.pp >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    echo "check-selinux: custody.pp did not build" >&2
    exit 1
fi
if grep -iE '^(warning|error)|: warning:' "$work/build.log"; then
    echo "check-selinux: warnings while building (above)" >&2
    exit 1
fi
size=$(stat -c %s "$work/custody.pp")
echo "selinux   custody.pp built ($size bytes)"
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    cp "$work/custody.pp" "$OUT/custody.pp"
fi
