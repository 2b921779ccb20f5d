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

    /// Reads and validates a golden. libhdf5 runs in a separate reader process (HDF5Snapshot explains why);
    /// `.inProcessForFuzzing` is for the fuzz harness only.
    public init(path: String, isolation: HDF5Snapshot.Isolation = .separateProcess) throws(ParityError) {
        try self.init(snapshot: HDF5Snapshot.read(path, isolation: isolation))
    }

    public init(snapshot file: HDF5Snapshot) throws(ParityError) {
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
        for name in try file.members(of: "/inputs") { inputs[name] = try file.readFloats("/inputs/" + name) }
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
            activations.append(GoldenActivation(
                name: name, order: Int(order), op: op, layout: layout,
                input: try file.attribute("input", of: object)?.stringValue,
                tensor: try file.readFloats(object),
                noiseFloorMaxAbs: try file.attribute("noise_floor_max_abs", of: object)?.doubleValue,
                noiseFloorRelL2: try file.attribute("noise_floor_rel_l2", of: object)?.doubleValue))
        }
        activations.sort { $0.order < $1.order }
        guard activations.map(\.order) == Array(0..<activations.count) else {
            throw .malformed(file: path, at: "/activations", reason: "order attributes must be 0..<\(activations.count) without gaps or repeats")
        }
        guard !activations.isEmpty else { throw .malformed(file: path, at: "/activations", reason: "no activations recorded") }
        self.activations = activations
    }

    public func activation(named name: String) -> GoldenActivation? { activations.first { $0.name == name } }

    /// The dataset at an HDF5 path as the `input` attributes name it: `/inputs/<name>` or `/activations/<name>`.
    public func tensor(at path: String) -> Tensor? {
        if path.hasPrefix("/inputs/") { return inputs[String(path.dropFirst("/inputs/".count))] }
        if path.hasPrefix("/activations/") { return activation(named: String(path.dropFirst("/activations/".count)))?.tensor }
        return nil
    }
}
