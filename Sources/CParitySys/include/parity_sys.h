// Linux file-system calls Swift cannot reach directly (O_TMPFILE is a compound macro; renameat2 needs
// _GNU_SOURCE). Used to write outputs that are never visible half-written and leave nothing behind if killed.
#ifndef PARITY_SYS_H
#define PARITY_SYS_H

/// An unnamed file in `directory` (O_TMPFILE): it vanishes if the process dies before it is linked. -1 if the
/// file system does not support it (errno set).
int parity_open_tmpfile(const char *directory);

/// Gives the unnamed file behind `fd` the name `path` (linkat through /proc/self/fd). 0 on success.
int parity_link_tmpfile(int fd, const char *path);

/// Atomically exchanges two paths (renameat2 RENAME_EXCHANGE); both must exist. 0 on success.
int parity_rename_exchange(const char *a, const char *b);

#endif
