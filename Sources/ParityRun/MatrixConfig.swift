import Foundation
import ParityCore
import ParityVerify
import Yams

/// A verification matrix read from config files (YAML or JSON, one schema; docs/matrix.md): per model, the formats and
/// variants Parity converts to and/or files converted by other tools, tolerance overrides by node-name pattern, and
/// quality gates. Unknown keys are errors naming file and line.
public struct MatrixConfig: Sendable {
    public struct Entry: Sendable {
        /// A bundled name, or a reference directory (resolved against the config file's directory).
        public var model: String
        /// Convert cells: planned as `parity verify MODEL --format … --variant …` plans them (nil: none asked for).
        public var formats: [Variant.Format]?
        public var variants: [String]?
        /// Already-converted files (paths resolved against the config file's directory), each with an optional format.
        public var files: [(path: String, format: Variant.Format?)]
        public var tolerances: [ToleranceOverride]
        public var gates: QualityGates
        /// `file:line` of the entry, for errors.
        public var origin: String
    }

    public var entries: [Entry]
    /// The files read, in order.
    public var sources: [String]

    public init(entries: [Entry], sources: [String]) {
        self.entries = entries
        self.sources = sources
    }

    /// Reads and combines config files; each argument is a path or a glob pattern (`configs/*.yaml`), expanded here
    /// (sorted) so a shell that did not expand it gives the same matrix.
    public static func load(_ patterns: [String]) throws(ParityError) -> MatrixConfig {
        var paths: [String] = []
        for pattern in patterns {
            let matches = expandGlob(pattern)
            guard !matches.isEmpty else { throw .notFound(path: pattern, what: "matrix config file (no file matches)") }
            paths += matches.filter { !paths.contains($0) }
        }
        var entries: [Entry] = []
        for path in paths { entries += try parse(path: path) }
        return MatrixConfig(entries: entries, sources: paths)
    }

    static func expandGlob(_ pattern: String) -> [String] {
        guard pattern.contains(where: { "*?[".contains($0) }) else { return FileManager.default.fileExists(atPath: pattern) ? [pattern] : [] }
        var result = glob_t()
        defer { globfree(&result) }
        guard glob(pattern, 0, nil, &result) == 0 else { return [] }
        return (0..<Int(result.gl_pathc)).compactMap { result.gl_pathv[$0].map { String(cString: $0) } }.sorted()
    }

    /// One config file: `.json` through Parity's JSON parser, anything else as YAML (through Yams, with line numbers).
    public static func parse(path: String) throws(ParityError) -> [Entry] {
        let bytes: [UInt8]
        do { bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw .notFound(path: path, what: "matrix config file")
        }
        let root: ConfigNode
        if path.hasSuffix(".json") {
            do { root = ConfigNode(try JSONParser.parse(bytes)) } catch { throw .malformed(file: path, at: error.description, reason: "not valid JSON") }
        } else {
            guard let text = String(bytes: bytes, encoding: .utf8) else { throw .malformed(file: path, at: "byte 0", reason: "not UTF-8 text") }
            let node: Node?
            do { node = try Yams.compose(yaml: text) } catch { throw .malformed(file: path, at: "YAML", reason: "\(error)") }
            guard let node else { throw .malformed(file: path, at: "line 1", reason: "empty config: give `models:`") }
            root = ConfigNode(node)
        }
        let directory = (path as NSString).deletingLastPathComponent
        let reader = ConfigReader(file: path, directory: directory.isEmpty ? "." : directory)
        return try reader.entries(root)
    }
}

/// Quality gates on a cell's end metrics. Each is measured from the cell's report; a gate that cannot be measured
/// for a cell is an error for that cell (exit 2), never a pass.
public struct QualityGates: Hashable, Sendable {
    /// Fraction of positions (Llama logits) or inputs (a classifier's argmax) whose top-1 differs from the reference's.
    public var maxTop1Drop: Double?
    /// Mean KL(reference ‖ file) over the logits' positions (llama-perplexity's --kl-divergence mean).
    public var maxKL: Double?
    /// The end metric's cosine: a sentence-embedding model's worst reference sentence to PyTorch's embedding; otherwise the output node's cosine to the golden.
    public var minEmbeddingCosine: Double?
    /// The converted file's size in bytes (an MLX directory: all its files), within ± sizeTolerance × target.
    public var sizeTargetBytes: Double?
    public var sizeTolerance: Double?
    /// Throughput relative to the reference engine: measured by `parity bench`, not by a verification cell.
    public var minSpeedRatio: Double?

