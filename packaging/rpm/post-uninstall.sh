# credsync: the store in /var/lib/credsync is the application's password
# record and is kept when the package is erased (RPM has no purge); remove
# it by hand when it is no longer wanted.
if [ -x /usr/bin/systemctl ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
