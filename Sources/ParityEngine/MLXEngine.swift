import ParityCore
import ParityFormats
import ParityModels

/// Runs MLX weights as the natural mlx.nn port of the reference architecture runs them (the models in
/// tools/mlx/models.py): channels-last throughout — `nn.Conv2d` with weights [out, kh, kw, in] on NHWC
/// activations, `nn.MaxPool2d` on NHWC, `x.reshape(N, -1)` of an NHWC map (so the dense layer sees (h, w, c)
/// order), `nn.Linear` with weights [out, in] (`x @ W.T + b`, not transposed), and `nn.QuantizedLinear` wherever
/// mlx-lm's rule says a module is quantized (`<module>.scales` exists), computing `mx.quantized_matmul`.
/// Parameters are found by mlx.nn's dotted module paths, which for Parity's models are the reference module
/// names; half-precision weights meet float32 inputs and MLX promotes the product to float32.
///
/// At the hooks NHWC activations are transposed to NCHW and the flattened activation reordered to (c, h, w);
/// golden inputs are transposed the other way.
public struct MLXEngine: DiagnosableEngine, StrictLoadingEngine {
    public let files: MLXModelFiles
    public let layers: [LayerSpec]
    /// Parameters replaced for diagnosis, by name.
    public var overrides: [String: Tensor] = [:]
    /// Parameters decoded from the files (16-bit floats widened, quantized matrices unpacked), once per engine.
    public let decoded = DecodedWeightCache()
    public var semantics: String { "MLX (mlx.nn port: NHWC, Conv2d [out,kh,kw,in], Linear [out,in], QuantizedLinear → quantized_matmul; float32 compute)" }

    /// What `load_weights(strict=True)` would say about these files.
    public let loading: StrictLoadingOutcome

    /// `model`, when given, is the reference model the files must belong to: a `config.json` whose `model_type`
    /// is another architecture, or weights sharing no parameter with the model, are refused as bad input.
    public init(files: MLXModelFiles, layers: [LayerSpec], model: ModelConfig? = nil) throws(ParityError) {
        // Each Linear module's quantization, decided once against the model's in_features as mlx-lm decides it
        // (config entries, else the shapes); weights that contradict it are the strict rule's to refuse.
        let files = try files.resolvingQuantization(linear: layers.compactMap { layer -> (name: String, inFeatures: Int)? in
            if case let .linear(name, inF, _, _) = layer { return (name, inF) } else { return nil }
        })
        let expected = MLXEngine.moduleParameters(layers, files: files)
        if let model {
            // mlx-lm picks the model class by `model_type`; a config without one may still name its "architecture".
            for key in ["model_type", "architecture"] {
                guard let declared = files.config?[key]?.stringValue else { continue }
                guard declared == model.architecture else {
                    throw ArchitectureCheck.refuse(file: files.path + "/config.json", declared: declared, by: key, model: model.name,
                                                   modelArchitecture: model.architecture)
                }
                break
            }
            try ArchitectureCheck.checkTensorSet(file: files.path, expected: expected.map(\.name), stored: files.tensors.map(\.name),
                                                 model: model.name, modelArchitecture: model.architecture)
        }
        self.files = files
        self.layers = layers
        loading = StrictLoadingRule.mlxStrict.check(file: files.path, expected: expected,
                                                    stored: files.tensors.map { StrictLoadingRule.Parameter(name: $0.name, shape: $0.shape) })
        Kernels.pinBLASThreads()
    }

