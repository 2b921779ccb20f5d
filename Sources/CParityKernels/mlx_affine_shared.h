// Shared by kernels.c (one row of x, AVX2) and mlx_f16.c (float16, and float32 for several rows of x): MLX's packed
// affine codes and the portable float32 product both kernels fall back to. Private to CParityKernels (not in include/).
#ifndef CPARITY_MLX_AFFINE_SHARED_H
#define CPARITY_MLX_AFFINE_SHARED_H

#include <stdint.h>

/// Code `c` of a row: the LSB-first bitstream of `bits`-bit codes MLX packs into uint32 words (bits 1, 2, 4 or 8:
/// a code never crosses a word).
static inline uint32_t pk_affine_code(const uint32_t *row, int64_t c, int bits) {
    int64_t bit = c * bits;
    return (row[bit >> 5] >> (bit & 31)) & ((1u << bits) - 1);
}

/// MLX's float32 affine quantized_matmul, portable: out[m·out_stride + r] = Σ_c x[m·cols + c] · (scale·q + bias), each
/// product and sum rounded in float32 in column order, no fused multiply-add (every SIMD path equals this).
void pk_affine_matmul_f32_portable(const uint32_t *packed, const float *scales, const float *biases, int64_t rows, int64_t cols,
                                   int64_t group_size, int bits, const float *x, int64_t n, float *out, int64_t out_stride);

#endif
