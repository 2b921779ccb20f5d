import ParityCore
import ParityModels

/// How a runtime's loader treats a file whose set of parameters differs from what the model creates. Every
/// engine checks its file against one of these rules, so that Parity refuses what the runtime refuses (the file
/// fails verification, and the report names the rule) and warns where the runtime silently ignores something.
///
/// The rules, from the runtimes' own loaders:
/// - MLX `nn.Module.load_weights(weights, strict=True)` (mlx/nn/layers/base.py, what mlx-lm calls): raises
///   "Received N parameters not in model" for extra keys, "Missing N parameters" for absent ones, and
///   "Expected shape … but received shape … for parameter …" for a shape that differs from the module's.
/// - PyTorch `Module.load_state_dict(state_dict, strict=True)`: "Unexpected key(s) in state_dict", "Missing
///   key(s) in state_dict", and "size mismatch for …".
/// - ggml's `examples/mnist` graphs (mnist-common.cpp `mnist_model_init_from_file`): the graph is picked from
///   `general.architecture`, each tensor it needs is fetched by name with `ggml_get_tensor` and must have the `ne`
///   the model's layers give (a missing tensor is a null dereference, another `ne` an abort); every other tensor
///   is loaded into memory and never used. So extra tensors are ignored by the runtime — Parity warns, naming
///   them. The `mnist-eval` program on top of that graph also hard-codes the bundled widths and, for mnist-cnn,
///   F32 tensors: `GGMLEngine.mnistEvalWarnings` names where a file would make that program abort.
/// - llama.cpp's model loader (llama-model-loader.cpp `done_getting_tensors`) refuses a file whose tensor count
///   differs from the number of tensors the architecture creates ("wrong number of tensors"), after refusing a
///   missing required tensor or one of another `ne` (`check_tensor_dims`). `GGUFLlamaWeights` applies it to GGUF
///   `llama` files, with llama.cpp's own messages.
public struct StrictLoadingRule: Sendable, Equatable {
    public enum Treatment: Sendable, Equatable {
        /// The runtime refuses to load the file.
        case refuse
        /// The runtime loads the file and never uses it: Parity warns.
        case ignore
    }

    /// The runtime and the call whose rule this is, as printed in reports.
    public let runtime: String
    public let unexpected: Treatment
    public let missing: Treatment
    public let shapeMismatch: Treatment

    public static let mlxStrict = StrictLoadingRule(runtime: "MLX nn.Module.load_weights(strict=True)",
                                                    unexpected: .refuse, missing: .refuse, shapeMismatch: .refuse)
    public static let pytorchStrict = StrictLoadingRule(runtime: "PyTorch load_state_dict(strict=True)",
                                                        unexpected: .refuse, missing: .refuse, shapeMismatch: .refuse)
    public static let ggmlMnist = StrictLoadingRule(runtime: "ggml examples/mnist graph (tensor names and ne, mnist-common.cpp)",
                                                    unexpected: .ignore, missing: .refuse, shapeMismatch: .refuse)
    public static let llamaCpp = StrictLoadingRule(runtime: "llama.cpp model loader (tensor count must match the architecture)",
                                                   unexpected: .refuse, missing: .refuse, shapeMismatch: .refuse)

    /// One parameter the model creates or the file holds. `shape` nil: present, shape not checked here (packed
    /// quantized parameters, whose shapes the engine checks when it runs the layer).
    public struct Parameter: Sendable, Equatable {
        public let name: String
        public let shape: [Int]?
        public init(name: String, shape: [Int]?) { self.name = name; self.shape = shape }
    }

