#!/usr/bin/env bash
# The packages, proven. Builds the .debs and the .rpms of credsync,
# credsync-web and credsync-fleet (cargo xtask deb|rpm), checks each .deb with lintian
# (pedantic; no tag left but the overrides, which give their reasons) and
# that each .rpm holds the same files with the same modes, then installs the
# .debs into a clean Debian 12 and a clean Debian 13 (debootstrap
# --variant=minbase bookworm, then trixie) and runs the appliance story in
# each with the installed files only: recovery, pamtester through the installed
# /etc/pam.d/credsync, a self-service change through the setuid binary, the
# boot unit's command in the unit's own sandbox, the web page's unit's
# command as its own user in its sandbox, logging in through credsyncd with
# the shipped configuration, `credsync fleet` handed over to credsync-fleet
# and the fleet agent's unit's command in its sandbox, the service through its
# socket (and, on Debian 13, through systemd's own varlinkctl), the man
# pages, the completions, dpkg-statoverride, an upgrade, remove and purge.
#
#   scripts/install-test.sh [RELEASE...]    default: bookworm trixie
#
# Run as root (debootstrap, chroot, mount namespaces). The host is not
# touched: the root is a temporary directory, and every mount lives in a
# private mount namespace. debootstrap's tarball is cached in
# $CREDSYNC_CACHE (default /var/cache/credsync-test), so only the first run
# downloads; DEBIAN_MIRROR picks the mirror.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."

if [ "${1:-}" = "--in-namespace" ]; then
    in_namespace=yes
else
    in_namespace=
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-test: run as root (debootstrap, chroot, mount namespaces)" >&2
        exit 1
    fi
    extra_packages=(
        debootstrap # the clean Debian 12 and 13 roots
        lintian     # checks the .deb
        rpm         # rpm -qlp: the .rpm's file list
        binutils    # readelf: the binaries' NEEDED libraries
    )
    source scripts/setup.sh
fi

step() { printf '\n== %s\n' "$*"; }
fail() {
    echo "install-test: FAILED: $*" >&2
    exit 1
}
# expect CODE COMMAND...: runs COMMAND (stdin passed on) and checks its exit code.
expect() {
    local want=$1 got=0
    shift
    "$@" || got=$?
    [ "$got" = "$want" ] || fail "'$*' exited $got, expected $want"
}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
built=target/packages
deb=$built/credsync_${version}-1_${arch}.deb
deb_next=$built/credsync_${version}-2_${arch}.deb
rpm=$built/credsync-${version}-1.$(uname -m).rpm
# The web page's package, with its own version.
web_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' crates/credsync-web/Cargo.toml | head -n 1)
web_deb=$built/credsync-web_${web_version}-1_${arch}.deb
web_rpm=$built/credsync-web-${web_version}-1.$(uname -m).rpm
# The fleet's package, with its own version.
fleet_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' crates/credsync-fleet/Cargo.toml | head -n 1)
fleet_deb=$built/credsync-fleet_${fleet_version}-1_${arch}.deb
fleet_rpm=$built/credsync-fleet-${fleet_version}-1.$(uname -m).rpm
# The root: minbase, plus what an appliance has (systemd) and what the story
# uses (pamtester, man, bash completion; cracklib's dictionary for the
# policy's site rules).
include=systemd,pamtester,man-db,libpwquality1,cracklib-runtime,libpam-modules,init-system-helpers,bash-completion
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# ---- outside the namespace: build and check the packages ----------------------

