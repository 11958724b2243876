// SPDX-License-Identifier: GPL-2.0-only
/*
 * gmem-bench-memset SIZE [copy]: seconds glibc's memset() takes to fill
 * SIZE bytes of already-faulted anonymous memory, or with "copy" that
 * memcpy() takes to copy SIZE bytes between two such buffers.  The
 * zeroing and copying bandwidths the machine allows, for gmem-bench's
 * reference rows; a program of its own because the KVM selftests library
 * that gmem-bench links replaces memset() and memcpy() with byte loops.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

int main(int argc, char *argv[])
{
	struct timespec a, b;
	char *buf, *src = NULL;
	size_t size;
	int copy;

	if (argc < 2 || argc > 3)
		return 2;
	size = strtoull(argv[1], NULL, 0);
	copy = argc == 3 && !strcmp(argv[2], "copy");
	buf = mmap(NULL, copy ? 2 * size : size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (buf == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	if (copy) {
		src = buf + size;
		memset(src, 0x33, size);
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	if (copy)
		memcpy(buf, src, size);
	else
		memset(buf, 0x5a, size);
	clock_gettime(CLOCK_MONOTONIC, &b);
	/* Keep the stores: the result depends on the buffer. */
	printf("%.9f %d\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9,
	       buf[size - 1]);
	return 0;
}
