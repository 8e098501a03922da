#!/usr/bin/env bash
# Fuzzes credsync's parsers: builds every target of fuzz/ with cargo fuzz, then
# runs each one for SECONDS (default 20) on a scratch copy of its seed corpus
# in fuzz/corpus/TARGET. Exits non-zero if any target crashes, fails one of
# its assertions or hangs; the input that did it is kept in fuzz/artifacts/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs no nightly toolchain: RUSTC_BOOTSTRAP=1 lets cargo fuzz pass its
# unstable flags to a stable rustc. The targets are built without a sanitizer
# (the parsers are safe Rust) and with debug assertions and overflow checks.
# Set FUZZ_JOBS=2 to run two targets at a time, FUZZ_WORK=DIR to keep the
# libFuzzer logs and grown corpora.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
shift || true
case "$seconds" in
    '' | *[!0-9]*)
        echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
        exit 2
        ;;
esac

if ! command -v c++ >/dev/null 2>&1; then
    # libfuzzer-sys compiles libFuzzer, which is C++.
    if [ "$(id -u)" -ne 0 ]; then
        echo "fuzz: a C++ compiler is missing; install g++" >&2
        exit 1
    fi
    echo "fuzz: installing g++" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null
    apt-get install -y -qq --no-install-recommends g++ </dev/null >/dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install --locked --quiet cargo-fuzz --version '^0.13' </dev/null
fi

export RUSTC_BOOTSTRAP=1
# cargo fuzz looks for its binaries in the directory it builds into, so it is
# given one explicitly instead of through CARGO_TARGET_DIR.
target_dir="${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/fuzz}"
target_dir="${target_dir:-$PWD/fuzz/target}"
unset CARGO_TARGET_DIR
build_flags=(--fuzz-dir fuzz --sanitizer none --debug-assertions --target-dir "$target_dir")

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

# One build of every target: the library they share is most of the work.
echo "fuzz: building the fuzz targets" >&2
cargo fuzz build "${build_flags[@]}" </dev/null

# FUZZ_WORK=DIR keeps the logs and the grown corpora there; by default they go
# to a temporary directory that is removed at the end.
if [ -n "${FUZZ_WORK:-}" ]; then
    scratch="$FUZZ_WORK"
    mkdir -p "$scratch"
else
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
fi

# Runs one target; its libFuzzer output goes to $scratch/TARGET.log.
run_target() {
    local target="$1"
    local corpus="$scratch/corpus/$target"
    local artifacts="$PWD/fuzz/artifacts/$target"
    local options=()
    mkdir -p "$corpus" "$artifacts"
    cp -R "fuzz/corpus/$target/." "$corpus/"
    if [ -f "fuzz/dict/$target.dict" ]; then
        options+=("-dict=fuzz/dict/$target.dict")
    fi
    cargo fuzz run "${build_flags[@]}" "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" "${options[@]}" \
        </dev/null >"$scratch/$target.log" 2>&1
}

# Reports one finished target: its executions, or the end of its log.
report() {
    local target="$1" status="$2"
    local runs
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$target.log" | tail -n 1)"
    if [ "$status" -eq 0 ]; then
        echo "fuzz: $target: ${runs:-?} executions in ${seconds}s, no crash"
    else
        echo "fuzz: $target: FAILED (exit $status) after ${runs:-?} executions; the end of its log:" >&2
        tail -n 40 "$scratch/$target.log" >&2
        failed+=("$target")
    fi
}

failed=()
jobs_at_once="${FUZZ_JOBS:-1}"
running=()
for target in "${targets[@]}"; do
    run_target "$target" &
    running+=("$!:$target")
    if [ "${#running[@]}" -ge "$jobs_at_once" ]; then
        entry="${running[0]}"
        running=("${running[@]:1}")
        status=0
        wait "${entry%%:*}" || status=$?
        report "${entry#*:}" "$status"
    fi
done
for entry in "${running[@]}"; do
    status=0
    wait "${entry%%:*}" || status=$?
    report "${entry#*:}" "$status"
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}; reproduce with" \
        "RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz -s none -a TARGET fuzz/artifacts/TARGET/<file>" >&2
    exit 1
fi
