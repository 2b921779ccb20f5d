import Foundation
import ParityCore
import ParityVerify

/// Cell results on disk, one JSON per cell under the SHA-256 of everything that went into the cell: Parity's code (the
/// SHA-256 of the running executable: any rebuild with a change misses, see `ParityVersion.codeIdentity`), the cell (model, format, variant or file), the runtime settings, every file of the reference directory (weights,
/// config, goldens), the converted file's content (a file cell; a directory: every file), the tolerance overrides and
/// the gates. Changing any of them changes the key, so a stale result is never served; nothing is ever invalidated.
public struct CellCache: Sendable {
    public let directory: String
    /// What identifies Parity's code in every key (default: the running executable's SHA-256).
    public let codeIdentity: String
    /// Remembered file digests (`<directory>/digests`), so a hit does not hash the reference files again.
    let memo: DigestMemo

    public init(directory: String, codeIdentity: String? = nil) {
        self.directory = directory
        memo = DigestMemo(directory: directory + "/digests")
        self.codeIdentity = codeIdentity ?? ParityVersion.codeIdentity(memo: memo)
    }

    /// The cache key of a cell (hex SHA-256).
    public func key(_ cell: MatrixCell, verification: VerificationCell, settings: CellSettings, store: ReferenceStore) throws -> String {
        let model = try store.model(verification.model)
        var parts: [String] = [
            ParityVersion.string, "code \(codeIdentity)",
            "cell \(cell.key)", "family \(verification.family.rawValue)",
            "im2col \(settings.im2col.rawValue)", "llama \(settings.llama)",
        ]
        switch verification.source {
        case let .convert(format, variant): parts.append("convert \(format.rawValue) \(variant)")
        case let .file(path, format):
            parts.append("file format \(format?.rawValue ?? "detected")")
            parts += try contentDigests(path, label: "file")
        }
        parts += try contentDigests(model.directory, label: "reference")
        if !model.goldenPath.hasPrefix(model.directory + "/") { parts += try contentDigests(model.goldenPath, label: "golden") }
        parts += cell.tolerances.map { "tolerance \($0.pattern) rel_l2 \($0.maxRelL2) abs_over_scale \($0.maxAbsOverScale) reason \($0.reason)" }
        parts.append("gates \(cell.gates.canonical)")
        return SHA256.hex(Array(parts.joined(separator: "\n").utf8))
    }

    /// `label relative-path sha256` for a file, or for every regular file under a directory (sorted).
    func contentDigests(_ path: String, label: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw ParityError.notFound(path: path, what: "\(label) file") }
        guard isDirectory.boolValue else { return ["\(label) \(try memo.sha256(path: path))"] }
        guard let names = FileManager.default.enumerator(atPath: path)?.allObjects as? [String] else {
            throw ParityError.io(path: path, reason: "cannot list the \(label) directory")
        }
        var out: [String] = []
        for name in names.sorted() {
            var sub: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path + "/" + name, isDirectory: &sub), !sub.boolValue else { continue }
            // Python's byte-code caches and editor files do not change what a reference is.
            if name.hasPrefix(".") || name.contains("/.") || name.contains("__pycache__") { continue }
            out.append("\(label) \(name) \(try memo.sha256(path: path + "/" + name))")
        }
        return out
    }

    func path(_ key: String) -> String { "\(directory)/\(key.prefix(2))/\(key).json" }

    /// A cached record, or nil (absent, or unreadable: then the cell simply runs again).
    public func read(_ key: String) -> CellRecord? {
        guard let data = FileManager.default.contents(atPath: path(key)),
              let json = try? JSONParser.parse(Array(data)),  // checked: a damaged entry is a miss, the cell reruns
              let record = try? CellRecord(json: json, source: path(key)) else { return nil }  // checked: as above
        return record
    }

    /// Stores a record (best effort: a cache that cannot be written costs time, never a verdict).
    public func write(_ key: String, _ record: CellRecord) {
        let file = path(key)
        do {
            try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try AtomicFileWriter.write(Array((record.json.serialized(pretty: true) + "\n").utf8), to: file)
        } catch {
            FileHandle.standardError.write(Data("warning: cannot write the cell cache \(file): \(error)\n".utf8))
        }
    }
}

