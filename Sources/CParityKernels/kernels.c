// Quantized matrix-vector kernels; see include/CParityKernels.h for the contract. Float expressions here must not
// be contracted into fused multiply-adds: the reference rounds every product and every sum separately.
#pragma clang fp contract(off)

#include "CParityKernels.h"
#include "mlx_affine_shared.h"
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

/// 0: the best path this CPU has; 1: portable C only; 2: AVX2 at most (for tests of every path on one machine).
static int forced_limit = 0;

int pk_environment_limit(void) {
    static int cached = -1;  // a benign race: every thread computes the same answer
    int value = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (value < 0) {
        const char *text = getenv("PARITY_KERNELS");
        value = text && strcmp(text, "portable") == 0 ? 1 : text && strcmp(text, "avx2") == 0 ? 2 : 0;
        __atomic_store_n(&cached, value, __ATOMIC_RELAXED);
    }
    return value;
}

/// The tighter of the tests' switch and PARITY_KERNELS: 1 portable, 2 AVX2 at most, 0 the CPU's best.
static int kernel_limit(void) {
    int forced = __atomic_load_n(&forced_limit, __ATOMIC_RELAXED), environment = pk_environment_limit();
    return forced == 1 || environment == 1 ? 1 : forced == 2 || environment == 2 ? 2 : 0;
}

int pk_has_avx2(void) {
#ifdef PK_X86
    static int cached = -1;
    int value = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (value < 0) {
        __builtin_cpu_init();
        value = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") ? 1 : 0;
        __atomic_store_n(&cached, value, __ATOMIC_RELAXED);
    }
    return value && kernel_limit() != 1;
#else
    return 0;
#endif
}

int pk_has_avx512(void) {
#ifdef PK_X86
    static int cached = -1;
    int value = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (value < 0) {
        __builtin_cpu_init();
        value = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx2") &&
                __builtin_cpu_supports("f16c") ? 1 : 0;
        __atomic_store_n(&cached, value, __ATOMIC_RELAXED);
    }
    return value && kernel_limit() == 0;
#else
    return 0;
#endif
}

void pk_force_portable(int mode) { __atomic_store_n(&forced_limit, mode == 1 || mode == 2 ? mode : 0, __ATOMIC_RELAXED); }

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
#define PK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni,avx2,f16c")))

/// Eight int32 vectors → one vector of their eight horizontal sums (exact integer adds).
PK_AVX2 static inline __m256i hsum8(__m256i v0, __m256i v1, __m256i v2, __m256i v3, __m256i v4, __m256i v5, __m256i v6, __m256i v7) {
    __m256i s01 = _mm256_hadd_epi32(v0, v1), s23 = _mm256_hadd_epi32(v2, v3);
    __m256i s45 = _mm256_hadd_epi32(v4, v5), s67 = _mm256_hadd_epi32(v6, v7);
    __m256i s0123 = _mm256_hadd_epi32(s01, s23), s4567 = _mm256_hadd_epi32(s45, s67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(s0123, s4567, 0x20), _mm256_permute2x128_si256(s0123, s4567, 0x31));
}

/// Eight block scales (f16 at `stride`-byte intervals) → floats.
PK_AVX2 static inline __m256 scales8(const uint8_t *p, int64_t stride) {
    // Inserted one by one: eight narrow stores read back as one vector would stall store-to-load forwarding.
    __m128i h = _mm_cvtsi32_si128(load_u16(p));
    h = _mm_insert_epi16(h, load_u16(p + stride), 1);
    h = _mm_insert_epi16(h, load_u16(p + 2 * stride), 2);
    h = _mm_insert_epi16(h, load_u16(p + 3 * stride), 3);
    h = _mm_insert_epi16(h, load_u16(p + 4 * stride), 4);
    h = _mm_insert_epi16(h, load_u16(p + 5 * stride), 5);
    h = _mm_insert_epi16(h, load_u16(p + 6 * stride), 6);
    h = _mm_insert_epi16(h, load_u16(p + 7 * stride), 7);
    return _mm256_cvtph_ps(h);
}

/// The activation row prepared once per matvec: its codes widened to int16, as aligned int8, Σ codes per block
/// (the offsets of the unsigned-code products: 8·Σ for Q4_0, 128·Σ for Q8_0 with VNNI) and its block scales as floats.
typedef struct { int16_t *codes; int8_t *codes8; int32_t *offsets; float *scales; } prepared_q8_0;

static void free_q8_0(prepared_q8_0 *p) { free(p->codes); free(p->codes8); free(p->offsets); free(p->scales); }

PK_AVX2 static int prepare_q8_0(const uint8_t *y, int64_t blocks, prepared_q8_0 *p) {
    p->codes = aligned_alloc(32, (size_t)(blocks * 32 * sizeof(int16_t) + 32));
    p->codes8 = aligned_alloc(32, (size_t)(blocks * 32 + 32));
    p->offsets = malloc((size_t)(blocks + 8) * sizeof(int32_t));
    p->scales = malloc((size_t)(blocks + 8) * sizeof(float));
    if (!p->codes || !p->codes8 || !p->offsets || !p->scales) { free_q8_0(p); return 0; }
    for (int64_t b = 0; b < blocks; b++) {
        const uint8_t *yb = y + b * Q8_0_BYTES;
        _mm256_store_si256((__m256i *)(p->codes + 32 * b), _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(yb + 2))));
        _mm256_store_si256((__m256i *)(p->codes + 32 * b + 16), _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(yb + 18))));
        memcpy(p->codes8 + 32 * b, yb + 2, 32);
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) sum += (int8_t)yb[2 + j];
        p->offsets[b] = sum;
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

