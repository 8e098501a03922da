#!/usr/bin/env bash
# credsync's main job, end to end, on a throw-away sandbox: a private mount
# namespace in which a copy of /etc is mounted over /etc and tmpfs over
# /var/lib and /run. The real PAM stack and the real shadow-utils run there;
# the host's accounts, /etc and /var/lib are never touched.
#
# The story is the appliance's: enrol admin, admin changes the password with
# `set password`, root recovers it, someone runs `passwd` outside credsync,
# then again with pam_credsync.so in the stack,
# the service restarts (`credsync sync`), the GUI changes it through
# credsyncd while a Monitor stream hears of it, and both stores accept the
# password after each step.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "demo: run as root (it needs a private mount namespace)" >&2
    exit 1
fi
source scripts/setup.sh
cargo build --release --locked --quiet --workspace

if [ "${1:-}" != "--inside" ]; then
    exec unshare --mount --propagation private "$0" --inside
fi

sandbox=$(mktemp -d /tmp/credsync-demo.XXXXXX)
trap 'umount "$sandbox/bin" 2>/dev/null; rm -rf "$sandbox"' EXIT
cp -a /etc "$sandbox/etc"
mount --bind "$sandbox/etc" /etc
mount -t tmpfs tmpfs /var/lib
mount -t tmpfs tmpfs /run
mkdir -p "$sandbox/bin"
mount -t tmpfs -o mode=0755,suid tmpfs "$sandbox/bin"
install -m 4755 -o root target/release/credsync "$sandbox/bin/credsync"
install -m 0644 pam.d/credsync /etc/pam.d/credsync
credsync="$sandbox/bin/credsync"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }
pam_accepts() { printf '%s\n' "$2" | pamtester credsync "$1" authenticate >/dev/null 2>&1; }
verify_accepts() { printf '%s\n' "$2" | "$credsync" verify "$1" --stdin; }
check() {
    local what=$1 user=$2 password=$3
    if pam_accepts "$user" "$password" && verify_accepts "$user" "$password"; then
        echo "   ok: Linux (pam_unix) and the application record both accept the $what password"
    else
        echo "   FAILED: the stores disagree about the $what password" >&2
        exit 1
    fi
}

step "An appliance with a Linux account 'admin' (created with useradd, password set by chpasswd)"
useradd -M -s /bin/sh admin
admin_uid=$(id -u admin)
echo 'admin:Factory#Pass1' | chpasswd

step "The appliance's policy keeps a day between changes; this demo runs in a minute, so it waives that"
show "printf '[policy]\\nmin_age_days = 0\\n' > /etc/credsync/credsync.toml"
mkdir -p /etc/credsync
printf '[policy]\nmin_age_days = 0\n' > /etc/credsync/credsync.toml

step "Enrol admin: the first change through credsync makes the account managed"
show "credsync recover admin"
printf 'Initial#Pass2\n' | "$credsync" recover admin --stdin
check initial admin 'Initial#Pass2'

step "The rest of the policy holds: a weak new password is refused, every broken rule listed, nothing changed"
show "credsync set password   # run as admin, new password 'admin2024'"
if printf 'Initial#Pass2\nadmin2024\n' |
    setpriv --reuid="$admin_uid" --regid="$(id -g admin)" --clear-groups "$credsync" set password --stdin; then
    echo "   FAILED: a weak password was accepted" >&2
    exit 1
fi
check unchanged admin 'Initial#Pass2'

step "admin changes the password with the appliance CLI's words (setuid credsync, PAM checks the current one)"
show "credsync set password   # run as admin"
printf 'Initial#Pass2\nChanged#Pass3\n' |
    setpriv --reuid="$admin_uid" --regid="$(id -g admin)" --clear-groups "$credsync" set password --stdin
check changed admin 'Changed#Pass3'

step "admin forgot it: root recovers it in one step (no second change in the application needed)"
show "sudo credsync recover admin"
printf 'Recovered#Pass4\n' | "$credsync" recover admin --stdin
check recovered admin 'Recovered#Pass4'

step "Someone uses the old vendor procedure: 'passwd admin' in Linux, outside credsync"
show "passwd admin"
printf 'Outside#Pass5\nOutside#Pass5\n' | passwd admin >/dev/null 2>&1
"$credsync" status admin

