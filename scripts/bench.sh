#!/usr/bin/env bash
# Whole-process benchmarks of credsync, side by side with chpasswd (BENCHMARKS.md).
#
#   scripts/bench.sh            the full run: fixtures of 1,000 / 10,000 / 100,000
#                               accounts; results in $TARGET/bench/ and docs/bench/
#   scripts/bench.sh --quick    1,000 accounts only, few runs (CI): checks every
#                               result as well, and fails on a wrong one
#   --runs N                    runs per measurement (default 5; imports 3)
#   --service-only              only section 5 (the service), on 10,000 accounts
#                               (1,000 with --quick)
#   --fleet-only                only section 6 (fleet mode: 1,000 simulated nodes,
#                               50 with --quick)
#   BENCH_KEEP=1                keep the fixtures ($TARGET/bench/work) afterwards
#
# As root (chpasswd runs in a private mount namespace over a copy of /etc;
# the self-service change runs as the fixture's user through setpriv).
# Nothing touches the host's /etc or /var/lib: credsync works on `--root`
# fixtures, chpasswd on the copy. Each figure is hyperfine's median.
#
# What is measured (the groups of issue "Fast at fleet scale"):
#  1. `import` of a batch (1,000 users into 10,000 accounts) against
#     `chpasswd` on an identical fixture, with the Linux hash method and cost
#     of the host's PAM stack, at Argon2's minimum cost and at its default;
#     and the pure hashing time of the same batch (benches/hash_floor.rs).
#  2. `sync` with 0% drift at each size, 1% and 100% drift at the largest;
#     `status --json` at each size.
#  3. One self-service `passwd --stdin` at each size: time, peak RSS, and the
#     time minus its hashing (two crypt calls and one Argon2id hash).
#  4. Real `passwd` through PAM, with and without pam_credsync.so.
#  5. The service, credsyncd: Verify throughput and latency at 1, 8 and 64
#     clients against the Argon2id floor, one SetPassword, and how long after
#     a change's reply (or another process's change) its Monitor event comes.
#  6. Fleet mode: the time from `credsync-fleet set` to the last of 1,000
#     simulated nodes' reports of the new version, against a real 3-member
#     etcd cluster with TLS on 127.0.0.1, and etcd's memory and connections
#     per node (benches/fleet_scale.rs, which checks every node's shadow).
#
# Fixtures are written by benches/fixture.py from a few hashes made once by
# credsync itself, so 100,000 accounts take seconds, not 100,000 hashes.
set -euo pipefail
shopt -s inherit_errexit

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

quick=0
runs=""
service_only=0
fleet_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --runs) runs="${2:?--runs needs a number}"; shift ;;
        --service-only) service_only=1 ;;
        --fleet-only) fleet_only=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

cd "$(dirname "$0")/.."
repo=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
    echo "bench: run as root (chpasswd runs in a private mount namespace)" >&2
    exit 1
fi
for tool in hyperfine python3 unshare setpriv chpasswd cargo; do
    command -v "$tool" >/dev/null || {
        echo "bench: '$tool' is missing (apt-get install hyperfine passwd util-linux python3)" >&2
        exit 1
    }
done
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time is missing (apt-get install time)" >&2; exit 1; }

if [ "$quick" = 1 ]; then
    sizes=(1000); import_accounts=1000; batch=100
    runs=${runs:-2}; import_runs=1
else
    sizes=(1000 10000 100000); import_accounts=10000; batch=1000
    runs=${runs:-5}; import_runs=$(( runs < 3 ? runs : 3 ))
fi
largest=${sizes[-1]}

target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
out="$target/bench"
work="$out/work"
rm -rf "$work" "$out/raw"
mkdir -p "$work" "$out/raw"
chmod 755 "$out" "$work"
csv="$out/results.csv"
echo "group,case,accounts,seconds,note" >"$csv"
fixture=(python3 "$repo/benches/fixture.py")
cleanup() { [ -n "${BENCH_KEEP:-}" ] || rm -rf "$work"; }
trap cleanup EXIT

say() { printf '\n== %s\n' "$*" >&2; }
fail() { echo "bench FAILED: $*" >&2; exit 1; }
record() { echo "$1,\"$2\",$3,$4,\"${5:-}\"" >>"$csv"; }