    /// Compares what the file holds with what the model creates, in the runtime's naming and shape convention.
    public func check(file: String, expected: [Parameter], stored: [Parameter], shapeWord: String = "shape") -> StrictLoadingOutcome {
        let storedByName = Dictionary(stored.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let expectedNames = Set(expected.map(\.name))
        let extra = stored.map(\.name).filter { !expectedNames.contains($0) }.sorted()
        let missingNames = expected.map(\.name).filter { storedByName[$0] == nil }
        var wrongShapes: [String] = []
        for p in expected {
            guard let want = p.shape, let got = storedByName[p.name]?.shape, got != want else { continue }
            wrongShapes.append("\(p.name) has \(shapeWord) \(got), the model's is \(want)")
        }
        var refusals: [String] = [], warnings: [String] = []
        func add(_ treatment: Treatment, _ text: String) {
            switch treatment {
            case .refuse: refusals.append("\(runtime) refuses \(file): \(text)")
            case .ignore: warnings.append("\(runtime) ignores part of \(file): \(text)")
            }
        }
        if !extra.isEmpty {
            add(unexpected, "\(extra.count) parameter(s) not in the model: \(extra.joined(separator: ", "))"
                + (unexpected == .ignore ? " (loaded, never used by the graph)" : ""))
        }
        if !missingNames.isEmpty { add(missing, "\(missingNames.count) parameter(s) missing: \(missingNames.joined(separator: ", "))") }
        if !wrongShapes.isEmpty { add(shapeMismatch, wrongShapes.joined(separator: "; ")) }
        return StrictLoadingOutcome(rule: self, refusals: refusals, warnings: warnings)
    }
}

/// What a runtime's loader would do with a file: refuse it (with the reasons), or load it with warnings.
public struct StrictLoadingOutcome: Sendable, Equatable {
    public let rule: StrictLoadingRule
    public let refusals: [String]
    public let warnings: [String]
    public var refused: Bool { !refusals.isEmpty }
    public static func accepted(by rule: StrictLoadingRule) -> StrictLoadingOutcome { StrictLoadingOutcome(rule: rule, refusals: [], warnings: []) }
    /// The same outcome with more warnings.
    public func warning(_ more: [String]) -> StrictLoadingOutcome { StrictLoadingOutcome(rule: rule, refusals: refusals, warnings: warnings + more) }
}

/// An engine (of any graph: image layers or a transformer) that knows how its runtime's loader treats the file it was opened on.
public protocol StrictLoadingEngine: GraphEngine {
    var loading: StrictLoadingOutcome { get }
}

/// A file declares (or its tensors show) an architecture other than the model's: the wrong file for this model,
/// which is bad input (exit 2), not a conversion to diagnose layer by layer.
public enum ArchitectureCheck {
    public static func refuse(file: String, declared: String, by source: String, model: String, modelArchitecture: String) -> ParityError {
        .mismatch(file: file, reason: "\(source) is '\(declared)', but model '\(model)' is '\(modelArchitecture)': this file is for another "
            + "architecture (check that the file and the model directory belong together)")
    }

    /// No parameter the model needs is in the file, but the file has tensors: it holds another model. (A file
    /// that shares some names but lacks others is a conversion that lost parameters: the loading rule's business.)
    public static func checkTensorSet(file: String, expected: [String], stored: [String], model: String, modelArchitecture: String) throws(ParityError) {
        guard !stored.isEmpty, !expected.isEmpty, Set(expected).isDisjoint(with: stored) else { return }
        func list(_ names: [String]) -> String { names.prefix(6).joined(separator: ", ") + (names.count > 6 ? ", …" : "") }
        if let prefix = commonPrefix(expected: expected, stored: stored) {
            throw .mismatch(file: file, reason: "tensor names carry the prefix '\(prefix)': the file has \(list(expected.map { prefix + $0 })) where "
                + "model '\(model)' ('\(modelArchitecture)') needs \(list(expected)); the runtime looks tensors up by exact name (write them without the prefix)")
        }
        throw .mismatch(file: file, reason: "shares no tensor with model '\(model)' ('\(modelArchitecture)' needs \(list(expected)); the file has "
            + "\(list(stored.sorted()))): this file is for another architecture (check that the file and the model directory belong together)")
    }

    /// The prefix (e.g. `model.`) that every expected name carries in the file, if there is one.
    static func commonPrefix(expected: [String], stored: [String]) -> String? {
        let storedSet = Set(stored)
        let candidates = stored.filter { $0.hasSuffix(expected[0]) && $0.count > expected[0].count }.map { String($0.dropLast(expected[0].count)) }
        return candidates.sorted().first { prefix in expected.allSatisfy { storedSet.contains(prefix + $0) } }
    }
}