if [ -z "$in_namespace" ]; then
    started=$SECONDS
    step "building the packages"
    rm -rf "$built" target/debian target/generate-rpm
    mkdir -p "$built"
    cargo xtask deb
    cp target/debian/"$(basename "$deb")" "$deb"
    cp target/debian/"$(basename "$web_deb")" "$web_deb"
    cp target/debian/"$(basename "$fleet_deb")" "$fleet_deb"
    cargo xtask rpm
    cp target/generate-rpm/"$(basename "$rpm")" "$rpm"
    cp target/generate-rpm/"$(basename "$web_rpm")" "$web_rpm"
    cp target/generate-rpm/"$(basename "$fleet_rpm")" "$fleet_rpm"
    # The same package one revision later, for the upgrade test.
    cargo deb --locked --no-build --deb-revision 2 --output "$deb_next" >/dev/null
    for package in "$deb" "$deb_next" "$rpm" "$web_deb" "$web_rpm" "$fleet_deb" "$fleet_rpm"; do
        [ -s "$package" ] || fail "$package was not built"
    done
    ls -l "$deb" "$rpm" "$web_deb" "$web_rpm" "$fleet_deb" "$fleet_rpm"

    step "lintian"
    for package in "$deb" "$web_deb" "$fleet_deb"; do
        lintian --pedantic --fail-on error,warning,info,pedantic --show-overrides "$package" 2>&1 \
            | grep -v '^running with root privileges' || true
        lintian --pedantic --fail-on error,warning,info,pedantic "$package" >/dev/null 2>&1 \
            || fail "lintian reports tags on $package (run: lintian --pedantic $package)"
        echo "lintian $(basename "$package"): no errors, warnings, info or pedantic tags"
    done

    step "each .rpm holds its .deb's files, with the same modes and owners"
    # Debian-only files (copyright, changelog, lintian's overrides, the
    # pam-auth-update profile) are left out; zsh's directory and the PAM
    # modules' are each distribution's own (Debian's modules are 0644,
    # Fedora's 0755).
    deb_files() {
        dpkg-deb -c "$1" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $1, $2, $6 }' \
            | sed -e 's| 0/0 | root/root |' \
                -e 's|/usr/share/zsh/vendor-completions/|/usr/share/zsh/site-functions/|' \
                -e 's|^-rw-r--r-- \(.*\) /usr/lib/x86_64-linux-gnu/security/|-rwxr-xr-x \1 /usr/lib64/security/|' \
            | grep -v -e ' /usr/share/doc/[^/]*/copyright$' \
                -e ' /usr/share/doc/[^/]*/changelog.Debian.gz$' \
                -e ' /usr/share/lintian/' \
                -e ' /usr/share/pam-configs/' \
            | sort
    }
    rpm_files() { rpm -qlpv "$1" | awk '{ print $1, $3 "/" $4, $9 }' | sort; }
    deb_files "$deb" >target/deb-files.txt
    rpm_files "$rpm" >target/rpm-files.txt
    diff -u target/deb-files.txt target/rpm-files.txt \
        || fail "the .deb and the .rpm differ (above: - .deb, + .rpm)"
    echo "credsync: $(wc -l <target/rpm-files.txt) files alike, /usr/bin/credsync $(grep ' /usr/bin/credsync$' target/rpm-files.txt | cut -d' ' -f1) in both"
    deb_files "$web_deb" >target/web-deb-files.txt
    rpm_files "$web_rpm" >target/web-rpm-files.txt
    diff -u target/web-deb-files.txt target/web-rpm-files.txt \
        || fail "credsync-web's .deb and .rpm differ (above: - .deb, + .rpm)"
    echo "credsync-web: $(wc -l <target/web-rpm-files.txt) files alike"
    # cargo-generate-rpm takes a script's path it cannot find for the
    # script itself: the post-install script must be the file, which makes
    # the user.
    rpm -qp --scripts "$web_rpm" | grep -q 'systemd-sysusers credsync-web.conf' \
        || fail "credsync-web's .rpm does not make its user at install"
    deb_files "$fleet_deb" >target/fleet-deb-files.txt
    rpm_files "$fleet_rpm" >target/fleet-rpm-files.txt
    diff -u target/fleet-deb-files.txt target/fleet-rpm-files.txt \
        || fail "credsync-fleet's .deb and .rpm differ (above: - .deb, + .rpm)"
    echo "credsync-fleet: $(wc -l <target/fleet-rpm-files.txt) files alike"
    # The agent's unit enabled at install, and never started by the package.
    rpm -qp --scripts "$fleet_rpm" >target/fleet-rpm-scripts.txt
    grep -q 'systemctl enable credsync-fleet.service' target/fleet-rpm-scripts.txt \
        || fail "credsync-fleet's .rpm does not enable its unit at install"
    ! grep -v '^[[:space:]]*#' target/fleet-rpm-scripts.txt | grep -q -e 'enable --now' -e 'systemctl start' \
        || fail "credsync-fleet's .rpm starts its unit at install"

    work=$(mktemp -d /tmp/credsync-install.XXXXXX)
    # Every mount was in the namespace, gone with it; --one-file-system all the same.
    trap 'rm -rf --one-file-system "$work"' EXIT
    cp "$deb" "$work/credsync.deb"
    cp "$deb_next" "$work/credsync-next.deb"
    cp "$web_deb" "$work/credsync-web.deb"
    cp "$fleet_deb" "$work/credsync-fleet.deb"
    releases=("$@")
    [ ${#releases[@]} -gt 0 ] || releases=(bookworm trixie)
    for release in "${releases[@]}"; do
        # One tarball per release, month, mirror and package list: the clean
        # root follows the point releases, and older tarballs are removed.
        cache=${CREDSYNC_CACHE:-/var/cache/credsync-test}
        key=$(printf '%s %s' "$mirror" "$include" | md5sum | cut -c1-12)
        tarball=$cache/$release-minbase-$(date -u +%Y-%m)-$key.tgz
        if [ ! -s "$tarball" ]; then
            step "downloading $release minbase once (cached in $tarball)"
            mkdir -p "$cache"
            part=$(mktemp "$tarball.XXXXXX")
            unshare --mount --propagation private debootstrap --variant=minbase \
                --include="$include" --make-tarball="$part" "$release" "$work/download" "$mirror" \
                >"$work/debootstrap.log" 2>&1 || {
                rm -f "$part"
                tail -n 20 "$work/debootstrap.log" >&2
                fail "debootstrap --make-tarball $release (mirror $mirror)"
            }
            rm -rf "$work/download"
            mv "$part" "$tarball"
            find "$cache" -maxdepth 1 -name "$release-minbase-*.tgz" ! -path "$tarball" -delete
        fi
        mkdir -p "$work/$release"
        unshare --mount --propagation private "$self" --in-namespace "$work" "$tarball" "$release"
    done
    echo
    echo "install-test: passed on ${releases[*]} in $((SECONDS - started)) s"
    exit 0
fi

# ---- inside a private mount namespace: the clean root and the story ------------

work=$2
tarball=$3
release=$4
root=$work/$release/root
# The release's name for people, and its suite for debootstrap.
case "$release" in
    bookworm) debian="Debian 12" ;;
    trixie) debian="Debian 13" ;;
    *) debian="Debian ($release)" ;;
esac

step "a clean $debian (debootstrap --variant=minbase $release)"
debootstrap --variant=minbase --include="$include" --unpack-tarball="$tarball" \
    "$release" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    fail "debootstrap --unpack-tarball"
}
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
mkdir -p "$root/run/lock"
cp "$work/credsync.deb" "$work/credsync-next.deb" "$work/credsync-web.deb" "$work/credsync-fleet.deb" "$root/tmp/"

# Runs a command in the root with a clean environment.
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"; }
# The mode and owners of a path in the root.
mode_of() { stat -c '%a %U %G' "$root$1"; }
# Does pam_unix, through the installed /etc/pam.d/credsync, take USER's PASSWORD?
pam_takes() { printf '%s\n' "$2" | in_root pamtester credsync "$1" authenticate >/dev/null 2>&1; }
# `credsync verify` as the application would run it: its exit code.
verify_code() {
    local code=0
    printf '%s\n' "$2" | in_root credsync verify "$1" --stdin 2>/dev/null || code=$?
    echo "$code"
}

first='Kq7#vLp2xZ!m'
second='Wd4%nRt8yHc@'
third='Pz6&mQw3eTb^'

step "dpkg -i"
in_root dpkg -i /tmp/credsync.deb >/dev/null
[ "$(mode_of /usr/bin/credsync)" = "4755 root root" ] || fail "/usr/bin/credsync is $(mode_of /usr/bin/credsync), not 4755 root root"
[ "$(mode_of /var/lib/credsync)" = "700 root root" ] || fail "/var/lib/credsync is $(mode_of /var/lib/credsync), not 700 root root"
conffiles=$(in_root dpkg-query -W -f='${Conffiles}' credsync)
for file in /etc/pam.d/credsync /etc/credsync/credsync.toml; do
    grep -q " $file " <<<"$conffiles" || fail "$file is not a conffile"
done
[ -L "$root/etc/systemd/system/multi-user.target.wants/credsync-sync.service" ] \
    || fail "credsync-sync.service is not enabled for multi-user.target"
# Enabled for boot, but dpkg never runs it: not at install, and not again,
# behind the running application, on an upgrade.
for script in postinst prerm postrm; do
    ! grep -q -e 'deb-systemd-invoke \(start\|restart\|try-restart\).*credsync-sync' "$root/var/lib/dpkg/info/credsync.$script" \
        || fail "the $script starts credsync-sync.service"
done
grep -q '^features: none' <<<"$(in_root credsync --version)" || fail "the installed binary is not a release build"
echo "installed: /usr/bin/credsync 4755, /var/lib/credsync 0700, conffiles, unit enabled"
module=/usr/lib/x86_64-linux-gnu/security/pam_credsync.so
[ -f "$root$module" ] || fail "$module is not installed"

