import Foundation
import ParityCore
import ParityModels
import ParityVerify

/// Parity's version and code identity as they enter every cache key.
public enum ParityVersion {
    /// The release and the cache's format (shown in reports; part of the key).
    public static let string = "parity 0.14.0 (matrix cache format 2)"

    /// The SHA-256 of the running executable (`/proc/self/exe`: the `parity` binary, or the test binary Parity is
    /// linked into): any change to Parity's code — or to anything else linked into that binary — changes it, so a
    /// result computed by other code is never served, with no version to remember to bump. The price: every rebuild
    /// that changes the binary starts with a cold cache. Hashed once per process (and remembered in the cache's digest
    /// memo across runs). An executable that cannot be read gets a fresh random identity: every cell misses.
    static func codeIdentity(memo: DigestMemo) -> String {
        identityLock.withLock {
            if let known = identity { return known }
            let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))  // checked: nil falls back below
                ?? Bundle.main.executablePath ?? CommandLine.arguments[0]
            let computed = (try? memo.sha256(path: executable)).map { "executable sha256 \($0)" }  // checked: unreadable → random, all miss
                ?? "unidentified executable \(UUID().uuidString)"
            identity = computed
            return computed
        }
    }
    nonisolated(unsafe) private static var identity: String?
    private static let identityLock = NSLock()
}

/// One cell of a matrix: what `CellRunner` runs (or what planning decided), with the config's overrides and gates.
public struct MatrixCell: Sendable {
    public var key: String
    public var planned: CellRunner.Planned
    public var tolerances: [ToleranceOverride]
    public var gates: QualityGates
    /// Where the cell was asked for (`file:line`).
    public var origin: String
}

/// `--shard i/n` (1-based): the cells whose position in key order is i-1 modulo n.
public struct Shard: Equatable, Sendable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    public init(index: Int, count: Int) throws(ParityError) {
        guard count >= 1, (1...count).contains(index) else { throw .usage("--shard \(index)/\(count): give i/n with 1 ≤ i ≤ n") }
        self.index = index
        self.count = count
    }

    public init(parsing text: String) throws(ParityError) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else { throw .usage("--shard \"\(text)\": give i/n, e.g. 1/4") }
        try self.init(index: i, count: n)
    }

    public var description: String { "\(index)/\(count)" }
}

/// How a matrix runs.
public struct MatrixOptions: Sendable {
    /// Cells run at once (default: the machine's cores).
    public var jobs: Int = ProcessInfo.processInfo.activeProcessorCount
    /// Where cell results are cached (nil: no cache).
    public var cacheDirectory: String? = ".parity-cache"
    /// Run every cell even if cached (the fresh results are still written to the cache).
    public var ignoreCache = false
    public var shard: Shard?
    public var im2col: GGMLIm2colRuleChoice = .kernel
    public var llama: LlamaRuntimeSettings = .llamaCppCLIDefaults
    /// Keep converted files here (nil: a temporary directory, removed afterwards).
    public var workDirectory: String?
    /// Called with a progress line (`[3/12] running tiny-llama gguf Q4_K_M`); the CLI writes it to stderr.
    public var progress: (@Sendable (String) -> Void)?
    /// What identifies Parity's code in cache keys (nil: the running executable's SHA-256; tests set it).
    public var codeIdentity: String?

    public init() {}
}

/// The GGUF im2col rule by name, so ParityKit's users need not import ParityEngine.
public enum GGMLIm2colRuleChoice: String, Sendable { case kernel, f16 }

/// A matrix's results: every cell (in key order), the verdict and the exit status.
public struct MatrixReport: Sendable {
    public var cells: [CellRecord]
    /// The slice this run covered (nil: the whole matrix, or shards merged).
    public var shard: Shard?
    /// The cells of the whole matrix, before sharding (a merge checks the shards add up to it).
    public var totalCells: Int
    /// The whole matrix's identity: SHA-256 of its cell keys in order (a merge refuses shards of different matrices).
    public var matrix: String?

    public init(cells: [CellRecord], shard: Shard?, totalCells: Int, matrix: String? = nil) {
        self.cells = cells
        self.shard = shard
        self.totalCells = totalCells
        self.matrix = matrix
    }

    /// The identity of a matrix with these cell keys.
    public static func identity(keys: [String]) -> String { SHA256.hex(Array(keys.sorted().joined(separator: "\n").utf8)) }

    /// error if any cell had bad input; else fail if any failed; else unjudged if any is; else pass (skipped cells
    /// do not count; a matrix where nothing ran is an error).
    public var verdict: CellRecord.Status {
        let ran = cells.filter { $0.status != .skipped }
        if ran.isEmpty { return shard == nil ? .error : .pass }
        for status in [CellRecord.Status.error, .fail, .unjudged] where ran.contains(where: { $0.status == status }) { return status }
        return .pass
    }

