// failsys: an LD_PRELOAD shim that makes one kind of libc call fail for one
// path, the way shadow-utils' own failure tests do, so the tests can prove
// what credsync leaves behind when the disk refuses a write, an fsync, a
// rename or a link half-way through a change.
//
// Built by the tests themselves (tests/cli/syscalls.rs) with
// `cc -shared -fPIC`, and controlled by the environment, read once at load:
//
//   FAILSYS_CALL   the calls to fail, comma-separated families:
//                    write   write, writev, pwrite, pwrite64
//                    fsync   fsync, fdatasync
//                    rename  rename, renameat, renameat2 (either name)
//                    link    link, linkat (either name)
//                    open    open, open64, openat, openat64 for writing
//                    unlink  unlink, unlinkat
//                    ftruncate  ftruncate, ftruncate64
//   FAILSYS_PATH   fnmatch(3) patterns for the path, separated by `|`: `*`
//                  matches `/` too, so `*/etc/shadow+` names the temporary
//                  under any root. Calls on a descriptor are matched against
//                  the name /proc/self/fd gives it.
//   FAILSYS_ERRNO  the error, as a number or one of EIO ENOSPC EDQUOT EROFS
//                  EACCES EPERM EFBIG; default ENOSPC for write and open, EIO
//                  for the others.
//   FAILSYS_AFTER  `family:pattern`, family rename, link or unlink: fail
//                  nothing until such a call on a matching path has
//                  succeeded (e.g. `rename:*/etc/shadow`: only once the new
//                  /etc/shadow is in place).
//   FAILSYS_SKIP   let this many matching calls succeed first (default 0).
//   FAILSYS_COUNT  fail at most this many (default: every one after that).
//   FAILSYS_LOG    a file that gets one line per failure injected, so a
//                  test can prove the fault really happened.
//
// Nothing here may call a function it intercepts through the public name.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum family {
    F_WRITE = 1 << 0,
    F_FSYNC = 1 << 1,
    F_RENAME = 1 << 2,
    F_LINK = 1 << 3,
    F_OPEN = 1 << 4,
    F_UNLINK = 1 << 5,
    F_FTRUNCATE = 1 << 6,
};

static const struct {
    const char *name;
    int family;
} families[] = {
    {"write", F_WRITE},   {"fsync", F_FSYNC},   {"rename", F_RENAME},
    {"link", F_LINK},     {"open", F_OPEN},     {"unlink", F_UNLINK},
    {"ftruncate", F_FTRUNCATE},
};

static const struct {
    const char *name;
    int value;
} errnos[] = {
    {"EIO", EIO},       {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT}, {"EROFS", EROFS},
    {"EACCES", EACCES}, {"EPERM", EPERM},   {"EFBIG", EFBIG},
};

/* The configuration, fixed at load. */
static int wanted;             /* families to fail */
static char pattern[PATH_MAX]; /* FAILSYS_PATH */
static int forced_errno;       /* 0: the family's default */
static int after_family;       /* 0: armed from the start */
static char after_pattern[PATH_MAX];
static long skip;
static long count = -1; /* -1: unlimited */
static char log_path[PATH_MAX];

static atomic_int armed;
static atomic_long matched;

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned int);
static int (*real_link)(const char *, const char *);
static int (*real_linkat)(int, const char *, int, const char *, int);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off64_t);

/*
 * The libc functions behind ours, looked up at first use: other libraries'
 * constructors (libcap-ng's opens a file) run before this one's.
 */
static pthread_once_t resolved = PTHREAD_ONCE_INIT;

static void resolve(void) {
    real_write = dlsym(RTLD_NEXT, "write");
    real_writev = dlsym(RTLD_NEXT, "writev");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_rename = dlsym(RTLD_NEXT, "rename");
    real_renameat = dlsym(RTLD_NEXT, "renameat");
    real_renameat2 = dlsym(RTLD_NEXT, "renameat2");
    real_link = dlsym(RTLD_NEXT, "link");
    real_linkat = dlsym(RTLD_NEXT, "linkat");
    real_open = dlsym(RTLD_NEXT, "open");
    real_open64 = dlsym(RTLD_NEXT, "open64");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_openat64 = dlsym(RTLD_NEXT, "openat64");
    real_unlink = dlsym(RTLD_NEXT, "unlink");
    real_unlinkat = dlsym(RTLD_NEXT, "unlinkat");
    real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
    real_ftruncate64 = dlsym(RTLD_NEXT, "ftruncate64");
}

#define REAL(name) (pthread_once(&resolved, resolve), real_##name)

static int parse_families(const char *text) {
    int result = 0;
    char copy[256];
    snprintf(copy, sizeof copy, "%s", text);
    for (char *save = NULL, *word = strtok_r(copy, ",", &save); word != NULL;
         word = strtok_r(NULL, ",", &save)) {
        size_t i;
        for (i = 0; i < sizeof families / sizeof families[0]; i++) {
            if (strcmp(word, families[i].name) == 0) {
                result |= families[i].family;
                break;
            }
        }
        if (i == sizeof families / sizeof families[0]) {
            fprintf(stderr, "failsys: unknown call family '%s'\n", word);
            _exit(125);
        }
    }
    return result;
}

