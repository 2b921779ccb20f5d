// MLX's float16 affine kernels (quantized_matmul and dequantize), and the float32 quantized_matmul for several rows of x — see include/CParityKernels.h for the contract.
// Every float16 operation of MLX's CPU loops is a float32 operation rounded to binary16 (round to nearest even);
// here the rounding is F16C's vcvtps2ph/vcvtph2ps pair (AVX2 path) or the same rounding in integer arithmetic
// (portable path). No fused multiply-adds: each product and each sum is rounded on its own.
#pragma clang fp contract(off)

#include "CParityKernels.h"
#include "mlx_affine_shared.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define PKH_X86 1
#define PKH_AVX2 __attribute__((target("avx2,f16c")))
#endif

// MARK: - Scalar

/// `x` rounded to binary16 and widened back (round to nearest even; ±Inf from 65520 up; a NaN stays a quiet NaN
/// with its top 9 payload bits) — what vcvtps2ph + vcvtph2ps and Swift's Float(Float16(x)) give.
static inline float round_half(float x) {
    uint32_t bits, out_bits;
    memcpy(&bits, &x, 4);
    uint32_t sign = bits & 0x80000000u, magnitude = bits & 0x7FFFFFFFu;
    if (magnitude >= 0x38800000u && magnitude < 0x477FF000u) {
        // Normal half range below 65520: keep 10 mantissa bits, ties to even (a carry into the exponent is right).
        out_bits = (magnitude + 0x0FFFu + ((magnitude >> 13) & 1u)) & 0xFFFFE000u;
    } else if (magnitude < 0x38800000u) {
        // Below 2^-14: the adder rounds to a multiple of 2^-24 (the half subnormal spacing); the subtraction is exact.
        float m;
        memcpy(&m, &magnitude, 4);
        m = (m + 0.5f) - 0.5f;
        memcpy(&out_bits, &m, 4);
    } else if (magnitude <= 0x7F800000u) {
        out_bits = 0x7F800000u;
    } else {
        out_bits = 0x7FC00000u | (magnitude & 0x003FE000u);
    }
    out_bits |= sign;
    float out;
    memcpy(&out, &out_bits, 4);
    return out;
}

/// One weight as MLX's float16 loop forms it: `scale·q` rounded, `+ bias` rounded.
static inline float weight_half(float scale, uint32_t code, float bias) {
    return round_half(round_half(scale * (float)code) + bias);
}

static void matmul_f16_portable(const uint32_t *packed, const float *scales, const float *biases, int64_t rows, int64_t cols,
                                int64_t group_size, int bits, const float *x, int64_t n, float *out, int64_t out_stride) {
    int64_t words = cols * bits / 32, groups = cols / group_size;
    for (int64_t m = 0; m < n; m++) {
        for (int64_t r = 0; r < rows; r++) {
            const uint32_t *row = packed + r * words;
            float sum = 0;
            for (int64_t c = 0; c < cols; c++) {
                int64_t g = r * groups + c / group_size;
                float w = weight_half(scales[g], pk_affine_code(row, c, bits), biases[g]);
                sum = round_half(sum + round_half(x[m * cols + c] * w));
            }
            out[m * out_stride + r] = sum;
        }
    }
}


static void dequantize_f16_portable(const uint32_t *packed, const float *scales, const float *biases, int64_t rows, int64_t cols,
                                    int64_t group_size, int bits, float *out) {
    int64_t words = cols * bits / 32, groups = cols / group_size;
    for (int64_t r = 0; r < rows; r++) {
        const uint32_t *row = packed + r * words;
        for (int64_t c = 0; c < cols; c++) {
            int64_t g = r * groups + c / group_size;
            out[r * cols + c] = weight_half(scales[g], pk_affine_code(row, c, bits), biases[g]);
        }
    }
}

// MARK: - AVX2 + F16C