step "The service restarts: credsync sync runs first and adopts the Linux change instead of undoing it"
show "credsync sync"
"$credsync" sync
check outside admin 'Outside#Pass5'

step "With the PAM module in the stack (the package puts it there), passwd reaches the record in the same command"
printf 'password\toptional\t%s\n' "$PWD/target/release/libpam_credsync.so" >>/etc/pam.d/common-password
show "passwd admin"
printf 'ThroughPam#Pass6\nThroughPam#Pass6\n' | passwd admin >/dev/null 2>&1
"$credsync" status admin
check "PAM-changed" admin 'ThroughPam#Pass6'

step "The appliance's GUI changes the password through the service, credsyncd, and hears of it on a Monitor stream"
groupadd --system appsvc
useradd --system -g appsvc -M -s /usr/sbin/nologin appsvc
printf '[api]\ngroups = ["appsvc", "credsync-web"]\nexit_idle_secs = 0\n' >>/etc/credsync/credsync.toml
api=/run/credsync/io.credsync.Credentials
target/release/credsyncd 2>/dev/null &
daemon=$!
for _ in $(seq 50); do [ -S "$api" ] && break; sleep 0.1; done
awk '/^## Applications/{on=1} on && /^```python/{grab=1; next} grab && /^```/{exit} grab' README.md >"$sandbox/client.py"
show "credsync api call --more Monitor '{\"initial\": false}'   # the application's session keeper"
timeout 10 "$credsync" api call --more Monitor '{"initial": false}' >"$sandbox/events" &
monitor=$!
sleep 0.5
show "ChangePassword(admin, current, new) from the README's Python client, run as the GUI's account 'appsvc'"
# The client as the README writes it (its example lines left out), then the call.
{
    sed 's/^if __name__ == "__main__":/if False:/' "$sandbox/client.py"
    echo "print('   reply:', call('ChangePassword', user='admin', current_password='ThroughPam#Pass6', new_password='FromTheGui#Pass7'))"
} | setpriv --reuid=appsvc --regid=appsvc --init-groups /usr/bin/python3 -
for _ in $(seq 50); do grep -q admin "$sandbox/events" && break; sleep 0.1; done
kill "$monitor" 2>/dev/null || true
echo "   the monitor heard: $(head -n 1 "$sandbox/events")"
check "GUI-changed" admin 'FromTheGui#Pass7'

step "Profile -> Change Password on credsync's own page, credsync-web (its own user, a client of credsyncd)"
useradd --system --user-group -M -s /usr/sbin/nologin credsync-web
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
web=http://127.0.0.1:$port
setpriv --reuid=credsync-web --regid=credsync-web --init-groups \
    target/release/credsync-web --listen "127.0.0.1:$port" --config /dev/null 2>/dev/null &
web_pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "$web/login" && break; sleep 0.1; done
jar=$sandbox/cookies
form_token() { curl -s -c "$jar" -b "$jar" "$1" | sed -n 's/.*name="csrf" value="\([0-9a-f]*\)".*/\1/p' | head -n 1; }
show "a browser at $web/login: admin logs in, opens Profile -> Change Password, fills the three fields, clicks Save"
curl -s -c "$jar" -b "$jar" -o /dev/null --data-urlencode "csrf=$(form_token "$web/login")" \
    --data-urlencode user=admin --data-urlencode 'password=FromTheGui#Pass7' "$web/login"
saved=$(curl -s -c "$jar" -b "$jar" --data-urlencode "csrf=$(form_token "$web/profile/password")" \
    --data-urlencode 'current=FromTheGui#Pass7' --data-urlencode 'new=Web$Page-Chosen8' \
    --data-urlencode 'confirm=Web$Page-Chosen8' "$web/profile/password")
grep -q 'Password updated successfully' <<<"$saved" || {
    echo "   FAILED: the page did not save the password" >&2
    exit 1
}
echo "   the page says: Password updated successfully"
kill "$web_pid" 2>/dev/null || true
kill -TERM "$daemon" && wait "$daemon"
check "web-changed" admin 'Web$Page-Chosen8'

step "Status of every managed account"
show "credsync status"
"$credsync" status
echo
echo "demo: done; the sandbox is gone and the host was not touched"
