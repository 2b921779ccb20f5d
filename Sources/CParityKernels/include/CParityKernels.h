#ifndef CPARITY_KERNELS_H
#define CPARITY_KERNELS_H

#include <stdint.h>

/// Matrix-vector kernels for the engines' quantized products. Each output row is computed with exactly the
/// float operations, in exactly the order, of Parity's scalar reference kernels (GGMLQuants / MLXQuantization);
/// only the integer block sums (exact, order-independent) and independent rows/lanes run in SIMD. An AVX2 path
/// is chosen at run time when the CPU has it; otherwise a portable C path computes the same numbers.

/// 1 when the AVX2+F16C path is in use on this CPU (for reports and benchmarks).
int pk_has_avx2(void);
/// 1 when the AVX-512 (BW, VL, VBMI, VNNI) paths of the GGML kernels are in use on this CPU.
int pk_has_avx512(void);
/// 1 forces the portable path, 2 limits the kernels to AVX2, 0 restores run-time selection; for tests comparing
/// the paths on one machine.
void pk_force_portable(int mode);
/// The environment's cap on every kernel path, read once: PARITY_KERNELS=portable (1: portable C only, as on a CPU
/// without AVX2) or avx2 (2: AVX2 at most, as on a CPU without AVX-512); unset or anything else 0 (`parity` refuses
/// other values before any kernel runs). All paths compute the same numbers; this shows it on a whole run.
int pk_environment_limit(void);

/// ggml_vec_dot_q8_0_q8_0 (generic order) for `rows` weight rows of `blocks` Q8_0 blocks each, against one
/// Q8_0 activation row: out[r] = Σ_b (float)sumi_b · (d_w · d_a), summed block by block (Q4_0: (sumi_b · d_w) · d_a).
void pk_matvec_q8_0(const void *weights, int64_t rows, int64_t blocks, const void *activations, float *out);

/// ggml_vec_dot_q4_0_q8_0 (generic order), as above with Q4_0 weight rows.
void pk_matvec_q4_0(const void *weights, int64_t rows, int64_t blocks, const void *activations, float *out);

/// ggml_vec_dot_q4_K_q8_K, _q5_K_ and _q6_K_ (generic order) for `rows` weight rows of `blocks` 256-value
/// blocks, against one Q8_K activation row: per block eight int32 lanes (element index mod 8) of Σ scale·q8·q,
/// `sums[l] += (d·d_y)·lane[l]` (Q4_K/Q5_K also `sumf −= (dmin·d_y)·Σ bsums·min`), then `sumf += sums[l]` in order.
void pk_matvec_q4_K(const void *weights, int64_t rows, int64_t blocks, const void *activations, float *out);
void pk_matvec_q5_K(const void *weights, int64_t rows, int64_t blocks, const void *activations, float *out);
void pk_matvec_q6_K(const void *weights, int64_t rows, int64_t blocks, const void *activations, float *out);

/// MLX's affine quantized_matmul (transpose=True) in float32: out[m·rows + r] = Σ_c x[m·cols + c] ·
/// (scale·q + bias), each product and sum rounded in float32 in column order, without fused multiply-adds.
/// `packed` is the LSB-first bitstream of `bits`-bit codes (bits 4 or 8), `scales`/`biases` [rows, cols/group].
void pk_mlx_affine_matmul_f32(const uint32_t *packed, const float *scales, const float *biases, int64_t rows, int64_t cols,
                              int64_t group_size, int bits, const float *x, int64_t n, float *out);

/// Little-endian IEEE halves → floats, exactly (a NaN gets the quiet bit, as Swift's Float(Float16) gives it).
void pk_decode_f16(const void *halves, int64_t count, float *out);

/// Image kernels (image.c). Direct 2-D convolution of `n` NCHW images [c, h, w] with weight [oc, c, kh, kw], zero
/// padding (ph, pw), stride (sy, sx): out [n, oc, oh, ow], each element the fused multiply-add chain from +0 over
/// (ci, ky, kx) in that order, then `+ bias[o]` when `bias` is not NULL. AVX-512F or AVX2+FMA across output columns
/// when the CPU has it (stride 1 across; AVX2 needs ow >= 8), else portable C: the same numbers.
void pk_conv2d_nchw(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, const float *weight, int64_t oc, int64_t kh,
                    int64_t kw, int64_t sy, int64_t sx, int64_t ph, int64_t pw, const float *bias, float *out);
