// llama_logits: the logits llama.cpp computes for fixed token sequences, read with libllama's public API.
//
//   llama_logits MODEL.gguf TOKENS.bin OUT.bin [--kv f32|f16] [--flash-attn on|off] [--threads N] [--dump DIR]
//
// --dump DIR: also write every F32 graph node llama.cpp computes (through the scheduler's eval callback) as
// DIR/s<sequence>/<index>.bin: int64 ne[4], then the float32 data in ggml order (ne[0] fastest); DIR/s<seq>/nodes.tsv
// lists index, node name (e.g. attn_norm-0, Qcur-0, kq_soft_max-0, l_out-2) and ne. Several nodes can share a name
// (Qcur-0 names the projection, its reshape and the RoPE'd result); the index keeps them apart, in compute order.
//
// TOKENS.bin: int32 little-endian B, T, then B*T token ids (row-major). OUT.bin: float32 [B, T, n_vocab].
// Each sequence is decoded alone from an empty KV cache, as one batch of T tokens at positions 0..T-1 with the
// logits of every position requested, so position t's logits see tokens 0..t (a causal forward pass, as the
// reference computes it). Defaults (F32 KV cache, flash attention off) are the configuration in which llama.cpp's
// f32 arithmetic is closest to a float32 reference; llama.cpp's own defaults are an F16 KV cache and flash attention
// "auto" (flash attention on CPU computes in F16). Built by tools/llama/make_ecosystem_files.sh against the static
// libllama of tools/llama/build-llama.sh.
#include "llama.h"
#include "ggml-backend.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

struct Dump {
    std::string dir;
    int index = 0;
    FILE * list = nullptr;
};

static bool dump_node(struct ggml_tensor * t, bool ask, void * user_data) {
    Dump * dump = (Dump *) user_data;
    if (ask) return t->type == GGML_TYPE_F32;  // observe every F32 node
    std::vector<float> data(ggml_nelements(t));
    if (ggml_is_contiguous(t)) {
        ggml_backend_tensor_get(t, data.data(), 0, ggml_nbytes(t));
    } else {  // strided view: gather element by element in ggml order
        std::vector<char> raw(ggml_nbytes(t) + t->nb[3]);
        size_t n = 0;
        for (int64_t i3 = 0; i3 < t->ne[3]; ++i3)
            for (int64_t i2 = 0; i2 < t->ne[2]; ++i2)
                for (int64_t i1 = 0; i1 < t->ne[1]; ++i1)
                    for (int64_t i0 = 0; i0 < t->ne[0]; ++i0) {
                        float v;
                        ggml_backend_tensor_get(t, &v, i0 * t->nb[0] + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3], sizeof v);
                        data[n++] = v;
                    }
    }
    std::string path = dump->dir + "/" + std::to_string(dump->index) + ".bin";
    FILE * f = fopen(path.c_str(), "wb");
    if (!f) return false;
    int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
    fwrite(ne, sizeof ne, 1, f);
    fwrite(data.data(), sizeof(float), data.size(), f);
    fclose(f);
    fprintf(dump->list, "%d\t%s\t%lld,%lld,%lld,%lld\n", dump->index, t->name, (long long) ne[0], (long long) ne[1],
            (long long) ne[2], (long long) ne[3]);
    dump->index++;
    return true;
}

static void quiet(enum ggml_log_level level, const char * text, void *) {
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char ** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf TOKENS.bin OUT.bin [--kv f32|f16] [--flash-attn on|off] [--threads N]\n", argv[0]);
        return 2;
    }
    ggml_type kv = GGML_TYPE_F32;
    llama_flash_attn_type flash = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    int threads = 1;
    std::string dump_dir;
    for (int i = 4; i + 1 < argc; i += 2) {
        std::string key = argv[i], value = argv[i + 1];
        if (key == "--kv" && (value == "f32" || value == "f16")) kv = value == "f32" ? GGML_TYPE_F32 : GGML_TYPE_F16;
        else if (key == "--flash-attn" && (value == "on" || value == "off"))
            flash = value == "on" ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
        else if (key == "--threads") threads = atoi(value.c_str());
        else if (key == "--dump") dump_dir = value;
        else { fprintf(stderr, "bad option %s %s\n", key.c_str(), value.c_str()); return 2; }
    }
    FILE * f = fopen(argv[2], "rb");
    if (!f) { fprintf(stderr, "%s: cannot open\n", argv[2]); return 2; }
    int32_t shape[2];
    if (fread(shape, sizeof(int32_t), 2, f) != 2 || shape[0] <= 0 || shape[1] <= 0) {
        fprintf(stderr, "%s: bad header\n", argv[2]); return 2;
    }
    const int n_seq = shape[0], n_tok = shape[1];
    std::vector<int32_t> ids((size_t) n_seq * n_tok);
    if (fread(ids.data(), sizeof(int32_t), ids.size(), f) != ids.size()) { fprintf(stderr, "%s: short\n", argv[2]); return 2; }
    fclose(f);

    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.progress_callback = [](float, void *) { return true; };  // no progress dots on stderr
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "%s: llama.cpp could not load it\n", argv[1]); return 2; }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_tok; cp.n_batch = n_tok; cp.n_ubatch = n_tok; cp.n_seq_max = 1;
    cp.n_threads = threads; cp.n_threads_batch = threads;
    cp.type_k = kv; cp.type_v = kv; cp.flash_attn_type = flash;
    Dump dump;
    if (!dump_dir.empty()) {
        cp.cb_eval = dump_node;
        cp.cb_eval_user_data = &dump;
    }
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot create a context\n"); return 1; }

    std::vector<float> out((size_t) n_seq * n_tok * n_vocab);
    llama_batch batch = llama_batch_init(n_tok, 0, 1);
    for (int s = 0; s < n_seq; ++s) {
        llama_memory_clear(llama_get_memory(ctx), true);
        if (!dump_dir.empty()) {
            dump.dir = dump_dir + "/s" + std::to_string(s);
            dump.index = 0;
            std::string mk = "mkdir -p '" + dump.dir + "'";
            if (system(mk.c_str()) != 0) { fprintf(stderr, "cannot create %s\n", dump.dir.c_str()); return 1; }
            dump.list = fopen((dump.dir + "/nodes.tsv").c_str(), "w");
        }
        batch.n_tokens = n_tok;
        for (int t = 0; t < n_tok; ++t) {
            batch.token[t] = ids[(size_t) s * n_tok + t];
            batch.pos[t] = t;
            batch.n_seq_id[t] = 1;
            batch.seq_id[t][0] = 0;
            batch.logits[t] = 1;
        }
        if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "llama_decode failed on sequence %d\n", s); return 1; }
        if (dump.list) { fclose(dump.list); dump.list = nullptr; }
        for (int t = 0; t < n_tok; ++t) {
            const float * row = llama_get_logits_ith(ctx, t);
            memcpy(&out[((size_t) s * n_tok + t) * n_vocab], row, sizeof(float) * n_vocab);
        }
    }
    llama_batch_free(batch);
    FILE * o = fopen(argv[3], "wb");
    if (!o || fwrite(out.data(), sizeof(float), out.size(), o) != out.size()) { fprintf(stderr, "%s: write failed\n", argv[3]); return 1; }
    fclose(o);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
