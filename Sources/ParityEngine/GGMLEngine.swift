import ParityCore
import ParityFormats
import ParityModels

/// How `ggml_conv_2d` types its im2col. ggml 0.15.3 (run here from the PyPI sdist of ggml-python, see
/// Tests/ParityTests/Fixtures/ggml) builds it in the kernel's type, so F32 kernels convolve in F32; ggml up to at
/// least d99724f (docs/runtime-notes.md §1) built it in F16 unless the kernel was BF16, and then
/// converted an F32 kernel to F16 as the matmul's vec_dot type.
public enum GGMLIm2colRule: String, Sendable, CaseIterable {
    /// ggml ≥ 0.15: `ggml_im2col(…, a->type)`.
    case kernelType = "kernel"
    /// older ggml: `ggml_im2col(…, GGML_TYPE_F16)` unless the kernel is BF16.
    case f16
    /// A counterfactual for attribution: always F32.
    case f32
}

/// Runs a GGUF file as ggml's CPU backend runs it, for the architectures of ggml's `examples/mnist`
/// (`mnist-cnn`, `mnist-fc`). It knows ggml's conventions, not Parity's converter: tensors are found by the
/// names mnist-common.cpp loads and checked against the `ne` it asserts, and the graph is ggml's —
/// `ggml_conv_2d` (im2col typed by `GGMLIm2colRule`), `ggml_add` with broadcasting, `ggml_relu`,
/// `ggml_pool_2d`, `ggml_permute(1, 2, 0, 3)` + `ggml_cont` before the dense layer, and `ggml_mul_mat`, which
/// converts activations to the weight type's `vec_dot_type` (F16, BF16, Q8_0, Q8_1, Q8_K) before the dot.
///
/// Activations in ggml layout (W, H, C, N) have NCHW's memory order, so conv activations need no transpose at
/// the hooks; the flattened activation is in ggml's (h, w, c) order and is transposed to PyTorch's (c, h, w)
/// before it is reported, and back when a layer is fed a golden input.
public struct GGMLEngine: DiagnosableEngine, StrictLoadingEngine {
    public let file: GGUFFile
    /// Tensors replaced for diagnosis, by GGUF name, as row-major float32 (ne = reversed shape).
    public var overrides: [String: Tensor] = [:]
    public let architecture: String
    public let im2col: GGMLIm2colRule
    /// The reference architecture's layers: only their hyperparameters (kernel sizes, channels) are used, to
    /// know the shapes ggml's loader asserts and the feature map the dense layer flattens.
    public let layers: [LayerSpec]
    /// Tensors decoded from the file (F16 → float32), once per engine (shared by `overriding` copies).
    public let decoded = DecodedWeightCache()

    public var semantics: String {
        let rule: String
        switch im2col {
        case .kernelType: rule = "conv_2d im2col in the kernel's type, as ggml 0.15"
        case .f16: rule = "conv_2d im2col in F16, as ggml up to d99724f"
        case .f32: rule = "conv_2d im2col forced to F32"
        }
        return "ggml CPU backend, \(architecture) graph (\(rule); mul_mat converts activations to the weight's vec_dot_type)"
    }

    /// What ggml's mnist loader does with this file's tensor set (extra tensors: loaded and ignored).
    public let loading: StrictLoadingOutcome

