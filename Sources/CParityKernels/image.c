// Image kernels: a direct convolution (no im2col, no BLAS), 2×2 max pool, relu and the PyTorch engine's Linear. The
// convolution's float operations are defined by `Kernels.Reference.conv2dNCHW`: per output element one fused multiply-
// add chain from +0 over (ci, ky, kx) in that order, then `+ bias`. The AVX2+FMA path vectorizes across output columns
// (each lane its own element, the same chain), so it equals the portable path and the reference bit for bit; so does
// the AVX-512 path (vectors of 16 columns, the last one masked). One exception: where several NaNs meet in one chain,
// which payload survives depends on the FMA instruction form the compiler picks (IEEE 754 leaves it open), so the paths
// agree on NaN-ness, not on the payload.

#include "CParityKernels.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define PI_X86 1
#include <immintrin.h>
#endif

/// 0: the best path this CPU has; 1: portable C only; 2: AVX2 at most (tests compare every path on one machine).
static int conv_forced_limit = 0;

void pk_conv_force_path(int mode) { __atomic_store_n(&conv_forced_limit, mode == 1 || mode == 2 ? mode : 0, __ATOMIC_RELAXED); }

/// 1 when the AVX-512F convolution path is in use.
int pk_conv_has_avx512(void) {
#ifdef PI_X86
    static int cached = -1;
    int value = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (value < 0) {
        __builtin_cpu_init();
        value = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
        __atomic_store_n(&cached, value, __ATOMIC_RELAXED);
    }
    return value && pk_conv_has_avx2_fma() && __atomic_load_n(&conv_forced_limit, __ATOMIC_RELAXED) == 0 && pk_environment_limit() == 0;
#else
    return 0;
#endif
}

/// 1 when the AVX2+FMA convolution path is in use.
int pk_conv_has_avx2_fma(void) {
#ifdef PI_X86
    static int cached = -1;
    int value = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (value < 0) {
        __builtin_cpu_init();
        value = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
        __atomic_store_n(&cached, value, __ATOMIC_RELAXED);
    }
    return value && __atomic_load_n(&conv_forced_limit, __ATOMIC_RELAXED) != 1 && pk_environment_limit() != 1;
#else
    return 0;
#endif
}

/// Zero-padded copy of one image: [c, h + 2·ph, w + 2·pw].
static void pad_image(const float *x, int64_t c, int64_t h, int64_t w, int64_t ph, int64_t pw, float *pad) {
    const int64_t prow = w + 2 * pw, plane = (h + 2 * ph) * prow;
    memset(pad, 0, sizeof(float) * (size_t)(c * plane));
    for (int64_t ci = 0; ci < c; ci++)
        for (int64_t y = 0; y < h; y++) memcpy(pad + ci * plane + (y + ph) * prow + pw, x + (ci * h + y) * w, sizeof(float) * (size_t)w);
}

/// One image, portable: out[o, y, x] = (fma chain over ci, ky, kx from +0) + bias[o].
static void conv_image_portable(const float *pad, int64_t c, int64_t plane, int64_t prow, const float *weight, int64_t oc,
                                int64_t kh, int64_t kw, int64_t sy, int64_t sx, const float *bias, int64_t oh, int64_t ow, float *out) {
    const int64_t k = c * kh * kw;
    for (int64_t o = 0; o < oc; o++) {
        const float *wo = weight + o * k;
        for (int64_t y = 0; y < oh; y++)
            for (int64_t x = 0; x < ow; x++) {
                float acc = 0.0f;
                const float *wk = wo;
                for (int64_t ci = 0; ci < c; ci++)
                    for (int64_t ky = 0; ky < kh; ky++) {
                        const float *row = pad + ci * plane + (y * sy + ky) * prow + x * sx;
                        for (int64_t kx = 0; kx < kw; kx++) acc = fmaf(*wk++, row[kx], acc);
                    }
                out[(o * oh + y) * ow + x] = bias ? acc + bias[o] : acc;
            }
    }
}

#ifdef PI_X86
#define PI_FMA __attribute__((target("avx2,fma")))

