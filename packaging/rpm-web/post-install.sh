# credsync-web: its system user and group (usr/lib/sysusers.d/credsync-web.conf),
# before the service first starts. useradd where systemd-sysusers is missing.
if [ -x /usr/bin/systemd-sysusers ]; then
    systemd-sysusers credsync-web.conf || :
elif ! getent passwd credsync-web >/dev/null; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --comment "credsync self-service page" credsync-web || :
fi
if [ -x /usr/bin/systemctl ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        # It listens on loopback only, for the appliance's proxy.
        systemctl enable --now credsync-web.service >/dev/null 2>&1 || :
    else
        systemctl try-restart credsync-web.service >/dev/null 2>&1 || :
    fi
fi
