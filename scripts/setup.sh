#!/usr/bin/env bash
# Installs what building and testing credsync needs on Debian 12, when missing.
# Sourced by demo.sh, test.sh and install-test.sh (which first sets
# extra_packages to what building and checking the packages needs); safe to
# run again.
set -euo pipefail

need_packages=(
    libpam0g-dev   # link the PAM client
    libcrypt-dev   # link libxcrypt (crypt_rn, crypt_gensalt_rn)
    libpwquality-dev  # link libpwquality, the site's pwquality.conf rules
    cracklib-runtime  # cracklib's dictionary, without which pwquality fails every password
    libpam-modules # pam_unix, pam_exec, pam_debug, pam_faillock, pam_pwhistory used by the tests
    libpam-pwquality  # pam_pwquality, which real passwd runs in the policy tests
    libaudit-dev   # link libaudit: audit records like shadow-utils'
    libpam-modules-bin # faillock(8), which must list the failures credsync records
    pamtester      # checks a password through the real PAM stack
    passwd login   # shadow-utils: chpasswd, passwd, pwck, useradd
    util-linux     # unshare, setpriv, findmnt for the namespace sandbox
    python3        # holds a POSIX lock on .pwd.lock in the lock tests
    openssl        # independent crypt hashes for the libcrypt tests
    sqlite3        # inspecting the store by hand
    gcc libc6-dev  # the bundled SQLite, and the failing-syscall shim the tests build
    g++            # libFuzzer, which the fuzz targets (scripts/fuzz.sh) compile
    strace         # the test that watches every exec for a password
    openssh-server openssh-client  # real sshd on 127.0.0.1 in the namespace tests (forced change, lockout)
    dpkg-dev       # dpkg-shlibdeps, from which `cargo xtask deb` computes Depends
    hyperfine      # scripts/bench.sh: whole-process timings (medians)
    time           # scripts/bench.sh: /usr/bin/time for peak memory
    chromium chromium-driver  # the web page's browser tests: headless Chromium driven over WebDriver
    fonts-liberation  # text in the browser tests' screenshots (without a font it renders as boxes)
    curl           # the web page's HTTP tests over TLS
    etcd-server etcd-client  # the fleet tests' real 3-member etcd cluster (etcd, etcdctl) on 127.0.0.1
    protobuf-compiler  # building the etcd client's gRPC definitions (credsync-fleet)
)

missing=()
for pkg in "${need_packages[@]}" ${extra_packages[@]+"${extra_packages[@]}"}; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing packages: ${missing[*]}; run as root or install them" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo is missing; install a Rust toolchain of 1.88 or later (rustup) first" >&2
    exit 1
fi
for component in clippy rustfmt; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component" >/dev/null 2>&1 || {
            echo "setup: cargo $component is missing and rustup could not add it" >&2
            exit 1
        }
    fi
done