say "building"
cargo build --release --locked --quiet --workspace
cargo bench --locked --no-run --quiet --bench hash_floor
bin="$target/release/credsync"

# --- the host's Linux hash settings, as pam_unix (and so chpasswd) uses them
pam_line=$(grep -E '^[[:space:]]*password.*pam_unix\.so' /etc/pam.d/common-password | head -n1 || true)
method=""
for m in yescrypt gost_yescrypt sha512 sha256 blowfish md5; do
    if grep -qw "$m" <<<"$pam_line"; then method=$m; break; fi
done
[ -n "$method" ] || fail "no hash method on pam_unix's line in /etc/pam.d/common-password: '$pam_line'"
case "$method" in
    yescrypt) prefix='$y$' ;; gost_yescrypt) prefix='$gy$' ;; sha512) prefix='$6$' ;;
    sha256) prefix='$5$' ;; blowfish) prefix='$2' ;; md5) prefix='$1$' ;;
esac
rounds=$(grep -oE 'rounds=[0-9]+' <<<"$pam_line" | cut -d= -f2 || true)
hash_toml="method = \"$method\""
floor_rounds=()
if [ -n "$rounds" ]; then hash_toml+=$'\n'"rounds = $rounds"; floor_rounds=(--rounds "$rounds"); fi

min_cost=(8 1 1)
default_cost=(19456 2 1)
config() { # memory_kib iterations parallelism
    cat <<EOF
[hash]
$hash_toml

[argon2]
memory_kib = $1
iterations = $2
parallelism = $3

[verify]
failure_delay_ms = 0

$(cat "$repo/tests/common/policy-off.toml")
EOF
}

today=$("${fixture[@]}" today)
record_day=$((today - 10))

# --- three real hashes, made once by credsync: the current password (every
# account holds it), another (drift), and an older one (the history)
pw_current='Current#Pass-2026'
pw_new='Changed#Pass-2027'
make_hash() { # PASSWORD NAME [CONFIG]
    local dir="$work/seed-$2"
    "${fixture[@]}" accounts "$dir" 1 '!' "$record_day"
    if [ -n "${3:-}" ]; then
        printf '%s\n' "$3" >"$dir/etc/credsync/credsync.toml"
    else
        config "${min_cost[@]}" >"$dir/etc/credsync/credsync.toml"
    fi
    printf 'op000001:%s\n' "$1" | "$bin" --root "$dir" import >/dev/null
    cut -d: -f2 <(grep '^op000001:' "$dir/etc/shadow")
}
hash_current=$(make_hash "$pw_current" current)
# The same password at the cheapest settings (yescrypt cost 1, Argon2's
# minimum): a change with these hashes shows what credsync adds around them.
cheap_toml=$'[hash]\nmethod = "yescrypt"\nrounds = 1\n[argon2]\nmemory_kib = 8\niterations = 1\nparallelism = 1\n[verify]\nfailure_delay_ms = 0\n'"$(cat "$repo/tests/common/policy-off.toml")"
hash_cheap=$(make_hash "$pw_current" cheap "$cheap_toml")
hash_other=$(make_hash 'Other#Pass-2025' other)
hash_old=$(make_hash 'Old#Pass-2024' old)

# Median seconds of a hyperfine run: hf NAME [hyperfine args...] COMMAND
hf() {
    local name=$1
    shift
    hyperfine --style basic --export-json "$out/raw/$name.json" "$@" >&2
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' \
        "$out/raw/$name.json"
}

# Floor: hash_floor KEY COUNT MEMORY ITERATIONS PARALLELISM
floor_run() {
    cargo bench --locked --quiet --bench hash_floor -- --users "$1" --memory-kib "$2" \
        --iterations "$3" --parallelism "$4" --method "$method" "${floor_rounds[@]}" \
        --threads "$(nproc)" --reps "$import_runs"
}
value() { grep "^$1=" <<<"$2" | cut -d= -f2; }

managed() { # DIR N: N accounts, all managed and in sync
    "${fixture[@]}" accounts "$1" "$2" "$hash_current" "$record_day"
    config "${default_cost[@]}" >"$1/etc/credsync/credsync.toml"
    "$bin" --root "$1" sync >/dev/null # creates the store
    "${fixture[@]}" store "$1" "$2" "$hash_current" "$record_day" "$hash_old"
}