step "dpkg -i credsync-web"
in_root dpkg -i /tmp/credsync-web.deb >/dev/null
[ "$(mode_of /usr/sbin/credsync-web)" = "755 root root" ] || fail "/usr/sbin/credsync-web is $(mode_of /usr/sbin/credsync-web), not 755 root root"
grep -q ' /etc/credsync/web.toml ' <<<"$(in_root dpkg-query -W -f='${Conffiles}' credsync-web)" \
    || fail "/etc/credsync/web.toml is not a conffile"
# The system user, made by systemd-sysusers from the package's sysusers.d
# file: its own group, no home, no shell.
account=$(in_root getent passwd credsync-web) || fail "the package made no user credsync-web"
[ "$(cut -d: -f6- <<<"$account")" = "/nonexistent:/usr/sbin/nologin" ] || fail "credsync-web's account: $account"
[ "$(in_root id -gn credsync-web)" = credsync-web ] || fail "credsync-web's group is $(in_root id -gn credsync-web)"
[ "$(cut -d: -f3 <<<"$account")" -lt 1000 ] || fail "credsync-web is not a system user: $account"
[ -L "$root/etc/systemd/system/multi-user.target.wants/credsync-web.service" ] \
    || fail "credsync-web.service is not enabled for multi-user.target"
# Started at install where systemd runs (this root has none, so
# deb-systemd-invoke leaves it).
grep -q 'deb-systemd-invoke .*credsync-web.service' "$root/var/lib/dpkg/info/credsync-web.postinst" \
    || fail "the postinst does not start credsync-web.service"
refusal=$(expect 3 in_root credsync-web 2>&1)
grep -q 'refusing to run as root' <<<"$refusal" || fail "credsync-web as root: $refusal"
echo "installed: /usr/sbin/credsync-web 755, web.toml a conffile, system user credsync-web:credsync-web, unit enabled; as root it refuses (exit 3)"

step "dpkg -i credsync-fleet"
in_root dpkg -i /tmp/credsync-fleet.deb >/dev/null
# Beside /usr/bin/credsync, where `credsync fleet` looks for it; root only
# runs it, so no setuid bit.
[ "$(mode_of /usr/bin/credsync-fleet)" = "755 root root" ] || fail "/usr/bin/credsync-fleet is $(mode_of /usr/bin/credsync-fleet), not 755 root root"
for file in /usr/lib/systemd/system/credsync-fleet.service /usr/share/man/man8/credsync-fleet.8.gz \
    /usr/share/doc/credsync-fleet/fleet.toml.example; do
    [ "$(mode_of "$file")" = "644 root root" ] || fail "$file is $(mode_of "$file"), not 644 root root"
done
# No fleet.toml: the unit's condition keeps a host that is not a fleet node
# out, and a shipped file would start the agent with the example's values.
[ ! -e "$root/etc/credsync/fleet.toml" ] || fail "the package made /etc/credsync/fleet.toml"
[ -z "$(in_root dpkg-query -W -f='${Conffiles}' credsync-fleet)" ] || fail "credsync-fleet has conffiles"
grep -qx 'ConditionPathExists=/etc/credsync/fleet.toml' "$root/usr/lib/systemd/system/credsync-fleet.service" \
    || fail "credsync-fleet.service does not wait for /etc/credsync/fleet.toml"
[ -L "$root/etc/systemd/system/multi-user.target.wants/credsync-fleet.service" ] \
    || fail "credsync-fleet.service is not enabled for multi-user.target"
# Enabled, never started at install; an upgrade restarts a running agent.
! grep -q 'deb-systemd-invoke \(start\|restart\)' "$root/var/lib/dpkg/info/credsync-fleet.postinst" \
    || fail "the postinst starts credsync-fleet.service"
grep -q 'deb-systemd-invoke try-restart credsync-fleet.service' "$root/var/lib/dpkg/info/credsync-fleet.postinst" \
    || fail "the postinst does not restart a running agent on an upgrade"
echo "installed: /usr/bin/credsync-fleet 755, its unit (enabled, not started), its man page and fleet.toml.example; no /etc/credsync/fleet.toml"

