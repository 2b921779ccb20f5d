// Quantized matrix-vector kernels; see include/CParityKernels.h for the contract. Float expressions here must not
// be contracted into fused multiply-adds: the reference rounds every product and every sum separately.
#pragma clang fp contract(off)

#include "CParityKernels.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define PK_X86 1
#endif

// MARK: - Scalar helpers

static inline uint16_t load_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/// IEEE half → float, exactly; a NaN gets the quiet bit and keeps its payload (what F16C's vcvtph2ps and
/// compiler-rt's __extendhfsf2, behind Swift's Float(Float16), both do).
static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF, bits;
    if (exponent == 0) {
        float f = (float)mantissa * 5.9604644775390625e-8f;  // mantissa · 2^-24, exact
        memcpy(&bits, &f, 4);
        bits |= sign;
    } else if (exponent == 31) {
        bits = sign | 0x7F800000u | (mantissa << 13) | (mantissa ? 0x00400000u : 0);
    } else {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

// MARK: - Dispatch

static int forced_portable = 0;

int pk_has_avx2(void) {
#ifdef PK_X86
    static int cached = -1;
    int value = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (value < 0) {
        __builtin_cpu_init();
        value = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") ? 1 : 0;
        __atomic_store_n(&cached, value, __ATOMIC_RELAXED);
    }
    return value && !__atomic_load_n(&forced_portable, __ATOMIC_RELAXED);
#else
    return 0;
#endif
}

void pk_force_portable(int portable) { __atomic_store_n(&forced_portable, portable ? 1 : 0, __ATOMIC_RELAXED); }

// MARK: - Q8_0 × Q8_0 and Q4_0 × Q8_0, portable

enum { Q8_0_BYTES = 34, Q4_0_BYTES = 18 };

static float continue_q8_0(const uint8_t *x, const uint8_t *y, int64_t blocks, float sumf) {
    for (int64_t b = 0; b < blocks; b++, x += Q8_0_BYTES, y += Q8_0_BYTES) {
        int32_t sumi = 0;
        for (int j = 0; j < 32; j++) sumi += (int32_t)(int8_t)x[2 + j] * (int32_t)(int8_t)y[2 + j];
        sumf += (float)sumi * (half_to_float(load_u16(x)) * half_to_float(load_u16(y)));  // q8_0: sumi·(d_x·d_y)
    }
    return sumf;
}

static float continue_q4_0(const uint8_t *x, const uint8_t *y, int64_t blocks, float sumf) {
    for (int64_t b = 0; b < blocks; b++, x += Q4_0_BYTES, y += Q8_0_BYTES) {
        int32_t sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += ((int32_t)(x[2 + j] & 0x0F) - 8) * (int32_t)(int8_t)y[2 + j];
            sumi += ((int32_t)(x[2 + j] >> 4) - 8) * (int32_t)(int8_t)y[2 + j + 16];
        }
        sumf += (float)sumi * half_to_float(load_u16(x)) * half_to_float(load_u16(y));
    }
    return sumf;
}

#ifdef PK_X86
#define PK_AVX2 __attribute__((target("avx2,f16c")))

/// Eight int32 vectors → one vector of their eight horizontal sums (exact integer adds).
PK_AVX2 static inline __m256i hsum8(__m256i v0, __m256i v1, __m256i v2, __m256i v3, __m256i v4, __m256i v5, __m256i v6, __m256i v7) {
    __m256i s01 = _mm256_hadd_epi32(v0, v1), s23 = _mm256_hadd_epi32(v2, v3);
    __m256i s45 = _mm256_hadd_epi32(v4, v5), s67 = _mm256_hadd_epi32(v6, v7);
    __m256i s0123 = _mm256_hadd_epi32(s01, s23), s4567 = _mm256_hadd_epi32(s45, s67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(s0123, s4567, 0x20), _mm256_permute2x128_si256(s0123, s4567, 0x31));
}

/// Eight block scales (f16 at `stride`-byte intervals) → floats.
PK_AVX2 static inline __m256 scales8(const uint8_t *p, int64_t stride) {
    uint16_t h[8];
    for (int i = 0; i < 8; i++) h[i] = load_u16(p + i * stride);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

/// The activation row prepared once per matvec: its codes widened to int16 and its block scales as floats.
typedef struct { int16_t *codes; float *scales; } prepared_q8_0;

PK_AVX2 static int prepare_q8_0(const uint8_t *y, int64_t blocks, prepared_q8_0 *p) {
    p->codes = aligned_alloc(32, (size_t)(blocks * 32 * sizeof(int16_t) + 32));
    p->scales = malloc((size_t)(blocks + 8) * sizeof(float));
    if (!p->codes || !p->scales) { free(p->codes); free(p->scales); return 0; }
    for (int64_t b = 0; b < blocks; b++) {
        const uint8_t *yb = y + b * Q8_0_BYTES;
        _mm256_store_si256((__m256i *)(p->codes + 32 * b), _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(yb + 2))));
        _mm256_store_si256((__m256i *)(p->codes + 32 * b + 16), _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(yb + 18))));
        p->scales[b] = half_to_float(load_u16(yb));
    }
    return 1;
}

