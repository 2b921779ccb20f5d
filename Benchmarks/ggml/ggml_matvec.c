// ggml's own CPU vec_dot kernels on one thread, timed the way parity-speed times Parity's: a 4096×4096 weight
// matrix (quantized by ggml_quantize_chunk from random floats), one activation row converted to the type's
// vec_dot_type by ggml's from_float, 4096 vec_dot calls per matvec; thread CPU time, best of N.
// Build and run: Benchmarks/ggml/run.sh (links the static ggml libraries of .build-llama/build-native).
#include "ggml.h"
#include "ggml-cpu.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>

static double thread_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const int rows = 4096, cols = 4096, runs = argc > 1 ? atoi(argv[1]) : 20;
    const enum ggml_type types[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
    ggml_cpu_init();
    float *w = malloc(sizeof(float) * rows * cols), *x = malloc(sizeof(float) * cols), *y = malloc(sizeof(float) * rows);
    srand(1);
    for (long i = 0; i < (long)rows * cols; i++) w[i] = (float)rand() / RAND_MAX * 2 - 1;
    for (int i = 0; i < cols; i++) x[i] = (float)rand() / RAND_MAX * 2 - 1;
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        enum ggml_type type = types[t];
        const struct ggml_type_traits_cpu *cpu = ggml_get_type_traits_cpu(type);
        size_t row_bytes = ggml_row_size(type, cols);
        char *q = malloc(row_bytes * rows);
        ggml_quantize_chunk(type, w, q, 0, rows, cols, NULL);
        enum ggml_type dot_type = cpu->vec_dot_type;
        char *xq = malloc(ggml_row_size(dot_type, cols));
        ggml_get_type_traits_cpu(dot_type)->from_float(x, xq, cols);
        double best = 1e9;
        for (int r = -1; r < runs; r++) {
            double t0 = thread_seconds();
            for (int i = 0; i < rows; i++) cpu->vec_dot(cols, y + i, 0, q + i * row_bytes, 0, xq, 0, 1);
            double dt = thread_seconds() - t0;
            if (r >= 0 && dt < best) best = dt;
        }
        printf("ggml %-5s 4096x4096 matvec: %8.1f us  (%.2f GB/s of weights)  y[0]=%g\n", ggml_type_name(type), best * 1e6,
               row_bytes * rows / best / 1e9, y[0]);
        free(q);
        free(xq);
    }
    // The core's read bandwidth: a buffer summed with four AVX2 accumulators, wall time, best of 5 — from DRAM
    // (512 MiB) and from a buffer the size of the Q8_0 matrix (17.8 MB, which stays in the 32 MiB L3 between
    // repetitions, as the matvec timings above do). Q8_0's 70% target is measured against these numbers.
    long sizes[2] = {128l << 20, 4096l * 4096 / 32 * 34 / 4};
    for (int s = 0; s < 2; s++) {
        long count = sizes[s];
        float *buffer = aligned_alloc(64, sizeof(float) * count);
        for (long i = 0; i < count; i++) buffer[i] = 1;
        double best_wall = 1e9;
        float total = 0;
        for (int r = 0; r < (s == 0 ? 5 : 50); r++) {
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
            for (long i = 0; i + 32 <= count; i += 32) {
                a = _mm256_add_ps(a, _mm256_load_ps(buffer + i));
                b = _mm256_add_ps(b, _mm256_load_ps(buffer + i + 8));
                c = _mm256_add_ps(c, _mm256_load_ps(buffer + i + 16));
                d = _mm256_add_ps(d, _mm256_load_ps(buffer + i + 24));
            }
            clock_gettime(CLOCK_MONOTONIC, &t1);
            float lanes[8];
            _mm256_storeu_ps(lanes, _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
            for (int l = 0; l < 8; l++) total += lanes[l];
            double dt = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
            if (dt < best_wall) best_wall = dt;
        }
        printf("read bandwidth (%s, %.1f MB streaming sum, 1 thread): %.1f GB/s  (sum %g)\n", s == 0 ? "DRAM" : "L3",
               count * 4.0 / 1e6, count * 4.0 / best_wall / 1e9, total);
        free(buffer);
    }
    return 0;
}