#ifdef PKH_X86
PKH_AVX2 static inline __m256 round_half8(__m256 v) {
    return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

/// Dequantizes eight rows (`row0` …) into `tile[c·stride + lane]` (`stride` floats per column), one row per lane:
/// `scale·q`, `+ bias`, each rounded to float16 when `half` (a constant at each call, so the test folds away),
/// else only to float32.
PKH_AVX2 static inline __attribute__((always_inline)) void dequantize_rows8(const uint32_t *packed, const float *scales,
    const float *biases, int64_t row0, int64_t cols, int64_t group_size, int bits, float *tile, int64_t stride, const int half) {
    int64_t words = cols * bits / 32, groups = cols / group_size, per_word = 32 / bits;
    __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i word_offsets = _mm256_mullo_epi32(lanes, _mm256_set1_epi32((int)words));
    __m256i group_offsets = _mm256_mullo_epi32(lanes, _mm256_set1_epi32((int)groups));
    __m256i mask = _mm256_set1_epi32((int)((1u << bits) - 1));
    const uint32_t *rows = packed + row0 * words;
    const float *s = scales + row0 * groups, *b = biases + row0 * groups;
    for (int64_t g = 0; g < groups; g++) {
        __m256 scale = _mm256_i32gather_ps(s + g, group_offsets, 4), bias = _mm256_i32gather_ps(b + g, group_offsets, 4);
        for (int64_t wi = g * group_size / per_word; wi < (g + 1) * group_size / per_word; wi++) {
            __m256i word = _mm256_i32gather_epi32((const int *)(rows + wi), word_offsets, 4);
            float *dst = tile + wi * per_word * stride;
            for (int64_t p = 0; p < per_word; p++) {
                __m256 q = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(word, _mm256_set1_epi32((int)(p * bits))), mask));
                __m256 product = _mm256_mul_ps(scale, q);
                if (half) product = round_half8(product);
                __m256 w = _mm256_add_ps(product, bias);
                if (half) w = round_half8(w);
                _mm256_storeu_ps(dst + p * stride, w);
            }
        }
    }
}

PKH_AVX2 static void dequantize_rows8_avx2(const uint32_t *packed, const float *scales, const float *biases, int64_t row0,
                                           int64_t cols, int64_t group_size, int bits, float *tile, int64_t stride) {
    dequantize_rows8(packed, scales, biases, row0, cols, group_size, bits, tile, stride, 1);
}

PKH_AVX2 static void dequantize_rows8_f32_avx2(const uint32_t *packed, const float *scales, const float *biases, int64_t row0,
                                               int64_t cols, int64_t group_size, int bits, float *tile, int64_t stride) {
    dequantize_rows8(packed, scales, biases, row0, cols, group_size, bits, tile, stride, 0);
}

/// `out[m·out_stride + lane]` for 8·A rows whose weights are in `tile` (8·A floats per column): A independent
/// accumulators of eight lanes each, so the conversions of one hide the latency of the others.
#define PKH_MATMUL_TILE(A)                                                                                              \
    PKH_AVX2 static void matmul_tile##A##_avx2(const float *tile, int64_t cols, const float *x, int64_t n, float *out,  \
                                                int64_t out_stride) {                                                   \
        for (int64_t m = 0; m < n; m++) {                                                                               \
            const float *xm = x + m * cols;                                                                             \
            __m256 sum[A];                                                                                              \
            for (int a = 0; a < A; a++) sum[a] = _mm256_setzero_ps();                                                   \
            for (int64_t c = 0; c < cols; c++) {                                                                        \
                __m256 xv = _mm256_broadcast_ss(xm + c);                                                                \
                const float *w = tile + c * (8 * A);                                                                    \
                for (int a = 0; a < A; a++)                                                                             \
                    sum[a] = round_half8(_mm256_add_ps(sum[a], round_half8(_mm256_mul_ps(xv, _mm256_loadu_ps(w + 8 * a))))); \
            }                                                                                                           \
            for (int a = 0; a < A; a++) _mm256_storeu_ps(out + m * out_stride + 8 * a, sum[a]);                         \
        }                                                                                                               \
    }
PKH_MATMUL_TILE(4)
PKH_MATMUL_TILE(1)

