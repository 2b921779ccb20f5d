import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify
import Testing

@Suite("MLX files, converter and engine")
struct MLXTests {
    static let cases: [(String, String)] = Repo.bundledModels.flatMap { m in MLXSupport().variants.map { (m, $0.label) } }

    @Test("gate: every layer within the MLX policy, for directories, .safetensors and .npz", arguments: try nonEmpty(cases, "bundled models × MLX variants"))
    func gate(modelName: String, variant: String) throws {
        let model = try Repo.model(modelName)
        let golden = try model.golden()
        let dir = try TemporaryDirectory()
        for output in [dir.file("model"), dir.file("weights.safetensors"), dir.file("weights.npz")] {
            // A weights-only quantized file has no config.json: the engine reads its quantization from the shapes.
            _ = try MLXSupport().convert(model, variant: variant, to: output)
            #expect(try FormatRegistry.detect(output).name == "mlx")
            let report = try MLXSupport().verify(output, model: model, golden: golden)
            #expect(report.variant == variant)
            printMargins(report, "mlx \(modelName) \(variant) \(output.split(separator: "/").last ?? "")")
            for layer in try nonEmpty(report.layers, "\(output) report layers") {
                #expect(layer.status == .pass, "\(output) \(layer.name): \(layer.status.label) \(layer.status.detail)")
            }
            #expect(report.passed)
        }
    }

    @Test("the CNN is written in mlx.nn's layouts: conv [out, kh, kw, in], dense columns in (h, w, c) order")
    func cnnLayout() throws {
        let dir = try TemporaryDirectory()
        let model = try Repo.model("fmnist-cnn")
        _ = try MLXConverter.convert(model, dtype: "f32", quantization: nil, to: dir.file("m"))
        let files = try MLXModelFiles.load(path: dir.file("m"))
        #expect(files.tensors.map(\.name) == ["conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight", "dense.bias", "dense.weight"])
        #expect(files.tensor("conv2.weight")?.shape == [16, 3, 3, 8])
        #expect(files.tensor("dense.weight")?.shape == [10, 784], "Linear stays [out, in]: not transposed")
        let reference = try model.weights()
        let conv = try #require(files.tensor("conv2.weight")?.floats())
        let refConv = try reference.tensor(named: "conv2.weight")
        // [o, ky, kx, i] holds PyTorch's [o, i, ky, kx].
        let convIndex = ((5 * 3 + 1) * 3 + 2) * 8 + 7, refConvIndex = ((5 * 8 + 7) * 3 + 1) * 3 + 2
        #expect(conv[convIndex] == refConv.data[refConvIndex])
        let dense = try #require(files.tensor("dense.weight")?.floats())
        let refDense = try reference.tensor(named: "dense.weight")
        let denseIndex = 3 * 784 + (4 * 7 + 6) * 16 + 9, refDenseIndex = 3 * 784 + 9 * 49 + 4 * 7 + 6
        #expect(dense[denseIndex] == refDense.data[refDenseIndex])
        let st = try SafetensorsFile(path: dir.file("m/model.safetensors"))
        #expect(st.metadata.map(\.key) == ["format"] && st.metadata[0].value == "mlx")
        let headerBytes = try readBytes(dir.file("m/model.safetensors"))[8..<(8 + st.headerSize)]
        #expect(headerBytes.last == UInt8(ascii: "}"), "MLX does not pad its header with spaces")
        let config = try #require(files.config)
        #expect(config["model_type"]?.stringValue == "mnist-cnn")
        #expect(config["quantization"] == nil)
    }

