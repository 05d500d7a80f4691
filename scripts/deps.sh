#!/usr/bin/env bash
# Install the Debian packages Custody needs, only those missing.
# Idempotent; runs `apt-get update` at most once; uses sudo when not root.
set -euo pipefail

# Each line: package  # why
PKGS=$(sed -e 's/#.*//' "$(dirname "$0")/deps.txt" | xargs)

missing=()
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
