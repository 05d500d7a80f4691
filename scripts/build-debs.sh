#!/usr/bin/env bash
# Builds the Debian packages custody-agent, custody-coordinator and custody
# (the CLI) with plain dpkg-deb: nothing to install beyond dpkg-dev.
#
#   scripts/build-debs.sh            cargo build --release, then package
#   PROFILE=dev scripts/build-debs.sh    package debug binaries (quick tests)
#   SKIP_BUILD=1 …                   package the binaries already built
#   OUT=DIR …                        where the .debs go (default target/debian)
#   COMPRESS=xz|gzip|none …          dpkg-deb compression (default: xz for
#                                    release, gzip for dev: debug binaries are
#                                    ~100 MB and xz takes minutes on them)
#
# Each package holds its binary, man page (generated from the binary's own
# --help, see packaging/gen-man.py), and for the two services: the systemd
# unit, sysusers.d and tmpfiles.d files, example configs and drop-ins,
# docs/HARDENING.md, and the SELinux module (loaded by postinst only where
# SELinux is enabled). Prints each .deb's path and size.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

PROFILE=${PROFILE:-release}
OUT=${OUT:-target/debian}
case "$PROFILE" in
    release) bin_dir=target/release; cargo_profile=(--release); COMPRESS=${COMPRESS:-xz} ;;
    dev | debug) bin_dir=target/debug; cargo_profile=(); COMPRESS=${COMPRESS:-gzip} ;;
    *) echo "PROFILE must be release or dev" >&2; exit 2 ;;
esac

version=$(awk -F'"' '/^\[workspace.package\]/{w=1} w && /^version *=/{print $2; exit}' Cargo.toml)
arch=$(dpkg --print-architecture)
[ -n "$version" ] || { echo "no [workspace.package] version in Cargo.toml" >&2; exit 1; }
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build "${cargo_profile[@]}" -p custody-agent -p custody-coordinator -p custody-cli \
        --bin custody-agent --bin custody-coordinator --bin custody
fi
for b in custody-agent custody-coordinator custody; do
    [ -x "$bin_dir/$b" ] || { echo "missing $bin_dir/$b" >&2; exit 1; }
done

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
OUT="$stage/selinux" scripts/check-selinux.sh >/dev/null

# dpkg-shlibdeps needs a debian/control to read; it answers with the
# shared-library dependencies of the binary.
shlibs() {
    local dir
    dir=$(mktemp -d -p "$stage")
    mkdir "$dir/debian"
    printf 'Source: custody\n\nPackage: %s\nArchitecture: any\n' "$1" >"$dir/debian/control"
    (cd "$dir" && dpkg-shlibdeps -O -e "$2" 2>"$dir/log") | sed -n "s/^shlibs:Depends=//p"
}

