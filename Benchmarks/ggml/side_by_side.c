// Parity's kernels and ggml's, side by side in one process on the same bytes: a 4096×4096 weight matrix
// quantized by ggml_quantize_chunk from random floats, one activation row converted by ggml's from_float to the
// type's vec_dot_type. Each round times, per type, one ggml matvec (4096 vec_dot calls, what ggml's mul_mat does
// on one thread for a single row) and one Parity matvec (pk_matvec_*, the function GGMLQuants.matVec calls),
// alternating which goes first; and one streaming sum over a buffer of the Q8_0 matrix's size (the core's read
// bandwidth). Times are thread CPU time; the report gives the median over rounds and the ratio of medians.
//
// Parity's kernels.c is compiled into this program from Sources/CParityKernels (same file, same clang as SwiftPM;
// see side_by_side.sh), so the numbers are the package's kernels, not a copy.
#include "ggml.h"
#include "ggml-cpu.h"
#include "CParityKernels.h"
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double thread_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *values, int count) {
    qsort(values, count, sizeof(double), compare_doubles);
    return count % 2 ? values[count / 2] : (values[count / 2 - 1] + values[count / 2]) / 2;
}

typedef void (*parity_matvec)(const void *, int64_t, int64_t, const void *, float *);

/// A streaming sum with four AVX2 accumulators: the read bandwidth one core reaches from this buffer.
__attribute__((target("avx2"))) static float stream_sum(const float *buffer, long count) {
    __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
    for (long i = 0; i + 32 <= count; i += 32) {
        a = _mm256_add_ps(a, _mm256_load_ps(buffer + i));
        b = _mm256_add_ps(b, _mm256_load_ps(buffer + i + 8));
        c = _mm256_add_ps(c, _mm256_load_ps(buffer + i + 16));
        d = _mm256_add_ps(d, _mm256_load_ps(buffer + i + 24));
    }
    float lanes[8], total = 0;
    _mm256_storeu_ps(lanes, _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
    for (int l = 0; l < 8; l++) total += lanes[l];
    return total;
}

int main(int argc, char **argv) {
    const int rows = 4096, cols = 4096, rounds = argc > 1 ? atoi(argv[1]) : 15;
    const int markdown = argc > 2 && strcmp(argv[2], "--markdown") == 0;
    struct { enum ggml_type type; parity_matvec parity; int block; } kinds[] = {
        {GGML_TYPE_Q8_0, pk_matvec_q8_0, 32}, {GGML_TYPE_Q4_0, pk_matvec_q4_0, 32}, {GGML_TYPE_Q4_K, pk_matvec_q4_K, 256},
        {GGML_TYPE_Q5_K, pk_matvec_q5_K, 256}, {GGML_TYPE_Q6_K, pk_matvec_q6_K, 256},
    };
    enum { KINDS = sizeof(kinds) / sizeof(kinds[0]) };
    ggml_cpu_init();
    float *w = malloc(sizeof(float) * rows * cols), *x = malloc(sizeof(float) * cols);
    float *y_ggml = malloc(sizeof(float) * rows), *y_parity = malloc(sizeof(float) * rows);
    srand(1);
    for (long i = 0; i < (long)rows * cols; i++) w[i] = (float)rand() / RAND_MAX * 2 - 1;
    for (int i = 0; i < cols; i++) x[i] = (float)rand() / RAND_MAX * 2 - 1;
    char *weights[KINDS], *activations[KINDS];
    size_t row_bytes[KINDS];
    for (int k = 0; k < KINDS; k++) {
        const struct ggml_type_traits_cpu *cpu = ggml_get_type_traits_cpu(kinds[k].type);
        row_bytes[k] = ggml_row_size(kinds[k].type, cols);
        weights[k] = malloc(row_bytes[k] * rows);
        ggml_quantize_chunk(kinds[k].type, w, weights[k], 0, rows, cols, NULL);
        activations[k] = malloc(ggml_row_size(cpu->vec_dot_type, cols));
        ggml_get_type_traits_cpu(cpu->vec_dot_type)->from_float(x, activations[k], cols);
    }
    long stream_count = (long)(row_bytes[0] * rows / sizeof(float));  // the Q8_0 matrix's size, 17.8 MB
    float *stream = aligned_alloc(64, sizeof(float) * stream_count);
    for (long i = 0; i < stream_count; i++) stream[i] = 1;

    double (*ggml_times)[64] = calloc(KINDS, sizeof *ggml_times), (*parity_times)[64] = calloc(KINDS, sizeof *parity_times);
    double stream_times[64], max_relative[KINDS] = {0};
    float sink = 0;
    int n = rounds < 64 ? rounds : 64;
    for (int r = -1; r < n; r++) {  // round −1 warms caches and is not recorded
        for (int k = 0; k < KINDS; k++) {
            const struct ggml_type_traits_cpu *cpu = ggml_get_type_traits_cpu(kinds[k].type);
            for (int turn = 0; turn < 2; turn++) {
                int ggml_turn = (turn + r + k) % 2 == 0;
                double t0 = thread_seconds();
                if (ggml_turn) {
                    for (int i = 0; i < rows; i++) cpu->vec_dot(cols, y_ggml + i, 0, weights[k] + i * row_bytes[k], 0, activations[k], 0, 1);
                } else {
                    kinds[k].parity(weights[k], rows, cols / kinds[k].block, activations[k], y_parity);
                }
                double dt = thread_seconds() - t0;
                if (r >= 0) (ggml_turn ? ggml_times : parity_times)[k][r] = dt;
            }
            // Not the same bits (ggml's SIMD kernels sum in another order than its generic ones, which Parity follows),
            // but the same values to float rounding: a wrong kernel would show here.
            double largest = 0, worst = 0;
            for (int i = 0; i < rows; i++) {
                largest = fmax(largest, fabs((double)y_ggml[i]));
                worst = fmax(worst, fabs((double)y_ggml[i] - y_parity[i]));
            }
            if (worst / largest > max_relative[k]) max_relative[k] = worst / largest;
        }
        double t0 = thread_seconds();
        sink += stream_sum(stream, stream_count);
        if (r >= 0) stream_times[r] = thread_seconds() - t0;
    }
    double stream_gbs = stream_count * 4.0 / median(stream_times, n) / 1e9;
    if (markdown) {
        printf("| type | Parity µs | ggml µs | Parity / ggml speed | Parity GB/s of weights | max abs. difference / max abs. output |\n");
        printf("|---|---:|---:|---:|---:|---:|\n");
    }
    for (int k = 0; k < KINDS; k++) {
        double p = median(parity_times[k], n), g = median(ggml_times[k], n);
        double gbs = row_bytes[k] * rows / p / 1e9;
        if (markdown) {
            // The share of the read bandwidth is the Q8_0 target (its matrix is the streamed buffer's size); the
            // other types' matrices are smaller, so a share would compare different cache footprints.
            char share[48] = "";
            if (kinds[k].type == GGML_TYPE_Q8_0) snprintf(share, sizeof share, " (%.0f %% of read bandwidth)", 100 * gbs / stream_gbs);
            printf("| %s | %.0f | %.0f | %.2f× | %.1f%s | %.1e |\n", ggml_type_name(kinds[k].type), p * 1e6, g * 1e6, g / p, gbs,
                   share, max_relative[k]);
        } else {
            printf("%-5s parity %8.1f us  ggml %8.1f us  speed ratio %.2f  parity %.1f GB/s (%.0f%% of read bw)  max|d|/max|y| %.1e\n",
                   ggml_type_name(kinds[k].type), p * 1e6, g * 1e6, g / p, gbs, 100 * gbs / stream_gbs, max_relative[k]);
        }
    }
    // MLX affine (float32 scales and biases, group 64): Parity's kernel; MLX's own CPU time comes from the caller
    // (ggml/mlx_qmm.py, run by kernel-table.sh) as argv[3] and argv[4], or "absent".
    if (markdown) printf("\n| MLX affine, group 64 | Parity µs | MLX CPU µs | Parity / MLX speed |\n|---|---:|---:|---:|\n");
    for (int bits = 4; bits <= 8; bits += 4) {
        int64_t words = (int64_t)rows * cols * bits / 32, groups = (int64_t)rows * cols / 64;
        uint32_t *packed = malloc(words * 4);
        float *scales = malloc(groups * 4), *biases = malloc(groups * 4), *out = malloc(rows * 4);
        for (int64_t i = 0; i < words; i++) packed[i] = (uint32_t)rand() * 2654435761u;
        for (int64_t g = 0; g < groups; g++) { scales[g] = (float)rand() / RAND_MAX / 16; biases[g] = (float)rand() / RAND_MAX - 0.5f; }
        double times[64];
        for (int r = -1; r < n; r++) {
            double t0 = thread_seconds();
            pk_mlx_affine_matmul_f32(packed, scales, biases, rows, cols, 64, bits, x, 1, out);
            if (r >= 0) times[r] = thread_seconds() - t0;
        }
        double p = median(times, n);
        const char *mlx = argc > 3 + bits / 8 ? argv[3 + bits / 8] : "absent";
        double mlx_us = atof(mlx);
        if (markdown) {
            if (mlx_us > 0) printf("| %d-bit | %.0f | %.0f | %.2f× |\n", bits, p * 1e6, mlx_us, mlx_us / (p * 1e6));
            else printf("| %d-bit | %.0f | %s | — |\n", bits, p * 1e6, mlx);
        } else {
            printf("mlx affine %d-bit g64  parity %8.1f us  mlx %s us\n", bits, p * 1e6, mlx);
        }
        free(packed); free(scales); free(biases); free(out);
    }
    printf(markdown ? "\nRead bandwidth (streaming sum over %.1f MB, one thread, median): %.1f GB/s. %d rounds, medians of thread CPU time; Parity's SIMD path: %s.%s\n"
                    : "read bandwidth (streaming sum over %.1f MB, 1 thread, median): %.1f GB/s; %d rounds; parity AVX2 path: %s%s\n",
           stream_count * 4.0 / 1e6, stream_gbs, n, pk_has_avx512() ? "AVX-512" : pk_has_avx2() ? "AVX2" : "portable C", sink == 12345 ? " " : "");
    return 0;
}
