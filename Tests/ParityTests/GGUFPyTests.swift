import Foundation
import ParityCore
import ParityFormats
import ParityModels
import Testing

/// llama.cpp's own reader as the oracle (tools/ggml/check_parity_gguf.py, gguf-py 0.19.0): it read every GGUF
/// Parity writes and recorded what it saw. These tests regenerate each file, require it to be byte-identical to
/// what gguf-py read, and require Parity to read the same metadata, tensor infos and dequantized values.
/// Files written by gguf-py itself must read identically in Parity too.
@Suite("GGUF vs gguf-py")
struct GGUFPyTests {
    static let dir = Repo.fixtures + "/gguf-py"
    static let manifest: JSONValue? = (try? readBytes(dir + "/manifest.json")).flatMap { try? JSONParser.parse($0) }
    static let files: [String] = manifest?["files"]?.objectValue?.map(\.key) ?? []

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// Parity's encoding of a metadata value, for comparison with the bytes gguf-py recorded.
    static func valueHex(_ value: GGUFValue) -> String {
        var out: [UInt8] = []
        GGUFWriter.append(&out, value)
        return hex(out)
    }

    /// Compares a file as Parity reads it with gguf-py's record of it.
    static func compare(_ file: GGUFFile, with record: JSONValue, values: SafetensorsFile, label: String) throws {
        #expect(Int(file.version) == record["version"]?.intValue && file.alignment == record["alignment"]?.intValue)
        #expect(file.dataStart == record["data_offset"]?.intValue, "\(label): data section")
        let metadata = record["metadata"]?.arrayValue ?? []
        #expect(file.metadata.map(\.key) == metadata.compactMap { $0["key"]?.stringValue }, "\(label): metadata keys and order")
        for (entry, ours) in zip(metadata, file.metadata) {
            let theirType = entry["type"]?.stringValue ?? ""
            #expect(ours.value.type.name == theirType || theirType == "ARRAY" && ours.value.type == .array, "\(label) \(ours.key): type")
            if let hexValue = entry["value_hex"]?.stringValue {
                #expect(valueHex(ours.value) == hexValue, "\(label) \(ours.key): value bytes")
            }
        }
        let tensors = record["tensors"]?.arrayValue ?? []
        #expect(file.tensors.count == tensors.count)
        for (t, ours) in zip(tensors, file.tensors) {
            #expect(ours.name == t["name"]?.stringValue)
            #expect(ours.type.name.uppercased() == t["type"]?.stringValue, "\(label) \(ours.name): type")
            #expect(ours.ne == t["ne"]?.arrayValue?.compactMap(\.intValue), "\(label) \(ours.name): ne")
            #expect(ours.offset == t["offset"]?.intValue && ours.byteCount == t["n_bytes"]?.intValue, "\(label) \(ours.name): placement")
            #expect(SHA256.hex(try file.rawBytes(ours)) == t["sha256"]?.stringValue, "\(label) \(ours.name): data bytes")
            let mine = try file.values(ours)
            let mineBytes = mine.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init) }
            // Bit-identical to gguf.quants.dequantize over the whole tensor (its sha256), and value by value
            // where gguf-py's values are stored.
            #expect(SHA256.hex(mineBytes) == t["dequantized"]?["sha256_f32"]?.stringValue, "\(label) \(ours.name): dequantized values")
            if let key = t["dequantized"]?["key"]?.stringValue, let stored = values.entry(named: key) {
                let theirs = try values.tensor(stored).data
                #expect(Array(mine.prefix(theirs.count)).map(\.bitPattern) == theirs.map(\.bitPattern), "\(label) \(ours.name): stored values")
            }
        }
    }

    @Test("every GGUF Parity writes is byte-identical to what gguf-py read, and reads the same in Parity", arguments: files)
    func parityWritten(name: String) throws {
        let entry = try #require(Self.manifest?["files"]?[name])
        let command = try #require(entry["command"]?.stringValue).split(separator: " ").map(String.init)
        let scratch = try TemporaryDirectory()
        let out = scratch.file(name)
        if entry["kind"]?.stringValue == "model" {
            // parity convert MODEL --to gguf --type T -o FILE
            _ = try GGUFConverter.convert(try Repo.model(command[2]), typeName: command[6], to: out)
        } else {
            // parity quantize SOURCE OUT --type T
            let type = try #require(GGMLType.named(command[5]))
            _ = try GGUFRequantizer.requantize(input: Self.dir + "/" + command[2], output: out, to: type, fileType: GGUFConverter.fileType(matrixTypes:))
        }
        #expect(SHA256.hex(try readBytes(out)) == entry["sha256"]?.stringValue, "\(name) is no longer the file gguf-py read")
        try Self.compare(GGUFFile(path: out), with: try #require(entry["gguf_py"]), values: SafetensorsFile(path: Self.dir + "/dequantized.safetensors"), label: name)
    }

    @Test("GGUF files written by gguf-py's GGUFWriter read identically in Parity (every metadata type, alignment 32 and 64)")
    func ggufPyWritten() throws {
        let sources = try #require(Self.manifest?["sources"]?.objectValue)
        #expect(sources.count == 2)
        for (name, record) in sources {
            let file = try GGUFFile(path: Self.dir + "/" + name)
            #expect(SHA256.hex(try readBytes(Self.dir + "/" + name)) == record["sha256"]?.stringValue)
            #expect(file.alignment == record["alignment"]?.intValue)
            let metadata = record["metadata"]?.arrayValue ?? []
            #expect(file.metadata.map(\.key) == metadata.compactMap { $0["key"]?.stringValue })
            for (entry, ours) in zip(metadata, file.metadata) {
                if let hexValue = entry["value_hex"]?.stringValue { #expect(Self.valueHex(ours.value) == hexValue, "\(name) \(ours.key)") }
            }
        }
        // The quantization fixture (gguf-py GGUFWriter, 14 types): every q.<t> decodes to the stored deq.<t>.
        let quants = try GGUFFile(path: Repo.fixtures + "/ggml-quants/quants.gguf")
        var compared = 0
        for t in quants.tensors where t.name.hasPrefix("q.") {
            guard let deq = quants.tensor(named: "deq." + t.name.dropFirst(2)) else { continue }
            #expect(try quants.values(t).map(\.bitPattern) == quants.values(deq).map(\.bitPattern), "quants.gguf \(t.name)")
            compared += 1
        }
        #expect(compared >= 14)
    }
}

/// ggml's own `mnist-eval` (ggml 0.15.3) on the GGUF files Parity writes (tools/ggml/eval_parity_gguf.py):
/// the files must still be the ones it ran, and the f32 ones must score PyTorch's accuracy on all 10,000 images.
@Suite("GGUF in ggml's mnist-eval")
struct MnistEvalTests {
    @Test("Parity's f32 GGUFs load in mnist-eval and give PyTorch's accuracy; the recorded files are what Parity writes")
    func mnistEval() throws {
        let record = try JSONParser.parse(readBytes(Repo.fixtures + "/ggml/parity-written/accuracy.json"))
        let files = try #require(record["files"]?.objectValue)
        for (name, entry) in files {
            let command = try #require(entry["command"]?.stringValue).split(separator: " ").map(String.init)
            let model = try Repo.model(command[2])
            let scratch = try TemporaryDirectory()
            _ = try GGUFConverter.convert(model, typeName: command[6], to: scratch.file(name))
            #expect(SHA256.hex(try readBytes(scratch.file(name))) == entry["sha256"]?.stringValue, "\(name) changed since mnist-eval ran it")
            let variants = try #require(entry["variants"]?.objectValue)
            for (variant, run) in variants {
                if command[6] == "f32" {
                    #expect(run["exit_status"]?.intValue == 0, "\(name) \(variant)")
                    #expect(run["accuracy"]?.doubleValue == model.config.testAccuracy, "\(name) \(variant): ggml vs PyTorch accuracy")
                }
            }
        }
        #expect(files.contains { $0.key == "fmnist-cnn-f32.gguf" } && files.contains { $0.key == "fmnist-mlp-f32.gguf" })
    }
}
