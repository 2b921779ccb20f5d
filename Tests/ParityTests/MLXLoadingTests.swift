import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify
import Testing

/// Parity reads MLX files the way MLX / mlx-lm load them, on files written by real MLX
/// (Fixtures/mlx-loading, tools/mlx/make_loading_fixtures.py). manifest.json records what the real runtime did with
/// each (mlx-lm's load_model for directories; a user's nn.quantize + load_weights(strict=True) for weights-only
/// files), and each test checks Parity's exit code against that record: loads → 0, load_weights refuses → 1 with
/// the strict-loading rule named; 2 only where the file cannot be read as one model.
@Suite("MLX loading follows MLX / mlx-lm (MLX-written files)")
struct MLXLoadingTests {
    static let dir = Repo.fixtures + "/mlx-loading"
    static let userModel = Repo.fixtures + "/user-mlp-256"
    static let cnn = Repo.root + "/golden/fmnist-cnn"
    static let strictRule = StrictLoadingRule.mlxStrict.runtime

    /// What the real runtime did with a fixture, from the manifest.
    static func runtimeVerdict(_ name: String) throws -> String {
        let manifest = try fixtureJSON(dir + "/manifest.json")
        return try #require(manifest["cases"]?[name]?["verdict"]?.stringValue, "manifest has no verdict for \(name)")
    }

    static func verify(_ model: String, _ file: String, _ extra: [String] = []) throws -> CommandResult {
        try runParity(["verify", model, "--file", dir + "/" + file] + extra)
    }

    @Test("quantized weights-only files (no config.json) verify: parameters inferred from the shapes and said so",
          arguments: try nonEmpty([("cnn-nvfp4.npz", cnn, "bf16+nvfp4", ["dense: nvfp4 4-bit, group 16"]),
                                   ("usr-nvfp4-affine4.safetensors", userModel, "f16+mixed(affine-b4-g64,nvfp4)",
                                    ["fc1: nvfp4 4-bit, group 16", "fc2: affine 4-bit, group 64"])], "weights-only quantized files"))
    func weightsOnlyQuantized(file: String, model: String, label: String, inferred: [String]) throws {
        #expect(try Self.runtimeVerdict(file) == "loads")
        // MLX's save_weights writes no "format" metadata: the file is MLX's by its packed modules, so say --format mlx.
        let result = try Self.verify(model, file, ["--format", "mlx"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("PASS") && result.stdout.contains("mlx \(label)"), "\(result.stdout)")
        for line in inferred {
            #expect(result.stdout.contains("\(line), inferred from the shapes against the model's in_features"), "\(result.stdout)")
        }
        #expect(result.stdout.contains("a weights-only file"), "\(result.stdout)")
    }

    @Test("Parity verifies the quantized weights-only files it writes itself (convert and quantize), labelled by what was written",
          arguments: try nonEmpty(["weights.safetensors", "weights.npz"], "weights-only outputs"))
    func ownWeightsOnlyOutputs(output: String) throws {
        let scratch = try TemporaryDirectory()
        let converted = try runParity(["convert", Self.userModel, "--to", "mlx", "--dtype", "f16", "--mode", "affine", "--bits", "4", "-o", scratch.file(output)])
        #expect(converted.status == 0, "\(converted.stdout)\(converted.stderr)")
        #expect(converted.stdout.contains("(mlx f16+affine-b4-g64)"), "\(converted.stdout)")
        let verified = try runParity(["verify", Self.userModel, "--file", scratch.file(output)])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        let plain = try runParity(["convert", Self.userModel, "--to", "mlx", "--dtype", "f16", "-o", scratch.file("plain-" + output)])
        #expect(plain.status == 0, "\(plain.stderr)")
        let requantized = try runParity(["quantize", scratch.file("plain-" + output), scratch.file("q-" + output), "--mode", "mxfp8"])
        #expect(requantized.status == 0, "\(requantized.stdout)\(requantized.stderr)")
        #expect(requantized.stdout.contains("wrote \(scratch.file("q-" + output)) (mlx f16+mxfp8)"), "\(requantized.stdout)")
        let again = try runParity(["verify", Self.userModel, "--file", scratch.file("q-" + output)])
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
    }

    @Test("scales whose shape fits no MLX quantization of the model's layer: exit 2 naming the tensors (MLX refuses the shape)")
    func noReading() throws {
        #expect(try Self.runtimeVerdict("cnn-nvfp4-scales-cut.npz").hasPrefix("refuses: Expected shape (10, 49) but received shape (10, 48)"))
        let result = try Self.verify(Self.cnn, "cnn-nvfp4-scales-cut.npz")
        #expect(result.status == 2, "\(result.stdout)\(result.stderr)")
        #expect(result.stderr.contains("'dense.scales' [10, 48] U8 fit no MLX quantization against the model's in_features 784"), "\(result.stderr)")
    }

    @Test("without in_features, affine shapes fit several readings and are refused rather than guessed")
    func ambiguousWithoutModel() throws {
        let scratch = try TemporaryDirectory()
        _ = try MLXConverter.convert(try ReferenceModel(directory: Self.userModel), dtype: "f16",
                                     quantization: MLXQuantParameters(mode: "affine", groupSize: 64, bits: 4), to: scratch.file("w.safetensors"))
        let files = try MLXModelFiles.load(path: scratch.file("w.safetensors"))
        #expect(throws: ParityError.self) { try files.quantization(forModule: "fc2") }
        #expect(try files.quantization(forModule: "fc2", inFeatures: 256) == MLXQuantParameters(mode: "affine", groupSize: 64, bits: 4))
    }

    @Test("every file mlx-lm's load_weights(strict=True) refuses is a FAIL, exit 1, with the strict-loading rule named",
          arguments: try nonEmpty([("cnn-nvfp4-no-qcfg", "Received 1 parameters not in model: dense.scales", "1 parameter(s) not in the model: dense.scales"),
                                   ("cnn-nvfp4-dense-false", "Received 1 parameters not in model: dense.scales", "1 parameter(s) not in the model: dense.scales"),
                                   ("cnn-shards-stray", "Received 1 parameters not in model: dense.extra", "1 parameter(s) not in the model: dense.extra")],
                                  "strict refusals"))
    func strictRefusals(name: String, mlxSays: String, paritySays: String) throws {
        #expect(try Self.runtimeVerdict(name + "/") == "refuses: \(mlxSays).")
        let result = try Self.verify(Self.cnn, name)
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("FAIL: \(Self.strictRule) refuses \(Self.dir)/\(name): \(paritySays)"), "\(result.stdout)")
    }