    @Test("nvfp4: only Linear layers whose width divides by 16 are quantized, config.json says how, and the rest is noted")
    func quantizedConversion() throws {
        let dir = try TemporaryDirectory()
        let notes = try MLXConverter.convert(try Repo.model("fmnist-mlp"), dtype: "f16", quantization: MLXQuantParameters(mode: "nvfp4", groupSize: 16, bits: 4), to: dir.file("m"))
        let files = try MLXModelFiles.load(path: dir.file("m"))
        #expect(files.tensor("fc1.weight")?.dtype == .u32 && files.tensor("fc1.weight")?.shape == [500, 98])
        #expect(files.tensor("fc1.scales")?.dtype == .u8 && files.tensor("fc1.scales")?.shape == [500, 49])
        #expect(files.tensor("fc2.weight")?.dtype == .f16, "500 is not a multiple of 16")
        #expect(notes.contains { $0.contains("fc2.weight: last dimension 500 is not a multiple of group size 16; left unquantized") })
        #expect(files.quantization == MLXQuantParameters(mode: "nvfp4", groupSize: 16, bits: 4))
        #expect(files.config?["quantization_config"] == files.config?["quantization"])
        #expect(try files.quantization(forModule: "fc1") != nil && files.quantization(forModule: "fc2") == nil)
        #expect(throws: ParityError.self) { try MLXConverter.convert(try Repo.model("fmnist-mlp"), dtype: "f32", quantization: MLXQuantParameters(mode: "affine", groupSize: 16, bits: 4), to: dir.file("x")) }
    }

