import Foundation
import ParityCore
import ParityKit
import ParityRun
import Testing

/// The cell cache's soundness: Parity's code is in the key, a converted file changed after a cached run runs again,
/// the digest memo survives the in-place-edit trap; two files of one model with one name are two cells; the
/// embedding-cosine gate reads a sentence-embedding model's end metric.
@Suite("matrix: cache keys, digest memo, file keys, embedding gate", .serialized)
struct MatrixCacheTests {
    static func write(_ text: String, _ path: String) throws { try text.write(toFile: path, atomically: true, encoding: .utf8) }

    @Test("another code identity misses the cache; the same one hits")
    func codeIdentity() throws {
        let scratch = try TemporaryDirectory()
        try Self.write("models:\n  - model: fmnist-mlp\n    formats: [safetensors]\n    variants: [f16]\n", scratch.file("m.yaml"))
        func run(_ identity: String) throws -> Bool {
            var options = MatrixOptions()
            options.cacheDirectory = scratch.file("cache")
            options.codeIdentity = identity
            let report = try Parity.verify(config: URL(fileURLWithPath: scratch.file("m.yaml")), options: options)
            #expect(report.cells.count == 1 && report.exitStatus == 0, "\(report.summary)")
            return try #require(report.cells.first).cached
        }
        #expect(try run("code A") == false)
        #expect(try run("code A") == true)
        #expect(try run("code B") == false, "a result computed by other code was served")
        // The default identity is the running executable's SHA-256, stable within a process.
        let a = CellCache(directory: scratch.file("cache")), b = CellCache(directory: scratch.file("cache"))
        #expect(a.codeIdentity == b.codeIdentity && a.codeIdentity.hasPrefix("executable sha256 ") && a.codeIdentity.count == 18 + 64, "\(a.codeIdentity)")
    }

    @Test("a converted file changed in place after a cached run (same size, same second) runs again")
    func changedFileReruns() throws {
        let scratch = try TemporaryDirectory()
        let gguf = scratch.file("user-q8_0.gguf")
        var bytes = try #require(FileManager.default.contents(atPath: Repo.fixtures + "/verdict-gguf/user-mlp-256-q8_0.gguf"))
        try bytes.write(to: URL(fileURLWithPath: gguf))
        try Self.write("models:\n  - model: \(Repo.fixtures)/user-mlp-256\n    files: [user-q8_0.gguf]\n", scratch.file("m.yaml"))
        var options = MatrixOptions()
        options.cacheDirectory = scratch.file("cache")
        options.codeIdentity = "test"
        let config = URL(fileURLWithPath: scratch.file("m.yaml"))
        let first = try Parity.verify(config: config, options: options)
        #expect(first.cells.count == 1 && first.cells.allSatisfy { !$0.cached })
        #expect(try Parity.verify(config: config, options: options).cells.allSatisfy(\.cached))
        // Rewrite the last byte in place: same inode, same size, likely the same mtime tick.
        bytes[bytes.count - 1] ^= 0x5A
        let handle = try #require(FileHandle(forWritingAtPath: gguf))
        try handle.seek(toOffset: UInt64(bytes.count - 1))
        try handle.write(contentsOf: bytes.suffix(1))
        try handle.close()
        let after = try Parity.verify(config: config, options: options)
        #expect(after.cells.count == first.cells.count && after.cells.allSatisfy { !$0.cached }, "a changed file was served from the cache")
    }

