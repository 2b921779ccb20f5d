import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify
import Testing

/// GGUF conversion to ggml's own layouts and the ggml-semantics engine.
@Suite("GGUF converter and ggml engine")
struct GGUFEngineTests {
    static let cases: [(String, String)] = Repo.bundledModels.flatMap { m in GGUFSupport().variants.map { (m, $0.label) } }

    func convert(_ modelName: String, _ type: String, in dir: TemporaryDirectory) throws -> (String, [String]) {
        let path = dir.file("\(modelName)-\(type).gguf")
        let notes = try GGUFConverter.convert(try Repo.model(modelName), typeName: type, to: path)
        return (path, notes)
    }

    @Test("fmnist-cnn f32 has exactly the names, types and ne that ggml's mnist-common.cpp asserts")
    func cnnLayout() throws {
        let dir = try TemporaryDirectory()
        let (path, _) = try convert("fmnist-cnn", "f32", in: dir)
        let file = try GGUFFile(path: path)
        #expect(file.architecture == "mnist-cnn")
        let expected: [(String, [Int])] = [("conv1.kernel", [3, 3, 1, 8]), ("conv1.bias", [1, 1, 8, 1]), ("conv2.kernel", [3, 3, 8, 16]),
                                           ("conv2.bias", [1, 1, 16, 1]), ("dense.weight", [784, 10]), ("dense.bias", [10])]
        #expect(file.tensors.map(\.name) == expected.map(\.0))
        #expect(file.tensors.map(\.ne) == expected.map(\.1))
        #expect(file.tensors.allSatisfy { $0.type == .f32 })
        // dense.weight column (h, w, c) = (2, 3, 5) holds PyTorch's column (c, h, w) = (5, 2, 3).
        let reference = try Repo.model("fmnist-cnn").weights().tensor(named: "dense.weight")
        let dense = try file.values(file.tensor(named: "dense.weight")!)
        for row in [0, 7] {
            #expect(dense[row * 784 + (2 * 7 + 3) * 16 + 5] == reference.data[row * 784 + 5 * 49 + 2 * 7 + 3])
        }
    }

    @Test("fmnist-mlp is ggml's mnist-fc with no transform; block types fall back to F16 and say why")
    func mlpLayout() throws {
        let dir = try TemporaryDirectory()
        let (path, notes) = try convert("fmnist-mlp", "q8_0", in: dir)
        let file = try GGUFFile(path: path)
        #expect(file.architecture == "mnist-fc")
        #expect(file.tensors.map(\.ne) == [[784, 500], [500], [500, 10], [10]])
        #expect(file.tensors.map(\.type) == [.f16, .f32, .f16, .f32])
        #expect(notes.contains { $0.contains("fc1.weight: rows of 784 are not a multiple of q8_0's block size 32; falling back to F16") })
        #expect(notes.contains { $0.contains("fc2.weight: rows of 500") })
        // Every matrix fell back to F16, so the file is labelled by what it holds: LLAMA_FTYPE_MOSTLY_F16, not Q8_0.
        #expect(file["general.file_type"] == .uint32(1))
        let reference = try Repo.model("fmnist-mlp").weights().tensor(named: "fc1.weight")
        #expect(try file.values(file.tensors[0]) == reference.data.map { Float(Float16($0)) })
    }

