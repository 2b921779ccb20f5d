import Foundation
import ParityCore
import ParityFormats
import ParityModels
import Testing

/// A Hugging Face checkpoint saved in shards (`save_pretrained(max_shard_size=...)`: model-0000i-of-0000n.safetensors +
/// model.safetensors.index.json) is a reference like the single file: `parity verify DIR --file X` reads it as
/// transformers loads it. The shards are rebuilt from transformers' recorded headers and the bundled tensors
/// (Fixtures/llama-sharded, tools/llama/record_sharded_fixture.py) and proven byte-identical by SHA-256.
@Suite("sharded reference checkpoints", .serialized)
struct ShardedReferenceTests {
    static let fixture = Repo.fixtures + "/llama-sharded"
    static let bundled = Repo.golden + "/tiny-llama"

    /// Writes `parent/tiny-llama-sharded`: the bundled config and tokenizer files, transformers' index and the
    /// shards it wrote (header bytes as recorded, tensor bytes from the bundled model.safetensors), each checked
    /// against its recorded SHA-256; and the golden record_goldens.py writes for that directory (the bundled one
    /// with the root attributes the fixture records as changed: every dataset is identical, checked when recorded).
    static func build(in parent: String) throws -> String {
        let dir = parent + "/tiny-llama-sharded"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for name in ["config.json", "tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"] {
            try FileManager.default.copyItem(atPath: bundled + "/" + name, toPath: dir + "/" + name)
        }
        try FileManager.default.copyItem(atPath: fixture + "/model.safetensors.index.json", toPath: dir + "/model.safetensors.index.json")
        let record = try fixtureJSON(fixture + "/shards.json")
        let source = try SafetensorsFile(path: bundled + "/model.safetensors")
        let shards = try #require(try required(record, "shards", in: "shards.json").arrayValue)
        try #require(shards.count >= 2, "the fixture records \(shards.count) shard(s)")
        for shard in shards {
            let name = try #require(shard["file"]?.stringValue)
            let header = try hexBytes(try #require(shard["header_hex"]?.stringValue))
            // The header alone is a valid safetensors prefix: parse it to learn the layout, then append the data.
            let headerFile = parent + "/" + name + ".header"
            let entries = try Self.entries(ofHeader: header, scratch: headerFile)
            var bytes = header
            for entry in entries.sorted(by: { $0.dataRange.lowerBound < $1.dataRange.lowerBound }) {
                let original = try #require(source.entry(named: entry.name), "\(name): \(entry.name) is not in the bundled model")
                #expect(original.dtype == entry.dtype && original.shape == entry.shape, "\(entry.name)")
                bytes += try source.rawBytes(original)
            }
            #expect(SHA256.hex(bytes) == shard["sha256"]?.stringValue, "\(name): rebuilt bytes differ from what transformers wrote")
            #expect(bytes.count == shard["size"]?.intValue)
            try writeBytes(bytes, to: dir + "/" + name)
        }
        // The golden: the bundled one, with the root attributes record_goldens.py writes differently here.
        let golden = dir + "/golden.h5"
        try FileManager.default.copyItem(atPath: bundled + "/golden.h5", toPath: golden)
        let changed = try #require(try required(try required(record, "golden", in: "shards.json"), "root_attributes_changed", in: "shards.json").objectValue)
        let h5 = try HDF5File(updating: golden)
        for (name, value) in changed {
            try h5.deleteAttribute(name)
            if let text = value.stringValue { try h5.setAttribute(name, .string(text)) }
        }
        return dir
    }

    /// The entries of a header (8-byte length + JSON) without data: parsed by SafetensorsFile from a file padded with
    /// zero bytes for the data it declares.
    static func entries(ofHeader header: [UInt8], scratch: String) throws -> [SafetensorsEntry] {
        let length = Int(header[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        let json = try JSONParser.parse(Array(header[8..<(8 + length)]))
        let ends = try #require(json.objectValue).compactMap { $0.value["data_offsets"]?.arrayValue?.last?.intValue }.max()
        let dataBytes = try #require(ends, "a header without tensors")
        try writeBytes(header + [UInt8](repeating: 0, count: dataBytes), to: scratch)
        return try SafetensorsFile(path: scratch).entries
    }

    static func hexBytes(_ hex: String) throws -> [UInt8] {
        let digits = Array(hex.utf8)
        try #require(digits.count % 2 == 0)
        return try stride(from: 0, to: digits.count, by: 2).map { i in
            try #require(UInt8(String(decoding: digits[i..<(i + 2)], as: UTF8.self), radix: 16))
        }
    }

    @Test("the rebuilt shards are transformers' bytes; the reference reads the same tensors as the single file")
    func shardsReadAsSingleFile() throws {
        let scratch = try TemporaryDirectory()
        let dir = try Self.build(in: scratch.path)
        let sharded = try ReferenceModel(directory: dir)
        #expect(sharded.isSharded)
        let weights = try sharded.weights()
        #expect(weights.files.count == 3, "\(weights.files)")
        let single = try SafetensorsFile(path: Self.bundled + "/model.safetensors")
        #expect(Set(weights.entries.map(\.name)) == Set(single.entries.map(\.name)))
        #expect(weights.entries.count == single.entries.count)
        for entry in try nonEmpty(single.entries, "tensors") {
            let shardEntry = try #require(weights.entry(named: entry.name))
            #expect(try weights.rawBytes(shardEntry) == single.rawBytes(entry), "\(entry.name) read from \(weights.file(of: shardEntry))")
        }
        _ = try sharded.golden()  // the shard hashes are the golden's weights_files
    }

    @Test("parity verify DIR --file X gives the same verdict against the shards as against the single file")
    func verifySameVerdict() throws {
        let scratch = try TemporaryDirectory()
        let dir = try Self.build(in: scratch.path)
        let file = scratch.file("q8_0.gguf")
        let convert = try runParity(["convert", Self.bundled, "--to", "gguf", "--type", "q8_0", "-o", file], timeout: 300)
        try #require(convert.status == 0, "\(convert.stderr)")
        let single = try runParity(["verify", Self.bundled, "--file", file], timeout: 300)
        let sharded = try runParity(["verify", dir, "--file", file], timeout: 300)
        #expect(single.status == 0, "\(single.stdout.suffix(1500))\(single.stderr)")
        #expect(sharded.status == single.status, "sharded: exit \(sharded.status)\n\(sharded.stdout.suffix(1500))\(sharded.stderr)")
        // The same weight and node lines, but for the model's name (the directory's).
        func verdictLines(_ out: String) -> [String] {
            out.split(separator: "\n").map { $0.replacingOccurrences(of: "tiny-llama-sharded", with: "tiny-llama") }
                .filter { $0.contains("PASS") || $0.contains("FAIL") || $0.contains("KL mean") }
        }
        #expect(try nonEmpty(verdictLines(single.stdout), "verdict lines") == verdictLines(sharded.stdout))
    }

    /// Edits of the sharded directory that must be refused as bad input, with what the message must say.
    static let badIndexes: [(String, String)] = [
        ("missing shard", "shard \"model-00002-of-00003.safetensors\" listed in"),
        ("tensor absent from its shard", "has no tensor \"model.layers.9.mlp.up_proj.weight\""),
        ("tensor in two shards", "is in shards model-00001-of-00003.safetensors and model-00003-of-00003.safetensors"),
        ("tensor in another shard than the map says", "weight_map puts it in model-00001-of-00003.safetensors"),
        ("shard path leaving the directory", "is not a file inside the checkpoint directory"),
    ]

    @Test("a broken index is bad input (exit 2) naming the file and the problem", arguments: try nonEmpty(badIndexes, "cases"))
    func badIndex(breakage: String, message: String) throws {
        let scratch = try TemporaryDirectory()
        let dir = try Self.build(in: scratch.path)
        let indexPath = dir + "/model.safetensors.index.json"
        var index = try String(contentsOfFile: indexPath, encoding: .utf8)
        var culprit = indexPath
        switch breakage {
        case "missing shard":
            culprit = dir + "/model-00002-of-00003.safetensors"
            try FileManager.default.removeItem(atPath: culprit)
        case "tensor absent from its shard":
            culprit = dir + "/model-00001-of-00003.safetensors"
            index = index.replacingOccurrences(of: "\"weight_map\": {", with: "\"weight_map\": {\n    \"model.layers.9.mlp.up_proj.weight\": \"model-00001-of-00003.safetensors\",")
        case "tensor in two shards":
            // Shard 1 rewritten with lm_head.weight (which the map puts in shard 3) added.
            culprit = dir + "/model-00001-of-00003.safetensors"
            let shard = try SafetensorsFile(path: culprit)
            var writer = SafetensorsWriter(metadata: [("format", "pt")])
            for entry in shard.entries { try writer.add(name: entry.name, dtype: entry.dtype, shape: entry.shape, bytes: try shard.rawBytes(entry)) }
            let head = try SafetensorsFile(path: Self.bundled + "/model.safetensors")
            let entry = try #require(head.entry(named: "lm_head.weight"))
            try writer.add(name: entry.name, dtype: entry.dtype, shape: entry.shape, bytes: try head.rawBytes(entry))
            try writer.write(to: culprit + ".new")
            try FileManager.default.removeItem(atPath: culprit)
            try FileManager.default.moveItem(atPath: culprit + ".new", toPath: culprit)
        case "tensor in another shard than the map says":
            culprit = dir + "/model-00003-of-00003.safetensors"
            index = index.replacingOccurrences(of: "\"lm_head.weight\": \"model-00003-of-00003.safetensors\"", with: "\"lm_head.weight\": \"model-00001-of-00003.safetensors\"")
        default:
            index = index.replacingOccurrences(of: "\"lm_head.weight\": \"model-00003-of-00003.safetensors\"", with: "\"lm_head.weight\": \"../model-00003-of-00003.safetensors\"")
        }
        try index.write(toFile: indexPath, atomically: true, encoding: .utf8)
        let result = try runParity(["verify", dir, "--file", Self.bundled + "/model.safetensors"])
        #expect(result.status == 2, "\(breakage): exit \(result.status)\n\(result.stdout.suffix(800))\(result.stderr)")
        #expect(result.stderr.contains(culprit), "\(breakage): the file is not named: \(result.stderr)")
        #expect(result.stderr.contains(message), "\(breakage): \(result.stderr)")
    }
}