/// One Q8_0 weight block against prepared activation codes: eight int32 partial sums.
PK_AVX2 static inline __m256i dot_q8_0_prepared(const uint8_t *qs, const int16_t *yw) {
    __m256i a0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)qs));
    __m256i a1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(qs + 16)));
    return _mm256_add_epi32(_mm256_madd_epi16(a0, _mm256_load_si256((const __m256i *)yw)),
                            _mm256_madd_epi16(a1, _mm256_load_si256((const __m256i *)(yw + 16))));
}

/// One Q4_0 weight block (codes −8…7) against prepared activation codes.
PK_AVX2 static inline __m256i dot_q4_0_prepared(const uint8_t *qs, const int16_t *yw) {
    __m128i packed = _mm_loadu_si128((const __m128i *)qs);
    __m256i eight = _mm256_set1_epi16(8);
    __m256i a0 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_and_si128(packed, _mm_set1_epi8(0x0F))), eight);
    __m256i a1 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0F))), eight);
    return _mm256_add_epi32(_mm256_madd_epi16(a0, _mm256_load_si256((const __m256i *)yw)),
                            _mm256_madd_epi16(a1, _mm256_load_si256((const __m256i *)(yw + 16))));
}

/// Eight consecutive blocks of one weight row → their eight float block products, in block order.
PK_AVX2 static inline __m256 chunk_q8_0(const uint8_t *x, const int16_t *yw, const float *dy) {
    __m256i s = hsum8(dot_q8_0_prepared(x + 2, yw), dot_q8_0_prepared(x + 36, yw + 32), dot_q8_0_prepared(x + 70, yw + 64),
                      dot_q8_0_prepared(x + 104, yw + 96), dot_q8_0_prepared(x + 138, yw + 128), dot_q8_0_prepared(x + 172, yw + 160),
                      dot_q8_0_prepared(x + 206, yw + 192), dot_q8_0_prepared(x + 240, yw + 224));
    // ggml_vec_dot_q8_0_q8_0_generic: sumi·(d_x·d_y).
    return _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(scales8(x, Q8_0_BYTES), _mm256_loadu_ps(dy)));
}

PK_AVX2 static inline __m256 chunk_q4_0(const uint8_t *x, const int16_t *yw, const float *dy) {
    __m256i s = hsum8(dot_q4_0_prepared(x + 2, yw), dot_q4_0_prepared(x + 20, yw + 32), dot_q4_0_prepared(x + 38, yw + 64),
                      dot_q4_0_prepared(x + 56, yw + 96), dot_q4_0_prepared(x + 74, yw + 128), dot_q4_0_prepared(x + 92, yw + 160),
                      dot_q4_0_prepared(x + 110, yw + 192), dot_q4_0_prepared(x + 128, yw + 224));
    // ggml_vec_dot_q4_0_q8_0_generic: (sumi·d_x)·d_y.
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(s), scales8(x, Q4_0_BYTES)), _mm256_loadu_ps(dy));
}

