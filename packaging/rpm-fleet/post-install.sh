# credsync-fleet: the agent's unit is enabled, never started here: it runs
# only where /etc/credsync/fleet.toml exists (the package ships none), from
# the next boot or the administrator's systemctl start. An upgrade restarts
# a running agent on the new binary.
if [ -x /usr/bin/systemctl ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl enable credsync-fleet.service >/dev/null 2>&1 || :
    else
        systemctl try-restart credsync-fleet.service >/dev/null 2>&1 || :
    fi
fi
