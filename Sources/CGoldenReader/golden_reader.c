// The HDF5 reader process (see golden_reader.h). Stream format, every integer in host byte order (the reader is
// the same executable on the same machine as its parent):
//   "PH5SNAP1"
//   then records, each starting with a one-byte tag:
//   'G' path                                   a group (the root "/" first; a group before its members)
//   'D' path class:u8 rank:u32 dims:u64*rank  a dataset; class 'f' is followed by count float32 values (read
//       payload                                through libhdf5's conversion), 'i' by count int64 values, 'o' (not
//                                              numeric) by a string saying why; count = product of dims
//   'A' object name kind:u8 payload           an attribute of an object already sent: kind 's' + string,
//                                              'S' count:u64 + strings (a 1-D array of variable-length strings,
//                                              possibly empty), 'i' count:u64 + int64s, 'f' count:u64 + float64s,
//                                              'o' + reason
//   'E' kind:u8 at reason                      the file is bad: kind 'm' malformed, 'u' unsupported, 'i' io;
//                                              nothing follows
//   'Z'                                        complete; nothing follows
//   path, name, at, reason and string are u32 length + bytes.
#define _GNU_SOURCE
#include "golden_reader.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <link.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <unistd.h>

extern char **environ;

#define MAX_PATH (PARITY_H5SNAP_MAX_DEPTH * (PARITY_H5SNAP_MAX_NAME + 1) + 1)

typedef struct {
    FILE *out;
    long long total_bytes;
    long objects;
    int write_failed;
} Snapshot;

static void put(Snapshot *s, const void *bytes, size_t n) {
    if (n && fwrite(bytes, 1, n, s->out) != n) s->write_failed = 1;
}
static void put_u8(Snapshot *s, uint8_t v) { put(s, &v, 1); }
static void put_u32(Snapshot *s, uint32_t v) { put(s, &v, 4); }
static void put_u64(Snapshot *s, uint64_t v) { put(s, &v, 8); }
static void put_string(Snapshot *s, const char *bytes, size_t n) { put_u32(s, (uint32_t)n); put(s, bytes, n); }
static void put_cstring(Snapshot *s, const char *text) { put_string(s, text, strlen(text)); }

/// Sends the error record; the caller stops walking.
static int fail(Snapshot *s, char kind, const char *at, const char *reason) {
    put_u8(s, 'E');
    put_u8(s, (uint8_t)kind);
    put_string(s, at, strnlen(at, MAX_PATH));
    put_cstring(s, reason);
    return 1;
}

/// Counts payload bytes against the total limit before anything is allocated for them.
static int reserve(Snapshot *s, const char *at, long long bytes) {
    if (bytes < 0 || bytes > PARITY_H5SNAP_MAX_TOTAL_BYTES - s->total_bytes)
        return fail(s, 'u', at, "the file's datasets and attributes total more than 1 GiB");
    s->total_bytes += bytes;
    return 0;
}

/// The rank of an attribute's dataspace (-1 if unreadable).
static int space_of_rank(hid_t aid) {
    hid_t space = H5Aget_space(aid);
    if (space < 0) return -1;
    int rank = H5Sget_simple_extent_ndims(space);
    H5Sclose(space);
    return rank;
}