    /// `model`, when given, is the reference model the file must belong to: a file whose `general.architecture`
    /// (or tensor set) is another model's is refused as bad input, naming both.
    public init(file: GGUFFile, layers: [LayerSpec], im2col: GGMLIm2colRule = .kernelType, model: ModelConfig? = nil) throws(ParityError) {
        guard let arch = file.architecture else {
            throw .malformed(file: file.path, at: "key 'general.architecture'", reason: "missing; ggml cannot pick a graph")
        }
        guard arch == "mnist-cnn" || arch == "mnist-fc" else {
            throw .unsupported(file: file.path, reason: "general.architecture '\(arch)': the GGUF engine runs ggml's mnist-cnn and mnist-fc graphs")
        }
        // ggml's mnist example has two graphs: mnist-cnn (convolutions) and mnist-fc (Linear layers only). The
        // reference layers say which one this model is.
        let modelGraph = layers.contains { if case .conv2d = $0 { return true } else { return false } } ? "mnist-cnn" : "mnist-fc"
        let expected = GGMLEngine.loaderTensors(layers)
        if arch != modelGraph {
            throw ArchitectureCheck.refuse(file: file.path, declared: arch, by: "general.architecture", model: model?.name ?? "the reference",
                                           modelArchitecture: model?.architecture ?? modelGraph)
        }
        try ArchitectureCheck.checkTensorSet(file: file.path, expected: expected.map(\.name), stored: file.tensors.map(\.name),
                                             model: model?.name ?? "the reference", modelArchitecture: model?.architecture ?? modelGraph)
        // A type ggml runs but Parity cannot compute leaves the file unjudgeable, not wrong: refuse it as unsupported
        // input (exit 2) before any layer, naming the tensor, rather than fail a layer for Parity's own limit.
        let needed = Set(expected.map(\.name))
        if let t = file.tensors.first(where: { needed.contains($0.name) && !$0.type.isSupported }) {
            throw .unsupported(file: file.path, reason: "tensor '\(t.name)' is \(t.type.name.uppercased()), a type ggml runs but Parity's ggml engine "
                + "does not compute yet, so Parity cannot judge this file (nothing about the conversion is known to be wrong)")
        }
        self.file = file
        architecture = arch
        self.im2col = im2col
        self.layers = layers
        loading = StrictLoadingRule.ggmlMnist.check(file: file.path, expected: expected,
                                                    stored: file.tensors.map { StrictLoadingRule.Parameter(name: $0.name, shape: GGMLEngine.padded($0.ne)) },
                                                    shapeWord: "ne")
            .warning(GGMLEngine.mnistEvalWarnings(file, graph: modelGraph))
        Kernels.pinBLASThreads()
    }

    /// Where ggml's `mnist-eval` program (examples/mnist, mnist-common.cpp) would abort on this file although the
    /// ggml graph computes it: the program asserts the bundled widths (MNIST_NINPUT 784, MNIST_NHIDDEN 500,
    /// MNIST_NCLASSES 10, MNIST_CNN_NCB 8 conv1 channels) and, for mnist-cnn only, `type == GGML_TYPE_F32` for all
    /// six tensors (an F16 dense weight aborts: recorded with ggml 0.15.3 in the planted fixtures, case 9).
    /// Parity verifies what the graph computes; these are warnings about that one program, never a failure.
    static func mnistEvalWarnings(_ file: GGUFFile, graph: String) -> [String] {
        let asserted: [(name: String, ne: [Int], f32: Bool)] = graph == "mnist-cnn"
            ? [("conv1.kernel", [3, 3, 1, 8], true), ("conv1.bias", [1, 1, 8, 1], true), ("conv2.kernel", [3, 3, 8, 16], true),
               ("conv2.bias", [1, 1, 16, 1], true), ("dense.weight", [784, 10, 1, 1], true), ("dense.bias", [10, 1, 1, 1], true)]
            : [("fc1.weight", [784, 500, 1, 1], false), ("fc1.bias", [500, 1, 1, 1], false),
               ("fc2.weight", [500, 10, 1, 1], false), ("fc2.bias", [10, 1, 1, 1], false)]
        var reasons: [String] = []
        for a in asserted {
            guard let t = file.tensors.first(where: { $0.name == a.name }) else { continue }  // missing: the graph's own refusal
            if padded(t.ne) != a.ne { reasons.append("\(a.name) ne \(padded(t.ne)) (it asserts \(a.ne))") }
            if a.f32 && t.type != .f32 { reasons.append("\(a.name) is \(t.type.name.uppercased()) (it asserts GGML_TYPE_F32)") }
        }
        guard !reasons.isEmpty else { return [] }
        return ["ggml's mnist-eval program would abort on \(file.path): " + reasons.joined(separator: "; ")
            + " — it hard-codes the bundled model's widths and, for mnist-cnn, F32 tensors; the ggml graph computes this file, and that is what Parity verifies"]
    }

    /// The tensors mnist-common.cpp's loader fetches for these layers, with the `ne` the graph needs (padded to 4).
    static func loaderTensors(_ layers: [LayerSpec]) -> [StrictLoadingRule.Parameter] {
        layers.flatMap { layer -> [StrictLoadingRule.Parameter] in
            switch layer {
            case let .conv2d(name, inC, outC, kernel, _, _, bias):
                return [.init(name: "\(name).kernel", shape: [kernel[1], kernel[0], inC, outC])]
                    + (bias ? [.init(name: "\(name).bias", shape: [1, 1, outC, 1])] : [])
            case let .linear(name, inF, outF, bias):
                return [.init(name: "\(name).weight", shape: padded([inF, outF]))] + (bias ? [.init(name: "\(name).bias", shape: padded([outF]))] : [])
            default:
                return []
            }
        }
    }