/// The float32 twin of the tiles above: `sum += x·w`, product and sum each rounded to float32 (no FMA).
#define PKH_MATMUL_TILE_F32(A)                                                                                          \
    PKH_AVX2 static void matmul_tile##A##_f32_avx2(const float *tile, int64_t cols, const float *x, int64_t n, float *out, \
                                                    int64_t out_stride) {                                               \
        for (int64_t m = 0; m < n; m++) {                                                                               \
            const float *xm = x + m * cols;                                                                             \
            __m256 sum[A];                                                                                              \
            for (int a = 0; a < A; a++) sum[a] = _mm256_setzero_ps();                                                   \
            for (int64_t c = 0; c < cols; c++) {                                                                        \
                __m256 xv = _mm256_broadcast_ss(xm + c);                                                                \
                const float *w = tile + c * (8 * A);                                                                    \
                for (int a = 0; a < A; a++) sum[a] = _mm256_add_ps(sum[a], _mm256_mul_ps(xv, _mm256_loadu_ps(w + 8 * a))); \
            }                                                                                                           \
            for (int a = 0; a < A; a++) _mm256_storeu_ps(out + m * out_stride + 8 * a, sum[a]);                         \
        }                                                                                                               \
    }
PKH_MATMUL_TILE_F32(4)
PKH_MATMUL_TILE_F32(1)

/// Both precisions' driver: 32 (then 8) rows dequantized into a tile whose lanes load contiguously, multiplied by every
/// row of x; the last rows (fewer than 8) one at a time by the portable loop, in the same order.
PKH_AVX2 static int matmul_tiled_avx2(int half, const uint32_t *packed, const float *scales, const float *biases, int64_t rows,
                                      int64_t cols, int64_t group_size, int bits, const float *x, int64_t n, float *out) {
    float *tile = malloc((size_t)cols * 32 * sizeof(float));
    if (!tile) return 0;
    int64_t r = 0;
    for (; r + 32 <= rows; r += 32) {
        for (int a = 0; a < 4; a++) {
            if (half) dequantize_rows8_avx2(packed, scales, biases, r + 8 * a, cols, group_size, bits, tile + 8 * a, 32);
            else dequantize_rows8_f32_avx2(packed, scales, biases, r + 8 * a, cols, group_size, bits, tile + 8 * a, 32);
        }
        if (half) matmul_tile4_avx2(tile, cols, x, n, out + r, rows);
        else matmul_tile4_f32_avx2(tile, cols, x, n, out + r, rows);
    }
    for (; r + 8 <= rows; r += 8) {
        if (half) {
            dequantize_rows8_avx2(packed, scales, biases, r, cols, group_size, bits, tile, 8);
            matmul_tile1_avx2(tile, cols, x, n, out + r, rows);
        } else {
            dequantize_rows8_f32_avx2(packed, scales, biases, r, cols, group_size, bits, tile, 8);
            matmul_tile1_f32_avx2(tile, cols, x, n, out + r, rows);
        }
    }
    free(tile);
    if (r < rows) {
        int64_t words = cols * bits / 32, groups = cols / group_size;
        if (half) matmul_f16_portable(packed + r * words, scales + r * groups, biases + r * groups, rows - r, cols, group_size, bits, x,
                                      n, out + r, rows);
        else pk_affine_matmul_f32_portable(packed + r * words, scales + r * groups, biases + r * groups, rows - r, cols, group_size,
                                           bits, x, n, out + r, rows);
    }
    return 1;
}

/// Eight consecutive codes of a row starting at column `c` (a multiple of 8), as int32 lanes.
PKH_AVX2 static inline __m256i codes8_avx2(const uint32_t *row, int64_t c, int bits) {
    if (bits == 8) return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)((const uint8_t *)row + c)));
    // bits == 4: one word holds the eight codes, lowest nibble first.
    __m256i word = _mm256_set1_epi32((int)row[c / 8]);
    return _mm256_and_si256(_mm256_srlv_epi32(word, _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)), _mm256_set1_epi32(0xF));
}