/// The quality gates of a cell, measured from its report.
enum Gates {
    static func apply(_ gates: QualityGates, family: VerificationCell.Family, report r: VerificationReport, to record: inout CellRecord) {
        guard !gates.isEmpty else { return }
        let cell = "\(r.model) \(r.format) \(r.variant)"
        var unmeasurable: [String] = []
        func judge(_ name: String, value: Double?, limit: Double, atMost: Bool, why: String) {
            guard let value else { unmeasurable.append("gate \(name): \(why)"); return }
            let passes = atMost ? value <= limit : value >= limit
            record.gates.append("\(name): \(formatNumber(value)) \(atMost ? "≤" : "≥") \(formatNumber(limit)): \(passes ? "pass" : "FAIL")")
            if !passes { record.failures.append("\(cell) (\(r.file)): gate \(name): \(formatNumber(value)) \(atMost ? ">" : "<") limit \(formatNumber(limit))") }
        }
        if let limit = gates.maxTop1Drop {
            let drop: Double? = r.logits.map { 1 - $0.top1 } ?? r.argmax.map { $0.total == 0 ? 1 : 1 - Double($0.agreeing) / Double($0.total) }
            judge("max_top1_drop", value: drop, limit: limit, atMost: true, why: "the report has neither logits nor an argmax to compare with the reference")
        }
        if let limit = gates.maxKL {
            judge("max_kl", value: r.logits?.klMean, limit: limit, atMost: true, why: "no logits in this report (KL is measured for causal LMs)")
        }
        if let limit = gates.minEmbeddingCosine {
            // The end metric the model defines: a sentence-embedding model's is the cosine of each of the golden's
            // reference sentences to PyTorch's embedding (the worst one); other models' is the output node's cosine.
            if family == .bert {
                judge("min_embedding_cosine (worst reference sentence)", value: r.sentenceAgreement?.minimumCosine, limit: limit, atMost: false,
                      why: "the sentence-embedding agreement over the golden's reference sentences was not measured for this file")
            } else {
                judge("min_embedding_cosine (output node \(r.layers.last?.name ?? "-"))", value: r.layers.last?.metrics?.cosine, limit: limit, atMost: false,
                      why: "the output node has no cosine (not compared, or a zero norm)")
            }
        }
        if let target = gates.sizeTargetBytes, let tolerance = gates.sizeTolerance {
            let size = fileSize(r.file)
            let low = target * (1 - tolerance), high = target * (1 + tolerance)
            if let size {
                let passes = size >= low && size <= high
                record.gates.append("size: \(Int(size)) bytes in [\(Int(low)), \(Int(high))]: \(passes ? "pass" : "FAIL")")
                if !passes { record.failures.append("\(cell) (\(r.file)): gate size: \(Int(size)) bytes outside target \(Int(target)) ± \(tolerance * 100) %") }
            } else { unmeasurable.append("gate size: cannot read the size of \(r.file)") }
        }
        if gates.minSpeedRatio != nil {
            unmeasurable.append("gate min_speed_ratio: a verification cell does not time the engines (parity bench does); remove the gate from the matrix")
        }
        guard !unmeasurable.isEmpty else {
            if record.status == .pass && record.failures.contains(where: { $0.contains(": gate ") }) {
                record.status = .fail
                record.summary = record.summary.replacingOccurrences(of: "  PASS  ", with: "  FAIL  ") + "  (quality gate)"
            } else if record.status == .unjudged && record.failures.contains(where: { $0.contains(": gate ") }) {
                record.status = .fail
                record.summary = record.summary.replacingOccurrences(of: "  UNJUDGED  ", with: "  FAIL  ") + "  (quality gate)"
            }
            return
        }
        // A gate that cannot be measured is bad input for this cell: never silently passed.
        record.status = .error
        record.message = "\(cell): " + unmeasurable.joined(separator: "; ")
        record.failures += unmeasurable.map { "\(cell): \($0)" }
        record.summary = "  ERROR  \(r.model)  \(r.format) \(r.variant)  " + unmeasurable.joined(separator: "; ")
    }

    /// Bytes of a file, or of every file in a directory (an MLX model).
    static func fileSize(_ path: String) -> Double? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return nil }
        func regularFileSize(_ file: String) -> Double? {
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: file),  // checked: nil is "cannot measure"
                  attributes[.type] as? FileAttributeType == .typeRegular else { return nil }
            return (attributes[.size] as? NSNumber)?.doubleValue
        }
        if !isDirectory.boolValue { return regularFileSize(path) }
        guard let names = FileManager.default.enumerator(atPath: path)?.allObjects as? [String] else { return nil }
        return names.compactMap { regularFileSize(path + "/" + $0) }.reduce(0, +)
    }
}
