/// Element types, named as the safetensors spec names them (the raw values are the header strings).
/// Sub-byte types (F4, F6_*) are packed LSB-first into bytes; a tensor of them must end on a byte boundary.
public enum DType: String, CaseIterable, Sendable {
    case bool = "BOOL"
    case u8 = "U8", i8 = "I8", u16 = "U16", i16 = "I16", u32 = "U32", i32 = "I32", u64 = "U64", i64 = "I64"
    case f16 = "F16", bf16 = "BF16", f32 = "F32", f64 = "F64", c64 = "C64"
    case f8E4M3 = "F8_E4M3", f8E5M2 = "F8_E5M2", f8E8M0 = "F8_E8M0"
    case f8E4M3FNUZ = "F8_E4M3FNUZ", f8E5M2FNUZ = "F8_E5M2FNUZ"
    case f4 = "F4", f6E2M3 = "F6_E2M3", f6E3M2 = "F6_E3M2"

    /// Storage size of one element in bits.
    public var bits: Int {
        switch self {
        case .f4: return 4
        case .f6E2M3, .f6E3M2: return 6
        case .bool, .u8, .i8, .f8E4M3, .f8E5M2, .f8E8M0, .f8E4M3FNUZ, .f8E5M2FNUZ: return 8
        case .u16, .i16, .f16, .bf16: return 16
        case .u32, .i32, .f32: return 32
        case .u64, .i64, .f64, .c64: return 64
        }
    }

    /// Whether `decodeAsFloat` gives each element a real value (complex numbers have none).
    public var isRealValued: Bool { self != .c64 }

    public var isFloatingPoint: Bool {
        switch self {
        case .bool, .u8, .i8, .u16, .i16, .u32, .i32, .u64, .i64, .c64: return false
        default: return true
        }
    }

    /// Bytes needed for `count` elements, or nil when sub-byte elements would not end on a byte boundary
    /// (safetensors' `MisalignedSlice`) or the size overflows.
    public func byteCount(elements count: Int) -> Int? {
        let (bitsTotal, overflow) = count.multipliedReportingOverflow(by: bits)
        guard !overflow, bitsTotal % 8 == 0 else { return nil }
        return bitsTotal / 8
    }
}