/// One Q8_0 weight block against int8 activation codes with the sign trick: |x|·(sign(x)·y), exact when no
/// activation code is −128 (−(−128) does not fit in int8; such activations take dot_q8_0_prepared). maddubs'
/// 16-bit pair sums cannot saturate: 2·128·127 < 32768.
PK_AVX2 static inline __m256i dot_q8_0_signed(const uint8_t *qs, const int8_t *y8) {
    __m256i x = _mm256_loadu_si256((const __m256i *)qs), y = _mm256_load_si256((const __m256i *)y8);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(x), _mm256_sign_epi8(y, x)), _mm256_set1_epi16(1));
}

/// One Q4_0 weight block's unsigned codes (0…15; the value is code − 8) against int8 activation codes:
/// Σ code·y as eight int32 partial sums. The −8·Σy part is subtracted per block after the horizontal sum.
/// maddubs' 16-bit pair sums cannot saturate: |2·15·(−128)| < 32768.
PK_AVX2 static inline __m256i dot_q4_0_unsigned(const uint8_t *qs, const int8_t *y8) {
    __m256i packed = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    // Low 128 bits: the low nibbles (elements 0…15); high 128 bits: the high nibbles (16…31).
    __m256i codes = _mm256_and_si256(_mm256_srlv_epi32(packed, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(0x0F));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(codes, _mm256_load_si256((const __m256i *)y8)), _mm256_set1_epi16(1));
}

/// Eight consecutive blocks of one weight row → their eight float block products, in block order.
PK_AVX2 static inline __m256 chunk_q8_0(const uint8_t *x, const prepared_q8_0 *p, int64_t c) {
    const int16_t *yw = p->codes + c * 256;
    const float *dy = p->scales + c * 8;
    __m256i s = hsum8(dot_q8_0_prepared(x + 2, yw), dot_q8_0_prepared(x + 36, yw + 32), dot_q8_0_prepared(x + 70, yw + 64),
                      dot_q8_0_prepared(x + 104, yw + 96), dot_q8_0_prepared(x + 138, yw + 128), dot_q8_0_prepared(x + 172, yw + 160),
                      dot_q8_0_prepared(x + 206, yw + 192), dot_q8_0_prepared(x + 240, yw + 224));
    // ggml_vec_dot_q8_0_q8_0_generic: sumi·(d_x·d_y).
    return _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(scales8(x, Q8_0_BYTES), _mm256_loadu_ps(dy)));
}

PK_AVX2 static inline __m256 chunk_q8_0_signed(const uint8_t *x, const prepared_q8_0 *p, int64_t c) {
    const int8_t *y8 = p->codes8 + c * 256;
    const float *dy = p->scales + c * 8;
    __m256i s = hsum8(dot_q8_0_signed(x + 2, y8), dot_q8_0_signed(x + 36, y8 + 32), dot_q8_0_signed(x + 70, y8 + 64),
                      dot_q8_0_signed(x + 104, y8 + 96), dot_q8_0_signed(x + 138, y8 + 128), dot_q8_0_signed(x + 172, y8 + 160),
                      dot_q8_0_signed(x + 206, y8 + 192), dot_q8_0_signed(x + 240, y8 + 224));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(scales8(x, Q8_0_BYTES), _mm256_loadu_ps(dy)));
}

PK_AVX2 static inline __m256 chunk_q4_0(const uint8_t *x, const prepared_q8_0 *p, int64_t c) {
    const int8_t *y8 = p->codes8 + c * 256;
    const float *dy = p->scales + c * 8;
    __m256i s = hsum8(dot_q4_0_unsigned(x + 2, y8), dot_q4_0_unsigned(x + 20, y8 + 32), dot_q4_0_unsigned(x + 38, y8 + 64),
                      dot_q4_0_unsigned(x + 56, y8 + 96), dot_q4_0_unsigned(x + 74, y8 + 128), dot_q4_0_unsigned(x + 92, y8 + 160),
                      dot_q4_0_unsigned(x + 110, y8 + 192), dot_q4_0_unsigned(x + 128, y8 + 224));
    s = _mm256_sub_epi32(s, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(p->offsets + c * 8)), 3));
    // ggml_vec_dot_q4_0_q8_0_generic: (sumi·d_x)·d_y.
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(s), scales8(x, Q4_0_BYTES)), _mm256_loadu_ps(dy));
}

/// One row at a time, eight blocks per step: the integer block sums in SIMD, then the eight float block products
/// added to the row's sum in block order. (Four rows side by side, which hides the add latency, measured slower:
/// four weight streams at once cost more than the dependent adds.) The last blocks (fewer than 8) take the
/// portable per-block code, which is the same arithmetic.
#define PK_MATVEC_SIMD(target, name, chunk, row_portable, block_bytes)                                                 \
    target static int name(const uint8_t *w, int64_t rows, int64_t blocks, const uint8_t *y, float *out) {            \
        prepared_q8_0 p;                                                                                              \
        if (!prepare_q8_0(y, blocks, &p)) return 0;                                                                   \
        int64_t chunks = blocks / 8, row_bytes = blocks * (block_bytes), r = 0;                                       \
        for (; r < rows; r++) {                                                                                       \
            const uint8_t *x = w + r * row_bytes;                                                                     \
            float s = 0, pr[8];                                                                                       \
            for (int64_t c = 0; c < chunks; c++) {                                                                    \
                _mm256_storeu_ps(pr, chunk(x + c * 8 * (block_bytes), &p, c));                                       \
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
        free_q8_0(&p);                                                                                                \
        return 1;                                                                                                     \
    }

/// VNNI (AVX-512 VL): vpdpbusd adds four unsigned·signed byte products into each int32 lane with no 16-bit
/// step, so Q8_0 takes x + 128 (x XOR 0x80) and subtracts 128·Σy per block — exact for every code, −128 included.
PK_AVX512 static inline __m256i dot_q8_0_vnni(const uint8_t *qs, const int8_t *y8) {
    __m256i unsigned_x = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)qs), _mm256_set1_epi8((char)0x80));
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), unsigned_x, _mm256_load_si256((const __m256i *)y8));
}

