import ParityCore

/// One recorded module output of the reference run (`/activations/<name>`).
public struct GoldenActivation: Sendable {
    public let name: String
    public let order: Int
    public let op: String
    public let layout: String
    /// HDF5 path of the dataset this module read (`/inputs/images`, `/activations/conv1`, ...).
    public let input: String?
    public let tensor: Tensor
    /// The reference's own rounding noise at this layer: PyTorch float32 against a float64 re-run.
    public let noiseFloorMaxAbs: Double?
    public let noiseFloorRelL2: Double?
}

/// A golden file per the contract in golden/README.md, fully read and validated.
public struct GoldenFile: Sendable {
    public static let formatName = "parity-golden"
    public static let formatVersion: Int64 = 1

    public let path: String
    public let model: String
    public let referenceFramework: String
    public let weightsSHA256: String
    public let rootAttributes: [(name: String, value: HDF5AttributeValue)]
    public let inputs: [String: Tensor]
    public let labels: [Int64]?
    /// In forward order.
    public let activations: [GoldenActivation]

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
        guard let version = try required("format_version").intValue, version == GoldenFile.formatVersion else {
            throw .unsupported(file: path, reason: "golden format_version is not \(GoldenFile.formatVersion)")
        }
        guard let model = try required("model").stringValue, let framework = try required("reference_framework").stringValue,
              let sha = try required("weights_sha256").stringValue else {
            throw .malformed(file: path, at: "/", reason: "model, reference_framework and weights_sha256 must be strings")
        }
        for name in ["generator", "seed", "created"] { _ = try required(name) }
        self.model = model
        referenceFramework = framework
        weightsSHA256 = sha
        rootAttributes = try file.attributeNames(of: "/").map { name throws(ParityError) in (name, try file.attribute(name)!) }

        guard file.exists("/inputs") else { throw .malformed(file: path, at: "/inputs", reason: "missing group") }
        var inputs: [String: Tensor] = [:]
        for name in try file.members(of: "/inputs") {
            let tensor = try file.readFloats("/inputs/" + name)
            try GoldenFile.checkFinite(tensor, at: "/inputs/" + name, file: path)
            inputs[name] = tensor
        }
        self.inputs = inputs
        labels = file.exists("/labels") ? try file.readIntegers("/labels").values : nil

        guard file.exists("/activations") else { throw .malformed(file: path, at: "/activations", reason: "missing group") }
        var activations: [GoldenActivation] = []
        for name in try file.members(of: "/activations") {
            let object = "/activations/" + name
            guard let order = try file.attribute("order", of: object)?.intValue else {
                throw .malformed(file: path, at: object + "@order", reason: "missing integer attribute")
            }
            guard let op = try file.attribute("op", of: object)?.stringValue, let layout = try file.attribute("layout", of: object)?.stringValue else {
                throw .malformed(file: path, at: object, reason: "missing string attributes op/layout")
            }
            let tensor = try file.readFloats(object)
            try GoldenFile.checkFinite(tensor, at: object, file: path)
            activations.append(GoldenActivation(
                name: name, order: Int(order), op: op, layout: layout,
                input: try file.attribute("input", of: object)?.stringValue,
                tensor: tensor,
                noiseFloorMaxAbs: try GoldenFile.noiseFloor("noise_floor_max_abs", of: object, in: file, maximum: nil),
                noiseFloorRelL2: try GoldenFile.noiseFloor("noise_floor_rel_l2", of: object, in: file, maximum: GoldenFile.maximumNoiseFloorRelL2)))
        }
        activations.sort { $0.order < $1.order }
        if let declaredLayers {
            try GoldenFile.checkLayerNames(recorded: activations.map(\.name), declared: declaredLayers, file: path)
        }
        guard activations.map(\.order) == Array(0..<activations.count) else {
            let found = activations.map { "\($0.name) \($0.order)" }.joined(separator: ", ")
            let absent = Set(0..<activations.count).subtracting(activations.map(\.order)).sorted()
            throw .malformed(file: path, at: "/activations", reason: "order attributes must be 0..<\(activations.count) without gaps or repeats; "
                + "they are \(found)" + (absent.isEmpty ? "" : " (no activation has order \(absent.map(String.init).joined(separator: ", ")))"))
        }
        guard !activations.isEmpty else { throw .malformed(file: path, at: "/activations", reason: "no activations recorded") }
        self.activations = activations
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

    /// The dataset at an HDF5 path as the `input` attributes name it: `/inputs/<name>` or `/activations/<name>`.
    public func tensor(at path: String) -> Tensor? {
        if path.hasPrefix("/inputs/") { return inputs[String(path.dropFirst("/inputs/".count))] }
        if path.hasPrefix("/activations/") { return activation(named: String(path.dropFirst("/activations/".count)))?.tensor }
        return nil
    }
}
