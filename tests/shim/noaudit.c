// noaudit: an LD_PRELOAD shim that stands in for a kernel without audit, or
// one that refuses audit records, so the tests can prove a change never
// depends on the audit trail.
//
// Built by the tests themselves (tests/system/rootside.rs) with
// `cc -shared -fPIC`, and controlled by the environment, read at each call:
//
//   NOAUDIT_MODE  socket (the default): socket(AF_NETLINK, *, NETLINK_AUDIT)
//                 fails with EPROTONOSUPPORT, as on a kernel built without
//                 audit (libaudit's audit_open then gives up);
//                 send: the socket opens, but sendto/send/sendmsg on an
//                 audit socket fail with EPERM, as without CAP_AUDIT_WRITE.
//   NOAUDIT_LOG   a file that gets one line per refusal ("socket
//                 EPROTONOSUPPORT", "sendto EPERM"), so a test can prove the
//                 refusal really happened.
//
// Nothing here may call a function it intercepts through the public name.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

static int send_mode(void) {
    const char *mode = getenv("NOAUDIT_MODE");
    return mode != NULL && strcmp(mode, "send") == 0;
}

static void note(const char *what) {
    const char *path = getenv("NOAUDIT_LOG");
    if (path == NULL) {
        return;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        char line[64];
        int n = snprintf(line, sizeof line, "%s\n", what);
        if (write(fd, line, (size_t)n) < 0) {
            /* Nothing more to do: the test sees no line and says so. */
        }
        close(fd);
    }
}

/* Whether `fd` is an audit netlink socket. */
static int is_audit(int fd) {
    int domain = 0, protocol = 0;
    socklen_t len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_NETLINK) {
        return 0;
    }
    len = sizeof protocol;
    return getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) == 0 &&
           protocol == NETLINK_AUDIT;
}

int socket(int domain, int type, int protocol) {
    static int (*real)(int, int, int);
    if (real == NULL) {
        real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
    }
    if (domain == AF_NETLINK && protocol == NETLINK_AUDIT && !send_mode()) {
        note("socket EPROTONOSUPPORT");
        errno = EPROTONOSUPPORT;
        return -1;
    }
    return real(domain, type, protocol);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to,
               socklen_t tolen) {
    static ssize_t (*real)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    if (real == NULL) {
        real = (ssize_t (*)(int, const void *, size_t, int, const struct sockaddr *,
                            socklen_t))dlsym(RTLD_NEXT, "sendto");
    }
    if (send_mode() && is_audit(fd)) {
        note("sendto EPERM");
        errno = EPERM;
        return -1;
    }
    return real(fd, buf, n, flags, to, tolen);
}

ssize_t send(int fd, const void *buf, size_t n, int flags) {
    static ssize_t (*real)(int, const void *, size_t, int);
    if (real == NULL) {
        real = (ssize_t (*)(int, const void *, size_t, int))dlsym(RTLD_NEXT, "send");
    }
    if (send_mode() && is_audit(fd)) {
        note("send EPERM");
        errno = EPERM;
        return -1;
    }
    return real(fd, buf, n, flags);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
    static ssize_t (*real)(int, const struct msghdr *, int);
    if (real == NULL) {
        real = (ssize_t (*)(int, const struct msghdr *, int))dlsym(RTLD_NEXT, "sendmsg");
    }
    if (send_mode() && is_audit(fd)) {
        note("sendmsg EPERM");
        errno = EPERM;
        return -1;
    }
    return real(fd, msg, flags);
}