/// `ob` output channels × `nv` vectors of 8 output columns (starting at xs[v]) of one output row: every lane runs
/// the same chain as the portable loop. Inlined with constant ob/nv, so the accumulators live in registers.
PI_FMA static inline __attribute__((always_inline)) void conv_tile8(const float *rowBase, int64_t c, int64_t plane, int64_t prow,
                                                                     int64_t kh, int64_t kw, const float *weight, int64_t k,
                                                                     const int64_t *xs, const int nv, const int ob,
                                                                     const float *bias, float *out, int64_t outPlane) {
    __m256 acc[4][4];
    for (int i = 0; i < ob; i++)
        for (int v = 0; v < nv; v++) acc[i][v] = _mm256_setzero_ps();
    int64_t kk = 0;
    for (int64_t ci = 0; ci < c; ci++)
        for (int64_t ky = 0; ky < kh; ky++) {
            const float *row = rowBase + ci * plane + ky * prow;
            for (int64_t kx = 0; kx < kw; kx++, kk++) {
                __m256 in[4];
                for (int v = 0; v < nv; v++) in[v] = _mm256_loadu_ps(row + xs[v] + kx);
                for (int i = 0; i < ob; i++) {
                    const __m256 wv = _mm256_broadcast_ss(weight + i * k + kk);
                    for (int v = 0; v < nv; v++) acc[i][v] = _mm256_fmadd_ps(wv, in[v], acc[i][v]);
                }
            }
        }
    for (int i = 0; i < ob; i++) {
        const __m256 b = bias ? _mm256_broadcast_ss(bias + i) : _mm256_setzero_ps();
        for (int v = 0; v < nv; v++) _mm256_storeu_ps(out + i * outPlane + xs[v], bias ? _mm256_add_ps(acc[i][v], b) : acc[i][v]);
    }
}

/// Stride 1 across, ow ≥ 8: output rows in vectors of 8 columns, the last one ending at the row's end (columns it
/// shares with the previous vector are computed twice, to the same values); four output channels at a time for
/// rows of up to two vectors, two for up to four, one for the remaining channels.
PI_FMA static void conv_image_avx2(const float *pad, int64_t c, int64_t plane, int64_t prow, const float *weight, int64_t oc,
                                   int64_t kh, int64_t kw, int64_t sy, const float *bias, int64_t oh, int64_t ow, float *out) {
    const int64_t k = c * kh * kw, outPlane = oh * ow;
    const int64_t vectors = (ow + 7) / 8;
    for (int64_t v0 = 0; v0 < vectors; v0 += 4) {
        const int nv = (int)(vectors - v0 < 4 ? vectors - v0 : 4);
        int64_t xs[4] = {0, 0, 0, 0};
        for (int v = 0; v < nv; v++) {
            const int64_t x = (v0 + v) * 8;
            xs[v] = x + 8 <= ow ? x : ow - 8;
        }
        const int ob = nv <= 2 ? 4 : 2;
        for (int64_t y = 0; y < oh; y++) {
            const float *rowBase = pad + y * sy * prow;
            int64_t o = 0;
            for (; o + ob <= oc; o += ob) {
                const float *w = weight + o * k, *b = bias ? bias + o : NULL;
                float *dst = out + o * outPlane + y * ow;
                switch (nv * 10 + ob) {
                case 14: conv_tile8(rowBase, c, plane, prow, kh, kw, w, k, xs, 1, 4, b, dst, outPlane); break;
                case 24: conv_tile8(rowBase, c, plane, prow, kh, kw, w, k, xs, 2, 4, b, dst, outPlane); break;
                case 32: conv_tile8(rowBase, c, plane, prow, kh, kw, w, k, xs, 3, 2, b, dst, outPlane); break;
                default: conv_tile8(rowBase, c, plane, prow, kh, kw, w, k, xs, 4, 2, b, dst, outPlane); break;
                }
            }
            for (; o < oc; o++) {
                const float *w = weight + o * k, *b = bias ? bias + o : NULL;
                float *dst = out + o * outPlane + y * ow;
                switch (nv) {
                case 1: conv_tile8(rowBase, c, plane, prow, kh, kw, w, k, xs, 1, 1, b, dst, outPlane); break;
                case 2: conv_tile8(rowBase, c, plane, prow, kh, kw, w, k, xs, 2, 1, b, dst, outPlane); break;
                case 3: conv_tile8(rowBase, c, plane, prow, kh, kw, w, k, xs, 3, 1, b, dst, outPlane); break;
                default: conv_tile8(rowBase, c, plane, prow, kh, kw, w, k, xs, 4, 1, b, dst, outPlane); break;
                }
            }
        }
    }
}

#define PI_AVX512 __attribute__((target("avx512f,avx2,fma")))

