import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify
import Testing

/// The weight check on tiny-llama: every tensor of every Llama file read as its runtime reads it (llama.cpp's
/// loader, mlx_lm.load, load_state_dict) and compared with the Hugging Face reference, Q/K rows in the order the
/// runtime's RoPE needs — derived from the reader's RoPE convention, not from the converter.
@Suite("Weight check of every tiny-llama tensor (GGUF, MLX, safetensors)")
struct LlamaWeightTests {
    static let model = Repo.golden + "/tiny-llama"
    static let reference = Result { try SafetensorsFile(path: model + "/model.safetensors") }
    /// tiny-llama: 3 layers × 9 tensors, plus embedding, final norm and the untied output.
    static let tensorCount = 3 * 9 + 3

    /// Parity's GGUF of tiny-llama, with tensors rewritten by `edit` (nil keeps one) and the `dropped` ones left out.
    static func gguf(_ output: GGUFLlamaConverter.Output, in scratch: TemporaryDirectory, dropping dropped: Set<String> = [],
                     edit: (GGUFWriter.Tensor) throws -> [UInt8]? = { _ in nil }) throws -> GGUFLlamaWeights {
        let (writer, _) = try GGUFLlamaConverter.build(directory: model, output: output)
        var out = try GGUFWriter(architecture: "llama", alignment: writer.alignment)
        for (key, value) in writer.metadata { try out.set(key, value) }
        for t in writer.tensors where !dropped.contains(t.name) { try out.add(name: t.name, type: t.type, ne: t.ne, bytes: try edit(t) ?? t.bytes) }
        let path = scratch.file("tiny-llama.gguf")
        try out.write(to: path)
        switch try GGUFLlamaWeights.load(path: path) {
        case let .success(w): return w
        case let .failure(refusal): throw refusal
        }
    }

