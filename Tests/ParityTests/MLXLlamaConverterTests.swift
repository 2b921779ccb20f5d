import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import Testing

/// Parity's HF → MLX Llama converter against `mlx_lm convert` (mlx-lm 0.32.2) on golden/tiny-llama:
/// Fixtures/llama/mlx-llama-conversions.json (tools/llama/mlx_llama_conversions.py) holds, per variant, mlx-lm's own
/// output — every tensor's dtype, shape and SHA-256, config.json's and the index's SHA-256 — and what real
/// `mlx_lm.load` did with the directory Parity wrote for the same variant (loaded; logits vs the goldens and vs
/// mlx-lm's own directory).
@Suite("MLX Llama converter writes what mlx_lm convert writes (mlx-lm fixtures)")
struct MLXLlamaConverterTests {
    static let fixture = Repo.fixtures + "/llama/mlx-llama-conversions.json"
    static let model = Repo.golden + "/tiny-llama"

    static func variants() throws -> [(key: String, value: JSONValue)] {
        try #require(try required(try fixtureJSON(fixture), "variants", in: fixture).objectValue)
    }

    static var variantNames: [String] {
        get throws { try variants().map(\.key) }
    }

    /// dtype and quantization from the mlx_lm convert command recorded for the variant (what mlx-lm was asked).
    static func request(_ command: String) throws -> (dtype: String?, quantization: MLXQuantParameters?) {
        let words = command.split(separator: " ").map(String.init)
        func value(_ flag: String) -> String? { words.firstIndex(of: flag).map { words[$0 + 1] } }
        guard words.contains("-q") else { return (value("--dtype"), nil) }
        let mode = value("--q-mode") ?? "affine"
        let defaults = try #require(MLXQuantization.defaults(mode: mode))
        let bits = try value("--q-bits").map { try #require(Int($0)) } ?? defaults.bits
        let group = try value("--q-group-size").map { try #require(Int($0)) } ?? defaults.groupSize
        return (value("--dtype"), MLXQuantParameters(mode: mode, groupSize: group, bits: bits))
    }

    @Test("every tensor byte-identical to mlx_lm convert's, same names, dtypes, shapes; config.json and the index byte-identical",
          arguments: try nonEmpty(variantNames, "mlx_lm convert variants"))
    func sameAsMLXLM(variant: String) throws {
        let entry = try #require(try Self.variants().first { $0.key == variant }?.value)
        let theirs = try required(entry, "mlx_lm", in: Self.fixture)
        let command = try #require(try required(entry, "mlx_lm_command", in: Self.fixture).stringValue)
        let (dtype, quantization) = try Self.request(command)
        let scratch = try TemporaryDirectory()
        let out = scratch.file("mlx")
        try MLXLlamaConverter.convert(directory: Self.model, dtype: dtype, quantization: quantization, to: out)

        let file = try SafetensorsFile(path: out + "/model.safetensors")
        #expect(file.metadata.count == 1 && file.metadata.first?.key == "format" && file.metadata.first?.value == "mlx")
        let expected = try #require(try required(theirs, "tensors", in: Self.fixture).objectValue)
        #expect(Set(file.entries.map(\.name)) == Set(expected.map(\.key)), "tensor sets differ")
        var identical = 0
        for (name, row) in try nonEmpty(expected, "mlx-lm tensors of \(variant)") {
            let e = try #require(file.entry(named: name), "Parity wrote no \(name)")
            let cells = try #require(row.arrayValue)
            #expect(e.dtype.rawValue == cells[0].stringValue, "\(name): dtype \(e.dtype.rawValue), mlx-lm \(cells[0])")
            #expect(e.shape == cells[1].arrayValue?.compactMap(\.intValue), "\(name): shape \(e.shape), mlx-lm \(cells[1])")
            let sha = SHA256.hex(try file.rawBytes(e))
            #expect(sha == cells[2].stringValue, "\(name) (\(variant)): bytes differ from mlx_lm convert's")
            if sha == cells[2].stringValue { identical += 1 }
        }
        #expect(identical == expected.count)
        #expect(SHA256.hex(try readBytes(out + "/config.json")) == theirs["config_sha256"]?.stringValue, "config.json differs from mlx-lm's")
        #expect(SHA256.hex(try readBytes(out + "/model.safetensors.index.json")) == theirs["index_sha256"]?.stringValue,
                "model.safetensors.index.json differs from mlx-lm's")
    }

    @Test("real mlx_lm.load loaded every directory Parity wrote, with logits equal to those of mlx-lm's own directory",
          arguments: try nonEmpty(variantNames, "mlx_lm convert variants"))
    func mlxLMLoadsParityDirectories(variant: String) throws {
        let entry = try #require(try Self.variants().first { $0.key == variant }?.value)
        let load = try required(entry, "mlx_lm_load_parity_dir", in: Self.fixture)
        #expect(load["loaded"] == .bool(true), "mlx_lm.load refused Parity's \(variant): \(load)")
        // Byte-identical weights and config give exactly the same forward pass.
        #expect(load["max_abs_dlogit_vs_mlx_lm_dir"]?.doubleValue == 0, "\(variant): \(load)")
        let metrics = try required(load, "metrics_vs_goldens", in: Self.fixture)
        // Every variant still predicts like the model (q2 is the coarsest: its top-1 agreement is the lowest, ~0.6).
        #expect(try #require(metrics["top1_agreement"]?.doubleValue) > 0.5, "\(variant): \(metrics)")
        if variant == "float32" {
            // mlx-lm in float32 is at PyTorch's own float32 noise (7.7e-6 for PyTorch f32 vs f64); 1e-4 leaves headroom.
            #expect(try #require(metrics["max_abs_dlogit_vs_f64"]?.doubleValue) < 1e-4, "\(metrics)")
        }
    }

    @Test("Parity's reader on Parity's float32 directory returns the Hugging Face weights exactly; on q4-g64 every Linear and the embedding are quantized")
    func readerOnConvertedDirectories() throws {
        let scratch = try TemporaryDirectory()
        try MLXLlamaConverter.convert(directory: Self.model, dtype: "float32", quantization: nil, to: scratch.file("f32"))
        let w = try MLXLlamaWeights.load(directory: scratch.file("f32"))
        #expect(!w.loading.refused && w.quantizedModules.isEmpty)
        let hf = try SafetensorsFile(path: Self.model + "/model.safetensors")
        var compared = 0
        for layer in 0..<w.hyperparameters.layerCount {
            for role in LlamaTensorRole.allCases where role.isPerLayer || layer == 0 {
                let reference = try hf.tensor(named: role.referenceName(layer: layer)).data
                let values: [Float]
                if [.attentionNorm, .feedForwardNorm, .outputNorm].contains(role) {
                    values = try w.vector(role, layer: layer)
                } else {
                    guard case let .dense(v, dtype) = try w.matrix(role, layer: layer).storage else {
                        Issue.record("\(role) is not dense")
                        continue
                    }
                    #expect(dtype == .f32)
                    values = v
                }
                #expect(values == reference, "\(role.referenceName(layer: layer)) differs from the Hugging Face weights")
                compared += 1
            }
        }
        #expect(compared == 3 * 9 + 3)
        try MLXLlamaConverter.convert(directory: Self.model, dtype: nil, quantization: MLXQuantParameters(mode: "affine", groupSize: 64, bits: 4),
                                      to: scratch.file("q4"))
        let q = try MLXLlamaWeights.load(directory: scratch.file("q4"))
        #expect(!q.loading.refused && q.loading.warnings.isEmpty)
        #expect(q.quantizedModules.count == 1 + 3 * 7 + 1)  // embed_tokens, 7 projections per layer, lm_head; norms stay float
    }

    @Test("parity convert tiny-llama --to mlx writes the Llama directory (bundled name or path) and exits 0")
    func cli() throws {
        let scratch = try TemporaryDirectory()
        let result = try runParity(["convert", "tiny-llama", "--to", "mlx", "--bits", "4", "--group-size", "64", "-o", scratch.file("q4")])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("affine 4-bit group 64"), "\(result.stdout)")
        let entry = try #require(try Self.variants().first { $0.key == "q4-g64" }?.value)
        #expect(SHA256.hex(try readBytes(scratch.file("q4") + "/config.json")) == entry["mlx_lm"]?["config_sha256"]?.stringValue)
        let bad = try runParity(["convert", Self.model, "--to", "mlx", "--mode", "mxfp4", "--bits", "8", "-o", scratch.file("bad")])
        #expect(bad.status == 2, "\(bad.stdout)\(bad.stderr)")
    }