if [ "$service_only" = 0 ] && [ "$fleet_only" = 0 ]; then
# ----------------------------------------------------------------- 1. import
say "1. import of $batch users into $import_accounts accounts, against chpasswd ($method${rounds:+, rounds=$rounds})"
imp_tpl="$work/import-template"
"${fixture[@]}" accounts "$imp_tpl" "$import_accounts" "$hash_current" "$record_day"
"${fixture[@]}" batch "$import_accounts" "$batch" >"$work/batch.txt"
first_pw=$(head -n1 "$work/batch.txt" | cut -d: -f2-)

# chpasswd's system: a copy of the host's /etc with the fixture's accounts.
sbx="$work/sandbox"
mkdir -p "$sbx"
cp -a /etc "$sbx/etc"
for f in passwd group shadow; do cp -a "$imp_tpl/etc/$f" "$sbx/etc/$f"; done
rm -f "$sbx/etc/shadow-" "$sbx/etc/gshadow"
chpasswd_cmd="unshare --mount --propagation private sh -c 'mount --bind $sbx/etc /etc && test -f /etc/credsync-bench-fixture && exec chpasswd <$work/batch.txt'"
touch "$sbx/etc/credsync-bench-fixture"
chpasswd_prepare="cp -a $imp_tpl/etc/shadow $sbx/etc/shadow && rm -f $sbx/etc/nshadow"

for cost_name in minimum default; do
    if [ "$cost_name" = minimum ]; then cost=("${min_cost[@]}"); else cost=("${default_cost[@]}"); fi
    config "${cost[@]}" >"$imp_tpl/etc/credsync/credsync.toml"
    imp="$work/import"
    t_cred=$(hf "import-credsync-$cost_name" --runs "$import_runs" \
        --prepare "rm -rf $imp && cp -a $imp_tpl $imp" \
        "$bin --root $imp import <$work/batch.txt")
    "${fixture[@]}" check-import "$imp" "$batch" "$prefix" "$imp_tpl/etc/shadow" \
        "$imp/var/lib/credsync/credsync.db"
    printf '%s\n' "$first_pw" | "$bin" --root "$imp" verify op000001 --stdin \
        || fail "an imported password does not verify"
    t_chp=$(hf "import-chpasswd-$cost_name" --runs "$import_runs" --prepare "$chpasswd_prepare" "$chpasswd_cmd")
    "${fixture[@]}" check-import "$sbx" "$batch" "$prefix" "$imp_tpl/etc/shadow"
    floor_out=$(floor_run "$batch" "${cost[@]}")
    t_floor=$(value floor_s "$floor_out")
    record import "credsync ($cost_name Argon2 cost)" "$import_accounts" "$t_cred" "$batch users"
    record import "chpasswd ($cost_name Argon2 cost run)" "$import_accounts" "$t_chp" "$batch users"
    record import "hashing floor ($cost_name Argon2 cost)" "$import_accounts" "$t_floor" "$batch users on $(nproc) threads"
    if [ "$cost_name" = default ]; then
        single_hashing=$(python3 -c 'import sys; print(sum(map(float, sys.argv[1:])))' \
            "$(value crypt_check_s "$floor_out")" "$(value crypt_hash_s "$floor_out")" \
            "$(value argon2_hash_s "$floor_out")")
        record hash "crypt check ($method)" 1 "$(value crypt_check_s "$floor_out")"
        record hash "crypt hash ($method)" 1 "$(value crypt_hash_s "$floor_out")"
        record hash "Argon2id (default cost)" 1 "$(value argon2_hash_s "$floor_out")"
        argon2_s=$(value argon2_hash_s "$floor_out")
        crypt_hash_s=$(value crypt_hash_s "$floor_out")
    fi
done

# ----------------------------------------------------------- 2. sync, status
for n in "${sizes[@]}"; do
    say "2. sync and status over $n managed accounts"
    tpl="$work/managed-$n"
    managed "$tpl" "$n"
    expect="$n managed account(s), $n in sync, 0 drifted"
    t=$(hf "sync-0-$n" --runs "$runs" --warmup 1 "$bin --root $tpl sync")
    got=$("$bin" --root "$tpl" sync)
    [ "$got" = "$expect" ] || fail "sync without drift said '$got', expected '$expect'"
    record sync "no drift" "$n" "$t"
    t=$(hf "status-$n" --runs "$runs" --warmup 1 "$bin --root $tpl --json status >/dev/null")
    "$bin" --root "$tpl" --json status >"$work/status.json"
    "${fixture[@]}" check-status "$work/status.json" "$n"
    record status "status --json" "$n" "$t"
