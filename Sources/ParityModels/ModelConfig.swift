import Foundation
import ParityCore

/// One layer of a reference model, as config.json describes it. The name is the PyTorch module name
/// (`named_modules()`), which is also the golden dataset name and the hook name in every engine.
public enum LayerSpec: Equatable, Sendable {
    case conv2d(name: String, inChannels: Int, outChannels: Int, kernel: [Int], stride: [Int], padding: [Int], bias: Bool)
    case relu(name: String)
    case maxPool2d(name: String, kernel: [Int], stride: [Int])
    case flatten(name: String, startDim: Int)
    case linear(name: String, inFeatures: Int, outFeatures: Int, bias: Bool)

    public var name: String {
        switch self {
        case let .conv2d(name, _, _, _, _, _, _), let .relu(name), let .maxPool2d(name, _, _),
             let .flatten(name, _), let .linear(name, _, _, _): return name
        }
    }

    /// The PyTorch module class, as the golden's `op` attribute records it.
    public var op: String {
        switch self {
        case .conv2d: return "Conv2d"
        case .relu: return "ReLU"
        case .maxPool2d: return "MaxPool2d"
        case .flatten: return "Flatten"
        case .linear: return "Linear"
        }
    }

    /// Whether the layer has weights (and so can be wrong by itself, not only by inheriting error).
    public var hasParameters: Bool {
        switch self {
        case .conv2d, .linear: return true
        default: return false
        }
    }

    /// The PyTorch parameter names this layer owns, with their reference shapes.
    public var parameters: [(name: String, shape: [Int])] {
        switch self {
        case let .conv2d(name, inC, outC, kernel, _, _, bias):
            return [("\(name).weight", [outC, inC, kernel[0], kernel[1]])] + (bias ? [("\(name).bias", [outC])] : [])
        case let .linear(name, inF, outF, bias):
            return [("\(name).weight", [outF, inF])] + (bias ? [("\(name).bias", [outF])] : [])
        default:
            return []
        }
    }
}

/// The input a model takes, in the reference layout (without the batch axis).
public struct InputSpec: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let layout: String
    public let preprocessing: String
}

/// config.json of a reference model: Parity's sequential image config (`layers`, schema in golden/README.md) or a
/// Hugging Face transformers config (`model_type`, built by `ArchitectureRegistry`). Either way the model is
/// its `graph`; `layers` is the sequential model's layer list (empty for a transformer).
public struct ModelConfig: Equatable, Sendable {
    public let name: String
    /// Parity's architecture name (`mnist-cnn`, `mnist-fc`, …) or a Hugging Face `model_type` (`llama`).
    public let architecture: String
    public let classes: [String]
    public let input: InputSpec
    /// The sequential model's layers in forward order; empty for a Hugging Face checkpoint.
    public let layers: [LayerSpec]
    public let weightsFile: String
    public let referenceFramework: String
    public let testAccuracy: Double?
    /// The model as a graph (nodes named as the goldens name their datasets).
    public let graph: ModelGraph
    /// For a Hugging Face checkpoint: its `model_type` (nil for Parity's sequential configs).
    public let modelType: String?
    /// For a Hugging Face Llama checkpoint: its hyperparameters as config.json states them.
    public let llama: LlamaArchitecture?

    /// Whether this is a Hugging Face transformers checkpoint (a graph built from `model_type`).
    public var isTransformer: Bool { modelType != nil }

    /// The structures of ggml's `examples/mnist` models (layer names and ops in forward order), whose GGUF
    /// layouts `convert` writes and whose graphs the GGUF engine runs. A config that declares one of these
    /// architectures must have exactly this structure (widths are the model's own); tools/parity_models.py's
    /// `load_reference` checks the same in Python. Any other architecture name is a model with no GGUF layout.
    public static let knownArchitectures: [String: [(name: String, op: String)]] = [
        "mnist-cnn": [("conv1", "Conv2d"), ("relu1", "ReLU"), ("pool1", "MaxPool2d"), ("conv2", "Conv2d"), ("relu2", "ReLU"),
                      ("pool2", "MaxPool2d"), ("flatten", "Flatten"), ("dense", "Linear")],
        "mnist-fc": [("flatten", "Flatten"), ("fc1", "Linear"), ("relu1", "ReLU"), ("fc2", "Linear")],
    ]

    /// Loads config.json; `name` is the model's name when the file has none (a Hugging Face checkpoint is named
    /// after its directory).
    public static func load(path: String, name: String? = nil) throws(ParityError) -> ModelConfig {
        let file = try MappedFile(path: path)
        let json: JSONValue
        do {
            json = try JSONParser.parse(Array(file.data))
        } catch {
            throw .malformed(file: path, at: "offset \(error.offset)", reason: error.reason)
        }
        return try ModelConfig(json: json, path: path, name: name)
    }