    /// `parity verify`'s exit codes: 0 pass, 1 fail, 2 bad input, 3 unjudged.
    public var exitStatus: Int32 {
        switch verdict {
        case .pass, .skipped: return 0
        case .fail: return 1
        case .error: return 2
        case .unjudged: return 3
        }
    }

    public var passed: Bool { verdict == .pass }

    /// Every failure of every cell, one readable line each (node or tensor, metric, value, limit, where).
    public var failures: [String] { cells.flatMap(\.failures) }

    /// Schema parity-matrix version 1 (docs/matrix.md).
    public var json: JSONValue {
        .object([
            ("schema", .string("parity-matrix")),
            ("schema_version", .number(1)),
            ("parity_version", .string(ParityVersion.string)),
            ("verdict", .string(verdict.rawValue)),
            ("exit_status", .number(Int(exitStatus))),
            ("shard", shard.map { .object([("index", .number($0.index)), ("count", .number($0.count))]) } ?? .null),
            ("total_cells", .number(totalCells)),
            ("matrix", matrix.map { .string($0) } ?? .null),
            ("cells", .array(cells.map(\.json))),
        ])
    }

    /// The summary `parity verify --config` prints.
    public var summary: String {
        var lines = ["summary" + (shard.map { " (shard \($0) of \(totalCells) cells)" } ?? "")]
        for cell in cells {
            lines.append(cell.summary + (cell.cached ? "  (cached)" : ""))
            lines += cell.gates.map { "      gate " + $0 }
        }
        return lines.joined(separator: "\n")
    }
}

public enum Matrix {
    /// The matrix's cells in key order (duplicates are an error naming both places; a tolerance pattern that matches no
    /// node of its model is an error naming pattern and model).
    public static func plan(_ config: MatrixConfig, settings: CellSettings, store: ReferenceStore) throws -> [MatrixCell] {
        var drafts: [(key: String, file: String?, cell: MatrixCell)] = []
        var origins: [String: String] = [:]
        for entry in config.entries {
            if !entry.tolerances.isEmpty {
                let (_, golden) = try store.load(entry.model)
                let nodes = golden.activations.map(\.name)
                for t in entry.tolerances where !nodes.contains(where: t.matches) {
                    throw ParityError.usage("\(entry.origin): tolerance pattern \"\(t.pattern)\" matches no node of model \(entry.model) "
                        + "(its nodes: \(nodes.prefix(8).joined(separator: ", "))\(nodes.count > 8 ? ", …" : ""))")
                }
            }
            // Each planned item with the converted file it checks (nil: a convert cell).
            var planned: [(item: CellRunner.Planned, file: String?)] = []
            if entry.formats != nil || entry.variants != nil {
                planned += try CellRunner.plan(models: [entry.model], formats: entry.formats ?? [], variants: entry.variants ?? [], file: nil,
                                               settings: settings, store: store, readGoldens: false).map { ($0, nil) }
            }
            for file in entry.files {
                planned += try CellRunner.plan(models: [entry.model], formats: file.format.map { [$0] } ?? [], variants: [], file: file.path,
                                               settings: settings, store: store, readGoldens: false).map { ($0, file.path) }
            }
            for (item, file) in planned {
                let key: String
                switch item {
                case let .cell(cell): key = cell.key
                case let .decided(.badInput(e)): key = "\(e.model) \(e.format) \(e.variant)"
                case let .decided(.skipped(line)): key = line
                case let .decided(.report(r)): key = "\(r.model) \(r.format) \(r.variant)"
                }
                drafts.append((key, file, MatrixCell(key: key, planned: item, tolerances: entry.tolerances, gates: entry.gates, origin: entry.origin)))
            }
        }
        // Two different files of one model with the same name would share a key (`file:NAME`): their keys get the
        // trailing path components that tell them apart (relative, so shards on other machines agree).
        for (key, group) in Dictionary(grouping: drafts.indices, by: { drafts[$0].key }) where group.count > 1 {
            let paths = group.compactMap { drafts[$0].file }
            guard paths.count == group.count, Set(paths).count == paths.count else { continue }
            let name = (paths[0] as NSString).lastPathComponent
            guard key.hasSuffix("file:" + name) else { continue }
            let components = paths.map { ($0 as NSString).standardizingPath.split(separator: "/").map(String.init) }
            var depth = 1
            while depth < components.map(\.count).max() ?? 1, Set(components.map { $0.suffix(depth) }).count < components.count { depth += 1 }
            for (i, index) in group.enumerated() {
                let distinct = components[i].suffix(depth).joined(separator: "/")
                drafts[index].cell.key = String(key.dropLast(name.count)) + distinct
            }
        }
        var cells: [MatrixCell] = []
        for draft in drafts {
            let key = draft.cell.key
            if let first = origins[key] { throw ParityError.usage("\(draft.cell.origin): cell \"\(key)\" is also asked for at \(first): list it once") }
            origins[key] = draft.cell.origin
            cells.append(draft.cell)
        }
        return cells.sorted { $0.key < $1.key }
    }