PKH_AVX2 static void dequantize_f16_avx2(const uint32_t *packed, const float *scales, const float *biases, int64_t rows, int64_t cols,
                                         int64_t group_size, int bits, float *out) {
    int64_t words = cols * bits / 32, groups = cols / group_size;
    for (int64_t r = 0; r < rows; r++) {
        const uint32_t *row = packed + r * words;
        for (int64_t g = 0; g < groups; g++) {
            __m256 scale = _mm256_set1_ps(scales[r * groups + g]), bias = _mm256_set1_ps(biases[r * groups + g]);
            for (int64_t c = g * group_size; c < (g + 1) * group_size; c += 8) {
                __m256 q = _mm256_cvtepi32_ps(codes8_avx2(row, c, bits));
                _mm256_storeu_ps(out + r * cols + c, round_half8(_mm256_add_ps(round_half8(_mm256_mul_ps(scale, q)), bias)));
            }
        }
    }
}
#endif

// MARK: - Entry points

/// Sizes the kernels handle: codes that never cross a word, whole groups of whole words, offsets within int32.
static int shape_supported(int64_t rows, int64_t cols, int64_t group_size, int bits) {
    if (!(bits == 1 || bits == 2 || bits == 4 || bits == 8) || group_size <= 0 || cols <= 0 || rows < 0) return 0;
    return cols % group_size == 0 && group_size % (32 / bits) == 0 && rows * (cols / group_size) < (1ll << 31) &&
           rows * (cols * bits / 32) < (1ll << 31);
}

int pk_mlx_affine_matmul_f16(const uint32_t *packed, const float *scales, const float *biases, int64_t rows, int64_t cols,
                             int64_t group_size, int bits, const float *x, int64_t n, float *out) {
    if (!shape_supported(rows, cols, group_size, bits)) return 0;
#ifdef PKH_X86
    if (pk_has_avx2() && matmul_tiled_avx2(1, packed, scales, biases, rows, cols, group_size, bits, x, n, out)) return 1;
#endif
    matmul_f16_portable(packed, scales, biases, rows, cols, group_size, bits, x, n, out, rows);
    return 1;
}

int pk_mlx_affine_matmul_f32_tiled(const uint32_t *packed, const float *scales, const float *biases, int64_t rows, int64_t cols,
                                   int64_t group_size, int bits, const float *x, int64_t n, float *out) {
    if (!shape_supported(rows, cols, group_size, bits)) return 0;
#ifdef PKH_X86
    if (pk_has_avx2() && matmul_tiled_avx2(0, packed, scales, biases, rows, cols, group_size, bits, x, n, out)) return 1;
#endif
    pk_affine_matmul_f32_portable(packed, scales, biases, rows, cols, group_size, bits, x, n, out, rows);
    return 1;
}

int pk_mlx_affine_dequantize_f16(const uint32_t *packed, const float *scales, const float *biases, int64_t rows, int64_t cols,
                                 int64_t group_size, int bits, float *out) {
    if (!shape_supported(rows, cols, group_size, bits)) return 0;
#ifdef PKH_X86
    if (pk_has_avx2() && (bits == 4 || bits == 8) && group_size % 8 == 0) {
        dequantize_f16_avx2(packed, scales, biases, rows, cols, group_size, bits, out);
        return 1;
    }
#endif
    dequantize_f16_portable(packed, scales, biases, rows, cols, group_size, bits, out);
    return 1;
}

// MARK: - Bulk conversions

#ifdef PKH_X86
PKH_AVX2 static void round_f16_avx2(const float *in, int64_t count, float *out) {
    int64_t i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(out + i, round_half8(_mm256_loadu_ps(in + i)));
    for (; i < count; i++) out[i] = round_half(in[i]);
}

