import ParityCore

/// One recorded value of the reference run: a module output (`/activations/<name>`), or in format_version 2 also
/// an attention tensor (`/attention/<module>/q_rope|k_rope|probs`) or an inline one (`/intermediates/<reader>.<arg>`).
public struct GoldenActivation: Sendable {
    /// The report name: the module name for `/activations/<name>`, else the path without its leading slash.
    public let name: String
    /// The HDF5 path of the dataset.
    public let path: String
    public let order: Int
    /// The module class or inline op (`Linear`, `add`, `attention_probs`); "" where the golden records none (q_rope).
    public let op: String
    public let layout: String
    /// format_version 2's `kind`: `module`, `output`, `attention`, `intermediate` (nil in version 1).
    public let kind: String?
    /// HDF5 path of the (first) dataset this value was computed from (`/inputs/images`, `/activations/conv1`, ...).
    public var input: String? { inputs.first }
    /// HDF5 paths of every dataset it was computed from, in argument order (version 1: its single `input`).
    public let inputs: [String]
    /// The argument each input was passed as (version 2's `input_args`; version 1: `input`).
    public let inputArgs: [String]
    /// The value (integers stay integers: `cache_position`).
    public let value: GraphValue
    /// The value as float32 (for metrics).
    public let tensor: Tensor
    /// Another dataset holding the very same tensor (a module returning its child's output), if any.
    public let sameAs: String?
    /// The reference's own rounding noise here: PyTorch float32 against a float64 re-run.
    public let noiseFloorMaxAbs: Double?
    public let noiseFloorRelL2: Double?
}

/// A golden file per the contract in golden/README.md, fully read and validated.
public struct GoldenFile: Sendable {
    public static let formatName = "parity-golden"
    /// The newest format_version read (1: sequential image models; 2: `kind` causal-lm, golden/README.md).
    public static let formatVersion: Int64 = 2

    public let path: String
    public let model: String
    public let referenceFramework: String
    public let weightsSHA256: String
    public let rootAttributes: [(name: String, value: HDF5AttributeValue)]
    /// 1 or 2.
    public let version: Int
    /// format_version 2's `kind` (`causal-lm`); nil in version 1.
    public let kind: String?
    /// The float model inputs, by name (an integer input is only in `inputValues`: ids are never floats).
    public let inputs: [String: Tensor]
    /// Every model input, by name, typed.
    public let inputValues: [String: GraphValue]
    public let labels: [Int64]?
    /// In forward (topological) order.
    public let activations: [GoldenActivation]
    /// Modules whose datasets a golden leaves out to stay small (root attribute `omitted_modules`, a JSON list of
    /// module names such as `encoder.layer.1`): the model ran them, nothing of them is stored or compared.
    public let omittedModules: [String]
    /// `/reference/logits_f64` (float64 re-run, read as float32), if recorded.
    public let referenceLogits: Tensor?

    /// The layers a model declares, in forward order, and the file that declares them (config.json). Given to
    /// the reader, a missing or unknown activation is named by layer before the `order` attributes are judged
    /// (a missing layer otherwise shows only as a gap in the orders).
    public struct DeclaredLayers: Sendable {
        public let names: [String]
        public let source: String
        public init(names: [String], source: String) {
            self.names = names
            self.source = source
        }
    }

    /// The largest `noise_floor_rel_l2` a golden may record. The attribute is ‖float32 − float64‖ / ‖float64‖
    /// of the same model on the same input, i.e. PyTorch's own float32 rounding: float32's unit roundoff is
    /// 6e-8 and the bundled models record ≤ 2.5e-7. A floor above 1e-3 would mean the reference itself is
    /// unreliable at the fourth digit, so it could not judge a conversion, and tolerances stated relative to
    /// it would excuse real conversion errors: such a golden is refused, not believed.
    public static let maximumNoiseFloorRelL2 = 1e-3

    /// Reads and validates a golden. libhdf5 runs in a separate reader process (HDF5Snapshot explains why);
    /// `.inProcessForFuzzing` is for the fuzz harness only.
    public init(path: String, isolation: HDF5Snapshot.Isolation = .separateProcess, declaredLayers: DeclaredLayers? = nil) throws(ParityError) {
        try self.init(snapshot: HDF5Snapshot.read(path, isolation: isolation), declaredLayers: declaredLayers)
    }