    public init() {}

    public var isEmpty: Bool { self == QualityGates() }

    /// A stable text of the gates, for the cache key.
    var canonical: String {
        [("max_top1_drop", maxTop1Drop), ("max_kl", maxKL), ("min_embedding_cosine", minEmbeddingCosine), ("size.target_bytes", sizeTargetBytes),
         ("size.tolerance", sizeTolerance), ("min_speed_ratio", minSpeedRatio)].compactMap { k, v in v.map { "\(k)=\($0)" } }.joined(separator: ",")
    }
}

/// A parsed config value with the line it came from (nil for JSON).
indirect enum ConfigNode {
    case scalar(String, line: Int?)
    case list([ConfigNode], line: Int?)
    case map([(key: String, value: ConfigNode, line: Int?)], line: Int?)

    init(_ node: Node) {
        let line = node.mark?.line
        switch node {
        case let .mapping(mapping):
            // YAML merge keys (`<<: *defaults`, `<<: [*a, *b]`): the merged mappings' keys that the mapping does not
            // give itself, earlier merged mappings first (YAML 1.1's merge type), so shared gates can be written once.
            var members: [(key: String, value: ConfigNode, line: Int?)] = []
            var merged: [Node] = []
            for (key, value) in mapping {
                if key.string == "<<" {
                    if case let .sequence(list) = value { merged += list } else { merged.append(value) }
                    continue
                }
                members.append((key: key.string ?? "\(key)", value: ConfigNode(value), line: key.mark?.line))
            }
            for source in merged {
                guard case let .map(inherited, _) = ConfigNode(source) else {
                    // Not a mapping: kept as a key, so the reader reports it (`unknown key "<<"`) with its line.
                    members.append((key: "<<", value: ConfigNode(source), line: source.mark?.line))
                    continue
                }
                for member in inherited where !members.contains(where: { $0.key == member.key }) { members.append(member) }
            }
            self = .map(members, line: line)
        case let .sequence(sequence):
            self = .list(sequence.map(ConfigNode.init), line: line)
        default:
            self = .scalar(node.string ?? "", line: line)
        }
    }

    init(_ json: JSONValue) {
        switch json {
        case let .object(members): self = .map(members.map { (key: $0.key, value: ConfigNode($0.value), line: nil) }, line: nil)
        case let .array(items): self = .list(items.map(ConfigNode.init), line: nil)
        case let .string(s): self = .scalar(s, line: nil)
        case let .number(n): self = .scalar(n, line: nil)
        case let .bool(b): self = .scalar(b ? "true" : "false", line: nil)
        case .null: self = .scalar("", line: nil)
        }
    }

    var line: Int? {
        switch self {
        case let .scalar(_, line), let .list(_, line), let .map(_, line): return line
        }
    }
}

/// Reads the schema from a config tree; every error names `file:line` (or the key path for JSON).
struct ConfigReader {
    let file: String
    let directory: String

    func at(_ line: Int?, _ path: String) -> String { line.map { "\(file):\($0)" } ?? "\(file) (\(path))" }

    func fail(_ line: Int?, _ path: String, _ reason: String) -> ParityError { .usage("\(at(line, path)): \(reason)") }

