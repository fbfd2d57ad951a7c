/* A library that announces itself when loaded. */
#include <stdio.h>
#ifndef NAME
#define NAME "lib"
#endif
__attribute__((constructor)) static void announce(void) { printf("%s constructor ran\n", NAME); fflush(stdout); }
int lib_marker(void) { return 42; }