    static func padded(_ ne: [Int]) -> [Int] { ne + [Int](repeating: 1, count: max(0, 4 - ne.count)) }

    /// A weight as ggml's loader gets it: by name, with the `ne` mnist-common.cpp asserts.
    func weight(_ name: String, ne: [Int], layer: String) throws(LayerExecutionError) -> GGUFTensorInfo {
        guard let t = file.tensor(named: name) else {
            throw LayerExecutionError(layer: layer, reason: "\(file.path) has no tensor '\(name)' (ggml's \(architecture) graph needs it)")
        }
        // ggml compares all four ne, with trailing 1s implied.
        let padded = t.ne + [Int](repeating: 1, count: max(0, 4 - t.ne.count))
        let wanted = ne + [Int](repeating: 1, count: max(0, 4 - ne.count))
        guard padded == wanted else {
            throw LayerExecutionError(layer: layer, reason: "tensor '\(name)' has ne \(t.ne); the \(architecture) graph for this model needs ne \(ne)")
        }
        guard t.type.isSupported else {
            throw LayerExecutionError(layer: layer, reason: "tensor '\(name)' has type \(t.type.name), which Parity's ggml engine cannot run")
        }
        return t
    }

    /// A weight's type and values: from the file, or an override (treated as F32).
    func weightValues(_ name: String, ne: [Int], layer: String) throws(LayerExecutionError) -> (type: GGMLType, values: [Float]) {
        if let override = overrides[name] {
            let padded = override.shape.reversed() + [Int](repeating: 1, count: max(0, 4 - override.rank))
            guard Array(padded) == ne + [Int](repeating: 1, count: max(0, 4 - ne.count)) else {
                throw LayerExecutionError(layer: layer, reason: "tensor '\(name)' has ne \(Array(override.shape.reversed())); the \(architecture) graph for this model needs ne \(ne)")
            }
            return (.f32, override.data)
        }
        let t = try weight(name, ne: ne, layer: layer)
        return (t.type, try values(t, layer: layer))
    }

    func values(_ t: GGUFTensorInfo, layer: String) throws(LayerExecutionError) -> [Float] {
        try decoded.value("values:" + t.name) { () throws(LayerExecutionError) -> [Float] in
            do { return try file.values(t) } catch { throw LayerExecutionError(layer: layer, reason: "cannot read '\(t.name)': \(error)") }
        }
    }

