import Foundation
import ParityCore
import ParityFormats
import ParityModels
import Testing

/// `parity verify tiny-llama --format gguf|mlx` and `--file` on the ecosystem's own files: every GGUF type/mix and MLX
/// dtype/quantization Parity writes is read as llama.cpp / mlx-lm load it, run by that runtime's Llama engine and
/// judged per node and on the logits (KL, top-1) against the goldens.
@Suite("verify tiny-llama: GGUF and MLX Llama cells", .serialized)
struct LlamaVerifyTests {
    static let model = Repo.golden + "/tiny-llama"
    static let manifest = Repo.fixtures + "/llama/manifest.json"

    /// SHA-256 of a file llama.cpp's / mlx-lm's tools wrote, as recorded in Fixtures/llama/manifest.json.
    static func recordedSHA(_ file: String) throws -> String {
        let files = try required(try fixtureJSON(manifest), "files", in: manifest)
        return try #require(try required(files, file, in: manifest)["sha256"]?.stringValue, "\(file): no sha256 in the manifest")
    }

    /// The summary lines of a verify run (`  PASS  tiny-llama  gguf Q4_K_M  …`).
    static func summary(_ stdout: String) -> [String] {
        guard let range = stdout.range(of: "\nsummary\n") else { return [] }
        return stdout[range.upperBound...].split(separator: "\n").map(String.init)
    }

    @Test("every default cell passes: exit 0, one PASS line per cell, the wall time printed",
          arguments: try nonEmpty([("gguf", ["f32", "f16", "bf16", "q8_0", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K"]),
                                   ("mlx", ["f32", "f16", "bf16", "affine-b8-g64", "affine-b4-g64", "mxfp4"])].map { $0 }, "formats"))
    func everyCellPasses(format: String, cells: [String]) throws {
        let started = Date()
        let result = try runParity(["verify", "tiny-llama", "--format", format], timeout: 600)
        let seconds = Date().timeIntervalSince(started)
        print("verify tiny-llama --format \(format): \(String(format: "%.2f", seconds)) s wall (\(cells.count) cells, convert + verify)")
        #expect(result.status == 0, "verify --format \(format) exited \(result.status): \(result.stderr.suffix(2000))")
        let lines = Self.summary(result.stdout)
        for cell in try nonEmpty(cells, "cells") {
            // The label the file gives itself: llama.cpp's file type for GGUF, the MLX dtype/quantization.
            #expect(lines.contains { $0.hasPrefix("  PASS  tiny-llama  \(format) \(cell)  ") }, "\(format) \(cell) did not pass:\n\(lines.joined(separator: "\n"))")
        }
        #expect(lines.filter { $0.hasPrefix("  PASS") }.count == cells.count)
        #expect(lines.contains { $0.contains("wall time tiny-llama \(format) (\(cells.count) cells") }, "the wall time line")
        if format == "gguf" {
            // llama.cpp's CLI defaults on CPU: F16 KV cache, flash attention resolved to on.
            #expect(result.stdout.contains("KV cache F16, flash attention on"), "the default runtime settings in the header")
        }
        // KL and top-1 of every cell, as llama-perplexity --kl-divergence reports them.
        #expect(result.stdout.components(separatedBy: "logits vs float64 reference: KL mean").count - 1 == cells.count)
    }

    @Test("--kv-cache f32 --flash-attn off: llama.cpp's exact float32 attention; the f32 GGUF is at PyTorch's own noise (KL mean < 1e-11)")
    func float32Attention() throws {
        let result = try runParity(["verify", "tiny-llama", "--format", "gguf", "--variant", "f32", "--kv-cache", "f32", "--flash-attn", "off"])
        #expect(result.status == 0, "\(result.stdout.suffix(3000))")
        #expect(result.stdout.contains("KV cache F32, flash attention off"))
        let line = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("logits vs float64 reference") })
        let kl = try #require(Double(line.split(separator: " ")[6].trimmingCharacters(in: CharacterSet(charactersIn: ","))))
        // llama.cpp itself on this file (Fixtures/llama/README.md, kv f32): KL mean 1.34e-13; PyTorch float32 vs float64 is of that order.
        #expect(kl < 1e-11, "\(line)")
    }

