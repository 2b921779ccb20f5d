// parity-ggml-mnist: run a GGUF "mnist-cnn" / "mnist-fc" model the way ggml's examples/mnist
// (mnist-common.cpp, mnist-eval) does, on ggml's CPU backend, and optionally dump every intermediate
// tensor of the first images.
//
// Written for Parity from a reading of ggml's examples/mnist/mnist-common.cpp (ggml 0.15.3 as vendored
// in the PyPI ggml-python 0.0.45 sdist): the same loader assertions (names, types, ne), the same graph
// (ggml_conv_2d / ggml_pool_2d / ggml_permute+ggml_cont+ggml_reshape_2d / ggml_mul_mat / ggml_add),
// the same physical batch (500), the same input scaling (pixel / 255.0f) and the same loss
// (ggml_cross_entropy_loss per physical batch, averaged over batches in double) and prediction
// (ggml_argmax). Differences from mnist-eval, none of which changes a computed value: no ggml_opt /
// backend scheduler (a plain ggml_gallocr on the CPU backend), a configurable thread count (default 1),
// IDX headers are validated, and the chosen intermediate tensors are marked as graph outputs so that
// the allocator keeps them.
//
// Usage:
//   parity-ggml-mnist MODEL.gguf IMAGES-idx3-ubyte LABELS-idx1-ubyte [options]
//     --threads N        CPU threads (default 1)
//     --batch N          physical batch size (default 500 = MNIST_NBATCH_PHYSICAL)
//     --dump DIR         write <node>.f32 (raw little-endian float32, ggml memory order) for the first
//                        --dump-images images of the first batch, plus DIR/nodes.json
//     --dump-images K    default 64
//     --logits FILE      write all logits, float32 [n_images][10]
//     --json FILE        write the summary (accuracy, loss, ...) as JSON
//     --im2col-f16       NOT what mnist-eval does with this ggml: build each convolution as ggml_conv_2d
//                        did in older ggml (e.g. d99724f), with an F16 im2col (so the F32 kernel is
//                        converted to F16 too, as the matmul's vec_dot type); this ggml's ggml_conv_2d
//                        uses the kernel's type (F32) for im2col
// Prints mnist-eval's two result lines (test_loss=..., test_acc=...) and a summary.

#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "gguf.h"

#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#define MNIST_HW 28
#define MNIST_NINPUT (MNIST_HW * MNIST_HW)
#define MNIST_NCLASSES 10
#define MNIST_NHIDDEN 500
#define MNIST_CNN_NCB 8
#define MNIST_NBATCH_PHYSICAL 500