    public func apply(_ layer: LayerSpec, to input: Tensor) throws(LayerExecutionError) -> Tensor {
        switch layer {
        case let .conv2d(name, inC, outC, kernel, stride, padding, bias):
            guard input.rank == 4, input.shape[1] == inC else { throw LayerExecutionError(layer: name, reason: "input \(input.shape) is not [N, \(inC), H, W]") }
            let k = try weightValues("\(name).kernel", ne: [kernel[1], kernel[0], inC, outC], layer: name)
            let im2colType: GGMLType
            switch im2col {
            case .kernelType: im2colType = k.type
            case .f16: im2colType = k.type == .bf16 ? .bf16 : .f16
            case .f32: im2colType = .f32
            }
            guard [.f32, .f16, .bf16].contains(im2colType) else {
                throw LayerExecutionError(layer: name, reason: "conv kernel '\(name).kernel' is \(k.type.name); ggml's im2col needs F32, F16 or BF16")
            }
            // ggml_im2col writes its columns as im2colType; mul_mat(im2col, kernel) then converts the kernel to
            // that type's vec_dot_type (the same type), and the dot products of these exactly representable
            // values are accumulated in f32 or wider — so the result is a convolution of the rounded operands.
            let x = GGMLNumerics.round(input, to: im2colType)
            let w = GGMLNumerics.round(Tensor(shape: [outC, inC, kernel[0], kernel[1]], data: k.values), to: im2colType)
            var y = Kernels.conv2dNCHW(x, weight: w, bias: nil, stride: stride, padding: padding)
            if bias {
                y = GGMLNumerics.addChannelBias(y, try weightValues("\(name).bias", ne: [1, 1, outC, 1], layer: name).values)
            }
            return y
        case .relu:
            return GGMLNumerics.relu(input)
        case let .maxPool2d(name, kernel, stride):
            guard input.rank == 4 else { throw LayerExecutionError(layer: name, reason: "input \(input.shape) is not 4-D") }
            return Kernels.maxPool2dNCHW(input, kernel: kernel, stride: stride, nan: .skip)  // ggml_pool_2d's rule
        case let .flatten(name, _):
            // mnist-fc reads the image as a 784-vector in memory order; mnist-cnn permutes (W, H, C, N) to
            // (C, W, H, N) and flattens, i.e. (h, w, c) order. Either way the reported activation is put back
            // into PyTorch's (c, h, w) flatten order, which for mnist-fc is the identity.
            guard input.rank >= 2 else { throw LayerExecutionError(layer: name, reason: "input \(input.shape) cannot be flattened") }
            return input.reshaped([input.shape[0], input.count / max(input.shape[0], 1)])
        case let .linear(name, inF, outF, bias):
            guard input.rank == 2, input.shape[1] == inF else { throw LayerExecutionError(layer: name, reason: "input \(input.shape) is not [N, \(inF)]") }
            var x = input
            if architecture == "mnist-cnn" {
                // The dense layer reads ggml's (h, w, c) flatten of the last conv's feature map.
                guard let map = ChannelsLast.featureMap(before: name, in: layers, features: inF) else {
                    throw LayerExecutionError(layer: name, reason: "cannot tell which feature map the \(inF) inputs flatten")
                }
                x = ChannelsLast.flattenedToChannelsLast(input, map: map)
            }
            var y: Tensor
            if overrides["\(name).weight"] != nil {
                let w = try weightValues("\(name).weight", ne: [inF, outF], layer: name)
                y = Kernels.linear(x, weight: Tensor(shape: [outF, inF], data: w.values), bias: nil)
            } else {
                y = try GGMLNumerics.mulMat(file: file, weight: try weight("\(name).weight", ne: [inF, outF], layer: name), x: x, layer: name,
                                            decoded: decoded)
            }
            if bias { GGMLNumerics.addRowBias(&y, try weightValues("\(name).bias", ne: [outF], layer: name).values) }
            return y
        }
    }
}

extension GGMLEngine {
    /// The ggml type of the layer's weight (kernel or matrix), which decides how ggml rounds its products.
    public func weightType(of layer: LayerSpec) -> GGMLType? {
        switch layer {
        case let .conv2d(name, _, _, _, _, _, _): return file.tensor(named: "\(name).kernel")?.type
        case let .linear(name, _, _, _): return file.tensor(named: "\(name).weight")?.type
        default: return nil
        }
    }

    /// The tensors mnist-common.cpp loads for the layer, as row-major arrays (shape = reversed ne): a kernel
    /// ne [KW, KH, IC, OC] is [OC, IC, KH, KW] with the kernel axes at 2 and 3.
    public func storedParameters(of layer: LayerSpec) -> [StoredParameter] {
        var expected: [(String, [Int], (Int, Int)?)] = []
        switch layer {
        case let .conv2d(name, inC, outC, kernel, _, _, bias):
            expected = [("\(name).kernel", [outC, inC, kernel[0], kernel[1]], (2, 3))] + (bias ? [("\(name).bias", [1, outC, 1, 1], nil)] : [])
        case let .linear(name, inF, outF, bias):
            expected = [("\(name).weight", [outF, inF], nil)] + (bias ? [("\(name).bias", [outF], nil)] : [])
        default:
            return []
        }
        return expected.compactMap { name, shape, axes in
            guard let t = file.tensor(named: name), t.type.isSupported, let values = try? file.values(t) else { return nil }
            let raw16 = (t.type == .f16 || t.type == .bf16) ? (try? file.rawBytes(t)).map { RawTensor(name: name, dtype: t.type == .f16 ? .f16 : .bf16, shape: t.shape, bytes: $0) } : nil
            return StoredParameter(name: name, role: name.hasSuffix(".bias") ? .bias : .weight, values: Tensor(shape: t.shape, data: values),
                                   expectedShape: shape, raw16: raw16, spatialAxes: axes)
        }
    }

    public func overriding(_ overrides: [String: Tensor]) -> GGMLEngine {
        var copy = self
        copy.overrides.merge(overrides) { $1 }
        return copy
    }
}