    /// golden/tiny-llama's files, with its weights re-saved by `arrange` (a transformers-style sharded or edited copy).
    static func copyModel(to target: String, arrange: ([RawTensor]) throws -> [(file: String, tensors: [RawTensor])]) throws {
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        for file in try FileManager.default.contentsOfDirectory(atPath: model) where file != "model.safetensors" && file != "golden.h5" {
            try FileManager.default.copyItem(atPath: model + "/" + file, toPath: target + "/" + file)
        }
        let st = try SafetensorsFile(path: model + "/model.safetensors")
        let tensors = try st.entries.map { RawTensor(name: $0.name, dtype: $0.dtype, shape: $0.shape, bytes: try st.rawBytes($0)) }
        let files = try arrange(tensors)
        var map: [(key: String, value: JSONValue)] = []
        for (file, group) in files {
            var writer = SafetensorsWriter(metadata: [("format", "pt")])
            for t in group {
                try writer.add(name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.bytes)
                map.append((t.name, .string(file)))
            }
            try writer.write(to: target + "/" + file)
        }
        if files.count > 1 {
            let index = JSONValue.object([("metadata", .object([("total_size", .number(0))])), ("weight_map", .object(map))])
            try writeBytes(Array(index.serialized().utf8), to: target + "/model.safetensors.index.json")
        }
    }

