# credsync-web: the system user credsync-web stays after an erase, as
# packaged system users do: a file an administrator gave it (a TLS key) may
# still name its uid, which a later account must not inherit.
if [ -x /usr/bin/systemctl ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