done
for percent in 1 100; do
    say "2. sync of $largest accounts with $percent% drift"
    drifted="$work/drifted-$percent"
    cp -a "$work/managed-$largest" "$drifted"
    count=$("${fixture[@]}" drift "$drifted" "$largest" "$percent" "$hash_other")
    w="$work/sync-run"
    t=$(hf "sync-$percent-$largest" --runs "$runs" --prepare "rm -rf $w && cp -a $drifted $w" \
        "$bin --root $w sync >/dev/null")
    got=$("$bin" --root "$w" sync | tail -n1)
    [ "$got" = "$largest managed account(s), $largest in sync, 0 drifted" ] \
        || fail "a second sync after $percent% drift said '$got'"
    rm -rf "$w" && cp -a "$drifted" "$w"
    got=$("$bin" --root "$w" sync | tail -n1)
    [ "$got" = "$largest managed account(s), $((largest - count)) in sync, $count drifted" ] \
        || fail "sync with $percent% drift said '$got', expected $count drifted"
    "$bin" --root "$w" --json status >"$work/status.json"
    "${fixture[@]}" check-status "$work/status.json" "$largest"
    record sync "$percent% drift ($count accounts)" "$largest" "$t"
done

# ---------------------------------------------------------- 3. one change
cheap_out=$(cargo bench --locked --quiet --bench hash_floor -- --users 1 --memory-kib 8 \
    --iterations 1 --parallelism 1 --method yescrypt --rounds 1 --threads 1 --reps 9)
cheap_hashing=$(python3 -c 'import sys; print(sum(map(float, sys.argv[1:])))' \
    "$(value crypt_check_s "$cheap_out")" "$(value crypt_hash_s "$cheap_out")" \
    "$(value argon2_hash_s "$cheap_out")")
