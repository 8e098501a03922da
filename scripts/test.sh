#!/usr/bin/env bash
# The full test suite: formatting, lints, unit tests, the --root integration
# tests, the namespace tests against the real PAM and shadow-utils, a short
# run of every fuzz target, and the packages installed into a clean Debian 12.
# Run as root on Debian 12 (the namespace tests need it; they fail loudly otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --workspace --all-targets --locked --features fault-injection -- -D warnings
# The PAM module (target/debug/libpam_credsync.so) is built first: `cargo
# test` builds no cdylib, and the namespace tests load it into real passwd,
# chpasswd, su and pamtester.
cargo build --workspace --locked --features fault-injection
cargo test --workspace --locked --features fault-injection
# The benchmark harness on 1,000 accounts; every result is checked, so it can't rot.
scripts/bench.sh --quick
# The parsers' fuzz targets, briefly; the 10-minute runs: FUZZ_JOBS=2 scripts/fuzz.sh 600
FUZZ_JOBS=2 scripts/fuzz.sh 20
# The .deb and .rpm: lintian, their file lists, and the appliance story in a
# clean Debian 12 root and a clean Debian 13 root with the installed files
# only (on Debian 13, systemd's varlinkctl calls the service too).
scripts/install-test.sh bookworm trixie
# The namespace tests that depend on the distribution, against Debian 13's
# PAM and shadow-utils (the whole suite ran above against Debian 12's).
scripts/compat-test.sh trixie