/// AVX-512: `nv` vectors of up to 16 output columns (vector v: output row ys[v], columns from xs[v], lanes in
/// masks[v]; masked lanes load zeros and are not stored) × `ob` output channels; each lane the portable chain.
PI_AVX512 static inline __attribute__((always_inline)) void conv_tile16(const float *pad, int64_t c, int64_t plane, int64_t prow,
                                                                         int64_t kh, int64_t kw, int64_t sy, const float *weight,
                                                                         int64_t k, const int64_t *ys, const int64_t *xs,
                                                                         const __mmask16 *masks, const int nv, const int ob,
                                                                         const float *bias, float *out, int64_t outPlane, int64_t ow) {
    __m512 acc[8][3];
    for (int i = 0; i < ob; i++)
        for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_ps();
    const float *base[3];
    for (int v = 0; v < nv; v++) base[v] = pad + ys[v] * sy * prow + xs[v];
    int64_t kk = 0;
    for (int64_t ci = 0; ci < c; ci++)
        for (int64_t ky = 0; ky < kh; ky++) {
            const int64_t off = ci * plane + ky * prow;
            for (int64_t kx = 0; kx < kw; kx++, kk++) {
                __m512 in[3];
                for (int v = 0; v < nv; v++) in[v] = _mm512_maskz_loadu_ps(masks[v], base[v] + off + kx);
                for (int i = 0; i < ob; i++) {
                    const __m512 wv = _mm512_set1_ps(weight[i * k + kk]);
                    for (int v = 0; v < nv; v++) acc[i][v] = _mm512_fmadd_ps(wv, in[v], acc[i][v]);
                }
            }
        }
    for (int i = 0; i < ob; i++) {
        const __m512 b = _mm512_set1_ps(bias ? bias[i] : 0.0f);
        for (int v = 0; v < nv; v++)
            _mm512_mask_storeu_ps(out + i * outPlane + ys[v] * ow + xs[v], masks[v], bias ? _mm512_add_ps(acc[i][v], b) : acc[i][v]);
    }
}

/// Stride 1 across: every output row cut into vectors of 16 columns (the last masked), taken three at a time
/// (from one row or consecutive rows) against eight output channels at a time, then one at a time.
PI_AVX512 static void conv_image_avx512(const float *pad, int64_t c, int64_t plane, int64_t prow, const float *weight, int64_t oc,
                                        int64_t kh, int64_t kw, int64_t sy, const float *bias, int64_t oh, int64_t ow, float *out) {
    const int64_t k = c * kh * kw, outPlane = oh * ow;
    const int64_t perRow = (ow + 15) / 16, vectors = oh * perRow;
    for (int64_t v0 = 0; v0 < vectors; v0 += 3) {
        const int nv = (int)(vectors - v0 < 3 ? vectors - v0 : 3);
        int64_t ys[3] = {0, 0, 0}, xs[3] = {0, 0, 0};
        __mmask16 masks[3] = {0, 0, 0};
        for (int v = 0; v < nv; v++) {
            ys[v] = (v0 + v) / perRow;
            xs[v] = (v0 + v) % perRow * 16;
            const int64_t lanes = ow - xs[v] < 16 ? ow - xs[v] : 16;
            masks[v] = (__mmask16)((1u << lanes) - 1u);
        }
        int64_t o = 0;
        for (; o + 8 <= oc; o += 8) {
            const float *w = weight + o * k, *b = bias ? bias + o : NULL;
            float *dst = out + o * outPlane;
            switch (nv) {
            case 1: conv_tile16(pad, c, plane, prow, kh, kw, sy, w, k, ys, xs, masks, 1, 8, b, dst, outPlane, ow); break;
            case 2: conv_tile16(pad, c, plane, prow, kh, kw, sy, w, k, ys, xs, masks, 2, 8, b, dst, outPlane, ow); break;
            default: conv_tile16(pad, c, plane, prow, kh, kw, sy, w, k, ys, xs, masks, 3, 8, b, dst, outPlane, ow); break;
            }
        }
        for (; o < oc; o++) {
            const float *w = weight + o * k, *b = bias ? bias + o : NULL;
            float *dst = out + o * outPlane;
            switch (nv) {
            case 1: conv_tile16(pad, c, plane, prow, kh, kw, sy, w, k, ys, xs, masks, 1, 1, b, dst, outPlane, ow); break;
            case 2: conv_tile16(pad, c, plane, prow, kh, kw, sy, w, k, ys, xs, masks, 2, 1, b, dst, outPlane, ow); break;
            default: conv_tile16(pad, c, plane, prow, kh, kw, sy, w, k, ys, xs, masks, 3, 1, b, dst, outPlane, ow); break;
            }
        }
    }
}
#endif