    /// The parameters the mlx.nn port of these layers has once mlx-lm has quantized the modules the files
    /// quantize: Conv2d weight [out, kh, kw, in] and bias; Linear weight [out, in] and bias, or for a
    /// QuantizedLinear the packed weight, scales, biases (affine only) and bias (packed shapes are checked when
    /// the layer runs).
    static func moduleParameters(_ layers: [LayerSpec], files: MLXModelFiles) -> [StrictLoadingRule.Parameter] {
        layers.flatMap { layer -> [StrictLoadingRule.Parameter] in
            switch layer {
            case let .conv2d(name, inC, outC, kernel, _, _, bias):
                return [.init(name: "\(name).weight", shape: [outC, kernel[0], kernel[1], inC])] + (bias ? [.init(name: "\(name).bias", shape: [outC])] : [])
            case let .linear(name, inF, outF, bias):
                let biasParameter: [StrictLoadingRule.Parameter] = bias ? [.init(name: "\(name).bias", shape: [outF])] : []
                if let q = files.resolved[name] ?? nil {
                    return [.init(name: "\(name).weight", shape: nil), .init(name: "\(name).scales", shape: nil)]
                        + (q.mode == "affine" ? [.init(name: "\(name).biases", shape: nil)] : []) + biasParameter
                }
                return [.init(name: "\(name).weight", shape: [outF, inF])] + biasParameter
            default:
                return []
            }
        }
    }

    /// A parameter as `load_weights(strict=True)` checks it: present, with the module's shape.
    func parameter(_ name: String, shape: [Int], layer: String) throws(LayerExecutionError) -> Tensor {
        if let override = overrides[name] {
            guard override.shape == shape else {
                throw LayerExecutionError(layer: layer, reason: "parameter '\(name)' has shape \(override.shape); mlx.nn expects \(shape)")
            }
            return override
        }
        guard let raw = files.tensor(name) else {
            throw LayerExecutionError(layer: layer, reason: "\(files.path) has no parameter '\(name)'")
        }
        guard raw.shape == shape else {
            throw LayerExecutionError(layer: layer, reason: "parameter '\(name)' has shape \(raw.shape); mlx.nn expects \(shape)")
        }
        return try decoded.value("parameter:" + name) { () throws(LayerExecutionError) -> Tensor in
            guard raw.dtype.isFloatingPoint, let values = raw.floats() else {
                throw LayerExecutionError(layer: layer, reason: "parameter '\(name)' has dtype \(raw.dtype.rawValue), not a float type")
            }
            return Tensor(shape: shape, data: values)
        }
    }

    public func apply(_ layer: LayerSpec, to input: Tensor) throws(LayerExecutionError) -> Tensor {
        switch layer {
        case let .conv2d(name, inC, outC, kernel, stride, padding, bias):
            guard input.rank == 4, input.shape[1] == inC else { throw LayerExecutionError(layer: name, reason: "input \(input.shape) is not [N, \(inC), H, W]") }
            let w = try parameter("\(name).weight", shape: [outC, kernel[0], kernel[1], inC], layer: name)
            let b = bias ? try parameter("\(name).bias", shape: [outC], layer: name) : nil
            let y = Kernels.conv2dNHWC(ChannelsLast.toNHWC(input), weight: w, bias: b, stride: stride, padding: padding)
            return ChannelsLast.toNCHW(y)
        case .relu:
            return Kernels.relu(input)
        case let .maxPool2d(name, kernel, stride):
            guard input.rank == 4 else { throw LayerExecutionError(layer: name, reason: "input \(input.shape) is not 4-D") }
            return ChannelsLast.toNCHW(Kernels.maxPool2dNHWC(ChannelsLast.toNHWC(input), kernel: kernel, stride: stride))
        case let .flatten(name, _):
            guard input.rank >= 2 else { throw LayerExecutionError(layer: name, reason: "input \(input.shape) cannot be flattened") }
            // MLX flattens NHWC as (h, w, c); reported in the reference (c, h, w) order that is the plain reshape.
            return input.reshaped([input.shape[0], input.count / max(input.shape[0], 1)])
        case let .linear(name, inF, outF, bias):
            guard input.rank == 2, input.shape[1] == inF else { throw LayerExecutionError(layer: name, reason: "input \(input.shape) is not [N, \(inF)]") }
            var x = input
            if let map = ChannelsLast.featureMap(before: name, in: layers, features: inF) {
                x = ChannelsLast.flattenedToChannelsLast(input, map: map)
            }
            let b = bias ? try parameter("\(name).bias", shape: [outF], layer: name) : nil
            let quantization: MLXQuantParameters?
            do { quantization = try files.quantization(forModule: name) } catch {
                throw LayerExecutionError(layer: name, reason: error.description)
            }
            var y: Tensor
            if let quantization, overrides["\(name).weight"] == nil {
                y = try quantizedLinear(name, x: x, inF: inF, outF: outF, parameters: quantization)
            } else {
                y = Kernels.linear(x, weight: try parameter("\(name).weight", shape: [outF, inF], layer: name), bias: nil)
            }
            if let b { GGMLNumerics.addRowBias(&y, b.data) }  // y + b, row by row (the same float adds as MLX's broadcast)
            return y
        }
    }

