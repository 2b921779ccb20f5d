/// Exact conversions between Float and the narrow float formats.
///
/// Narrowing rounds to nearest, ties to even, as IEEE 754 and PyTorch's `.half()` / `.bfloat16()` do.
/// Widening is exact. NaN stays NaN (quiet), ±Inf stays ±Inf where the format has it.
public enum FloatCodecs {
    /// IEEE binary16 → Float (exact).
    @inlinable @inline(__always) public static func halfToFloat(_ bits: UInt16) -> Float {
        Float(Float16(bitPattern: bits))
    }

    /// Float → IEEE binary16, round to nearest even (Swift's `Float16.init(_: Float)` is the IEEE conversion;
    /// a test checks every midpoint between adjacent halves).
    @inlinable @inline(__always) public static func floatToHalf(_ x: Float) -> UInt16 {
        Float16(x).bitPattern
    }

    /// bfloat16 → Float (exact: bfloat16 is the top half of a binary32).
    @inlinable @inline(__always) public static func bfloat16ToFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// Float → bfloat16, round to nearest even; NaN is kept quiet (a payload rounding to an Inf pattern would
    /// otherwise turn a NaN into an Inf).
    @inlinable @inline(__always) public static func floatToBFloat16(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let roundingBias: UInt32 = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
    }

    /// A finite small float with `exponentBits`/`mantissaBits` and `bias`: normal `(1.m)·2^(e−bias)`,
    /// subnormal `(0.m)·2^(1−bias)`. Special values are each caller's business.
    @inline(__always) static func minifloat(sign: Bool, exponent: Int, mantissa: Int, mantissaBits: Int, bias: Int) -> Float {
        let scale = Float(1 << mantissaBits)
        let magnitude: Float = exponent == 0
            ? Float(mantissa) / scale * Float.pow2(1 - bias)
            : (1 + Float(mantissa) / scale) * Float.pow2(exponent - bias)
        return sign ? -magnitude : magnitude
    }

    /// OCP FP8 E4M3 ("fn": no infinities; S.1111.111 is NaN), bias 7, max 448.
    public static func f8E4M3ToFloat(_ b: UInt8) -> Float {
        if b & 0x7F == 0x7F { return .nan }
        return minifloat(sign: b & 0x80 != 0, exponent: Int(b >> 3) & 0xF, mantissa: Int(b & 7), mantissaBits: 3, bias: 7)
    }

    /// OCP FP8 E5M2 (IEEE-like: exponent 31 is Inf/NaN), bias 15.
    public static func f8E5M2ToFloat(_ b: UInt8) -> Float {
        let e = Int(b >> 2) & 0x1F, m = Int(b & 3), sign = b & 0x80 != 0
        if e == 31 { return m == 0 ? (sign ? -.infinity : .infinity) : .nan }
        return minifloat(sign: sign, exponent: e, mantissa: m, mantissaBits: 2, bias: 15)
    }

    /// E8M0 scale (MX formats): 2^(e−127); 0xFF is NaN.
    public static func f8E8M0ToFloat(_ b: UInt8) -> Float {
        b == 0xFF ? .nan : Float.pow2(Int(b) - 127)
    }

    /// FNUZ variants (finite, no negative zero): 0x80 is the only NaN; biases 8 (E4M3) and 16 (E5M2).
    public static func f8E4M3FNUZToFloat(_ b: UInt8) -> Float {
        if b == 0x80 { return .nan }
        return minifloat(sign: b & 0x80 != 0, exponent: Int(b >> 3) & 0xF, mantissa: Int(b & 7), mantissaBits: 3, bias: 8)
    }
    public static func f8E5M2FNUZToFloat(_ b: UInt8) -> Float {
        if b == 0x80 { return .nan }
        return minifloat(sign: b & 0x80 != 0, exponent: Int(b >> 2) & 0x1F, mantissa: Int(b & 3), mantissaBits: 2, bias: 16)
    }

    /// OCP MX sub-byte floats, all finite: E2M1 (bias 1), E2M3 (bias 1), E3M2 (bias 3).
    public static func f4E2M1ToFloat(_ v: UInt8) -> Float {
        minifloat(sign: v & 0x8 != 0, exponent: Int(v >> 1) & 3, mantissa: Int(v & 1), mantissaBits: 1, bias: 1)
    }
    public static func f6E2M3ToFloat(_ v: UInt8) -> Float {
        minifloat(sign: v & 0x20 != 0, exponent: Int(v >> 3) & 3, mantissa: Int(v & 7), mantissaBits: 3, bias: 1)
    }
    public static func f6E3M2ToFloat(_ v: UInt8) -> Float {
        minifloat(sign: v & 0x20 != 0, exponent: Int(v >> 2) & 7, mantissa: Int(v & 3), mantissaBits: 2, bias: 3)
    }
}

extension Float {
    /// 2^n exactly, for the exponent range of the formats above.
    @inline(__always) static func pow2(_ n: Int) -> Float { Float(sign: .plus, exponent: n, significand: 1) }
}
