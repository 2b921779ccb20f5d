// Golden files (HDF5) are untrusted input and libhdf5 1.10.8 corrupts its own heap on some malformed files, so
// Parity reads them in a separate process: this C code is that process's whole job. It walks the file with
// libhdf5 and writes what it found as a flat byte stream (a "snapshot"); the Swift side (HDF5Snapshot.swift)
// validates every byte of it. Nothing here allocates more than the stream limits below allow.
#ifndef PARITY_GOLDEN_READER_H
#define PARITY_GOLDEN_READER_H
#include <stdio.h>
#include <sys/types.h>

/// Stream limits, enforced by the writer here and again by the Swift reader of the stream.
#define PARITY_H5SNAP_MAX_RANK 32
#define PARITY_H5SNAP_MAX_ELEMENTS (1LL << 27)        /* per dataset: 512 MiB of float32 */
#define PARITY_H5SNAP_MAX_TOTAL_BYTES (1LL << 30)     /* all dataset and attribute payloads together */
#define PARITY_H5SNAP_MAX_OBJECTS 100000
#define PARITY_H5SNAP_MAX_DEPTH 16
#define PARITY_H5SNAP_MAX_NAME 4096
#define PARITY_H5SNAP_MAX_STRING (1 << 20)
#define PARITY_H5SNAP_MAX_ATTRIBUTE_VALUES (1 << 20)

/// The environment variable that turns a process started from an executable linking this code into the reader
/// of one file (its value). Set only by parity_h5_spawn_reader, in the child's own environment.
#define PARITY_H5_READER_ENV "PARITY_INTERNAL_HDF5_READER_FILE"

/// Walks the HDF5 file at `path` and writes its snapshot to `out`. Returns 0 when the snapshot is complete
/// (ends with the end record), 1 when it ends with an error record (the file is malformed or unsupported).
/// Used in the reader process (out = stdout) and, for the fuzz harness only, in-process (see open_memstream).
int parity_h5_snapshot(const char *path, FILE *out);

/// 1 if the reader's entry point (a constructor in this object file) belongs to the main executable, so that
/// starting /proc/self/exe with PARITY_H5_READER_ENV set runs the reader rather than the program's main.
int parity_h5_reader_is_in_main_executable(void);

/// The path this program was executed by (the kernel's AT_EXECFN), possibly relative; NULL if unknown.
const char *parity_h5_started_executable(void);

/// Starts `executable` as the reader of `path` (posix_spawn: safe in a multi-threaded process, nothing of the
/// parent's state carried over): stdin and stderr /dev/null, stdout the write end of a pipe whose read end
/// (close-on-exec) is returned in *read_fd, every other descriptor closed. Returns the child's pid, or -errno.
pid_t parity_h5_spawn_reader(const char *executable, const char *path, int *read_fd);

#endif
