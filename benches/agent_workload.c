/* The agent benchmark's workloads, timed from inside so that process start-up is not counted.
 *
 *   agent_workload ROOT spawn N      posix_spawn ROOT's /usr/bin/true N times, waiting for each
 *   agent_workload ROOT open1 N      open+close ROOT's /data/one N times
 *   agent_workload ROOT openmany N   open+read+close /data/files/f0000..N-1, twice
 *   agent_workload ROOT readsecret 1 exit 0 if ROOT's /secret/key.pem can be read
 *
 * It chroots into ROOT first, so that every file it touches (the program, its ELF
 * interpreter and libc, the data) is on the benchmark's own filesystem. Prints
 * "name seconds" lines. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what) { perror(what); exit(1); }

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s ROOT spawn|open1|openmany N\n", argv[0]); return 2; }
    if (chroot(argv[1]) != 0 || chdir("/") != 0) die("chroot");
    long n = atol(argv[3]);
    char buf[4096];
    if (strcmp(argv[2], "spawn") == 0) {
        char *args[] = { "true", NULL };
        double t0 = now();
        for (long i = 0; i < n; i++) {
            pid_t pid;
            if (posix_spawn(&pid, "/usr/bin/true", NULL, NULL, args, environ) != 0) die("posix_spawn");
            int st;
            if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) die("true failed");
        }
        printf("spawn %.6f\n", now() - t0);
    } else if (strcmp(argv[2], "readsecret") == 0) {
        /* Exit 0 when ROOT's /secret/key.pem can be read: the check that a ringfence is on. */
        int fd = open("/secret/key.pem", O_RDONLY);
        if (fd < 0) return 1;
        ssize_t got = read(fd, buf, sizeof(buf));
        close(fd);
        return got >= 0 ? 0 : 1;
    } else if (strcmp(argv[2], "open1") == 0) {
        double t0 = now();
        for (long i = 0; i < n; i++) {
            int fd = open("/data/one", O_RDONLY);
            if (fd < 0) die("open");
            close(fd);
        }
        printf("open1 %.6f\n", now() - t0);
    } else if (strcmp(argv[2], "openmany") == 0) {
        for (int pass = 1; pass <= 2; pass++) {
            double t0 = now();
            for (long i = 0; i < n; i++) {
                char path[64];
                snprintf(path, sizeof path, "/data/files/f%04ld", i);
                int fd = open(path, O_RDONLY);
                if (fd < 0) die(path);
                if (read(fd, buf, sizeof buf) < 0) die("read");
                close(fd);
            }
            printf("openmany-pass%d %.6f\n", pass, now() - t0);
        }
    } else {
        return 2;
    }
    return 0;
}