PK_AVX512 static inline __m256i dot_q4_0_vnni(const uint8_t *qs, const int8_t *y8) {
    __m256i packed = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    __m256i codes = _mm256_and_si256(_mm256_srlv_epi32(packed, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(0x0F));
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), codes, _mm256_load_si256((const __m256i *)y8));
}

PK_AVX512 static inline __m256 chunk_q8_0_vnni(const uint8_t *x, const prepared_q8_0 *p, int64_t c) {
    const int8_t *y8 = p->codes8 + c * 256;
    const float *dy = p->scales + c * 8;
    __m256i s = hsum8(dot_q8_0_vnni(x + 2, y8), dot_q8_0_vnni(x + 36, y8 + 32), dot_q8_0_vnni(x + 70, y8 + 64),
                      dot_q8_0_vnni(x + 104, y8 + 96), dot_q8_0_vnni(x + 138, y8 + 128), dot_q8_0_vnni(x + 172, y8 + 160),
                      dot_q8_0_vnni(x + 206, y8 + 192), dot_q8_0_vnni(x + 240, y8 + 224));
    s = _mm256_sub_epi32(s, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(p->offsets + c * 8)), 7));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(scales8(x, Q8_0_BYTES), _mm256_loadu_ps(dy)));
}

PK_AVX512 static inline __m256 chunk_q4_0_vnni(const uint8_t *x, const prepared_q8_0 *p, int64_t c) {
    const int8_t *y8 = p->codes8 + c * 256;
    const float *dy = p->scales + c * 8;
    __m256i s = hsum8(dot_q4_0_vnni(x + 2, y8), dot_q4_0_vnni(x + 20, y8 + 32), dot_q4_0_vnni(x + 38, y8 + 64),
                      dot_q4_0_vnni(x + 56, y8 + 96), dot_q4_0_vnni(x + 74, y8 + 128), dot_q4_0_vnni(x + 92, y8 + 160),
                      dot_q4_0_vnni(x + 110, y8 + 192), dot_q4_0_vnni(x + 128, y8 + 224));
    s = _mm256_sub_epi32(s, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(p->offsets + c * 8)), 3));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(s), scales8(x, Q4_0_BYTES)), _mm256_loadu_ps(dy));
}

PK_MATVEC_SIMD(PK_AVX2, matvec_q8_0_avx2, chunk_q8_0, continue_q8_0, Q8_0_BYTES)
PK_MATVEC_SIMD(PK_AVX2, matvec_q8_0_signed_avx2, chunk_q8_0_signed, continue_q8_0, Q8_0_BYTES)
PK_MATVEC_SIMD(PK_AVX2, matvec_q4_0_avx2, chunk_q4_0, continue_q4_0, Q4_0_BYTES)
PK_MATVEC_SIMD(PK_AVX512, matvec_q8_0_vnni, chunk_q8_0_vnni, continue_q8_0, Q8_0_BYTES)
PK_MATVEC_SIMD(PK_AVX512, matvec_q4_0_vnni, chunk_q4_0_vnni, continue_q4_0, Q4_0_BYTES)
#endif

void pk_matvec_q8_0(const void *weights, int64_t rows, int64_t blocks, const void *activations, float *out) {
    const uint8_t *w = weights, *y = activations;
#ifdef PK_X86
    if (pk_has_avx512() && matvec_q8_0_vnni(w, rows, blocks, y, out)) return;
    if (pk_has_avx2()) {
        int minus_128 = 0;  // Q8_0's quantizer never writes −128, but a file or a test may
        for (int64_t b = 0; b < blocks && !minus_128; b++)
            for (int j = 0; j < 32; j++) minus_128 |= y[b * Q8_0_BYTES + 2 + j] == 0x80;
        if (minus_128 ? matvec_q8_0_avx2(w, rows, blocks, y, out) : matvec_q8_0_signed_avx2(w, rows, blocks, y, out)) return;
    }
#endif
    for (int64_t r = 0; r < rows; r++) out[r] = continue_q8_0(w + r * blocks * Q8_0_BYTES, y, blocks, 0);
}

void pk_matvec_q4_0(const void *weights, int64_t rows, int64_t blocks, const void *activations, float *out) {
    const uint8_t *w = weights, *y = activations;
#ifdef PK_X86
    if (pk_has_avx512() && matvec_q4_0_vnni(w, rows, blocks, y, out)) return;
    if (pk_has_avx2() && matvec_q4_0_avx2(w, rows, blocks, y, out)) return;
#endif
    for (int64_t r = 0; r < rows; r++) out[r] = continue_q4_0(w + r * blocks * Q4_0_BYTES, y, blocks, 0);
}

// MARK: - k-quants × Q8_K (Q4_K, Q5_K, Q6_K), portable

enum { Q8_K_BYTES = 292, Q4_K_BYTES = 144, Q5_K_BYTES = 176, Q6_K_BYTES = 210 };

static inline float load_f32(const uint8_t *p) { float v; memcpy(&v, p, 4); return v; }
static inline int16_t load_i16(const uint8_t *p) { int16_t v; memcpy(&v, p, 2); return v; }

