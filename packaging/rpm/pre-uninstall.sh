# credsync: on erase (not upgrade), stop running credsync-sync at boot, and
# stop the service and its socket.
if [ "$1" -eq 0 ] && [ -x /usr/bin/systemctl ]; then
    systemctl disable credsync-sync.service >/dev/null 2>&1 || :
    systemctl disable --now credsync-api.socket credsync-api.service >/dev/null 2>&1 || :
fi