PKH_AVX2 static void encode_f16_avx2(const float *in, int64_t count, uint8_t *out) {
    int64_t i = 0;
    for (; i + 8 <= count; i += 8)
        _mm_storeu_si128((__m128i *)(out + 2 * i), _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < count; i++) {
        __m128i h = _mm_cvtps_ph(_mm_set_ss(in[i]), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        uint16_t v = (uint16_t)_mm_extract_epi16(h, 0);
        memcpy(out + 2 * i, &v, 2);
    }
}
#endif

/// Float → half bits, round to nearest even (the portable twin of vcvtps2ph).
static inline uint16_t float_to_half(float x) {
    uint32_t bits;
    memcpy(&bits, &x, 4);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t magnitude = bits & 0x7FFFFFFFu;
    if (magnitude >= 0x38800000u && magnitude < 0x47800000u) {
        uint32_t rebiased = magnitude - (112u << 23);
        return sign | (uint16_t)((rebiased + 0x0FFFu + ((rebiased >> 13) & 1u)) >> 13);
    }
    if (magnitude < 0x38800000u) {
        float m;
        memcpy(&m, &magnitude, 4);
        m += 0.5f;
        uint32_t shifted;
        memcpy(&shifted, &m, 4);
        return sign | (uint16_t)(shifted - 0x3F000000u);
    }
    if (magnitude <= 0x7F800000u) return sign | 0x7C00u;
    return sign | 0x7E00u | (uint16_t)((magnitude >> 13) & 0x3FFu);
}

void pk_round_f16(const float *values, int64_t count, float *out) {
#ifdef PKH_X86
    if (pk_has_avx2()) { round_f16_avx2(values, count, out); return; }
#endif
    for (int64_t i = 0; i < count; i++) out[i] = round_half(values[i]);
}

// The halves are written in the machine's byte order: little-endian on every target Parity builds for (x86-64, arm64).
void pk_encode_f16(const float *values, int64_t count, void *halves) {
#ifdef PKH_X86
    if (pk_has_avx2()) { encode_f16_avx2(values, count, halves); return; }
#endif
    uint8_t *out = halves;
    for (int64_t i = 0; i < count; i++) {
        uint16_t h = float_to_half(values[i]);
        memcpy(out + 2 * i, &h, 2);
    }
}

// MARK: - Affine quantize codes

/// rint for the code computation without libm: below 2^23 the adder rounds to an integer (ties to even); from
/// 2^23 up every float is one; NaN passes through; the sign is kept (−0.3 → −0).
static inline float round_to_integer(float x) {
    float magnitude = x < 0 ? -x : x;
    if (!(magnitude < 8388608.0f)) return x;
    float r = (magnitude + 8388608.0f) - 8388608.0f;
    return x < 0 || (x == 0 && 1.0f / x < 0) ? -r : r;
}

static inline uint8_t affine_code(float w, float scale, float bias, float max_code) {
    float q = round_to_integer((w - bias) / scale);
    q = q < 0 ? 0 : q;                 // std::max(q, 0): keeps q on NaN
    q = max_code < q ? max_code : q;   // std::min(q, max_code)
    return q != q ? 0 : (uint8_t)q;
}

#ifdef PKH_X86
PKH_AVX2 static void affine_codes_avx2(const float *w, int64_t count, float scale, float bias, float max_code, uint8_t *codes) {
    __m256 s = _mm256_set1_ps(scale), b = _mm256_set1_ps(bias), top = _mm256_set1_ps(max_code), zero = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 q = _mm256_round_ps(_mm256_div_ps(_mm256_sub_ps(_mm256_loadu_ps(w + i), b), s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q = _mm256_blendv_ps(q, zero, _mm256_cmp_ps(q, zero, _CMP_LT_OQ));
        q = _mm256_blendv_ps(q, top, _mm256_cmp_ps(top, q, _CMP_LT_OQ));
        q = _mm256_and_ps(q, _mm256_cmp_ps(q, q, _CMP_ORD_Q));  // NaN → 0
        __m256i n = _mm256_cvttps_epi32(q);
        __m128i halves = _mm_packus_epi32(_mm256_castsi256_si128(n), _mm256_extracti128_si256(n, 1));
        _mm_storel_epi64((__m128i *)(codes + i), _mm_packus_epi16(halves, halves));
    }
    for (; i < count; i++) codes[i] = affine_code(w[i], scale, bias, max_code);
}
#endif

void pk_mlx_affine_codes(const float *w, int64_t count, float scale, float bias, float max_code, uint8_t *codes) {
#ifdef PKH_X86
    if (pk_has_avx2()) { affine_codes_avx2(w, count, scale, bias, max_code, codes); return; }
#endif
    for (int64_t i = 0; i < count; i++) codes[i] = affine_code(w[i], scale, bias, max_code);
}
