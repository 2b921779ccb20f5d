// SHA-256 (FIPS 180-4). Two compression functions over the same padding code: a portable one in plain C, and on
// x86-64 one built on the SHA extensions (SHA256RNDS2 does two rounds, SHA256MSG1/MSG2 extend the message schedule),
// chosen at run time from cpuid, so the package needs no target flags and still runs on CPUs without them.
#include "parity_sys.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define PARITY_SHA256_HAVE_SHA_NI 1
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t round_constants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t initial_hash[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

typedef void (*compress_fn)(uint32_t state[8], const uint8_t *blocks, size_t count);

// MARK: portable

static inline uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static inline uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void compress_portable(uint32_t state[8], const uint8_t *blocks, size_t count) {
    uint32_t w[64];
    for (size_t block = 0; block < count; block++, blocks += 64) {
        for (int t = 0; t < 16; t++) w[t] = load_be32(blocks + 4 * t);
        for (int t = 16; t < 64; t++) {
            uint32_t sigma0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t sigma1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + sigma0 + w[t - 7] + sigma1;
        }
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        for (int t = 0; t < 64; t++) {
            uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
            uint32_t choose = (e & f) ^ (~e & g);
            uint32_t t1 = h + s1 + choose + round_constants[t] + w[t];
            uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
            uint32_t majority = (a & b) ^ (a & c) ^ (b & c);
            uint32_t t2 = s0 + majority;
            h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        state[0] += a; state[1] += b; state[2] += c; state[3] += d;
        state[4] += e; state[5] += f; state[6] += g; state[7] += h;
    }
}

// MARK: x86 SHA extensions

#ifdef PARITY_SHA256_HAVE_SHA_NI

// SHA256RNDS2 keeps the eight working variables in two registers, ordered from the highest lane down:
// (A, B, E, F) and (C, D, G, H). It reads the two rounds' W[t] + K[t] from the low two lanes of its third operand.
// After two rounds the old (A, B, E, F) are the new (C, D, G, H), so each pair of rounds swaps the registers' roles.
__attribute__((target("sha,sse4.1,ssse3")))
static void compress_sha_ni(uint32_t state[8], const uint8_t *blocks, size_t count) {
    // Message words are big-endian: reverse the bytes within each 32-bit lane.
    const __m128i byte_swap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);

    __m128i abcd = _mm_loadu_si128((const __m128i *)&state[0]);  // lanes 0..3 = A, B, C, D
    __m128i efgh = _mm_loadu_si128((const __m128i *)&state[4]);  // lanes 0..3 = E, F, G, H
    __m128i badc = _mm_shuffle_epi32(abcd, 0xB1);                // lanes 0..3 = B, A, D, C
    __m128i hgfe = _mm_shuffle_epi32(efgh, 0x1B);                // lanes 0..3 = H, G, F, E
    __m128i abef = _mm_alignr_epi8(badc, hgfe, 8);               // lanes 0..3 = F, E, B, A
    __m128i cdgh = _mm_blend_epi16(hgfe, badc, 0xF0);            // lanes 0..3 = H, G, D, C

    for (size_t block = 0; block < count; block++, blocks += 64) {
        const __m128i abef_in = abef, cdgh_in = cdgh;
        __m128i w[4];  // w[g % 4] holds W[4g .. 4g+3] for the group of four rounds g
        for (int group = 0; group < 16; group++) {
            __m128i words;
            if (group < 4) {
                words = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(blocks + 16 * group)), byte_swap);
            } else {
                // W[t+i] = W[t-16+i] + sigma0(W[t-15+i]) + W[t-7+i] + sigma1(W[t-2+i]), i = 0..3:
                // MSG1 adds the sigma0 terms, the aligned add brings W[t-7 .. t-4], MSG2 adds the sigma1 terms
                // (including those of the words it produces itself).
                __m128i w16 = w[(group - 4) & 3], w12 = w[(group - 3) & 3];
                __m128i w8 = w[(group - 2) & 3], w4 = w[(group - 1) & 3];
                __m128i partial = _mm_add_epi32(_mm_sha256msg1_epu32(w16, w12), _mm_alignr_epi8(w4, w8, 4));
                words = _mm_sha256msg2_epu32(partial, w4);
            }
            w[group & 3] = words;
            __m128i wk = _mm_add_epi32(words, _mm_loadu_si128((const __m128i *)&round_constants[4 * group]));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);                           // rounds 4g, 4g+1
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));  // rounds 4g+2, 4g+3
        }
        abef = _mm_add_epi32(abef, abef_in);
        cdgh = _mm_add_epi32(cdgh, cdgh_in);
    }

    __m128i abef_lanes = _mm_shuffle_epi32(abef, 0x1B);  // lanes 0..3 = A, B, E, F
    __m128i ghcd = _mm_shuffle_epi32(cdgh, 0xB1);        // lanes 0..3 = G, H, C, D
    _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(abef_lanes, ghcd, 0xF0));
    _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(ghcd, abef_lanes, 8));
}