record hash-cheap "yescrypt cost 1 check + hash, Argon2id minimum" 1 "$cheap_hashing"
uid=10001 # op000001
printf '%s\n%s\n' "$pw_current" "$pw_new" >"$work/passwd-stdin"
chmod 644 "$work/passwd-stdin"
for n in "${sizes[@]}"; do
    say "3. one self-service passwd --stdin among $n accounts"
    tpl="$work/self-$n"
    cp -a "$work/managed-$n" "$tpl"
    chown -R "$uid:$uid" "$tpl"
    w="$work/self-run"
    as_user="setpriv --reuid=$uid --regid=$uid --clear-groups"
    t=$(hf "passwd-$n" --runs "$runs" --prepare "rm -rf $w && cp -a $tpl $w" \
        "$as_user $bin --root $w passwd --stdin <$work/passwd-stdin")
    [ "$(grep '^op000001:' "$w/etc/shadow" | cut -d: -f2)" != "$hash_current" ] \
        || fail "passwd --stdin did not change shadow"
    printf '%s\n' "$pw_new" | $as_user "$bin" --root "$w" verify op000001 --stdin \
        || fail "the changed password does not verify"
    rss=()
    for _ in $(seq "$runs"); do
        rm -rf "$w" && cp -a "$tpl" "$w"
        /usr/bin/time -f '%M' -o "$work/rss" $as_user "$bin" --root "$w" passwd --stdin <"$work/passwd-stdin"
        rss+=("$(cat "$work/rss")")
    done
    rss_kib=$(printf '%s\n' "${rss[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
    record passwd "one change" "$n" "$t" "peak RSS ${rss_kib} KiB"
    record passwd "one change minus hashing" "$n" \
        "$(python3 -c 'import sys; print(float(sys.argv[1]) - float(sys.argv[2]))' "$t" "$single_hashing")" \
        "peak RSS ${rss_kib} KiB"

    # The same change with the cheapest hashes, minus those: what credsync
    # adds, measured without subtracting two noisy figures taken apart.
    cheap="$work/self-cheap-$n"
    cp -a "$tpl" "$cheap"
    printf '%s\n' "$cheap_toml" >"$cheap/etc/credsync/credsync.toml"
    "${fixture[@]}" set-user "$cheap" op000001 "$hash_cheap"
    chown -R "$uid:$uid" "$cheap"
    t=$(hf "passwd-cheap-$n" --runs "$runs" --prepare "rm -rf $w && cp -a $cheap $w" \
        "$as_user $bin --root $w passwd --stdin <$work/passwd-stdin")
    [ "$(grep '^op000001:' "$w/etc/shadow" | cut -d: -f2)" != "$hash_cheap" ] \
        || fail "passwd --stdin with the cheapest hashes did not change shadow"
    record passwd "one change, cheapest hashes, minus them" "$n" \
        "$(python3 -c 'import sys; print(float(sys.argv[1]) - float(sys.argv[2]))' "$t" "$cheap_hashing")"
done

# ---------------------------------- 4. real passwd, with and without pam_credsync.so
# passwd run by root through the real PAM stack, in a private mount namespace
# over a copy of the host's /etc holding the fixture's accounts (and, with
# the module, its line after pam_unix) and the fixture's store.
module="$target/release/libpam_credsync.so"
[ -f "$module" ] || fail "$module is missing (cargo build --release --workspace)"
printf '%s\n%s\n' "$pw_new" "$pw_new" >"$work/passwd-root-stdin"
for n in "${sizes[@]}"; do
    [ "$n" -le 10000 ] || continue
    for with in without with; do
        say "4. real passwd among $n accounts, $with pam_credsync.so"
        pd="$work/pam-$with-$n"
        mkdir -p "$pd"
        cp -a /etc "$pd/etc"
        for f in passwd group shadow; do cp -a "$work/managed-$n/etc/$f" "$pd/etc/$f"; done
        rm -f "$pd/etc/shadow-" "$pd/etc/gshadow" "$pd/etc/nshadow"
        mkdir -p "$pd/etc/credsync"
        cp "$work/managed-$n/etc/credsync/credsync.toml" "$pd/etc/credsync/"
        touch "$pd/etc/credsync-bench-fixture"
        if [ "$with" = with ]; then
            printf 'password\toptional\t%s\n' "$module" >>"$pd/etc/pam.d/common-password"
        fi
        cp -a "$pd" "$pd.tpl"
        run="mount --bind $pd/etc /etc && mount --bind $pd/var/lib /var/lib && test -f /etc/credsync-bench-fixture && exec passwd op000001 <$work/passwd-root-stdin >/dev/null"
        mkdir -p "$pd.tpl/var/lib"
        cp -a "$work/managed-$n/var/lib/credsync" "$pd.tpl/var/lib/"
        t=$(hf "pam-passwd-$with-$n" --runs "$runs" \
            --prepare "rm -rf $pd && cp -a $pd.tpl $pd" \
            "unshare --mount --propagation private sh -c '$run'")
        state=$(unshare --mount --propagation private sh -c \
            "mount --bind $pd/etc /etc && mount --bind $pd/var/lib /var/lib && $bin --json status op000001")
        case "$with" in
            with) grep -q '"state":"in-sync","changed_at"' <<<"$state" && grep -q '"source":"pam"' <<<"$state" \
                    || fail "passwd with the module left the record behind: $state" ;;
            without) grep -q '"state":"linux-newer"' <<<"$state" \
                    || fail "passwd without the module: expected linux-newer, got $state" ;;
        esac
        record pam "passwd, $with pam_credsync.so" "$n" "$t"
        rm -rf "$pd" "$pd.tpl"
    done
done

fi # sections 1 to 4

