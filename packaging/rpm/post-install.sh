# credsync: the store's directory, root only (credsync refuses a directory
# others can write). An upgrade leaves it and the store as they are.
if [ ! -e /var/lib/credsync ]; then
    install -d -m 0700 -o root -g root /var/lib/credsync
fi
if [ -x /usr/bin/systemctl ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl enable credsync-sync.service >/dev/null 2>&1 || :
        # The applications' socket listens from now on; the service starts
        # at the first connection.
        systemctl enable --now credsync-api.socket >/dev/null 2>&1 || :
    else
        # An upgrade: a running service finishes its calls and restarts.
        systemctl try-restart credsync-api.service >/dev/null 2>&1 || :
    fi
fi
