// zlib (Debian zlib1g-dev): raw inflate for deflated .npz members and crc32 for the zip entries we write.
#ifndef PARITY_CZLIB_SHIM_H
#define PARITY_CZLIB_SHIM_H
#include <zlib.h>
static inline int parity_inflate_init_raw(z_stream *stream) { return inflateInit2(stream, -15); }
#endif
