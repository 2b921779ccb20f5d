import Foundation
import ParityCore
import ParityFormats
import ParityModels
import Testing

@Suite("HDF5 goldens")
struct GoldenTests {
    @Test("the bundled goldens follow the contract and match their config", arguments: try nonEmpty(Repo.bundledModels, "bundled models"))
    func contract(modelName: String) throws {
        let model = try Repo.model(modelName)
        let golden = try model.golden()  // also checks weights_sha256 against model.safetensors
        #expect(golden.model == modelName)
        #expect(golden.referenceFramework.hasPrefix("torch "))
        let names = Set(golden.rootAttributes.map(\.name))
        for required in ["format", "format_version", "model", "reference_framework", "weights_sha256", "generator", "seed", "created"] {
            #expect(names.contains(required), "missing root attribute \(required)")
        }
        // One activation per module, named and ordered as the reference runs them, with the module class as op.
        #expect(golden.activations.map(\.name) == model.config.layers.map(\.name))
        #expect(golden.activations.map(\.op) == model.config.layers.map(\.op))
        let images = try #require(golden.inputs["images"])
        #expect(images.shape == [64, 1, 28, 28])
        #expect(images.data.allSatisfy { $0 >= 0 && $0 <= 1 }, "inputs are pixel/255")
        #expect(golden.labels?.count == 64)
        // The chain of `input` attributes starts at the model input and links each module to its predecessor.
        #expect(golden.activations.first?.input == "/inputs/images")
        for (previous, next) in zip(golden.activations, golden.activations.dropFirst()) {
            #expect(next.input == "/activations/" + previous.name)
        }
        for activation in try nonEmpty(golden.activations, "\(modelName) golden activations") {
            #expect(activation.tensor.shape.first == 64)
            #expect(activation.tensor.data.allSatisfy { $0.isFinite })
            #expect(activation.layout == (activation.tensor.rank == 4 ? "NCHW" : "NC"))
            let noise = try #require(activation.noiseFloorRelL2)
            #expect(noise >= 0 && noise < 1e-5, "the f32 reference is within float32 noise of its f64 re-run")
        }
    }

    @Test("HDF5 writer and reader agree: datasets (compressed or not) and every attribute kind")
    func roundTrip() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("t.h5")
        let big = Tensor(shape: [4, 3, 50], data: (0..<600).map { Float($0) * 0.25 - 7 })
        do {
            let h5 = try HDF5File(creating: path)
            try h5.createGroup("/g")
            try h5.writeFloats("/g/big", big)
            try h5.writeFloats("/small", Tensor(shape: [2], data: [1.5, -2]))
            try h5.writeIntegers("/ints", shape: [3], values: [-1, 0, Int64.max])
            try h5.setAttribute("s", .string("héllo"))
            try h5.setAttribute("i", .integers([42]))
            try h5.setAttribute("f", .floats([0.125, 3]), on: "/g/big")
        }
        let h5 = try HDF5File(readingFrom: path)
        #expect(try h5.readFloats("/g/big") == big)
        #expect(try h5.readFloats("/small").data == [1.5, -2])
        #expect(try h5.readIntegers("/ints").values == [-1, 0, Int64.max])
        #expect(try h5.attribute("s") == .string("héllo"))
        #expect(try h5.attribute("i")?.intValue == 42)
        #expect(try h5.attribute("f", of: "/g/big") == .floats([0.125, 3]))
        #expect(try h5.attribute("absent") == nil)
        #expect(try h5.members(of: "/") == ["g", "ints", "small"])
        #expect(try h5.attributeNames(of: "/") == ["i", "s"])
        #expect(throws: ParityError.self) { try h5.readFloats("/nope/x") }
    }

    @Test("a file that is not a golden is refused with a clear error")
    func notAGolden() throws {
        let dir = try TemporaryDirectory()
        try writeBytes(Array("not hdf5 at all".utf8), to: dir.file("x.h5"))
        #expect { try GoldenFile(path: dir.file("x.h5")) } throws: { "\($0)".contains("not an HDF5 file") }
        do { let h5 = try HDF5File(creating: dir.file("y.h5")); try h5.setAttribute("format", .string("something-else")) }
        #expect { try GoldenFile(path: dir.file("y.h5")) } throws: { "\($0)".contains("not a Parity golden") }
        #expect { try GoldenFile(path: dir.file("missing.h5")) } throws: { "\($0)".contains("not found") }
    }

    @Test("stale goldens are refused: weights that differ from weights_sha256")
    func stale() throws {
        let dir = try TemporaryDirectory()
        let source = Repo.golden + "/fmnist-mlp"
        for name in ["config.json", "golden.h5", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: source + "/" + name, toPath: dir.file(name))
        }
        var bytes = try readBytes(dir.file("model.safetensors"))
        bytes[bytes.count - 1] ^= 0x01  // one bit of fc2.bias
        try writeBytes(bytes, to: dir.file("model.safetensors"))
        let model = try ReferenceModel(directory: dir.path)
        #expect { try model.golden() } throws: { error in
            let text = "\(error)"
            return text.contains("stale golden") && text.contains("regen_goldens.py")
        }
    }
}
