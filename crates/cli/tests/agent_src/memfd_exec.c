/* Copy a program into a memfd and run it from there: the fileless trick. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int in = open(argv[1], O_RDONLY);
    if (in < 0) { printf("open: %s\n", strerror(errno)); return 3; }
    int m = memfd_create("payload", MFD_CLOEXEC);
    if (m < 0) { printf("memfd_create: %s\n", strerror(errno)); return 4; }
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        if (write(m, buf, (size_t)n) != n) { printf("write: %s\n", strerror(errno)); return 5; }
    }
    char *args[] = { "payload", NULL };
    char *env[] = { NULL };
    fexecve(m, args, env);
    printf("fexecve: %s\n", strerror(errno));
    return 6;
}
