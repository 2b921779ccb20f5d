// ggml-quantize-imatrix: quantize float32 rows with ggml's own quantizers AS llama-quantize --imatrix CALLS THEM:
// ggml_quantize_chunk(type, src, dst, 0, nrows, n_per_row, imatrix), where imatrix holds one importance weight per
// column (llama-imatrix's per-column mean of squared activations). With an imatrix, ggml takes the importance-
// weighted paths (quantize_row_*_impl: make_qkx3_quants, make_qp_quants, make_qx_quants with weights ...), which
// search scales differently from the reference quantizers. Used by tools/weights/make_imatrix_fixtures.py.
//
//   ggml-quantize-imatrix TYPE N_PER_ROW IN.f32 IMATRIX.f32 OUT.bin
//
// Built against the libggml-base.a of llama.cpp's own build (tools/llama/build-llama.sh):
//   gcc -O2 -I$LLAMA/ggml/include ggml_quantize_imatrix.c libggml-base.a -lstdc++ -lm -lpthread
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

int main(int argc, char ** argv) {
    if (argc != 6) { fprintf(stderr, "usage: %s TYPE N_PER_ROW IN.f32 IMATRIX.f32 OUT.bin\n", argv[0]); return 2; }
    enum ggml_type type = GGML_TYPE_COUNT;
    for (int t = 0; t < GGML_TYPE_COUNT; t++) {
        const char * name = ggml_type_name((enum ggml_type) t);
        if (name && strcmp(name, argv[1]) == 0) { type = (enum ggml_type) t; break; }
    }
    if (type == GGML_TYPE_COUNT) { fprintf(stderr, "unknown type %s\n", argv[1]); return 2; }
    const int64_t n_per_row = atoll(argv[2]);
    long in_size = 0, im_size = 0;
    float * src = read_all(argv[3], &in_size);
    float * imatrix = read_all(argv[4], &im_size);
    if (im_size != n_per_row * (long) sizeof(float)) { fprintf(stderr, "imatrix needs %lld floats\n", (long long) n_per_row); return 2; }
    const int64_t nrows = in_size / (long) sizeof(float) / n_per_row;
    ggml_quantize_init(type);
    const size_t row_size = ggml_row_size(type, n_per_row);
    void * dst = malloc(row_size * nrows);
    const size_t written = ggml_quantize_chunk(type, src, dst, 0, nrows, n_per_row, imatrix);
    if (written != row_size * nrows) { fprintf(stderr, "wrote %zu bytes, expected %zu\n", written, row_size * nrows); return 1; }
    FILE * out = fopen(argv[5], "wb");
    fwrite(dst, 1, written, out);
    fclose(out);
    return 0;
}