static int parse_errno(const char *text) {
    for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++) {
        if (strcmp(text, errnos[i].name) == 0) {
            return errnos[i].value;
        }
    }
    char *end;
    long value = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || value <= 0) {
        fprintf(stderr, "failsys: unknown errno '%s'\n", text);
        _exit(125);
    }
    return (int)value;
}

__attribute__((constructor)) static void failsys_init(void) {

    const char *call = getenv("FAILSYS_CALL");
    const char *path = getenv("FAILSYS_PATH");
    if (call == NULL || path == NULL) {
        return;
    }
    snprintf(pattern, sizeof pattern, "%s", path);
    const char *value;
    if ((value = getenv("FAILSYS_ERRNO")) != NULL) {
        forced_errno = parse_errno(value);
    }
    if ((value = getenv("FAILSYS_SKIP")) != NULL) {
        skip = strtol(value, NULL, 10);
    }
    if ((value = getenv("FAILSYS_COUNT")) != NULL) {
        count = strtol(value, NULL, 10);
    }
    if ((value = getenv("FAILSYS_LOG")) != NULL) {
        snprintf(log_path, sizeof log_path, "%s", value);
    }
    if ((value = getenv("FAILSYS_AFTER")) != NULL) {
        const char *colon = strchr(value, ':');
        if (colon == NULL) {
            fprintf(stderr, "failsys: FAILSYS_AFTER is not family:pattern\n");
            _exit(125);
        }
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(colon - value), value);
        after_family = parse_families(name);
        snprintf(after_pattern, sizeof after_pattern, "%s", colon + 1);
    }
    atomic_store(&armed, after_family == 0);
    wanted = parse_families(call);
}

/* The name of what `fd` refers to, or "" if there is none. */
static void fd_path(int fd, char *out, size_t size) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, size - 1);
    out[n < 0 ? 0 : n] = '\0';
}

/* `path` relative to `dirfd` made absolute, as far as it can be. */
static void at_path(int dirfd, const char *path, char *out, size_t size) {
    if (path == NULL) {
        out[0] = '\0';
    } else if (path[0] == '/' || dirfd == AT_FDCWD) {
        snprintf(out, size, "%s", path);
    } else {
        char dir[PATH_MAX];
        fd_path(dirfd, dir, sizeof dir);
        if (snprintf(out, size, "%s/%s", dir, path) >= (int)size) {
            out[0] = '\0'; /* too long to name: matches nothing */
        }
    }
}

/* Whether `path` matches one of the `|`-separated patterns in `globs`. */
static int matches(const char *globs, const char *path) {
    if (path == NULL || path[0] == '\0') {
        return 0;
    }
    char one[PATH_MAX];
    for (const char *start = globs;; ) {
        const char *end = strchr(start, '|');
        size_t len = end == NULL ? strlen(start) : (size_t)(end - start);
        if (len < sizeof one) {
            memcpy(one, start, len);
            one[len] = '\0';
            if (fnmatch(one, path, 0) == 0) {
                return 1;
            }
        }
        if (end == NULL) {
            return 0;
        }
        start = end + 1;
    }
}

static void note(const char *call, const char *path, int err) {
    if (log_path[0] == '\0') {
        return;
    }
    char line[PATH_MAX + 128];
    int n = snprintf(line, sizeof line, "%s %s %s\n", call, path, strerrorname_np(err));
    int fd = REAL(open)(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (REAL(write)(fd, line, (size_t)n) < 0) {
            /* Nothing more to do: the test sees no line and says so. */
        }
        close(fd);
    }
}

/*
 * Whether this call must fail; if so, errno is set and it is logged.
 * `second` is the other name of a rename or link.
 */
static int fails(int family, const char *call, const char *path, const char *second) {
    if (!(wanted & family) || !atomic_load(&armed)) {
        return 0;
    }
    const char *hit = matches(pattern, path) ? path : matches(pattern, second) ? second : NULL;
    if (hit == NULL) {
        return 0;
    }
    long n = atomic_fetch_add(&matched, 1);
    if (n < skip || (count >= 0 && n >= skip + count)) {
        return 0;
    }
    int err = forced_errno != 0                          ? forced_errno
              : (family & (F_WRITE | F_OPEN | F_FTRUNCATE)) ? ENOSPC
                                                           : EIO;
    note(call, hit, err);
    errno = err;
    return 1;
}

/* After a call succeeded: arm if it is the one FAILSYS_AFTER waits for. */
static void passed(int family, const char *path, const char *second) {
    if ((after_family & family) &&
        (matches(after_pattern, path) || matches(after_pattern, second))) {
        atomic_store(&armed, 1);
    }
}

static int fd_fails(int family, const char *call, int fd) {
    if (!(wanted & family) || !atomic_load(&armed)) {
        return 0;
    }
    char path[PATH_MAX];
    fd_path(fd, path, sizeof path);
    return fails(family, call, path, NULL);
}