/// Rows in groups of four, so four independent block-by-block float sums run side by side (one row's sum is a
/// chain of dependent adds; four chains keep the core busy). The last blocks (fewer than 8) and rows (fewer
/// than 4) take the portable per-block code, which is the same arithmetic.
#define PK_MATVEC_AVX2(name, chunk, row_portable, block_bytes)                                                         \
    PK_AVX2 static int name(const uint8_t *w, int64_t rows, int64_t blocks, const uint8_t *y, float *out) {            \
        prepared_q8_0 p;                                                                                              \
        if (!prepare_q8_0(y, blocks, &p)) return 0;                                                                   \
        int64_t chunks = blocks / 8, row_bytes = blocks * (block_bytes), r = 0;                                       \
        for (; r + 4 <= rows; r += 4) {                                                                               \
            const uint8_t *x0 = w + r * row_bytes, *x1 = x0 + row_bytes, *x2 = x1 + row_bytes, *x3 = x2 + row_bytes;   \
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0, p0[8], p1[8], p2[8], p3[8];                                         \
            for (int64_t c = 0; c < chunks; c++) {                                                                    \
                int64_t off = c * 8 * (block_bytes);                                                                  \
                const int16_t *yw = p.codes + c * 256;                                                                \
                const float *dy = p.scales + c * 8;                                                                   \
                _mm256_storeu_ps(p0, chunk(x0 + off, yw, dy));                                                        \
                _mm256_storeu_ps(p1, chunk(x1 + off, yw, dy));                                                        \
                _mm256_storeu_ps(p2, chunk(x2 + off, yw, dy));                                                        \
                _mm256_storeu_ps(p3, chunk(x3 + off, yw, dy));                                                        \
                for (int i = 0; i < 8; i++) { s0 += p0[i]; s1 += p1[i]; s2 += p2[i]; s3 += p3[i]; }                   \
            }                                                                                                         \
            out[r] = s0; out[r + 1] = s1; out[r + 2] = s2; out[r + 3] = s3;                                           \
        }                                                                                                             \
        for (; r < rows; r++) {                                                                                       \
            const uint8_t *x = w + r * row_bytes;                                                                     \
            float s = 0, pr[8];                                                                                       \
            for (int64_t c = 0; c < chunks; c++) {                                                                    \
                _mm256_storeu_ps(pr, chunk(x + c * 8 * (block_bytes), p.codes + c * 256, p.scales + c * 8));          \
                for (int i = 0; i < 8; i++) s += pr[i];                                                               \
            }                                                                                                         \
            out[r] = s;                                                                                               \
        }                                                                                                             \
        if (chunks * 8 < blocks) {                                                                                    \
            /* The tail blocks continue each row's sum in block order. */                                             \
            for (r = 0; r < rows; r++)                                                                                \
                out[r] = row_portable(w + r * row_bytes + chunks * 8 * (block_bytes), y + chunks * 8 * Q8_0_BYTES,    \
                                      blocks - chunks * 8, out[r]);                                                   \
        }                                                                                                             \
        free(p.codes);                                                                                                \
        free(p.scales);                                                                                               \
        return 1;                                                                                                     \
    }

PK_MATVEC_AVX2(matvec_q8_0_avx2, chunk_q8_0, continue_q8_0, Q8_0_BYTES)
PK_MATVEC_AVX2(matvec_q4_0_avx2, chunk_q4_0, continue_q4_0, Q4_0_BYTES)
#endif

void pk_matvec_q8_0(const void *weights, int64_t rows, int64_t blocks, const void *activations, float *out) {
    const uint8_t *w = weights, *y = activations;
#ifdef PK_X86
    if (pk_has_avx2() && matvec_q8_0_avx2(w, rows, blocks, y, out)) return;
#endif
    for (int64_t r = 0; r < rows; r++) out[r] = continue_q8_0(w + r * blocks * Q8_0_BYTES, y, blocks, 0);
}

void pk_matvec_q4_0(const void *weights, int64_t rows, int64_t blocks, const void *activations, float *out) {
    const uint8_t *w = weights, *y = activations;
#ifdef PK_X86
    if (pk_has_avx2() && matvec_q4_0_avx2(w, rows, blocks, y, out)) return;
#endif
    for (int64_t r = 0; r < rows; r++) out[r] = continue_q4_0(w + r * blocks * Q4_0_BYTES, y, blocks, 0);
}

// MARK: - MLX affine quantized_matmul, float32

static inline uint32_t code_at(const uint32_t *row, int64_t c, int bits) {
    int64_t bit = c * bits;
    return (row[bit >> 5] >> (bit & 31)) & ((1u << bits) - 1);
}

static void mlx_affine_portable(const uint32_t *packed, const float *scales, const float *biases, int64_t rows, int64_t cols,
                                int64_t group_size, int bits, const float *x, int64_t n, float *out) {
    int64_t words = cols * bits / 32, groups = cols / group_size;
    for (int64_t m = 0; m < n; m++) {
        for (int64_t r = 0; r < rows; r++) {
            const uint32_t *row = packed + r * words;
            float sum = 0;
            for (int64_t c = 0; c < cols; c++) {
                int64_t g = r * groups + c / group_size;
                float w = scales[g] * (float)code_at(row, c, bits);
                w = w + biases[g];
                sum += x[m * cols + c] * w;
            }
            out[m * rows + r] = sum;
        }
    }
}

