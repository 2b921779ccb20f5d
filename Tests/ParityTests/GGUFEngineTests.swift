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

    @Test("gate: every layer within the ggml policy", arguments: try nonEmpty(cases, "bundled models × GGUF variants"))
    func gate(modelName: String, variant: String) throws {
        let dir = try TemporaryDirectory()
        let (path, _) = try convert(modelName, variant, in: dir)
        let model = try Repo.model(modelName)
        let report = try GGUFSupport().verify(path, model: model, golden: try model.golden())
        #expect(report.variant == variant)
        printMargins(report, "gguf \(modelName) \(variant)")
        for layer in try nonEmpty(report.layers, "\(modelName) \(variant) report layers") {
            #expect(layer.status == .pass, "\(modelName) \(variant) \(layer.name): \(layer.status.label) \(layer.status.detail)")
        }
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
        printMargin("im2colRules", "f32 dense max abs", value: exact.maxAbs, limit: 5e-5)
        #expect(exact.maxAbs < 5e-5, "ggml 0.15: F32 im2col, f32 noise only: \(exact.maxAbs)")
        #expect(current.notes.contains { $0.contains("ggml up to d99724f built conv_2d's im2col in F16") })
        let legacy = try GGUFSupport(im2col: .f16).verify(path, model: model, golden: golden)
        #expect(legacy.variant == "f32+im2col-f16" && legacy.passed)
        let dense = try #require(legacy.layers.last?.metrics)
        // Rounding conv inputs and kernels to f16 moves the logits by a few 1e-3 (6.5e-3 here on 64 images under
        // every OpenBLAS kernel; ggml d99724f itself gave 2.8e-3 on 16): the window's floor, 4x the f32 bound above,
        // shows the rounding is applied; its ceiling sits below what BF16's 8x coarser rounding would give (~5e-2).
        printMargin("im2colRules", "f16-im2col dense max abs (must exceed 2e-4)", value: 2e-4, limit: dense.maxAbs)
        printMargin("im2colRules", "f16-im2col dense max abs (must stay below 1e-2)", value: dense.maxAbs, limit: 1e-2)
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
        for layer in try nonEmpty(report.layers.dropLast(), "layers before dense") { #expect(layer.status == .pass, "\(layer.name)") }
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
        #expect(report.layers[0].status == .error("tensor 'conv1.bias' has ne [8]; the mnist-cnn graph for this model needs ne [1, 1, 8, 1]"))
        for layer in try nonEmpty(report.layers.dropFirst(), "layers after conv1") { #expect(layer.status == .notRun, "\(layer.name)") }
    }
}

/// Parity's ggml engine against ggml itself: ggml 0.15.3 built here from the PyPI sdist of ggml-python (generic
/// build: ggml's scalar reference code), running mnist-common.cpp's graph; recorded by tools/ggml/record-all.sh.
@Suite("ggml engine vs real ggml")
struct GGMLRuntimeTests {
    static let dir = Repo.fixtures + "/ggml"

    struct Node { let name: String; let ne: [Int]; let images: Int; let file: String }

    static func nodes(_ fixture: String) throws -> [Node] {
        let path = dir + "/" + fixture + "/nodes.json"
        let json = try fixtureJSON(path)
        var out: [Node] = []
        for n in try nonEmpty(try #require(try required(json, "nodes", in: path).arrayValue), "\(path) nodes") {
            let name = try #require(n["name"]?.stringValue)
            let ne = try #require(n["ne"]?.arrayValue).compactMap(\.intValue)
            let images = try #require(n["images"]?.intValue)
            let file = try #require(n["file"]?.stringValue)
            out.append(Node(name: name, ne: ne, images: images, file: file))
        }
        return out
    }

    static func floats(_ path: String) throws -> [Float] {
        try readBytes(path).withUnsafeBytes { b in (0..<(b.count / 4)).map { Float(bitPattern: b.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) } }
    }

    /// A node's values in the engine's reported layout (ggml's flatten is (h, w, c); the engine reports (c, h, w)).
    static func dumped(_ fixture: String, _ node: Node, model: ReferenceModel) throws -> [Float] {
        let theirs = try floats(dir + "/" + fixture + "/" + node.file)
        let size = node.ne.dropLast().reduce(1, *)
        if node.name == "flatten", let map = ChannelsLast.featureMap(before: "dense", in: model.config.layers, features: size) {
            return ChannelsLast.flattenedToChannelsFirst(Tensor(shape: [node.images, size], data: theirs), map: map).data
        }
        return theirs
    }

    static let nodeFixtures: [(String, String, String, GGMLIm2colRule)] = [
        ("fmnist-cnn-f32", "fmnist-cnn", "f32", .kernelType),
        ("fmnist-cnn-f32-im2col-f16", "fmnist-cnn", "f32", .f16),
        ("fmnist-mlp-f32", "fmnist-mlp", "f32", .kernelType),
        ("fmnist-mlp-f16", "fmnist-mlp", "f16", .kernelType),
    ]

    /// Summation order: ggml's generic dot products accumulate exact f32/f16 products in double, OpenBLAS in float
    /// in an order that depends on the CPU's kernel. Random-walk rounding of a length-K float sum is about
    /// sqrt(K)·2^-24 of the layer's scale (1.7e-6 for K = 784), so 1e-5 × max |ggml| is the f32 policy's limit,
    /// with ~6x headroom, wherever both sides multiply the same operands.
    static let summationLimit = 1e-5

    @Test("every dumped ggml node matches the engine's layer, run on ggml's own input to that layer", arguments: try nonEmpty(nodeFixtures, "ggml node fixtures"))
    func isolatedNodes(fixture: String, modelName: String, type: String, rule: GGMLIm2colRule) throws {
        // Fed the input ggml itself computed, the engine rounds exactly the values ggml rounded (F16 im2col, F16
        // activations): the operands are identical, only the summation order differs, on any CPU.
        let model = try Repo.model(modelName)
        let scratch = try TemporaryDirectory()
        _ = try GGUFConverter.convert(model, typeName: type, to: scratch.file("m.gguf"))
        let engine = try GGMLEngine(file: GGUFFile(path: scratch.file("m.gguf")), layers: model.config.layers, im2col: rule)
        let nodes = try Self.nodes(fixture)
        let byName = Dictionary(nodes.map { ($0.name, $0) }) { a, _ in a }
        var compared = 0
        for (previous, layer) in zip(model.config.layers, model.config.layers.dropFirst()) {
            guard let input = byName[previous.name], let output = byName[layer.name] else { continue }  // checked: compared count below
            let n = min(input.images, output.images)
            let inSize = input.ne.dropLast().reduce(1, *), outSize = output.ne.dropLast().reduce(1, *)
            let x = Array(try Self.dumped(fixture, input, model: model)[0..<(n * inSize)])
            // ggml's ne [W, H, C, N] is NCHW memory order; 2-D nodes are [features, N].
            let shape = input.ne.count == 4 ? [n, input.ne[2], input.ne[1], input.ne[0]] : [n, inSize]
            let ours = try engine.apply(layer, to: Tensor(shape: shape, data: x))
            let theirs = Array(try Self.dumped(fixture, output, model: model)[0..<(n * outSize)])
            #expect(ours.count == theirs.count, "\(fixture) \(layer.name)")
            let m = LayerMetrics.compare(ours.data, theirs)
            printMargin("ggml-nodes-isolated", "\(fixture) \(layer.name) max abs", value: m.maxAbs, limit: Self.summationLimit * m.goldenMaxAbs)
            #expect(m.relL2 <= Self.summationLimit && m.maxAbs <= Self.summationLimit * m.goldenMaxAbs,
                    "\(fixture) \(layer.name) on ggml's \(previous.name): rel L2 \(m.relL2), max abs \(m.maxAbs) > \(Self.summationLimit) × \(m.goldenMaxAbs)")
            compared += 1
        }
        #expect(compared >= nodes.count - 1, "\(fixture): \(compared) of \(nodes.count) nodes compared in isolation")
    }

    @Test("every dumped ggml node matches the engine's layer, run end to end from the images", arguments: try nonEmpty(nodeFixtures, "ggml node fixtures"))
    func nodes(fixture: String, modelName: String, type: String, rule: GGMLIm2colRule) throws {
        let model = try Repo.model(modelName)
        let scratch = try TemporaryDirectory()
        _ = try GGUFConverter.convert(model, typeName: type, to: scratch.file("m.gguf"))
        let file = try GGUFFile(path: scratch.file("m.gguf"))
        let engine = try GGMLEngine(file: file, layers: model.config.layers, im2col: rule)
        let images = try Comparator.modelInput(try model.golden())
        let nodes = try Self.nodes(fixture)
        let count = try #require(nodes.map(\.images).max())
        let perImage = images.count / images.shape[0]
        let input = Tensor(shape: [count] + images.shape.dropFirst(), data: Array(images.data[0..<(count * perImage)]))
        var outputs: [String: Tensor] = [:]
        _ = try engine.forward(model.config.layers, input: input) { outputs[$0] = $1 }
        let bounds = try FlipBound.propagate(model: model, engine: engine, input: input, outputs: outputs)
        for node in nodes {
            let theirs = try Self.dumped(fixture, node, model: model)
            let ours = try #require(outputs[node.name], "no layer \(node.name)")
            let bound = try #require(bounds[node.name])
            let n = node.images, size = ours.count / ours.shape[0]
            #expect(theirs.count == n * size)
            let m = LayerMetrics.compare(Array(ours.data[0..<(n * size)]), theirs)
            // Per element: the summation limit plus what f16 rounding flips upstream can add (FlipBound).
            let absLimit = Self.summationLimit * m.goldenMaxAbs
            var worst = (ratio: 0.0, index: 0)
            for i in 0..<(n * size) {
                let ratio = abs(Double(ours.data[i]) - Double(theirs[i])) / (absLimit + Double(bound.flips[i]))
                if !(ratio <= worst.ratio) { worst = (ratio, i) }
            }
            let flipNorm = (bound.flips[0..<(n * size)].reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
            let refNorm = (theirs.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
            let relLimit = Self.summationLimit + flipNorm / refNorm
            let i = worst.index
            #expect(worst.ratio <= 1 && m.relL2 <= relLimit,
                    "\(fixture) \(node.name): |Δ| at [\(i / size), \(i % size)] \(abs(ours.data[i] - theirs[i])) > \(absLimit) + flip bound \(bound.flips[i]) (\(bound.atRisk) activations within reach of an f16 rounding boundary), or rel L2 \(m.relL2) > \(relLimit)")
            printMargin("ggml-nodes", "\(fixture) \(node.name) worst |Δ| over (1e-5·scale + flip bound \(bound.flips[i]), \(bound.atRisk) at risk)",
                        value: Double(abs(ours.data[i] - theirs[i])), limit: absLimit + Double(bound.flips[i]))
            printMargin("ggml-nodes", "\(fixture) \(node.name) max abs over the old limit 1e-5·scale", value: m.maxAbs, limit: absLimit)
            printMargin("ggml-nodes", "\(fixture) \(node.name) rel L2", value: m.relL2, limit: relLimit)
        }
    }

    static let mulMatTypes: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .mxfp4]

    @Test("mul_mat: reference quantizers, activation conversion and dot products equal ggml's (generic build)", arguments: try nonEmpty(mulMatTypes, "mul_mat types"))
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
        #expect(y.data.count == 12 && out.count == 12, "\(type.name): \(y.data.count) outputs, ggml recorded \(out.count)")
        for (ours, theirs) in zip(y.data, out) {
            #expect(abs(ours - theirs) <= 1e-5 * max(1, abs(theirs)), "\(type.name) engine mul_mat: ours \(ours), ggml \(theirs)")
        }
    }
}

