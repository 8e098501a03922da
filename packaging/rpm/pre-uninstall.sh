# credsync: on erase (not upgrade), stop running credsync-sync at boot.
if [ "$1" -eq 0 ] && [ -x /usr/bin/systemctl ]; then
    systemctl disable credsync-sync.service >/dev/null 2>&1 || :
fi