    @Test("gate: every layer within the ggml policy", arguments: cases)
    func gate(modelName: String, variant: String) throws {
        let dir = try TemporaryDirectory()
        let (path, _) = try convert(modelName, variant, in: dir)
        let model = try Repo.model(modelName)
        let report = try GGUFSupport().verify(path, model: model, golden: try model.golden())
        #expect(report.variant == variant)
        for layer in report.layers { #expect(layer.status == .pass, "\(modelName) \(variant) \(layer.name): \(layer.status.label) \(layer.status.detail)") }
        #expect(report.passed)
    }

    @Test("ggml 0.15 convolves the CNN's f32 GGUF in F32; older ggml's F16 im2col is emulated, and the report attributes the gap")
    func im2colRules() throws {
        let dir = try TemporaryDirectory()
        let (path, _) = try convert("fmnist-cnn", "f32", in: dir)
        let model = try Repo.model("fmnist-cnn")
        let golden = try model.golden()
        let current = try GGUFSupport().verify(path, model: model, golden: golden)
        let exact = try #require(current.layers.last?.metrics)
        #expect(exact.maxAbs < 5e-5, "ggml 0.15: F32 im2col, f32 noise only: \(exact.maxAbs)")
        #expect(current.notes.contains { $0.contains("ggml up to d99724f built conv_2d's im2col in F16") })
        let legacy = try GGUFSupport(im2col: .f16).verify(path, model: model, golden: golden)
        #expect(legacy.variant == "f32+im2col-f16" && legacy.passed)
        let dense = try #require(legacy.layers.last?.metrics)
        // Rounding conv inputs and kernels to f16 moves the logits by ~1e-3 (CNN-NOTES measured 2.8e-3 on 16
        // images with ggml d99724f): far above the f32 noise above.
        #expect(dense.maxAbs > 2e-4 && dense.maxAbs < 1e-2, "dense max abs \(dense.maxAbs)")
        #expect(legacy.notes.contains { $0.contains("the F16 im2col of older ggml accounts for the gap") })
    }

    @Test("a GGUF whose dense weight skipped the (c,h,w)→(h,w,c) permutation fails at dense")
    func missingPermutation() throws {
        let model = try Repo.model("fmnist-cnn")
        let weights = try model.weights()
        var w = try GGUFWriter(architecture: "mnist-cnn")
        for (ref, name) in [("conv1.weight", "conv1.kernel"), ("conv1.bias", "conv1.bias"), ("conv2.weight", "conv2.kernel"),
                            ("conv2.bias", "conv2.bias"), ("dense.weight", "dense.weight"), ("dense.bias", "dense.bias")] {
            let t = try weights.tensor(named: ref)
            let ne: [Int] = ref.hasPrefix("conv") && ref.hasSuffix("bias") ? [1, 1, t.shape[0], 1] : t.shape.reversed()
            try w.add(name: name, type: .f32, ne: ne, bytes: ElementCodec.encode(t.data, as: .f32)!)
        }
        let dir = try TemporaryDirectory()
        try w.write(to: dir.file("unpermuted.gguf"))
        let report = try GGUFSupport().verify(dir.file("unpermuted.gguf"), model: model, golden: try model.golden())
        #expect(report.firstDivergence?.name == "dense")
        for layer in report.layers.dropLast() { #expect(layer.status == .pass) }
        #expect(!report.passed)
    }

    @Test("a 1-D conv bias is refused at its layer as ggml's loader refuses it")
    func flatConvBias() throws {
        let model = try Repo.model("fmnist-cnn")
        let dir = try TemporaryDirectory()
        let (path, _) = try convert("fmnist-cnn", "f32", in: dir)
        let good = try GGUFFile(path: path)
        var w = try GGUFWriter(architecture: "mnist-cnn")
        for t in good.tensors {
            try w.add(name: t.name, type: t.type, ne: t.name == "conv1.bias" ? [8] : t.ne, bytes: try good.rawBytes(t))
        }
        try w.write(to: dir.file("flatbias.gguf"))
        let report = try GGUFSupport().verify(dir.file("flatbias.gguf"), model: model, golden: try model.golden())
        #expect(report.layers[0].status == .error("tensor 'conv1.bias' has ne [8]; ggml's mnist-cnn loader asserts ne [1, 1, 8, 1]"))
        #expect(report.layers.dropFirst().allSatisfy { $0.status == .notRun })
    }
}

/// Parity's ggml engine against ggml itself: ggml 0.15.3 built here from the PyPI sdist of ggml-python (generic
/// build: ggml's scalar reference code), running mnist-common.cpp's graph; recorded by tools/ggml/record-all.sh.
@Suite("ggml engine vs real ggml")
struct GGMLRuntimeTests {
    static let dir = Repo.fixtures + "/ggml"

    struct Node { let name: String; let ne: [Int]; let images: Int; let file: String }

    static func nodes(_ fixture: String) throws -> [Node] {
        let json = try JSONParser.parse(readBytes(dir + "/" + fixture + "/nodes.json"))
        var out: [Node] = []
        for n in json["nodes"]?.arrayValue ?? [] {
            let name = try #require(n["name"]?.stringValue)
            let ne = n["ne"]?.arrayValue?.compactMap(\.intValue) ?? []
            let images = try #require(n["images"]?.intValue)
            let file = try #require(n["file"]?.stringValue)
            out.append(Node(name: name, ne: ne, images: images, file: file))
        }
        return out
    }

    static func floats(_ path: String) throws -> [Float] {
        try readBytes(path).withUnsafeBytes { b in (0..<(b.count / 4)).map { Float(bitPattern: b.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) } }
    }

    @Test("every dumped ggml node matches the engine's layer", arguments: [
        ("fmnist-cnn-f32", "fmnist-cnn", "f32", GGMLIm2colRule.kernelType),
        ("fmnist-cnn-f32-im2col-f16", "fmnist-cnn", "f32", GGMLIm2colRule.f16),
        ("fmnist-mlp-f32", "fmnist-mlp", "f32", GGMLIm2colRule.kernelType),
        ("fmnist-mlp-f16", "fmnist-mlp", "f16", GGMLIm2colRule.kernelType),
    ])
    func nodes(fixture: String, modelName: String, type: String, rule: GGMLIm2colRule) throws {
        let model = try Repo.model(modelName)
        let scratch = try TemporaryDirectory()
        _ = try GGUFConverter.convert(model, typeName: type, to: scratch.file("m.gguf"))
        let engine = try GGMLEngine(file: GGUFFile(path: scratch.file("m.gguf")), layers: model.config.layers, im2col: rule)
        let images = try Comparator.modelInput(try model.golden())
        let nodes = try Self.nodes(fixture)
        let count = nodes.map(\.images).max() ?? 0
        let perImage = images.count / images.shape[0]
        let input = Tensor(shape: [count] + images.shape.dropFirst(), data: Array(images.data[0..<(count * perImage)]))
        var outputs: [String: Tensor] = [:]
        _ = try engine.forward(model.config.layers, input: input) { outputs[$0] = $1 }
        for node in nodes {
            var theirs = try Self.floats(Self.dir + "/" + fixture + "/" + node.file)
            let ours = try #require(outputs[node.name], "no layer \(node.name)")
            let n = node.images, size = ours.count / ours.shape[0]
            if node.name == "flatten", let map = ChannelsLast.featureMap(before: "dense", in: model.config.layers, features: size) {
                // ggml's flatten is in (h, w, c) order; the engine reports PyTorch's (c, h, w).
                theirs = ChannelsLast.flattenedToChannelsFirst(Tensor(shape: [n, size], data: theirs), map: map).data
            }
            #expect(theirs.count == n * size)
            let m = LayerMetrics.compare(Array(ours.data[0..<(n * size)]), theirs)
            // Same operands, same rounding points (F16 im2col / F16 activations included); only the summation
            // order differs (ggml's generic dot accumulates F32/F16 products in double, OpenBLAS in float).
            #expect(m.relL2 <= 1e-5 && m.maxAbs <= 1e-5 * m.goldenMaxAbs, "\(fixture) \(node.name): rel L2 \(m.relL2), max abs \(m.maxAbs)")
        }
    }

    static let mulMatTypes: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .mxfp4]

    @Test("mul_mat: reference quantizers, activation conversion and dot products equal ggml's (generic build)", arguments: mulMatTypes)
    func mulMat(type: GGMLType) throws {
        let base = Self.dir + "/mul_mat/"
        let file = type.name.lowercased()  // the recorder names files "q4_k.w.bin"
        let w = try Self.floats(base + "w.f32"), x = try Self.floats(base + "x.f32")
        let k = 256
        // Weights: ggml_quantize_chunk (the reference quantizers) and the type's to_float.
        let wq = try GGMLQuants.quantize(w, to: type)
        #expect(wq == (try readBytes(base + "\(file).w.bin")), "\(type.name) weight bytes differ from ggml_quantize_chunk")
        let deq = wq.withUnsafeBytes { GGMLQuants.dequantize($0, type: type, count: w.count) }
        #expect(deq == (try Self.floats(base + "\(file).w_deq.f32")))
        // Activations: each X row converted to the vec_dot type as ggml_mul_mat does (generic: roundf, ties away).
        let rows = (0..<3).map { Array(x[($0 * k)..<(($0 + 1) * k)]) }
        var converted: [[UInt8]] = []
        for row in rows { converted.append(try GGMLQuants.quantize(row, to: type.vecDotType)) }
        if type != .f32 {
            #expect(converted.flatMap { $0 } == (try readBytes(base + "generic/\(file).x_q.bin")), "\(type.name): activation conversion differs")
        }
        // Dot products.
        let out = try Self.floats(base + "generic/\(file).out.f32")
        let rowBytes = k / type.blockSize * type.typeSize
        for j in 0..<3 {
            for i in 0..<4 {
                let ours: Float = wq.withUnsafeBytes { wb in
                    converted[j].withUnsafeBytes { xb in
                        GGMLQuants.vecDot(weights: UnsafeRawBufferPointer(rebasing: wb[(i * rowBytes)..<((i + 1) * rowBytes)]), type: type, activations: xb, count: k)
                    }
                }
                let theirs = out[j * 4 + i]
                // Integer block sums are exact; the per-block float scaling and the float/double sums leave
                // a few ulps of the result's magnitude.
                #expect(abs(ours - theirs) <= 1e-5 * max(1, abs(theirs)), "\(type.name) out[\(j),\(i)]: ours \(ours), ggml \(theirs)")
            }
        }
        // The engine's mul_mat on a GGUF holding that weight gives the same numbers.
        let scratch = try TemporaryDirectory()
        var writer = try GGUFWriter(architecture: "test")
        try writer.add(name: "w", type: type, ne: [k, 4], bytes: wq)
        try writer.write(to: scratch.file("w.gguf"))
        let gguf = try GGUFFile(path: scratch.file("w.gguf"))
        let y = try GGMLNumerics.mulMat(file: gguf, weight: try #require(gguf.tensor(named: "w")), x: Tensor(shape: [3, k], data: x), layer: "test")
        for (ours, theirs) in zip(y.data, out) {
            #expect(abs(ours - theirs) <= 1e-5 * max(1, abs(theirs)), "\(type.name) engine mul_mat: ours \(ours), ggml \(theirs)")
        }
    }
}