if [ "$fleet_only" = 0 ]; then
# ------------------------------------------------------------ 5. the service
# credsyncd on a --root fixture, its own socket; the load client
# (crates/credsyncd/examples/api_load.rs) checks every reply. The floor is
# measured here, just before, on the same machine state.
api_n=$([ "$quick" = 1 ] && echo 1000 || echo 10000)
say "5. the hashing floor of one change"
floor_out=$(floor_run 1 "${default_cost[@]}")
argon2_s=$(value argon2_hash_s "$floor_out")
crypt_hash_s=$(value crypt_hash_s "$floor_out")
record api "one Argon2id hash (default cost)" "$api_n" "$argon2_s"
[ -d "$work/managed-$api_n" ] || managed "$work/managed-$api_n" "$api_n"
calls=$([ "$quick" = 1 ] && echo 4 || echo 30)
rounds=$([ "$quick" = 1 ] && echo 3 || echo 15)
load="$target/release/examples/api_load"
cargo build --release --locked --quiet -p credsyncd --example api_load
api="$work/api-$api_n"
cp -a "$work/managed-$api_n" "$api"
printf '\n[api]\nexit_idle_secs = 0\nmax_connections = 256\n' >>"$api/etc/credsync/credsync.toml"
printf '%s\n' "$pw_current" >"$work/api-password"
# The fixture's records hold a placeholder Argon2id hash: op000001 gets a real one.
"$bin" --root "$api" recover op000001 --stdin --force <"$work/api-password" >/dev/null
sock="$work/api.sock"
"$target/release/credsyncd" --root "$api" --listen "$sock" 2>"$work/credsyncd.log" &
daemon=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || fail "credsyncd did not start: $(cat "$work/credsyncd.log")"
# Verify's floor: the same Argon2id check, in process, on one thread.
verify_s=$(python3 -c 'import sys; print(float(sys.argv[1]) / 1000)' \
    "$(value verify_ms "$("$load" floor "$work/api-password" "$calls")")")
record api "one Argon2id check, as Verify makes it" "$api_n" "$verify_s"
floor_tput=$(python3 -c 'import sys; print(int(sys.argv[1]) / float(sys.argv[2]))' "$(nproc)" "$verify_s")
for clients in 1 8 64; do
    say "5. Verify through credsyncd, $clients concurrent clients, $api_n accounts"
    out_v=$("$load" verify "$sock" op000001 "$work/api-password" "$clients" "$calls")
    tput=$(value throughput "$out_v")
    record api "Verify throughput, $clients clients (calls/s)" "$api_n" "$tput" \
        "floor $(printf '%.1f' "$floor_tput")/s: $(nproc) cores / one Argon2id"
    record api "Verify p50, $clients clients" "$api_n" "$(python3 -c 'import sys; print(float(sys.argv[1]) / 1000)' "$(value p50_ms "$out_v")")"
    record api "Verify p99, $clients clients" "$api_n" "$(python3 -c 'import sys; print(float(sys.argv[1]) / 1000)' "$(value p99_ms "$out_v")")"
    if [ "$clients" = 1 ]; then
        record api "Verify p50 beyond one Argon2id, 1 client" "$api_n" \
            "$(python3 -c 'import sys; print(float(sys.argv[1]) / 1000 - float(sys.argv[2]))' "$(value p50_ms "$out_v")" "$verify_s")"
    fi
done
say "5. SetPassword through credsyncd among $api_n accounts"
out_s=$("$load" set "$sock" op000001 "$work/api-password" "$rounds")
record api "SetPassword, one call" "$api_n" "$(python3 -c 'import sys; print(float(sys.argv[1]) / 1000)' "$(value p50_ms "$out_s")")"
record api "SetPassword beyond one crypt hash and one Argon2id" "$api_n" \
    "$(python3 -c 'import sys; print(float(sys.argv[1]) / 1000 - float(sys.argv[2]) - float(sys.argv[3]))' "$(value p50_ms "$out_s")" "$crypt_hash_s" "$argon2_s")"
say "5. Monitor: from a change's reply to its event"
out_e=$("$load" events "$sock" op000001 "$work/api-password" "$rounds")
record api "event after a SetPassword reply (p50; max in note)" "$api_n" \
    "$(python3 -c 'import sys; print(float(sys.argv[1]) / 1000)' "$(value p50_ms "$out_e")")" "max $(value max_ms "$out_e") ms"
out_e=$("$load" events "$sock" op000001 "$work/api-password" "$rounds" "$bin" --root "$api" recover op000001 --stdin --force)
record api "event after credsync recover exits (p50; max in note)" "$api_n" \
    "$(python3 -c 'import sys; print(float(sys.argv[1]) / 1000)' "$(value p50_ms "$out_e")")" "max $(value max_ms "$out_e") ms"
kill -TERM "$daemon"
wait "$daemon" || fail "credsyncd did not stop cleanly: $(cat "$work/credsyncd.log")"

