/*
 * poll_floor.c - the least a poll can cost on this machine: a loop with no
 * parsing, rendering or serving that only does what any poller must, on one
 * kept connection: sleep until the poll is due, send the INFO command, sleep
 * until the reply is there, read it. Its CPU time per poll is the floor under
 * redpulse's figure (the kernel's share: two wake-ups, a send, a receive).
 *
 *   poll_floor PORT INTERVAL_MS POLLS [CMDSTATS_EVERY]
 *
 * The INFO is redpulse's: its sections, commandstats (and the cpu and
 * server sections that ride with it) in one poll of CMDSTATS_EVERY (default
 * 1: every poll; redpulse asks for them every commandstats_interval, which
 * at 100 ms polls and the default 5 s is one poll in 50).
 *
 * Prints "floor_us_per_poll <µs>". A benchmark: asserts nothing.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static const char CMD[] = "*12\r\n$4\r\nINFO\r\n$6\r\nserver\r\n$7\r\nclients\r\n$6\r\nmemory\r\n"
                          "$11\r\npersistence\r\n$5\r\nstats\r\n$11\r\nreplication\r\n$3\r\ncpu\r\n"
                          "$12\r\ncommandstats\r\n$10\r\nerrorstats\r\n$7\r\ncluster\r\n$8\r\nkeyspace\r\n";
static const char CMD_NO_CS[] = "*9\r\n$4\r\nINFO\r\n$7\r\nclients\r\n$6\r\nmemory\r\n"
                                "$11\r\npersistence\r\n$5\r\nstats\r\n$11\r\nreplication\r\n"
                                "$10\r\nerrorstats\r\n$7\r\ncluster\r\n$8\r\nkeyspace\r\n";

static double cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s PORT INTERVAL_MS POLLS [CMDSTATS_EVERY]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), interval = atoi(argv[2]), polls = atoi(argv[3]);
    int every = argc == 5 ? atoi(argv[4]) : 1;
    if (every < 1)
        every = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("connect");
        return 1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd}, out;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    static char buf[1 << 20];
    double c0 = 0;
    for (int i = -10; i < polls; i++) { /* 10 warm-up polls */
        if (i == 0)
            c0 = cpu_us();
        epoll_wait(ep, &out, 1, interval); /* the timer: nothing else to wake for */
        bool cs = (i + 10) % every == 0;
        const char *cmd = cs ? CMD : CMD_NO_CS;
        size_t len = cs ? sizeof CMD - 1 : sizeof CMD_NO_CS - 1;
        if (send(fd, cmd, len, 0) != (ssize_t)len)
            return 1;
        size_t have = 0, want = 0;
        while (!want || have < want) {
            epoll_wait(ep, &out, 1, -1);
            ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
            if (n <= 0)
                return 1;
            have += (size_t)n;
            char *crlf = memchr(buf, '\n', have);
            if (!want && crlf)
                want = (size_t)(crlf - buf) + 1 + (size_t)atol(buf + 1) + 2;
        }
    }
    printf("floor_us_per_poll %.1f\n", (cpu_us() - c0) / polls);
    return 0;
}
