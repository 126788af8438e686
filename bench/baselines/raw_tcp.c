/*
 * raw_tcp: the "no middleware" baseline for the end-to-end streaming benchmark.
 *
 * Two processes on one host (fork) talk over one TCP connection on 127.0.0.1 with the
 * same step pattern the streaming engines use: each step the sender writes a 16-byte
 * header (step index, CLOCK_MONOTONIC send timestamp) followed by S payload bytes; the
 * receiver reads the whole step into its own buffer.  Whatever a streaming layer adds on
 * top of this (metadata, queues, marshalling, extra copies) is its overhead.
 *
 *   --mode throughput  sender streams all steps back to back (pipelined, no acks);
 *                      per-step latencies are then "loaded" latencies (include queueing).
 *   --mode latency     ping-pong: the receiver answers every step with a 1-byte ack and
 *                      the sender waits for it, so latencies are unloaded one-way times.
 *
 * One-way latency = receiver's CLOCK_MONOTONIC when the last payload byte has arrived
 * minus the sender's timestamp from the header.  Both processes share one host clock,
 * so no halving of round trips (and no assumption of symmetry) is needed.
 *
 * Throughput is measured on the receiver, over the steps after a short warm-up (slow
 * start, first-touch page faults), so it is comparable to the SST reader-side number.
 *
 * --cpus S,R pins the sender to CPU S and the receiver to CPU R.  On a small VM the
 * scheduler's placement otherwise decides the result: ping-pong on one CPU keeps the step
 * in that core's cache and avoids cross-CPU wake-ups, and runs 2-4x faster than across
 * CPUs, so unpinned runs come out bimodal.
 *
 * Output: one JSON object on stdout.  "gbps" is GB/s (1e9 bytes per second).  sndbuf and
 * rcvbuf are the effective sizes as getsockopt reports them (the kernel doubles the
 * requested value to account for its bookkeeping overhead).
 * Build: cc -O2 -o raw_tcp raw_tcp.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Requested SO_SNDBUF/SO_RCVBUF; --sockbuf overrides, 0 keeps kernel autotuning. */
static int sock_buf_bytes = 4 << 20;

struct step_header {
    uint64_t step;
    uint64_t send_ns; /* CLOCK_MONOTONIC, shared by both processes on this host */
};

static void die(const char *what) {
    fprintf(stderr, "raw_tcp: %s: %s\n", what, strerror(errno));
    exit(2);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Ask for fixed socket buffers (4 MiB by default).  Plain SO_SNDBUF/SO_RCVBUF are
 * silently capped at net.core.{w,r}mem_max (often 208 KiB), so try the privileged *FORCE
 * variants first; the effective sizes are reported in the JSON so a capped run is
 * visible.  Note fixed buffers switch off the kernel's autotuning: on loopback, large
 * buffers let more data sit in flight than fits in cache, which can cost throughput. */
static void set_buffers(int fd) {
    int sz = sock_buf_bytes;
    if (sz <= 0) return;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) != 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
}

static void set_nodelay(int fd) {
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) die("TCP_NODELAY");
}

static int get_int_opt(int fd, int opt) {
    int v = 0;
    socklen_t len = sizeof v;
    getsockopt(fd, SOL_SOCKET, opt, &v, &len);
    return v;
}

/* Write all of iov[0..n), advancing through partial writes. */
static void write_all_iov(int fd, struct iovec *iov, int n) {
    while (n > 0) {
        struct msghdr msg = {0};
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)n;
        ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("sendmsg");
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
}

static void read_all(int fd, void *buf, size_t len) {
    char *p = buf;
    while (len > 0) {
        ssize_t r = read(fd, p, len);
        if (r < 0) {
            if (errno == EINTR) continue;
            die("read");
        }
        if (r == 0) {
            fprintf(stderr, "raw_tcp: peer closed early\n");
            exit(2);
        }
        p += r;
        len -= (size_t)r;
    }
}

static void run_sender(int port, size_t bytes, long steps, int latency_mode) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    set_buffers(fd); /* before connect so the window scale is negotiated for 4 MiB */
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("connect");
    set_nodelay(fd);

    /* Touch the payload once so page faults are not charged to the first steps. */
    unsigned char *payload = malloc(bytes ? bytes : 1);
    if (!payload) die("malloc");
    memset(payload, 0xA5, bytes);

    for (long s = 0; s < steps; s++) {
        struct step_header h;
        h.step = (uint64_t)s;
        /* Stamp the ends of the payload so the receiver can check it got this step. */
        if (bytes) payload[0] = payload[bytes - 1] = (unsigned char)s;
        h.send_ns = now_ns();
        struct iovec iov[2] = {{&h, sizeof h}, {payload, bytes}};
        write_all_iov(fd, iov, bytes ? 2 : 1);
        if (latency_mode) {
            char ack;
            read_all(fd, &ack, 1);
        }
    }
    close(fd);
    free(payload);
}