/// Sends a 1-D array of variable-length strings as 'S' count + strings.
static int send_string_array(Snapshot *s, hid_t aid, hid_t file_type, const char *object, const char *name, hssize_t points) {
    if (points == 0) {
        put_u8(s, 'A'); put_cstring(s, object); put_cstring(s, name); put_u8(s, 'S'); put_u64(s, 0);
        return 0;
    }
    int rc = 0;
    char **texts = calloc((size_t)points, sizeof(char *));
    hid_t memory_type = H5Tcopy(H5T_C_S1);
    H5Tset_size(memory_type, H5T_VARIABLE);
    H5Tset_cset(memory_type, H5Tget_cset(file_type));
    if (!texts) {
        rc = fail(s, 'i', object, "out of memory");
    } else if (H5Aread(aid, memory_type, texts) < 0) {
        rc = fail(s, 'm', object, "cannot read a string array attribute");
    } else {
        long long total = 0;
        for (hssize_t i = 0; i < points && !rc; i++) {
            size_t n = texts[i] ? strnlen(texts[i], PARITY_H5SNAP_MAX_STRING + 1) : 0;
            if (n > PARITY_H5SNAP_MAX_STRING) rc = fail(s, 'u', object, "a string in an attribute is longer than 1 MiB");
            total += (long long)n + 4;
        }
        if (!rc) rc = reserve(s, object, total);
        if (!rc) {
            put_u8(s, 'A'); put_cstring(s, object); put_cstring(s, name); put_u8(s, 'S'); put_u64(s, (uint64_t)points);
            for (hssize_t i = 0; i < points; i++) put_string(s, texts[i] ? texts[i] : "", texts[i] ? strlen(texts[i]) : 0);
        }
    }
    if (texts) {
        for (hssize_t i = 0; i < points; i++) if (texts[i]) H5free_memory(texts[i]);
        free(texts);
    }
    H5Tclose(memory_type);
    return rc;
}

static int send_attribute(Snapshot *s, hid_t aid, const char *object, const char *name) {
    hid_t file_type = H5Aget_type(aid);
    if (file_type < 0) return fail(s, 'm', object, "cannot read an attribute's type");
    hid_t space = H5Aget_space(aid);
    if (space < 0) { H5Tclose(file_type); return fail(s, 'm', object, "cannot read an attribute's dataspace"); }
    hssize_t points = H5Sget_simple_extent_npoints(space);
    H5Sclose(space);
    H5T_class_t type_class = H5Tget_class(file_type);
    int rc = 0;
    if (points < 0 || points > PARITY_H5SNAP_MAX_ATTRIBUTE_VALUES) {
        rc = fail(s, 'm', object, "an attribute holds a negative or absurd number of values");
    } else if (type_class == H5T_STRING && H5Tis_variable_str(file_type) > 0 && (points != 1 || space_of_rank(aid) == 1)) {
        // A list of names (format_version 2's `inputs`, `input_args`, `outputs`): empty for a node that reads nothing.
        rc = send_string_array(s, aid, file_type, object, name, points);
    } else if (points == 0) {
        rc = fail(s, 'u', object, "an attribute holds no value (empty dataspace)");
    } else if (type_class == H5T_STRING && points != 1) {
        put_u8(s, 'A'); put_cstring(s, object); put_cstring(s, name); put_u8(s, 'o');
        put_cstring(s, "fixed-length string arrays are not used in goldens");
    } else if (type_class == H5T_STRING && H5Tis_variable_str(file_type) > 0) {
        hid_t memory_type = H5Tcopy(H5T_C_S1);
        H5Tset_size(memory_type, H5T_VARIABLE);
        H5Tset_cset(memory_type, H5Tget_cset(file_type));
        char *text = NULL;
        if (H5Aread(aid, memory_type, &text) < 0 || text == NULL) {
            rc = fail(s, 'm', object, "cannot read a string attribute");
        } else {
            size_t n = strnlen(text, PARITY_H5SNAP_MAX_STRING + 1);
            if (n > PARITY_H5SNAP_MAX_STRING) rc = fail(s, 'u', object, "a string attribute is longer than 1 MiB");
            else if (!(rc = reserve(s, object, (long long)n))) {
                put_u8(s, 'A'); put_cstring(s, object); put_cstring(s, name); put_u8(s, 's'); put_string(s, text, n);
            }
        }
        if (text) H5free_memory(text);
        H5Tclose(memory_type);
    } else if (type_class == H5T_STRING) {
        size_t size = H5Tget_size(file_type);
        if (size == 0 || size > PARITY_H5SNAP_MAX_STRING) {
            rc = fail(s, 'u', object, "a fixed-length string attribute is empty or longer than 1 MiB");
        } else {
            char *text = calloc(size + 1, 1);
            if (!text) rc = fail(s, 'i', object, "out of memory");
            else if (H5Aread(aid, file_type, text) < 0) rc = fail(s, 'm', object, "cannot read a string attribute");
            else if (!(rc = reserve(s, object, (long long)size))) {
                put_u8(s, 'A'); put_cstring(s, object); put_cstring(s, name); put_u8(s, 's');
                put_string(s, text, strnlen(text, size));
            }
            free(text);
        }
    } else if (type_class == H5T_INTEGER || type_class == H5T_FLOAT) {
        if (!(rc = reserve(s, object, (long long)points * 8))) {
            void *values = calloc((size_t)points, 8);
            hid_t memory_type = type_class == H5T_INTEGER ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
            if (!values) rc = fail(s, 'i', object, "out of memory");
            else if (H5Aread(aid, memory_type, values) < 0) rc = fail(s, 'm', object, "cannot read a numeric attribute");
            else {
                put_u8(s, 'A'); put_cstring(s, object); put_cstring(s, name);
                put_u8(s, type_class == H5T_INTEGER ? 'i' : 'f');
                put_u64(s, (uint64_t)points);
                put(s, values, (size_t)points * 8);
            }
            free(values);
        }
    } else {
        put_u8(s, 'A'); put_cstring(s, object); put_cstring(s, name); put_u8(s, 'o');
        put_cstring(s, "attribute type is not a string, integer or float");
    }
    H5Tclose(file_type);
    return rc;
}