/// How far Parity's ggml engine may legitimately land from ggml itself, element by element, when ggml rounds a
/// layer's input to F16/BF16 before multiplying (F16 weights get F16 activations; an F16 im2col rounds the conv
/// input). Both sides compute that input in float, in different summation orders (the CPU's OpenBLAS kernel vs
/// ggml's), so an input lying within that difference of a rounding boundary of the narrow type can round up on
/// one side and down on the other: a flip moves that rounded input by one unit in the last place of the narrow
/// type, and every product it enters by that ulp times |w|. Which inputs flip depends on the CPU: a Sapphire
/// Rapids machine saw 4.45e-4 at the mlp's logits, OpenBLAS's SkylakeX kernels 3.8e-4, its Haswell kernels 8.7e-5,
/// where the old limit, 1e-5 × scale, was 2.3e-4. So the limit counts the flips that can occur instead of the ones
/// that did on one machine (docs/numerics.md has the measurements under each kernel):
///
///  1. Summation uncertainty δ of every float activation: a length-K float sum, in any order, makes K − 1
///     roundings of at most 2^-24 of a partial sum, each partial sum at most S = Σ|x·w| + |b|. Taken as
///     independent zero-mean errors (uniform: variance u²/3) their sum has standard deviation at most
///     sqrt(K/3)·u·S; δ = 3 of those = sqrt(3K)·u·S (with OpenBLAS's Haswell kernels the largest fc1 difference
///     from ggml is 0.13 δ). Through relu and max-pool δ carries over; a layer without rounding adds |W|·δ_in.
///  2. At a rounding layer, an input x with uncertainty e (δ plus earlier flips) can round to anything in
///     [r(x − e), r(x + e)]; where no boundary lies in between both sides use the same value and the earlier
///     differences vanish. The difference after rounding is at most d = r(x + e) − r(x − e): 0, or one ulp.
///  3. The output's flip bound is |W|·d (every at-risk input flipping against us), carried through later
///     layers as |W|·b, relu unchanged, max-pool as the pooled bound.
/// `flips` is that bound per output element, `atRisk` the number of inputs counted at rounding layers so far.
struct FlipBound {
    var flips: [Float]
    var atRisk: Int