static int cpu_has_sha_ni(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    const int ssse3 = (ecx >> 9) & 1, sse41 = (ecx >> 19) & 1;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    const int sha = (ebx >> 29) & 1;
    return ssse3 && sse41 && sha;
}

#endif

// MARK: padding and dispatch

int parity_sha256_has_sha_extensions(void) {
#ifdef PARITY_SHA256_HAVE_SHA_NI
    static int cached = -1;  // a benign race: every thread computes the same answer
    if (cached < 0) cached = cpu_has_sha_ni();
    return cached;
#else
    return 0;
#endif
}

#ifdef PARITY_SHA256_HAVE_SHA_NI
static int portable_requested(void) {
    static int cached = -1;  // a benign race: every thread computes the same answer
    if (cached < 0) {
        const char *text = getenv("PARITY_KERNELS");
        cached = text && (strcmp(text, "portable") == 0 || strcmp(text, "avx2") == 0);
    }
    return cached;
}
#endif

int parity_sha256(const void *data, size_t length, uint8_t digest[32], int implementation) {
    compress_fn compress;
    switch (implementation) {
    case PARITY_SHA256_PORTABLE:
        compress = compress_portable;
        break;
    case PARITY_SHA256_SHA_EXTENSIONS:
#ifdef PARITY_SHA256_HAVE_SHA_NI
        if (!parity_sha256_has_sha_extensions()) return -1;
        compress = compress_sha_ni;
        break;
#else
        return -1;
#endif
    case PARITY_SHA256_AUTOMATIC:
#ifdef PARITY_SHA256_HAVE_SHA_NI
        // PARITY_KERNELS=portable or avx2 stands for a CPU without these extensions (as every AVX2-only x86 is).
        compress = parity_sha256_has_sha_extensions() && !portable_requested() ? compress_sha_ni : compress_portable;
#else
        compress = compress_portable;
#endif
        break;
    default:
        return -1;
    }

    uint32_t state[8];
    memcpy(state, initial_hash, sizeof state);
    const uint8_t *bytes = data;
    const size_t full_blocks = length / 64;
    if (full_blocks > 0) compress(state, bytes, full_blocks);

    // The tail, a 1 bit, zeros up to 56 mod 64 bytes, and the message length in bits as a 64-bit big-endian number.
    uint8_t tail[128] = {0};
    const size_t rest = length - full_blocks * 64;
    if (rest > 0) memcpy(tail, bytes + full_blocks * 64, rest);
    tail[rest] = 0x80;
    const size_t tail_length = rest < 56 ? 64 : 128;
    const uint64_t bits = (uint64_t)length * 8;
    for (int i = 0; i < 8; i++) tail[tail_length - 1 - i] = (uint8_t)(bits >> (8 * i));
    compress(state, tail, tail_length / 64);

    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(state[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(state[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(state[i] >> 8);
        digest[4 * i + 3] = (uint8_t)state[i];
    }
    return 0;
}