    public init(snapshot file: HDF5Snapshot, declaredLayers: DeclaredLayers? = nil) throws(ParityError) {
        let path = file.path
        self.path = path
        func required(_ name: String) throws(ParityError) -> HDF5AttributeValue {
            guard let value = try file.attribute(name) else { throw .malformed(file: path, at: "/@\(name)", reason: "missing root attribute") }
            return value
        }
        guard try required("format").stringValue == GoldenFile.formatName else {
            throw .malformed(file: path, at: "/@format", reason: "not a Parity golden (format must be \"\(GoldenFile.formatName)\")")
        }
        guard let version = try required("format_version").intValue, version == 1 || version == 2 else {
            throw .unsupported(file: path, reason: "golden format_version is not 1 or 2")
        }
        self.version = Int(version)
        if version == 2 {
            guard let kind = try required("kind").stringValue, kind == "causal-lm" || kind == "sentence-embedding" else {
                throw .unsupported(file: path, reason: "format_version 2 golden of kind other than \"causal-lm\" or \"sentence-embedding\"")
            }
            self.kind = kind
        } else {
            kind = nil
        }
        guard let model = try required("model").stringValue, let framework = try required("reference_framework").stringValue,
              let sha = try required("weights_sha256").stringValue else {
            throw .malformed(file: path, at: "/", reason: "model, reference_framework and weights_sha256 must be strings")
        }
        for name in ["generator", "seed", "created"] { _ = try required(name) }
        self.model = model
        referenceFramework = framework
        weightsSHA256 = sha
        if let listed = try file.attribute("omitted_modules")?.stringValue {
            guard let json = try? JSONParser.parse(Array(listed.utf8)), let names = json.arrayValue?.compactMap(\.stringValue),  // checked: malformed is reported next
                  names.count == json.arrayValue?.count else {
                throw .malformed(file: path, at: "/@omitted_modules", reason: "expected a JSON list of module names")
            }
            omittedModules = names
        } else {
            omittedModules = []
        }
        rootAttributes = try file.attributeNames(of: "/").map { name throws(ParityError) in (name, try file.attribute(name)!) }

        guard file.exists("/inputs") else { throw .malformed(file: path, at: "/inputs", reason: "missing group") }
        var inputs: [String: Tensor] = [:]
        var inputValues: [String: GraphValue] = [:]
        var inputOrders: [(name: String, order: Int)] = []
        for name in try file.members(of: "/inputs") {
            let object = "/inputs/" + name
            let value = try GoldenFile.readValue(object, in: file)
            if case let .floats(tensor) = value { inputs[name] = tensor }
            inputValues[name] = value
            if version == 2 {
                guard let order = try file.attribute("order", of: object)?.intValue else {
                    throw .malformed(file: path, at: object + "@order", reason: "missing integer attribute")
                }
                inputOrders.append((name, Int(order)))
            }
        }
        self.inputs = inputs
        self.inputValues = inputValues
        labels = file.exists("/labels") ? try file.readIntegers("/labels").values : nil
        referenceLogits = file.exists("/reference/logits_f64") ? try file.readFloats("/reference/logits_f64") : nil

        guard file.exists("/activations") else { throw .malformed(file: path, at: "/activations", reason: "missing group") }
        var objects = try file.members(of: "/activations").map { "/activations/" + $0 }
        if version == 2 {
            if file.exists("/attention") {
                for module in try file.members(of: "/attention") {
                    // The entropy summaries are statistics of probs, not values of the forward pass (no `order`).
                    objects += try file.members(of: "/attention/" + module).filter { $0 != "entropy" }.map { "/attention/\(module)/\($0)" }
                }
            }
            if file.exists("/intermediates") { objects += try file.members(of: "/intermediates").map { "/intermediates/" + $0 } }
        }
        var activations: [GoldenActivation] = []
        for object in objects {
            guard let order = try file.attribute("order", of: object)?.intValue else {
                throw .malformed(file: path, at: object + "@order", reason: "missing integer attribute")
            }
            guard let layout = try file.attribute("layout", of: object)?.stringValue else {
                throw .malformed(file: path, at: object, reason: "missing string attributes op/layout")
            }
            let op = try file.attribute("op", of: object)?.stringValue
            let recordedInputs: [String], inputArgs: [String], kind: String?
            if version == 2 {
                guard let list = try file.attribute("inputs", of: object)?.stringsValue,
                      let args = try file.attribute("input_args", of: object)?.stringsValue, list.count == args.count else {
                    throw .malformed(file: path, at: object, reason: "needs string-array attributes inputs and input_args of equal length")
                }
                guard let k = try file.attribute("kind", of: object)?.stringValue else {
                    throw .malformed(file: path, at: object + "@kind", reason: "missing string attribute")
                }
                recordedInputs = list
                inputArgs = args
                kind = k
            } else {
                guard op != nil else { throw .malformed(file: path, at: object, reason: "missing string attributes op/layout") }
                let input = try file.attribute("input", of: object)?.stringValue
                recordedInputs = input.map { [$0] } ?? []
                inputArgs = input == nil ? [] : ["input"]
                kind = nil
            }
            let value = try GoldenFile.readValue(object, in: file)
            // The additive causal mask holds float32's lowest value where attention is masked, as PyTorch builds it:
            // it has no float64 twin, so no noise floor.
            let isMask = op == "causal_mask" || op == "extended_attention_mask"
            let maxAbs = try GoldenFile.noiseFloor("noise_floor_max_abs", of: object, in: file, maximum: nil)
            let relL2 = try GoldenFile.noiseFloor("noise_floor_rel_l2", of: object, in: file, maximum: isMask ? nil : GoldenFile.maximumNoiseFloorRelL2)
            if version == 2, case .floats = value, !isMask, maxAbs == nil || relL2 == nil {
                throw .malformed(file: path, at: object, reason: "float dataset without noise_floor_max_abs and noise_floor_rel_l2 (format_version 2 records them for every float value but the causal mask)")
            }
            activations.append(GoldenActivation(
                name: GoldenFile.name(forPath: object), path: object, order: Int(order), op: op ?? "", layout: layout, kind: kind,
                inputs: recordedInputs, inputArgs: inputArgs, value: value, tensor: value.asFloats,
                sameAs: try file.attribute("same_as", of: object)?.stringValue,
                noiseFloorMaxAbs: maxAbs, noiseFloorRelL2: relL2))
        }
        activations.sort { $0.order < $1.order }
        if let declaredLayers {
            try GoldenFile.checkLayerNames(recorded: activations.map(\.name), declared: declaredLayers, file: path)
        }
        // Version 2 numbers the inputs too: orders 0..<n run over inputs and values together.
        let orders = (inputOrders.map { ($0.name, $0.order) } + activations.map { ($0.name, $0.order) }).sorted { $0.1 < $1.1 }
        guard orders.map(\.1) == Array(0..<orders.count) else {
            let found = orders.map { "\($0.0) \($0.1)" }.joined(separator: ", ")
            let absent = Set(0..<orders.count).subtracting(orders.map(\.1)).sorted()
            throw .malformed(file: path, at: "/activations", reason: "order attributes must be 0..<\(orders.count) without gaps or repeats; "
                + "they are \(found)" + (absent.isEmpty ? "" : " (no activation has order \(absent.map(String.init).joined(separator: ", ")))"))
        }
        guard !activations.isEmpty else { throw .malformed(file: path, at: "/activations", reason: "no activations recorded") }
        if version == 2 {
            // `order` is topological: every dataset comes after what it was computed from, and that exists.
            var orderOf: [String: Int] = [:]
            for input in inputOrders { orderOf["/inputs/" + input.name] = input.order }
            for a in activations { orderOf[a.path] = a.order }
            for a in activations {
                for input in a.inputs {
                    guard let before = orderOf[input] else {
                        if GoldenFile.isOmitted(input, modules: omittedModules) { continue }
                        throw .malformed(file: path, at: a.path + "@inputs", reason: "names \(input), which is not a dataset of the forward pass")
                    }
                    guard before < a.order else {
                        throw .malformed(file: path, at: a.path + "@order", reason: "is \(a.order), not after its input \(input) (order \(before)): order must be topological")
                    }
                }
                if let same = a.sameAs {
                    guard let twin = activations.first(where: { $0.path == same }), twin.value == a.value else {
                        throw .malformed(file: path, at: a.path + "@same_as", reason: "names \(same), which does not hold the same values")
                    }
                }
            }
        }
        self.activations = activations
    }

