import ParityCore
import ParityFormats

/// A reference directory must agree with itself before anything is compared with it: config.json's layers,
/// the weights in model.safetensors and the activations in golden.h5. A disagreement is bad input (exit 2)
/// naming the reference file and the layer or tensor — never a verification failure blamed on a converted file.
enum ReferenceConsistency {
    /// Per layer, its output shape without the batch axis, derived from config.json's input shape with
    /// PyTorch's rules (Conv2d: ⌊(H + 2p − k) / s⌋ + 1; MaxPool2d without padding: ⌊(H − k) / s⌋ + 1).
    /// `beforeLayer` runs on each layer before its input is checked, so that checks made along the way report
    /// the first disagreement in forward order.
    static func outputShapes(of config: ModelConfig, configPath: String,
                             beforeLayer: (LayerSpec) throws(ParityError) -> Void = { _ in }) throws(ParityError) -> [(layer: LayerSpec, shape: [Int])] {
        var shape = config.input.shape
        var from = "the input \(config.input.name) \(config.input.shape)"
        var result: [(LayerSpec, [Int])] = []
        func bad(_ layer: LayerSpec, _ reason: String) -> ParityError {
            .mismatch(file: configPath, reason: "layer \(layer.name) (\(layer.op)): \(reason) (its input is \(from))")
        }
        for layer in config.layers {
            try beforeLayer(layer)
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

    /// A config that names one of ggml's mnist architectures has its structure: the same layer names and ops in
    /// the same order (`ModelConfig.knownArchitectures`). Otherwise `convert` would refuse the model while
    /// `verify --file` judged a file against a structure the architecture's runtime does not run.
    static func checkArchitecture(_ config: ModelConfig, configPath: String) throws(ParityError) {
        guard let structure = ModelConfig.knownArchitectures[config.architecture] else { return }  // checked: no fixed structure to match
        let layers = config.layers.map { (name: $0.name, op: $0.op) }
        func describe(_ list: [(name: String, op: String)]) -> String { list.map { "\($0.name) (\($0.op))" }.joined(separator: ", ") }
        guard !layers.elementsEqual(structure, by: { $0.name == $1.name && $0.op == $1.op }) else { return }  // checked: the structure matches
        let position = (0..<min(layers.count, structure.count)).first { layers[$0].name != structure[$0].name || layers[$0].op != structure[$0].op }
            ?? min(layers.count, structure.count)
        let ours = position < layers.count ? "\(layers[position].name) (\(layers[position].op))" : "nothing"
        let theirs = position < structure.count ? "\(structure[position].name) (\(structure[position].op))" : "nothing"
        throw .mismatch(file: configPath, reason: "declares architecture '\(config.architecture)', whose structure (ggml's examples/mnist) is "
            + "\(describe(structure)), but its layers are \(describe(layers)): at layer \(position) it has \(ours) where '\(config.architecture)' has "
            + "\(theirs) (fix \"architecture\" or the layer list)")
    }

    /// Every parameter the layers declare exists with that shape and a float dtype; nothing else is stored; and
    /// the layers agree with each other (`outputShapes`). Checked layer by layer in forward order, so the first
    /// disagreement is the one reported: a wrong `out_features` is named at its own layer against its weights,
    /// not at the next layer's `in_features`.
    static func checkWeights(_ config: ModelConfig, configPath: String, weights: SafetensorsFile) throws(ParityError) {
        var expected: Set<String> = []
        for layer in config.layers { for p in layer.parameters { expected.insert(p.name) } }
        _ = try outputShapes(of: config, configPath: configPath) { layer throws(ParityError) in
            for p in layer.parameters {
                guard let entry = weights.entry(named: p.name) else {
                    throw .mismatch(file: weights.path, reason: "has no tensor \"\(p.name)\", which layer \(layer.name) (\(layer.op)) of \(configPath) "
                        + "declares with shape \(p.shape)")
                }
                guard entry.shape == p.shape else {
                    throw .mismatch(file: weights.path, reason: "tensor \"\(p.name)\" has shape \(entry.shape), but layer \(layer.name) (\(layer.op)) "
                        + "of \(configPath) declares \(declaration(of: p.name, in: layer)) → \(p.shape)")
                }
                guard entry.dtype.isFloatingPoint else {
                    throw .mismatch(file: weights.path, reason: "tensor \"\(p.name)\" has dtype \(entry.dtype.rawValue); reference weights are floating point")
                }
            }
        }
        let extra = weights.entries.map(\.name).filter { !expected.contains($0) }.sorted()
        guard extra.isEmpty else {
            throw .mismatch(file: weights.path, reason: "holds tensor\(extra.count == 1 ? "" : "s") \(extra.map { "\"\($0)\"" }.joined(separator: ", ")) that no layer of \(configPath) declares")
        }
    }

    /// The config.json keys a parameter's shape comes from, with their values.
    static func declaration(of parameter: String, in layer: LayerSpec) -> String {
        let isBias = parameter.hasSuffix(".bias")
        switch layer {
        case let .linear(_, inF, outF, _):
            return isBias ? "out_features \(outF)" : "out_features \(outF), in_features \(inF)"
        case let .conv2d(_, inC, outC, kernel, _, _, _):
            return isBias ? "out_channels \(outC)" : "out_channels \(outC), in_channels \(inC), kernel_size \(kernel)"
        default:
            return "no parameters"
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
        try GoldenFile.checkLayerNames(recorded: recorded, declared: GoldenFile.DeclaredLayers(names: declared, source: configPath), file: file)
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
        // Each activation's `input` names the dataset the layer read, which layer-diff feeds it to isolate the
        // layer: in a sequential model that is the model input for the first layer, else the previous layer's output.
        var expectedInput = "/inputs/\(config.input.name)"
        for activation in golden.activations {
            guard let recordedInput = activation.input else {
                throw .malformed(file: file, at: "/activations/\(activation.name)@input", reason: "missing string attribute (the dataset the layer read; "
                    + "\(configPath)'s layer order says \(expectedInput))")
            }
            guard recordedInput == expectedInput else {
                throw .mismatch(file: file, reason: "activation \(activation.name) has input attribute \"\(recordedInput)\", but in \(configPath)'s layer order "
                    + "layer \(activation.name) reads \(expectedInput)")
            }
            expectedInput = "/activations/\(activation.name)"
        }
    }

    /// A transformer checkpoint holds exactly the parameters its graph uses (what `load_state_dict(strict=True)`
    /// requires of `LlamaForCausalLM`), with the graph's shapes and float dtypes, checked in graph order so the
    /// first node whose parameter disagrees is named.
    static func checkGraphWeights(_ config: ModelConfig, configPath: String, weights: SafetensorsFile) throws(ParityError) {
        let graph = config.graph
        for node in graph.nodes {
            for p in node.parameters {
                guard let entry = weights.entry(named: p.name) else {
                    throw .mismatch(file: weights.path, reason: "has no tensor \"\(p.name)\", which node \(node.name) (\(node.op.label)) of \(configPath) "
                        + "needs with shape \(p.shape)")
                }
                guard entry.shape == p.shape else {
                    throw .mismatch(file: weights.path, reason: "tensor \"\(p.name)\" has shape \(entry.shape), but node \(node.name) (\(node.op.label)) "
                        + "of \(configPath) needs \(p.shape)")
                }
                guard entry.dtype.isFloatingPoint else {
                    throw .mismatch(file: weights.path, reason: "tensor \"\(p.name)\" has dtype \(entry.dtype.rawValue); reference weights are floating point")
                }
            }
        }
        let expected = Set(graph.parameters.map(\.name))
        let extra = weights.entries.map(\.name).filter { !expected.contains($0) && graph.unreadTensors[$0] == nil }.sorted()
        guard extra.isEmpty else {
            throw .mismatch(file: weights.path, reason: "holds tensor\(extra.count == 1 ? "" : "s") \(extra.map { "\"\($0)\"" }.joined(separator: ", ")) "
                + "that the \(graph.architecture) graph of \(configPath) does not use")
        }
    }

