/*
 * The floor: the least a bridge for the FIFO protocol can do, for scripts/bench.sh.
 *
 * One thread, no queue, no logging, no checks. It blocks on the command FIFO
 * (opened once, read-write, as the Python helper does, so tunbridge's client finds a
 * reader); for READ it opens the answer FIFO (blocking until the client reads it)
 * before it reads the TUN device (blocking), writes the packet as one hex line and
 * closes; for WRITE it decodes the hex, writes it to the device, and answers OK the
 * same way. Anything else gets "ERR". Not part of the product; built by bench.sh with
 * gcc. Run as root inside the network namespace:
 *     floor TUN ADDRESS/PREFIX CMD_FIFO RESP_FIFO
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINE_MAX_BYTES (256 * 1024 + 2)

static char line[LINE_MAX_BYTES];
static unsigned char packet[65536];
static char hex[2 * 65536 + 2];

static int open_tun(const char *name) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) return -1;
    struct ifreq req;
    memset(&req, 0, sizeof req);
    req.ifr_flags = IFF_TUN | IFF_NO_PI;
    strncpy(req.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &req) < 0) return -1;
    return fd;
}

/* Reads one line (without its newline) from fd; returns its length, -1 at EOF or error. */
static long read_line(int fd) {
    static char buf[65536];
    static long have = 0, at = 0;
    long len = 0;
    for (;;) {
        while (at < have) {
            char c = buf[at++];
            if (c == '\n') { line[len] = 0; return len; }
            if (len < LINE_MAX_BYTES - 1) line[len++] = c;
        }
        have = read(fd, buf, sizeof buf);
        at = 0;
        if (have <= 0) {
            if (have < 0 && errno == EINTR) { have = 0; continue; }
            return -1;
        }
    }
}

/* Writes all of text to fd, or as much as goes before an error. */
static void write_all(int fd, const char *text, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, text, len);
        if (n <= 0) return;
        text += n;
        len -= (size_t)n;
    }
}

/* Opens the answer FIFO (blocking until a reader is there), writes the line, closes. */
static void answer(const char *path, const char *text, size_t len) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) return;
    write_all(fd, text, len);
    close(fd);
}

static int nibble(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: floor TUN ADDRESS/PREFIX CMD_FIFO RESP_FIFO\n");
        return 2;
    }
    const char *name = argv[1], *address = argv[2], *cmd_path = argv[3], *resp_path = argv[4];
    int tun = open_tun(name);
    if (tun < 0) { perror("floor: TUN device"); return 1; }
    char sh[512];
    snprintf(sh, sizeof sh,
             "echo 1 > /proc/sys/net/ipv6/conf/%s/disable_ipv6 2>/dev/null;"
             " ip addr add %s dev %s && ip link set %s up", name, address, name, name);
    if (system(sh) != 0) { fprintf(stderr, "floor: cannot configure %s\n", name); return 1; }
    unlink(cmd_path);
    unlink(resp_path);
    if (mkfifo(cmd_path, 0600) < 0 || mkfifo(resp_path, 0600) < 0) { perror("floor: mkfifo"); return 1; }
    int cmd = open(cmd_path, O_RDWR);
    if (cmd < 0) { perror("floor: command FIFO"); return 1; }
    fprintf(stderr, "floor ready on %s\n", name);
    static const char digits[] = "0123456789abcdef";
    for (;;) {
        long len = read_line(cmd);
        if (len < 0) return 1;
        if (strcmp(line, "READ") == 0) {
            int fd = open(resp_path, O_WRONLY);
            if (fd < 0) continue;
            ssize_t n = read(tun, packet, sizeof packet);
            size_t h = 0;
            for (ssize_t i = 0; i < n; i++) {
                hex[h++] = digits[packet[i] >> 4];
                hex[h++] = digits[packet[i] & 15];
            }
            hex[h++] = '\n';
            write_all(fd, hex, h);
            close(fd);
        } else if (strncmp(line, "WRITE ", 6) == 0) {
            size_t n = 0;
            int hi = -1;
            for (const char *c = line + 6; *c; c++) {
                int v = nibble(*c);
                if (v < 0) continue;
                if (hi < 0) { hi = v; } else { packet[n++] = (unsigned char)(hi << 4 | v); hi = -1; }
            }
            if (write(tun, packet, n) < 0) answer(resp_path, "ERR\n", 4);
            else answer(resp_path, "OK\n", 3);
        } else {
            answer(resp_path, "ERR\n", 4);
        }
    }
}