/// get_scale_min_k4: the j-th 6-bit scale and min of a Q4_K/Q5_K block's 12 `scales` bytes.
static inline void scale_min_k4(int j, const uint8_t *q, int32_t *scale, int32_t *min) {
    if (j < 4) {
        *scale = q[j] & 63;
        *min = q[j + 4] & 63;
    } else {
        *scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/// ggml_vec_dot_q4_K_q8_K_generic (fifth = 0) and _q5_K_ (fifth = 1, the fifth bit from qh): per block eight int32
/// lanes aux32[e mod 8] += scale·q8·a, then sums[l] += (d·d_y)·aux32[l] and sumf −= (dmin·d_y)·Σ bsums·min;
/// finally sumf += sums[l] in lane order.
static float dot_q45_K_portable(const uint8_t *x, const uint8_t *y, int64_t blocks, int fifth) {
    int64_t block_bytes = fifth ? Q5_K_BYTES : Q4_K_BYTES;
    int qs_offset = fifth ? 48 : 16;
    float sums[8] = {0}, sumf = 0;
    for (int64_t i = 0; i < blocks; i++) {
        const uint8_t *xb = x + i * block_bytes, *yb = y + i * Q8_K_BYTES;
        int32_t a[256], aux32[8] = {0}, sumi = 0, scale, min;
        for (int j = 0; j < 4; j++) {
            for (int l = 0; l < 32; l++) {
                int q = xb[qs_offset + 32 * j + l], lo = q & 0x0F, hi = q >> 4;
                if (fifth) {
                    lo += (xb[16 + l] >> (2 * j)) & 1 ? 16 : 0;
                    hi += (xb[16 + l] >> (2 * j + 1)) & 1 ? 16 : 0;
                }
                a[64 * j + l] = lo;
                a[64 * j + 32 + l] = hi;
            }
        }
        for (int j = 0; j < 16; j++) {
            scale_min_k4(j / 2, xb + 4, &scale, &min);
            sumi += (int32_t)load_i16(yb + 260 + 2 * j) * min;
        }
        for (int j = 0; j < 8; j++) {
            scale_min_k4(j, xb + 4, &scale, &min);
            for (int e = 32 * j; e < 32 * j + 32; e++) aux32[e & 7] += scale * ((int32_t)(int8_t)yb[4 + e] * a[e]);
        }
        float dy = load_f32(yb);
        float d = half_to_float(load_u16(xb)) * dy;
        for (int l = 0; l < 8; l++) sums[l] += d * (float)aux32[l];
        float dmin = half_to_float(load_u16(xb + 2)) * dy;
        sumf -= dmin * (float)sumi;
    }
    for (int l = 0; l < 8; l++) sumf += sums[l];
    return sumf;
}

/// The 6-bit code (0…63; the value is code − 32) of element e of a Q6_K block.
static inline int q6_K_code(const uint8_t *xb, int e) {
    int half = e / 128, l = e % 32, quarter = (e % 128) / 32;
    int ql = xb[64 * half + l + (quarter & 1) * 32], qh = xb[128 + 32 * half + l];
    return ((quarter < 2 ? ql & 0x0F : ql >> 4) | (((qh >> (2 * quarter)) & 3) << 4));
}

/// ggml_vec_dot_q6_K_q8_K_generic: per block aux32[e mod 8] += scale·q8·(code − 32) (a scale per 16 values),
/// sums[l] += (d·d_y)·aux32[l]; finally sumf = Σ sums[l] in lane order.
static float dot_q6_K_portable(const uint8_t *x, const uint8_t *y, int64_t blocks) {
    float sums[8] = {0}, sumf = 0;
    for (int64_t i = 0; i < blocks; i++) {
        const uint8_t *xb = x + i * Q6_K_BYTES, *yb = y + i * Q8_K_BYTES;
        int32_t aux32[8] = {0};
        for (int e = 0; e < 256; e++)
            aux32[e & 7] += (int32_t)(int8_t)xb[192 + e / 16] * ((int32_t)(int8_t)yb[4 + e] * (q6_K_code(xb, e) - 32));
        float d = half_to_float(load_u16(xb + 208)) * load_f32(yb);
        for (int l = 0; l < 8; l++) sums[l] += d * (float)aux32[l];
    }
    for (int l = 0; l < 8; l++) sumf += sums[l];
    return sumf;
}

#ifdef PK_X86
// MARK: - k-quants, AVX2
//
// The reference's integer lanes are classes of element index mod 8. maddubs adds adjacent byte pairs, so the
// weight codes are shuffled within each 16 bytes to (0,8,1,9,…,7,15) — pairs of one class — and the activation
// codes the same way once per matvec: 16-bit lane k then holds class k mod 8. Two sub-blocks' 16-bit sums are
// interleaved (unpacklo/hi) so madd_epi16 multiplies each by its own scale and adds two values of one class;
// the unpacklo accumulator holds classes 0–3 (twice), the unpackhi one 4–7. All integer, all exact.

/// The Q8_K activation row prepared once per matvec: pair-shuffled codes, the Q6_K offset 32·(q8[a]+q8[b]) of
/// each 16-bit lane, the bsums (aligned copies) and d.
typedef struct { int8_t *codes; int16_t *offsets; int16_t *bsums; float *scales; } prepared_q8_K;

static const int8_t pair_shuffle_bytes[32] = {0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15,
                                              0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15};

PK_AVX2 static int prepare_q8_K(const uint8_t *y, int64_t blocks, prepared_q8_K *p) {
    p->codes = aligned_alloc(32, (size_t)(blocks * 256 + 32));
    p->offsets = aligned_alloc(32, (size_t)(blocks * 256 * sizeof(int16_t) / 2 + 32));
    p->bsums = aligned_alloc(32, (size_t)(blocks * 16 * sizeof(int16_t) + 32));
    p->scales = malloc((size_t)(blocks + 1) * sizeof(float));
    if (!p->codes || !p->offsets || !p->bsums || !p->scales) {
        free(p->codes); free(p->offsets); free(p->bsums); free(p->scales);
        return 0;
    }
    __m256i shuffle = _mm256_loadu_si256((const __m256i *)pair_shuffle_bytes), thirty_two = _mm256_set1_epi8(32);
    for (int64_t b = 0; b < blocks; b++) {
        const uint8_t *yb = y + b * Q8_K_BYTES;
        for (int v = 0; v < 8; v++) {
            __m256i codes = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(yb + 4 + 32 * v)), shuffle);
            _mm256_store_si256((__m256i *)(p->codes + 256 * b + 32 * v), codes);
            _mm256_store_si256((__m256i *)(p->offsets + 128 * b + 16 * v), _mm256_maddubs_epi16(thirty_two, codes));
        }
        memcpy(p->bsums + 16 * b, yb + 260, 32);
        p->scales[b] = load_f32(yb);
    }
    return 1;
}

static void free_q8_K(prepared_q8_K *p) { free(p->codes); free(p->offsets); free(p->bsums); free(p->scales); }

