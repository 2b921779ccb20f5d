import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import Testing

/// Parity's HF BERT → GGUF converter against the files llama.cpp's own convert_hf_to_gguf.py wrote from the installed
/// all-MiniLM-L6-v2 (recorded key by key and tensor by tensor by tools/minilm/llamacpp_fixtures.sh), the GGUF BERT
/// reader against llama.cpp's loader rules, and the ggml BERT engine against llama.cpp's own sentence embeddings.
@Suite("GGUF BERT (all-MiniLM-L6-v2): converter, reader and engine vs llama.cpp")
struct GGUFBertTests {
    static func modelDirectory() throws -> String { try ModelRepository.locate("minilm-l6").directory }

    static let converterFiles: [(file: String, type: GGMLType)] = [
        ("minilm-l6-f32.gguf", .f32), ("minilm-l6-f16.gguf", .f16), ("minilm-l6-bf16.gguf", .bf16), ("minilm-l6-q8_0.gguf", .q8_0),
    ]

    /// SHA-256 of an array's items as GGUF serializes them (the fixture's definition).
    static func itemsSHA(_ items: [GGUFValue]) -> String {
        var bytes: [UInt8] = []
        for item in items { GGUFWriter.append(&bytes, item) }
        return SHA256.hex(bytes)
    }

    @Test("metadata key by key, tensors byte by byte, and the whole file equal convert_hf_to_gguf's",
          arguments: try nonEmpty(converterFiles.map(\.file), "files"))
    func converterIdentity(file: String) throws {
        let type = try #require(Self.converterFiles.first { $0.file == file }?.type)
        let (writer, _) = try GGUFBertConverter.build(directory: try Self.modelDirectory(), type: type)
        let bytes = writer.serialized()
        let record = try required(try MiniLMGGUF.tables(), file, in: MiniLMGGUF.tablesPath)
        let theirs = try nonEmpty(try #require(try required(record, "metadata", in: MiniLMGGUF.tablesPath).arrayValue), "\(file) metadata")
        let ours = try GGUFFile(file: MappedFile(data: Data(bytes), name: file)).metadata
        #expect(ours.map(\.key) == theirs.compactMap { $0["key"]?.stringValue }, "\(file): keys and their order")
        for entry in theirs {
            let key = try #require(entry["key"]?.stringValue)
            let mine = try #require(ours.first { $0.key == key }?.value, "\(file): Parity does not write \(key)")
            if entry["type"]?.stringValue == "ARRAY" {
                guard case let .array(elementType, items) = mine else { Issue.record("\(file) \(key): Parity wrote \(mine.type.name), llama.cpp an array"); continue }
                #expect(elementType.name == entry["element_type"]?.stringValue, "\(file) \(key): element type")
                #expect(items.count == entry["count"]?.intValue, "\(file) \(key): count")
                #expect(Self.itemsSHA(items) == entry["sha256"]?.stringValue, "\(file) \(key): items differ")
            } else {
                #expect(mine.type.name == entry["type"]?.stringValue, "\(file) \(key): type \(mine.type.name), llama.cpp's \(entry["type"]!)")
                let value = try #require(entry["value"])
                switch mine {
                case let .float32(f): #expect(Double(f) == value.doubleValue, "\(file) \(key): \(f) vs \(value)")
                case let .string(s): #expect(s == value.stringValue, "\(file) \(key): \(s) vs \(value)")
                case let .bool(b): #expect(b == value.boolValue, "\(file) \(key): \(b) vs \(value)")
                default: #expect(mine.intValue == value.intValue, "\(file) \(key): \(mine) vs \(value)")
                }
            }
        }
        let tensors = try nonEmpty(try #require(try required(record, "tensors", in: MiniLMGGUF.tablesPath).arrayValue), "\(file) tensors")
        #expect(writer.tensors.map(\.name) == tensors.compactMap { $0["name"]?.stringValue }, "\(file): tensor names and order")
        for entry in tensors {
            let name = try #require(entry["name"]?.stringValue)
            let mine = try #require(writer.tensors.first { $0.name == name }, "\(file): Parity does not write \(name)")
            #expect(mine.type.name.uppercased() == entry["type"]?.stringValue?.uppercased(), "\(file) \(name): type \(mine.type.name) vs \(entry["type"]!)")
            #expect(mine.ne == entry["ne"]?.arrayValue?.compactMap(\.intValue), "\(file) \(name): ne")
            #expect(SHA256.hex(mine.bytes) == entry["sha256"]?.stringValue, "\(file) \(name) (\(mine.type.name)): data bytes differ")
        }
        #expect(bytes.count == record["bytes"]?.intValue, "\(file): size")
        #expect(SHA256.hex(bytes) == record["sha256"]?.stringValue, "\(file): SHA-256 of the whole file")
    }

    @Test("a type convert_hf_to_gguf does not write is refused as usage; a model card value gguf-py would read differently is refused")
    func converterRefusals() throws {
        #expect { try GGUFBertConverter.build(directory: try Self.modelDirectory(), type: .q4_K) } throws: { error in
            guard let e = error as? ParityError, case let .usage(message) = e else { return false }
            return message.contains("f32, f16, bf16, q8_0")
        }
        let scratch = try TemporaryDirectory()
        let card = scratch.file("README.md")
        try "---\nlicense: apache-2.0\nbase_model:\n  name: x\n---\n".write(toFile: card, atomically: true, encoding: .utf8)
        #expect { try GGUFBertConverter.modelCardKeys(card) } throws: { error in
            guard let e = error as? ParityError, case let .unsupported(file, reason) = e else { return false }
            return file == card && reason.contains("base_model")
        }
    }

    @Test("gguf-py's model-id heuristics: names, organisations, versions and size labels")
    func modelIDs() {
        let minilm = GGUFBertConverter.modelIDComponents("nreimers/MiniLM-L6-H384-uncased", parameterCount: 22_713_216)
        #expect(minilm.fullName == "MiniLM-L6-H384-uncased" && minilm.organization == "nreimers" && minilm.basename == nil)
        // Expected values: gguf-py's own Metadata.get_model_id_components on these ids (llama.cpp's vendored gguf-py).
        let llama = GGUFBertConverter.modelIDComponents("meta-llama/Llama-2-7b-chat-hf", parameterCount: 6_738_415_616)
        #expect(llama.basename == "Llama-2" && llama.finetune == "chat-hf" && llama.version == nil && llama.sizeLabel == "7B",
                "basename \(llama.basename ?? "-") version \(llama.version ?? "-") size \(llama.sizeLabel ?? "-") finetune \(llama.finetune ?? "-")")
        let mistral = GGUFBertConverter.modelIDComponents("mistralai/Mistral-7B-Instruct-v0.2", parameterCount: 7_241_732_096)
        #expect(mistral.basename == "Mistral" && mistral.finetune == "Instruct" && mistral.version == "v0.2" && mistral.sizeLabel == "7B",
                "basename \(mistral.basename ?? "-") version \(mistral.version ?? "-") size \(mistral.sizeLabel ?? "-") finetune \(mistral.finetune ?? "-")")
        #expect(GGUFBertConverter.titleFromID("s2orc") == "S2Orc" && GGUFBertConverter.titleFromID("stackexchange_xml") == "Stackexchange_Xml")
    }
}