    @Test("a sharded Hugging Face checkpoint (model.safetensors.index.json) converts to the same bytes as the single file")
    func shardedInput() throws {
        let scratch = try TemporaryDirectory()
        try Self.copyModel(to: scratch.file("hf")) { tensors in
            let half = tensors.count / 2
            return [("model-00001-of-00002.safetensors", Array(tensors[..<half])), ("model-00002-of-00002.safetensors", Array(tensors[half...]))]
        }
        try MLXLlamaConverter.convert(directory: scratch.file("hf"), dtype: nil, quantization: MLXQuantParameters(mode: "affine", groupSize: 64, bits: 4),
                                      to: scratch.file("mlx"))
        let entry = try #require(try Self.variants().first { $0.key == "q4-g64" }?.value)
        let expected = try #require(entry["mlx_lm"]?["tensors"]?.objectValue)
        let file = try SafetensorsFile(path: scratch.file("mlx") + "/model.safetensors")
        var checked = 0
        for (name, row) in try nonEmpty(expected, "q4-g64 tensors") {
            let e = try #require(file.entry(named: name))
            #expect(SHA256.hex(try file.rawBytes(e)) == row.arrayValue?[2].stringValue, "\(name)")
            checked += 1
        }
        #expect(checked == file.entries.count)
    }

    @Test("a checkpoint with a tensor no Llama parameter reads, or without one it needs, is refused naming the tensor",
          arguments: try nonEmpty([("extra", "model.layers.0.self_attn.q_proj.bias"), ("missing", "model.layers.2.mlp.down_proj.weight")],
                                  "edited checkpoints"))
    func refusesForeignOrMissingTensors(edit: String, tensor: String) throws {
        let scratch = try TemporaryDirectory()
        try Self.copyModel(to: scratch.file("hf")) { tensors in
            if edit == "missing" { return [("model.safetensors", tensors.filter { $0.name != tensor })] }
            return [("model.safetensors", tensors + [RawTensor(name: tensor, dtype: .f32, shape: [256], bytes: [UInt8](repeating: 0, count: 1024))])]
        }
        #expect { try MLXLlamaConverter.convert(directory: scratch.file("hf"), dtype: nil, quantization: nil, to: scratch.file("mlx")) } throws: {
            "\($0)".contains(tensor)
        }
        #expect(!FileManager.default.fileExists(atPath: scratch.file("mlx")), "a refused conversion left an output directory")
    }

    @Test("Python json.dump number and string layout")
    func pythonJSON() {
        #expect(PythonJSON.number("1e-05") == "1e-05" && PythonJSON.number("0.00001") == "1e-05")
        #expect(PythonJSON.number("10000.0") == "10000.0" && PythonJSON.number("0.02") == "0.02" && PythonJSON.number("0.0001") == "0.0001")
        #expect(PythonJSON.number("1e16") == "1e+16" && PythonJSON.number("1e15") == "1000000000000000.0" && PythonJSON.number("500000") == "500000")
        #expect(PythonJSON.number("-2.5e-7") == "-2.5e-07" && PythonJSON.number("123.456") == "123.456")
        #expect(PythonJSON.quote("é\u{1F600}\"\n") == "\"\\u00e9\\ud83d\\ude00\\\"\\n\"")
        #expect(PythonJSON.dump(.object([("a", .array([])), ("b", .object([("c", .bool(true))]))])) == "{\n    \"a\": [],\n    \"b\": {\n        \"c\": true\n    }\n}")
    }
}