/// f16 → f32 with F16C: exact, as half_to_float (a NaN gets the quiet bit and keeps its payload).
PK_AVX2 static inline float half_f16c(const uint8_t *p) { return _cvtsh_ss(load_u16(p)); }

/// acc_lo (classes 0–3, both 128-bit halves) and acc_hi (4–7) → the eight class sums in order.
PK_AVX2 static inline __m256i combine_classes(__m256i acc_lo, __m256i acc_hi) {
    return _mm256_add_epi32(_mm256_permute2x128_si256(acc_lo, acc_hi, 0x20), _mm256_permute2x128_si256(acc_lo, acc_hi, 0x31));
}

/// Bit `bit` of each byte of `qh` moved to bit 4 (0x10), the rest cleared.
PK_AVX2 static inline __m256i fifth_bit(__m256i qh, int bit) {
    __m256i moved = bit >= 4 ? _mm256_srli_epi16(qh, bit - 4) : _mm256_slli_epi16(qh, 4 - bit);
    return _mm256_and_si256(moved, _mm256_set1_epi8(0x10));
}

PK_AVX2 __attribute__((always_inline)) static inline float dot_q45_K_avx2(const uint8_t *x, const prepared_q8_K *p, int64_t blocks, int fifth) {
    __m256i shuffle = _mm256_loadu_si256((const __m256i *)pair_shuffle_bytes), low4 = _mm256_set1_epi8(0x0F);
    int64_t block_bytes = fifth ? Q5_K_BYTES : Q4_K_BYTES;
    int qs_offset = fifth ? 48 : 16;
    __m256 sums = _mm256_setzero_ps();
    float sumf = 0;
    for (int64_t i = 0; i < blocks; i++) {
        const uint8_t *xb = x + i * block_bytes;
        const int8_t *q8 = p->codes + 256 * i;
        // get_scale_min_k4 for all eight sub-blocks at once, on the 12 bytes as 32-bit words u0, u1, u2 (the 16-byte
        // load reads 4 bytes of qs too, unused): scales 0–3 = u0 & 0x3F…, scales 4–7 = (u2 & 0x0F…) | ((u0 >> 2) & 0x30…),
        // mins 0–3 = u1 & 0x3F…, mins 4–7 = ((u2 >> 4) & 0x0F…) | ((u1 >> 2) & 0x30…), each byte one value.
        __m128i words = _mm_loadu_si128((const __m128i *)(xb + 4));
        __m128i low_parts = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(words, 0x98), _mm_setr_epi32(0, 0, 0, 4)),  // u0, u2, u1, u2 >> 4
                                          _mm_setr_epi32(0x3F3F3F3F, 0x0F0F0F0F, 0x3F3F3F3F, 0x0F0F0F0F));
        __m128i high_parts = _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(words, 0x40), 2),  // ·, u0 >> 2, ·, u1 >> 2
                                           _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
        __m128i scales_mins = _mm_or_si128(low_parts, high_parts);  // bytes: scales 0…7, mins 0…7
        __m256i scales16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(scales_mins));  // words s0…s7, both halves
        // sumi = Σ_j bsums[j]·min[j/2]: madd of the bsums with each min twice, then the eight int32 sums.
        __m256i min_products = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpackhi_epi8(scales_mins, scales_mins)),
                                                 _mm256_load_si256((const __m256i *)(p->bsums + 16 * i)));
        __m128i folded = _mm_add_epi32(_mm256_castsi256_si128(min_products), _mm256_extracti128_si256(min_products, 1));
        folded = _mm_add_epi32(folded, _mm_shuffle_epi32(folded, 0x4E));
        folded = _mm_add_epi32(folded, _mm_shuffle_epi32(folded, 0xB1));
        int32_t sumi = _mm_cvtsi128_si32(folded);
        __m256i scale_pairs[4] = {_mm256_shuffle_epi32(scales16, 0x00), _mm256_shuffle_epi32(scales16, 0x55),
                                  _mm256_shuffle_epi32(scales16, 0xAA), _mm256_shuffle_epi32(scales16, 0xFF)};
        __m256i qh = fifth ? _mm256_loadu_si256((const __m256i *)(xb + 16)) : _mm256_setzero_si256();
        __m256i acc_lo = _mm256_setzero_si256(), acc_hi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            __m256i qs = _mm256_loadu_si256((const __m256i *)(xb + qs_offset + 32 * j));
            __m256i lo = _mm256_and_si256(qs, low4), hi = _mm256_and_si256(_mm256_srli_epi16(qs, 4), low4);
            if (fifth) {
                lo = _mm256_or_si256(lo, fifth_bit(qh, 2 * j));
                hi = _mm256_or_si256(hi, fifth_bit(qh, 2 * j + 1));
            }
            __m256i sum_lo = _mm256_maddubs_epi16(_mm256_shuffle_epi8(lo, shuffle), _mm256_load_si256((const __m256i *)(q8 + 64 * j)));
            __m256i sum_hi = _mm256_maddubs_epi16(_mm256_shuffle_epi8(hi, shuffle), _mm256_load_si256((const __m256i *)(q8 + 64 * j + 32)));
            acc_lo = _mm256_add_epi32(acc_lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(sum_lo, sum_hi), scale_pairs[j]));
            acc_hi = _mm256_add_epi32(acc_hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(sum_lo, sum_hi), scale_pairs[j]));
        }
        float dy = p->scales[i];
        float d = half_f16c(xb) * dy;
        sums = _mm256_add_ps(sums, _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(combine_classes(acc_lo, acc_hi))));
        float dmin = half_f16c(xb + 2) * dy;
        sumf -= dmin * (float)sumi;
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, sums);
    for (int l = 0; l < 8; l++) sumf += lanes[l];
    return sumf;
}