    func map(_ node: ConfigNode, _ path: String, allowed: [String]) throws(ParityError) -> [String: (ConfigNode, Int?)] {
        guard case let .map(members, line) = node else { throw fail(node.line, path, "\(path) must be a mapping") }
        var out: [String: (ConfigNode, Int?)] = [:]
        for member in members {
            guard allowed.contains(member.key) else {
                throw fail(member.line ?? line, "\(path).\(member.key)", "unknown key \"\(member.key)\" in \(path) (known: \(allowed.joined(separator: ", ")))")
            }
            guard out[member.key] == nil else { throw fail(member.line ?? line, "\(path).\(member.key)", "key \"\(member.key)\" given twice in \(path)") }
            out[member.key] = (member.value, member.line)
        }
        return out
    }

    func string(_ node: ConfigNode, _ path: String) throws(ParityError) -> String {
        guard case let .scalar(s, _) = node, !s.isEmpty else { throw fail(node.line, path, "\(path) must be a non-empty string") }
        return s
    }

    func number(_ node: ConfigNode, _ path: String) throws(ParityError) -> Double {
        guard case let .scalar(s, _) = node, let x = Double(s), x.isFinite else { throw fail(node.line, path, "\(path) must be a finite number") }
        return x
    }

    /// A number inside the range its meaning allows: a value outside it (a percentage for a fraction, a negative
    /// bound) would make a gate that can never fail, or never pass — a typo that silently disables it.
    func number(_ node: ConfigNode, _ path: String, in range: ClosedRange<Double>, _ meaning: String) throws(ParityError) -> Double {
        let x = try number(node, path)
        guard range.contains(x) else { throw fail(node.line, path, "\(path) is \(formatNumber(x)): \(meaning)") }
        return x
    }

    func list(_ node: ConfigNode, _ path: String) throws(ParityError) -> [ConfigNode] {
        guard case let .list(items, _) = node else { throw fail(node.line, path, "\(path) must be a list") }
        return items
    }

