import Foundation
import ParityCore
import ParityFormats
import ParityModels

/// One fuzz target per parser Parity exposes to files from anywhere. Each must answer any input with a value or
/// a `ParityError`: a crash, a trap, an overflow or a hang is a bug. Selected by `PARITY_FUZZ_TARGET`.
enum FuzzTarget: String, CaseIterable {
    case gguf, safetensors, npz, json, hdf5, hdf5stream = "hdf5-stream"

    func run(_ data: Data) {
        let file = MappedFile(data: data, name: "fuzz-input")
        switch self {
        case .gguf:
            guard let gguf = try? GGUFFile(file: file) else { return }
            // Decode what is small enough: dequantization must be safe for any bytes the reader accepted.
            for t in gguf.tensors where t.byteCount <= 1 << 16 && t.type.isSupported { _ = try? gguf.values(t) }
        case .safetensors:
            guard let st = try? SafetensorsFile(file: file) else { return }
            for entry in st.entries where entry.dataRange.count <= 1 << 16 { _ = try? st.tensor(entry) }
        case .npz:
            _ = try? NPZ.read(file: file)
        case .json:
            // config.json and index.json go through the strict parser, then the model-config decoder and the
            // MLX quantization entry.
            guard let json = try? JSONParser.parse([UInt8](data)) else { return }
            _ = try? ModelConfig(json: json, path: "fuzz-input")
            _ = try? MLXModelFiles.parseQuantization(json, path: "fuzz-input")
        case .hdf5:
            // HDF5 opens files by name: the input goes through a file in shared memory. libhdf5 runs IN this
            // process here, unlike everywhere else (goldens are read in a separate reader process): the harness
            // exists to fuzz libhdf5, the reader's C walk, the snapshot stream decoder and the golden checks
            // together under the sanitizers.
            let path = "/dev/shm/parity-fuzz-\(getpid()).h5"
            guard FileManager.default.createFile(atPath: path, contents: data) else { return }
            _ = try? GoldenFile(path: path, isolation: .inProcessForFuzzing)
        case .hdf5stream:
            // The parent's side of the isolation: whatever a (compromised) reader process sends must decode to a
            // snapshot or a ParityError.
            _ = try? HDF5Snapshot.decode([UInt8](data), path: "fuzz-input")
        }
    }

    static var selected: FuzzTarget {
        guard let name = ProcessInfo.processInfo.environment["PARITY_FUZZ_TARGET"], let t = FuzzTarget(rawValue: name) else {
            FileHandle.standardError.write(Data("set PARITY_FUZZ_TARGET to one of: \(allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
            exit(2)
        }
        return t
    }
}

nonisolated(unsafe) var fuzzTarget: FuzzTarget?

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> Int32 {
    let target = fuzzTarget ?? FuzzTarget.selected
    fuzzTarget = target
    target.run(Data(bytes: bytes, count: count))
    return 0
}

#if PARITY_LIBFUZZER
/// SwiftPM links an executable's entry point as `<module>_main` (for testability) and aliases `main` to it, so
/// libFuzzer's own `main` is not used: this entry point hands control to libFuzzer's driver instead.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> Int32) -> Int32

@_cdecl("parity_fuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, fuzzOneInput)
}
#else
/// Without libFuzzer: `parity-fuzz TARGET FILE_OR_DIR...` replays inputs (a seed corpus, a crash file)
/// through the same entry point.
@main
struct FuzzReplay {
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        guard let name = args.first, let target = FuzzTarget(rawValue: name), args.count >= 2 else {
            print("usage: parity-fuzz {\(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|"))} FILE_OR_DIR...")
            exit(2)
        }
        var count = 0
        for path in args.dropFirst() {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { continue }
            let files = isDir.boolValue ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 } : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                target.run(data)
                count += 1
            }
        }
        print("replayed \(count) inputs through \(target.rawValue)")
    }
}
#endif
