// Sentence embeddings through llama.cpp's public C API, as llama-embedding computes them but printed in full
// float precision (llama-embedding prints 7 decimals and its asynchronous logger can cut its output at exit).
//
//   llamacpp_embed MODEL.gguf SENTENCES.txt [--flash-attn auto|on|off] [--threads N] [--dump NODE]
//
// One sentence per line. Like llama-embedding: every sentence tokenized with add_special + parse_special, all
// sentences decoded in one batch (sequence i = line i, positions 0..n-1), pooling MEAN, then common's
// `common_embd_normalize(…, 2)`: Σ x·x (float products) in double, sqrt, float(1/norm), x·norm. Prints one JSON
// object: token ids, the pooled vectors and the normalised ones ("%.9g": float32 round-trips).
#include "llama.h"
#include "ggml-backend.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

static void quiet(enum ggml_log_level level, const char * text, void *) {
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

// --dump NAME: write the first node of that name (ggml's eval callback) to stderr as "%.9g" values, ggml order.
static std::string dump_name;
static bool dumped = false;
static bool dump_node(struct ggml_tensor * t, bool ask, void *) {
    if (ask) return !dumped && dump_name == t->name;
    if (dumped || dump_name != t->name || t->type != GGML_TYPE_F32 || !ggml_is_contiguous(t)) return true;
    std::vector<float> data(ggml_nelements(t));
    ggml_backend_tensor_get(t, data.data(), 0, ggml_nbytes(t));
    fprintf(stderr, "%s %lld %lld %lld %lld\n", t->name, (long long) t->ne[0], (long long) t->ne[1], (long long) t->ne[2], (long long) t->ne[3]);
    for (size_t i = 0; i < data.size(); ++i) fprintf(stderr, "%.9g\n", data[i]);
    dumped = true;
    return true;
}

static void print_vector(const float * v, int n) {
    printf("[");
    for (int i = 0; i < n; ++i) printf("%s%.9g", i ? "," : "", v[i]);
    printf("]");
}

int main(int argc, char ** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf SENTENCES.txt [--flash-attn auto|on|off] [--threads N]\n", argv[0]);
        return 2;
    }
    llama_flash_attn_type flash = LLAMA_FLASH_ATTN_TYPE_AUTO;
    int threads = 1;
    for (int i = 3; i + 1 < argc; i += 2) {
        std::string key = argv[i], value = argv[i + 1];
        if (key == "--flash-attn" && value == "auto") flash = LLAMA_FLASH_ATTN_TYPE_AUTO;
        else if (key == "--flash-attn" && value == "on") flash = LLAMA_FLASH_ATTN_TYPE_ENABLED;
        else if (key == "--flash-attn" && value == "off") flash = LLAMA_FLASH_ATTN_TYPE_DISABLED;
        else if (key == "--threads") threads = atoi(value.c_str());
        else if (key == "--dump") dump_name = value;
        else { fprintf(stderr, "bad option %s %s\n", key.c_str(), value.c_str()); return 2; }
    }
    std::vector<std::string> sentences;
    std::ifstream in(argv[2]);
    for (std::string line; std::getline(in, line);) if (!line.empty()) sentences.push_back(line);
    if (sentences.empty()) { fprintf(stderr, "%s: no sentences\n", argv[2]); return 2; }

    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.progress_callback = [](float, void *) { return true; };
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "%s: llama.cpp could not load it\n", argv[1]); return 2; }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_embd = llama_model_n_embd(model);

    std::vector<std::vector<llama_token>> ids;
    int total = 0;
    for (const auto & s : sentences) {
        std::vector<llama_token> t(s.size() + 8);
        int n = llama_tokenize(vocab, s.c_str(), (int) s.size(), t.data(), (int) t.size(), true, true);
        if (n < 0) { fprintf(stderr, "tokenize failed\n"); return 1; }
        t.resize(n);
        total += n;
        ids.push_back(t);
    }
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512; cp.n_batch = 512; cp.n_ubatch = 512; cp.n_seq_max = (uint32_t) llama_max_parallel_sequences(); cp.kv_unified = true;  // as llama-embedding (n_parallel 1)
    cp.n_threads = threads; cp.n_threads_batch = threads;
    cp.embeddings = true; cp.pooling_type = LLAMA_POOLING_TYPE_MEAN; cp.flash_attn_type = flash;
    if (!dump_name.empty()) cp.cb_eval = dump_node;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot create a context\n"); return 1; }

    llama_batch batch = llama_batch_init(total, 0, 1);
    batch.n_tokens = 0;
    for (size_t s = 0; s < ids.size(); ++s) {
        for (size_t t = 0; t < ids[s].size(); ++t) {
            int k = batch.n_tokens++;
            batch.token[k] = ids[s][t];
            batch.pos[k] = (llama_pos) t;
            batch.n_seq_id[k] = 1;
            batch.seq_id[k][0] = (llama_seq_id) s;
            batch.logits[k] = 1;
        }
    }
    if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "llama_decode failed\n"); return 1; }

    printf("{\"token_ids\":[");
    for (size_t s = 0; s < ids.size(); ++s) {
        printf("%s[", s ? "," : "");
        for (size_t t = 0; t < ids[s].size(); ++t) printf("%s%d", t ? "," : "", ids[s][t]);
        printf("]");
    }
    printf("],\"pooled\":[");
    std::vector<std::vector<float>> pooled;
    for (size_t s = 0; s < ids.size(); ++s) {
        const float * e = llama_get_embeddings_seq(ctx, (llama_seq_id) s);
        if (!e) { fprintf(stderr, "no embedding for sequence %zu\n", s); return 1; }
        pooled.emplace_back(e, e + n_embd);
        if (s) printf(",");
        print_vector(e, n_embd);
    }
    printf("],\"normalized\":[");
    for (size_t s = 0; s < pooled.size(); ++s) {
        double sum = 0.0;
        for (int i = 0; i < n_embd; ++i) sum += pooled[s][i] * pooled[s][i];
        sum = std::sqrt(sum);
        const float norm = sum > 0.0 ? 1.0 / sum : 0.0f;
        std::vector<float> out(n_embd);
        for (int i = 0; i < n_embd; ++i) out[i] = pooled[s][i] * norm;
        if (s) printf(",");
        print_vector(out.data(), n_embd);
    }
    printf("]}\n");
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