    /// Little-endian f32 bytes.
    static func f32Bytes(_ values: [Float]) -> [UInt8] { values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } } }

    static func expectEveryTensorChecked(_ report: WeightReport, _ label: String) throws {
        let reference = try Self.reference.get()
        #expect(report.tensors.count == Self.tensorCount, "\(label): \(report.tensors.map(\.fileName))")
        #expect(Set(report.tensors.compactMap(\.referenceName)).count == Self.tensorCount, "\(label): every reference parameter once")
        for t in report.tensors {
            let name = try #require(t.referenceName, "\(label): \(t.fileName) has no reference (\(t.status.rawValue))")
            let count = try #require(reference.entry(named: name)).shape.reduce(1, *)
            #expect(t.status == .pass, "\(label): \(t.fileName) (\(name)) \(t.status.rawValue): \(t.detail ?? "") \(t.diagnosis ?? "") worst \(t.worst.map { "\($0)" } ?? "-")")
            #expect(t.elements == count, "\(label): \(t.fileName) checked \(t.elements) of \(count) elements")
        }
    }

    @Test("Parity's GGUF: every tensor within bounds; Q/K read in llama.cpp's permuted order; dense exact (RNE), quantized byte-identical to ggml's reference quantizer",
          arguments: try nonEmpty(["f32", "f16", "bf16", "q8_0", "Q4_0", "Q4_K_M", "Q6_K"], "GGUF outputs"))
    func ggufFormats(name: String) throws {
        let scratch = try TemporaryDirectory()
        let output = try #require(GGUFLlamaConverter.Output(name: name))
        let source = try Self.gguf(output, in: scratch)
        let start = Date()
        let report = try WeightVerifier.verify(llama: source, reference: try Self.reference.get())
        print("weight check tiny-llama gguf \(name): \(String(format: "%.3f", Date().timeIntervalSince(start))) s, \(report.bytesChecked) bytes")
        try Self.expectEveryTensorChecked(report, "gguf \(name)")
        for t in report.tensors {
            let type = try #require(GGMLType.named(t.storedType), "\(t.fileName): type \(t.storedType)")
            if type == .f32 || type == .f16 || type == .bf16 {
                // A dense tensor passes only if every element is the reference's round-to-nearest-even: byte identity.
                #expect(t.elementsOutOfBounds == 0 && t.blocks == 0 && t.identicalToReferenceQuantizer == true)
            } else {
                // llama-quantize without an importance matrix and convert_hf_to_gguf's q8_0 run ggml's reference quantizer.
                #expect(t.identicalToReferenceQuantizer == true, "\(t.fileName) \(t.storedType) not identical to ggml's reference quantizer")
                #expect(t.blocks == t.elements / type.blockSize)
            }
            let isQueryKey = t.fileName.hasSuffix("attn_q.weight") || t.fileName.hasSuffix("attn_k.weight")
            #expect(t.layout.contains("adjacent pairs") == isQueryKey, "\(t.fileName): \(t.layout)")
        }
        let q = try #require(report.tensors.first { $0.fileName == "blk.0.attn_q.weight" })
        #expect(q.referenceName == "model.layers.0.self_attn.q_proj.weight" && q.layout.contains("8 heads of 32"))
        let k = try #require(report.tensors.first { $0.fileName == "blk.0.attn_k.weight" })
        #expect(k.layout.contains("4 heads of 32"), "K has the file's head_count_kv heads: \(k.layout)")
    }

    @Test("Parity's MLX directories: every tensor within bounds; affine modes byte-identical to mx.quantize",
          arguments: try nonEmpty(["f32", "f16", "q4-g64", "q8-g64", "mxfp4"], "MLX variants"))
    func mlxFormats(name: String) throws {
        let scratch = try TemporaryDirectory()
        let (dtype, quantization): (String?, MLXQuantParameters?) = switch name {
        case "f32": ("float32", nil)
        case "f16": ("float16", nil)
        case "q4-g64": (nil, MLXQuantParameters(mode: "affine", groupSize: 64, bits: 4))
        case "q8-g64": (nil, MLXQuantParameters(mode: "affine", groupSize: 64, bits: 8))
        default: (nil, MLXQuantParameters(mode: "mxfp4", groupSize: 32, bits: 4))
        }
        try MLXLlamaConverter.convert(directory: Self.model, dtype: dtype, quantization: quantization, to: scratch.file("mlx"))
        let source = try MLXLlamaWeights.load(directory: scratch.file("mlx"))
        #expect(!source.loading.refused)
        let start = Date()
        let report = try WeightVerifier.verify(llama: source, reference: try Self.reference.get())
        print("weight check tiny-llama mlx \(name): \(String(format: "%.3f", Date().timeIntervalSince(start))) s, \(report.bytesChecked) bytes")
        try Self.expectEveryTensorChecked(report, "mlx \(name)")
        let quantized = report.tensors.filter { $0.blocks > 0 }
        // embed_tokens, 7 projections per layer and lm_head are quantized; the norms stay float.
        #expect(quantized.count == (quantization == nil ? 0 : 1 + 3 * 7 + 1))
        if quantization?.mode == "affine" {
            for t in quantized { #expect(t.identicalToReferenceQuantizer == true, "\(t.fileName) not identical to mx.quantize") }
        }
        // mlx-lm rotates halves (rope_traditional false): Q/K rows are compared in the checkpoint's order.
        #expect(report.tensors.allSatisfy { !$0.layout.contains("adjacent pairs") })
    }

    @Test("GGUF whose Q/K rows are in the checkpoint's order: fails at blk.0.attn_q.weight, diagnosed as not permuted for llama.cpp's RoPE")
    func queryKeyNotPermuted() throws {
        let scratch = try TemporaryDirectory()
        let reference = try Self.reference.get()
        let source = try Self.gguf(.converter(.f32), in: scratch) { t in
            guard let layer = t.name.split(separator: ".").dropFirst().first.flatMap({ Int($0) }) else { return nil }
            if t.name.hasSuffix("attn_q.weight") { return Self.f32Bytes(try reference.tensor(named: LlamaTensorRole.query.referenceName(layer: layer)).data) }
            if t.name.hasSuffix("attn_k.weight") { return Self.f32Bytes(try reference.tensor(named: LlamaTensorRole.key.referenceName(layer: layer)).data) }
            return nil
        }
        let report = try WeightVerifier.verify(llama: source, reference: reference)
        #expect(!report.passed)
        let failing = report.failing.map(\.fileName)
        #expect(failing == (0..<3).flatMap { ["blk.\($0).attn_q.weight", "blk.\($0).attn_k.weight"] }, "\(failing)")
        let first = try #require(report.failing.first)
        #expect(first.fileName == "blk.0.attn_q.weight" && first.status == .outOfBounds)
        #expect(first.diagnosis?.hasPrefix("[qk-not-permuted] blk.0.attn_q.weight") == true, "\(first.diagnosis ?? "no diagnosis")")
    }

    @Test("GGUF without output.weight (tied) from a checkpoint with its own lm_head: the output llama.cpp computes (token_embd) fails against lm_head.weight")
    func tiedOutputReadsEmbedding() throws {
        let scratch = try TemporaryDirectory()
        let source = try Self.gguf(.converter(.f32), in: scratch, dropping: ["output.weight"])
        #expect(source.hyperparameters.tiedEmbeddings)
        let report = try WeightVerifier.verify(llama: source, reference: try Self.reference.get())
        #expect(report.tensors.count == Self.tensorCount)
        let output = try #require(report.tensors.last)
        #expect(output.referenceName == "lm_head.weight" && output.fileName == "token_embd.weight", "\(output.fileName) vs \(output.referenceName ?? "-")")
        #expect(output.layout.hasPrefix("tied: the file has no separate output matrix"), "\(output.layout)")
        #expect(output.status == .outOfBounds && report.failing.map(\.fileName) == ["token_embd.weight"])
        let embedding = try #require(report.tensors.first)
        #expect(embedding.fileName == "token_embd.weight" && embedding.status == .pass, "the embedding itself is right")
    }

    @Test("GGUF whose Q/K rows are permuted twice: diagnosed as permuted twice")
    func queryKeyPermutedTwice() throws {
        let scratch = try TemporaryDirectory()
        let h = try ReferenceLlamaSource().hyperparameters
        let source = try Self.gguf(.converter(.f32), in: scratch) { t in
            guard t.name.hasSuffix("attn_q.weight") || t.name.hasSuffix("attn_k.weight") else { return nil }
            let rows = t.ne[1], cols = t.ne[0]
            let stored = t.bytes.withUnsafeBytes { b in (0..<(rows * cols)).map { Float(bitPattern: b.load(fromByteOffset: 4 * $0, as: UInt32.self)) } }
            let heads = t.name.hasSuffix("attn_q.weight") ? h.headCount : h.keyValueHeadCount
            return Self.f32Bytes(ReferenceLlamaSource.convertHFToGGUFPermute(stored, rows: rows, cols: cols, heads: heads))
        }
        let report = try WeightVerifier.verify(llama: source, reference: try Self.reference.get())
        #expect(report.failing.count == 6)
        for t in report.failing {
            #expect(t.diagnosis?.hasPrefix("[qk-permuted-twice] \(t.fileName)") == true, "\(t.fileName): \(t.diagnosis ?? "no diagnosis")")
        }
    }

    @Test("Q4_K_M: one corrupted element of blk.1.attn_q.weight is named by tensor, block, row, column and its reference position")
    func corruptedElement() throws {
        let scratch = try TemporaryDirectory()
        // block_q4_K: d (f16), dmin (f16), 12 bytes of 6-bit scales, 128 bytes of nibbles; element 0 of a block is the
        // low nibble of qs[0], at byte 16. ne [256, 256]: one block per row, so block 37 is stored row 37.
        let block = 37, blockBytes = 144
        let source = try Self.gguf(.mix(.Q4_K_M), in: scratch) { t in
            guard t.name == "blk.1.attn_q.weight" else { return nil }
            try #require(t.type == .q4_K, "Q4_K_M stores attn_q as q4_K")
            var bytes = t.bytes
            let at = block * blockBytes + 16
            let q = bytes[at] & 0x0F
            bytes[at] = (bytes[at] & 0xF0) | (q < 8 ? 15 : 0)  // at least 8 steps from the stored code
            return bytes
        }
        let report = try WeightVerifier.verify(llama: source, reference: try Self.reference.get())
        #expect(report.failing.map(\.fileName) == ["blk.1.attn_q.weight"])
        let t = try #require(report.failing.first)
        #expect(t.elementsOutOfBounds == 1 && t.blocksOutOfBounds == 1, "\(t.elementsOutOfBounds) elements, \(t.blocksOutOfBounds) blocks")
        let issue = try #require(t.issues.first)
        #expect(issue.block == block && issue.row == block && issue.column == 0, "\(issue)")
        // Stored row 37 of Q (heads of 32): head 1, 2i+p = 5 → i = 2, p = 1 → reference row 32 + 16 + 2 = 50.
        #expect(issue.storedIndex == block * 256 && issue.referenceIndex == 50 * 256, "\(issue)")
    }

    @Test("Q4_K_M: one doubled super-block scale of blk.1.ffn_up.weight is named by tensor, block and row")
    func corruptedScale() throws {
        let scratch = try TemporaryDirectory()
        let block = 100, blockBytes = 144
        let source = try Self.gguf(.mix(.Q4_K_M), in: scratch) { t in
            guard t.name == "blk.1.ffn_up.weight" else { return nil }
            try #require(t.type == .q4_K, "Q4_K_M stores ffn_up as q4_K")
            var bytes = t.bytes
            let at = block * blockBytes
            let d = UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8
            let doubled = d + 0x0400  // f16 exponent + 1: d × 2 (d is a normal, finite scale)
            bytes[at] = UInt8(doubled & 0xFF)
            bytes[at + 1] = UInt8(doubled >> 8)
            return bytes
        }
        let report = try WeightVerifier.verify(llama: source, reference: try Self.reference.get())
        #expect(report.failing.map(\.fileName) == ["blk.1.ffn_up.weight"])
        let t = try #require(report.failing.first)
        #expect(t.blocksOutOfBounds == 1 && t.elementsOutOfBounds > 0, "\(t.elementsOutOfBounds) elements, \(t.blocksOutOfBounds) blocks")
        // ne [256, 512]: one block per row, so block 100 is row 100; every issue lies in it.
        #expect(!t.issues.isEmpty && t.issues.allSatisfy { $0.block == block && $0.row == block && (0..<256).contains($0.column) }, "\(t.issues)")
        let worst = try #require(t.worst)
        #expect(worst.block == block && worst.row == block)
    }

    @Test("verify of a Llama engine carries the weight section: every tensor of the reference checkpoint through the PyTorch engine")
    func comparatorIncludesWeights() throws {
        let model = try Repo.model("tiny-llama")
        let engine = try PyTorchEngine(weights: model.weights(), model: model.config)
        let report = try Comparator.verify(model: model, golden: try model.golden(), engine: engine, format: "safetensors", variant: "f32",
                                           file: model.weightsPath)
        let weights = try #require(report.weights, "no weight section")
        try Self.expectEveryTensorChecked(weights, "safetensors f32")
        #expect(!report.notes.contains { $0.contains("weights were not checked") })
        // Each tensor names the graph node that reads it, so a failing tensor's activations can be shown next to it.
        let nodes = Set(report.layers.map(\.name))
        #expect(weights.tensors.allSatisfy { $0.layer.map(nodes.contains) == true }, "\(weights.tensors.compactMap(\.layer).filter { !nodes.contains($0) })")
    }
}
