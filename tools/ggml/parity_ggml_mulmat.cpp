// parity-ggml-mulmat: record ggml's CPU ggml_mul_mat on a small weight in each ggml type, with the
// activation-quantization step it performs, as fixtures for Parity's GGUF engine.
//
//   parity-ggml-mulmat OUTDIR
//
// Weight W: ne [256, 4] (4 rows of 256), quantized from float32 with ggml_quantize_chunk (the reference
// quantizers, no imatrix). Activation X: ne [256, 3] float32. Result ggml_mul_mat(W, X): ne [4, 3],
// out[j*4 + i] = dot(W row i, X row j), computed on the CPU backend with 1 thread in a default CPU
// buffer (no repack / extra buffer types). Before the dot products ggml converts every X row to the
// weight type's vec_dot_type with that type's CPU from_float; this program applies the very same
// function (ggml_get_type_traits_cpu(vec_dot_type)->from_float) to each X row and saves the bytes.
//
// Files in OUTDIR: w.f32 (4x256 float32), x.f32 (3x256 float32), and per type T (lowercase ggml name):
//   T.w.bin     quantized weight bytes (4 rows, ggml_row_size(T, 256) bytes each)
//   T.w_deq.f32 the weight dequantized with ggml's to_float (4x256 float32)
//   T.x_q.bin   X converted to vec_dot_type (3 rows), absent when vec_dot_type is F32
//   T.out.f32   the ggml_mul_mat result (3x4 float32: 3 activation rows of 4 outputs)
// and manifest.json describing them. The inputs are generated here deterministically (see make_inputs).

#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"

#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static const int K = 256, M = 4, N = 3;

static void write_bytes(const std::string & path, const void * data, size_t n) {
    FILE * f = fopen(path.c_str(), "wb");
    if (!f || fwrite(data, 1, n, f) != n) { fprintf(stderr, "cannot write %s\n", path.c_str()); exit(1); }
    fclose(f);
}

// xorshift32 -> uniform in [-1, 1): (s >> 8) * 2^-23 - 1
static uint32_t g_state = 0x12345678u;
static float urand() {
    g_state ^= g_state << 13; g_state ^= g_state >> 17; g_state ^= g_state << 5;
    return float(g_state >> 8) * (1.0f / 8388608.0f) - 1.0f;
}

// W rows: 0 uniform [-1,1); 1 uniform with an outlier 8.0 at k=5 and -6.0 at k=200;
//         2 an all-zero first 32-block, then uniform * 1e-3; 3 sum of four uniforms (bell-shaped) * 0.5.
// X rows: 0 exact rounding ties for 8-bit activation quantization: in each 32-block element 0 is 127
//           (so Q8_0 d = 1 and Q8_K |max| = 127) and the others are k/2 - 7.75 + ... half-integers;
//         1 uniform [-1,1);
//         2 wide range: uniform * 10^(k%5 - 2), with an all-zero block at k in [64, 96).
static void make_inputs(std::vector<float> & w, std::vector<float> & x) {
    w.assign(size_t(M) * K, 0.0f);
    x.assign(size_t(N) * K, 0.0f);
    for (int k = 0; k < K; ++k) w[0 * K + k] = urand();
    for (int k = 0; k < K; ++k) w[1 * K + k] = urand();
    w[1 * K + 5] = 8.0f; w[1 * K + 200] = -6.0f;
    for (int k = 32; k < K; ++k) w[2 * K + k] = urand() * 1e-3f;
    for (int k = 0; k < K; ++k) w[3 * K + k] = 0.5f * (urand() + urand() + urand() + urand());
    for (int k = 0; k < K; ++k) {
        const int j = k % 32;
        x[0 * K + k] = j == 0 ? 127.0f : (float((j * 7 + k / 32) % 40) - 20.0f) + 0.5f;  // half-integers in [-19.5, 19.5]
    }
    for (int k = 0; k < K; ++k) x[1 * K + k] = urand();
    for (int k = 0; k < K; ++k) x[2 * K + k] = (k >= 64 && k < 96) ? 0.0f : urand() * std::pow(10.0f, float(k % 5 - 2));
}

