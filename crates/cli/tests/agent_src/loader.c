/* A permitted program that loads the library named on its command line, like an
 * application loading a plugin (or 3CX loading ffmpeg.dll). */
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { printf("dlopen failed: %s\n", dlerror()); return 1; }
    printf("loaded %s\n", argv[1]);
    return 0;
}