    /// A format_version 2 golden records exactly the graph: every recorded node has its dataset, computed from
    /// exactly the node's inputs (as `input_args`), every dataset is a node, and the model inputs are there,
    /// typed as the graph takes them, all with one batch and token count.
    static func checkGraphGolden(_ golden: GoldenFile, config: ModelConfig, configPath: String) throws(ParityError) {
        let file = golden.path, graph = config.graph
        guard golden.version == 2 else {
            throw .mismatch(file: file, reason: "is a format_version \(golden.version) golden, but \(configPath) is a Hugging Face checkpoint (format_version 2 records causal LMs)")
        }
        var batchTokens: [Int]?
        for input in graph.inputs {
            guard let value = golden.inputValues[input.name] else {
                throw .mismatch(file: file, reason: "has no \(input.path), an input of the \(graph.architecture) graph")
            }
            let typeMatches = input.type == .int32 ? value.integers != nil : value.floats != nil
            guard typeMatches else { throw .mismatch(file: file, reason: "\(input.path) holds \(value.typeName), the \(graph.architecture) graph takes \(input.type.rawValue)") }
            guard value.shape.count == 2, batchTokens == nil || batchTokens == value.shape else {
                throw .mismatch(file: file, reason: "\(input.path) has shape \(value.shape); the inputs must all be [batch, tokens]\(batchTokens.map { " = \($0)" } ?? "")")
            }
            batchTokens = value.shape
        }
        for node in graph.recordedNodes where !golden.isOmitted(node.path) {
            guard let dataset = golden.activation(at: node.path) else {
                throw .mismatch(file: file, reason: "has no dataset \(node.path), a node of the \(graph.architecture) graph built from \(configPath)")
            }
            guard dataset.inputs == node.inputs, dataset.inputArgs == node.inputArgs else {
                throw .mismatch(file: file, reason: "\(node.path) was computed from \(zip(dataset.inputArgs, dataset.inputs).map { "\($0)=\($1)" }), "
                    + "but the graph built from \(configPath) reads \(zip(node.inputArgs, node.inputs).map { "\($0)=\($1)" })")
            }
            if let batchTokens, dataset.value.shape.count >= 2, node.op != .positions {
                // [B, T, …] for token-wise values, [B, H, T, …] for attention: the batch comes first.
                guard dataset.value.shape[0] == batchTokens[0] else {
                    throw .mismatch(file: file, reason: "\(node.path) has shape \(dataset.value.shape), batch \(dataset.value.shape[0]) where the inputs have \(batchTokens[0])")
                }
            }
        }
        if let unknown = golden.activations.first(where: { graph.node(at: $0.path) == nil }) {
            throw .mismatch(file: file, reason: "records \(unknown.path), which the \(graph.architecture) graph built from \(configPath) does not have")
        }
    }
}