    /// Whether a dataset path belongs to a module the golden omits (`omittedModules`).
    public func isOmitted(_ path: String) -> Bool { GoldenFile.isOmitted(path, modules: omittedModules) }

    static func isOmitted(_ path: String, modules omittedModules: [String]) -> Bool {
        let name = GoldenFile.name(forPath: path)
        let module = name.hasPrefix("attention/") ? String(name.dropFirst("attention/".count))
            : name.hasPrefix("intermediates/") ? String(name.dropFirst("intermediates/".count)) : name
        return omittedModules.contains { module == $0 || module.hasPrefix($0 + ".") || module.hasPrefix($0 + "/") || module.hasPrefix($0 + ":") || module.hasPrefix($0 + "@") }
    }

    /// The report name of a dataset path: the module name for `/activations/<name>`, else the path without its
    /// leading slash (`attention/model.layers.0.self_attn/probs`). (ModelGraph names its nodes the same way.)
    public static func name(forPath path: String) -> String {
        path.hasPrefix("/activations/") ? String(path.dropFirst("/activations/".count)) : String(path.drop { $0 == "/" })
    }

    /// A dataset as a typed value: int32 integers (range-checked) or finite float32 values.
    static func readValue(_ object: String, in file: HDF5Snapshot) throws(ParityError) -> GraphValue {
        guard let dataset = file.datasets[object] else { throw .notFound(path: file.path, what: "dataset \(object)") }
        if case let .integers(values) = dataset.values {
            var data: [Int32] = []
            data.reserveCapacity(values.count)
            for v in values {
                guard let narrow = Int32(exactly: v) else {
                    throw .malformed(file: file.path, at: object, reason: "holds integer \(v), outside int32 (token ids, positions and masks are int32)")
                }
                data.append(narrow)
            }
            return .integers(IntegerTensor(shape: dataset.shape, data: data))
        }
        let tensor = try file.readFloats(object)
        try GoldenFile.checkFinite(tensor, at: object, file: file.path)
        return .floats(tensor)
    }