/// Q6_K scale words for madd_epi16, from the 16-bit scales 8h…8h+7 in both 128-bit halves: pair 0 (the
/// vectors of elements 32k + l for k = 0, 1) takes words (0, 2) in the low half and (1, 3) in the high half;
/// pair 1 (k = 2, 3) words (4, 6) and (5, 7).
static const int8_t q6_scale_pair0[32] = {0, 1, 4, 5, 0, 1, 4, 5, 0, 1, 4, 5, 0, 1, 4, 5,
                                          2, 3, 6, 7, 2, 3, 6, 7, 2, 3, 6, 7, 2, 3, 6, 7};
static const int8_t q6_scale_pair1[32] = {8, 9, 12, 13, 8, 9, 12, 13, 8, 9, 12, 13, 8, 9, 12, 13,
                                          10, 11, 14, 15, 10, 11, 14, 15, 10, 11, 14, 15, 10, 11, 14, 15};

PK_AVX2 __attribute__((always_inline)) static inline float dot_q6_K_avx2(const uint8_t *x, const prepared_q8_K *p, int64_t blocks) {
    __m256i shuffle = _mm256_loadu_si256((const __m256i *)pair_shuffle_bytes), low4 = _mm256_set1_epi8(0x0F);
    __m256i high2 = _mm256_set1_epi8(0x30);
    __m256i pair0 = _mm256_loadu_si256((const __m256i *)q6_scale_pair0), pair1 = _mm256_loadu_si256((const __m256i *)q6_scale_pair1);
    __m256 sums = _mm256_setzero_ps();
    for (int64_t i = 0; i < blocks; i++) {
        const uint8_t *xb = x + i * Q6_K_BYTES;
        __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(xb + 192)));
        __m256i half_scales[2] = {_mm256_permute4x64_epi64(scales16, 0x44), _mm256_permute4x64_epi64(scales16, 0xEE)};
        __m256i acc_lo = _mm256_setzero_si256(), acc_hi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const int8_t *q8 = p->codes + 256 * i + 128 * h;
            const int16_t *offsets = p->offsets + 128 * i + 64 * h;
            __m256i ql0 = _mm256_loadu_si256((const __m256i *)(xb + 64 * h));
            __m256i ql1 = _mm256_loadu_si256((const __m256i *)(xb + 64 * h + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(xb + 128 + 32 * h));
            // Codes 0…63 of elements 128h + 32k + l, k = 0…3 (the value is code − 32, taken care of by the offsets).
            __m256i c0 = _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), high2));
            __m256i c1 = _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), high2));
            __m256i c2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_and_si256(qh, high2));
            __m256i c3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), high2));
#define PK_Q6_SUM(c, k) _mm256_sub_epi16(_mm256_maddubs_epi16(_mm256_shuffle_epi8(c, shuffle), _mm256_load_si256((const __m256i *)(q8 + 32 * (k)))), \
                                         _mm256_load_si256((const __m256i *)(offsets + 16 * (k))))
            __m256i s0 = PK_Q6_SUM(c0, 0), s1 = PK_Q6_SUM(c1, 1), s2 = PK_Q6_SUM(c2, 2), s3 = PK_Q6_SUM(c3, 3);
#undef PK_Q6_SUM
            __m256i scales01 = _mm256_shuffle_epi8(half_scales[h], pair0), scales23 = _mm256_shuffle_epi8(half_scales[h], pair1);
            acc_lo = _mm256_add_epi32(acc_lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(s0, s1), scales01));
            acc_hi = _mm256_add_epi32(acc_hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(s0, s1), scales01));
            acc_lo = _mm256_add_epi32(acc_lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(s2, s3), scales23));
            acc_hi = _mm256_add_epi32(acc_hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(s2, s3), scales23));
        }
        float d = half_f16c(xb + 208) * p->scales[i];
        sums = _mm256_add_ps(sums, _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(combine_classes(acc_lo, acc_hi))));
    }
    float lanes[8], sumf = 0;
    _mm256_storeu_ps(lanes, sums);
    for (int l = 0; l < 8; l++) sumf += lanes[l];
    return sumf;
}

// MARK: - k-quants, AVX-512 (BW, VL, VBMI, VNNI)
//
// The same integer lanes with 64 values per instruction. vpermb gathers, within each 32 values, the four values of
// one class into one dword (byte 4m+t ← value m+8t), so maddubs' 16-bit lanes 2m and 2m+1 both hold class m
// (values m, m+8 and m+16, m+24) and vpdpwssd multiplies each by its own 16-bit scale and adds them into the class's
// int32 lane: Q4_K/Q5_K give both the same scale (one per 32 values), Q6_K the scales of its two 16-value groups.
// The activation codes are permuted the same way once per matvec.


/// Byte 4m+t of each 32-byte half ← byte m+8t of the same half (class_perm_full) or of the low 32 bytes (class_perm_low).
static const int8_t class_perm_full[64] = {0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27, 4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31,
                                           32, 40, 48, 56, 33, 41, 49, 57, 34, 42, 50, 58, 35, 43, 51, 59, 36, 44, 52, 60, 37, 45, 53, 61, 38, 46, 54, 62, 39, 47, 55, 63};
static const int8_t class_perm_low[64] = {0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27, 4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31,
                                          0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27, 4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31};

typedef struct { int8_t *codes; int16_t *offsets; int16_t *bsums; float *scales; } prepared_q8_K_512;

PK_AVX512 static int prepare_q8_K_512(const uint8_t *y, int64_t blocks, prepared_q8_K_512 *p) {
    p->codes = aligned_alloc(64, (size_t)(blocks * 256 + 64));
    p->offsets = aligned_alloc(64, (size_t)(blocks * 256 + 64));
    p->bsums = aligned_alloc(32, (size_t)(blocks * 16 * sizeof(int16_t) + 32));
    p->scales = malloc((size_t)(blocks + 1) * sizeof(float));
    if (!p->codes || !p->offsets || !p->bsums || !p->scales) {
        free(p->codes); free(p->offsets); free(p->bsums); free(p->scales);
        return 0;
    }
    __m512i perm = _mm512_loadu_si512(class_perm_full), thirty_two = _mm512_set1_epi8(32);
    for (int64_t b = 0; b < blocks; b++) {
        const uint8_t *yb = y + b * Q8_K_BYTES;
        for (int v = 0; v < 4; v++) {
            __m512i codes = _mm512_permutexvar_epi8(perm, _mm512_loadu_si512(yb + 4 + 64 * v));
            _mm512_store_si512(p->codes + 256 * b + 64 * v, codes);
            _mm512_store_si512(p->offsets + 128 * b + 32 * v, _mm512_maddubs_epi16(thirty_two, codes));
        }
        memcpy(p->bsums + 16 * b, yb + 260, 32);
        p->scales[b] = load_f32(yb);
    }
    return 1;
}

