import Foundation
import ParityCore
import ParityFormats
import Testing

@Suite("SHA-256")
struct SHA256Tests {
    /// Every compression function this machine can run, with its digest of `bytes`; `.shaExtensions` must be
    /// refused (nil) exactly when the CPU lacks the x86 SHA extensions.
    static func digests(_ bytes: [UInt8]) -> [(SHA256.Implementation, String?)] {
        SHA256.Implementation.allCases.map { implementation in
            (implementation, bytes.withUnsafeBytes { SHA256.hex($0, implementation: implementation) })
        }
    }

    static func expectAllEqual(_ bytes: [UInt8], _ expected: String, _ what: String) {
        #expect(SHA256.hex(bytes) == expected, "\(what): SHA256.hex")
        for (implementation, digest) in digests(bytes) {
            if implementation == .shaExtensions && !SHA256.hasSHAExtensions {
                #expect(digest == nil, "\(what): the SHA-extension path ran on a CPU without them")
            } else {
                #expect(digest == expected, "\(what): \(implementation)")
            }
        }
    }

    @Test("FIPS 180-4 example vectors, by every implementation", arguments: try nonEmpty([
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ], "FIPS vectors"))
    func vectors(input: String, digest: String) {
        Self.expectAllEqual(Array(input.utf8), digest, "\"\(input)\"")
        #expect(SHA256Reference.hex(Array(input.utf8)) == digest, "the Swift reference itself")
    }

    @Test("one million 'a' (multi-block, length field past 2^16 bits)")
    func million() {
        let expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        Self.expectAllEqual([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000), expected, "10^6 × 'a'")
    }

    /// Bytes that vary in every position, so that a mixed-up word or lane order changes the digest.
    static func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407  // Knuth's MMIX LCG
            return UInt8(truncatingIfNeeded: state >> 56)
        }
    }

    @Test("every length 0…300 (each padding case: tail < 56, 56…63, whole blocks): C paths == the old Swift implementation")
    func everyLength() {
        let bytes = Self.pattern(300, seed: 1)
        for length in 0...300 {
            let prefix = Array(bytes[..<length])
            Self.expectAllEqual(prefix, SHA256Reference.hex(prefix), "length \(length)")
        }
    }

    @Test("multi-MB buffers (the SHA-extension loop over many blocks, then a partial tail)", arguments: try nonEmpty([
        (4 << 20, UInt64(2)), ((3 << 20) + 55, UInt64(3)), ((5 << 20) + 63, UInt64(4)),
    ], "buffer sizes"))
    func large(count: Int, seed: UInt64) {
        let bytes = Self.pattern(count, seed: seed)
        Self.expectAllEqual(bytes, SHA256Reference.hex(bytes), "\(count) bytes")
    }

    /// Python's hashlib recorded `weights_sha256` in each bundled golden (tools/regen_goldens.py,
    /// tools/llama/record_goldens.py) from the `model.safetensors` beside it: 36 KB, 1.6 MB and 8.1 MB files.
    @Test("FileDigest and every implementation agree with the SHA-256 Python's hashlib recorded for the bundled weights",
          arguments: try nonEmpty(["fmnist-cnn", "fmnist-mlp", "tiny-llama"], "bundled models"))
    func recordedByHashlib(model: String) throws {
        let directory = Repo.root + "/golden/" + model
        let recorded = try #require(try GoldenFile(path: directory + "/golden.h5").weightsSHA256, "\(model): weights_sha256")
        #expect(try FileDigest.sha256(path: directory + "/model.safetensors") == recorded, "\(model): FileDigest")
        let bytes = try readBytes(directory + "/model.safetensors")
        Self.expectAllEqual(bytes, recorded, model)
    }
}