    /// `nn.QuantizedLinear`: packed uint32 weight [out, in·bits/32], scales (and affine biases) [out, in/group],
    /// checked against the group size before use (a mismatch is mlx-swift's `mismatchedSize(key: "biases")`).
    func quantizedLinear(_ name: String, x: Tensor, inF: Int, outF: Int, parameters q: MLXQuantParameters) throws(LayerExecutionError) -> Tensor {
        guard let w = files.tensor("\(name).weight"), let scales = files.tensor("\(name).scales") else {
            throw LayerExecutionError(layer: name, reason: "quantized module '\(name)' needs weight and scales")
        }
        let biases = files.tensor("\(name).biases")
        do {
            // The packed matrix unpacked once per engine (the same MLXQuantized every call would build).
            let unpacked = try decoded.value("quantized:" + name) { () throws(ParityError) -> MLXQuantized in
                let unpacked = try MLXQuantized(weight: w, scales: scales, biases: biases, mode: MLXQuantMode.parse(q.mode),
                                                groupSize: q.groupSize, bits: q.bits)
                guard unpacked.rows == outF, unpacked.cols == inF else {
                    throw .mismatch(file: w.name, reason: "quantized weight \(w.shape) unpacks to [\(unpacked.rows), \(unpacked.cols)]; the layer is [\(outF), \(inF)]")
                }
                return unpacked
            }
            let y = try MLXQuantization.quantizedMatmul(x: x.data, rows: x.shape[0], weight: unpacked)
            return Tensor(shape: [x.shape[0], outF], data: y)
        } catch {
            throw LayerExecutionError(layer: name, reason: "quantized '\(name)' (\(q.mode), \(q.bits) bits, group \(q.groupSize)): \(error)")
        }
    }
}

extension MLXEngine {
    /// mlx.nn's parameter shapes for the layer: Conv2d [out, kh, kw, in] (kernel axes 1, 2), Linear [out, in].
    /// Quantized modules are packed and are not offered for rearrangement.
    public func storedParameters(of layer: LayerSpec) -> [StoredParameter] {
        var expected: [(String, [Int], (Int, Int)?)] = []
        switch layer {
        case let .conv2d(name, inC, outC, kernel, _, _, bias):
            expected = [("\(name).weight", [outC, kernel[0], kernel[1], inC], (1, 2))] + (bias ? [("\(name).bias", [outC], nil)] : [])
        case let .linear(name, inF, outF, bias):
            if files.tensor("\(name).scales") != nil { return [] }
            expected = [("\(name).weight", [outF, inF], nil)] + (bias ? [("\(name).bias", [outF], nil)] : [])
        default:
            return []
        }
        return expected.compactMap { name, shape, axes in
            guard let raw = files.tensor(name), raw.dtype.isFloatingPoint, let values = raw.floats() else { return nil }
            return StoredParameter(name: name, role: name.hasSuffix(".bias") ? .bias : .weight, values: Tensor(shape: raw.shape, data: values),
                                   expectedShape: shape, raw16: raw.asRaw16, spatialAxes: axes)
        }
    }

    public func overriding(_ overrides: [String: Tensor]) -> MLXEngine {
        var copy = self
        copy.overrides.merge(overrides) { $1 }
        return copy
    }
}