/// ggml CPU semantics of the ops the engine uses, on row-major tensors in ggml's memory order.
public enum GGMLNumerics {
    /// Values rounded to a storage type (F16/BF16 round to nearest even, as ggml's converters do).
    public static func round(_ t: Tensor, to type: GGMLType) -> Tensor {
        switch type {
        case .f16:
            var out = t.data
            out.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = FloatCodecs.roundToHalf(p[i]) } }  // vectorizes
            return Tensor(shape: t.shape, data: out)
        case .bf16: return Tensor(shape: t.shape, data: t.data.map { FloatCodecs.bfloat16ToFloat(FloatCodecs.floatToBFloat16($0)) })
        default: return t
        }
    }

    /// ggml_relu: `x > 0 ? x : 0`, so NaN becomes 0 (unlike PyTorch, where NaN stays NaN).
    public static func relu(_ t: Tensor) -> Tensor {
        var out = t
        out.data.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = p[i] > 0 ? p[i] : 0 } }
        return out
    }

    /// ggml_add of a (1, 1, C, 1) bias to (W, H, C, N).
    public static func addChannelBias(_ t: Tensor, _ bias: [Float]) -> Tensor {
        var out = t
        let (n, c, plane) = (t.shape[0], t.shape[1], t.shape[2] * t.shape[3])
        out.data.withUnsafeMutableBufferPointer { p in
            for i in 0..<n { for ch in 0..<c { let b = bias[ch], row = p.baseAddress! + (i * c + ch) * plane; for q in 0..<plane { row[q] += b } } }
        }
        return out
    }

    /// ggml_add of an (M) bias to each row of y [N, M].
    static func addRowBias(_ y: inout Tensor, _ bias: [Float]) {
        let m = y.shape[1]
        precondition(bias.count == m, "bias of \(bias.count) for rows of \(m)")
        y.data.withUnsafeMutableBufferPointer { p in
            bias.withUnsafeBufferPointer { b in
                for i in 0..<y.shape[0] { let row = p.baseAddress! + i * m; for o in 0..<m { row[o] += b[o] } }
            }
        }
    }

    /// ggml_mul_mat(weight, x) with weight ne [K, M] and x [N, K] (row-major): y [N, M].
    /// F32 weights: f32 dot products. F16/BF16 weights: activations rounded to that type (exact products, f32
    /// accumulation). Quantized weights: each activation row quantized to the type's vec_dot_type, then the
    /// block dot products (integer sums scaled per block) exactly as ggml's CPU kernels define them.
    /// `decoded`, when given, keeps F32/F16/BF16 weights decoded across calls (quantized weights are read in place).
    public static func mulMat(file: GGUFFile, weight: GGUFTensorInfo, x: Tensor, layer: String,
                              decoded: DecodedWeightCache? = nil) throws(LayerExecutionError) -> Tensor {
        let k = weight.ne[0], m = weight.elementCount / weight.ne[0], n = x.shape[0]
        func fail(_ error: Error) -> LayerExecutionError { LayerExecutionError(layer: layer, reason: "mul_mat with '\(weight.name)': \(error)") }
        switch weight.type {
        case .f32, .f16, .bf16:
            let w: [Float]
            do {
                w = try decoded.map { cache in try cache.value("values:" + weight.name) { try file.values(weight) } } ?? file.values(weight)
            } catch { throw fail(error) }
            let xr = round(x, to: weight.type)
            return Kernels.linear(xr, weight: Tensor(shape: [m, k], data: w), bias: nil)
        default:
            var y = [Float](repeating: 0, count: n * m)
            do {
                try file.withData(weight) { wbytes in
                    for i in 0..<n {
                        let row = Array(x.data[(i * k)..<((i + 1) * k)])
                        let q = try GGMLQuants.quantize(row, to: weight.type.vecDotType)
                        q.withUnsafeBytes { qb in
                            y.withUnsafeMutableBufferPointer { yp in
                                GGMLQuants.matVec(weights: wbytes, type: weight.type, rows: m, activations: qb, count: k,
                                                  into: UnsafeMutableBufferPointer(rebasing: yp[(i * m)..<((i + 1) * m)]))
                            }
                        }
                    }
                }
            } catch { throw fail(error) }
            return Tensor(shape: [n, m], data: y)
        }
    }
}