void pk_conv2d_nchw(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, const float *weight, int64_t oc, int64_t kh,
                    int64_t kw, int64_t sy, int64_t sx, int64_t ph, int64_t pw, const float *bias, float *out) {
    const int64_t prow = w + 2 * pw, plane = (h + 2 * ph) * prow;
    const int64_t oh = (h + 2 * ph - kh) / sy + 1, ow = (w + 2 * pw - kw) / sx + 1;
    if (n <= 0 || oc <= 0 || oh <= 0 || ow <= 0) return;
    float *pad = malloc(sizeof(float) * (size_t)(c * plane > 0 ? c * plane : 1));
    if (!pad) abort();
#ifdef PI_X86
    const int simd512 = pk_conv_has_avx512() && sx == 1;
    const int simd = pk_conv_has_avx2_fma() && sx == 1 && ow >= 8;
#endif
    for (int64_t i = 0; i < n; i++) {
        pad_image(x + i * c * h * w, c, h, w, ph, pw, pad);
        float *dst = out + i * oc * oh * ow;
#ifdef PI_X86
        if (simd512) { conv_image_avx512(pad, c, plane, prow, weight, oc, kh, kw, sy, bias, oh, ow, dst); continue; }
        if (simd) { conv_image_avx2(pad, c, plane, prow, weight, oc, kh, kw, sy, bias, oh, ow, dst); continue; }
#endif
        conv_image_portable(pad, c, plane, prow, weight, oc, kh, kw, sy, sx, bias, oh, ow, dst);
    }
    free(pad);
}

// MARK: - 2×2 max pool at stride 2 and relu

#ifdef PI_X86
/// Sixteen windows per step (lanes beyond `ow` masked off): the same four steps per lane, as masks.
PI_AVX512 static inline __attribute__((always_inline)) __m512 pool_step16(__m512 best, __m512 v, int propagate, int afterNaNStops) {
    __mmask16 take = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
    if (propagate) take |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    if (afterNaNStops) take &= _mm512_cmp_ps_mask(best, best, _CMP_ORD_Q);
    return _mm512_mask_mov_ps(best, take, v);
}

PI_AVX512 static void maxpool2x2_avx512(const float *x, int64_t planes, int64_t h, int64_t w, int propagate, float start, float *out) {
    const int64_t oh = h / 2, ow = w / 2;
    const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odds = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (int64_t p = 0; p < planes; p++) {
        const float *src = x + p * h * w;
        float *dst = out + p * oh * ow;
        for (int64_t oy = 0; oy < oh; oy++) {
            const float *top = src + 2 * oy * w, *bottom = top + w;
            for (int64_t ox = 0; ox < ow; ox += 16) {
                const int64_t windows = ow - ox < 16 ? ow - ox : 16;
                const int64_t columns = 2 * windows;  // input columns read: 2·windows (floor mode drops an odd last one)
                const __mmask16 lo = (__mmask16)(columns >= 16 ? 0xFFFFu : (1u << columns) - 1u);
                const __mmask16 hi = (__mmask16)(columns >= 32 ? 0xFFFFu : columns > 16 ? (1u << (columns - 16)) - 1u : 0u);
                const __m512 t0 = _mm512_maskz_loadu_ps(lo, top + 2 * ox), t1 = _mm512_maskz_loadu_ps(hi, top + 2 * ox + 16);
                const __m512 b0 = _mm512_maskz_loadu_ps(lo, bottom + 2 * ox), b1 = _mm512_maskz_loadu_ps(hi, bottom + 2 * ox + 16);
                __m512 best = _mm512_set1_ps(start);
                best = pool_step16(best, _mm512_permutex2var_ps(t0, evens, t1), propagate, 0);
                best = pool_step16(best, _mm512_permutex2var_ps(t0, odds, t1), propagate, 1);
                best = pool_step16(best, _mm512_permutex2var_ps(b0, evens, b1), propagate, 0);
                best = pool_step16(best, _mm512_permutex2var_ps(b0, odds, b1), propagate, 1);
                _mm512_mask_storeu_ps(dst + oy * ow + ox, (__mmask16)((1u << windows) - 1u), best);
            }
        }
    }
}