    /// The cells of one shard: every n-th cell in key order (stable across machines: keys hold no absolute path).
    public static func slice(_ cells: [MatrixCell], shard: Shard?) -> [MatrixCell] {
        guard let shard else { return cells }
        return cells.enumerated().filter { $0.offset % shard.count == shard.index - 1 }.map(\.element)
    }

    /// Plans, slices and runs a matrix: cached cells are served from the cache, the others run `jobs` at a time.
    public static func run(_ config: MatrixConfig, options: MatrixOptions) throws -> MatrixReport {
        let workDirectory = try options.workDirectory ?? makeTemporaryDirectory()
        defer { if options.workDirectory == nil { try? FileManager.default.removeItem(atPath: workDirectory) } }
        try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
        let settings = CellSettings(im2col: options.im2col == .f16 ? .f16 : .kernelType, llama: options.llama, workDirectory: workDirectory)
        let temporary = options.workDirectory == nil ? workDirectory : nil
        let store = ReferenceStore()
        let all = try plan(config, settings: settings, store: store)
        let mine = slice(all, shard: options.shard)
        let cache = options.cacheDirectory.map { CellCache(directory: $0, codeIdentity: options.codeIdentity) }
        let progress = ProgressCounter(total: mine.count, report: options.progress)
        let records = ParallelCells.map(count: mine.count, jobs: options.jobs) { i in
            let cell = mine[i]
            progress.started(cell.key)
            defer { progress.finished(cell.key) }
            return runOne(cell, settings: settings, temporary: temporary, store: store, cache: cache, ignoreCache: options.ignoreCache)
        }
        return MatrixReport(cells: records, shard: options.shard, totalCells: all.count, matrix: MatrixReport.identity(keys: all.map(\.key)))
    }

    /// One cell: from the cache when its key is there, else run, judged with overrides and gates, and cached.
    /// `temporary`: the run's temporary work directory, written `<temporary>` in the record.
    static func runOne(_ cell: MatrixCell, settings: CellSettings, temporary: String?, store: ReferenceStore, cache: CellCache?, ignoreCache: Bool) -> CellRecord {
        guard case let .cell(verification) = cell.planned else {
            if case let .decided(outcome) = cell.planned { return CellRecord(key: cell.key, outcome: outcome, seconds: 0) }
            return CellRecord(key: cell.key, model: "-", format: "-", variant: "-", status: .error, summary: "  ERROR  \(cell.key)")
        }
        // A cell whose inputs cannot be read (a missing file) has no key: it runs uncached and the runner names the problem.
        let cacheKey = cache == nil ? nil : try? cache?.key(cell, verification: verification, settings: settings, store: store)  // checked: nil runs the cell
        if let cache, let cacheKey, !ignoreCache, var hit = cache.read(cacheKey) {
            hit.cached = true
            hit.seconds = 0
            return hit
        }
        let started = Date()
        var outcome = CellRunner.run(verification, settings: settings, store: store)
        if case var .report(report) = outcome, !cell.tolerances.isEmpty {
            report.applyToleranceOverrides(cell.tolerances)
            outcome = .report(report)
        }
        var record = CellRecord(key: cell.key, outcome: outcome, seconds: Date().timeIntervalSince(started))
        if case let .report(report) = outcome { Gates.apply(cell.gates, family: verification.family, report: report, to: &record) }
        if let temporary { record = record.replacingPath(temporary, with: "<temporary>") }
        if let cache, let cacheKey { cache.write(cacheKey, record) }
        return record
    }