/* Pin the calling process to one CPU; cpu < 0 leaves placement to the scheduler. */
static void pin_to_cpu(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Linear-interpolation percentile on sorted data (numpy's default method), so these
 * numbers line up with the Python-side statistics of the other baselines. */
static double percentile(const double *sorted, long n, double q) {
    if (n <= 0) return 0.0;
    double pos = q * (double)(n - 1);
    long lo = (long)pos;
    if (lo >= n - 1) return sorted[n - 1];
    double frac = pos - (double)lo;
    return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

int main(int argc, char **argv) {
    size_t bytes = 1 << 20;
    long steps = 100;
    long warmup = -1;
    int latency_mode = 0;
    int timeout_s = 60;
    int sender_cpu = -1, receiver_cpu = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--bytes") && v) bytes = strtoull(v, NULL, 0), i++;
        else if (!strcmp(a, "--steps") && v) steps = strtol(v, NULL, 0), i++;
        else if (!strcmp(a, "--warmup") && v) warmup = strtol(v, NULL, 0), i++;
        else if (!strcmp(a, "--timeout") && v) timeout_s = atoi(v), i++;
        else if (!strcmp(a, "--sockbuf") && v) sock_buf_bytes = atoi(v), i++;
        else if (!strcmp(a, "--cpus") && v) {
            if (sscanf(v, "%d,%d", &sender_cpu, &receiver_cpu) != 2) {
                fprintf(stderr, "raw_tcp: --cpus wants SENDER,RECEIVER\n");
                return 2;
            }
            i++;
        }        else if (!strcmp(a, "--mode") && v) {
            if (!strcmp(v, "latency")) latency_mode = 1;
            else if (!strcmp(v, "throughput")) latency_mode = 0;
            else { fprintf(stderr, "raw_tcp: bad --mode %s\n", v); return 2; }
            i++;
        } else {
            fprintf(stderr,
                    "usage: %s --bytes S --steps N --mode throughput|latency "
                    "[--warmup W] [--timeout SEC] [--cpus SENDER,RECEIVER] [--sockbuf BYTES]\n", argv[0]);
            return 2;
        }
    }
    if (steps < 2) { fprintf(stderr, "raw_tcp: need --steps >= 2\n"); return 2; }
    /* Default warm-up: a few steps, never more than a tenth of the run. */
    if (warmup < 0) warmup = steps / 10 < 5 ? steps / 10 : 5;
    if (warmup < 1) warmup = 1;
    if (warmup >= steps) warmup = steps - 1;

    /* Never hang: both processes die if the run exceeds the timeout (alarm survives fork
     * only in the parent, so the child arms its own below). */
    alarm((unsigned)timeout_s);

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    set_buffers(lfd); /* inherited by the accepted socket; must precede listen() */
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0; /* kernel picks a free port: parallel runs cannot collide */
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0) die("bind");
    if (listen(lfd, 1) != 0) die("listen");
    socklen_t alen = sizeof addr;
    if (getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0) die("getsockname");
    int port = ntohs(addr.sin_port);

    fflush(stdout);
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        alarm((unsigned)timeout_s);
        pin_to_cpu(sender_cpu);
        close(lfd);
        run_sender(port, bytes, steps, latency_mode);
        _exit(0);
    }

    /* Parent = receiver: it owns the measurement and prints the result. */
    pin_to_cpu(receiver_cpu);
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) die("accept");
    close(lfd);
    set_nodelay(fd);
    int sndbuf = get_int_opt(fd, SO_SNDBUF), rcvbuf = get_int_opt(fd, SO_RCVBUF);

    unsigned char *buf = malloc(bytes ? bytes : 1);
    double *lat_us = malloc(sizeof(double) * (size_t)steps);
    if (!buf || !lat_us) die("malloc");
    memset(buf, 0, bytes); /* pre-fault the receive buffer */

    uint64_t t_start = 0, t_end = 0;
    long bad = 0;
    for (long s = 0; s < steps; s++) {
        struct step_header h;
        read_all(fd, &h, sizeof h);
        read_all(fd, buf, bytes);
        uint64_t t = now_ns();
        if (h.step != (uint64_t)s ||
            (bytes && (buf[0] != (unsigned char)s || buf[bytes - 1] != (unsigned char)s)))
            bad++;
        lat_us[s] = (double)(t - h.send_ns) / 1e3;
        if (latency_mode) {
            char ack = 1;
            if (write(fd, &ack, 1) != 1) die("ack write");
        }
        if (s == warmup - 1) t_start = t; /* throughput window opens after warm-up */
        t_end = t;
    }
    close(fd);
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "raw_tcp: sender failed (status %d)\n", status);
        return 2;
    }

    long measured = steps - warmup;
    double secs = (double)(t_end - t_start) / 1e9;
    double gbps = secs > 0 ? (double)bytes * (double)measured / secs / 1e9 : 0.0;
    qsort(lat_us + warmup, (size_t)measured, sizeof(double), cmp_double);
    const double *l = lat_us + warmup;

    printf("{\"baseline\":\"raw_tcp\",\"mode\":\"%s\",\"step_bytes\":%zu,\"steps\":%ld,"
           "\"warmup_steps\":%ld,\"seconds\":%.6f,\"gbps\":%.4f,"
           "\"lat_median_us\":%.3f,\"lat_p99_us\":%.3f,\"lat_min_us\":%.3f,"
           "\"sndbuf\":%d,\"rcvbuf\":%d,\"bad_steps\":%ld}\n",
           latency_mode ? "latency" : "throughput", bytes, steps, warmup, secs, gbps,
           percentile(l, measured, 0.5), percentile(l, measured, 0.99), l[0], sndbuf,
           rcvbuf, bad);
    if (bad) fprintf(stderr, "raw_tcp: %ld steps arrived corrupted or out of order\n", bad);
    free(buf);
    free(lat_us);
    return bad ? 1 : 0;
}