PI_AVX512 static void relu_avx512(const float *x, int64_t count, float *out) {
    int64_t i = 0;
    for (; i + 16 <= count; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        // Kept where v > 0 or v is NaN (not-less-or-equal, unordered: true for NaN); +0 elsewhere (−0 included).
        _mm512_storeu_ps(out + i, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NLE_UQ), v));
    }
    for (; i < count; i++) out[i] = (x[i] > 0.0f || x[i] != x[i]) ? x[i] : 0.0f;
}
#endif

int pk_maxpool2x2_nchw(const float *x, int64_t planes, int64_t h, int64_t w, int propagate, float *out) {
    const float start = propagate ? -INFINITY : -FLT_MAX;  // ggml_pool_2d starts from -FLT_MAX
#ifdef PI_X86
    if (pk_conv_has_avx512()) { maxpool2x2_avx512(x, planes, h, w, propagate, start, out); return 1; }
#endif
    (void)x; (void)planes; (void)h; (void)w; (void)out;
    return 0;
}

int pk_relu(const float *x, int64_t count, float *out) {
#ifdef PI_X86
    if (pk_conv_has_avx512()) { relu_avx512(x, count, out); return 1; }
#endif
    (void)x; (void)count; (void)out;
    return 0;
}

// MARK: - Linear (PyTorch engine): y = x · Wᵀ + b on a packed weight

enum { PANEL = 32 };  // output features per packed panel

int64_t pk_linear_packed_count(int64_t outF, int64_t inF) { return (outF + PANEL - 1) / PANEL * PANEL * inF; }

void pk_linear_pack(const float *w, int64_t outF, int64_t inF, float *packed) {
    const int64_t panels = (outF + PANEL - 1) / PANEL;
    for (int64_t p = 0; p < panels; p++)
        for (int64_t k = 0; k < inF; k++)
            for (int64_t jj = 0; jj < PANEL; jj++) {
                const int64_t j = p * PANEL + jj;
                packed[(p * inF + k) * PANEL + jj] = j < outF ? w[j * inF + k] : 0.0f;
            }
}

/// Portable: per output element the fused multiply-add chain from +0 over k in order, then + bias.
static void linear_portable(const float *x, int64_t n, int64_t inF, const float *packed, int64_t outF, const float *bias, float *y) {
    const int64_t panels = (outF + PANEL - 1) / PANEL;
    for (int64_t i = 0; i < n; i++)
        for (int64_t p = 0; p < panels; p++) {
            float acc[PANEL];
            for (int jj = 0; jj < PANEL; jj++) acc[jj] = 0.0f;
            const float *panel = packed + p * inF * PANEL, *row = x + i * inF;
            for (int64_t k = 0; k < inF; k++) {
                const float a = row[k];
                for (int jj = 0; jj < PANEL; jj++) acc[jj] = fmaf(a, panel[k * PANEL + jj], acc[jj]);
            }
            for (int64_t jj = 0; jj < PANEL && p * PANEL + jj < outF; jj++) {
                const int64_t j = p * PANEL + jj;
                y[i * outF + j] = bias ? acc[jj] + bias[j] : acc[jj];
            }
        }
}

