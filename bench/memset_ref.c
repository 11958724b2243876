// SPDX-License-Identifier: GPL-2.0-only
/*
 * gmem-bench-memset SIZE: seconds glibc's memset() takes to fill SIZE
 * bytes of already-faulted anonymous memory.  The zeroing bandwidth the
 * machine allows, for gmem-bench's reference row; a program of its own
 * because the KVM selftests library that gmem-bench links replaces
 * memset() with a byte loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

int main(int argc, char *argv[])
{
	struct timespec a, b;
	size_t size;
	char *buf;

	if (argc != 2)
		return 2;
	size = strtoull(argv[1], NULL, 0);
	buf = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (buf == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	memset(buf, 0x5a, size);
	clock_gettime(CLOCK_MONOTONIC, &b);
	/* Keep the stores: the result depends on the buffer. */
	printf("%.9f %d\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9,
	       buf[size - 1]);
	return 0;
}