    static func propagate(model: ReferenceModel, engine: GGMLEngine, input: Tensor, outputs: [String: Tensor]) throws -> [String: FlipBound] {
        let u = 0x1p-24
        let weights = try model.weights()
        var x = input
        var delta = Tensor(zeros: input.shape), flips = Tensor(zeros: input.shape)
        var atRisk = 0
        var result: [String: FlipBound] = [:]
        func magnitude(_ t: Tensor) -> Tensor { Tensor(shape: t.shape, data: t.data.map { abs($0) }) }
        func sum(_ a: Tensor, _ b: Tensor) -> Tensor { Tensor(shape: a.shape, data: zip(a.data, b.data).map { $0 + $1 }) }
        func rounded(_ v: Float, _ type: GGMLType) -> Float { GGMLNumerics.round(Tensor(shape: [1], data: [v]), to: type).data[0] }
        for layer in model.config.layers {
            let out = try #require(outputs[layer.name], "no output for \(layer.name)")
            switch layer {
            case .conv2d, .linear:
                let name = layer.name
                // The type ggml rounds this layer's input to: the im2col type for a convolution, the weight's
                // vec_dot type for mul_mat (F32 weights: no rounding).
                let weightType = try #require(engine.weightType(of: layer), "\(name): no weight in the file")
                var inputType = weightType
                if case .conv2d = layer, engine.im2col == .f16 { inputType = weightType == .bf16 ? .bf16 : .f16 }
                if case .conv2d = layer, engine.im2col == .f32 { inputType = .f32 }
                guard [.f32, .f16, .bf16].contains(inputType) else {
                    throw ParityError.unsupported(file: name, reason: "flip bound for \(inputType.name) activations is not derived")
                }
                // |W| and |b| as ggml uses them (weights in the file's type), in the reference layout.
                let w = magnitude(GGMLNumerics.round(try weights.tensor(named: name + ".weight"), to: weightType))
                let b = weights.entry(named: name + ".bias") == nil ? nil : try weights.tensor(named: name + ".bias")
                func product(_ v: Tensor) -> Tensor {
                    if case let .conv2d(_, _, _, _, stride, padding, _) = layer {
                        return Kernels.conv2dNCHW(v, weight: w, bias: nil, stride: stride, padding: padding)
                    }
                    return Kernels.linear(v, weight: w, bias: nil)
                }
                let fanIn = w.count / w.shape[0]
                var xUsed = x
                var inputFlips = flips, inputDelta = delta
                if inputType != .f32 {
                    // Step 2: which rounded inputs can differ, and by how much.
                    var d = [Float](repeating: 0, count: x.count)
                    for i in 0..<x.count {
                        let e = delta.data[i] + flips.data[i]
                        d[i] = rounded(x.data[i] + e, inputType) - rounded(x.data[i] - e, inputType)
                        // Counted where a rounding boundary of a nonzero value lies within reach (relu's zeros
                        // can only move to within e of zero, which d covers).
                        if d[i] != 0 && abs(x.data[i]) > e { atRisk += 1 }
                    }
                    xUsed = GGMLNumerics.round(x, to: inputType)
                    inputFlips = Tensor(shape: x.shape, data: d)
                    inputDelta = Tensor(zeros: x.shape)
                }
                // Step 1: this layer's own summation uncertainty, plus what it carries from its input.
                var s = product(magnitude(xUsed))
                if let b {
                    let perRow = s.count / (s.shape[0] * b.count)
                    for i in 0..<s.count { s.data[i] += abs(b.data[(i / perRow) % b.count]) }
                }
                let spread = (3 * Double(fanIn)).squareRoot() * u
                delta = sum(Tensor(shape: s.shape, data: s.data.map { Float(Double($0) * spread) }), product(inputDelta))
                flips = product(inputFlips)  // step 3
            case let .maxPool2d(_, kernel, stride):
                delta = Kernels.maxPool2dNCHW(delta, kernel: kernel, stride: stride)
                flips = Kernels.maxPool2dNCHW(flips, kernel: kernel, stride: stride)
            case .flatten:
                delta = delta.reshaped(out.shape)
                flips = flips.reshaped(out.shape)
            case .relu:
                break
            }
            #expect(flips.shape == out.shape, "\(layer.name): bound \(flips.shape), output \(out.shape)")
            x = out
            result[layer.name] = FlipBound(flips: flips.data, atRisk: atRisk)
        }
        return result
    }
}
