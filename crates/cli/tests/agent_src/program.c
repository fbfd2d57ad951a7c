/* A program that says who it is. Built twice with different names baked in, so the two
 * builds have different hashes. */
#include <stdio.h>
#ifndef NAME
#define NAME "program"
#endif
int main(void) { printf("%s ran\n", NAME); return 0; }
