import Foundation
import ParityCore
import ParityFormats
import ParityModels
import Testing

/// Parity's HF Llama → GGUF converter against the files llama.cpp's own tools wrote from the same checkpoint
/// (golden/tiny-llama): `convert_hf_to_gguf.py --outtype f32|f16|bf16|q8_0` and `llama-quantize` Q4_0 / Q4_K_M,
/// recorded key by key and tensor by tensor with gguf-py by tools/llama/record_gguf_llama_tables.py, and the
/// per-tensor types of every llama-quantize file in tensor-types.json (tools/llama/record_ecosystem_fixtures.py).
@Suite("GGUF Llama converter vs llama.cpp's files")
struct GGUFLlamaConverterTests {
    static let model = Repo.golden + "/tiny-llama"
    static let tablesPath = Repo.fixtures + "/llama/gguf-llama-tables.json"
    static let typesPath = Repo.fixtures + "/llama/tensor-types.json"

    /// Which Parity output corresponds to which llama.cpp file.
    static let pairs: [(file: String, output: GGUFLlamaConverter.Output)] = [
        ("tiny-llama-f32.gguf", .converter(.f32)), ("tiny-llama-f16.gguf", .converter(.f16)),
        ("tiny-llama-bf16.gguf", .converter(.bf16)), ("tiny-llama-q8_0.gguf", .converter(.q8_0)),
        ("tiny-llama-Q4_0.gguf", .mix(.Q4_0)), ("tiny-llama-Q4_K_M.gguf", .mix(.Q4_K_M)),
    ]

    static func record(_ file: String) throws -> JSONValue {
        let files = try required(try fixtureJSON(tablesPath), "files", in: tablesPath)
        return try required(files, file, in: tablesPath)
    }

    /// SHA-256 of an array's items as GGUF serializes them (the fixture's definition).
    static func itemsSHA(_ items: [GGUFValue]) -> String {
        var bytes: [UInt8] = []
        for item in items { GGUFWriter.append(&bytes, item) }
        return SHA256.hex(bytes)
    }

    static func jsonValue(_ value: GGUFValue) -> JSONValue {
        switch value {
        case let .string(s): return .string(s)
        case let .bool(b): return .bool(b)
        case let .float32(f): return .number(String(Double(f)))
        default: return .number(value.description)
        }
    }

    @Test("metadata key by key, tensors byte by byte, and the whole file equal llama.cpp's", arguments: try nonEmpty(pairs.map(\.file), "files"))
    func identical(file: String) throws {
        let output = try #require(Self.pairs.first { $0.file == file }?.output)
        let (writer, _) = try GGUFLlamaConverter.build(directory: Self.model, output: output)
        let bytes = writer.serialized()
        let record = try Self.record(file)
        try Self.compareMetadata(file: file, bytes: bytes, record: record)
        try Self.compareTensors(file: file, writer: writer, record: record)
        #expect(bytes.count == record["bytes"]?.intValue, "\(file): size")
        #expect(SHA256.hex(bytes) == record["sha256"]?.stringValue, "\(file): SHA-256 of the whole file")
    }