    /// Every layer the model declares has an activation, and every activation is a declared layer.
    public static func checkLayerNames(recorded: [String], declared: DeclaredLayers, file: String) throws(ParityError) {
        if let missing = declared.names.first(where: { !recorded.contains($0) }) {
            throw .mismatch(file: file, reason: "has no activation for layer \(missing) of \(declared.source) (it declares \(declared.names.joined(separator: ", ")); "
                + "the golden records \(recorded.joined(separator: ", ")))")
        }
        if let unknown = recorded.first(where: { !declared.names.contains($0) }) {
            throw .mismatch(file: file, reason: "records activation \"\(unknown)\", which \(declared.source) does not declare")
        }
    }

    /// A golden value is PyTorch's output: NaN or Inf there is a broken golden, which would fail (or excuse)
    /// any file compared with it. Names the dataset, the count and the first index.
    static func checkFinite(_ tensor: Tensor, at object: String, file: String) throws(ParityError) {
        guard let first = tensor.data.firstIndex(where: { !$0.isFinite }) else { return }  // checked: all values finite
        let nan = tensor.data.lazy.filter(\.isNaN).count
        let infinite = tensor.data.lazy.filter(\.isInfinite).count
        var index: [Int] = [], rest = first
        for extent in tensor.shape.reversed() {
            index.insert(rest % max(extent, 1), at: 0)
            rest /= max(extent, 1)
        }
        throw .malformed(file: file, at: object, reason: "holds \(nan + infinite) non-finite value\(nan + infinite == 1 ? "" : "s") (\(nan) NaN, \(infinite) Inf) "
            + "of \(tensor.count); the first is \(tensor.data[first]) at index \(index): a golden must be finite (regenerate it with tools/regen_goldens.py)")
    }

    /// A noise-floor attribute (optional): a finite float ≥ 0, at most `maximum` when given.
    static func noiseFloor(_ name: String, of object: String, in file: HDF5Snapshot, maximum: Double?) throws(ParityError) -> Double? {
        guard let attribute = try file.attribute(name, of: object) else { return nil }  // checked: optional attribute
        guard let value = attribute.doubleValue else {
            throw .malformed(file: file.path, at: "\(object)@\(name)", reason: "expected a float, found \(attribute)")
        }
        guard value.isFinite, value >= 0 else {
            throw .malformed(file: file.path, at: "\(object)@\(name)", reason: "is \(value); a noise floor is a finite value ≥ 0")
        }
        if let maximum, value > maximum {
            throw .malformed(file: file.path, at: "\(object)@\(name)", reason: "is \(value), above \(maximum): it measures PyTorch float32 against "
                + "float64 of the same model, so anything this large means the golden cannot be trusted (regenerate it with tools/regen_goldens.py)")
        }
        return value
    }

    public func activation(named name: String) -> GoldenActivation? { activations.first { $0.name == name } }

    public func activation(at path: String) -> GoldenActivation? { activations.first { $0.path == path } }

    /// The float dataset at an HDF5 path as the `input(s)` attributes name it (`/inputs/<name>`, `/activations/<name>`, …).
    public func tensor(at path: String) -> Tensor? { value(at: path)?.floats }

    /// The typed dataset at an HDF5 path.
    public func value(at path: String) -> GraphValue? {
        if path.hasPrefix("/inputs/") { return inputValues[String(path.dropFirst("/inputs/".count))] }
        return activation(at: path)?.value
    }
}
