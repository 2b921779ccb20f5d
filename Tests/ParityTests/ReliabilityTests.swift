import Foundation
import ParityCore
import ParityFormats
import ParityModels
import ParityVerify
import Testing

/// Hostile and interrupted input: every parser answers malformed files with a typed error and the CLI with
/// exit 2 and a message; a killed writer leaves the old file intact and nothing else; big files are read
/// through memory maps.
@Suite("reliability", .serialized)
struct ReliabilityTests {
    /// Valid files of every format Parity reads, written fresh (not from fixtures, so they track the writers).
    static func validFiles(in dir: TemporaryDirectory) throws -> [(kind: String, path: String)] {
        let cnn = try Repo.model("fmnist-cnn")
        _ = try GGUFConverter.convert(cnn, typeName: "f32", to: dir.file("m.gguf"))
        _ = try SafetensorsConverter.convert(cnn, dtype: "f16", to: dir.file("m.safetensors"))
        _ = try MLXConverter.convert(cnn, dtype: "f32", quantization: nil, to: dir.file("m.npz"))
        _ = try MLXConverter.convert(cnn, dtype: "f32", quantization: MLXQuantParameters(mode: "nvfp4", groupSize: 16, bits: 4), to: dir.file("mlxdir"))
        try FileManager.default.copyItem(atPath: Repo.golden + "/fmnist-mlp/golden.h5", toPath: dir.file("g.h5"))
        return [("gguf", dir.file("m.gguf")), ("safetensors", dir.file("m.safetensors")), ("npz", dir.file("m.npz")),
                ("mlx config.json", dir.file("mlxdir/config.json")), ("mlx weights", dir.file("mlxdir/model.safetensors")), ("hdf5", dir.file("g.h5"))]
    }

    /// Parses `path` as its format would be read by `verify`/`inspect`.
    static func parse(kind: String, path: String, directory: String) throws {
        switch kind {
        case "gguf": _ = try GGUFFile(path: path)
        case "safetensors", "mlx weights": _ = try SafetensorsFile(path: path)
        case "npz": _ = try NPZ.read(path: path)
        case "mlx config.json": _ = try MLXModelFiles.load(path: directory)
        // libhdf5 in-process here (the fuzz harness's mode): the same reader walk and stream checks as the
        // isolated reader, without starting ~4600 reader processes; the isolation itself is tested by `corpus`
        // (through the CLI) and GoldenIsolationTests.
        default: _ = try GoldenFile(path: path, isolation: .inProcessForFuzzing)
        }
    }