int main(int argc, char ** argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s OUTDIR\n", argv[0]); return 2; }
    const std::string out = argv[1];
    std::vector<float> w, x;
    make_inputs(w, x);
    write_bytes(out + "/w.f32", w.data(), w.size() * sizeof(float));
    write_bytes(out + "/x.f32", x.data(), x.size() * sizeof(float));

    const ggml_type types[] = {
        GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0,
        GGML_TYPE_Q5_1, GGML_TYPE_Q8_0, GGML_TYPE_Q2_K, GGML_TYPE_Q3_K, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K,
        GGML_TYPE_Q6_K, GGML_TYPE_IQ4_NL, GGML_TYPE_MXFP4, GGML_TYPE_NVFP4,
    };

    ggml_backend_t backend = ggml_backend_cpu_init();
    ggml_backend_cpu_set_n_threads(backend, 1);

    std::string mf = out + "/manifest.json";
    FILE * jf = fopen(mf.c_str(), "w");
    if (!jf) { fprintf(stderr, "cannot write %s\n", mf.c_str()); return 1; }
    fprintf(jf, "{\n \"format\": \"parity-ggml-mul-mat\",\n \"version\": 1,\n"
                " \"ggml_version\": \"%s\",\n \"ggml_commit\": \"%s\",\n \"threads\": 1,\n"
                " \"weight\": {\"file\": \"w.f32\", \"type\": \"f32\", \"ne\": [%d, %d]},\n"
                " \"activation\": {\"file\": \"x.f32\", \"type\": \"f32\", \"ne\": [%d, %d]},\n"
                " \"result_ne\": [%d, %d],\n \"cases\": [\n",
            ggml_version(), ggml_commit(), K, M, K, N, M, N);
    bool first = true;
    for (ggml_type type : types) {
        const char * tname = ggml_type_name(type);
        if (ggml_quantize_requires_imatrix(type)) { fprintf(stderr, "skip %s: needs an imatrix\n", tname); continue; }
        const ggml_type_traits * tt = ggml_get_type_traits(type);
        const ggml_type_traits_cpu * ct = ggml_get_type_traits_cpu(type);
        if (!ct->vec_dot || (type != GGML_TYPE_F32 && !tt->to_float)) { fprintf(stderr, "skip %s: no CPU vec_dot/to_float\n", tname); continue; }
        const ggml_type vdt = ct->vec_dot_type;

        // weight
        const size_t row_w = ggml_row_size(type, K);
        std::vector<unsigned char> wq(row_w * M);
        if (type == GGML_TYPE_F32) memcpy(wq.data(), w.data(), wq.size());
        else ggml_quantize_chunk(type, w.data(), wq.data(), 0, M, K, nullptr);
        std::vector<float> wdeq(size_t(M) * K);
        if (type == GGML_TYPE_F32) wdeq = w;
        else tt->to_float(wq.data(), wdeq.data(), int64_t(M) * K);

        // activation conversion, exactly as ggml_compute_forward_mul_mat does per src1 row
        std::vector<unsigned char> xq;
        if (vdt != GGML_TYPE_F32) {
            const size_t row_x = ggml_row_size(vdt, K);
            xq.resize(row_x * N);
            ggml_from_float_t from_float = ggml_get_type_traits_cpu(vdt)->from_float;
            for (int j = 0; j < N; ++j) from_float(x.data() + size_t(j) * K, xq.data() + size_t(j) * row_x, K);
        }

        // ggml_mul_mat on the CPU backend
        ggml_init_params ip = { 8 * ggml_tensor_overhead() + ggml_graph_overhead(), nullptr, true };
        ggml_context * ctx = ggml_init(ip);
        ggml_tensor * tw = ggml_new_tensor_2d(ctx, type, K, M);
        ggml_tensor * tx = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, K, N);
        ggml_tensor * ty = ggml_mul_mat(ctx, tw, tx);
        ggml_cgraph * gf = ggml_new_graph(ctx);
        ggml_build_forward_expand(gf, ty);
        ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, backend);
        ggml_backend_tensor_set(tw, wq.data(), 0, wq.size());
        ggml_backend_tensor_set(tx, x.data(), 0, x.size() * sizeof(float));
        if (ggml_backend_graph_compute(backend, gf) != GGML_STATUS_SUCCESS) { fprintf(stderr, "%s: compute failed\n", tname); return 1; }
        std::vector<float> y(size_t(M) * N);
        ggml_backend_tensor_get(ty, y.data(), 0, y.size() * sizeof(float));
        ggml_backend_buffer_free(buf);
        ggml_free(ctx);

        // for orientation: float64 dots of the dequantized weight with (a) the float32 activation and
        // (b) the activation as converted to vec_dot_type and decoded again (when ggml can decode it)
        std::vector<float> xdeq;
        if (xq.empty()) xdeq = x;
        else if (ggml_get_type_traits(vdt)->to_float) {
            xdeq.resize(size_t(N) * K);
            ggml_get_type_traits(vdt)->to_float(xq.data(), xdeq.data(), int64_t(N) * K);
        }
        double maxdiff = 0.0, maxdiff_q = -1.0, maxabs = 0.0;
        for (int j = 0; j < N; ++j)
            for (int i = 0; i < M; ++i) {
                double s = 0.0, sq = 0.0;
                for (int k = 0; k < K; ++k) {
                    s += double(wdeq[size_t(i) * K + k]) * x[size_t(j) * K + k];
                    if (!xdeq.empty()) sq += double(wdeq[size_t(i) * K + k]) * xdeq[size_t(j) * K + k];
                }
                maxdiff = std::max(maxdiff, std::fabs(s - y[size_t(j) * M + i]));
                if (!xdeq.empty()) maxdiff_q = std::max(maxdiff_q, std::fabs(sq - y[size_t(j) * M + i]));
                maxabs = std::max(maxabs, std::fabs(double(y[size_t(j) * M + i])));
            }

        char qbuf[32] = "null";
        if (maxdiff_q >= 0) snprintf(qbuf, sizeof(qbuf), "%.9g", maxdiff_q);
        std::string lname = tname;
        for (char & c : lname) c = char(tolower(c));
        write_bytes(out + "/" + lname + ".w.bin", wq.data(), wq.size());
        write_bytes(out + "/" + lname + ".w_deq.f32", wdeq.data(), wdeq.size() * sizeof(float));
        if (!xq.empty()) write_bytes(out + "/" + lname + ".x_q.bin", xq.data(), xq.size());
        write_bytes(out + "/" + lname + ".out.f32", y.data(), y.size() * sizeof(float));
        fprintf(jf, "%s  {\"type\": \"%s\", \"type_id\": %d, \"block_size\": %" PRId64 ", \"type_size\": %zu, "
                    "\"w\": \"%s.w.bin\", \"w_bytes\": %zu, \"w_deq\": \"%s.w_deq.f32\", "
                    "\"vec_dot_type\": \"%s\", \"vec_dot_type_id\": %d, \"x_q\": %s%s%s, \"x_q_bytes\": %zu, "
                    "\"out\": \"%s.out.f32\", \"max_abs_out\": %.9g, \"max_abs_diff_vs_f64_dot_w_deq_x\": %.9g, "
                    "\"max_abs_diff_vs_f64_dot_w_deq_x_q_deq\": %s}",
                first ? "" : ",\n", tname, int(type), tt->blck_size, tt->type_size, lname.c_str(), wq.size(),
                lname.c_str(), ggml_type_name(vdt), int(vdt), xq.empty() ? "" : "\"", xq.empty() ? "null" : (lname + ".x_q.bin").c_str(),
                xq.empty() ? "" : "\"", xq.size(), lname.c_str(), maxabs, maxdiff,
                qbuf);
        first = false;
        printf("%-7s vec_dot_type %-5s w %4zu B  x_q %4zu B  max|out| %.4g  max|out - f64(w_deq.x)| %.3g  max|out - f64(w_deq.x_q_deq)| %.3g\n",
               tname, ggml_type_name(vdt), wq.size(), xq.size(), maxabs, maxdiff, maxdiff_q);
    }
    fprintf(jf, "\n ]\n}\n");
    fclose(jf);
    ggml_backend_free(backend);
    return 0;
}
