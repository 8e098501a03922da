#!/usr/bin/env bash
# The namespace tests that depend on the distribution, run against another
# Debian release's PAM and shadow-utils: the test binary built here runs in a
# clean root of that release (debootstrap --variant=minbase, chroot, in a
# private mount namespace), where every tool it drives — pam_unix through
# pamtester, passwd, chpasswd, pwck, useradd, su, sshd, pam_faillock,
# pam_pwhistory, login.defs — is that release's own.
#
#   scripts/compat-test.sh [RELEASE] [TEST FILTER...]   default: trixie, and
#                                                       the filters below
#
# What is compared: the hash method credsync chooses against what passwd
# writes there; pam_faillock's and pam_pwhistory's files; chpasswd and passwd
# through PAM with pam_credsync.so; the lock protocol beside that release's
# shadow-utils; the service, credsyncd, with that release's PAM (the
# policy's minimum age among its refusals). Run as root, after
# `cargo build --workspace --features fault-injection` (scripts/test.sh does
# both). The root's tarball is cached in $CREDSYNC_CACHE
# (default /var/cache/credsync-test), one per release and month.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."
repo=$(pwd)

fail() {
    echo "compat-test: FAILED: $*" >&2
    exit 1
}

if [ "${1:-}" = "--in-namespace" ]; then
    shift
    root=$1 tests=$2
    shift 2
    # The root a mount point of its own: the tests' `unshare --mount` makes
    # "/" private, which only a mount point can be.
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --rbind /sys "$root/sys"
    mount -t tmpfs -o mode=0755 tmpfs "$root/run"
    mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
    mkdir -p "$root$repo"
    mount --bind "$repo" "$root$repo"
    # The test binary, its setuid copies and its sandboxes, all under the
    # repository's path and /tmp, as on the host.
    exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 CI="${CI:-}" "$tests" --test-threads=2 "$@"
fi

[ "$(id -u)" -eq 0 ] || fail "run as root (debootstrap, chroot, mount namespaces)"
release=${1:-trixie}
shift || true
filters=("$@")
if [ ${#filters[@]} -eq 0 ]; then
    filters=(
        hash_written_by_credsync_is_yescrypt_and_pam_unix_accepts_it
        password_set_by_real_passwd_is_adopted
        sha512_hash_from_chpasswd_is_adopted_and_verified
        chpasswd_recovery_is_adopted_by_sync
        waits_for_the_shadow_utils_lock_and_reports_busy
        user_changes_own_password_with_passwd
        concurrency::
        lockout::
        policy::
        pam_module::
        api::
    )
fi
if ! command -v debootstrap >/dev/null; then
    echo "compat-test: installing debootstrap" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null
    apt-get install -y -qq --no-install-recommends debootstrap </dev/null >/dev/null
fi

# The test binary cargo built for tests/system.rs.
tests=$(cargo test --locked --features fault-injection --test system --no-run \
    --message-format=json 2>/dev/null \
    | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "system" and m.get("executable"):
        print(m["executable"])')
[ -x "$tests" ] || fail "the system test binary was not built"

# What the tests drive, in the release's own packages.
include=util-linux,mount,coreutils,pamtester,passwd,login,python3,sqlite3,openssh-server,openssh-client,libpam-modules,libpam-pwquality,cracklib-runtime,libpwquality1,libaudit1,procps
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${CREDSYNC_CACHE:-/var/cache/credsync-test}
key=$(printf '%s %s' "$mirror" "$include" | md5sum | cut -c1-12)
tarball=$cache/$release-compat-$(date -u +%Y-%m)-$key.tgz
work=$(mktemp -d /tmp/credsync-compat.XXXXXX)
trap 'rm -rf --one-file-system "$work"' EXIT
if [ ! -s "$tarball" ]; then
    echo "compat-test: downloading $release minbase with the test tools once (cached in $tarball)" >&2
    mkdir -p "$cache"
    part=$(mktemp "$tarball.XXXXXX")
    unshare --mount --propagation private debootstrap --variant=minbase --include="$include" \
        --make-tarball="$part" "$release" "$work/download" "$mirror" >"$work/debootstrap.log" 2>&1 || {
        rm -f "$part"
        tail -n 20 "$work/debootstrap.log" >&2
        fail "debootstrap --make-tarball $release"
    }
    rm -rf "$work/download"
    mv "$part" "$tarball"
    find "$cache" -maxdepth 1 -name "$release-compat-*.tgz" ! -path "$tarball" -delete
fi
root=$work/root
unshare --mount --propagation private debootstrap --variant=minbase --include="$include" \
    --unpack-tarball="$tarball" "$release" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    fail "debootstrap --unpack-tarball $release"
}
versions=$(chroot "$root" dpkg-query -W -f='${Package} ${Version}\n' \
    libpam-modules passwd login libc6 2>/dev/null | paste -sd, - | sed 's/,/, /g')
echo "compat-test: $release root: $versions" >&2
unshare --mount --propagation private "$self" --in-namespace "$root" "$tests" "${filters[@]}"
