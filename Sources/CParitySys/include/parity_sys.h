// Linux file-system calls Swift cannot reach directly (O_TMPFILE is a compound macro; renameat2 needs
// _GNU_SOURCE). Used to write outputs that are never visible half-written and leave nothing behind if killed.
// Also SHA-256, whose fast path needs x86 SHA-extension intrinsics chosen at run time, which Swift cannot express.
#ifndef PARITY_SYS_H
#define PARITY_SYS_H

/// An unnamed file in `directory` (O_TMPFILE): it vanishes if the process dies before it is linked. -1 if the
/// file system does not support it (errno set).
int parity_open_tmpfile(const char *directory);

/// Gives the unnamed file behind `fd` the name `path` (linkat through /proc/self/fd). 0 on success.
int parity_link_tmpfile(int fd, const char *path);

/// Atomically exchanges two paths (renameat2 RENAME_EXCHANGE); both must exist. 0 on success.
int parity_rename_exchange(const char *a, const char *b);

/// Makes glibc's malloc keep freed memory for reuse instead of returning it to the kernel: no mmap per large block
/// (M_MMAP_MAX 0) and no trimming of the heap (M_TRIM_THRESHOLD INT_MAX). A verification allocates and frees
/// tensor-sized arrays (tens of MB for a transformer) in every cell; with this they cost no page faults after the
/// first. The price is a peak RSS that stays at its high-water mark. 0 on success, -1 where unsupported (not glibc).
int parity_malloc_reuse_freed_memory(void);

#include <stddef.h>
#include <stdint.h>

/// Which SHA-256 compression function `parity_sha256` uses. AUTOMATIC picks the x86 SHA extensions when cpuid
/// reports them (with SSSE3 and SSE4.1), the portable C one otherwise; tests force each to compare them.
enum {
    PARITY_SHA256_AUTOMATIC = 0,
    PARITY_SHA256_PORTABLE = 1,
    PARITY_SHA256_SHA_EXTENSIONS = 2,
};

/// SHA-256 (FIPS 180-4) of `length` bytes at `data` into `digest`. 0 on success; -1 if `implementation` is unknown
/// or not available on this CPU (SHA_EXTENSIONS without them), in which case `digest` is not written.
int parity_sha256(const void *data, size_t length, uint8_t digest[32], int implementation);

/// 1 if this CPU has the x86 SHA extensions (and SSSE3, SSE4.1) that PARITY_SHA256_SHA_EXTENSIONS needs.
int parity_sha256_has_sha_extensions(void);

#endif