    @Test("the digest memo remembers a settled file, and an in-place edit that restores size and mtime is hashed again (ctime)")
    func digestMemo() throws {
        let scratch = try TemporaryDirectory()
        let file = scratch.file("weights.bin")
        try Data(repeating: 1, count: 4096).write(to: URL(fileURLWithPath: file))
        let old = timespec(tv_sec: time(nil) - 3600, tv_nsec: 0)
        func setTimes() { var times = [old, old]; #expect(utimensat(AT_FDCWD, file, &times, 0) == 0) }
        setTimes()
        // 0.2 s instead of 3 s keeps the test short; the ctime (set now by utimensat) must be that old first.
        let memo = DigestMemo(directory: scratch.file("digests"), settleSeconds: 0.2)
        Thread.sleep(forTimeInterval: 0.4)
        let first = try memo.sha256(path: file)
        #expect(first == SHA256.hex(Array(repeating: 1, count: 4096)))
        let remembered = try FileManager.default.contentsOfDirectory(atPath: scratch.file("digests")).filter { !$0.hasPrefix(".") }
        #expect(remembered.count == 1, "a settled file's digest is remembered")
        #expect(try memo.sha256(path: file) == first)
        // Same size, same inode, mtime put back: only the ctime tells, and the memo must not serve the old digest.
        let handle = try #require(FileHandle(forWritingAtPath: file))
        try handle.write(contentsOf: Data([2]))
        try handle.close()
        setTimes()
        var expected = [UInt8](repeating: 1, count: 4096)
        expected[0] = 2
        #expect(try memo.sha256(path: file) == SHA256.hex(expected), "stale digest served after an in-place edit")
        // A file changed just now is not remembered (racily clean): hashed again until it has settled.
        let fresh = scratch.file("fresh.bin")
        try Data(repeating: 3, count: 16).write(to: URL(fileURLWithPath: fresh))
        _ = try memo.sha256(path: fresh)
        let entries = try FileManager.default.contentsOfDirectory(atPath: scratch.file("digests")).filter { !$0.hasPrefix(".") }
        // Only the first, settled identity: the edited file (its ctime is now) and the fresh file were not remembered.
        #expect(entries == remembered, "\(entries.count) entries")
    }

    @Test("two files of one model with the same name are two cells, keyed by the path components that differ")
    func sameFileName() throws {
        let scratch = try TemporaryDirectory()
        for dir in ["a", "b"] {
            try FileManager.default.createDirectory(atPath: scratch.file(dir), withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: Repo.fixtures + "/verdict-gguf/user-mlp-256-q8_0.gguf", toPath: scratch.file("\(dir)/model.gguf"))
        }
        let model = Repo.fixtures + "/user-mlp-256"
        try Self.write("models:\n  - model: \(model)\n    files: [a/model.gguf, b/model.gguf]\n", scratch.file("m.yaml"))
        let cells = try Matrix.plan(try MatrixConfig.load([scratch.file("m.yaml")]), settings: CellSettings(workDirectory: scratch.path), store: ReferenceStore())
        #expect(cells.map(\.key) == ["user-mlp-256 auto file:a/model.gguf", "user-mlp-256 auto file:b/model.gguf"])
        // The same file twice is still one cell asked for twice: an error.
        try Self.write("models:\n  - model: \(model)\n    files: [a/model.gguf, a/model.gguf]\n", scratch.file("twice.yaml"))
        #expect(throws: ParityError.self) {
            try Matrix.plan(try MatrixConfig.load([scratch.file("twice.yaml")]), settings: CellSettings(workDirectory: scratch.path), store: ReferenceStore())
        }
    }

    @Test("min_embedding_cosine on a sentence-embedding model reads the worst reference sentence's cosine")
    func sentenceEmbeddingGate() throws {
        let scratch = try TemporaryDirectory()
        try Self.write("models:\n  - model: minilm-l6\n    formats: [safetensors]\n    variants: [f32]\n    gates: {min_embedding_cosine: 0.999}\n", scratch.file("m.yaml"))
        var options = MatrixOptions()
        options.cacheDirectory = nil
        let report = try Parity.verify(config: URL(fileURLWithPath: scratch.file("m.yaml")), options: options)
        let cell = try #require(report.cells.first)
        // Measured (not an unmeasurable error) from the reference sentences, and within 0.999 for the f32 file.
        #expect(cell.status == .pass, "\(cell.summary) \(cell.message ?? "") \(cell.failures)")
        #expect(cell.gates.contains { $0.hasPrefix("min_embedding_cosine (worst reference sentence): ") && $0.hasSuffix("≥ 0.999: pass") }, "\(cell.gates)")
    }

