/// ggml tensor types, with ggml's numbers as raw values (`enum ggml_type` in ggml.h; gaps kept: 4, 5 were
/// Q4_2/Q4_3, 31–33 the removed Q4_0_4_4/Q4_0_4_8/Q4_0_8_8, 36–38 the removed IQ4_NL_4_4/4_8/8_8).
///
/// Every type ggml defines today is a case, so a GGUF file that uses one Parity cannot decode (the IQ and TQ
/// grids, NVFP4, Q1_0) is recognised and refused by name (`isSupported` is false) rather than reported as an
/// unknown number. Sizes are the C `static_assert`s of ggml-common.h, not gguf-py's `GGML_QUANT_SIZES`
/// (which says Q8_1 is 40 bytes; the struct is 36). `GGMLQuantsTests` checks them against `sizeof` of the
/// C structs, recorded by tools/make_quant_fixtures.py.
public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0, f16 = 1
    case q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28
    case iq1_m = 29, bf16 = 30
    case tq1_0 = 34, tq2_0 = 35
    case mxfp4 = 39, nvfp4 = 40, q1_0 = 41

    /// ggml's `type_name` (ggml.c `type_traits`): lowercase, except the `K` of the k-quants ("q4_K").
    /// gguf-py's enum and `gguf-dump` spell the same types upper-case (`Q4_K`, `MXFP4`).
    public var name: String {
        switch self {
        case .f32: return "f32"
        case .f16: return "f16"
        case .q4_0: return "q4_0"
        case .q4_1: return "q4_1"
        case .q5_0: return "q5_0"
        case .q5_1: return "q5_1"
        case .q8_0: return "q8_0"
        case .q8_1: return "q8_1"
        case .q2_K: return "q2_K"
        case .q3_K: return "q3_K"
        case .q4_K: return "q4_K"
        case .q5_K: return "q5_K"
        case .q6_K: return "q6_K"
        case .q8_K: return "q8_K"
        case .iq2_xxs: return "iq2_xxs"
        case .iq2_xs: return "iq2_xs"
        case .iq3_xxs: return "iq3_xxs"
        case .iq1_s: return "iq1_s"
        case .iq4_nl: return "iq4_nl"
        case .iq3_s: return "iq3_s"
        case .iq2_s: return "iq2_s"
        case .iq4_xs: return "iq4_xs"
        case .i8: return "i8"
        case .i16: return "i16"
        case .i32: return "i32"
        case .i64: return "i64"
        case .f64: return "f64"
        case .iq1_m: return "iq1_m"
        case .bf16: return "bf16"
        case .tq1_0: return "tq1_0"
        case .tq2_0: return "tq2_0"
        case .mxfp4: return "mxfp4"
        case .nvfp4: return "nvfp4"
        case .q1_0: return "q1_0"
        }
    }
    public var description: String { name }

    /// The type whose ggml name (or gguf-py's upper-case name) is `name`, e.g. "q4_K", "Q4_K", "mxfp4".
    public static func named(_ name: String) -> GGMLType? {
        allCases.first { $0.name == name } ?? allCases.first { $0.name.lowercased() == name.lowercased() }
    }

    /// Elements per block (`blck_size`).
    public var blockSize: Int { layout.block }
    /// Bytes per block (`type_size`, the C struct size).
    public var typeSize: Int { layout.bytes }

    /// (elements, bytes) per block, from ggml-common.h's block structs and their static_asserts.
    public var layout: (block: Int, bytes: Int) {
        switch self {
        case .f32: return (1, 4)
        case .f16, .bf16: return (1, 2)
        case .i8: return (1, 1)
        case .i16: return (1, 2)
        case .i32: return (1, 4)
        case .i64, .f64: return (1, 8)
        case .q4_0: return (32, 2 + 16)                     // d, qs[16]
        case .q4_1: return (32, 2 + 2 + 16)                 // d, m, qs[16]
        case .q5_0: return (32, 2 + 4 + 16)                 // d, qh[4], qs[16]
        case .q5_1: return (32, 2 + 2 + 4 + 16)             // d, m, qh[4], qs[16]
        case .q8_0: return (32, 2 + 32)                     // d, qs[32]
        case .q8_1: return (32, 2 + 2 + 32)                 // d, s, qs[32] (gguf-py: 40, wrong)
        case .q2_K: return (256, 16 + 64 + 2 + 2)           // scales[16], qs[64], d, dmin
        case .q3_K: return (256, 32 + 64 + 12 + 2)          // hmask[32], qs[64], scales[12], d
        case .q4_K: return (256, 2 + 2 + 12 + 128)          // d, dmin, scales[12], qs[128]
        case .q5_K: return (256, 2 + 2 + 12 + 32 + 128)     // d, dmin, scales[12], qh[32], qs[128]
        case .q6_K: return (256, 128 + 64 + 16 + 2)         // ql[128], qh[64], scales[16], d
        case .q8_K: return (256, 4 + 256 + 16 * 2)          // d (f32), qs[256], bsums[16] (i16)
        case .iq2_xxs: return (256, 2 + 64)
        case .iq2_xs: return (256, 2 + 64 + 8)
        case .iq3_xxs: return (256, 2 + 96)
        case .iq1_s: return (256, 2 + 32 + 16)
        case .iq4_nl: return (32, 2 + 16)
        case .iq3_s: return (256, 2 + 13 * 8 + 4)
        case .iq2_s: return (256, 2 + 64 + 16)
        case .iq4_xs: return (256, 2 + 2 + 4 + 128)
        case .iq1_m: return (256, 32 + 16 + 8)
        case .tq1_0: return (256, 2 + 4 + 48)
        case .tq2_0: return (256, 2 + 64)
        case .mxfp4: return (32, 1 + 16)                    // e (E8M0), qs[16]
        case .nvfp4: return (64, 4 + 32)                    // d[4] (UE4M3), qs[32]
        case .q1_0: return (128, 2 + 16)
        }
    }

    /// ggml's `is_quantized`: block types, Q8_K included; F16/BF16/F32 and the integer types are not.
    public var isQuantized: Bool { blockSize > 1 }

    /// True when `GGMLQuants.dequantize` can decode this type (bit-identical to gguf-py where gguf-py can).
    public var isSupported: Bool {
        switch self {
        case .f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K, .mxfp4:
            return true
        default:
            return false
        }
    }

    /// True when `GGMLQuants.quantize` can produce this type.
    public var canQuantize: Bool { isSupported }

    /// Types ggml produces only as matmul activations (Q8_1 for Q4_1/Q5_1, Q8_K for the k-quants): no model
    /// file should store weights in them, and gguf-py cannot dequantize them.
    public var isActivationOnly: Bool { self == .q8_1 || self == .q8_K }

    /// The CPU backend's `vec_dot_type` (ggml-cpu.c `type_traits_cpu`): the format a matmul converts the
    /// activations (src1) to before the dot products with weights of this type. Types absent from that table
    /// (Q8_K, the integer types, F64) have it zero-initialised in C, i.e. F32; that is what is returned.
    public var vecDotType: GGMLType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .q4_0, .q5_0, .q8_0, .mxfp4, .nvfp4, .iq4_nl, .q1_0: return .q8_0
        case .q4_1, .q5_1, .q8_1: return .q8_1
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq2_xxs, .iq2_xs, .iq3_xxs, .iq1_s, .iq3_s, .iq2_s, .iq4_xs, .iq1_m,
             .tq1_0, .tq2_0:
            return .q8_K
        case .q8_K, .i8, .i16, .i32, .i64, .f64: return .f32
        }
    }

    /// Bytes of one row of `ne0` elements, or nil when `ne0` is negative or not a multiple of the block size
    /// (ggml asserts on that; a GGUF reader should report it).
    public func rowBytes(ne0: Int) -> Int? {
        guard ne0 >= 0, ne0 % blockSize == 0 else { return nil }
        let (bytes, overflow) = (ne0 / blockSize).multipliedReportingOverflow(by: typeSize)
        return overflow ? nil : bytes
    }

    /// Why a type cannot be decoded, for error messages ("iq2_xxs (16): an i-quant (lattice codebooks), not implemented").
    public var unsupportedReason: String? {
        if isSupported { return nil }
        switch self {
        case .iq2_xxs, .iq2_xs, .iq3_xxs, .iq1_s, .iq4_nl, .iq3_s, .iq2_s, .iq4_xs, .iq1_m:
            return "\(name) (\(rawValue)) is an i-quant (codebook grids); Parity does not implement i-quants"
        case .tq1_0, .tq2_0:
            return "\(name) (\(rawValue)) is a ternary quant; Parity does not implement it"
        case .nvfp4:
            return "nvfp4 (40) is not implemented (UE4M3 scales per 16 values)"
        case .q1_0:
            return "q1_0 (41) is not implemented"
        case .i8, .i16, .i32, .i64, .f64:
            return "\(name) (\(rawValue)) is not a floating-point weight type Parity decodes"
        default:
            return "\(name) (\(rawValue)) is not implemented"
        }
    }

    /// A message for a type number that is not a case: ggml's removed types are named.
    public static func describeUnknown(_ raw: UInt32) -> String {
        switch raw {
        case 4, 5: return "ggml type \(raw) (Q4_\(raw - 2), removed from ggml in 2023)"
        case 31, 32, 33: return "ggml type \(raw) (Q4_0_\(["4_4", "4_8", "8_8"][Int(raw) - 31]), removed: ggml repacks Q4_0 at load time)"
        case 36, 37, 38: return "ggml type \(raw) (IQ4_NL_\(["4_4", "4_8", "8_8"][Int(raw) - 36]), removed: ggml repacks IQ4_NL at load time)"
        default: return "unknown ggml type \(raw) (this Parity knows types up to \(GGMLType.allCases.map(\.rawValue).max()!))"
        }
    }
}