#ifdef PI_X86
/// `rows` (≤ 6) rows of x against one panel: 2 vectors of 16 outputs per row, each lane the portable chain.
PI_AVX512 static inline __attribute__((always_inline)) void linear_tile512(const float *x, int64_t inF, const float *panel, const int rows,
                                                                            const float *bias, int64_t j0, int64_t outF, float *y) {
    __m512 acc[6][2];
    for (int r = 0; r < rows; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < inF; k++) {
        const __m512 b0 = _mm512_loadu_ps(panel + k * PANEL), b1 = _mm512_loadu_ps(panel + k * PANEL + 16);
        for (int r = 0; r < rows; r++) {
            const __m512 a = _mm512_set1_ps(x[r * inF + k]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    const int64_t valid = outF - j0 < PANEL ? outF - j0 : PANEL;
    const __mmask16 m0 = (__mmask16)(valid >= 16 ? 0xFFFFu : (1u << valid) - 1u);
    const __mmask16 m1 = (__mmask16)(valid >= 32 ? 0xFFFFu : valid > 16 ? (1u << (valid - 16)) - 1u : 0u);
    const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias + j0) : _mm512_setzero_ps();
    const __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + j0 + 16) : _mm512_setzero_ps();
    for (int r = 0; r < rows; r++) {
        _mm512_mask_storeu_ps(y + r * outF + j0, m0, bias ? _mm512_add_ps(acc[r][0], bias0) : acc[r][0]);
        _mm512_mask_storeu_ps(y + r * outF + j0 + 16, m1, bias ? _mm512_add_ps(acc[r][1], bias1) : acc[r][1]);
    }
}

/// Panels outer (one panel, 32·inF floats, stays in L2 while every row block passes), blocks of six rows inner.
PI_AVX512 static void linear_avx512(const float *x, int64_t n, int64_t inF, const float *packed, int64_t outF, const float *bias, float *y) {
    const int64_t panels = (outF + PANEL - 1) / PANEL;
    for (int64_t p = 0; p < panels; p++) {
        const float *panel = packed + p * inF * PANEL;
        int64_t i = 0;
        for (; i + 6 <= n; i += 6) linear_tile512(x + i * inF, inF, panel, 6, bias, p * PANEL, outF, y + i * outF);
        switch (n - i) {
        case 1: linear_tile512(x + i * inF, inF, panel, 1, bias, p * PANEL, outF, y + i * outF); break;
        case 2: linear_tile512(x + i * inF, inF, panel, 2, bias, p * PANEL, outF, y + i * outF); break;
        case 3: linear_tile512(x + i * inF, inF, panel, 3, bias, p * PANEL, outF, y + i * outF); break;
        case 4: linear_tile512(x + i * inF, inF, panel, 4, bias, p * PANEL, outF, y + i * outF); break;
        case 5: linear_tile512(x + i * inF, inF, panel, 5, bias, p * PANEL, outF, y + i * outF); break;
        default: break;
        }
    }
}

/// AVX2+FMA: `rows` (≤ 3) rows × 4 vectors of 8 outputs.
PI_FMA static inline __attribute__((always_inline)) void linear_tile256(const float *x, int64_t inF, const float *panel, const int rows,
                                                                         const float *bias, int64_t j0, int64_t outF, float *y) {
    __m256 acc[3][4];
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < 4; v++) acc[r][v] = _mm256_setzero_ps();
    for (int64_t k = 0; k < inF; k++) {
        __m256 b[4];
        for (int v = 0; v < 4; v++) b[v] = _mm256_loadu_ps(panel + k * PANEL + 8 * v);
        for (int r = 0; r < rows; r++) {
            const __m256 a = _mm256_broadcast_ss(x + r * inF + k);
            for (int v = 0; v < 4; v++) acc[r][v] = _mm256_fmadd_ps(a, b[v], acc[r][v]);
        }
    }
    float out[PANEL];
    for (int r = 0; r < rows; r++) {
        for (int v = 0; v < 4; v++) _mm256_storeu_ps(out + 8 * v, acc[r][v]);
        for (int64_t jj = 0; jj < PANEL && j0 + jj < outF; jj++) y[r * outF + j0 + jj] = bias ? out[jj] + bias[j0 + jj] : out[jj];
    }
}

PI_FMA static void linear_avx2(const float *x, int64_t n, int64_t inF, const float *packed, int64_t outF, const float *bias, float *y) {
    const int64_t panels = (outF + PANEL - 1) / PANEL;
    for (int64_t p = 0; p < panels; p++) {
        const float *panel = packed + p * inF * PANEL;
        int64_t i = 0;
        for (; i + 3 <= n; i += 3) linear_tile256(x + i * inF, inF, panel, 3, bias, p * PANEL, outF, y + i * outF);
        if (n - i == 2) linear_tile256(x + i * inF, inF, panel, 2, bias, p * PANEL, outF, y + i * outF);
        if (n - i == 1) linear_tile256(x + i * inF, inF, panel, 1, bias, p * PANEL, outF, y + i * outF);
    }
}
#endif

void pk_linear_packed(const float *x, int64_t n, int64_t inF, const float *packed, int64_t outF, const float *bias, float *y) {
    if (n <= 0 || outF <= 0) return;
#ifdef PI_X86
    if (pk_conv_has_avx512()) { linear_avx512(x, n, inF, packed, outF, bias, y); return; }
    if (pk_conv_has_avx2_fma()) { linear_avx2(x, n, inF, packed, outF, bias, y); return; }
#endif
    linear_portable(x, n, inF, packed, outF, bias, y);
}