    @Test("a gate value outside what it can mean is a config error naming file, line and range (a percentage for a fraction would never fail)")
    func gateRanges() throws {
        let scratch = try TemporaryDirectory()
        for (gate, expected) in try nonEmpty([("max_top1_drop: 5", "a fraction in [0, 1]"), ("min_embedding_cosine: 1.5", "a cosine is in [-1, 1]"),
                                              ("max_kl: -0.1", "at least 0"), ("size: {target_bytes: 1000, tolerance: 5}", "a fraction of the target")], "gate cases") {
            try Self.write("models:\n  - model: fmnist-mlp\n    formats: [safetensors]\n    gates: {\(gate)}\n", scratch.file("g.yaml"))
            do {
                _ = try MatrixConfig.load([scratch.file("g.yaml")])
                Issue.record("accepted gates {\(gate)}")
            } catch {
                #expect("\(error)".contains("g.yaml:4:") && "\(error)".contains(expected), "\(error)")
            }
        }
    }

    @Test("report merge refuses shards of two configs with as many cells and shards (the matrix identity differs)")
    func mergeDifferentConfigs() throws {
        func record(_ key: String) -> CellRecord {
            CellRecord(key: key, model: "m", format: "safetensors", variant: key, status: .pass, summary: "  PASS  \(key)")
        }
        func shard(_ i: Int, _ key: String, matrixKeys: [String]) throws -> (json: JSONValue, source: String) {
            let report = MatrixReport(cells: [record(key)], shard: try Shard(index: i, count: 2), totalCells: 2, matrix: MatrixReport.identity(keys: matrixKeys))
            return (report.json, "shard-\(i).json")
        }
        let one = ["m a", "m b"], other = ["m a", "m c"]
        let merged = try Matrix.merge([try shard(1, "m a", matrixKeys: one), try shard(2, "m b", matrixKeys: one)])
        #expect(merged.cells.map(\.key) == one && merged.matrix == MatrixReport.identity(keys: one))
        #expect(throws: ParityError.self) { try Matrix.merge([try shard(1, "m a", matrixKeys: one), try shard(2, "m c", matrixKeys: other)]) }
    }

    @Test("YAML anchors and merge keys share gates and tolerances between entries; an entry's own key wins")
    func yamlMergeKeys() throws {
        let scratch = try TemporaryDirectory()
        try Self.write("""
        defaults: &defaults
          formats: [safetensors]
          gates: {max_top1_drop: 0.5}
        models:
          - <<: *defaults
            model: fmnist-mlp
          - <<: *defaults
            model: fmnist-cnn
            variants: [bf16]
            gates: {max_top1_drop: 0.25}
        """, scratch.file("m.yaml"))
        // A top-level key the schema does not know is still an error (here the anchor's holder), named with its line.
        do {
            _ = try MatrixConfig.load([scratch.file("m.yaml")])
            Issue.record("a top-level key outside the schema was accepted")
        } catch {
            #expect("\(error)".contains("m.yaml:1: unknown key \"defaults\""), "\(error)")
        }
        try Self.write("""
        models:
          - &mlp
            model: fmnist-mlp
            formats: [safetensors]
            variants: [f16]
            gates: {max_top1_drop: 0.5}
          - <<: *mlp
            model: fmnist-cnn
            gates: {max_top1_drop: 0.25}
        """, scratch.file("n.yaml"))
        let cells = try Matrix.plan(try MatrixConfig.load([scratch.file("n.yaml")]), settings: CellSettings(workDirectory: scratch.path), store: ReferenceStore())
        #expect(cells.map(\.key) == ["fmnist-cnn safetensors f16", "fmnist-mlp safetensors f16"])
        #expect(cells.map(\.gates.maxTop1Drop) == [0.25, 0.5])
    }
}