    @Test("a dense weight transposed (seed 004's `.T`) is caught at dense with a clear message")
    func transposedDense() throws {
        let model = try Repo.model("fmnist-cnn")
        let dir = try TemporaryDirectory()
        _ = try MLXConverter.convert(model, dtype: "f32", quantization: nil, to: dir.file("m"))
        let files = try MLXModelFiles.load(path: dir.file("m"))
        let tensors = files.tensors.map { t -> RawTensor in
            guard t.name == "dense.weight" else { return t }
            let transposed = Tensor(shape: t.shape, data: t.floats()!).permuted([1, 0])
            return RawTensor(name: t.name, dtype: .f32, shape: transposed.shape, bytes: ElementCodec.encode(transposed.data, as: .f32)!)
        }
        try MLXWriter.write(tensors, config: files.config, to: dir.file("bad"))
        let report = try MLXSupport().verify(dir.file("bad"), model: model, golden: try model.golden())
        #expect(report.firstDivergence?.name == "dense")
        #expect(report.layers.last?.status == .error("parameter 'dense.weight' has shape [784, 10]; mlx.nn expects [10, 784]"))
        for layer in try nonEmpty(report.layers.dropLast(), "layers before dense") { #expect(layer.status == .pass, "\(layer.name)") }
    }

    @Test("a PyTorch-layout conv weight in an MLX file fails at conv1, not later")
    func pytorchLayoutConv() throws {
        let model = try Repo.model("fmnist-cnn")
        let dir = try TemporaryDirectory()
        let source = try model.weights()
        // Same shapes as mlx.nn expects only because in=1 for conv1: OIHW [8,1,3,3] reshaped to [8,3,3,1] is the
        // classic silent mistake; for conv2 the shape check catches it.
        var tensors: [RawTensor] = []
        for entry in source.entries {
            var t = try source.tensor(entry)
            if entry.name == "conv2.weight" { t = t.permuted([0, 2, 3, 1]) }
            if entry.name == "dense.weight" { t = t.reshaped([10, 16, 7, 7]).permuted([0, 2, 3, 1]).reshaped([10, 784]) }
            if entry.name == "conv1.weight" { t = t.reshaped([8, 3, 3, 1]).permuted([0, 2, 1, 3]) }  // kh/kw swapped
            tensors.append(RawTensor(name: entry.name, dtype: .f32, shape: t.shape, bytes: ElementCodec.encode(t.data, as: .f32)!))
        }
        try MLXWriter.write(tensors, config: nil, to: dir.file("w.safetensors"))
        let report = try MLXSupport().verify(dir.file("w.safetensors"), model: model, golden: try model.golden())
        #expect(report.firstDivergence?.name == "conv1")
    }

    @Test("npz files written by real MLX read as MLX reads them: bfloat16 as '<V2', column-major members")
    func npzFromMLX() throws {
        // tools/mlx fixture (see Fixtures/mlx-runtime/manifest.json): mx.savez of a bf16 vector and a transposed matrix.
        let path = Repo.fixtures + "/mlx-npz/mx_savez.npz"
        let arrays = try NPZ.read(path: path)
        let byName = Dictionary(uniqueKeysWithValues: arrays.map { ($0.name, $0) })
        #expect(byName["bf16"]?.dtype == .bf16 && byName["bf16"]?.floats() == [1.5, -2, 0.0078125])
        #expect(byName["t"]?.shape == [3, 2] && byName["t"]?.floats() == [0, 3, 1, 4, 2, 5], "a.T stored column-major")
        #expect(byName["c"]?.floats() == [0, 1, 2, 3, 4, 5])
    }

    @Test("npz: MLX's .npz round-trips and malformed archives are refused with the offset")
    func npz() throws {
        let dir = try TemporaryDirectory()
        let arrays = [RawTensor(name: "a.weight", dtype: .f32, shape: [2, 3], bytes: ElementCodec.encode([1, 2, 3, 4, 5, 6], as: .f32)!),
                      RawTensor(name: "s", dtype: .u32, shape: [], bytes: [1, 0, 0, 0]),
                      RawTensor(name: "h", dtype: .f16, shape: [1], bytes: [0, 0x3C])]
        try NPZ.write(arrays, to: dir.file("x.npz"))
        #expect(try NPZ.read(path: dir.file("x.npz")) == arrays)
        var bytes = try readBytes(dir.file("x.npz"))
        for cut in [0, 10, bytes.count / 2, bytes.count - 1] {
            try writeBytes(Array(bytes[0..<cut]), to: dir.file("cut.npz"))
            #expect(throws: ParityError.self, "cut at \(cut)") { try NPZ.read(path: dir.file("cut.npz")) }
        }
        // Found by fuzzing: a deflated member declaring a huge size made the reader allocate it. Deflate expands at
        // most 1032:1, so such a size is refused before any allocation.
        var huge = bytes
        let central = (0..<(huge.count - 4)).first { huge[$0] == 0x50 && huge[$0 + 1] == 0x4B && huge[$0 + 2] == 1 && huge[$0 + 3] == 2 }!
        huge[central + 10] = 8  // method: deflate
        for k in 0..<4 { huge[central + 24 + k] = [0xFF, 0xFF, 0xFF, 0x7F][k] }  // uncompressed size 2^31 - 1
        try writeBytes(huge, to: dir.file("huge.npz"))
        #expect { try NPZ.read(path: dir.file("huge.npz")) } throws: { "\($0)".contains("cannot come from") }
        bytes[30 + "a.weight.npy".utf8.count + 1] ^= 0xFF  // inside the first member's NUMPY magic
        try writeBytes(bytes, to: dir.file("bad.npz"))
        #expect { try NPZ.read(path: dir.file("bad.npz")) } throws: { "\($0)".contains("bad magic") }
    }

    @Test("sharded mlx-lm directories are read as mlx-lm reads them: every model*.safetensors, index.json only noted")
    func shards() throws {
        let dir = try TemporaryDirectory()
        let a = RawTensor(name: "a", dtype: .f32, shape: [1], bytes: [0, 0, 128, 63])
        let b = RawTensor(name: "b", dtype: .f32, shape: [1], bytes: [0, 0, 0, 64])
        try MLXWriter.write([a], config: nil, to: dir.file("model-00001-of-00002.safetensors"))
        try MLXWriter.write([b], config: nil, to: dir.file("model-00002-of-00002.safetensors"))
        try AtomicFileWriter.write(Array(#"{"model_type": "x"}"#.utf8), to: dir.file("config.json"))
        let index = #"{"metadata": {"total_size": 8}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#
        try AtomicFileWriter.write(Array(index.utf8), to: dir.file("model.safetensors.index.json"))
        let agreeing = try MLXModelFiles.load(path: dir.path)
        #expect(agreeing.tensors == [a, b] && agreeing.notes.isEmpty, "\(agreeing.notes)")
        // mlx-lm never opens the index: a wrong map or a path outside the directory changes nothing it loads.
        let wrong = #"{"weight_map": {"a": "model-00002-of-00002.safetensors", "b": "model-00001-of-00002.safetensors"}}"#
        try AtomicFileWriter.write(Array(wrong.utf8), to: dir.file("model.safetensors.index.json"))
        let remapped = try MLXModelFiles.load(path: dir.path)
        #expect(remapped.tensors == [a, b])
        #expect(remapped.notes.contains { $0.contains("weight_map puts a in model-00002-of-00002.safetensors, but it is in model-00001-of-00002.safetensors") }, "\(remapped.notes)")
        let escape = #"{"weight_map": {"a": "../etc/passwd"}}"#
        try AtomicFileWriter.write(Array(escape.utf8), to: dir.file("model.safetensors.index.json"))
        let escaping = try MLXModelFiles.load(path: dir.path)
        #expect(escaping.tensors == [a, b])
        #expect(escaping.notes.contains { $0.contains("weight_map does not list b") }, "\(escaping.notes)")
        // The same name in two files with different bytes: which one mlx-lm keeps depends on the listing order.
        try MLXWriter.write([RawTensor(name: "a", dtype: .f32, shape: [1], bytes: [0, 0, 0, 0])], config: nil, to: dir.file("model-old.safetensors"))
        #expect { try MLXModelFiles.load(path: dir.path) } throws: { "\($0)".contains("tensor 'a' is in both model-00001-of-00002.safetensors and model-old.safetensors with different contents") }
    }

    @Test("scales without a quantization entry: mlx-lm builds a plain Linear and load_weights(strict=True) refuses (FAIL, rule named)")
    func quantizationConfigMismatch() throws {
        let model = try Repo.model("fmnist-mlp")
        let dir = try TemporaryDirectory()
        _ = try MLXConverter.convert(model, dtype: "f32", quantization: MLXQuantParameters(mode: "nvfp4", groupSize: 16, bits: 4), to: dir.file("m"))
        var config = try #require(try MLXModelFiles.load(path: dir.file("m")).config)
        guard case var .object(members) = config else { Issue.record("config.json is not an object: \(config.serialized())"); return }
        members.removeAll { $0.key == "quantization" }
        config = .object(members)
        try AtomicFileWriter.write(Array(config.serialized().utf8), to: dir.file("m/config.json"))
        let report = try MLXSupport().verify(dir.file("m"), model: model, golden: try model.golden())
        #expect(report.verdict == .fail)
        #expect(report.loadRefusals.contains { $0.hasPrefix(StrictLoadingRule.mlxStrict.runtime) && $0.hasSuffix("1 parameter(s) not in the model: fc1.scales") }, "\(report.loadRefusals)")
        #expect(report.loadRefusals.contains { $0.hasSuffix("fc1.weight has shape [500, 98], the model's is [500, 784]") }, "\(report.loadRefusals)")
    }

    @Test("quantize requantizes an MLX directory; the result still verifies")
    func requantize() throws {
        let model = try Repo.model("fmnist-cnn")
        let dir = try TemporaryDirectory()
        _ = try MLXConverter.convert(model, dtype: "f32", quantization: nil, to: dir.file("in"))
        let notes = try MLXRequantizer.requantize(input: dir.file("in"), output: dir.file("out"), parameters: MLXQuantParameters(mode: "nvfp4", groupSize: 16, bits: 4))
        #expect(notes == ["dense: nvfp4 4-bit, group 16"])
        let report = try MLXSupport().verify(dir.file("out"), model: model, golden: try model.golden())
        #expect(report.variant == "nvfp4" && report.passed)
    }
}

/// Parity's MLX engine against real MLX 0.32 (fixtures recorded by tools/mlx/record_runtime_fixtures.py from
/// files Parity wrote, loaded with `load_weights(strict=True)` into tools/mlx/models.py and run on golden inputs).
@Suite("MLX engine vs real MLX")
struct MLXRuntimeTests {
    static let dir = Repo.fixtures + "/mlx-runtime"
    static let cases = ["fmnist-cnn-f32", "fmnist-cnn-nvfp4", "fmnist-mlp-f32", "fmnist-mlp-nvfp4"]

    @Test("every recorded layer matches MLX's own output", arguments: try nonEmpty(cases, "MLX runtime fixtures"))
    func matchesMLX(name: String) throws {
        let modelName = name.hasPrefix("fmnist-cnn") ? "fmnist-cnn" : "fmnist-mlp"
        let model = try Repo.model(modelName)
        var weights = Self.dir + "/" + name
        let scratch = try TemporaryDirectory()
        if !FileManager.default.fileExists(atPath: weights) {
            // Not stored (size): the manifest gives the command; the converter is deterministic.
            weights = scratch.file("w")
            _ = try MLXSupport().convert(model, variant: String(name.dropFirst(modelName.count + 1)), to: weights)
        }
        let recorded = try SafetensorsFile(path: Self.dir + "/" + name + ".safetensors")
        let golden = try model.golden()
        let images = try Comparator.modelInput(golden)
        let input = Tensor(shape: [16] + images.shape.dropFirst(), data: Array(images.data[0..<(16 * images.count / images.shape[0])]))
        let (engine, _) = try MLXSupport().open(weights, for: model)
        var outputs: [String: Tensor] = [:]
        try GraphExecutor.run(model.config.graph, engine: engine, inputs: [model.config.graph.inputs[0].path: .floats(input)]) { outputs[$0.name] = $1.floats }
        var compared = 0
        for entry in recorded.entries where entry.name.hasPrefix("out.") {
            let layer = String(entry.name.dropFirst(4))
            let ours = try #require(outputs[layer])
            let theirs = try recorded.tensor(entry)
            #expect(ours.shape == theirs.shape)
            let m = LayerMetrics.compare(ours.data, theirs.data)
            // Both sides compute in float32 (quantized_matmul is reproduced bit for bit); only the summation order
            // of the convolutions and plain matmuls differs: the f32 policy's 1e-5 applies.
            printMargin("mlx-runtime", "\(name) \(layer) max abs", value: m.maxAbs, limit: 1e-5 * m.goldenMaxAbs)
            #expect(m.relL2 <= 1e-5 && m.maxAbs <= 1e-5 * m.goldenMaxAbs, "\(name) \(layer): rel L2 \(m.relL2), max abs \(m.maxAbs)")
            compared += 1
        }
        #expect(compared >= 3)
    }
}

extension MLXRuntimeTests {
    /// tools/mlx/check_parity_outputs.py loaded these directories in real MLX with `load_weights(strict=True)`:
    /// the converter must still write exactly those bytes.
    @Test("the directories real MLX loaded are exactly what Parity writes today")
    func sameBytesAsLoadedByMLX() throws {
        let manifest = try JSONParser.parse(readBytes(Self.dir + "/manifest.json"))
        let directories = try #require(manifest["directories"]?.objectValue)
        for (name, entry) in directories {
            let command = try #require(entry["written_by"]?.stringValue).split(separator: " ").map(String.init)
            // parity convert MODEL --to mlx --dtype D [--mode M] -o DIR
            let model = try Repo.model(command[2])
            let mode = command.firstIndex(of: "--mode").map { command[$0 + 1] }
            let scratch = try TemporaryDirectory()
            let quantization = mode.map { m in MLXQuantization.defaults(mode: m).map { MLXQuantParameters(mode: m, groupSize: $0.groupSize, bits: $0.bits) } } ?? nil
            _ = try MLXConverter.convert(model, dtype: command[6], quantization: quantization, to: scratch.file("d"))
            for (file, record) in try nonEmpty(try #require(entry["files"]?.objectValue), "\(name) files") {
                #expect(SHA256.hex(try readBytes(scratch.file("d/" + file))) == record["sha256"]?.stringValue, "\(name)\(file)")
            }
        }
        #expect(directories.count == 3)
    }
}