    @Test("truncating any format at every offset gives a typed error in-process, never a crash")
    func truncationEverywhere() throws {
        let dir = try TemporaryDirectory()
        for (kind, path) in try Self.validFiles(in: dir) {
            let bytes = try readBytes(path)
            let scratch = try TemporaryDirectory()
            // config.json sits in an MLX directory: corrupt it in a copy of that directory.
            let isConfig = kind == "mlx config.json"
            let target = isConfig ? scratch.file("dir/config.json") : scratch.file("f")
            if isConfig { try FileManager.default.copyItem(atPath: dir.file("mlxdir"), toPath: scratch.file("dir")) }
            // Every offset for small headers; a stride through large data sections (all of them would be slow, and
            // each truncation of the data is the same check).
            let offsets = Array(0..<min(bytes.count, 4096)) + Array(stride(from: 4096, to: bytes.count, by: max(1, bytes.count / 512)))
            var failures = 0, skipped = 0
            let started = Date()
            for length in offsets {
                // Cutting only trailing whitespace off JSON leaves a valid file.
                if kind == "mlx config.json", bytes[length...].allSatisfy({ [0x20, 0x0A, 0x0D, 0x09].contains($0) }) { skipped += 1; continue }
                try writeBytes(Array(bytes[0..<length]), to: target)
                do {
                    try Self.parse(kind: kind, path: target, directory: scratch.file("dir"))
                    Issue.record("\(kind) truncated to \(length) of \(bytes.count) bytes was accepted")
                } catch is ParityError {
                    failures += 1
                }
            }
            #expect(failures + skipped == offsets.count, "\(kind)")
            print("truncation \(kind): \(offsets.count) files in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        }
    }

    /// The malformed corpus run through the real binary: each file exits 2 within seconds, with a message
    /// naming it. Built from truncations and targeted corruptions of every format.
    @Test("a malformed corpus of every format: exit 2 and a message for each, no crash, no hang")
    func corpus() throws {
        let dir = try TemporaryDirectory()
        let corpus = try TemporaryDirectory()
        var files: [(String, String)] = []  // (path to pass to the CLI, path the message must name)
        for (kind, path) in try Self.validFiles(in: dir) {
            let bytes = try readBytes(path)
            var variants: [[UInt8]] = []
            for i in 0..<60 { variants.append(Array(bytes[0..<(bytes.count * i / 60)])) }
            if kind == "gguf" {
                for (offset, value) in [(4, UInt8(9)), (8, 0xFF), (15, 0x7F), (16, 0xFF), (23, 0x10), (24, 0xFF), (31, 0x01)] {
                    var b = bytes; b[offset] = value; variants.append(b)
                }
            }
            if kind == "safetensors" || kind == "mlx weights" {
                for offset in [0, 3, 7] { var b = bytes; b[offset] = 0xFF; variants.append(b) }
                var b = bytes; b[8] = UInt8(ascii: "["); variants.append(b)
                variants.append(bytes + [0])
            }
            if kind == "mlx config.json" {
                variants.append(Array(#"{"quantization": {"group_size": "x"}}"#.utf8))
                variants.append(Array(#"{"quantization": {"group_size": 16, "bits": 4, "mode": "nvfp4"}, "quantization": 1}"#.utf8))
                variants.append([0xFF, 0xFE])
            }
            for (i, v) in variants.enumerated() {
                if kind == "mlx config.json" {
                    let d = corpus.file("dir-\(files.count)")
                    try FileManager.default.copyItem(atPath: dir.file("mlxdir"), toPath: d)
                    try writeBytes(v, to: d + "/config.json")
                    files.append((d, d + "/config.json"))
                } else {
                    let f = corpus.file("\(kind.replacingOccurrences(of: " ", with: "-"))-\(i)")
                    try writeBytes(v, to: f)
                    files.append((f, f))
                }
            }
        }
        #expect(files.count >= 300)
        for (argument, named) in files {
            let start = Date()
            let result = try runParity(["inspect", argument], timeout: 10)
            #expect(result.status == 2, "\(argument): exit \(result.status) \(result.stderr)")
            #expect(result.stderr.contains(named) || result.stderr.contains(argument), "\(argument): \(result.stderr)")
            #expect(Date().timeIntervalSince(start) < 10)
        }
    }

    @Test("an HDF5 file on which libhdf5 itself loops forever (found by fuzzing) exits 2 with a message, not a hang")
    func hdf5LibraryHang() throws {
        let path = Repo.fixtures + "/malformed/libhdf5-loops.h5"
        let result = try runParity(["inspect", path], environment: ["PARITY_HDF5_TIMEOUT": "2"], timeout: 30)
        #expect(result.status == 2)
        #expect(result.stderr.contains("\(path): malformed at HDF5 reader process: the HDF5 library did not finish reading it within 2 s"))
    }

    @Test("an HDF5 file on which libhdf5 itself crashes (found by fuzzing) exits 2 with a message, not a signal")
    func hdf5LibraryCrash() throws {
        let path = Repo.fixtures + "/malformed/libhdf5-segfaults.h5"
        let result = try runParity(["inspect", path], timeout: 30)
        #expect(result.status == 2)
        #expect(result.stderr.contains("\(path): malformed at HDF5 reader process: the HDF5 library crashed reading it"))
    }

    @Test("a killed conversion leaves the previous file intact and no debris")
    func killedConversion() throws {
        let dir = try TemporaryDirectory()
        let out = dir.file("out.gguf")
        #expect(try runParity(["convert", "fmnist-mlp", "--to", "gguf", "--type", "f32", "-o", out]).status == 0)
        let old = try readBytes(out)
        let scratch = try TemporaryDirectory()
        #expect(try runParity(["convert", "fmnist-mlp", "--to", "gguf", "--type", "f16", "-o", scratch.file("new.gguf")]).status == 0)
        let new = try readBytes(scratch.file("new.gguf"))
        var outcomes: [String: Int] = [:]
        for attempt in 0..<30 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Repo.parityExecutable)
            process.arguments = ["convert", "fmnist-mlp", "--to", "gguf", "--type", "f16", "-o", out]
            process.environment = ProcessInfo.processInfo.environment.merging(["PARITY_GOLDEN_DIR": Repo.golden]) { $1 }
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            usleep(UInt32(attempt * 4_000))  // 0 to 116 ms: from before the write to after it
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let now = try readBytes(out)
            #expect(now == old || now == new, "attempt \(attempt): a half-written output")
            outcomes[now == old ? "old" : "new", default: 0] += 1
            // The only debris a kill may leave: the killed writer's complete, hidden temporary, when SIGKILL lands
            // between `linkat` and `rename` (two adjacent syscalls; AtomicFileWriter's comment). Anything else —
            // another name, another pid, a partial file — is a defect.
            let killedTemporary = ".out.gguf.parity-tmp-\(process.processIdentifier)-"
            for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where name != "out.gguf" {
                #expect(name.hasPrefix(killedTemporary), "attempt \(attempt): debris \(name)")
                #expect(try readBytes(dir.file(name)) == new, "attempt \(attempt): \(name) is not the complete new file")
                outcomes["named temporary", default: 0] += 1
            }
            if now == new { try writeBytes(old, to: out) }
        }
        #expect(outcomes["old", default: 0] > 0, "some kills landed before the rename")
        // The next write removes a dead writer's temporary: nothing but the output remains.
        #expect(try runParity(["convert", "fmnist-mlp", "--to", "gguf", "--type", "f16", "-o", out]).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.gguf"], "debris after the next write")
    }

    @Test("a dead writer's hidden temporary is removed by the next write to the same path; a live writer's is not")
    func abandonedTemporaryRemoved() throws {
        let dir = try TemporaryDirectory()
        let out = dir.file("out.gguf")
        // A pid that cannot be alive (above Linux's pid_max limit of 2^22) and this process's own pid (alive).
        let dead = dir.file(".out.gguf.parity-tmp-\(1 << 23)-1")
        let live = dir.file(".out.gguf.parity-tmp-\(getpid())-2")
        try writeBytes([1, 2, 3], to: dead)
        try writeBytes([4, 5, 6], to: live)
        #expect(try runParity(["convert", "fmnist-mlp", "--to", "gguf", "--type", "f16", "-o", out]).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == [".out.gguf.parity-tmp-\(getpid())-2", "out.gguf"])
    }

    @Test("a GGUF much larger than the model is inspected and verified through a memory map (bounded RSS)")
    func largeFile() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("big.gguf")
        // 512 MiB by default keeps the suite fast; PARITY_LARGE_GGUF_MIB=2048 runs the ~2 GB measurement.
        let mib = Int(ProcessInfo.processInfo.environment["PARITY_LARGE_GGUF_MIB"] ?? "") ?? 512
        let size = try LargeGGUF.write(to: path, padMiB: mib)
        let inspect = try runParity(["inspect", path], environment: ["PARITY_PEAK_RSS": "1"], timeout: 60)
        #expect(inspect.status == 0)
        #expect(inspect.peakRSSKiB > 0 && inspect.peakRSSKiB < 100 * 1024, "inspect peak RSS \(inspect.peakRSSKiB) KiB for a \(size >> 20) MiB file")
        let verify = try runParity(["verify", "fmnist-mlp", "--file", path], environment: ["PARITY_PEAK_RSS": "1"], timeout: 120)
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        #expect(verify.peakRSSKiB > 0 && verify.peakRSSKiB < 150 * 1024, "verify peak RSS \(verify.peakRSSKiB) KiB for a \(size >> 20) MiB file")
        print("large GGUF: \(size) bytes; peak RSS inspect \(inspect.peakRSSKiB) KiB, verify \(verify.peakRSSKiB) KiB")
    }
}

/// A valid mnist-fc GGUF (ggml's layout, written by Parity's converter) with extra F32 tensors appended until
/// the file is large: the runtime reads only the four tensors it needs. Streamed to disk, never held in memory.
enum LargeGGUF {
    static func write(to path: String, padMiB: Int) throws -> Int {
        let scratch = try TemporaryDirectory()
        _ = try GGUFConverter.convert(try Repo.model("fmnist-mlp"), typeName: "f32", to: scratch.file("m.gguf"))
        let model = try GGUFFile(path: scratch.file("m.gguf"))
        let chunkElements = 16 << 20  // 64 MiB of F32 per padding tensor
        let padTensors = max(1, padMiB / 64)
        var header = try GGUFWriter(architecture: "mnist-fc")
        for (key, value) in model.metadata where key != "general.architecture" { try header.set(key, value) }
        // Build the header with placeholder data to get the exact layout, then stream the data.
        var infos: [(name: String, type: GGMLType, ne: [Int], bytes: Int)] = model.tensors.map { ($0.name, $0.type, $0.ne, $0.byteCount) }
        for i in 0..<padTensors { infos.append(("pad.\(i)", .f32, [chunkElements], chunkElements * 4)) }
        let writer = try AtomicFileWriter(destination: path)
        let head = GGUFWriter.header(metadata: header.metadata, tensors: infos, alignment: 32)
        try writer.write(head)
        var total = head.count
        for t in model.tensors {
            var bytes = try model.rawBytes(t)
            while bytes.count % 32 != 0 { bytes.append(0) }
            try writer.write(bytes)
            total += bytes.count
        }
        let chunk = [UInt8](repeating: 0, count: chunkElements * 4)
        for _ in 0..<padTensors { try writer.write(chunk); total += chunk.count }
        try writer.commit()
        return total
    }
}