    @Test("what mlx-lm loads passes: quantization inferred against a stale global entry; index.json's total_size and weight_map only noted",
          arguments: try nonEmpty([("cnn-nvfp4-cfg-affine8", "bf16+nvfp4", "dense: nvfp4 4-bit, group 16, inferred from the shapes"),
                                   ("cnn-shards-index-wrong", "bf16", "metadata.total_size is 0 but the loaded tensors hold"),
                                   ("cnn-shards-index-wrong", "bf16", "weight_map puts conv1.bias in model-00002-of-00002.safetensors, but it is in model-00001-of-00002.safetensors")],
                                  "directories mlx-lm loads"))
    func loads(name: String, label: String, note: String) throws {
        #expect(try Self.runtimeVerdict(name + "/") == "loads")
        let result = try Self.verify(Self.cnn, name)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("PASS  fmnist-cnn  mlx \(label) "), "\(result.stdout)")
        #expect(result.stdout.contains(note), "\(result.stdout)")
    }

    @Test("a stale shard holding other values for the same names: mlx-lm's result depends on listing order, so exit 2 naming both files")
    func staleShard() throws {
        // mlx-lm loads it (the last file the glob lists wins); the manifest records that and the order it saw.
        #expect(try Self.runtimeVerdict("cnn-shards-stale/") == "loads")
        let result = try Self.verify(Self.cnn, "cnn-shards-stale")
        #expect(result.status == 2, "\(result.stdout)\(result.stderr)")
        #expect(result.stderr.contains("tensor 'conv1.bias' is in both model-00001-of-00002.safetensors and model-00001-of-00003.safetensors with different contents"),
                "\(result.stderr)")
    }
}
