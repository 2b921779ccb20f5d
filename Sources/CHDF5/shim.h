// HDF5's type and flag "constants" are macros that call H5open() and read a global; Swift cannot import
// them (docs/runtime-notes.md §4). Each getter returns one macro's value. No logic lives here.
#ifndef PARITY_CHDF5_SHIM_H
#define PARITY_CHDF5_SHIM_H
#include <hdf5.h>

static inline hid_t parity_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t parity_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t parity_h5t_native_int32(void) { return H5T_NATIVE_INT32; }
static inline hid_t parity_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t parity_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t parity_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t parity_h5p_default(void) { return H5P_DEFAULT; }
static inline unsigned parity_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned parity_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned parity_h5f_acc_rdwr(void) { return H5F_ACC_RDWR; }
static inline size_t parity_h5t_variable(void) { return H5T_VARIABLE; }
/// Called once before any other HDF5 call: no atexit cleanup (Parity closes its own ids; a corrupt file can leave
/// the library unable to close its internals, and its exit handler then prints "infinite loop closing library").
static inline herr_t parity_h5_no_atexit(void) { return H5dont_atexit(); }
/// Error-stack printing is per thread in Debian's thread-safe build: call this on every thread that uses HDF5.
static inline herr_t parity_h5_silence_errors(void) { return H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
#endif