    /// The KL mean of each report (by variant) of a verify run written as JSON.
    static func klMeans(_ arguments: [String]) throws -> [String: Double] {
        let scratch = try TemporaryDirectory()
        let json = scratch.file("r.json")
        let result = try runParity(arguments + ["--json", json], timeout: 600)
        #expect(result.status == 0, "\(arguments): exit \(result.status)")
        // The reports, KL and limits included, follow the report schema.
        let schema = JSONSchemaValidator(root: try JSONParser.parse(readBytes(Repo.root + "/tools/schemas/parity-report.schema.json")))
        #expect(schema.validate(try JSONParser.parse(readBytes(json))) == [], "\(arguments): JSON off schema")
        let reports = try #require(try required(try fixtureJSON(json), "reports", in: json).arrayValue)
        var out: [String: Double] = [:]
        for report in reports {
            out[try #require(report["variant"]?.stringValue)] = try #require(try required(report, "logits", in: json)["kl_mean"]?.doubleValue)
        }
        return out
    }

    /// llama.cpp's and mlx-lm's own KL means on the same files (manifest.json "logits", recorded with llama_logits.cpp and
    /// mlx_lm.load). Parity's engines compute what the runtimes compute, so they give the same KL: within 5 %, because
    /// Parity's kernels reproduce the runtimes' logits up to float32 summation order (≤ 5e-4 of a logit, docs/llama-runtimes.md)
    /// and KL, second order in the logit error, moves by a few percent of itself at most for the smallest KL here (f16, 7e-8).
    @Test("Parity's KL mean on each GGUF / MLX cell equals llama.cpp's / mlx-lm's own on the same bytes (within 5 %)")
    func sameKLAsTheRuntimes() throws {
        let recorded = try required(try fixtureJSON(Self.manifest), "logits", in: Self.manifest)
        func theirs(_ key: String) throws -> Double { try #require(try required(recorded, key, in: Self.manifest)["kl_mean"]?.doubleValue) }
        let ggufF32Attention = try Self.klMeans(["verify", "tiny-llama", "--format", "gguf", "--kv-cache", "f32", "--flash-attn", "off"])
        for type in try nonEmpty(["f16", "bf16", "q8_0", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K"], "GGUF types") {
            let ours = try #require(ggufF32Attention[type], "no \(type) report"), llama = try theirs("gguf/tiny-llama-\(type).gguf")
            #expect(abs(ours / llama - 1) < 0.05, "\(type): Parity KL mean \(ours), llama.cpp \(llama)")
        }
        // f32 with llama.cpp's CLI defaults (KV F16, flash attention on) against llama.cpp run that way.
        let defaults = try Self.klMeans(["verify", "tiny-llama", "--format", "gguf", "--variant", "f32"])
        let ours = try #require(defaults["f32"]), llama = try theirs("gguf/tiny-llama-f32.gguf [kv f16, flash-attn]")
        #expect(abs(ours / llama - 1) < 0.05, "f32 KV F16 + flash attention: Parity \(ours), llama.cpp \(llama)")
        let mlx = try Self.klMeans(["verify", "tiny-llama", "--format", "mlx", "--variant", "f16", "--variant", "affine-b4-g64", "--variant", "affine-b8-g64"])
        for (variant, file) in try nonEmpty([("f16", "float16"), ("affine-b4-g64", "q4-g64"), ("affine-b8-g64", "q8-g64")].map { $0 }, "MLX variants") {
            let ours = try #require(mlx[variant], "no \(variant) report"), mlxLM = try theirs("mlx/tiny-llama-\(file)")
            #expect(abs(ours / mlxLM - 1) < 0.05, "\(variant): Parity KL mean \(ours), mlx-lm \(mlxLM)")
        }
    }

    /// Parity's converter reproduces the ecosystem's GGUFs byte for byte: regenerate each, check it is the very file
    /// llama.cpp's tool wrote (its SHA-256 recorded from the real file), then verify it with --file.
    @Test("llama.cpp's own GGUFs (regenerated byte-identical) pass verify --file",
          arguments: try nonEmpty(["f32", "f16", "bf16", "q8_0", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K"], "llama.cpp files"))
    func llamaCppFiles(type: String) throws {
        let scratch = try TemporaryDirectory()
        let path = scratch.file("tiny-llama-\(type).gguf")
        _ = try GGUFLlamaConverter.convert(directory: Self.model, output: try #require(GGUFLlamaConverter.Output(name: type)), to: path)
        #expect(SHA256.hex(try readBytes(path)) == (try Self.recordedSHA("gguf/tiny-llama-\(type).gguf")), "\(type): not llama.cpp's bytes")
        let result = try runParity(["verify", "tiny-llama", "--file", path])
        #expect(result.status == 0, "\(type): exit \(result.status)\n\(Self.summary(result.stdout).joined(separator: "\n"))")
        #expect(Self.summary(result.stdout).first?.hasPrefix("  PASS  tiny-llama  gguf \(type)  ") == true)
    }

    @Test("mlx-lm's own directories (regenerated byte-identical) pass verify --file",
          arguments: try nonEmpty([("float32", "float32"), ("float16", "float16"), ("q4-g64", "q4-g64"), ("q8-g64", "q8-g64")].map { $0 }, "mlx-lm dirs"))
    func mlxLMDirectories(variant: String, ecosystemName: String) throws {
        let conversions = Repo.fixtures + "/llama/mlx-llama-conversions.json"
        let entry = try required(try required(try fixtureJSON(conversions), "variants", in: conversions), variant, in: conversions)
        let (dtype, quantization) = try MLXLlamaConverterTests.request(try #require(try required(entry, "mlx_lm_command", in: conversions).stringValue))
        let scratch = try TemporaryDirectory()
        let out = scratch.file("tiny-llama-\(variant)")
        try MLXLlamaConverter.convert(directory: Self.model, dtype: dtype, quantization: quantization, to: out)
        // config.json and the index are the ecosystem file's bytes; model.safetensors holds mlx-lm's tensors byte for byte
        // (the whole file's header differs: mlx-lm's safetensors writer orders and pads it its own way).
        for file in ["config.json", "model.safetensors.index.json"] {
            #expect(SHA256.hex(try readBytes(out + "/" + file)) == (try Self.recordedSHA("mlx/tiny-llama-\(ecosystemName)/\(file)")),
                    "\(variant) \(file): not mlx_lm convert's bytes")
        }
        let written = try SafetensorsFile(path: out + "/model.safetensors")
        let theirs = try #require(try required(try required(entry, "mlx_lm", in: conversions), "tensors", in: conversions).objectValue)
        for (name, row) in try nonEmpty(theirs, "mlx-lm tensors") {
            let e = try #require(written.entry(named: name), "\(variant): no \(name)")
            #expect(SHA256.hex(try written.rawBytes(e)) == row.arrayValue?[2].stringValue, "\(variant) \(name): not mlx-lm's bytes")
        }
        #expect(written.entries.count == theirs.count)
        let result = try runParity(["verify", "tiny-llama", "--file", out])
        #expect(result.status == 0, "\(variant): exit \(result.status)\n\(Self.summary(result.stdout).joined(separator: "\n"))")
    }

    /// The planted mistake of Fixtures/llama (tools/llama/planted_no_qk_permutation.py): convert_hf_to_gguf's f32 file
    /// with the Q/K permutation replaced by the identity. Rebuilt here from Parity's f32 GGUF by writing the checkpoint's
    /// own Q/K rows over the permuted ones; its SHA-256 is the recorded planted file's.
    static func plantedNoPermutation(in scratch: TemporaryDirectory) throws -> String {
        let path = scratch.file("tiny-llama-f32-no-qk-permutation.gguf")
        _ = try GGUFLlamaConverter.convert(directory: model, output: .converter(.f32), to: path)
        let gguf = try GGUFFile(path: path)
        let checkpoint = try SafetensorsFile(path: model + "/model.safetensors")
        var bytes = try readBytes(path)
        var replaced = 0
        for tensor in gguf.tensors where tensor.name.hasSuffix(".attn_q.weight") || tensor.name.hasSuffix(".attn_k.weight") {
            let layer = tensor.name.split(separator: ".")[1]
            let hfName = "model.layers.\(layer).self_attn.\(tensor.name.hasSuffix("attn_q.weight") ? "q" : "k")_proj.weight"
            let rows = try checkpoint.rawBytes(try #require(checkpoint.entry(named: hfName)))
            #expect(tensor.type == .f32 && rows.count == tensor.byteCount, "\(tensor.name): F32 of the checkpoint's size")
            let start = gguf.dataStart + tensor.offset
            bytes.replaceSubrange(start..<start + rows.count, with: rows)
            replaced += 1
        }
        #expect(replaced == 6, "Q and K of 3 layers")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(SHA256.hex(bytes) == (try recordedSHA("planted/tiny-llama-f32-no-qk-permutation.gguf")), "the recorded planted file's bytes")
        return path
    }

    @Test("the planted GGUF without the Q/K permutation fails (exit 1): first divergence at layer 0's Q projection, KL and top-1 out of bounds")
    func plantedFails() throws {
        let scratch = try TemporaryDirectory()
        let path = try Self.plantedNoPermutation(in: scratch)
        let result = try runParity(["verify", "tiny-llama", "--file", path, "--kv-cache", "f32", "--flash-attn", "off"])
        #expect(result.status == 1, "exit \(result.status)")
        let line = try #require(Self.summary(result.stdout).first)
        #expect(line.hasPrefix("  FAIL  tiny-llama  gguf f32  ") && line.contains("first divergence: model.layers.0.self_attn.q_proj"), "\(line)")
        // llama.cpp itself computes this file with top-1 0.578 (37 of 64) and KL mean 0.483 (Fixtures/llama/README.md).
        let logits = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("logits vs float64 reference") })
        #expect(logits.contains("top-1 37/64") && logits.contains("FAIL: KL mean"), "\(logits)")
    }

    @Test("layer-diff on the planted GGUF diagnoses Q/K rows without llama.cpp's permutation at layer 0")
    func plantedDiagnosis() throws {
        let scratch = try TemporaryDirectory()
        let path = try Self.plantedNoPermutation(in: scratch)
        let result = try runParity(["layer-diff", "tiny-llama", path])
        #expect(result.status == 1, "exit \(result.status)")
        for projection in ["q_proj", "k_proj"] {
            #expect(result.stdout.contains("diagnosis at model.layers.0.self_attn.\(projection) [qk-rope-unpermuted]"),
                    "\(projection):\n\(result.stdout.split(separator: "\n").filter { $0.contains("diagnosis") }.joined(separator: "\n"))")
        }
    }

    @Test("an MLX directory whose quantization config contradicts its tensors: mlx-lm reads the tensors, Parity warns and verifies them")
    func mlxQuantizationConfigDisagrees() throws {
        let scratch = try TemporaryDirectory()
        let out = scratch.file("q4")
        try MLXLlamaConverter.convert(directory: Self.model, dtype: nil, quantization: MLXQuantParameters(mode: "affine", groupSize: 64, bits: 4), to: out)
        let configPath = out + "/config.json"
        let text = String(decoding: try readBytes(configPath), as: UTF8.self)
        #expect(text.contains("\"bits\": 4"), "the converter wrote 4-bit")
        try Data(text.replacingOccurrences(of: "\"bits\": 4", with: "\"bits\": 8").utf8).write(to: URL(fileURLWithPath: configPath))
        let result = try runParity(["verify", "tiny-llama", "--file", out])
        #expect(result.stdout.contains("warning: \(configPath): key \"quantization\" says affine 8-bit group 64, but 23 module(s) are stored otherwise"),
                "\(result.stdout.split(separator: "\n").filter { $0.contains("warning") })")
        #expect(result.status == 0, "the tensors themselves are a correct 4-bit file: exit \(result.status)")
    }

    @Test("a GGUF llama.cpp refuses fails (exit 1) naming the loader's rule; a file that is not GGUF is bad input (exit 2)")
    func refusedAndBadInput() throws {
        // Written by gguf-py, refused by libllama with this message (Fixtures/llama/reader/manifest.json).
        let scratch = try TemporaryDirectory()
        let refused = try runParity(["verify", "tiny-llama", "--file", Repo.fixtures + "/llama/reader/extra-tensor.gguf", "--json", scratch.file("r.json")])
        let schema = JSONSchemaValidator(root: try JSONParser.parse(readBytes(Repo.root + "/tools/schemas/parity-report.schema.json")))
        #expect(schema.validate(try JSONParser.parse(readBytes(scratch.file("r.json")))) == [], "a refused file's report follows the schema")
        #expect(refused.status == 1, "exit \(refused.status)")
        #expect(refused.stdout.contains("FAIL: llama.cpp") && refused.stdout.contains("wrong number of tensors"),
                "\(refused.stdout.split(separator: "\n").filter { $0.contains("FAIL") })")
        let garbage = scratch.file("garbage.gguf")
        try Data("GGUF but not really".utf8).write(to: URL(fileURLWithPath: garbage))
        let bad = try runParity(["verify", "tiny-llama", "--file", garbage])
        #expect(bad.status == 2, "exit \(bad.status): \(bad.stdout.suffix(500))")
    }
}
