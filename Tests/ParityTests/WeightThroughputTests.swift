import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify
import Testing

/// The weight check on a synthetic model large enough to time: a reference safetensors and a GGUF (ggml's mnist-fc
/// layout) of the same matrix in F16 and Q8_0, read through the GGML engine's reading. 8 MiB of f32 by default keeps
/// the suite fast; PARITY_WEIGHTS_BENCH_MIB=512 (in a release build) measures throughput.
@Suite("weights: throughput")
struct WeightThroughputTests {
    @Test("a large F16 / Q8_0 GGUF is checked in bounded memory; GB/s printed", arguments: try nonEmpty([GGMLType.f16, .q8_0], "test arguments"))
    func throughput(type: GGMLType) throws {
        let mib = Int(ProcessInfo.processInfo.environment["PARITY_WEIGHTS_BENCH_MIB"] ?? "") ?? 8
        let inF = 4096, outF = max(1, mib << 20 / 4 / inF)
        let dir = try TemporaryDirectory()
        // One Linear layer is not mnist-fc's structure (a config declaring mnist-fc must have it), so the config
        // names an architecture of its own; the GGUF still says mnist-fc, the graph ggml runs for Linear layers.
        let config = """
            {"name": "synthetic", "architecture": "synthetic-fc", "task": "image-classification", "classes": [],
             "input": {"name": "x", "shape": [\(inF)], "layout": "NC", "dtype": "float32", "preprocessing": "none"},
             "layers": [{"name": "fc1", "op": "Linear", "in_features": \(inF), "out_features": \(outF), "bias": true}],
             "weights": "model.safetensors", "reference_framework": "synthetic"}
            """
        try writeBytes(Array(config.utf8), to: dir.file("config.json"))
        var rng = WeightTestRandom(seed: 42)
        let w = (0..<(inF * outF)).map { _ in rng.normal() * 0.02 }
        let b = (0..<outF).map { _ in rng.normal() }
        var st = SafetensorsWriter()
        try st.add(name: "fc1.weight", tensor: Tensor(shape: [outF, inF], data: w))
        try st.add(name: "fc1.bias", tensor: Tensor(shape: [outF], data: b))
        try st.write(to: dir.file("model.safetensors"))
        var gguf = try GGUFWriter(architecture: "mnist-fc")
        try gguf.add(name: "fc1.weight", type: type, ne: [inF, outF], bytes: try GGMLQuants.quantize(w, to: type))
        try gguf.add(name: "fc1.bias", type: .f32, ne: [outF], bytes: b.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })
        try gguf.write(to: dir.file("m.gguf"))
        let model = try ReferenceModel(directory: dir.path)
        let engine = try GGMLEngine(file: GGUFFile(path: dir.file("m.gguf")), layers: model.config.layers)
        let report = try #require(try WeightVerifier.verify(engine: engine, model: model))
        #expect(report.passed, "\(report.failing.map { "\($0.fileName): \($0.issues.first.map { "\($0)" } ?? "")" })")
        #expect(report.tensors.first?.identicalToReferenceQuantizer == true)
        let gbps = Double(report.bytesChecked) / max(report.seconds, 1e-9) / 1e9
        print("weight check \(type.name): \(report.bytesChecked) bytes (\(inF * outF) weights) in \(String(format: "%.3f", report.seconds)) s = \(String(format: "%.3f", gbps)) GB/s of stored data, \(String(format: "%.1f", Double(inF * outF) / report.seconds / 1e6)) M weights/s")
    }

    @Test("a large MLX nvfp4 / mxfp4 / affine-b4 / affine-b8 model is checked; M weights/s printed",
          arguments: try nonEmpty([("nvfp4", 0), ("mxfp4", 0), ("affine", 4), ("affine", 8)], "test arguments"))
    func mlxThroughput(mode: String, bits: Int) throws {
        let mib = Int(ProcessInfo.processInfo.environment["PARITY_WEIGHTS_BENCH_MIB"] ?? "") ?? 8
        let inF = 4096, outF = max(64, mib << 20 / 4 / inF / 64 * 64)
        let dir = try TemporaryDirectory()
        // mnist-fc's structure (MLX's converter has a layout for it) at 64×64 inputs: fc1 is the matrix timed.
        let config = """
            {"name": "synthetic", "architecture": "mnist-fc", "task": "image-classification", "classes": [],
             "input": {"name": "x", "shape": [1, 64, 64], "layout": "NCHW", "dtype": "float32", "preprocessing": "none"},
             "layers": [{"name": "flatten", "op": "Flatten", "start_dim": 1},
                        {"name": "fc1", "op": "Linear", "in_features": \(inF), "out_features": \(outF), "bias": true},
                        {"name": "relu1", "op": "ReLU"},
                        {"name": "fc2", "op": "Linear", "in_features": \(outF), "out_features": 10, "bias": true}],
             "weights": "model.safetensors", "reference_framework": "synthetic"}
            """
        try writeBytes(Array(config.utf8), to: dir.file("config.json"))
        var rng = WeightTestRandom(seed: 42)
        let w = (0..<(inF * outF)).map { _ in rng.normal() * 0.02 }
        let b = (0..<outF).map { _ in rng.normal() }
        var st = SafetensorsWriter()
        try st.add(name: "fc1.weight", tensor: Tensor(shape: [outF, inF], data: w))
        try st.add(name: "fc1.bias", tensor: Tensor(shape: [outF], data: b))
        try st.add(name: "fc2.weight", tensor: Tensor(shape: [10, outF], data: (0..<(10 * outF)).map { _ in rng.normal() * 0.02 }))
        try st.add(name: "fc2.bias", tensor: Tensor(shape: [10], data: (0..<10).map { _ in rng.normal() }))
        try st.write(to: dir.file("model.safetensors"))
        let model = try ReferenceModel(directory: dir.path)
        let parameters = mode == "affine" ? MLXQuantParameters(mode: mode, groupSize: 64, bits: bits)
            : MLXQuantParameters(mode: mode, groupSize: mode == "nvfp4" ? 16 : 32, bits: 4)
        _ = try MLXConverter.convert(model, dtype: "bf16", quantization: parameters, to: dir.file("mlx"))
        let engine = try MLXEngine(files: MLXModelFiles.load(path: dir.file("mlx")), layers: model.config.layers, model: model.config)
        let report = try #require(try WeightVerifier.verify(engine: engine, model: model))
        #expect(report.passed, "\(report.failing.map { "\($0.fileName): \($0.issues.first.map { "\($0)" } ?? "")" })")
        let label = mode == "affine" ? "affine-b\(bits)" : mode
        print("weight check MLX \(label): \(report.bytesChecked) bytes (\(inF * outF) weights) in \(String(format: "%.3f", report.seconds)) s = \(String(format: "%.1f", Double(inF * outF) / report.seconds / 1e6)) M weights/s")
    }
}