static void die(const char * fmt, const char * a = "", const char * b = "") {
    fprintf(stderr, "parity-ggml-mnist: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    exit(1);
}

static uint32_t be32(const unsigned char * p) {
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

static std::vector<unsigned char> read_file(const std::string & path) {
    FILE * f = fopen(path.c_str(), "rb");
    if (!f) die("cannot open %s", path.c_str());
    std::vector<unsigned char> data;
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) data.insert(data.end(), buf, buf + n);
    fclose(f);
    return data;
}

// IDX files (uncompressed). Images: magic 2051, n, 28, 28; labels: magic 2049, n.
static std::vector<float> load_images(const std::string & path, int64_t & n) {
    std::vector<unsigned char> d = read_file(path);
    if (d.size() < 16 || be32(&d[0]) != 2051 || be32(&d[8]) != MNIST_HW || be32(&d[12]) != MNIST_HW)
        die("%s: not an uncompressed IDX image file of 28x28 images", path.c_str());
    n = be32(&d[4]);
    if (d.size() != 16 + size_t(n) * MNIST_NINPUT) die("%s: wrong size", path.c_str());
    std::vector<float> out(size_t(n) * MNIST_NINPUT);
    for (size_t i = 0; i < out.size(); ++i) out[i] = d[16 + i] / 255.0f;  // as mnist_image_load
    return out;
}

static std::vector<int> load_labels(const std::string & path, int64_t & n) {
    std::vector<unsigned char> d = read_file(path);
    if (d.size() < 8 || be32(&d[0]) != 2049) die("%s: not an uncompressed IDX label file", path.c_str());
    n = be32(&d[4]);
    if (d.size() != 8 + size_t(n)) die("%s: wrong size", path.c_str());
    return std::vector<int>(d.begin() + 8, d.end());
}

// ggml_conv_2d of this ggml with the im2col type as a parameter (ggml.c: ggml_conv_2d passes a->type).
// This ggml's CPU im2col asserts that an F16 im2col has an F16 src0, of which it only uses the shape,
// so an F16 cast of the kernel stands in for it there; the matmul still gets the F32 kernel and
// converts it to F16 itself (vec_dot_type of F16), as older ggml did.
static ggml_tensor * conv_2d_im2col(ggml_context * ctx, ggml_tensor * a, ggml_tensor * b, ggml_type im2col_type) {
    ggml_tensor * shape_src = a->type == im2col_type ? a : ggml_cast(ctx, a, im2col_type);
    ggml_tensor * im2col = ggml_im2col(ctx, shape_src, b, 1, 1, 1, 1, 1, 1, true, im2col_type);  // [N, OH, OW, IC*KH*KW]
    ggml_tensor * result = ggml_mul_mat(ctx,
        ggml_reshape_2d(ctx, im2col, im2col->ne[0], im2col->ne[3] * im2col->ne[2] * im2col->ne[1]),
        ggml_reshape_2d(ctx, a, a->ne[0] * a->ne[1] * a->ne[2], a->ne[3]));
    result = ggml_reshape_4d(ctx, result, im2col->ne[1], im2col->ne[2], im2col->ne[3], a->ne[3]);
    return ggml_cont(ctx, ggml_permute(ctx, result, 0, 1, 3, 2));
}

struct dump_node {
    std::string name;        // file stem
    ggml_tensor * t;
    std::string meaning;     // what it corresponds to
    std::string golden;      // matching dataset in golden.h5, "" if none
};

int main(int argc, char ** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf IMAGES LABELS [--threads N] [--batch N] [--dump DIR] "
                        "[--dump-images K] [--logits FILE] [--json FILE]\n", argv[0]);
        return 2;
    }
    const std::string fname = argv[1];
    int nthreads = 1, nbatch = MNIST_NBATCH_PHYSICAL, ndump = 64;
    std::string dump_dir, logits_path, json_path;
    bool im2col_f16 = false;
    for (int i = 4; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string { if (i + 1 >= argc) die("%s needs a value", a.c_str()); return argv[++i]; };
        if (a == "--threads") nthreads = atoi(next().c_str());
        else if (a == "--batch") nbatch = atoi(next().c_str());
        else if (a == "--dump") dump_dir = next();
        else if (a == "--dump-images") ndump = atoi(next().c_str());
        else if (a == "--logits") logits_path = next();
        else if (a == "--json") json_path = next();
        else if (a == "--im2col-f16") im2col_f16 = true;
        else die("unknown option %s", a.c_str());
    }

    int64_t nimg = 0, nlab = 0;
    std::vector<float> images = load_images(argv[2], nimg);
    std::vector<int> labels = load_labels(argv[3], nlab);
    if (nimg != nlab) die("image and label counts differ");
    if (nbatch <= 0 || nimg % nbatch != 0) die("the image count must be a multiple of --batch");
    if (ndump > nbatch) ndump = nbatch;

    ggml_backend_t backend = ggml_backend_cpu_init();
    if (!backend) die("ggml_backend_cpu_init failed");
    ggml_backend_cpu_set_n_threads(backend, nthreads);

    // ---- load, as mnist_model_init_from_file ----
    ggml_context * ctx_gguf = nullptr;
    gguf_init_params gparams = { /*.no_alloc =*/ true, /*.ctx =*/ &ctx_gguf };
    gguf_context * gctx = gguf_init_from_file(fname.c_str(), gparams);
    if (!gctx) { fprintf(stderr, "%s: gguf_init_from_file() failed\n", __func__); return 1; }
    const int64_t karch = gguf_find_key(gctx, "general.architecture");
    if (karch < 0) die("%s: no general.architecture", fname.c_str());
    const std::string arch = gguf_get_val_str(gctx, karch);
    fprintf(stderr, "model arch is %s\n", arch.c_str());

    ggml_tensor *fc1_w = nullptr, *fc1_b = nullptr, *fc2_w = nullptr, *fc2_b = nullptr;
    ggml_tensor *c1_k = nullptr, *c1_b = nullptr, *c2_k = nullptr, *c2_b = nullptr, *d_w = nullptr, *d_b = nullptr;
    if (arch == "mnist-fc") {
        fc1_w = ggml_get_tensor(ctx_gguf, "fc1.weight");
        GGML_ASSERT(fc1_w->ne[0] == MNIST_NINPUT);
        GGML_ASSERT(fc1_w->ne[1] == MNIST_NHIDDEN);
        GGML_ASSERT(fc1_w->ne[2] == 1);
        GGML_ASSERT(fc1_w->ne[3] == 1);
        fc1_b = ggml_get_tensor(ctx_gguf, "fc1.bias");
        GGML_ASSERT(fc1_b->ne[0] == MNIST_NHIDDEN);
        GGML_ASSERT(fc1_b->ne[1] == 1);
        GGML_ASSERT(fc1_b->ne[2] == 1);
        GGML_ASSERT(fc1_b->ne[3] == 1);
        fc2_w = ggml_get_tensor(ctx_gguf, "fc2.weight");
        GGML_ASSERT(fc2_w->ne[0] == MNIST_NHIDDEN);
        GGML_ASSERT(fc2_w->ne[1] == MNIST_NCLASSES);
        GGML_ASSERT(fc2_w->ne[2] == 1);
        GGML_ASSERT(fc2_w->ne[3] == 1);
        fc2_b = ggml_get_tensor(ctx_gguf, "fc2.bias");
        GGML_ASSERT(fc2_b->ne[0] == MNIST_NCLASSES);
        GGML_ASSERT(fc2_b->ne[1] == 1);
        GGML_ASSERT(fc2_b->ne[2] == 1);
        GGML_ASSERT(fc2_b->ne[3] == 1);
    } else if (arch == "mnist-cnn") {
        c1_k = ggml_get_tensor(ctx_gguf, "conv1.kernel");
        GGML_ASSERT(c1_k->type == GGML_TYPE_F32);
        GGML_ASSERT(c1_k->ne[0] == 3);
        GGML_ASSERT(c1_k->ne[1] == 3);
        GGML_ASSERT(c1_k->ne[2] == 1);
        GGML_ASSERT(c1_k->ne[3] == MNIST_CNN_NCB);
        c1_b = ggml_get_tensor(ctx_gguf, "conv1.bias");
        GGML_ASSERT(c1_b->type == GGML_TYPE_F32);
        GGML_ASSERT(c1_b->ne[0] == 1);
        GGML_ASSERT(c1_b->ne[1] == 1);
        GGML_ASSERT(c1_b->ne[2] == MNIST_CNN_NCB);
        GGML_ASSERT(c1_b->ne[3] == 1);
        c2_k = ggml_get_tensor(ctx_gguf, "conv2.kernel");
        GGML_ASSERT(c2_k->type == GGML_TYPE_F32);
        GGML_ASSERT(c2_k->ne[0] == 3);
        GGML_ASSERT(c2_k->ne[1] == 3);
        GGML_ASSERT(c2_k->ne[2] == MNIST_CNN_NCB);
        GGML_ASSERT(c2_k->ne[3] == MNIST_CNN_NCB * 2);
        c2_b = ggml_get_tensor(ctx_gguf, "conv2.bias");
        GGML_ASSERT(c2_b->type == GGML_TYPE_F32);
        GGML_ASSERT(c2_b->ne[0] == 1);
        GGML_ASSERT(c2_b->ne[1] == 1);
        GGML_ASSERT(c2_b->ne[2] == MNIST_CNN_NCB * 2);
        GGML_ASSERT(c2_b->ne[3] == 1);
        d_w = ggml_get_tensor(ctx_gguf, "dense.weight");
        GGML_ASSERT(d_w->type == GGML_TYPE_F32);
        GGML_ASSERT(d_w->ne[0] == (MNIST_HW / 4) * (MNIST_HW / 4) * (MNIST_CNN_NCB * 2));
        GGML_ASSERT(d_w->ne[1] == MNIST_NCLASSES);
        GGML_ASSERT(d_w->ne[2] == 1);
        GGML_ASSERT(d_w->ne[3] == 1);
        d_b = ggml_get_tensor(ctx_gguf, "dense.bias");
        GGML_ASSERT(d_b->type == GGML_TYPE_F32);
        GGML_ASSERT(d_b->ne[0] == MNIST_NCLASSES);
        GGML_ASSERT(d_b->ne[1] == 1);
        GGML_ASSERT(d_b->ne[2] == 1);
        GGML_ASSERT(d_b->ne[3] == 1);
    } else {
        fprintf(stderr, "unknown model arch: %s\n", arch.c_str());
        return 1;
    }

    ggml_backend_buffer_t buf_gguf = ggml_backend_alloc_ctx_tensors(ctx_gguf, backend);
    {
        // as load_from_gguf: copy each tensor's bytes from data_offset + tensor_offset
        FILE * f = fopen(fname.c_str(), "rb");
        if (!f) die("cannot open %s", fname.c_str());
        for (int64_t i = 0; i < gguf_get_n_tensors(gctx); ++i) {
            ggml_tensor * t = ggml_get_tensor(ctx_gguf, gguf_get_tensor_name(gctx, i));
            if (!t) continue;
            const size_t offs = gguf_get_data_offset(gctx) + gguf_get_tensor_offset(gctx, i);
            std::vector<unsigned char> tmp(ggml_nbytes(t));
            if (fseek(f, long(offs), SEEK_SET) != 0 || fread(tmp.data(), 1, tmp.size(), f) != tmp.size())
                die("%s: short read of tensor %s", fname.c_str(), t->name);
            ggml_backend_tensor_set(t, tmp.data(), 0, tmp.size());
        }
        fclose(f);
    }

    // static inputs: images [784, nbatch] and one-hot labels [10, nbatch]
    ggml_init_params sparams = { 8 * ggml_tensor_overhead(), nullptr, true };
    ggml_context * ctx_static = ggml_init(sparams);
    ggml_tensor * t_images = ggml_new_tensor_2d(ctx_static, GGML_TYPE_F32, MNIST_NINPUT, nbatch);
    ggml_set_name(t_images, "images");
    ggml_set_input(t_images);
    ggml_tensor * t_labels = ggml_new_tensor_2d(ctx_static, GGML_TYPE_F32, MNIST_NCLASSES, nbatch);
    ggml_set_name(t_labels, "labels");
    ggml_set_input(t_labels);
    ggml_backend_buffer_t buf_static = ggml_backend_alloc_ctx_tensors(ctx_static, backend);

    // ---- graph, as mnist_model_build ----
    ggml_init_params cparams = { GGML_DEFAULT_GRAPH_SIZE * ggml_tensor_overhead() + ggml_graph_overhead(), nullptr, true };
    ggml_context * ctx = ggml_init(cparams);
    std::vector<dump_node> dumps;
    const bool dumping = !dump_dir.empty();
    auto keep = [&](ggml_tensor * t, const char * name, const char * meaning, const char * golden) {
        ggml_set_name(t, name);
        if (dumping) {
            ggml_set_output(t);
            dumps.push_back({name, t, meaning, golden});
        }
        return t;
    };
    ggml_tensor * logits = nullptr;
    ggml_tensor * im2col_probe = nullptr;
    if (arch == "mnist-fc") {
        ggml_tensor * fc1 = keep(ggml_add(ctx, ggml_mul_mat(ctx, fc1_w, t_images), fc1_b), "fc1",
                                 "ggml_add(ggml_mul_mat(fc1.weight, images), fc1.bias); ne [500, N]", "/activations/fc1");
        ggml_tensor * relu1 = keep(ggml_relu(ctx, fc1), "relu1", "ggml_relu(fc1); ne [500, N]", "/activations/relu1");
        logits = ggml_add(ctx, ggml_mul_mat(ctx, fc2_w, relu1), fc2_b);
        keep(logits, "fc2", "ggml_add(ggml_mul_mat(fc2.weight, relu1), fc2.bias) = logits; ne [10, N]", "/activations/fc2");
    } else {
        ggml_tensor * x = ggml_reshape_4d(ctx, t_images, MNIST_HW, MNIST_HW, 1, t_images->ne[1]);
        ggml_tensor * c1 = im2col_f16 ? conv_2d_im2col(ctx, c1_k, x, GGML_TYPE_F16) : ggml_conv_2d(ctx, c1_k, x, 1, 1, 1, 1, 1, 1);
        // c1 = cont(permute(reshape(mul_mat(im2col, kernel)))); find the im2col node for its type
        for (ggml_tensor * p = c1; p && !im2col_probe; ) {
            if (p->op == GGML_OP_IM2COL) im2col_probe = p;
            else p = p->src[0];
        }
        c1 = keep(ggml_add(ctx, c1, c1_b), "conv1",
                  "ggml_add(ggml_conv_2d(conv1.kernel, images as ne [28,28,1,N], 1,1,1,1,1,1), conv1.bias); ne [28,28,8,N] = NCHW", "/activations/conv1");
        ggml_tensor * r1 = keep(ggml_relu(ctx, c1), "relu1", "ggml_relu(conv1); ne [28,28,8,N]", "/activations/relu1");
        GGML_ASSERT(r1->ne[0] == MNIST_HW && r1->ne[1] == MNIST_HW && r1->ne[2] == MNIST_CNN_NCB && r1->ne[3] == nbatch);
        ggml_tensor * p1 = keep(ggml_pool_2d(ctx, r1, GGML_OP_POOL_MAX, 2, 2, 2, 2, 0, 0), "pool1",
                                "ggml_pool_2d(relu1, MAX, 2,2,2,2,0,0); ne [14,14,8,N]", "/activations/pool1");
        ggml_tensor * c2 = keep(ggml_add(ctx, im2col_f16 ? conv_2d_im2col(ctx, c2_k, p1, GGML_TYPE_F16)
                                                        : ggml_conv_2d(ctx, c2_k, p1, 1, 1, 1, 1, 1, 1), c2_b), "conv2",
                                "ggml_add(ggml_conv_2d(conv2.kernel, pool1, 1,1,1,1,1,1), conv2.bias); ne [14,14,16,N]", "/activations/conv2");
        ggml_tensor * r2 = keep(ggml_relu(ctx, c2), "relu2", "ggml_relu(conv2); ne [14,14,16,N]", "/activations/relu2");
        ggml_tensor * p2 = keep(ggml_pool_2d(ctx, r2, GGML_OP_POOL_MAX, 2, 2, 2, 2, 0, 0), "pool2",
                                "ggml_pool_2d(relu2, MAX, 2,2,2,2,0,0); ne [7,7,16,N] = NCHW", "/activations/pool2");
        GGML_ASSERT(p2->ne[0] == MNIST_HW / 4 && p2->ne[1] == MNIST_HW / 4 && p2->ne[2] == MNIST_CNN_NCB * 2 && p2->ne[3] == nbatch);
        ggml_tensor * cont = ggml_cont(ctx, ggml_permute(ctx, p2, 1, 2, 0, 3));
        if (dumping) ggml_set_output(cont);
        ggml_tensor * flat = keep(ggml_reshape_2d(ctx, cont, (MNIST_HW / 4) * (MNIST_HW / 4) * (MNIST_CNN_NCB * 2), nbatch), "flatten",
                                  "ggml_reshape_2d(ggml_cont(ggml_permute(pool2, 1,2,0,3)), 784, N); ne [784, N], "
                                  "element index (h*7+w)*16+c (NHWC order; PyTorch's flatten is c*49+h*7+w)", "/activations/flatten");
        logits = ggml_add(ctx, ggml_mul_mat(ctx, d_w, flat), d_b);
        keep(logits, "dense", "ggml_add(ggml_mul_mat(dense.weight, flatten), dense.bias) = logits; ne [10, N]", "/activations/dense");
    }
    ggml_set_name(logits, arch == "mnist-fc" ? "fc2" : "dense");
    ggml_set_output(logits);
    GGML_ASSERT(logits->type == GGML_TYPE_F32 && logits->ne[0] == MNIST_NCLASSES && logits->ne[1] == nbatch);
    ggml_tensor * loss = ggml_cross_entropy_loss(ctx, logits, t_labels);  // as ggml_opt (opt_period 1)
    ggml_set_output(loss);
    ggml_tensor * pred = ggml_argmax(ctx, logits);
    ggml_set_output(pred);

    ggml_cgraph * gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, loss);
    ggml_build_forward_expand(gf, pred);
    ggml_gallocr_t galloc = ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend));
    if (!ggml_gallocr_alloc_graph(galloc, gf)) die("ggml_gallocr_alloc_graph failed");

    // ---- evaluate all batches ----
    const int64_t nbatches = nimg / nbatch;
    std::vector<float> all_logits(size_t(nimg) * MNIST_NCLASSES);
    std::vector<float> batch_loss(nbatches);
    std::vector<float> onehot(size_t(nbatch) * MNIST_NCLASSES);
    std::vector<int32_t> preds(nbatch);
    int64_t ncorrect = 0;
    double loss_f64 = 0.0;  // mean over images of -log_softmax(logits)[label], computed in double
    const int64_t t0 = ggml_time_us();
    for (int64_t b = 0; b < nbatches; ++b) {
        ggml_backend_tensor_set(t_images, images.data() + size_t(b) * nbatch * MNIST_NINPUT, 0, ggml_nbytes(t_images));
        std::fill(onehot.begin(), onehot.end(), 0.0f);
        for (int i = 0; i < nbatch; ++i) onehot[size_t(i) * MNIST_NCLASSES + labels[b * nbatch + i]] = 1.0f;
        ggml_backend_tensor_set(t_labels, onehot.data(), 0, ggml_nbytes(t_labels));
        if (ggml_backend_graph_compute(backend, gf) != GGML_STATUS_SUCCESS) die("graph compute failed");
        ggml_backend_tensor_get(logits, all_logits.data() + size_t(b) * nbatch * MNIST_NCLASSES, 0, ggml_nbytes(logits));
        ggml_backend_tensor_get(loss, &batch_loss[b], 0, sizeof(float));
        ggml_backend_tensor_get(pred, preds.data(), 0, ggml_nbytes(pred));
        for (int i = 0; i < nbatch; ++i) {
            const int64_t n = b * nbatch + i;
            ncorrect += preds[i] == labels[n];
            const float * z = &all_logits[size_t(n) * MNIST_NCLASSES];
            double m = z[0];
            for (int k = 1; k < MNIST_NCLASSES; ++k) m = std::max(m, double(z[k]));
            double s = 0.0;
            for (int k = 0; k < MNIST_NCLASSES; ++k) s += std::exp(double(z[k]) - m);
            loss_f64 += -(double(z[labels[n]]) - m - std::log(s));
        }
        if (b == 0 && dumping) {
            std::string jp = dump_dir + "/nodes.json";
            FILE * jf = fopen(jp.c_str(), "w");
            if (!jf) die("cannot write %s", jp.c_str());
            fprintf(jf, "{\n \"format\": \"parity-ggml-dump\",\n \"version\": 1,\n \"model\": \"%s\",\n"
                        " \"arch\": \"%s\",\n \"images\": %d,\n \"batch\": %d,\n \"threads\": %d,\n \"nodes\": [\n",
                    fname.c_str(), arch.c_str(), ndump, nbatch, nthreads);
            for (size_t k = 0; k < dumps.size(); ++k) {
                ggml_tensor * t = dumps[k].t;
                GGML_ASSERT(t->type == GGML_TYPE_F32 && ggml_is_contiguous(t));
                // the batch axis is the outermost used axis, so the first ndump images are a prefix
                const int batch_axis = ggml_n_dims(t) - 1;
                GGML_ASSERT(t->ne[batch_axis] == nbatch);
                const size_t per_image = ggml_nbytes(t) / nbatch;
                std::vector<unsigned char> bytes(per_image * ndump);
                ggml_backend_tensor_get(t, bytes.data(), 0, bytes.size());
                std::string p = dump_dir + "/" + dumps[k].name + ".f32";
                FILE * f = fopen(p.c_str(), "wb");
                if (!f || fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) die("cannot write %s", p.c_str());
                fclose(f);
                int64_t ne[4] = { t->ne[0], t->ne[1], t->ne[2], t->ne[3] };
                ne[batch_axis] = ndump;
                fprintf(jf, "  {\"name\": \"%s\", \"file\": \"%s.f32\", \"type\": \"f32\", \"ne\": [", dumps[k].name.c_str(), dumps[k].name.c_str());
                for (int d = 0; d <= batch_axis; ++d) fprintf(jf, "%s%" PRId64, d ? ", " : "", ne[d]);
                fprintf(jf, "], \"ggml_op\": \"%s\", \"corresponds_to\": \"%s\", \"golden\": \"%s\"}%s\n",
                        ggml_op_desc(t), dumps[k].meaning.c_str(), dumps[k].golden.c_str(), k + 1 < dumps.size() ? "," : "");
            }
            fprintf(jf, " ]\n}\n");
            fclose(jf);
        }
    }
    const int64_t t_us = ggml_time_us() - t0;

    // loss as ggml_opt_result_loss: mean of the per-batch (float) losses, in double
    double lsum = 0.0, lsq = 0.0;
    for (float l : batch_loss) { lsum += l; lsq += double(l) * l; }
    const double loss_mean = lsum / nbatches;
    const double loss_unc = nbatches > 1 ? std::sqrt((lsq / nbatches - loss_mean * loss_mean) / (nbatches - 1)) : NAN;
    const double acc = double(ncorrect) / nimg;
    const double acc_unc = std::sqrt(acc * (1.0 - acc) / (nimg - 1));
    loss_f64 /= nimg;

    printf("main: test_loss=%.6lf+-%.6lf\n", loss_mean, loss_unc);
    printf("main: test_acc=%.2lf+-%.2lf%%\n", 100.0 * acc, 100.0 * acc_unc);
    printf("arch=%s images=%" PRId64 " correct=%" PRId64 " accuracy=%.6f loss_ggml=%.9f loss_f64=%.9f threads=%d batch=%d "
           "im2col_type=%s eval_us_per_image=%.2f ggml=%s commit=%s\n",
           arch.c_str(), nimg, ncorrect, acc, loss_mean, loss_f64, nthreads, nbatch,
           im2col_probe ? ggml_type_name(im2col_probe->type) : "-", double(t_us) / nimg, ggml_version(), ggml_commit());

    if (!logits_path.empty()) {
        FILE * f = fopen(logits_path.c_str(), "wb");
        if (!f || fwrite(all_logits.data(), sizeof(float), all_logits.size(), f) != all_logits.size()) die("cannot write %s", logits_path.c_str());
        fclose(f);
    }
    if (!json_path.empty()) {
        FILE * f = fopen(json_path.c_str(), "w");
        if (!f) die("cannot write %s", json_path.c_str());
        fprintf(f, "{\"arch\": \"%s\", \"images\": %" PRId64 ", \"correct\": %" PRId64 ", \"accuracy\": %.17g, "
                   "\"loss_ggml\": %.17g, \"loss_ggml_unc\": %.17g, \"loss_f64\": %.17g, \"threads\": %d, \"batch\": %d, "
                   "\"im2col_type\": \"%s\", \"ggml_version\": \"%s\", \"ggml_commit\": \"%s\"}\n",
                arch.c_str(), nimg, ncorrect, acc, loss_mean, std::isfinite(loss_unc) ? loss_unc : 0.0, loss_f64,
                nthreads, nbatch, im2col_probe ? ggml_type_name(im2col_probe->type) : "-", ggml_version(), ggml_commit());
        fclose(f);
    }

    ggml_gallocr_free(galloc);
    ggml_free(ctx);
    ggml_backend_buffer_free(buf_static);
    ggml_free(ctx_static);
    ggml_backend_buffer_free(buf_gguf);
    ggml_free(ctx_gguf);
    gguf_free(gctx);
    ggml_backend_free(backend);
    return 0;
}