    static func compareMetadata(file: String, bytes: [UInt8], record: JSONValue) throws {
        let theirs = try nonEmpty(try #require(try required(record, "metadata", in: tablesPath).arrayValue), "\(file) metadata")
        // Read back what the writer serializes: exactly the keys a reader of the file sees (general.architecture first).
        let ours = try GGUFFile(file: MappedFile(data: Data(bytes), name: file)).metadata
        #expect(ours.map(\.key) == theirs.compactMap { $0["key"]?.stringValue }, "\(file): keys and their order")
        for entry in theirs {
            let key = try #require(entry["key"]?.stringValue)
            let mine = try #require(ours.first { $0.key == key }?.value, "\(file): Parity does not write \(key)")
            let type = try #require(entry["type"]?.stringValue)
            if type == "ARRAY" {
                guard case let .array(elementType, items) = mine else { Issue.record("\(file) \(key): Parity wrote \(mine.type.name), llama.cpp an array"); continue }
                #expect(elementType.name == entry["element_type"]?.stringValue, "\(file) \(key): element type")
                #expect(items.count == entry["count"]?.intValue, "\(file) \(key): count")
                #expect(itemsSHA(items) == entry["sha256"]?.stringValue, "\(file) \(key): items differ")
            } else {
                #expect(mine.type.name == type, "\(file) \(key): type \(mine.type.name), llama.cpp's \(type)")
                let value = try #require(entry["value"])
                if case let .float32(f) = mine {
                    #expect(Double(f) == value.doubleValue, "\(file) \(key): \(f) vs \(value)")
                } else {
                    #expect(jsonValue(mine) == value, "\(file) \(key): \(mine) vs \(value)")
                }
            }
        }
    }

    static func compareTensors(file: String, writer: GGUFWriter, record: JSONValue) throws {
        let theirs = try nonEmpty(try #require(try required(record, "tensors", in: tablesPath).arrayValue), "\(file) tensors")
        #expect(writer.tensors.map(\.name) == theirs.compactMap { $0["name"]?.stringValue }, "\(file): tensor names and order")
        for entry in theirs {
            let name = try #require(entry["name"]?.stringValue)
            let mine = try #require(writer.tensors.first { $0.name == name }, "\(file): Parity does not write \(name)")
            #expect(mine.type.name.uppercased() == entry["type"]?.stringValue?.uppercased(), "\(file) \(name): type \(mine.type.name) vs \(entry["type"]!)")
            #expect(mine.ne == entry["ne"]?.arrayValue?.compactMap(\.intValue), "\(file) \(name): ne")
            #expect(SHA256.hex(mine.bytes) == entry["sha256"]?.stringValue, "\(file) \(name) (\(mine.type.name)): data bytes differ")
        }
    }

    /// tensor-types.json: llama-quantize's per-tensor choice for every mix it ran without an importance matrix.
    static let quantizeFiles: [(file: String, mix: LlamaQuantizeMix)] = [
        ("gguf/tiny-llama-Q4_0.gguf", .Q4_0), ("gguf/tiny-llama-Q4_K_M.gguf", .Q4_K_M),
        ("gguf/tiny-llama-Q5_K_M.gguf", .Q5_K_M), ("gguf/tiny-llama-Q6_K.gguf", .Q6_K),
        ("gguf/tiny-llama-Q4_K_M-imat.gguf", .Q4_K_M),  // the importance matrix changes values, not this model's types
    ]

    @Test("per-tensor types equal llama-quantize's", arguments: try nonEmpty(quantizeFiles.map(\.file), "llama-quantize files"))
    func quantizeTypes(file: String) throws {
        let mix = try #require(Self.quantizeFiles.first { $0.file == file }?.mix)
        let record = try required(try required(try fixtureJSON(Self.typesPath), file, in: Self.typesPath), "tensors", in: Self.typesPath)
        let expected = try nonEmpty(try #require(record.objectValue), "\(file) tensors")
        // The mix decides from names, ne and the processing order alone: the f32 file's tensors in llama.cpp's loader order.
        let shapes = try expected.map { name, info in
            let ne = try #require(info["ne"]?.arrayValue, "\(file) \(name): no ne").compactMap { $0.intValue }
            return LlamaQuantizeMix.TensorShape(name: name, ne: ne, type: .f32)
        }.sorted { GGUFLlamaConverter.quantizerOrder($0.name, $1.name) }
        let types = mix.tensorTypes(shapes, layerCount: 3, headCount: 8, keyValueHeadCount: 4)  // golden/tiny-llama/config.json
        for (shape, type) in zip(shapes, types) {
            let theirs = try #require(expected.first { $0.key == shape.name }?.value["type"]?.stringValue)
            #expect(type.name.uppercased() == theirs.uppercased(), "\(file) \(shape.name): Parity \(type.name), llama-quantize \(theirs)")
        }
        let fileType = try #require(try required(try required(try fixtureJSON(Self.typesPath), file, in: Self.typesPath), "general.file_type", in: Self.typesPath).intValue)
        #expect(Int(mix.fileType) == fileType, "\(file): general.file_type")
    }
}
