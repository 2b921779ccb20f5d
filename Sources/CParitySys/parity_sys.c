#define _GNU_SOURCE
#include "parity_sys.h"
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

int parity_open_tmpfile(const char *directory) {
    return open(directory, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
}

int parity_link_tmpfile(int fd, const char *path) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
}

int parity_rename_exchange(const char *a, const char *b) {
    return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}

int parity_malloc_reuse_freed_memory(void) {
#if defined(__GLIBC__)
    // glibc serves every block above its mmap threshold (at most 32 MB) with a fresh mmap and unmaps it on free, so
    // each tensor-sized array is page-faulted and zeroed by the kernel again; from the heap, freed memory is reused.
    return mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1 ? 0 : -1;
#else
    return -1;
#endif
}