#ifdef PK_X86
/// Eight rows at once, one row per lane: each lane performs its row's operations in the reference's order.
PK_AVX2 static void mlx_affine_avx2(const uint32_t *packed, const float *scales, const float *biases, int64_t rows, int64_t cols,
                                    int64_t group_size, int bits, const float *x, int64_t n, float *out) {
    int64_t words = cols * bits / 32, groups = cols / group_size, per_word = 32 / bits;
    int64_t full = rows / 16 * 16;
    __m256i mask = _mm256_set1_epi32((int)((1u << bits) - 1));
    __m256i row_offsets = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)words));
    __m256i group_offsets = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)groups));
    for (int64_t m = 0; m < n; m++) {
        const float *xm = x + m * cols;
        for (int64_t r = 0; r < full; r += 16) {
            const uint32_t *rows_a = packed + r * words, *rows_b = packed + (r + 8) * words;
            const float *sa = scales + r * groups, *sb = scales + (r + 8) * groups;
            const float *ba = biases + r * groups, *bb = biases + (r + 8) * groups;
            __m256 sum_a = _mm256_setzero_ps(), sum_b = _mm256_setzero_ps();
            for (int64_t g = 0; g < groups; g++) {
                __m256 scale_a = _mm256_i32gather_ps(sa + g, group_offsets, 4), scale_b = _mm256_i32gather_ps(sb + g, group_offsets, 4);
                __m256 bias_a = _mm256_i32gather_ps(ba + g, group_offsets, 4), bias_b = _mm256_i32gather_ps(bb + g, group_offsets, 4);
                int64_t w_end = (g + 1) * group_size / per_word;
                for (int64_t wi = g * group_size / per_word; wi < w_end; wi++) {
                    __m256i word_a = _mm256_i32gather_epi32((const int *)(rows_a + wi), row_offsets, 4);
                    __m256i word_b = _mm256_i32gather_epi32((const int *)(rows_b + wi), row_offsets, 4);
                    const float *xc = xm + wi * per_word;
                    for (int p = 0; p < per_word; p++) {
                        __m256 xv = _mm256_set1_ps(xc[p]);
                        __m256i shift = _mm256_set1_epi32(p * bits);
                        __m256 qa = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(word_a, shift), mask));
                        __m256 qb = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(word_b, shift), mask));
                        __m256 wa = _mm256_add_ps(_mm256_mul_ps(scale_a, qa), bias_a);
                        __m256 wb = _mm256_add_ps(_mm256_mul_ps(scale_b, qb), bias_b);
                        sum_a = _mm256_add_ps(sum_a, _mm256_mul_ps(xv, wa));
                        sum_b = _mm256_add_ps(sum_b, _mm256_mul_ps(xv, wb));
                    }
                }
            }
            _mm256_storeu_ps(out + m * rows + r, sum_a);
            _mm256_storeu_ps(out + m * rows + r + 8, sum_b);
        }
    }
    if (full < rows) {
        // The last rows (fewer than 16) one at a time, in the same order.
        for (int64_t m = 0; m < n; m++) {
            float tail[16];
            mlx_affine_portable(packed + full * words, scales + full * groups, biases + full * groups, rows - full, cols,
                                group_size, bits, x + m * cols, 1, tail);
            for (int64_t r = full; r < rows; r++) out[m * rows + r] = tail[r - full];
        }
    }
}
#endif

void pk_mlx_affine_matmul_f32(const uint32_t *packed, const float *scales, const float *biases, int64_t rows, int64_t cols,
                              int64_t group_size, int bits, const float *x, int64_t n, float *out) {
#ifdef PK_X86
    if (pk_has_avx2() && (bits == 4 || bits == 8) && group_size % (32 / bits) == 0 && rows * (cols * bits / 32) < (1ll << 31)) {
        mlx_affine_avx2(packed, scales, biases, rows, cols, group_size, bits, x, n, out);
        return;
    }
#endif
    mlx_affine_portable(packed, scales, biases, rows, cols, group_size, bits, x, n, out);
}

// MARK: - Half decoding

#ifdef PK_X86
PK_AVX2 static void decode_f16_avx2(const uint8_t *h, int64_t count, float *out) {
    int64_t i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + 2 * i))));
    for (; i < count; i++) out[i] = half_to_float(load_u16(h + 2 * i));
}
#endif

void pk_decode_f16(const void *halves, int64_t count, float *out) {
#ifdef PK_X86
    if (pk_has_avx2()) { decode_f16_avx2(halves, count, out); return; }
#endif
    for (int64_t i = 0; i < count; i++) out[i] = half_to_float(load_u16((const uint8_t *)halves + 2 * i));
}
