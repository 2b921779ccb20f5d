import ParityCore
import ParityFormats

/// A reference directory must agree with itself before anything is compared with it: config.json's layers,
/// the weights in model.safetensors and the activations in golden.h5. A disagreement is bad input (exit 2)
/// naming the reference file and the layer or tensor — never a verification failure blamed on a converted file.
enum ReferenceConsistency {
    /// Per layer, its output shape without the batch axis, derived from config.json's input shape with
    /// PyTorch's rules (Conv2d: ⌊(H + 2p − k) / s⌋ + 1; MaxPool2d without padding: ⌊(H − k) / s⌋ + 1).
    static func outputShapes(of config: ModelConfig, configPath: String) throws(ParityError) -> [(layer: LayerSpec, shape: [Int])] {
        var shape = config.input.shape
        var from = "the input \(config.input.name) \(config.input.shape)"
        var result: [(LayerSpec, [Int])] = []
        func bad(_ layer: LayerSpec, _ reason: String) -> ParityError {
            .mismatch(file: configPath, reason: "layer \(layer.name) (\(layer.op)): \(reason) (its input is \(from))")
        }
        for layer in config.layers {
            switch layer {
            case let .conv2d(_, inC, outC, kernel, stride, padding, _):
                guard shape.count == 3 else { throw bad(layer, "Conv2d needs a [C, H, W] input") }
                guard shape[0] == inC else { throw bad(layer, "declares in_channels \(inC) but its input has \(shape[0]) channels") }
                guard stride.allSatisfy({ $0 > 0 }) else { throw bad(layer, "stride must be positive") }
                var spatial: [Int] = []
                for axis in 0..<2 {
                    let span = shape[axis + 1] + 2 * padding[axis] - kernel[axis]
                    guard kernel[axis] > 0, span >= 0 else { throw bad(layer, "kernel \(kernel) does not fit the input") }
                    spatial.append(span / stride[axis] + 1)
                }
                shape = [outC] + spatial
            case .relu:
                break
            case let .maxPool2d(_, kernel, stride):
                guard shape.count == 3 else { throw bad(layer, "MaxPool2d needs a [C, H, W] input") }
                guard stride.allSatisfy({ $0 > 0 }), kernel.allSatisfy({ $0 > 0 }) else { throw bad(layer, "kernel and stride must be positive") }
                var spatial: [Int] = []
                for axis in 0..<2 {
                    guard shape[axis + 1] >= kernel[axis] else { throw bad(layer, "kernel \(kernel) does not fit the input") }
                    spatial.append((shape[axis + 1] - kernel[axis]) / stride[axis] + 1)
                }
                shape = [shape[0]] + spatial
            case let .flatten(_, startDim):
                // start_dim counts the batch axis: 1 flattens everything after it.
                guard startDim >= 1, startDim <= shape.count else { throw bad(layer, "start_dim \(startDim) is outside the input's axes") }
                shape = Array(shape[0..<(startDim - 1)]) + [shape[(startDim - 1)...].reduce(1, *)]
            case let .linear(_, inF, outF, _):
                guard let last = shape.last, last == inF else {
                    throw bad(layer, "declares in_features \(inF) but its input has \(shape.last.map(String.init) ?? "no") features")
                }
                shape = Array(shape.dropLast()) + [outF]
            }
            result.append((layer, shape))
            from = "\(layer.name)'s output \(shape)"
        }
        return result
    }

    /// Every parameter the layers declare exists with that shape and a float dtype; nothing else is stored.
    static func checkWeights(_ config: ModelConfig, configPath: String, weights: SafetensorsFile) throws(ParityError) {
        var expected: [String: (layer: LayerSpec, shape: [Int])] = [:]
        for layer in config.layers { for p in layer.parameters { expected[p.name] = (layer, p.shape) } }
        for layer in config.layers {
            for p in layer.parameters {
                guard let entry = weights.entry(named: p.name) else {
                    throw .mismatch(file: weights.path, reason: "has no tensor \"\(p.name)\", which layer \(layer.name) (\(layer.op)) of \(configPath) declares with shape \(p.shape)")
                }
                guard entry.shape == p.shape else {
                    throw .mismatch(file: weights.path, reason: "tensor \"\(p.name)\" has shape \(entry.shape), but layer \(layer.name) (\(layer.op)) of \(configPath) declares \(p.shape)")
                }
                guard entry.dtype.isFloatingPoint else {
                    throw .mismatch(file: weights.path, reason: "tensor \"\(p.name)\" has dtype \(entry.dtype.rawValue); reference weights are floating point")
                }
            }
        }
        let extra = weights.entries.map(\.name).filter { expected[$0] == nil }.sorted()
        guard extra.isEmpty else {
            throw .mismatch(file: weights.path, reason: "holds tensor\(extra.count == 1 ? "" : "s") \(extra.map { "\"\($0)\"" }.joined(separator: ", ")) that no layer of \(configPath) declares")
        }
    }

    /// The goldens record exactly config.json's layers, in order, with their ops, and shapes that follow from
    /// the input; the model input is there with config.json's shape.
    static func checkGolden(_ golden: GoldenFile, config: ModelConfig, configPath: String) throws(ParityError) {
        let file = golden.path
        guard let input = golden.inputs[config.input.name] else {
            throw .mismatch(file: file, reason: "has no /inputs/\(config.input.name), the input \(configPath) names")
        }
        guard input.shape.count == config.input.shape.count + 1, Array(input.shape.dropFirst()) == config.input.shape else {
            throw .mismatch(file: file, reason: "/inputs/\(config.input.name) has shape \(input.shape), but \(configPath) declares [N] + \(config.input.shape)")
        }
        let batch = input.shape[0]
        let recorded = golden.activations.map(\.name)
        let declared = config.layers.map(\.name)
        if let missing = declared.first(where: { !recorded.contains($0) }) {
            throw .mismatch(file: file, reason: "has no activation for layer \(missing) of \(configPath)")
        }
        if let unknown = recorded.first(where: { !declared.contains($0) }) {
            throw .mismatch(file: file, reason: "records activation \"\(unknown)\", which \(configPath) does not declare")
        }
        guard recorded == declared else {
            throw .mismatch(file: file, reason: "records the layers in order \(recorded), but \(configPath) declares \(declared)")
        }
        for ((layer, shape), activation) in zip(try outputShapes(of: config, configPath: configPath), golden.activations) {
            guard activation.op == layer.op else {
                throw .mismatch(file: file, reason: "activation \(layer.name) was recorded from a \(activation.op), but \(configPath) declares \(layer.op)")
            }
            guard activation.tensor.shape == [batch] + shape else {
                throw .mismatch(file: file, reason: "activation \(layer.name) has shape \(activation.tensor.shape), but \(configPath)'s layers give \([batch] + shape) for \(batch) inputs")
            }
        }
    }
}
