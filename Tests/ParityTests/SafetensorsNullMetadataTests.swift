import Foundation
import ParityCore
import ParityFormats
import Testing

/// `mx.save_safetensors(path, arrays)` without metadata writes `"__metadata__": null`. The official library
/// declares the metadata an optional map (null reads as None) and MLX reads it back as {}: Parity must accept it.
/// The fixture was written by real MLX (tools/mlx/make_null_metadata_fixture.py, manifest beside it).
@Suite("safetensors null metadata (written by real MLX)")
struct SafetensorsNullMetadataTests {
    static let mlxFile = Repo.fixtures + "/mlx-safetensors/mx-no-metadata-fmnist-cnn.safetensors"

    @Test("a file mx.save_safetensors wrote without metadata is read: no metadata, every tensor")
    func readsMLXNullMetadata() throws {
        // The fixture must really carry the null (a regenerated file without it would test nothing).
        let bytes = try readBytes(Self.mlxFile)
        let headerLength = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        #expect(String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self).hasPrefix(#"{"__metadata__":null,"#))
        let file = try SafetensorsFile(path: Self.mlxFile)
        #expect(file.metadata.isEmpty)
        #expect(file.entries.map(\.name).sorted() == ["conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight", "dense.bias", "dense.weight"])
        #expect(file.entry(named: "conv1.weight")?.shape == [8, 3, 3, 1], "mlx.nn's OHWI layout")
    }

    /// Everything but null and a map of strings stays refused, as the official library refuses it
    /// (safetensors 0.8.0: "invalid type: integer `1`, expected a map", "... null, expected a string").
    @Test("every other non-object __metadata__, and non-string values inside it, are still refused", arguments: try nonEmpty([
        ("1", "must be null or an object of strings"), (#""x""#, "must be null or an object of strings"),
        ("[]", "must be null or an object of strings"), ("true", "must be null or an object of strings"),
        (#"{"k":null}"#, "metadata values must be strings"), (#"{"k":1}"#, "metadata values must be strings"),
    ], "cases"))
    func otherValuesRefused(metadata: String, reason: String) throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("m.safetensors")
        let header = Array(#"{"__metadata__":\#(metadata),"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#.utf8)
        var bytes: [UInt8] = []
        ElementCodec.appendLE(&bytes, UInt64(header.count))
        try writeBytes(bytes + header + [UInt8](repeating: 0, count: 8), to: path)
        #expect { try SafetensorsFile(path: path) } throws: { error in
            guard let e = error as? ParityError, case let .malformed(file, at, why) = e else { return false }
            return file == path && at.contains("__metadata__") && why.contains(reason)
        }
    }

    @Test("`inspect` reads it; `verify --file` detects plain safetensors (no format marker), `--format mlx` passes")
    func cli() throws {
        let inspect = try runParity(["inspect", Self.mlxFile])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        #expect(inspect.stdout.contains("6 tensors") && !inspect.stdout.contains("metadata "))
        // Without `format: mlx` metadata the file is detected as PyTorch-layout safetensors (README, "--file
        // detection"): the MLX conv layout then fails at conv1 naming the shape, not as unreadable input.
        let detected = try runParity(["verify", "fmnist-cnn", "--file", Self.mlxFile])
        #expect(detected.status == 1, "\(detected.stdout)\(detected.stderr)")
        #expect(detected.stdout.contains(#""conv1.weight" has shape [8, 3, 3, 1]"#), "\(detected.stdout)")
        let asMLX = try runParity(["verify", "fmnist-cnn", "--file", Self.mlxFile, "--format", "mlx"])
        #expect(asMLX.status == 0, "\(asMLX.stdout)\(asMLX.stderr)")
        #expect(asMLX.stdout.contains("PASS  fmnist-cnn  mlx f32"), "\(asMLX.stdout)")
    }
}