# What the service adds around the hash, measured without subtracting two
# figures: the same Verify with Argon2id at its minimum cost (microseconds).
say "5. Verify through credsyncd with the cheapest Argon2id: the service's own time"
cheap_api="$work/api-cheap-$api_n"
cp -a "$work/managed-$api_n" "$cheap_api"
printf '%s\n[api]\nexit_idle_secs = 0\n' "$cheap_toml" >"$cheap_api/etc/credsync/credsync.toml"
"$bin" --root "$cheap_api" recover op000001 --stdin --force <"$work/api-password" >/dev/null
"$target/release/credsyncd" --root "$cheap_api" --listen "$sock.cheap" 2>"$work/credsyncd.log" &
daemon=$!
for _ in $(seq 100); do [ -S "$sock.cheap" ] && break; sleep 0.05; done
out_v=$("$load" verify "$sock.cheap" op000001 "$work/api-password" 1 "$((calls * 4))")
record api "Verify with the cheapest Argon2id, 1 client (p50): the service's own time" "$api_n" \
    "$(python3 -c 'import sys; print(float(sys.argv[1]) / 1000)' "$(value p50_ms "$out_v")")"
kill -TERM "$daemon"
wait "$daemon" || fail "credsyncd did not stop cleanly: $(cat "$work/credsyncd.log")"
fi # section 5

# -------------------------------------------------------------- 6. the fleet
# Simulated nodes (real agents on --root fixtures, many per process) against
# a 3-member etcd cluster with TLS on 127.0.0.1; benches/fleet_scale.rs
# starts and stops everything and fails unless every node holds every
# version.
if [ "$service_only" = 0 ]; then
    fleet_n=$([ "$quick" = 1 ] && echo 50 || echo 1000)
    fleet_procs=$([ "$quick" = 1 ] && echo 2 || echo 4)
    fleet_rounds=$([ "$quick" = 1 ] && echo 2 || echo 5)
    say "6. fleet mode: $fleet_n simulated nodes"
    fleet_out=$(cargo bench --locked --quiet --bench fleet_scale -- \
        --nodes "$fleet_n" --processes "$fleet_procs" --rounds "$fleet_rounds") \
        || fail "the fleet benchmark failed"
    echo "$fleet_out" >&2
    record fleet "fleet set to the last node's report (median of $fleet_rounds)" "$fleet_n" \
        "$(value set_to_last_report_s "$fleet_out")" "the conductor's hashing included"
    record fleet "credsync-fleet set alone: hash, sign, one transaction (median)" "$fleet_n" \
        "$(value set_s "$fleet_out")"
    record fleet "every agent connected and reported, from their start" "$fleet_n" \
        "$(value connect_all_s "$fleet_out")" "$fleet_procs processes"
    record fleet "etcd memory per node" "$fleet_n" "" \
        "$(value etcd_rss_per_node_kib "$fleet_out") KiB (RSS of the 3 members together, with every node connected, watching and leased, over before)"
    record fleet "etcd connections per node" "$fleet_n" "" \
        "$(value etcd_connections_per_node "$fleet_out") (TCP; the watch, the lease and the requests share it over HTTP/2)"
    record fleet "agent memory per simulated node" "$fleet_n" "" \
        "$(value agent_rss_per_node_kib "$fleet_out") KiB (RSS of the agent processes)"
fi

# ---------------------------------------------------------------- report
say "report"
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), \
$(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r), Debian $(cat /etc/debian_version 2>/dev/null || echo '?'); \
load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$repo/benches/report.py" "$csv" "$out/results.md" "$out/plot.svg" "$machine" \
    "$method${rounds:+ rounds=$rounds}"
if [ "$quick" = 0 ] && [ "$service_only" = 0 ] && [ "$fleet_only" = 0 ]; then
    mkdir -p docs/bench
    cp "$out/results.md" "$out/results.csv" "$out/plot.svg" docs/bench/
elif [ "$quick" = 0 ] && [ "$fleet_only" = 1 ]; then
    mkdir -p docs/bench
    cp "$out/results.md" docs/bench/fleet.md
    cp "$out/results.csv" docs/bench/fleet.csv
elif [ "$quick" = 0 ]; then
    mkdir -p docs/bench
    cp "$out/results.md" docs/bench/service.md
    cp "$out/results.csv" docs/bench/service.csv
fi
cat "$out/results.md"
echo "bench: all results checked; written to $out" >&2
