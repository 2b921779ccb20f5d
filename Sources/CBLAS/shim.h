// OpenBLAS's CBLAS interface (Debian libopenblas-dev, pthread flavour). Link "openblas", not "blas",
// so the CBLAS symbols are guaranteed to be there.
#ifndef PARITY_CBLAS_SHIM_H
#define PARITY_CBLAS_SHIM_H
#include <cblas.h>
#endif
