/// Exact conversions between Float and the narrow float formats.
///
/// Narrowing rounds to nearest, ties to even, as IEEE 754 and PyTorch's `.half()` / `.bfloat16()` do.
/// Widening is exact. NaN stays NaN (quiet), ±Inf stays ±Inf where the format has it.
public enum FloatCodecs {
    /// IEEE binary16 → Float (exact). A NaN gets the quiet bit and keeps its payload, as Swift's
    /// `Float(Float16)` (compiler-rt's `__extendhfsf2`) and F16C's `vcvtph2ps` do. Bit manipulation rather than
    /// `Float(Float16(bitPattern:))`: without F16C in the target, Swift lowers that to a libcall per value
    /// (F16KernelScalarTests compares all 65,536 halves with it).
    @inlinable @inline(__always) public static func halfToFloat(_ bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let magnitude = UInt32(bits & 0x7FFF)
        if magnitude >= 0x0400 && magnitude < 0x7C00 {
            // Normal: rebias the exponent (15 → 127) and widen the mantissa (10 → 23 bits).
            return Float(bitPattern: sign | ((magnitude << 13) &+ (112 << 23)))
        }
        if magnitude < 0x0400 {
            // Zero or subnormal: mantissa · 2^-24, exact (every half subnormal is a normal float).
            return Float(bitPattern: sign | (Float(magnitude) * 0x1p-24).bitPattern)
        }
        // Inf (mantissa 0) or NaN (quiet bit set, payload kept).
        let mantissa = magnitude & 0x03FF
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13) | (mantissa != 0 ? 0x0040_0000 : 0))
    }

    /// Float → IEEE binary16, round to nearest, ties to even; magnitudes from 65520 up → ±Inf; a NaN → a quiet NaN
    /// with the top payload bits (what Swift's `Float16(_: Float)`, compiler-rt's `__truncsfhf2`, and F16C's
    /// `vcvtps2ph` give). Bit manipulation instead of the libcall; F16KernelScalarTests checks every half, every
    /// midpoint between adjacent halves and its neighbours, and ten million random floats against `Float16(x)`.
    @inlinable @inline(__always) public static func floatToHalf(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        let magnitude = bits & 0x7FFF_FFFF
        if magnitude >= 0x3880_0000 && magnitude < 0x4780_0000 {
            // Normal half range [2^-14, 2^16): rebias, add half an ulp minus one plus the kept mantissa's low bit
            // (ties to even), truncate. A carry out of the mantissa bumps the exponent, [65520, 65536) to Inf.
            let rebiased = magnitude &- (112 << 23)
            let rounded = rebiased &+ 0x0FFF &+ ((rebiased >> 13) & 1)
            return sign | UInt16(truncatingIfNeeded: rounded >> 13)
        }
        if magnitude < 0x3880_0000 {
            // Subnormal or zero: adding 0.5 puts the value at the spacing of half subnormals (2^-24), so the
            // float adder rounds it (to nearest even); subtracting 0.5's bits leaves the mantissa count.
            let shifted = (Float(bitPattern: magnitude) + 0.5).bitPattern &- 0x3F00_0000
            return sign | UInt16(truncatingIfNeeded: shifted)
        }
        if magnitude <= 0x7F80_0000 { return sign | 0x7C00 }  // ≥ 2^16, or Inf
        return sign | 0x7E00 | UInt16(truncatingIfNeeded: (magnitude >> 13) & 0x03FF)  // NaN: quiet, top payload
    }

    /// `x` rounded to binary16 and widened back (= `halfToFloat(floatToHalf(x))`, in one step): the rounding of
    /// every float16 operation in the MLX engines and of ggml's F16 activations. Branch-free, so a loop of it
    /// vectorizes: with e = x's exponent (at least −14, binary16's smallest normal), K = 2^(e+13) has an ulp of
    /// 2^(e−10), binary16's spacing at e (2⁻²⁴ below 2⁻¹⁴), so |x| + K rounds |x| to binary16's grid, ties to even
    /// (K is an even multiple of that ulp), and subtracting K is exact; |x| ≥ 65520 (the midpoint above the largest
    /// half, 65504) becomes infinity; a NaN becomes quiet with the 9 payload bits a half keeps.
    @inlinable @inline(__always) public static func roundToHalf(_ x: Float) -> Float {
        let magnitude = x.bitPattern & 0x7FFF_FFFF
        let exponent = max(magnitude >> 23, 113)  // 127 − 14
        let k = Float(bitPattern: (exponent &+ 13) << 23)
        let rounded = (Float(bitPattern: magnitude) + k) - k
        let result = magnitude > 0x7F80_0000 ? 0x7FC0_0000 | (magnitude & 0x003F_E000)
            : magnitude >= 0x477F_F000 ? 0x7F80_0000 : rounded.bitPattern
        return Float(bitPattern: (x.bitPattern & 0x8000_0000) | result)
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