ssize_t write(int fd, const void *buf, size_t n) {
    if (fd_fails(F_WRITE, "write", fd)) {
        return -1;
    }
    return REAL(write)(fd, buf, n);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    if (fd_fails(F_WRITE, "writev", fd)) {
        return -1;
    }
    return REAL(writev)(fd, iov, cnt);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t offset) {
    if (fd_fails(F_WRITE, "pwrite", fd)) {
        return -1;
    }
    return REAL(pwrite)(fd, buf, n, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t offset) {
    if (fd_fails(F_WRITE, "pwrite64", fd)) {
        return -1;
    }
    return REAL(pwrite64)(fd, buf, n, offset);
}

int fsync(int fd) {
    if (fd_fails(F_FSYNC, "fsync", fd)) {
        return -1;
    }
    return REAL(fsync)(fd);
}

int fdatasync(int fd) {
    if (fd_fails(F_FSYNC, "fdatasync", fd)) {
        return -1;
    }
    return REAL(fdatasync)(fd);
}

int ftruncate(int fd, off_t length) {
    if (fd_fails(F_FTRUNCATE, "ftruncate", fd)) {
        return -1;
    }
    return REAL(ftruncate)(fd, length);
}

int ftruncate64(int fd, off64_t length) {
    if (fd_fails(F_FTRUNCATE, "ftruncate64", fd)) {
        return -1;
    }
    return REAL(ftruncate64)(fd, length);
}

static int renamed(int rc, const char *from, const char *to) {
    if (rc == 0) {
        passed(F_RENAME, from, to);
    }
    return rc;
}

int rename(const char *from, const char *to) {
    if (fails(F_RENAME, "rename", from, to)) {
        return -1;
    }
    return renamed(REAL(rename)(from, to), from, to);
}

int renameat(int fromdir, const char *from, int todir, const char *to) {
    char a[PATH_MAX], b[PATH_MAX];
    at_path(fromdir, from, a, sizeof a);
    at_path(todir, to, b, sizeof b);
    if (fails(F_RENAME, "renameat", a, b)) {
        return -1;
    }
    return renamed(REAL(renameat)(fromdir, from, todir, to), a, b);
}

int renameat2(int fromdir, const char *from, int todir, const char *to, unsigned int flags) {
    char a[PATH_MAX], b[PATH_MAX];
    at_path(fromdir, from, a, sizeof a);
    at_path(todir, to, b, sizeof b);
    if (fails(F_RENAME, "renameat2", a, b)) {
        return -1;
    }
    return renamed(REAL(renameat2)(fromdir, from, todir, to, flags), a, b);
}

static int linked(int rc, const char *from, const char *to) {
    if (rc == 0) {
        passed(F_LINK, from, to);
    }
    return rc;
}

int link(const char *from, const char *to) {
    if (fails(F_LINK, "link", from, to)) {
        return -1;
    }
    return linked(REAL(link)(from, to), from, to);
}

int linkat(int fromdir, const char *from, int todir, const char *to, int flags) {
    char a[PATH_MAX], b[PATH_MAX];
    at_path(fromdir, from, a, sizeof a);
    at_path(todir, to, b, sizeof b);
    if (fails(F_LINK, "linkat", a, b)) {
        return -1;
    }
    return linked(REAL(linkat)(fromdir, from, todir, to, flags), a, b);
}

int unlink(const char *path) {
    if (fails(F_UNLINK, "unlink", path, NULL)) {
        return -1;
    }
    int rc = REAL(unlink)(path);
    if (rc == 0) {
        passed(F_UNLINK, path, NULL);
    }
    return rc;
}

int unlinkat(int dirfd, const char *path, int flags) {
    char full[PATH_MAX];
    at_path(dirfd, path, full, sizeof full);
    if (fails(F_UNLINK, "unlinkat", full, NULL)) {
        return -1;
    }
    int rc = REAL(unlinkat)(dirfd, path, flags);
    if (rc == 0) {
        passed(F_UNLINK, full, NULL);
    }
    return rc;
}

static mode_t mode_of(int flags, va_list args) {
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(args, unsigned int) : 0;
}

/* Only opens for writing are failed: reading is not what these tests are about. */
static int writing(int flags) {
    return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TMPFILE | O_TRUNC)) != 0;
}

int open(const char *path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_of(flags, args);
    va_end(args);
    if (writing(flags) && fails(F_OPEN, "open", path, NULL)) {
        return -1;
    }
    return REAL(open)(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_of(flags, args);
    va_end(args);
    if (writing(flags) && fails(F_OPEN, "open64", path, NULL)) {
        return -1;
    }
    return REAL(open64)(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_of(flags, args);
    va_end(args);
    if (writing(flags)) {
        char full[PATH_MAX];
        at_path(dirfd, path, full, sizeof full);
        if (fails(F_OPEN, "openat", full, NULL)) {
            return -1;
        }
    }
    return REAL(openat)(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_of(flags, args);
    va_end(args);
    if (writing(flags)) {
        char full[PATH_MAX];
        at_path(dirfd, path, full, sizeof full);
        if (fails(F_OPEN, "openat64", full, NULL)) {
            return -1;
        }
    }
    return REAL(openat64)(dirfd, path, flags, mode);
}
