# credsync-web: on erase (not upgrade), stop the page and its start at boot.
if [ "$1" -eq 0 ] && [ -x /usr/bin/systemctl ]; then
    systemctl disable --now credsync-web.service >/dev/null 2>&1 || :
fi