    func format(_ node: ConfigNode, _ path: String) throws(ParityError) -> Variant.Format {
        let text = try string(node, path)
        guard let f = Variant.Format(rawValue: text) else {
            throw fail(node.line, path, "\(path): unknown format \"\(text)\" (give \(Variant.Format.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return f
    }

    /// A path as written, or resolved against the config file's directory when relative.
    func resolve(_ path: String) -> String { path.hasPrefix("/") ? path : directory + "/" + path }

    func entries(_ root: ConfigNode) throws(ParityError) -> [MatrixConfig.Entry] {
        let top = try map(root, "config", allowed: ["models"])
        guard let (models, line) = top["models"] else { throw fail(root.line, "config", "no `models:` list") }
        let items = try list(models, "models")
        guard !items.isEmpty else { throw fail(line, "models", "`models:` is empty") }
        var out: [MatrixConfig.Entry] = []
        for (i, item) in items.enumerated() {
            let path = "models[\(i)]"
            let keys = try map(item, path, allowed: ["model", "formats", "variants", "files", "tolerances", "gates"])
            guard let (modelNode, _) = keys["model"] else { throw fail(item.line, path, "\(path) has no `model:` (a bundled name or a reference directory)") }
            let modelText = try string(modelNode, "\(path).model")
            // A name without a slash is a bundled model; anything else a reference directory relative to the config.
            let model = modelText.contains("/") ? resolve(modelText) : modelText
            var formats: [Variant.Format]?, variants: [String]?
            if let (node, _) = keys["formats"] {
                var parsed: [Variant.Format] = []
                for (j, f) in try list(node, "\(path).formats").enumerated() { parsed.append(try format(f, "\(path).formats[\(j)]")) }
                formats = parsed
            }
            if let (node, _) = keys["variants"] {
                var parsed: [String] = []
                for (j, v) in try list(node, "\(path).variants").enumerated() { parsed.append(try string(v, "\(path).variants[\(j)]")) }
                variants = parsed
            }
            var files: [(String, Variant.Format?)] = []
            if let (node, _) = keys["files"] {
                for (j, f) in try list(node, "\(path).files").enumerated() {
                    let fpath = "\(path).files[\(j)]"
                    if case .scalar = f { files.append((resolve(try string(f, fpath)), nil)); continue }
                    let fkeys = try map(f, fpath, allowed: ["path", "format"])
                    guard let (p, _) = fkeys["path"] else { throw fail(f.line, fpath, "\(fpath) has no `path:`") }
                    files.append((resolve(try string(p, "\(fpath).path")), try fkeys["format"].map { n, _ throws(ParityError) in try format(n, "\(fpath).format") }))
                }
            }
            var tolerances: [ToleranceOverride] = []
            if let (node, _) = keys["tolerances"] {
                for (j, t) in try list(node, "\(path).tolerances").enumerated() {
                    let tpath = "\(path).tolerances[\(j)]"
                    let tkeys = try map(t, tpath, allowed: ["nodes", "max_rel_l2", "max_abs_over_scale", "reason"])
                    func required(_ key: String) throws(ParityError) -> ConfigNode {
                        guard let (n, _) = tkeys[key] else { throw fail(t.line, tpath, "\(tpath) has no `\(key):`") }
                        return n
                    }
                    // Every tolerance carries its reason, as the built-in ones do.
                    tolerances.append(ToleranceOverride(pattern: try string(try required("nodes"), "\(tpath).nodes"),
                                                        maxRelL2: try number(try required("max_rel_l2"), "\(tpath).max_rel_l2", in: 0...Double.greatestFiniteMagnitude, "a limit is at least 0"),
                                                        maxAbsOverScale: try number(try required("max_abs_over_scale"), "\(tpath).max_abs_over_scale",
                                                                                    in: 0...Double.greatestFiniteMagnitude, "a limit is at least 0"),
                                                        reason: try string(try required("reason"), "\(tpath).reason")))
                }
            }
            var gates = QualityGates()
            if let (node, _) = keys["gates"] {
                let gpath = "\(path).gates"
                let gkeys = try map(node, gpath, allowed: ["max_top1_drop", "max_kl", "min_embedding_cosine", "size", "min_speed_ratio"])
                gates.maxTop1Drop = try gkeys["max_top1_drop"].map { n, _ throws(ParityError) in try number(n, "\(gpath).max_top1_drop", in: 0...1, "a fraction in [0, 1] (0.01 is 1 %)") }
                gates.maxKL = try gkeys["max_kl"].map { n, _ throws(ParityError) in try number(n, "\(gpath).max_kl", in: 0...Double.greatestFiniteMagnitude, "a KL divergence is at least 0") }
                gates.minEmbeddingCosine = try gkeys["min_embedding_cosine"].map { n, _ throws(ParityError) in try number(n, "\(gpath).min_embedding_cosine", in: -1...1, "a cosine is in [-1, 1]") }
                gates.minSpeedRatio = try gkeys["min_speed_ratio"].map { n, _ throws(ParityError) in try number(n, "\(gpath).min_speed_ratio", in: Double.leastNonzeroMagnitude...Double.greatestFiniteMagnitude, "a speed ratio is above 0") }
                if let (sizeNode, _) = gkeys["size"] {
                    let skeys = try map(sizeNode, "\(gpath).size", allowed: ["target_bytes", "tolerance"])
                    guard let (target, _) = skeys["target_bytes"], let (tolerance, _) = skeys["tolerance"] else {
                        throw fail(sizeNode.line, "\(gpath).size", "\(gpath).size needs `target_bytes:` and `tolerance:` (a fraction of the target)")
                    }
                    gates.sizeTargetBytes = try number(target, "\(gpath).size.target_bytes", in: 1...Double.greatestFiniteMagnitude, "a size is at least 1 byte")
                    gates.sizeTolerance = try number(tolerance, "\(gpath).size.tolerance", in: 0...1, "a fraction of the target in [0, 1] (0.05 is ± 5 %)")
                }
            }
            if formats == nil && variants == nil && files.isEmpty {
                throw fail(item.line, path, "\(path) (\(modelText)): nothing to verify — give `formats:`/`variants:` to convert, or `files:` to check")
            }
            out.append(MatrixConfig.Entry(model: model, formats: formats, variants: variants, files: files, tolerances: tolerances,
                                          gates: gates, origin: at(item.line, path)))
        }
        return out
    }
}
