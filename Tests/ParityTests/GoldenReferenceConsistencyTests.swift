import Foundation
import ParityCore
import ParityFormats
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
        // Only fc1 changed: the config contradicts itself at fc2.
        ("fc1 400 outputs only", "config.json", "layer fc2 (Linear): declares in_features 500 but its input has 400 features"),
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
        case "relu1 renamed act1":
            dir = try Self.brokenCopy { Self.setLayer(&$0, "relu1", "name", "act1") }
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
        // The same from the library: a ParityError from opening the reference or reading its goldens.
        #expect(throws: ParityError.self, "\(change)") { _ = try ReferenceModel(directory: dir.path).golden() }
    }

    @Test("the bundled reference models agree with themselves", arguments: try nonEmpty(Repo.bundledModels, "bundled models"))
    func bundledAreConsistent(modelName: String) throws {
        let model = try Repo.model(modelName)
        let golden = try model.golden()
        #expect(golden.activations.map(\.name) == model.config.layers.map(\.name))
    }
}