step "the .debs' Depends hold on $debian"
# dpkg -i refused nothing, so each Depends is satisfied here; and each shared
# library the binaries name (their ELF NEEDED entries) is resolved in
# this root by a package their package's Depends name: the check
# dpkg-shlibdeps made when the .deb was built, redone against this
# release's packages.
depends_cover() { # depends_cover DEB BINARY...
    local deb=$1 depends binary libraries soname library owner
    depends=$(dpkg-deb -f "$deb" Depends)
    shift
    for binary in "$@"; do
        libraries=$(in_root ldd "$binary") || fail "ldd $binary failed"
        ! grep -q 'not found' <<<"$libraries" || fail "$binary on $debian: $(grep 'not found' <<<"$libraries")"
        for soname in $(readelf -d "$root$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            library=$(awk -v so="$soname" '$1 == so && $2 == "=>" { print $3 }' <<<"$libraries")
            [ -n "$library" ] || continue # the dynamic loader itself
            owner=$(in_root dpkg -S "$(in_root readlink -f "$library")" 2>/dev/null | head -n 1 | cut -d: -f1) \
                || owner=$(in_root dpkg -S "$library" | head -n 1 | cut -d: -f1)
            [ -n "$owner" ] || fail "no package owns $library"
            grep -Eq "(^|[ ,|])$owner([ ,(]|$)" <<<"$depends" \
                || fail "$binary needs $soname from $owner, which the Depends don't name: $depends"
        done
    done
    echo "$(dpkg-deb -f "$deb" Package) Depends: $depends"
}
depends_cover "$work/credsync.deb" /usr/bin/credsync /usr/sbin/credsyncd "$module"
depends_cover "$work/credsync-web.deb" /usr/sbin/credsync-web
depends_cover "$work/credsync-fleet.deb" /usr/bin/credsync-fleet
grep -q $'^password\toptional\tpam_credsync.so' "$root/etc/pam.d/common-password" \
    || fail "pam-auth-update did not put pam_credsync.so in common-password"
echo "pam_credsync.so installed, and in common-password's Additional block"

step "the appliance story: root recovers admin's lost password"
in_root useradd --create-home --shell /bin/sh admin
printf '%s\n' "$first" | expect 0 in_root credsync recover admin --stdin --expire
pam_takes admin "$first" || fail "pam_unix refuses the recovered password"
cp -p "$root/etc/shadow" "$work/shadow.recovered"
[ "$(verify_code admin "$first")" = 11 ] || fail "verify: the recovered password is not marked must-change"
echo "pamtester credsync admin authenticate: ok; verify: must change (exit 11)"

step "admin changes the password through the setuid binary"
printf '%s\n%s\n' "$first" "$second" \
    | expect 0 in_root setpriv --reuid=admin --regid=admin --init-groups credsync passwd --stdin
pam_takes admin "$second" || fail "pam_unix refuses admin's new password"
! pam_takes admin "$first" || fail "pam_unix still takes the old password"
[ "$(verify_code admin "$second")" = 0 ] || fail "verify refuses admin's new password"
echo "both stores take the new password, and only it"

step "pam_credsync.so: real passwd keeps the record in step"
printf '%s\n%s\n' "$third" "$third" | expect 0 in_root passwd admin
status=$(in_root credsync --json status admin)
grep -q '"state":"in-sync"' <<<"$status" || fail "after passwd the record is not in sync: $status"
grep -q '"source":"pam"' <<<"$status" || fail "the record did not follow passwd: $status"
[ "$(verify_code admin "$third")" = 0 ] || fail "verify refuses the password passwd set"
printf '%s\n%s\n' "$second" "$second" | expect 0 in_root passwd admin
echo "passwd changed both stores: in-sync, source pam"

# The unit's command, run as the unit runs it: ProtectSystem=strict (all
# read-only but /dev, /proc, /sys and ReadWritePaths), ProtectHome,
# PrivateTmp, NoNewPrivileges, CapabilityBoundingSet and User/Group, read
# from the installed unit file ($unit); every system call it makes is traced
# and checked against its SystemCallFilter.
unit=$root/usr/lib/systemd/system/credsync-sync.service
run_unit_command() {
    local exec_start caps writable identity trace
    exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
    caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr ' ' '\n' | sed '/^$/d' \
        | sed -e 's/^CAP_//' -e 's/^/+/' | tr 'A-Z' 'a-z' | paste -sd, -)
    writable=$(sed -n 's/^ReadWritePaths=//p' "$unit")
    # systemd's User= with Group=: that uid and gid, and the user's groups.
    identity=$(sed -n 's/^User=//p' "$unit")
    [ -z "$identity" ] || identity="--reuid=$identity --regid=$(sed -n 's/^Group=//p' "$unit") --init-groups"
    trace=$work/trace
    rm -rf "$trace" && mkdir "$trace"
    grep -qx 'ProtectSystem=strict' "$unit" || fail "the unit no longer says ProtectSystem=strict"
    unshare --mount --propagation private bash -euo pipefail -c '
        root=$1 caps=$2 writable=$3 trace=$4 identity=$5
        shift 5
        for path in $writable; do
            optional=${path%%[!-]*}; path=${path#-}
            if [ -e "$root$path" ]; then mount --bind "$root$path" "$root$path"
            elif [ -z "$optional" ]; then echo "ReadWritePaths: $path is missing" >&2; exit 1; fi
        done
        for path in /home /root /run/user; do
            [ -d "$root$path" ] && mount -t tmpfs -o ro,mode=0000 tmpfs "$root$path"
        done
        for path in /tmp /var/tmp; do mount -t tmpfs -o mode=1777 tmpfs "$root$path"; done
        mount --rbind "$root" "$root"
        # Read-only everything but the API file systems and ReadWritePaths.
        findmnt -rn -o TARGET -R "$root" | while read -r mnt; do
            rel=${mnt#"$root"}
            case "$rel" in /proc|/proc/*|/dev|/dev/*|/sys|/sys/*|/tmp|/var/tmp) continue ;; esac
            for path in $writable; do [ "$rel" = "${path#-}" ] && continue 2; done
            mount -o remount,bind,ro "$mnt"
        done
        exec strace -ff -qq -o "$trace/call" chroot "$root" \
            /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
            setpriv $identity --no-new-privs --bounding-set="-all${caps:+,$caps}" --inh-caps=-all "$@"
    ' sandbox "$root" "$caps" "$writable" "$trace" "$identity" $exec_start
}

# The system calls of the traced run that its SystemCallFilter would refuse.
calls_outside_filter() {
    local filter binary
    filter=$(sed -n 's/^SystemCallFilter=//p' "$unit")
    binary=$(sed -n 's/^ExecStart=//p' "$unit" | cut -d' ' -f1)
    in_root systemd-analyze syscall-filter >"$work/filters.txt" 2>/dev/null
    python3 - "$work/filters.txt" "$filter" "$work/trace" "$binary" <<'PY'
import glob, re, sys
# `systemd-analyze syscall-filter`: each group at the start of a line, its
# members (system calls and other groups) indented below it.
groups, current = {}, None
for line in open(sys.argv[1]):
    name = line.strip()
    if not name or name.startswith("#"):
        continue
    if not line[0].isspace():
        current = groups.setdefault(name, [])
    elif current is not None:
        current.append(name)
def expand(name, seen=()):
    if not name.startswith("@"):
        return {name}
    out = set()
    for member in groups.get(name, []):
        if member not in seen:
            out |= expand(member, seen + (name,))
    return out
# An allow-list always takes @default too, as systemd adds it; a later
# SystemCallFilter=~ line takes its calls out again.
allowed, denied = expand("@default"), set()
for line in sys.argv[2].splitlines():
    if line.startswith("~"):
        for name in line[1:].split():
            denied |= expand(name)
    else:
        for name in line.split():
            allowed |= expand(name)
allowed -= denied
if not allowed:
    sys.exit("no system calls found for the filter " + sys.argv[2])
made = set()
for path in glob.glob(sys.argv[3] + "/call.*"):
    lines = open(path).read().splitlines()
    starts = [i for i, l in enumerate(lines) if l.startswith('execve("%s"' % sys.argv[4])]
    if starts:
        lines = lines[starts[-1]:]
    elif any(l.startswith("execve(") for l in lines):
        continue  # chroot and setpriv, before the exec
    for l in lines:
        m = re.match(r"(\w+)\(", l)
        if m:
            made.add(m.group(1))
if "execve" not in made:
    sys.exit("the trace holds no run of " + sys.argv[4])
print(" ".join(sorted(made - allowed)))
PY
}

step "boot: the unit's command restores a rolled-back /etc/shadow, in the unit's sandbox"
# An image from before admin's own change: its hash is the recovered one.
cp -p "$work/shadow.recovered" "$root/etc/shadow"
# The rollback: the record holds the second password; sync must restore it.
grep -q admin <<<"$(in_root credsync sync --dry-run)" || fail "sync --dry-run does not see admin's rollback"
run_unit_command >"$work/sync.out" 2>&1 || {
    cat "$work/sync.out" >&2
    fail "the unit's ExecStart failed in the unit's sandbox"
}
cat "$work/sync.out"
pam_takes admin "$second" || fail "sync did not restore admin's password in /etc/shadow"
[ "$(mode_of /etc/shadow)" = "640 root shadow" ] || fail "/etc/shadow is $(mode_of /etc/shadow) after sync"
outside=$(calls_outside_filter)
[ -z "$outside" ] || fail "credsync sync made system calls outside the unit's SystemCallFilter: $outside"
echo "restored under the unit's sandbox; every system call inside its SystemCallFilter"

step "boot: a deliberate change on the Linux side is adopted, in the unit's sandbox"
in_root chpasswd <<<"admin:$third"
run_unit_command >"$work/sync.out" 2>&1 || {
    cat "$work/sync.out" >&2
    fail "the unit's ExecStart failed in the unit's sandbox"
}
cat "$work/sync.out"
[ "$(verify_code admin "$third")" = 0 ] || fail "sync did not adopt the password set with chpasswd"
echo "verify takes the password chpasswd set"

step "boot: the same, with /etc/shadow closed even to root (mode 0000, as on Fedora)"
in_root chpasswd <<<"admin:$second"
chmod 0000 "$root/etc/shadow" "$root/etc/shadow-"
run_unit_command >"$work/sync.out" 2>&1 || {
    cat "$work/sync.out" >&2
    fail "the unit's ExecStart failed in the unit's sandbox with /etc/shadow at 0000"
}
cat "$work/sync.out"
[ "$(mode_of /etc/shadow)" = "0 root shadow" ] || fail "/etc/shadow is $(mode_of /etc/shadow) after sync"
[ "$(verify_code admin "$second")" = 0 ] || fail "sync did not adopt the password set with chpasswd"
chmod 0640 "$root/etc/shadow" "$root/etc/shadow-"
echo "adopted; /etc/shadow still 0000"

step "the unit file"
in_root systemd-analyze verify /usr/lib/systemd/system/credsync-sync.service \
    || fail "systemd-analyze verify"
in_root systemd-analyze security --offline=yes credsync-sync.service 2>/dev/null | tail -n 1

step "man pages and completions"
for page in credsync credsync-recover credsync-sync credsync-api pam_credsync credsyncd credsync-web credsync-fleet "5 credsync.toml"; do
    # shellcheck disable=SC2086 # "5 credsync.toml" is two words on purpose
    in_root env MANPAGER=cat MANWIDTH=80 man $page >"$work/page.txt" 2>"$work/page.err" \
        || fail "man $page: $(cat "$work/page.err")"
    [ -s "$work/page.txt" ] && ! [ -s "$work/page.err" ] || fail "man $page renders with errors: $(cat "$work/page.err")"
done
grep -q 'EXIT STATUS' <<<"$(in_root env MANPAGER=cat MANWIDTH=80 man credsync)" || fail "credsync(8) has no EXIT STATUS"
in_root bash -c '. /usr/share/bash-completion/completions/credsync && complete -p credsync' >/dev/null \
    || fail "the bash completion does not load"
for file in /usr/share/zsh/vendor-completions/_credsync /usr/share/fish/vendor_completions.d/credsync.fish; do
    [ -s "$root$file" ] || fail "$file is missing"
done
echo "man credsync, credsync-recover, credsync-sync, credsync-api, pam_credsync, credsyncd, credsync-web, credsync-fleet, credsync.toml(5) render; bash, zsh, fish completions in place"

step "dpkg-statoverride turns the setuid bit off, and it stays off across a reinstall"
in_root dpkg-statoverride --update --add root root 0755 /usr/bin/credsync
in_root dpkg -i /tmp/credsync.deb >/dev/null
[ "$(mode_of /usr/bin/credsync)" = "755 root root" ] || fail "the override did not hold: $(mode_of /usr/bin/credsync)"
# A here-string, not a pipe: credsync refuses before it reads, and a
# printf still writing into the closed pipe would die of SIGPIPE.
refusal=$(expect 1 in_root setpriv --reuid=admin --regid=admin --init-groups credsync passwd --stdin \
    2>&1 <<<"$third"$'\n'"$first")
grep -q 'must run as root' <<<"$refusal" || fail "a user's change without setuid: $refusal"
in_root dpkg-statoverride --remove /usr/bin/credsync
in_root dpkg -i /tmp/credsync.deb >/dev/null
[ "$(mode_of /usr/bin/credsync)" = "4755 root root" ] || fail "setuid not back after the override went"
echo "0755 with the override (a user's change refused, exit 1), 4755 again without"

step "an upgrade keeps the store and the administrator's configuration"
sed -i 's/^# min_length = 8 /min_length = 10/' "$root/etc/credsync/credsync.toml"
grep -q '^min_length = 10' "$root/etc/credsync/credsync.toml" || fail "could not edit the configuration"
in_root dpkg -i /tmp/credsync-next.deb >/dev/null
[ "$(in_root dpkg-query -W -f='${Version}' credsync)" = "${version}-2" ] || fail "the upgrade did not install"
grep -q '^min_length = 10' "$root/etc/credsync/credsync.toml" || fail "the upgrade lost the configuration edit"
[ "$(verify_code admin "$second")" = 0 ] || fail "the upgrade lost the store"
echo "upgraded to ${version}-2; min_length = 10 kept; verify still takes admin's password"

socket_unit=$root/usr/lib/systemd/system/credsync-api.socket
service_unit=$root/usr/lib/systemd/system/credsync-api.service
api_socket=$(sed -n 's/^ListenStream=//p' "$socket_unit")
# Listens as the socket unit says (ListenStream, SocketMode, DirectoryMode),
# then starts the service unit's ExecStart in the root with the socket as
# descriptor 3 and LISTEN_FDS/LISTEN_PID, as systemd's socket activation
# does; $daemon is its pid. The socket goes first, as the socket unit's
# RemoveOnStop takes it away between two runs.
start_credsyncd() {
    rm -f "$root$api_socket"
    python3 - "$root" "$api_socket" "$(sed -n 's/^SocketMode=//p' "$socket_unit")" \
        "$(sed -n 's/^DirectoryMode=//p' "$socket_unit")" $(sed -n 's/^ExecStart=//p' "$service_unit") \
        >"$work/credsyncd.log" 2>&1 <<'PY' &
import os, socket, sys
root, path, mode, dir_mode, *command = sys.argv[1:]
os.makedirs(os.path.dirname(root + path), mode=int(dir_mode, 8), exist_ok=True)
s = socket.socket(socket.AF_UNIX)
s.bind(root + path)
os.chmod(root + path, int(mode, 8))
s.listen(128)
if s.fileno() == 3:
    os.set_inheritable(3, True)
else:
    os.dup2(s.fileno(), 3)
os.execv("/usr/sbin/chroot", ["chroot", root, "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin",
         "LISTEN_FDS=1", "LISTEN_PID=%d" % os.getpid(), *command])
PY
    daemon=$!
    for _ in $(seq 50); do [ -S "$root$api_socket" ] && break; sleep 0.1; done
    sleep 0.5
    kill -0 "$daemon" 2>/dev/null || fail "credsyncd did not start: $(cat "$work/credsyncd.log")"
}

step "credsync-web: the unit's command, as its user and in its sandbox, logs admin in through credsyncd"
web_unit=/usr/lib/systemd/system/credsync-web.service
in_root systemd-analyze verify "$web_unit" || fail "systemd-analyze verify credsync-web.service"
in_root systemd-analyze security --offline=yes --threshold=40 credsync-web.service >"$work/security.txt" 2>&1 \
    || { cat "$work/security.txt" >&2; fail "systemd-analyze security: credsync-web.service is more exposed than 4.0"; }
tail -n 1 "$work/security.txt"
! grep -q '^PrivateNetwork=' "$root$web_unit" || fail "credsync-web.service has PrivateNetwork: no client could reach it"
# credsync.toml as shipped: only [api] groups' default, the group the
# package made, lets the page's user verify admin.
! grep -q '^groups' "$root/etc/credsync/credsync.toml" || fail "credsync.toml already sets groups"
start_credsyncd
# The unit's own listen address (127.0.0.1:8088, the default), unless the
# host, whose network this root shares, already uses that port.
web_port=8088
unit=$root$web_unit
if ! python3 -c 'import socket; socket.socket().bind(("127.0.0.1", 8088))' 2>/dev/null; then
    web_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cp "$unit" "$work/credsync-web.service"
    sed -i "s|^ExecStart=.*|& --listen 127.0.0.1:$web_port|" "$work/credsync-web.service"
    unit=$work/credsync-web.service
fi
run_unit_command >"$work/web.log" 2>&1 &
web=$!
for _ in $(seq 100); do
    python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$web_port" 2>/dev/null && break
    kill -0 "$web" 2>/dev/null || fail "credsync-web did not start: $(cat "$work/web.log")"
    sleep 0.1
done
# A browser's part, from the host: the login form, a wrong password
# (refused), then admin's own, and the profile page behind it.
python3 - "$web_port" admin "$second" >"$work/browser.txt" 2>&1 <<'PY' || fail "credsync-web: $(cat "$work/browser.txt" "$work/web.log")"
import http.client, re, sys, urllib.parse
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def request(method, path, cookie=None, form=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Cookie": cookie} if cookie else {}
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    connection.request(method, path, body, headers)
    response = connection.getresponse()
    return response, response.read().decode()
def cookie_of(response, name):
    # The cookie the response sets (not one it clears), as name=value.
    for header in response.headers.get_all("Set-Cookie") or []:
        pair = header.split(";")[0].strip()
        if pair.startswith(name + "=") and len(pair) > len(name) + 1:
            return pair
    return None
response, page = request("GET", "/login")
assert response.status == 200, "GET /login: %d" % response.status
assert 'autocomplete="username"' in page, "the login form has no autocomplete=username field"
assert response.getheader("Content-Security-Policy"), "GET /login: no Content-Security-Policy"
login_cookie = cookie_of(response, "credsync_login")
csrf = re.search(r'name="csrf" value="([^"]+)"', page)
assert login_cookie and csrf, "GET /login: no login cookie or no csrf field"
form = {"csrf": csrf.group(1), "user": user, "password": password + "x"}
response, page = request("POST", "/login", login_cookie, form)
assert response.status == 401, "a wrong password: %d" % response.status
form["password"] = password
response, page = request("POST", "/login", login_cookie, form)
assert response.status == 303, "POST /login: %d %s" % (response.status, page[:400])
assert response.getheader("Location") == "/profile", "POST /login went to %s" % response.getheader("Location")
response, page = request("GET", "/profile", cookie_of(response, "credsync_session"))
assert response.status == 200, "GET /profile: %d" % response.status
assert '<dd id="profile-user">%s</dd>' % user in page, "/profile does not show " + user
print("GET /login 200, autocomplete=username, Content-Security-Policy; a wrong password 401; "
      "POST /login 303 to /profile, which shows " + user)
PY
cat "$work/browser.txt"
# The traced process that ran credsync-web: its pid names its trace file.
web_pid=$(grep -l '^execve("/usr/sbin/credsync-web"' "$work/trace"/call.* | head -n 1)
kill -TERM "${web_pid##*.}"
wait "$web" || fail "credsync-web did not exit 0 on SIGTERM: $(cat "$work/web.log")"
outside=$(calls_outside_filter)
[ -z "$outside" ] || fail "credsync-web made system calls outside the unit's SystemCallFilter: $outside"
kill -TERM "$daemon"
wait "$daemon" || fail "credsyncd did not stop cleanly on SIGTERM: $(cat "$work/credsyncd.log")"
echo "as credsync-web:credsync-web, no capability, / read-only, on 127.0.0.1:$web_port; in [api] groups by default; every system call inside its SystemCallFilter; exit 0 on SIGTERM"

step "credsync fleet: keygen and status through the setuid binary; the agent's unit's command in its sandbox"
# The setuid credsync, run by root, hands over to the installed credsync-fleet.
public=$(in_root credsync fleet keygen --out /root/k) || fail "credsync fleet keygen: $public"
[ "$(mode_of /root/k)" = "600 root root" ] || fail "the signing key is $(mode_of /root/k), not 600 root root"
grep -Eqx '[A-Za-z0-9+/]{43}=' <<<"$public" && [ "$(base64 -d <<<"$public" | wc -c)" = 32 ] \
    || fail "keygen printed no Ed25519 public key in base64: $public"
# A CA and a client certificate, so that each run gets as far as etcd's
# TCP port: nothing listens there.
tls=/etc/credsync/fleet
mkdir -p "$root$tls"
printf '%s\n' '[req]' 'distinguished_name = subject' '[subject]' \
    '[ca]' 'basicConstraints = critical, CA:TRUE' 'keyUsage = critical, keyCertSign' \
    '[client]' 'basicConstraints = critical, CA:FALSE' 'extendedKeyUsage = clientAuth' >"$work/openssl.cnf"
certificate() { # certificate EXTENSIONS CN CERT KEY [openssl options]
    openssl req -x509 -config "$work/openssl.cnf" -extensions "$1" -subj "/CN=$2" -out "$3" -keyout "$4" \
        -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -days 1 "${@:5}" >/dev/null 2>&1 \
        || fail "openssl: no $2 certificate"
}
certificate ca 'credsync test CA' "$root$tls/ca.pem" "$work/ca.key"
certificate client n1 "$root$tls/client.pem" "$root$tls/client.key" -CA "$root$tls/ca.pem" -CAkey "$work/ca.key"
etcd_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fleet_toml() { # fleet_toml ROLE_LINES...
    printf '%s\n' 'fleet = "lab"' "endpoints = [\"https://127.0.0.1:$etcd_port\"]" \
        "ca = \"$tls/ca.pem\"" "cert = \"$tls/client.pem\"" "key = \"$tls/client.key\"" "$@" \
        >"$root/etc/credsync/fleet.toml"
}
fleet_toml 'role = "conductor"' 'signing_key = "/root/k"'
code=0
in_root credsync fleet status >"$work/fleet.out" 2>"$work/fleet.err" || code=$?
[ "$code" = 3 ] || fail "credsync fleet status with no etcd exited $code, not 3: $(cat "$work/fleet.out" "$work/fleet.err")"
[ ! -s "$work/fleet.out" ] && [ "$(wc -l <"$work/fleet.err")" = 1 ] \
    && grep -q '^credsync-fleet: no etcd member answers' "$work/fleet.err" \
    || fail "credsync fleet status with no etcd: not one clear line: $(cat "$work/fleet.out" "$work/fleet.err")"
cat "$work/fleet.err"
# The agent, as the unit runs it, finds no etcd either: it says so, retries,
# and stops cleanly on SIGTERM.
unit=$root/usr/lib/systemd/system/credsync-fleet.service
in_root systemd-analyze verify /usr/lib/systemd/system/credsync-fleet.service || fail "systemd-analyze verify credsync-fleet.service"
in_root systemd-analyze security --offline=yes --threshold=40 credsync-fleet.service >"$work/security.txt" 2>&1 \
    || { cat "$work/security.txt" >&2; fail "systemd-analyze security: credsync-fleet.service is more exposed than 4.0"; }
tail -n 1 "$work/security.txt"
fleet_toml 'role = "node"' 'node = "n1"' "public_keys = [\"$public\"]"
run_unit_command >"$work/agent.log" 2>&1 &
agent=$!
for _ in $(seq 100); do
    grep -q 'retrying$' "$work/agent.log" && break
    kill -0 "$agent" 2>/dev/null || fail "the fleet agent stopped: $(cat "$work/agent.log")"
    sleep 0.1
done
grep -q '^credsync-fleet: no etcd member answers .*; retrying$' "$work/agent.log" \
    || fail "the fleet agent did not say it retries: $(cat "$work/agent.log")"
agent_pid=$(grep -l '^execve("/usr/bin/credsync-fleet"' "$work/trace"/call.* | head -n 1)
kill -TERM "${agent_pid##*.}"
wait "$agent" || fail "the fleet agent did not exit 0 on SIGTERM: $(cat "$work/agent.log")"
outside=$(calls_outside_filter)
[ -z "$outside" ] || fail "the fleet agent made system calls outside the unit's SystemCallFilter: $outside"
rm -rf "$root/etc/credsync/fleet.toml" "${root:?}$tls" "$root/root/k"
echo "keygen: a 0600 key and its public key; status: exit 3, one line; the agent in its sandbox: retries, every system call inside its SystemCallFilter, exit 0 on SIGTERM"

step "credsyncd: the socket unit, the service started as systemd starts it, the README's Python client"
[ -L "$root/etc/systemd/system/sockets.target.wants/credsync-api.socket" ] \
    || fail "credsync-api.socket is not enabled for sockets.target"
for unit in credsync-api.socket credsync-api.service; do
    in_root systemd-analyze verify "/usr/lib/systemd/system/$unit" || fail "systemd-analyze verify $unit"
done
in_root systemd-analyze security --offline=yes --threshold=40 credsync-api.service >"$work/security.txt" 2>&1 \
    || { cat "$work/security.txt" >&2; fail "systemd-analyze security: credsync-api.service is more exposed than 4.0"; }
tail -n 1 "$work/security.txt"
# The application's service account, in [api] groups; a list that replaces
# the default names the web page's group again.
in_root groupadd --system appsvc
in_root useradd --system --gid appsvc --no-create-home --shell /usr/sbin/nologin appsvc
sed -i '/^\[api\]/a groups = ["appsvc", "credsync-web"]' "$root/etc/credsync/credsync.toml"
grep -q '^groups = \["appsvc", "credsync-web"\]' "$root/etc/credsync/credsync.toml" || fail "could not set [api] groups"
start_credsyncd
[ "$(stat -c %a "$root$api_socket")" = 666 ] || fail "the socket is not mode 0666"
# The README's client, as written there; its example lines are not run.
awk '/^## Applications/{on=1} on && /^```python/{grab=1; next} grab && /^```/{exit} grab' README.md >"$work/client.py"
grep -q 'def call' "$work/client.py" || fail "README.md's Applications section has no Python client"
client() {
    CREDSYNC_API=$root$api_socket python3 -c '
import json, sys
namespace = {"__name__": "client"}
exec(open(sys.argv[1]).read(), namespace)
method, parameters = sys.argv[2], json.loads(sys.argv[3])
if method == "Monitor":
    for reply in namespace["replies"]("Monitor", more=True, **parameters):
        print(json.dumps(reply), flush=True)
else:
    print(json.dumps(namespace["call"](method, **parameters)))
' "$work/client.py" "$@"
}
client Monitor '{"initial": false}' >"$work/events.txt" &
monitor=$!
sleep 0.5
# admin's password has expired (it is past the maximum age): the GUI's change flow.
in_root chage -d 2000-01-01 admin
fourth='Hn5*cVb9uJk!'
reply=$(client Verify "{\"user\": \"admin\", \"password\": \"$second\"}")
grep -q '"result": "expired"' <<<"$reply" || fail "Verify of the expired password: $reply"
reply=$(client ChangePassword "{\"user\": \"admin\", \"current_password\": \"$second\", \"new_password\": \"$fourth\"}")
grep -q '"session_epoch"' <<<"$reply" || fail "ChangePassword: $reply"
for _ in $(seq 50); do grep -q '"user": "admin"' "$work/events.txt" && break; sleep 0.1; done
kill "$monitor" 2>/dev/null || true
grep -q '"source": "api"' "$work/events.txt" || fail "Monitor saw no event for the change: $(cat "$work/events.txt")"
pam_takes admin "$fourth" || fail "pam_unix refuses the password set through the service"
[ "$(verify_code admin "$fourth")" = 0 ] || fail "verify refuses the password set through the service"
echo "socket 0666 from the unit; ChangePassword through the README's client; Monitor saw it"

if [ -x "$root/usr/bin/varlinkctl" ]; then
    step "varlinkctl, systemd's own varlink client, against credsyncd on $debian"
    # The interface as systemd reads it: the same methods, types and errors,
    # with the same members, as the shipped IDL.
    in_root varlinkctl introspect "$api_socket" io.credsync.Credentials >"$work/introspect.txt" \
        || fail "varlinkctl introspect: $(cat "$work/introspect.txt")"
    declared() { # the declarations of an IDL, one per line, whitespace and comments aside
        grep -v '^[[:space:]]*#' "$1" | tr -d ' \t\n' \
            | sed -e 's/\(method\|type\|error\|interface\)/\n\1 /g' | sed '/^$/d' | sort
    }
    diff <(declared "$root/usr/share/credsync/io.credsync.Credentials.varlink") <(declared "$work/introspect.txt") \
        || fail "varlinkctl introspect differs from the shipped IDL (above: - shipped, + varlinkctl)"
    in_root varlinkctl info "$api_socket" | grep -q 'io.credsync.Credentials' || fail "varlinkctl info"
    status=$(in_root varlinkctl call "$api_socket" io.credsync.Credentials.GetStatus '{"user": "admin"}') \
        || fail "varlinkctl call GetStatus: $status"
    grep -q '"user" *: *"admin"' <<<"$status" || fail "GetStatus through varlinkctl: $status"
    as_app() { in_root setpriv --reuid=appsvc --regid=appsvc --init-groups "$@"; }
    reply=$(as_app varlinkctl call "$api_socket" io.credsync.Credentials.Verify \
        "{\"user\": \"admin\", \"password\": \"$fourth\"}") || fail "varlinkctl Verify as appsvc: $reply"
    grep -q '"result" *: *"ok"' <<<"$reply" || fail "Verify through varlinkctl: $reply"
    ! as_app varlinkctl call "$api_socket" io.credsync.Credentials.Verify \
        '{"user": "admin", "password": "not-it"}' 2>"$work/varlinkctl.err" >/dev/null \
        || fail "varlinkctl Verify of a wrong password succeeded"
    grep -q 'io.credsync.Credentials.AuthenticationFailed' "$work/varlinkctl.err" \
        || fail "a wrong password through varlinkctl: $(cat "$work/varlinkctl.err")"
    in_root timeout 30 varlinkctl call --more "$api_socket" io.credsync.Credentials.Monitor \
        '{"initial": false}' >"$work/varlinkctl-events.txt" 2>&1 &
    varlink_monitor=$!
    sleep 0.5
    in_root chage -d 2000-01-01 admin
    fifth='Yt3#kLm8vBq@'
    reply=$(as_app varlinkctl call "$api_socket" io.credsync.Credentials.ChangePassword \
        "{\"user\": \"admin\", \"current_password\": \"$fourth\", \"new_password\": \"$fifth\"}") \
        || fail "varlinkctl ChangePassword as appsvc: $reply"
    grep -q '"session_epoch"' <<<"$reply" || fail "ChangePassword through varlinkctl: $reply"
    pam_takes admin "$fifth" || fail "pam_unix refuses the password varlinkctl set"
    sixth='Rw7^nXc2pZs!'
    printf '%s\n' "$sixth" | expect 0 in_root credsync recover admin --stdin >/dev/null
    for _ in $(seq 50); do grep -q '"recover"' "$work/varlinkctl-events.txt" && break; sleep 0.1; done
    kill "$varlink_monitor" 2>/dev/null || true
    grep -q '"source" *: *"recover"' "$work/varlinkctl-events.txt" \
        || fail "varlinkctl --more Monitor saw no event for the CLI's recover: $(cat "$work/varlinkctl-events.txt")"
    [ "$(verify_code admin "$sixth")" = 0 ] || fail "verify refuses the recovered password"
    # The passwords the later steps expect.
    printf '%s\n' "$fourth" | expect 0 in_root credsync recover admin --stdin --force >/dev/null
    echo "varlinkctl: introspect matches the IDL; info; GetStatus; Verify and ChangePassword as appsvc; Monitor --more saw the CLI's change"
fi

kill -TERM "$daemon"
wait "$daemon" || fail "credsyncd did not stop cleanly on SIGTERM: $(cat "$work/credsyncd.log")"
echo "SIGTERM: credsyncd finished and exited 0"

step "dpkg -r credsync-fleet: credsync fleet says what is missing; dpkg -P forgets the unit"
in_root dpkg -r credsync-fleet >/dev/null
[ ! -e "$root/usr/bin/credsync-fleet" ] || fail "dpkg -r left /usr/bin/credsync-fleet"
code=0
missing=$(in_root credsync fleet status 2>&1) || code=$?
[ "$code" = 3 ] && grep -q 'install the credsync-fleet package' <<<"$missing" \
    || fail "credsync fleet without credsync-fleet exited $code: $missing"
in_root dpkg -P credsync-fleet >/dev/null
for link in /etc/systemd/system/multi-user.target.wants/credsync-fleet.service /etc/systemd/system/credsync-fleet.service; do
    [ ! -L "$root$link" ] || fail "dpkg -P left $link"
done
echo "removed: credsync fleet exits 3 naming the package; purged: the unit neither enabled nor masked"

step "dpkg -r credsync-web leaves credsync working; dpkg -P removes web.toml, not the user"
in_root dpkg -r credsync-web >/dev/null
[ ! -e "$root/usr/sbin/credsync-web" ] || fail "dpkg -r left /usr/sbin/credsync-web"
[ -e "$root/etc/credsync/web.toml" ] || fail "dpkg -r removed /etc/credsync/web.toml"
[ "$(verify_code admin "$fourth")" = 0 ] || fail "verify refuses admin's password without credsync-web"
seventh='Gm2!sTd9qLx#'
printf '%s\n' "$seventh" | expect 0 in_root credsync recover admin --stdin --force >/dev/null
pam_takes admin "$seventh" || fail "recover without credsync-web did not reach /etc/shadow"
in_root dpkg -P credsync-web >/dev/null
[ ! -e "$root/etc/credsync/web.toml" ] || fail "dpkg -P left /etc/credsync/web.toml"
[ -e "$root/etc/credsync/credsync.toml" ] || fail "purging credsync-web removed credsync.toml"
in_root getent passwd credsync-web >/dev/null || fail "dpkg -P removed the user credsync-web"
echo "removed: credsync verifies and recovers; purged: web.toml gone, credsync.toml and the user kept"

step "dpkg -r keeps the store; dpkg -P removes it"
in_root dpkg -r credsync >/dev/null
[ ! -e "$root/usr/bin/credsync" ] || fail "dpkg -r left /usr/bin/credsync"
! grep -q pam_credsync "$root/etc/pam.d/common-password" || fail "dpkg -r left pam_credsync.so in common-password"
printf '%s\n%s\n' "$first" "$first" | expect 0 in_root passwd admin
[ -s "$root/var/lib/credsync/credsync.db" ] || fail "dpkg -r removed the store"
[ -e "$root/etc/credsync/credsync.toml" ] || fail "dpkg -r removed the configuration"
in_root dpkg -P credsync >/dev/null
for path in /var/lib/credsync /etc/credsync /etc/pam.d/credsync; do
    [ ! -e "$root$path" ] || fail "dpkg -P left $path"
done
echo "removed: store and configuration kept; purged: both gone"
