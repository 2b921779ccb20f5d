import ParityCore
import ParityFormats
import ParityModels

/// Runs a model from a safetensors file with PyTorch's semantics: parameters looked up by module name
/// (`<module>.weight`, `<module>.bias`) with exactly the shapes `load_state_dict(strict=True)` requires,
/// widened to float32 as loading into a float32 module does, NCHW activations.
public struct PyTorchEngine: DiagnosableEngine, StrictLoadingEngine {
    public let weights: SafetensorsFile
    /// Parameters replaced for diagnosis, by name.
    public var overrides: [String: Tensor] = [:]
    /// Parameters read from the file (widened to float32), once per engine.
    public let decoded = DecodedWeightCache()
    public var semantics: String {
        llama == nil ? "PyTorch (safetensors state_dict, NCHW, float32 compute)"
            : "PyTorch (safetensors state_dict into transformers' LlamaForCausalLM, eager attention, float32 compute)"
    }

    /// The checkpoint as a Llama, when the model is one (transformer nodes run on it: PyTorchEngine+Graph.swift).
    public private(set) var llama: PyTorchLlamaWeights?

    /// What `load_state_dict(strict=True)` would say about this file (nil: no model given to check against).
    public let strictLoading: StrictLoadingOutcome?
    public var loading: StrictLoadingOutcome { strictLoading ?? .accepted(by: .pytorchStrict) }

    /// An engine that does not check the file's parameter set against a model (layers still check their own).
    public init(weights: SafetensorsFile) {
        self.weights = weights
        strictLoading = nil
        Kernels.pinBLASThreads()
    }

    /// An engine for `model`'s file: a file sharing no parameter with the model is refused as bad input;
    /// otherwise its keys and shapes are checked as `load_state_dict(strict=True)` checks them.
    public init(weights: SafetensorsFile, model: ModelConfig) throws(ParityError) {
        let expected = model.graph.parameters.map { StrictLoadingRule.Parameter(name: $0.name, shape: $0.shape) }
        try ArchitectureCheck.checkTensorSet(file: weights.path, expected: expected.map(\.name), stored: weights.entries.map(\.name),
                                             model: model.name, modelArchitecture: model.architecture)
        self.weights = weights
        llama = model.llama.map { PyTorchLlamaWeights(weights: weights, config: $0) }
        strictLoading = StrictLoadingRule.pytorchStrict.check(file: weights.path, expected: expected,
                                                              stored: weights.entries.map { .init(name: $0.name, shape: $0.shape) })
        Kernels.pinBLASThreads()
    }

    /// A parameter, checked as `load_state_dict(strict=True)` checks it: present, same shape.
    func parameter(_ name: String, shape: [Int], layer: String) throws(LayerExecutionError) -> Tensor {
        if let override = overrides[name] {
            guard override.shape == shape else {
                throw LayerExecutionError(layer: layer, reason: "tensor \"\(name)\" has shape \(override.shape), the module expects \(shape)")
            }
            return override
        }
        guard let entry = weights.entry(named: name) else {
            throw LayerExecutionError(layer: layer, reason: "\(weights.path) has no tensor \"\(name)\"")
        }
        guard entry.shape == shape else {
            throw LayerExecutionError(layer: layer, reason: "tensor \"\(name)\" has shape \(entry.shape), the module expects \(shape)")
        }
        return try decoded.value("parameter:" + name) { () throws(LayerExecutionError) -> Tensor in
            do { return try weights.tensor(entry) } catch {
                throw LayerExecutionError(layer: layer, reason: "cannot read \"\(name)\": \(error)")
            }
        }
    }

