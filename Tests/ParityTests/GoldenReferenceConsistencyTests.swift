import Foundation
import ParityCore
import ParityFormats
import ParityEngine
import ParityModels
import Testing

/// A reference directory whose config.json, model.safetensors and golden.h5 disagree is bad input (exit 2,
/// naming the reference file and the layer or tensor), not a failed conversion (exit 1 blaming the converted file).
@Suite("reference directory consistency (config, weights, goldens)")
struct GoldenReferenceConsistencyTests {
    /// A copy of golden/fmnist-mlp with config.json edited by `edit` (a JSON object) and, optionally, other
    /// weights.
    static func brokenCopy(_ edit: (inout [String: Any]) -> Void, weights: [UInt8]? = nil) throws -> TemporaryDirectory {
        let dir = try TemporaryDirectory()
        for name in ["config.json", "golden.h5", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: Repo.golden + "/fmnist-mlp/" + name, toPath: dir.file(name))
        }
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.file("config.json")))) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir.file("config.json")))
        if let weights { try writeBytes(weights, to: dir.file("model.safetensors")) }
        return dir
    }

    static func setLayer(_ config: inout [String: Any], _ name: String, _ key: String, _ value: Any) {
        var layers = config["layers"] as! [[String: Any]]
        let i = layers.firstIndex { $0["name"] as? String == name }!
        layers[i][key] = value
        config["layers"] = layers
    }

    /// The reference weights plus one tensor no layer owns, written with Parity's safetensors writer: the
    /// defect under test is in the reference directory, not in a conversion.
    static func weightsWithExtraTensor() throws -> [UInt8] {
        let reference = try SafetensorsFile(path: Repo.golden + "/fmnist-mlp/model.safetensors")
        var writer = SafetensorsWriter()
        for entry in reference.entries { try writer.add(name: entry.name, dtype: entry.dtype, shape: entry.shape, bytes: try reference.rawBytes(entry)) }
        try writer.add(name: "extra.weight", tensor: Tensor(shape: [2], data: [1, 2]))
        return writer.serialized()
    }

    @Test("an inconsistent reference directory: exit 2 naming the reference file and the layer or tensor", arguments: try nonEmpty([
        // fc1 declared 784→400 (fc2 400→10, so the config is consistent in itself): the weights have 500 rows.
        ("fc1 400 outputs, weights 500", "model.safetensors", #"tensor "fc1.weight" has shape [500, 784]"#),
        // Only fc1 changed (the config also contradicts itself at fc2): the first disagreement in forward order is
        // fc1's declared out_features against its own weight's rows, not fc2's in_features.
        ("fc1 400 outputs only", "model.safetensors",
         #"tensor "fc1.weight" has shape [500, 784], but layer fc1 (Linear) of "#),
        // A config naming ggml's mnist-cnn must have its structure; this one has mnist-fc's layers.
        ("architecture mnist-cnn", "config.json", "declares architecture 'mnist-cnn'"),
        ("relu1 renamed act1", "golden.h5", "has no activation for layer act1"),
        ("input 1x14x56", "golden.h5", "/inputs/images has shape [64, 1, 28, 28]"),
        ("fc2 without bias", "model.safetensors", #""fc2.bias" that no layer"#),
        ("extra tensor", "model.safetensors", #""extra.weight" that no layer"#),
    ], "cases"))
    func inconsistent(change: String, file: String, message: String) throws {
        let dir: TemporaryDirectory
        switch change {
        case "fc1 400 outputs, weights 500":
            dir = try Self.brokenCopy { Self.setLayer(&$0, "fc1", "out_features", 400); Self.setLayer(&$0, "fc2", "in_features", 400) }
        case "fc1 400 outputs only":
            dir = try Self.brokenCopy { Self.setLayer(&$0, "fc1", "out_features", 400) }
        case "architecture mnist-cnn":
            dir = try Self.brokenCopy { $0["architecture"] = "mnist-cnn" }
        case "relu1 renamed act1":
            // Under a name of its own: declared as mnist-fc, the config would first be refused for not having
            // mnist-fc's layer names (the "architecture mnist-cnn" case), before the goldens are read.
            dir = try Self.brokenCopy { Self.setLayer(&$0, "relu1", "name", "act1"); $0["architecture"] = "custom-mlp" }
        case "input 1x14x56":
            dir = try Self.brokenCopy { config in
                var input = config["input"] as! [String: Any]
                input["shape"] = [1, 14, 56]
                config["input"] = input
            }
        case "fc2 without bias":
            dir = try Self.brokenCopy { Self.setLayer(&$0, "fc2", "bias", false) }
        default:
            dir = try Self.brokenCopy({ _ in }, weights: try Self.weightsWithExtraTensor())
        }
        let result = try runParity(["verify", dir.path, "--format", "safetensors", "--variant", "f32"])
        #expect(result.status == 2, "\(change): exit \(result.status)\n\(result.stdout)\(result.stderr)")
        #expect(result.stderr.contains("error: " + dir.file(file)), "\(change): \(result.stderr)")
        #expect(result.stderr.contains(message), "\(change): \(result.stderr)")
        if change == "fc1 400 outputs only" {
            #expect(result.stderr.contains("declares out_features 400, in_features 784 → [400, 784]"), "\(result.stderr)")
            #expect(!result.stderr.contains("layer fc2"), "fc2 is blamed for fc1's declaration: \(result.stderr)")
        }
        if change == "architecture mnist-cnn" {
            #expect(result.stderr.contains("at layer 0 it has flatten (Flatten) where 'mnist-cnn' has conv1 (Conv2d)"), "\(result.stderr)")
        }
        // The same from the library: a ParityError from opening the reference or reading its goldens.
        #expect(throws: ParityError.self, "\(change)") { _ = try ReferenceModel(directory: dir.path).golden() }
    }

    @Test("the bundled reference models and the user-model fixture agree with themselves",
          arguments: try nonEmpty(Repo.bundledModels.map { Repo.golden + "/" + $0 } + [Repo.fixtures + "/user-mlp-256"], "reference directories"))
    func referencesAreConsistent(directory: String) throws {
        let model = try ReferenceModel(directory: directory)
        let golden = try model.golden()
        #expect(golden.activations.map(\.name) == model.config.layers.map(\.name))
        // The recorded noise floors are PyTorch float32 against float64: far below the bound the check enforces.
        let floors = golden.activations.compactMap(\.noiseFloorRelL2)
        #expect(floors.count == golden.activations.count, "\(directory): every activation records noise_floor_rel_l2")
        #expect(floors.allSatisfy { $0 >= 0 && $0 <= GoldenFile.maximumNoiseFloorRelL2 }, "\(floors)")
    }

    /// A directory holding user-mlp-256's config.json and weights with one of the broken-reference goldens
    /// (tools/hdf5/make_broken_reference_fixtures.py: PyTorch's values cut to 2 images by h5py, one defect each).
    static func userModel(golden: String) throws -> TemporaryDirectory {
        let dir = try TemporaryDirectory()
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: Repo.fixtures + "/user-mlp-256/" + name, toPath: dir.file(name))
        }
        try FileManager.default.copyItem(atPath: Repo.fixtures + "/broken-reference/" + golden, toPath: dir.file("golden.h5"))
        return dir
    }

    @Test("the unbroken control golden loads, and layer-diff and verify pass the reference weights against it")
    func controlPasses() throws {
        let dir = try Self.userModel(golden: "control.h5")
        let golden = try ReferenceModel(directory: dir.path).golden()
        #expect(golden.activations.map(\.name) == ["flatten", "fc1", "relu1", "fc2"])
        #expect(golden.inputs["images"]?.shape == [2, 1, 28, 28])
        for arguments in [["layer-diff", dir.path, dir.file("model.safetensors")], ["verify", dir.path, "--file", dir.file("model.safetensors")]] {
            let result = try runParity(arguments)
            #expect(result.status == 0, "\(arguments[0]): exit \(result.status)\n\(result.stdout)\(result.stderr)")
        }
    }

    @Test("a golden that disagrees with config.json or cannot be trusted: exit 2 from layer-diff and verify, naming golden.h5 and the dataset",
          arguments: try nonEmpty([
        // fc2 reads relu1's output; a golden saying fc1's would feed fc2 the wrong tensor when isolating it.
        ("input-attribute.h5", #"activation fc2 has input attribute "/activations/fc1", but in "#, "layer fc2 reads /activations/relu1"),
        ("input-missing.h5", "malformed at /activations/fc1@input: missing string attribute", "layer order says /activations/flatten"),
        ("nan-activation.h5", "malformed at /activations/fc2: holds 1 non-finite value (1 NaN, 0 Inf) of 20", "at index [1, 4]"),
        ("inf-input.h5", "malformed at /inputs/images: holds 1 non-finite value (0 NaN, 1 Inf) of 1568", "at index [0, 0, 3, 5]"),
        ("noise-floor-large.h5", "malformed at /activations/fc1@noise_floor_rel_l2: is 10.0, above 0.001", "float32 against float64"),
        ("noise-floor-negative.h5", "malformed at /activations/relu1@noise_floor_max_abs: is -1.0", "finite value ≥ 0"),
        ("noise-floor-nan.h5", "malformed at /activations/fc2@noise_floor_rel_l2: is nan", "finite value ≥ 0"),
        ("missing-relu1.h5", "has no activation for layer relu1 of ", "the golden records flatten, fc1, fc2"),
    ], "broken goldens"))
    func brokenGolden(fixture: String, message: String, detail: String) throws {
        let dir = try Self.userModel(golden: fixture)
        // The converted file is the reference weights themselves: any failure would be blamed on a correct file.
        for arguments in [["layer-diff", dir.path, dir.file("model.safetensors")], ["verify", dir.path, "--file", dir.file("model.safetensors")]] {
            let result = try runParity(arguments)
            #expect(result.status == 2, "\(fixture) \(arguments[0]): exit \(result.status)\n\(result.stdout)\(result.stderr)")
            #expect(result.stderr.contains("error: " + dir.file("golden.h5") + ": " + message), "\(fixture) \(arguments[0]): \(result.stderr)")
            #expect(result.stderr.contains(detail), "\(fixture) \(arguments[0]): \(result.stderr)")
            #expect(!result.stdout.contains("FAIL") && !result.stdout.contains("BAD GOLDEN"), "\(fixture) \(arguments[0]): \(result.stdout)")
        }
        #expect(throws: ParityError.self, "\(fixture)") { _ = try ReferenceModel(directory: dir.path).golden() }
    }

    @Test("read without its config, a golden with a missing layer names the gap in its order attributes")
    func orderGapNamed() throws {
        #expect { try GoldenFile(path: Repo.fixtures + "/broken-reference/missing-relu1.h5") } throws: { error in
            "\(error)".contains("order attributes must be 0..<3 without gaps or repeats; they are flatten 0, fc1 1, fc2 3 (no activation has order 2)")
        }
    }
}

/// A converted file whose tensors are the model's under another name: told why, without calling it another model.
@Suite("architecture check messages")
struct ArchitectureCheckMessageTests {
    static let mlp = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]

    @Test("every expected name behind one prefix: the message names the prefix")
    func prefixNamed() throws {
        #expect { try ArchitectureCheck.checkTensorSet(file: "f.safetensors", expected: Self.mlp, stored: Self.mlp.map { "model." + $0 },
                                                       model: "fmnist-mlp", modelArchitecture: "mnist-fc") } throws: { error in
            let text = "\(error)"
            return text.contains("tensor names carry the prefix 'model.'") && !text.contains("another architecture")
        }
    }

    @Test("another model's tensors, or only some names prefixed: another architecture")
    func otherArchitecture() throws {
        let cnn = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "dense.weight", "dense.bias"]
        let partlyPrefixed = ["model.fc1.weight", "model.fc1.bias", "model.fc2.weight", "other.fc2.bias"]
        for stored in [cnn, partlyPrefixed] {
            #expect("\(stored)") { try ArchitectureCheck.checkTensorSet(file: "f.safetensors", expected: Self.mlp, stored: stored,
                                                                        model: "fmnist-mlp", modelArchitecture: "mnist-fc") } throws: { error in
                let text = "\(error)"
                return text.contains("this file is for another architecture") && !text.contains("prefix")
            }
        }
    }
}
