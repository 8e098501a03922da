# credsync-fleet: on erase (not upgrade), stop the agent and its start at boot.
if [ "$1" -eq 0 ] && [ -x /usr/bin/systemctl ]; then
    systemctl disable --now credsync-fleet.service >/dev/null 2>&1 || :
fi