    public func apply(_ layer: LayerSpec, to x: Tensor) throws(LayerExecutionError) -> Tensor {
        var params: [Tensor] = []
        for (name, shape) in layer.parameters { params.append(try parameter(name, shape: shape, layer: layer.name)) }
        switch layer {
        case let .conv2d(name, inC, _, _, stride, padding, bias):
            guard x.rank == 4, x.shape[1] == inC else {
                throw LayerExecutionError(layer: name, reason: "input shape \(x.shape) is not [N, \(inC), H, W]")
            }
            return Kernels.conv2dNCHW(x, weight: params[0], bias: bias ? params[1] : nil, stride: stride, padding: padding)
        case .relu:
            return Kernels.relu(x)
        case let .maxPool2d(name, kernel, stride):
            guard x.rank == 4 else { throw LayerExecutionError(layer: name, reason: "input shape \(x.shape) is not NCHW") }
            return Kernels.maxPool2dNCHW(x, kernel: kernel, stride: stride)
        case let .flatten(name, startDim):
            guard startDim == 1, x.rank >= 2 else { throw LayerExecutionError(layer: name, reason: "only Flatten(start_dim=1) is implemented") }
            return x.reshaped([x.shape[0], x.count / max(x.shape[0], 1)])
        case let .linear(name, inF, _, bias):
            guard x.rank == 2, x.shape[1] == inF else {
                throw LayerExecutionError(layer: name, reason: "input shape \(x.shape) is not [N, \(inF)]")
            }
            // The weight packed once per engine (an overridden weight, tried by layer-diff, is packed per call).
            let weightName = layer.parameters[0].0
            let packed = overrides[weightName] == nil
                ? decoded.value("packed:" + weightName) { Kernels.PackedLinearWeight(params[0]) }
                : Kernels.PackedLinearWeight(params[0])
            return Kernels.linearChained(x, packed: packed, bias: bias ? params[1] : nil)
        }
    }
}

extension PyTorchEngine {
    /// Images per slice in `forwardOutput`: fmnist-cnn's activations take ~85 KB per image, so eight stay in a 1 MB L2.
    static let sliceImages = 8

    /// The last layer's output; for a convolutional model the batch runs in slices of `sliceImages` through all layers: every layer computes
    /// each image (row) on its own — convolution per image, relu and pooling per element and plane, Linear per row
    /// with a chain that does not depend on the other rows — so the output is bit for bit the whole-batch run's
    /// (ImageKernelTests), while a batch of 500 no longer streams 40 MB of activations through memory per layer.
    public func forwardOutput(_ layers: [LayerSpec], input: Tensor) throws(LayerExecutionError) -> Tensor {
        let n = input.rank > 0 ? input.shape[0] : 0
        // Only convolutional models: their activations outweigh their weights. A Linear-only model (fmnist-mlp, a
        // 1.5 MB weight) would re-read its weights per slice — measured: batch 500 fell from ~2.4× to ~1.4× PyTorch.
        let convolutional = layers.contains { if case .conv2d = $0 { return true } else { return false } }
        guard n > Self.sliceImages, convolutional, llama == nil else { return try forward(layers, input: input, hook: { _, _ in }) }
        let perImage = input.count / n
        var output: [Float] = []
        var rowShape: [Int] = []
        for start in stride(from: 0, to: n, by: Self.sliceImages) {
            let m = min(Self.sliceImages, n - start)
            let slice = Tensor(shape: [m] + input.shape.dropFirst(), data: Array(input.data[(start * perImage)..<((start + m) * perImage)]))
            let y = try forward(layers, input: slice, hook: { _, _ in })
            if start == 0 {
                rowShape = Array(y.shape.dropFirst())
                output.reserveCapacity(n * (y.count / max(m, 1)))
            }
            output.append(contentsOf: y.data)
        }
        return Tensor(shape: [n] + rowShape, data: output)
    }

    public func storedParameters(of layer: LayerSpec) -> [StoredParameter] {
        layer.parameters.compactMap { name, expected in
            guard let entry = weights.entry(named: name), let values = try? weights.tensor(entry) else { return nil }
            let raw = (try? weights.rawBytes(entry)).map { RawTensor(name: name, dtype: entry.dtype, shape: entry.shape, bytes: $0) }
            let isConv: Bool = { if case .conv2d = layer { return true } else { return false } }()
            return StoredParameter(name: name, role: name.hasSuffix(".bias") ? .bias : .weight, values: values, expectedShape: expected,
                                   raw16: raw?.asRaw16, spatialAxes: isConv && name.hasSuffix(".weight") ? (2, 3) : nil)
        }
    }

    public func overriding(_ overrides: [String: Tensor]) -> PyTorchEngine {
        var copy = self
        copy.overrides.merge(overrides) { $1 }
        return copy
    }
}