# render TEMPLATE OUT key=value…: replaces @KEY@ placeholders.
render() {
    local template=$1 out=$2
    shift 2
    local text
    text=$(<"$template")
    for kv in "$@"; do
        text=${text//@${kv%%=*}@/${kv#*=}}
    done
    printf '%s\n' "$text" >"$out"
}

# put SRC DEST MODE: copies one file into the package tree.
put() {
    install -D -m "$3" "$1" "$pkgdir/$2"
}

# start PACKAGE: a fresh package tree.
start() {
    pkg=$1
    pkgdir="$stage/$pkg"
    mkdir -p "$pkgdir/DEBIAN"
    put packaging/copyright "usr/share/doc/$pkg/copyright" 0644
}

# man BINARY SECTION
man() {
    mkdir -p "$pkgdir/usr/share/man/man$2"
    python3 packaging/gen-man.py "$bin_dir/$1" "$2" "$pkgdir/usr/share/man/man$2/$1.$2.gz" \
        --version "$version"
    chmod 0644 "$pkgdir/usr/share/man/man$2/$1.$2.gz"
}

# finish PACKAGE BINARY DEPENDS-EXTRA SECTION DESCRIPTION…
finish() {
    local binary=$1 extra=$2 section=$3 summary=$4 long=$5
    local depends size
    depends=$(shlibs "$pkg" "$root/$binary")
    [ -n "$extra" ] && depends="${depends:+$depends, }$extra"
    (cd "$pkgdir" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' \
        | sort -z | xargs -0 md5sum) >"$pkgdir/DEBIAN/md5sums"
    chmod 0644 "$pkgdir/DEBIAN/md5sums"
    size=$(du -sk --exclude=DEBIAN "$pkgdir" | cut -f1)
    {
        echo "Package: $pkg"
        echo "Version: $version"
        echo "Architecture: $arch"
        echo "Maintainer: Custody maintainers <custody@example.invalid>"
        echo "Installed-Size: $size"
        [ -n "$depends" ] && echo "Depends: $depends"
        echo "Section: $section"
        echo "Priority: optional"
        echo "Homepage: https://example.invalid/custody"
        echo "Description: $summary"
        printf '%s\n' "$long" | fold -s -w 78 | sed 's/ *$//; s/^/ /; s/^ $/ ./'
    } >"$pkgdir/DEBIAN/control"
    mkdir -p "$OUT"
    local deb="$OUT/${pkg}_${version}_${arch}.deb"
    # Reproducible: fixed mtimes, root-owned entries.
    find "$pkgdir" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    dpkg-deb --root-owner-group "-Z$COMPRESS" --build "$pkgdir" "$deb" >/dev/null
    printf '%-48s %8s bytes\n' "$deb" "$(stat -c %s "$deb")"
}

# service_scripts USER HOME GECOS EXTRA_GROUPS PORTS RESTORECON PURGE_DIRS OTHER PURGE_IF_EMPTY
service_scripts() {
    local vars=(
        "PKG=$pkg" "USER=$1" "HOME=$2" "GECOS=$3" "EXTRA_GROUPS=$4" "PORTS=$5"
        "RESTORECON=$6" "PURGE_DIRS=$7" "OTHER_PKG=$8" "PURGE_IF_EMPTY=$9"
    )
    for script in postinst prerm postrm; do
        render "packaging/maintscripts/$script.in" "$pkgdir/DEBIAN/$script" "${vars[@]}"
        chmod 0755 "$pkgdir/DEBIAN/$script"
    done
    put "systemd/$pkg.service" "usr/lib/systemd/system/$pkg.service" 0644
    put "systemd/sysusers.d/$pkg.conf" "usr/lib/sysusers.d/$pkg.conf" 0644
    put "systemd/tmpfiles.d/$pkg.conf" "usr/lib/tmpfiles.d/$pkg.conf" 0644
    put "$stage/selinux/custody.pp" "usr/share/selinux/packages/$pkg/custody.pp" 0644
    put docs/HARDENING.md "usr/share/doc/$pkg/HARDENING.md" 0644
}

ports="custody_port_t:8443 custody_metrics_port_t:9464"

# ---------------------------------------------------------------- agent
start custody-agent
put "$bin_dir/custody-agent" usr/sbin/custody-agent 0755
man custody-agent 8
service_scripts custody-agent /var/lib/custody "Custody agent" tss "$ports" \
    "/usr/sbin/custody-agent /etc/custody /var/lib/custody /var/log/custody" \
    "/var/lib/custody /var/log/custody" custody-coordinator /etc/custody/token-pin
for f in agent/examples/*.toml; do
    [ -e "$f" ] && put "$f" "usr/share/doc/custody-agent/examples/$(basename "$f")" 0644
done
for f in systemd/examples/custody-agent.service.d/*.conf; do
    put "$f" "usr/share/doc/custody-agent/examples/custody-agent.service.d/$(basename "$f")" 0644
done
finish "$bin_dir/custody-agent" "adduser | systemd" admin \
    "Custody agent: key manager (HSM/TPM) and deploy target" \
    "Holds its server key in a PKCS#11 HSM or a TPM 2.0, re-wraps release keys for other servers, and decrypts and installs releases. Connects out to a Custody coordinator only; sandboxed with Landlock, seccomp and no privileges, under a hardened systemd unit."

# ---------------------------------------------------------- coordinator
start custody-coordinator
put "$bin_dir/custody-coordinator" usr/sbin/custody-coordinator 0755
man custody-coordinator 8
service_scripts custody-coordinator /var/lib/custody-coordinator "Custody coordinator" "" "$ports" \
    "/usr/sbin/custody-coordinator /etc/custody /var/lib/custody-coordinator" \
    "/var/lib/custody-coordinator" custody-agent ""
for f in coordinator/examples/*.toml; do
    [ -e "$f" ] && put "$f" "usr/share/doc/custody-coordinator/examples/$(basename "$f")" 0644
done
finish "$bin_dir/custody-coordinator" "adduser | systemd" admin \
    "Custody coordinator: release storage, key routing, approvals" \
    "Stores encrypted releases and wrapped keys, routes key operations between key managers and targets, runs deployment approvals and keeps a hash-chained audit log. Never sees a plaintext key."

# ------------------------------------------------------------------ CLI
start custody
put "$bin_dir/custody" usr/bin/custody 0755
man custody 1
finish "$bin_dir/custody" "" utils \
    "Custody command line: push, deploy, approve, audit" \
    "The command line for people and CI: encrypts and pushes releases, deploys and approves them, manages servers and verifies the audit log of a Custody coordinator."
