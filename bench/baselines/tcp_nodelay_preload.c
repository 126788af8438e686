/*
 * LD_PRELOAD shim: turn on TCP_NODELAY for every TCP socket a process connects or
 * accepts.  Used only for the "sst nodelay" variant of the SST baseline.
 *
 * Why: EVPath's sockets transport (SST's default control plane, and WAN data plane)
 * never sets TCP_NODELAY (checked with strace: only SO_KEEPALIVE and SO_LINGER).  Its
 * small control messages then hit the classic Nagle + delayed-ACK stall, so a 4 KiB step
 * takes ~44 ms instead of ~0.1 ms.  Stock SST is still measured; this variant shows
 * what SST costs once that one-line misconfiguration is out of the way, so a twinstream
 * comparison is not won on a trivially fixable artefact.
 *
 * Build: cc -O2 -shared -fPIC -o tcp_nodelay_preload.so tcp_nodelay_preload.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void set_nodelay_if_tcp(int fd) {
    int saved = errno; /* callers must see the errno of the real call, not ours */
    int domain = 0, type = 0, one = 1;
    socklen_t len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 &&
        (domain == AF_INET || domain == AF_INET6)) {
        len = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    errno = saved;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real_connect)(int, const struct sockaddr *, socklen_t);
    if (!real_connect) real_connect = dlsym(RTLD_NEXT, "connect");
    set_nodelay_if_tcp(fd); /* valid before connect, and covers non-blocking connects */
    return real_connect(fd, addr, len);
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    static int (*real_accept)(int, struct sockaddr *, socklen_t *);
    if (!real_accept) real_accept = dlsym(RTLD_NEXT, "accept");
    int conn = real_accept(fd, addr, len);
    if (conn >= 0) set_nodelay_if_tcp(conn);
    return conn;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
    if (!real_accept4) real_accept4 = dlsym(RTLD_NEXT, "accept4");
    int conn = real_accept4(fd, addr, len, flags);
    if (conn >= 0) set_nodelay_if_tcp(conn);
    return conn;
}
