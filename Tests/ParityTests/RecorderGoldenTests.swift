import Foundation
import ParityCore
import ParityFormats
import ParityModels
import Testing

/// Goldens written by the general recorder (tools/record_goldens_any.py) for a model Parity does not bundle serve
/// Parity as a reference directory. Fixture: tools/examples/recorder/make_fixture.sh (TinyNet, 8 inputs, --config).
@Suite("general golden recorder")
struct RecorderGoldenTests {
    static let directory = Repo.fixtures + "/recorder-tinynet"

    @Test("its reference directory passes Parity's consistency checks, with TinyNet's leaf modules in forward order")
    func referenceDirectory() throws {
        let model = try ReferenceModel(directory: Self.directory)
        let golden = try model.golden()
        // TinyNet.forward in tools/examples/recorder/tinynet.py: conv, act1, pool, flatten, hidden, act2, head.
        #expect(golden.activations.map(\.name) == ["conv", "act1", "pool", "flatten", "hidden", "act2", "head"])
        #expect(golden.activations.map(\.op) == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "ReLU", "Linear"])
        #expect(golden.activations.map(\.inputs) == [["/inputs/images"], ["/activations/conv"], ["/activations/act1"],
                                                    ["/activations/pool"], ["/activations/flatten"], ["/activations/hidden"],
                                                    ["/activations/act2"]])
        #expect(model.config.layers.map(\.name) == golden.activations.map(\.name))
    }

    @Test("its provenance names the class, its source file's SHA-256 and the weights")
    func provenance() throws {
        let golden = try ReferenceModel(directory: Self.directory).golden()
        func attribute(_ name: String) throws -> String {
            try #require(golden.rootAttributes.first { $0.name == name }?.value.stringValue, "root attribute \(name)")
        }
        #expect(try attribute("recorder") == "tools/record_goldens_any.py")
        #expect(try attribute("reference_module") == "tinynet:TinyNet")
        #expect(try attribute("reference_kwargs") == #"{"channels": 4, "hidden": 64}"#)
        // The golden was recorded from the class as committed: its source file's hash, computed here from the file.
        let source = try jsonAttribute(try attribute("source_sha256"), named: "source_sha256", in: golden.path)
        let expected = SHA256.hex(try readBytes(Repo.root + "/tools/examples/recorder/tinynet.py"))
        #expect(source["tools/examples/recorder/tinynet.py"]?.stringValue == expected)
        #expect(try attribute("weights_sha256") == SHA256.hex(try readBytes(Self.directory + "/model.safetensors")))
    }

    @Test("parity verify DIR --format safetensors passes on it (f32, f16, bf16)")
    func verifies() throws {
        let result = try runParity(["verify", Self.directory, "--format", "safetensors"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        for variant in ["f32", "f16", "bf16"] {
            #expect(result.stdout.contains("PASS  recorder-tinynet  safetensors \(variant)"), "\(result.stdout)")
        }
    }
}

/// A JSON value held in a string attribute of `file`.
private func jsonAttribute(_ text: String, named name: String, in file: String) throws -> JSONValue {
    do {
        return try JSONParser.parse(Array(text.utf8))
    } catch {
        throw ParityError.malformed(file: file, at: "/@\(name)", reason: "not JSON: \(error.reason)")
    }
}