    /// Joins shard JSONs (`parity report merge`) into one report: every shard of one matrix exactly once, no cell twice.
    public static func merge(_ documents: [(json: JSONValue, source: String)]) throws(ParityError) -> MatrixReport {
        guard !documents.isEmpty else { throw .usage("report merge: give the shards' JSON files") }
        var cells: [CellRecord] = []
        var seenShards: [Int: String] = [:]
        var count: Int?, total: Int?, matrix: String?
        for (json, source) in documents {
            guard json["schema"]?.stringValue == "parity-matrix" else { throw .malformed(file: source, at: "schema", reason: "not a parity-matrix JSON (parity verify --config --json)") }
            guard let shard = json["shard"], let index = shard["index"]?.intValue, let n = shard["count"]?.intValue else {
                throw .malformed(file: source, at: "shard", reason: "not a shard's JSON (no shard index/count): an unsharded run needs no merge")
            }
            guard let cellTotal = json["total_cells"]?.intValue else { throw .malformed(file: source, at: "total_cells", reason: "missing") }
            if let count, count != n { throw .mismatch(file: source, reason: "shard \(index)/\(n) of a matrix cut into \(count) shards elsewhere") }
            if let total, total != cellTotal { throw .mismatch(file: source, reason: "its matrix has \(cellTotal) cells, another shard's \(total): not the same matrix") }
            if let other = seenShards[index] { throw .mismatch(file: source, reason: "shard \(index)/\(n) is also \(other): overlapping shards") }
            // Two configs cut into as many shards with as many cells are still different matrices: their keys say so.
            if let id = json["matrix"]?.stringValue {
                if let matrix, matrix != id { throw .mismatch(file: source, reason: "shard \(index)/\(n) is of another matrix (its cells' keys differ from the other shards'): merge shards of one config") }
                matrix = id
            }
            seenShards[index] = source
            count = n
            total = cellTotal
            guard let items = json["cells"]?.arrayValue else { throw .malformed(file: source, at: "cells", reason: "missing") }
            for item in items {
                let record = try CellRecord(json: item, source: source)
                if cells.contains(where: { $0.key == record.key }) { throw .mismatch(file: source, reason: "cell \"\(record.key)\" is in another shard too") }
                cells.append(record)
            }
        }
        let missing = (1...(count ?? 1)).filter { seenShards[$0] == nil }
        guard missing.isEmpty else { throw .usage("report merge: shard(s) \(missing.map { "\($0)/\(count ?? 0)" }.joined(separator: ", ")) missing") }
        guard cells.count == total ?? 0 else {
            throw .usage("report merge: the shards hold \(cells.count) cells, the matrix \(total ?? 0)")
        }
        if let matrix, MatrixReport.identity(keys: cells.map(\.key)) != matrix {
            throw .usage("report merge: the shards' cells are not the matrix they were cut from (their keys differ)")
        }
        return MatrixReport(cells: cells.sorted { $0.key < $1.key }, shard: nil, totalCells: total ?? cells.count, matrix: matrix)
    }
}

/// Runs independent cells on several threads (`verify --config --jobs`, and `verify --jobs`). Each job takes the next
/// cell not yet taken; the results come back in cell order whatever order they finished in, so what is printed does
/// not depend on the job count. A cell's computation is the same on any thread (OpenBLAS runs on one thread per
/// call, see Kernels.sgemm), so neither are its numbers.
public enum ParallelCells {
    public static func map<T: Sendable>(count: Int, jobs: Int, _ body: @Sendable (Int) -> T) -> [T] {
        let results = ResultSlots<T>(count: count)
        let next = ResultSlots<T>.Counter()
        let workers = max(1, min(jobs, count))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while let i = next.take(below: count) { results.set(i, body(i)) }
        }
        return results.values
    }
}

/// The results of the cells run in parallel, each in its slot (the report keeps key order).
final class ResultSlots<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [T?]
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ value: T) { lock.withLock { slots[i] = value } }
    var values: [T] { lock.withLock { slots.compactMap { $0 } } }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var next = 0
        func take(below limit: Int) -> Int? {
            lock.withLock {
                guard next < limit else { return nil }
                defer { next += 1 }
                return next
            }
        }
    }
}

/// `[done/total] running KEY` lines.
final class ProgressCounter: @unchecked Sendable {
    private let lock = NSLock()
    private let total: Int
    private var done = 0
    private var running: [String] = []
    private let report: (@Sendable (String) -> Void)?

    init(total: Int, report: (@Sendable (String) -> Void)?) {
        self.total = total
        self.report = report
    }

    func started(_ key: String) {
        let line: String = lock.withLock {
            running.append(key)
            return "[\(done)/\(total) done] running \(running.joined(separator: ", "))"
        }
        report?(line)
    }

    func finished(_ key: String) {
        let line: String = lock.withLock {
            running.removeAll { $0 == key }
            done += 1
            return "[\(done)/\(total) done] finished \(key)"
        }
        report?(line)
    }
}

public func makeTemporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "parity-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
        throw ParityError.io(path: path, reason: "cannot create a temporary directory")
    }
    return path
}
