import Foundation
import ParityCore
import ParityFormats
import Testing

/// The command-line contract (README "Commands" and exit status), exercised on the built `parity` binary:
/// exit 0 all passed, 1 a verification failed, 2 bad input or usage — with a message naming file and problem.
@Suite("parity CLI")
struct CLITests {
    @Test("verify fmnist-cnn --format safetensors passes and writes a versioned JSON report")
    func verifyPasses() throws {
        let dir = try TemporaryDirectory()
        let result = try runParity(["verify", "fmnist-cnn", "--format", "safetensors", "--json", dir.file("r.json")])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("PASS  fmnist-cnn  safetensors f32"))
        let json = try JSONParser.parse(readBytes(dir.file("r.json")))
        #expect(json["schema"]?.stringValue == "parity-report" && json["schema_version"]?.intValue == 2)
        #expect(json["passed"] == .bool(true))
        let reports = try #require(json["reports"]?.arrayValue)
        #expect(reports.count == 3)
        #expect(reports.allSatisfy { $0["layers"]?.arrayValue?.count == 8 && $0["first_divergence"] == .null })
    }

    @Test("a converted file with one layer's weights perturbed by 1% exits 1 and names that layer")
    func verifyFailsAtLayer() throws {
        let dir = try TemporaryDirectory()
        let source = try SafetensorsFile(path: Repo.golden + "/fmnist-cnn/model.safetensors")
        var writer = SafetensorsWriter()
        for entry in source.entries {
            let t = try source.tensor(entry)
            try writer.add(name: entry.name, tensor: entry.name == "conv2.weight" ? Tensor(shape: t.shape, data: t.data.map { $0 * 1.01 }) : t)
        }
        try writer.write(to: dir.file("perturbed.safetensors"))
        let result = try runParity(["verify", "fmnist-cnn", "--file", dir.file("perturbed.safetensors")])
        #expect(result.status == 1)
        #expect(result.stdout.contains("first divergence: conv2 (Conv2d): FAIL: rel L2"))
        #expect(result.stdout.contains("FAIL  fmnist-cnn  safetensors f32"))
    }

    @Test("bad input exits 2 with a message naming the file and the problem", arguments: try nonEmpty([
        (["verify", "/no/such/model"], "/no/such/model: model directory not found"),
        (["verify", "no-such-model"], "no-such-model: model (neither a directory"),
        (["verify", "fmnist-cnn", "--file", "/no/such.safetensors"], "/no/such.safetensors: converted file not found"),
        (["verify", "fmnist-cnn", "--format", "onnx"], "The value 'onnx' is invalid for '--format <format>'. Please provide one of 'safetensors', 'gguf' or 'mlx'"),
        (["convert", "fmnist-cnn", "--to", "safetensors", "--dtype", "q4", "-o", "/tmp/x"], "The value 'q4' is invalid for '--dtype <dtype>'. Please provide one of 'f32', 'f16' or 'bf16'"),
        (["convert", "fmnist-cnn", "--to", "gguf", "--type", "q9_9", "-o", "/tmp/x"], "The value 'q9_9' is invalid for '--type <type>'"),
        (["convert", "fmnist-cnn", "--to", "gguf", "-o", "/no/such/dir/x.gguf"], "/no/such/dir: output directory not found"),
        (["quantize", "/no/such.gguf", "/tmp/out.gguf", "--type", "q8_0"], "/no/such.gguf: file not found"),
        (["inspect", "/no/such/file"], "/no/such/file: file not found"),
        (["verify", "--bogus-flag"], "Unknown option"),
    ], "bad-input cases"))
    func badInput(arguments: [String], message: String) throws {
        let result = try runParity(arguments)
        #expect(result.status == 2)
        #expect(result.stderr.contains(message), "stderr: \(result.stderr)")
    }

    @Test("a corrupt converted file exits 2, naming the file and offset")
    func corruptFile() throws {
        let dir = try TemporaryDirectory()
        var bytes = try readBytes(Repo.golden + "/fmnist-mlp/model.safetensors")
        bytes.removeLast(100)
        try writeBytes(bytes, to: dir.file("cut.safetensors"))
        let result = try runParity(["verify", "fmnist-mlp", "--file", dir.file("cut.safetensors")])
        #expect(result.status == 2)
        #expect(result.stderr.contains(dir.file("cut.safetensors") + ": malformed at offset"))
    }

    @Test("convert writes a file that inspect reads; models lists both bundled models")
    func convertAndInspect() throws {
        let dir = try TemporaryDirectory()
        let out = dir.file("mlp-bf16.safetensors")
        let convert = try runParity(["convert", "fmnist-mlp", "--to", "safetensors", "--dtype", "bf16", "-o", out])
        #expect(convert.status == 0, "\(convert.stderr)")
        let inspect = try runParity(["inspect", out])
        #expect(inspect.status == 0)
        #expect(inspect.stdout.contains("fc1.weight\tBF16\t[500, 784]"))
        #expect(inspect.stdout.contains("metadata parity.dtype = bf16"))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(leftovers == ["mlp-bf16.safetensors"], "no temporary debris next to the output")
        let golden = try runParity(["inspect", Repo.golden + "/fmnist-cnn/golden.h5"])
        #expect(golden.status == 0)
        #expect(golden.stdout.contains("/activations/dense  [64, 10]"))
        #expect(golden.stdout.contains("@format = \"parity-golden\""))
        let models = try runParity(["models"])
        #expect(models.status == 0 && models.stdout.contains("fmnist-cnn") && models.stdout.contains("fmnist-mlp"))
    }
}