static int send_attributes(Snapshot *s, hid_t oid, const char *object) {
    H5O_info_t info;
    if (H5Oget_info2(oid, &info, H5O_INFO_NUM_ATTRS) < 0) return fail(s, 'm', object, "cannot read the object header");
    if (info.num_attrs > 10000) return fail(s, 'u', object, "more than 10000 attributes");
    for (hsize_t i = 0; i < info.num_attrs; i++) {
        ssize_t length = H5Aget_name_by_idx(oid, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
        if (length <= 0 || length > PARITY_H5SNAP_MAX_NAME) return fail(s, 'm', object, "an attribute name is unreadable, empty or longer than 4096 bytes");
        char name[PARITY_H5SNAP_MAX_NAME + 1];
        memset(name, 0, sizeof name);
        if (H5Aget_name_by_idx(oid, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, (size_t)length + 1, H5P_DEFAULT) != length
            || strlen(name) != (size_t)length)
            return fail(s, 'm', object, "an attribute name is unreadable or holds a NUL byte");
        hid_t aid = H5Aopen_by_idx(oid, ".", H5_INDEX_NAME, H5_ITER_INC, i, H5P_DEFAULT, H5P_DEFAULT);
        if (aid < 0) return fail(s, 'm', object, "cannot open an attribute");
        int rc = send_attribute(s, aid, object, name);
        H5Aclose(aid);
        if (rc) return rc;
    }
    return 0;
}

static int send_dataset(Snapshot *s, hid_t did, const char *path) {
    hid_t space = H5Dget_space(did);
    if (space < 0) return fail(s, 'm', path, "cannot read dataspace");
    H5S_class_t space_class = H5Sget_simple_extent_type(space);
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[PARITY_H5SNAP_MAX_RANK];
    int dims_ok = rank >= 0 && rank <= PARITY_H5SNAP_MAX_RANK && H5Sget_simple_extent_dims(space, dims, NULL) == rank;
    H5Sclose(space);
    if (space_class == H5S_NULL) return fail(s, 'u', path, "dataset has a null dataspace (no elements)");
    if (!dims_ok) return fail(s, 'm', path, "invalid rank or dimensions");
    long long count = 1;
    for (int i = 0; i < rank; i++) {
        // Both factors stay at most 2^27, so the product cannot overflow before it is checked.
        if (dims[i] > (hsize_t)PARITY_H5SNAP_MAX_ELEMENTS || count * (long long)dims[i] > PARITY_H5SNAP_MAX_ELEMENTS)
            return fail(s, 'm', path, "dataset shape is too large (over 2^27 elements)");
        count *= (long long)dims[i];
    }
    hid_t type = H5Dget_type(did);
    if (type < 0) return fail(s, 'm', path, "cannot read the dataset's type");
    H5T_class_t type_class = H5Tget_class(type);
    H5Tclose(type);
    char kind = type_class == H5T_FLOAT ? 'f' : type_class == H5T_INTEGER ? 'i' : 'o';
    if (kind == 'o') {
        put_u8(s, 'D'); put_cstring(s, path); put_u8(s, 'o'); put_u32(s, (uint32_t)rank);
        for (int i = 0; i < rank; i++) put_u64(s, dims[i]);
        put_cstring(s, "dataset is not numeric");
        return 0;
    }
    long long element_size = kind == 'f' ? 4 : 8;
    if (reserve(s, path, count * element_size)) return 1;
    void *values = malloc(count ? (size_t)(count * element_size) : 1);
    if (!values) return fail(s, 'i', path, "out of memory");
    herr_t status = H5Dread(did, kind == 'f' ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
    if (status < 0) { free(values); return fail(s, 'm', path, kind == 'f' ? "cannot read as float32" : "cannot read as int64"); }
    put_u8(s, 'D'); put_cstring(s, path); put_u8(s, (uint8_t)kind); put_u32(s, (uint32_t)rank);
    for (int i = 0; i < rank; i++) put_u64(s, dims[i]);
    put(s, values, (size_t)(count * element_size));
    free(values);
    return 0;
}

static int send_group(Snapshot *s, hid_t gid, const char *group, int depth) {
    H5G_info_t info;
    if (H5Gget_info(gid, &info) < 0) return fail(s, 'm', group, "cannot read group info");
    char *path = malloc(MAX_PATH + PARITY_H5SNAP_MAX_NAME + 2);
    if (!path) return fail(s, 'i', group, "out of memory");
    int rc = 0;
    for (hsize_t i = 0; i < info.nlinks && !rc; i++) {
        char name[PARITY_H5SNAP_MAX_NAME + 1];
        memset(name, 0, sizeof name);
        ssize_t length = H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
        if (length <= 0 || length > PARITY_H5SNAP_MAX_NAME) { rc = fail(s, 'm', group, "a link name is unreadable, empty or longer than 4096 bytes"); break; }
        if (H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, (size_t)length + 1, H5P_DEFAULT) != length
            || strlen(name) != (size_t)length) { rc = fail(s, 'm', group, "a link name is unreadable or holds a NUL byte"); break; }
        snprintf(path, MAX_PATH + PARITY_H5SNAP_MAX_NAME + 2, "%s/%s", strcmp(group, "/") == 0 ? "" : group, name);
        if (strlen(path) >= MAX_PATH) { rc = fail(s, 'u', group, "object path longer than the limit"); break; }
        if (++s->objects > PARITY_H5SNAP_MAX_OBJECTS) { rc = fail(s, 'u', path, "more than 100000 objects"); break; }
        H5L_info_t link;
        if (H5Lget_info(gid, name, &link, H5P_DEFAULT) < 0) { rc = fail(s, 'm', path, "cannot read the link"); break; }
        // Soft and external links are refused: an external link would make libhdf5 open another file.
        if (link.type != H5L_TYPE_HARD) { rc = fail(s, 'u', path, "is a soft or external link; a golden holds its objects itself"); break; }
        hid_t oid = H5Oopen(gid, name, H5P_DEFAULT);
        if (oid < 0) { rc = fail(s, 'm', path, "cannot open the object"); break; }
        H5I_type_t type = H5Iget_type(oid);
        if (type == H5I_GROUP) {
            if (depth + 1 >= PARITY_H5SNAP_MAX_DEPTH) rc = fail(s, 'u', path, "groups nested more than 16 deep (or a cycle of hard links)");
            else {
                put_u8(s, 'G'); put_cstring(s, path);
                rc = send_attributes(s, oid, path);
                if (!rc) rc = send_group(s, oid, path, depth + 1);
            }
        } else if (type == H5I_DATASET) {
            rc = send_dataset(s, oid, path);
            if (!rc) rc = send_attributes(s, oid, path);
        } else {
            rc = fail(s, 'u', path, "is neither a group nor a dataset");
        }
        H5Oclose(oid);
    }
    free(path);
    return rc;
}

int parity_h5_snapshot(const char *path, FILE *out) {
    Snapshot s = {out, 0, 0, 0};
    // No library atexit cleanup (a corrupt file can leave libhdf5 unable to close its internals; its exit
    // handler would then print "infinite loop closing library"); no error-stack printing on this thread.
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    put(&s, "PH5SNAP1", 8);
    int rc;
    if (H5Fis_hdf5(path) <= 0) {
        rc = fail(&s, 'm', "offset 0", "not an HDF5 file (no HDF5 signature)");
    } else {
        hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (file < 0) {
            rc = fail(&s, 'i', "", "HDF5 could not open the file");
        } else {
            hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
            if (root < 0) rc = fail(&s, 'm', "/", "cannot open the root group");
            else {
                put_u8(&s, 'G'); put_cstring(&s, "/");
                rc = send_attributes(&s, root, "/");
                if (!rc) rc = send_group(&s, root, "/", 0);
                H5Gclose(root);
            }
            H5Fclose(file);
        }
    }
    if (!rc) put_u8(&s, 'Z');
    fflush(out);
    return rc || s.write_failed ? 1 : 0;
}

/// The reader process's entry point: runs before the program's main when PARITY_H5_READER_ENV is set, and never
/// returns to it. No core file for a libhdf5 crash (the parent reports it); a backstop alarm in case the parent
/// is gone and cannot end a hung read.
__attribute__((constructor)) static void parity_h5_reader_entry(void) {
    const char *path = getenv(PARITY_H5_READER_ENV);
    if (path == NULL) return;
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    alarm(3600);
    int rc = parity_h5_snapshot(path, stdout);
    fflush(stdout);
    _exit(rc == 0 ? 0 : 1);
}

int parity_h5_reader_is_in_main_executable(void) {
    Dl_info info;
    struct link_map *map = NULL;
    if (dladdr1((void *)&parity_h5_reader_entry, &info, (void **)&map, RTLD_DL_LINKMAP) == 0 || map == NULL) return 0;
    // glibc names the main program's link map "".
    return map->l_name == NULL || map->l_name[0] == '\0';
}

const char *parity_h5_started_executable(void) { return (const char *)getauxval(AT_EXECFN); }

pid_t parity_h5_spawn_reader(const char *executable, const char *path, int *read_fd) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return -errno;
    size_t count = 0;
    while (environ && environ[count]) count++;
    char **envp = calloc(count + 2, sizeof *envp);
    size_t key_length = strlen(PARITY_H5_READER_ENV);
    char *marker = malloc(key_length + strlen(path) + 2);
    if (!envp || !marker) { free(envp); free(marker); close(fds[0]); close(fds[1]); return -ENOMEM; }
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        if (!(strncmp(environ[i], PARITY_H5_READER_ENV, key_length) == 0 && environ[i][key_length] == '=')) envp[n++] = environ[i];
    sprintf(marker, "%s=%s", PARITY_H5_READER_ENV, path);
    envp[n++] = marker;
    envp[n] = NULL;

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    int reset[] = {SIGPIPE, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGALRM, SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++) sigaddset(&defaults, reset[i]);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {"parity-hdf5-reader", NULL};
    pid_t pid = 0;
    int rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    free(marker);
    free(envp);
    close(fds[1]);
    if (rc != 0) { close(fds[0]); return -rc; }
    *read_fd = fds[0];
    return pid;
}
