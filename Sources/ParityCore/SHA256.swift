import CParitySys

/// SHA-256 (FIPS 180-4), used to tie a golden file to the exact reference weights it was made from, and to name
/// cached files. Computed in C (CParitySys/sha256.c): with the x86 SHA extensions where the CPU has them (a
/// verification hashes every reference and converted file, hundreds of MB for a transformer), portable C elsewhere.
/// Self-contained so that the package needs no crypto dependency; tested against the FIPS example vectors.
public struct SHA256 {
    /// Which compression function to run. Only tests choose: `automatic` is what every caller gets.
    public enum Implementation: Sendable, CaseIterable {
        case automatic, portable, shaExtensions

        var code: Int32 {
            switch self {
            case .automatic: Int32(PARITY_SHA256_AUTOMATIC)
            case .portable: Int32(PARITY_SHA256_PORTABLE)
            case .shaExtensions: Int32(PARITY_SHA256_SHA_EXTENSIONS)
            }
        }
    }

    /// True if this CPU has the x86 SHA extensions, so that `.shaExtensions` runs.
    public static var hasSHAExtensions: Bool { parity_sha256_has_sha_extensions() != 0 }

    /// The digest of `bytes` as 64 lowercase hex digits.
    public static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        // `automatic` always has a compression function to run, so this cannot be nil.
        hex(bytes, implementation: .automatic)!
    }

    public static func hex(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { hex($0) } }

    /// The digest computed by `implementation`; nil if this CPU cannot run it.
    public static func hex(_ bytes: UnsafeRawBufferPointer, implementation: Implementation) -> String? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { digest -> String? in
            guard parity_sha256(bytes.baseAddress, bytes.count, digest.baseAddress, implementation.code) == 0 else { return nil }
            return String(unsafeUninitializedCapacity: 64) { text in
                func digit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") - 10 + nibble }
                for i in 0..<32 {
                    text[2 * i] = digit(digest[i] >> 4)
                    text[2 * i + 1] = digit(digest[i] & 15)
                }
                return 64
            }
        }
    }
}