static void free_q8_K_512(prepared_q8_K_512 *p) { free(p->codes); free(p->offsets); free(p->bsums); free(p->scales); }

PK_AVX512 static inline __m256i fold_classes_512(__m512i acc) {
    return _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
}

PK_AVX512 __attribute__((always_inline)) static inline float dot_q45_K_avx512(const uint8_t *x, const prepared_q8_K_512 *p, int64_t blocks, int fifth) {
    __m512i perm_low = _mm512_loadu_si512(class_perm_low), low4 = _mm512_set1_epi8(0x0F);
    // Low half: the low nibbles (sub-block 2j), high half: the high nibbles (2j+1).
    __m512i nibble_shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    int64_t block_bytes = fifth ? Q5_K_BYTES : Q4_K_BYTES;
    int qs_offset = fifth ? 48 : 16;
    __m256 sums = _mm256_setzero_ps();
    float sumf = 0;
    for (int64_t i = 0; i < blocks; i++) {
        const uint8_t *xb = x + i * block_bytes;
        const int8_t *q8 = p->codes + 256 * i;
        __m128i words = _mm_loadu_si128((const __m128i *)(xb + 4));
        __m128i low_parts = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(words, 0x98), _mm_setr_epi32(0, 0, 0, 4)),
                                          _mm_setr_epi32(0x3F3F3F3F, 0x0F0F0F0F, 0x3F3F3F3F, 0x0F0F0F0F));
        __m128i high_parts = _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(words, 0x40), 2), _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
        __m128i scales_mins = _mm_or_si128(low_parts, high_parts);
        __m512i scales16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(scales_mins));
        __m256i min_products = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpackhi_epi8(scales_mins, scales_mins)),
                                                 _mm256_load_si256((const __m256i *)(p->bsums + 16 * i)));
        __m128i folded = _mm_add_epi32(_mm256_castsi256_si128(min_products), _mm256_extracti128_si256(min_products, 1));
        folded = _mm_add_epi32(folded, _mm_shuffle_epi32(folded, 0x4E));
        folded = _mm_add_epi32(folded, _mm_shuffle_epi32(folded, 0xB1));
        int32_t sumi = _mm_cvtsi128_si32(folded);
        __m512i qh = fifth ? _mm512_permutexvar_epi8(perm_low, _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(xb + 16))))
                           : _mm512_setzero_si512();
        __m512i acc = _mm512_setzero_si512();
        for (int j = 0; j < 4; j++) {
            __m512i qs = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(xb + qs_offset + 32 * j)));
            __m512i codes = _mm512_and_si512(_mm512_srlv_epi16(_mm512_permutexvar_epi8(perm_low, qs), nibble_shift), low4);
            if (fifth) {
                // The fifth bit: bit 2j of qh for the low half, 2j+1 for the high half.
                __m512i bit = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8((char)(1 << (2 * j)))),
                                                 _mm256_set1_epi8((char)(1 << (2 * j + 1))), 1);
                codes = _mm512_mask_add_epi8(codes, _mm512_test_epi8_mask(qh, bit), codes, _mm512_set1_epi8(16));  // codes < 16: + is |
            }
            __m512i sum16 = _mm512_maddubs_epi16(codes, _mm512_load_si512(q8 + 64 * j));
            __m512i scale = _mm512_permutexvar_epi16(_mm512_inserti64x4(_mm512_set1_epi16((short)(2 * j)), _mm256_set1_epi16((short)(2 * j + 1)), 1),
                                                     scales16);
            acc = _mm512_dpwssd_epi32(acc, sum16, scale);
        }
        float dy = p->scales[i];
        float d = half_f16c(xb) * dy;
        sums = _mm256_add_ps(sums, _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(fold_classes_512(acc))));
        float dmin = half_f16c(xb + 2) * dy;
        sumf -= dmin * (float)sumi;
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, sums);
    for (int l = 0; l < 8; l++) sumf += lanes[l];
    return sumf;
}