/// 1 when pk_conv2d_nchw's AVX-512 (AVX2+FMA) path is in use on this CPU.
int pk_conv_has_avx512(void);
int pk_conv_has_avx2_fma(void);
/// 1 forces pk_conv2d_nchw's portable path, 2 limits it to AVX2, 0 restores run-time selection (for tests).
void pk_conv_force_path(int mode);
/// MaxPool2d 2×2 at stride 2 (floor mode) over `planes` planes [h, w] → [h/2, w/2], the NaN rule of
/// Kernels.maxPool2dNCHW (propagate: PyTorch's; else ggml_pool_2d's, starting from -FLT_MAX), and relu (NaN kept,
/// −0 → +0): on the AVX-512 path only. They return 0 without writing when it is not in use (the caller's Swift
/// kernels then run; both compute Kernels.Reference's steps bit for bit).
int pk_maxpool2x2_nchw(const float *x, int64_t planes, int64_t h, int64_t w, int propagate, float *out);
int pk_relu(const float *x, int64_t count, float *out);
/// PyTorch engine's Linear: y [n, outF] = x [n, inF] · Wᵀ + b, each element the fused multiply-add chain from +0
/// over k in order, then + bias[j] (none when NULL). W [outF, inF] is packed once (pk_linear_pack into
/// pk_linear_packed_count floats: panels of 32 output features, k-major, zero beyond outF). AVX-512 / AVX2+FMA /
/// portable by CPU (pk_conv_force_path): the same numbers.
int64_t pk_linear_packed_count(int64_t outF, int64_t inF);
void pk_linear_pack(const float *w, int64_t outF, int64_t inF, float *packed);
void pk_linear_packed(const float *x, int64_t n, int64_t inF, const float *packed, int64_t outF, const float *bias, float *y);


/// MLX's affine quantized_matmul (transpose=True) in float16 (mlx_f16.c): every operation of MLX's half loop is a
/// float32 operation rounded to binary16 (nearest even): per weight w = r(r(scale·q) + bias), per output, over the
/// columns in order, sum = r(sum + r(x·w)). `scales`/`biases` [rows, cols/group] hold the halves' exact float
/// values, `x` [n, cols] values already in float16, `out` [n, rows]. Bits 1, 2, 4 or 8, group a multiple of
/// 32/bits; returns 0 (computing nothing) for any other shape, 1 when `out` is filled.
int pk_mlx_affine_matmul_f16(const uint32_t *packed, const float *scales, const float *biases, int64_t rows, int64_t cols,
                             int64_t group_size, int bits, const float *x, int64_t n, float *out);
/// pk_mlx_affine_matmul_f32's arithmetic (float32, no FMA, columns in order) for several rows of `x`: each block
/// of output rows is dequantized once into a column-major tile and reused for every row of `x`. Same shape
/// conditions and return value as pk_mlx_affine_matmul_f16.
int pk_mlx_affine_matmul_f32_tiled(const uint32_t *packed, const float *scales, const float *biases, int64_t rows, int64_t cols,
                                   int64_t group_size, int bits, const float *x, int64_t n, float *out);
/// MLX's float16 affine dequantize: out[r·cols + c] = r(r(scale·q) + bias), under the same conditions.
int pk_mlx_affine_dequantize_f16(const uint32_t *packed, const float *scales, const float *biases, int64_t rows, int64_t cols,
                                 int64_t group_size, int bits, float *out);
/// MLX's affine quantize codes for one group: codes[i] = std::min(std::max(rint((w[i] − bias) / scale), 0), max_code)
/// in float32 (no reciprocal: a true division), NaN → 0; max_code ≤ 255.
void pk_mlx_affine_codes(const float *w, int64_t count, float scale, float bias, float max_code, uint8_t *codes);
/// Each value rounded to binary16 (nearest even; NaN quiet with its top payload bits) and widened back.
void pk_round_f16(const float *values, int64_t count, float *out);
/// Floats → little-endian IEEE halves, round to nearest even (the inverse direction of pk_decode_f16).
void pk_encode_f16(const float *values, int64_t count, void *halves);

#endif
