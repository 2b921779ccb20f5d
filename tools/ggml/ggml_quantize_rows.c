// ggml-quantize-rows: quantize float32 rows with ggml's own reference quantizers (ggml_quantize_chunk, no
// imatrix: what llama-quantize does without --imatrix) and decode the result with the type's to_float.
// Used by tools/ggml/check_parity_gguf.py to hold every tensor Parity quantizes against ggml itself.
//
//   ggml-quantize-rows TYPE N_PER_ROW IN.f32 OUT.bin OUT_DEQ.f32
//     TYPE        ggml type name as ggml_type_name prints it (q4_0, q4_K, mxfp4, f16, bf16, ...)
//     IN.f32      raw little-endian float32, a whole number of rows of N_PER_ROW
//     OUT.bin     ggml_quantize_chunk's bytes (ggml_row_size(TYPE, N_PER_ROW) per row)
//     OUT_DEQ.f32 ggml_get_type_traits(TYPE)->to_float of OUT.bin
//
// Built by check_parity_gguf.py against the static libggml-base.a of tools/ggml/build-ggml.sh:
//   gcc -O2 -I$GGML_SRC/include ggml_quantize_rows.c .build-ggml/build-generic/ggml/src/libggml-base.a -lstdc++ -lm -lpthread
#include "ggml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void * read_all(const char * path, long * size) {
    FILE * f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); exit(2); }
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    fseek(f, 0, SEEK_SET);
    void * buf = malloc(*size > 0 ? *size : 1);
    if (fread(buf, 1, *size, f) != (size_t) *size) { fprintf(stderr, "short read %s\n", path); exit(2); }
    fclose(f);
    return buf;
}

static void write_all(const char * path, const void * data, size_t n) {
    FILE * f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) { fprintf(stderr, "cannot write %s\n", path); exit(2); }
    fclose(f);
}

int main(int argc, char ** argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s TYPE N_PER_ROW IN.f32 OUT.bin OUT_DEQ.f32\n", argv[0]);
        return 2;
    }
    int type = -1;
    for (int t = 0; t < GGML_TYPE_COUNT; t++) {
        const char * name = ggml_type_name((enum ggml_type) t);
        if (ggml_blck_size((enum ggml_type) t) > 0 && name && strcmp(name, argv[1]) == 0) {
            type = t;
            break;
        }
    }
    if (type < 0) { fprintf(stderr, "unknown ggml type %s\n", argv[1]); return 2; }
    const int64_t n_per_row = atoll(argv[2]);
    long size = 0;
    float * src = (float *) read_all(argv[3], &size);
    if (n_per_row <= 0 || size % (long) (n_per_row * sizeof(float)) != 0 || n_per_row % ggml_blck_size((enum ggml_type) type) != 0) {
        fprintf(stderr, "bad row length %lld for %ld bytes of %s\n", (long long) n_per_row, size, argv[1]);
        return 2;
    }
    const int64_t nrows = size / (long) (n_per_row * sizeof(float));
    const size_t row_size = ggml_row_size((enum ggml_type) type, n_per_row);
    void * q = calloc(nrows, row_size);
    const size_t written = ggml_quantize_chunk((enum ggml_type) type, src, q, 0, nrows, n_per_row, NULL);
    if (written != nrows * row_size) { fprintf(stderr, "ggml_quantize_chunk wrote %zu bytes, expected %zu\n", written, nrows * row_size); return 1; }
    write_all(argv[4], q, written);
    float * deq = (float *) malloc(nrows * n_per_row * sizeof(float));
    const struct ggml_type_traits * tt = ggml_get_type_traits((enum ggml_type) type);
    if (!tt->to_float) { fprintf(stderr, "%s has no to_float\n", argv[1]); return 1; }
    tt->to_float(q, deq, nrows * n_per_row);
    write_all(argv[5], deq, nrows * n_per_row * sizeof(float));
    printf("%s: %lld rows of %lld -> %zu bytes\n", argv[1], (long long) nrows, (long long) n_per_row, written);
    return 0;
}