    public init(json: JSONValue, path: String, name defaultName: String? = nil) throws(ParityError) {
        if let modelType = json["model_type"]?.stringValue, json["layers"] == nil {
            graph = try ArchitectureRegistry.graph(config: json, path: path)
            self.modelType = modelType
            llama = modelType == "llama" ? try LlamaArchitecture(config: json, path: path) : nil
            name = json["name"]?.stringValue ?? defaultName ?? modelType
            architecture = modelType
            classes = []
            input = InputSpec(name: "input_ids", shape: [], layout: "BT", preprocessing: "token ids from the checkpoint's tokenizer")
            layers = []
            weightsFile = "model.safetensors"
            referenceFramework = json["transformers_version"]?.stringValue.map { "transformers \($0) (PyTorch)" } ?? "transformers (PyTorch)"
            testAccuracy = nil
            return
        }
        modelType = nil
        llama = nil
        func fail(_ key: String, _ reason: String) -> ParityError { .malformed(file: path, at: "key \"\(key)\"", reason: reason) }
        func string(_ v: JSONValue?, _ key: String) throws(ParityError) -> String {
            guard let s = v?.stringValue else { throw fail(key, "expected a string") }
            return s
        }
        func int(_ v: JSONValue?, _ key: String) throws(ParityError) -> Int {
            guard let i = v?.intValue, i >= 0, i <= 1 << 24 else { throw fail(key, "expected a non-negative integer") }
            return i
        }
        func pair(_ v: JSONValue?, _ key: String) throws(ParityError) -> [Int] {
            guard let a = v?.arrayValue, a.count == 2 else { throw fail(key, "expected [h, w]") }
            return [try int(a[0], key), try int(a[1], key)]
        }
        func bool(_ v: JSONValue?, _ key: String) throws(ParityError) -> Bool {
            guard let b = v?.boolValue else { throw fail(key, "expected true or false") }
            return b
        }
        guard json.objectValue != nil else { throw .malformed(file: path, at: "offset 0", reason: "config is not a JSON object") }
        name = try string(json["name"], "name")
        architecture = try string(json["architecture"], "architecture")
        classes = try (json["classes"]?.arrayValue ?? []).map { v throws(ParityError) in try string(v, "classes") }
        guard let inputJSON = json["input"] else { throw fail("input", "missing") }
        guard let inputShape = inputJSON["shape"]?.arrayValue else { throw fail("input.shape", "expected an array") }
        input = InputSpec(name: try string(inputJSON["name"], "input.name"),
                          shape: try inputShape.map { v throws(ParityError) in try int(v, "input.shape") },
                          layout: try string(inputJSON["layout"], "input.layout"),
                          preprocessing: inputJSON["preprocessing"]?.stringValue ?? "")
        guard let layerList = json["layers"]?.arrayValue, !layerList.isEmpty else { throw fail("layers", "expected a non-empty array") }
        var layers: [LayerSpec] = []
        for (i, layer) in layerList.enumerated() {
            let key = "layers[\(i)]"
            let name = try string(layer["name"], "\(key).name")
            guard !layers.contains(where: { $0.name == name }) else { throw fail("\(key).name", "duplicate layer name \"\(name)\"") }
            let op = try string(layer["op"], "\(key).op")
            // A key the op does not read (dilation, groups, padding_mode, ceil_mode…) would be silently ignored and the
            // model computed as something else, blamed on the conversion: refuse it as bad input instead.
            if let keys = Self.layerKeys[op], let extra = layer.objectValue?.first(where: { !keys.contains($0.key) })?.key {
                throw .unsupported(file: path, reason: "\(key) (\(op) \"\(name)\"): key \"\(extra)\" is not implemented; "
                    + "a \(op) layer has only \(keys.sorted().joined(separator: ", "))")
            }
            switch op {
            case "Conv2d":
                layers.append(.conv2d(name: name, inChannels: try int(layer["in_channels"], "\(key).in_channels"),
                                      outChannels: try int(layer["out_channels"], "\(key).out_channels"),
                                      kernel: try pair(layer["kernel_size"], "\(key).kernel_size"),
                                      stride: try pair(layer["stride"], "\(key).stride"),
                                      padding: try pair(layer["padding"], "\(key).padding"),
                                      bias: try bool(layer["bias"], "\(key).bias")))
            case "ReLU": layers.append(.relu(name: name))
            case "MaxPool2d":
                layers.append(.maxPool2d(name: name, kernel: try pair(layer["kernel_size"], "\(key).kernel_size"),
                                         stride: try pair(layer["stride"], "\(key).stride")))
            case "Flatten": layers.append(.flatten(name: name, startDim: try int(layer["start_dim"], "\(key).start_dim")))
            case "Linear":
                layers.append(.linear(name: name, inFeatures: try int(layer["in_features"], "\(key).in_features"),
                                      outFeatures: try int(layer["out_features"], "\(key).out_features"),
                                      bias: try bool(layer["bias"], "\(key).bias")))
            case let op:
                throw .unsupported(file: path, reason: "\(key): layer op \"\(op)\" is not implemented")
            }
        }
        self.layers = layers
        graph = SequentialArchitecture.graph(architecture: architecture, input: input, layers: layers)
        weightsFile = json["weights"]?.stringValue ?? "model.safetensors"
        referenceFramework = json["reference_framework"]?.stringValue ?? "unknown"
        testAccuracy = json["evaluation"]?["test_accuracy"]?.doubleValue
    }

    /// The keys each sequential layer op reads (tools/parity_models.py's describe_layer writes exactly these).
    static let layerKeys: [String: Set<String>] = [
        "Conv2d": ["name", "op", "in_channels", "out_channels", "kernel_size", "stride", "padding", "bias"],
        "ReLU": ["name", "op"],
        "MaxPool2d": ["name", "op", "kernel_size", "stride"],
        "Flatten": ["name", "op", "start_dim"],
        "Linear": ["name", "op", "in_features", "out_features", "bias"],
    ]

    public func layer(named name: String) -> LayerSpec? { layers.first { $0.name == name } }
}