PK_AVX512 __attribute__((always_inline)) static inline float dot_q6_K_avx512(const uint8_t *x, const prepared_q8_K_512 *p, int64_t blocks) {
    __m512i perm_full = _mm512_loadu_si512(class_perm_full), perm_low = _mm512_loadu_si512(class_perm_low);
    __m512i low4 = _mm512_set1_epi8(0x0F), high2 = _mm512_set1_epi8(0x30);
    // qh bits → bits 4–5: values 32k + l take bits 2k, 2k+1; the low half holds k = 0 (or 2), the high half k = 1 (or 3).
    __m512i shift01 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    __m512i shift23 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    __m256 sums = _mm256_setzero_ps();
    for (int64_t i = 0; i < blocks; i++) {
        const uint8_t *xb = x + i * Q6_K_BYTES;
        // Dword k = the 16-bit scales of groups 2k and 2k+1.
        __m512i scale_pairs = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(xb + 192))));
        __m512i acc = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            const int8_t *q8 = p->codes + 256 * i + 128 * h;
            const int16_t *offsets = p->offsets + 128 * i + 64 * h;
            __m512i ql = _mm512_permutexvar_epi8(perm_full, _mm512_loadu_si512(xb + 64 * h));
            __m512i qh = _mm512_permutexvar_epi8(perm_low, _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(xb + 128 + 32 * h))));
            __m512i c01 = _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_and_si512(_mm512_sllv_epi16(qh, shift01), high2));
            __m512i c23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4), _mm512_and_si512(_mm512_srlv_epi16(qh, shift23), high2));
            __m512i s01 = _mm512_sub_epi16(_mm512_maddubs_epi16(c01, _mm512_load_si512(q8)), _mm512_load_si512(offsets));
            __m512i s23 = _mm512_sub_epi16(_mm512_maddubs_epi16(c23, _mm512_load_si512(q8 + 64)), _mm512_load_si512(offsets + 32));
            __m512i scales01 = _mm512_permutexvar_epi32(_mm512_inserti64x4(_mm512_set1_epi32(4 * h), _mm256_set1_epi32(4 * h + 1), 1), scale_pairs);
            __m512i scales23 = _mm512_permutexvar_epi32(_mm512_inserti64x4(_mm512_set1_epi32(4 * h + 2), _mm256_set1_epi32(4 * h + 3), 1), scale_pairs);
            acc = _mm512_dpwssd_epi32(acc, s01, scales01);
            acc = _mm512_dpwssd_epi32(acc, s23, scales23);
        }
        float d = half_f16c(xb + 208) * p->scales[i];
        sums = _mm256_add_ps(sums, _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(fold_classes_512(acc))));
    }
    float lanes[8], sumf = 0;
    _mm256_storeu_ps(lanes, sums);
    for (int l = 0; l < 8; l++) sumf += lanes[l];
    return sumf;
}

PK_AVX512 static int matvec_k_avx512(const uint8_t *w, int64_t rows, int64_t blocks, const uint8_t *y, float *out, int type) {
    prepared_q8_K_512 p;
    if (!prepare_q8_K_512(y, blocks, &p)) return 0;
    int64_t row_bytes = blocks * (type == 6 ? Q6_K_BYTES : type == 5 ? Q5_K_BYTES : Q4_K_BYTES);
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *x = w + r * row_bytes;
        out[r] = type == 6 ? dot_q6_K_avx512(x, &p, blocks) : type == 5 ? dot_q45_K_avx512(x, &p, blocks, 1) : dot_q45_K_avx512(x, &p, blocks, 0);
    }
    free_q8_K_512(&p);
    return 1;
}

PK_AVX2 static int matvec_k_avx2(const uint8_t *w, int64_t rows, int64_t blocks, const uint8_t *y, float *out, int type) {
    prepared_q8_K p;
    if (!prepare_q8_K(y, blocks, &p)) return 0;
    int64_t row_bytes = blocks * (type == 6 ? Q6_K_BYTES : type == 5 ? Q5_K_BYTES : Q4_K_BYTES);
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *x = w + r * row_bytes;
        out[r] = type == 6 ? dot_q6_K_avx2(x, &p, blocks) : type == 5 ? dot_q45_K_avx2(x, &p, blocks, 1) : dot_q45_K_avx2(x, &p, blocks, 0);
    }
    free_q8_K(&p);
    return 1;
}
#endif

void pk_matvec_q4_K(const void *weights, int64_t rows, int64_t blocks, const void *activations, float *out) {
    const uint8_t *w = weights, *y = activations;
#ifdef PK_X86
    if (pk_has_avx512() && matvec_k_avx512(w, rows, blocks, y, out, 4)) return;
    if (pk_has_avx2() && matvec_k_avx2(w, rows, blocks, y, out, 4)) return;
#endif
    for (int64_t r = 0; r < rows; r++) out[r] = dot_q45_K_portable(w + r * blocks * Q4_K_BYTES, y, blocks, 0);
}

void pk_matvec_q5_K(const void *weights, int64_t rows, int64_t blocks, const void *activations, float *out) {
    const uint8_t *w = weights, *y = activations;
#ifdef PK_X86
    if (pk_has_avx512() && matvec_k_avx512(w, rows, blocks, y, out, 5)) return;
    if (pk_has_avx2() && matvec_k_avx2(w, rows, blocks, y, out, 5)) return;
#endif
    for (int64_t r = 0; r < rows; r++) out[r] = dot_q45_K_portable(w + r * blocks * Q5_K_BYTES, y, blocks, 1);
}

void pk_matvec_q6_K(const void *weights, int64_t rows, int64_t blocks, const void *activations, float *out) {
    const uint8_t *w = weights, *y = activations;
#ifdef PK_X86
    if (pk_has_avx512() && matvec_k_avx512(w, rows, blocks, y, out, 6)) return;
    if (pk_has_avx2() && matvec_k_avx2(w, rows, blocks, y, out, 6)) return;
#endif
    for (int64_t r = 0; r < rows; r++) out[r] = dot_q6_K_portable(w + r * blocks * Q6_K_BYTES, y, blocks);
}

// MARK: - MLX affine quantized_matmul, float32

void pk_affine_matmul_f32_portable(const uint32_t *packed, const float *scales, const float *biases, int64_t rows, int64_t cols,
                                   int64_t group_size, int bits, const float *x, int64_t n, float *out, int64_t out_stride) {
    int64_t words = cols * bits / 32, groups = cols / group_size;
    for (int64_t m = 0; m < n; m++) {
        for (int64_t r = 0; r < rows; r++) {
            const uint32_t *row = packed + r * words;
            float sum = 0;
            for (int64_t c = 0; c < cols; c++) {
                int64_t g = r * groups + c / group_size;
                float w = scales[g] * (float)pk_affine_code(row, c, bits);
                w = w + biases[g];
                sum += x[m * cols + c] * w;
            }
            out[m * out_stride + r] = sum;
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
            pk_affine_matmul_f32_portable(packed + full * words, scales + full * groups, biases + full * groups, rows - full,
                                          cols, group_size, bits, x + m * cols, 1, tail, rows - full);
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
    pk_affine_matmul_f32_portable(packed, scales, biases, rows, cols, group_size, bits, x, n, out, rows);
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
