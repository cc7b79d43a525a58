/*
 * listen.c — the listening socket (systemd socket activation, a Unix
 * socket, or TCP) and dropping root after binding.
 *
 * The master opens one socket and every worker inherits it. Each worker
 * polls it from its own loop and the kernel hands each connection to one
 * of them. One shared socket (rather than one SO_REUSEPORT socket per
 * worker) is what makes reloads lossless: a retiring worker stops polling,
 * but the socket and its queue of pending connections stay open in the
 * master and the new workers, so no connection is refused or reset.
 */
#include <errno.h>
#include <grp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "server/server.h"

#define BACKLOG 4096

/* systemd passes sockets from fd 3 on, for the process LISTEN_PID names. */
static int systemd_socket(bool *is_unix)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    if (!pid || !fds || atol(pid) != (long)getpid() || atoi(fds) < 1)
        return -1;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    int fd = 3, domain = 0;
    socklen_t len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0)
        return -1;
    *is_unix = domain == AF_UNIX;
    return fd;
}

static int unix_socket(const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "carafe: --unix path too long: %s\n", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* A socket file left by an earlier run would make bind fail. Remove
     * it only if it is a socket nobody answers on. */
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) != 0)
            unlink(path);
        if (probe >= 0)
            close(probe);
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, BACKLOG) != 0) {
        fprintf(stderr, "carafe: cannot listen on unix:%s: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    chmod(path, 0666); /* the front proxy usually runs as another user */
    return fd;
}

static int tcp_socket(const char *host, int port)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "carafe: cannot resolve %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        /* Lets a second server start on the port during a deploy. */
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, BACKLOG) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        fprintf(stderr, "carafe: cannot listen on %s:%d: %s\n", host, port, strerror(err));
    return fd;
}

int cf_listen_open(const cf_server_opts *o, bool *is_unix, char *desc, size_t cap)
{
    *is_unix = false;
    int fd = systemd_socket(is_unix);
    if (fd >= 0) {
        snprintf(desc, cap, "the socket systemd passed (fd 3)");
        return fd;
    }
    if (o->unix_path) {
        *is_unix = true;
        fd = unix_socket(o->unix_path);
        snprintf(desc, cap, "unix:%s", o->unix_path);
        return fd;
    }
    fd = tcp_socket(o->host, o->port);
    if (fd < 0)
        return -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int port = o->port;
    char host[64];
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, NULL, 0, NI_NUMERICHOST) == 0) {
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
        snprintf(desc, cap, ss.ss_family == AF_INET6 ? "http://[%s]:%d" : "http://%s:%d", host, port);
    } else {
        snprintf(desc, cap, "http://%s:%d", o->host, port);
    }
    return fd;
}

int cf_drop_privileges(const cf_server_opts *o)
{
    if (!o->user && !o->group)
        return 0;
    if (geteuid() != 0) {
        fprintf(stderr, "carafe: --user/--group need the server to start as root\n");
        return -1;
    }
    gid_t gid = 0;
    struct passwd *pw = NULL;
    if (o->user && !(pw = getpwnam(o->user))) {
        fprintf(stderr, "carafe: no such user: %s\n", o->user);
        return -1;
    }
    if (o->group) {
        struct group *gr = getgrnam(o->group);
        if (!gr) {
            fprintf(stderr, "carafe: no such group: %s\n", o->group);
            return -1;
        }
        gid = gr->gr_gid;
    } else {
        gid = pw->pw_gid;
    }
    if ((pw ? initgroups(pw->pw_name, gid) : setgroups(0, NULL)) != 0 || setgid(gid) != 0 ||
        (pw && setuid(pw->pw_uid) != 0)) {
        fprintf(stderr, "carafe: cannot drop privileges: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}
