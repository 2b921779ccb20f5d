import CParityKernels
import ParityCore
import ParityFormats
import Testing

/// Parity's own binary16 conversions (bit manipulation in Swift, integer/F16C code in C) against Swift's `Float16`
/// conversions — compiler-rt's `__extendhfsf2` / `__truncsfhf2`, an independent implementation of IEEE 754's
/// round-to-nearest-even — on every half, every rounding boundary between halves, the special values and ten
/// million random floats.
@Suite("binary16 scalar and bulk conversions equal Swift's Float16, bit for bit")
struct F16KernelScalarTests {
    /// Swift's conversion, the reference.
    static func referenceHalf(_ x: Float) -> UInt16 { Float16(x).bitPattern }
    static func referenceRound(_ x: Float) -> Float { Float(Float16(x)) }

    /// The floats where float → half rounding changes its answer or is special: every half value, the exact
    /// midpoint between each pair of adjacent halves (both signs, from 0 up to the midpoint 65520 between 65504
    /// and the next power of two), the floats just beside each, and the edges of the subnormal, overflow,
    /// infinity and NaN ranges.
    static func boundaryFloats() -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(6 * 0x7C00 * 2 + 4096)
        for bits in UInt16(0)...0x7BFF {
            let low = Double(Float(Float16(bitPattern: bits)))
            // The successor of the largest finite half is 2^16 (where Inf begins), so its midpoint is 65520.
            let high = bits == 0x7BFF ? 65536.0 : Double(Float(Float16(bitPattern: bits + 1)))
            let value = Float(low), mid = Float((low + high) / 2)
            precondition(Double(mid) == (low + high) / 2, "every midpoint between halves is a float")
            for v in [value, value.nextUp, value.nextDown, mid, mid.nextUp, mid.nextDown] { out.append(v); out.append(-v) }
        }
        let specials: [Float] = [
            0, 65504, 65519.996, 65520, 65536, 65520.004, .greatestFiniteMagnitude, .infinity,
            0x1p-14, Float(0x1p-14).nextDown, Float(0x1p-14).nextUp, 0x1p-24, 0x1p-25, Float(0x1p-25).nextUp, Float(0x1p-25).nextDown,
            0x1.8p-24, 0x1p-26, .leastNonzeroMagnitude, .leastNormalMagnitude, Float(0x1p-15) * 3,
        ]
        for v in specials { out.append(v); out.append(-v) }
        // NaNs: quiet and signaling, every value of the 10 payload bits a half keeps, with and without low bits.
        for top in UInt32(0)..<1024 {
            for low: UInt32 in [0, 1, 0x1000, 0x1FFF] {
                let payload = (top << 13) | low
                guard payload != 0 else { continue }  // payload 0 is Inf
                out.append(Float(bitPattern: 0x7F80_0000 | payload))
                out.append(Float(bitPattern: 0xFF80_0000 | payload))
            }
        }
        return out
    }

    static func hex<T: BinaryInteger>(_ v: T) -> String { "0x" + String(v, radix: 16) }

    @Test("every one of the 65,536 halves widens exactly as Float(Float16) does, NaN bits included")
    func everyHalfToFloat() {
        var mismatches = 0
        for bits in 0...UInt16.max {
            let got = FloatCodecs.halfToFloat(UInt16(bits)).bitPattern
            let expected = Float(Float16(bitPattern: UInt16(bits))).bitPattern
            if got != expected {
                mismatches += 1
                if mismatches <= 5 { Issue.record("half \(Self.hex(bits)) → \(Self.hex(got)), Float(Float16) gives \(Self.hex(expected))") }
            }
        }
        #expect(mismatches == 0)
    }

    @Test("float → half and the one-step rounding agree with Float16(x) at every rounding boundary")
    func boundaries() {
        let values = Self.boundaryFloats()
        #expect(values.count > 300_000)
        var mismatches = 0
        for v in values {
            let half = FloatCodecs.floatToHalf(v), rounded = FloatCodecs.roundToHalf(v)
            if half != Self.referenceHalf(v) || rounded.bitPattern != Self.referenceRound(v).bitPattern {
                mismatches += 1
                if mismatches <= 5 {
                    Issue.record("float \(Self.hex(v.bitPattern)) (\(v)): half \(Self.hex(half)) vs Float16 \(Self.hex(Self.referenceHalf(v))); rounded \(Self.hex(rounded.bitPattern)) vs \(Self.hex(Self.referenceRound(v).bitPattern))")
                }
            }
        }
        #expect(mismatches == 0)
        // The edges named in IEEE 754 terms, so a wrong reference could not hide them.
        #expect(FloatCodecs.floatToHalf(65504) == 0x7BFF)
        #expect(FloatCodecs.floatToHalf(65519.996) == 0x7BFF, "just below the midpoint to 2^16: the largest half")
        #expect(FloatCodecs.floatToHalf(65520) == 0x7C00, "the midpoint to 2^16 ties to the even pattern, +Inf")
        #expect(FloatCodecs.floatToHalf(-65520) == 0xFC00)
        #expect(FloatCodecs.floatToHalf(0x1p-25) == 0x0000, "half the smallest subnormal ties to even: zero")
        #expect(FloatCodecs.floatToHalf(Float(0x1p-25).nextUp) == 0x0001)
        #expect(FloatCodecs.floatToHalf(0x1.8p-24) == 0x0002, "1.5 × the smallest subnormal ties to even: 2 units")
        #expect(FloatCodecs.floatToHalf(Float(0x1p-14).nextDown) == 0x0400, "rounds up from the subnormals to the smallest normal")
        #expect(FloatCodecs.floatToHalf(-0.0) == 0x8000)
        #expect(FloatCodecs.floatToHalf(Float(bitPattern: 0x7F80_0001)) == 0x7E00, "a signaling NaN whose payload is below half precision becomes quiet, not Inf")
        #expect(FloatCodecs.roundToHalf(-0.0).bitPattern == 0x8000_0000)
    }

    @Test("ten million random bit patterns convert as Float16(x) does")
    func randomBitPatterns() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var mismatches = 0
        for i in 0..<10_000_000 {
            // splitmix64: every bit pattern equally likely; every fourth one forced into the half range, where
            // the rounding does its work (uniform patterns are mostly far outside it).
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            var bits = UInt32(truncatingIfNeeded: z)
            if i % 4 == 0 { bits = (bits & 0x807F_FFFF) | ((UInt32(truncatingIfNeeded: z >> 32) % 48 + 96) << 23) }
            let v = Float(bitPattern: bits)
            if FloatCodecs.floatToHalf(v) != Self.referenceHalf(v) || FloatCodecs.roundToHalf(v).bitPattern != Self.referenceRound(v).bitPattern {
                mismatches += 1
                if mismatches <= 5 { Issue.record("float \(Self.hex(bits)): half \(Self.hex(FloatCodecs.floatToHalf(v))) vs Float16 \(Self.hex(Self.referenceHalf(v)))") }
            }
        }
        #expect(mismatches == 0)
    }

    @Test("the C bulk rounding and encoding (F16C and portable paths) equal Float16(x) at every boundary")
    func bulkPaths() {
        let values = Self.boundaryFloats()
        let expectedRound = values.map { Self.referenceRound($0).bitPattern }
        let expectedHalves = values.map(Self.referenceHalf)
        for mode: Int32 in [0, 1] {
            let forced = ForcedKernelPath.force(mode)
            defer { forced.release() }
            let path = pk_has_avx2() != 0 ? "F16C" : "portable"
            let rounded = MLXFloatType.f16.rounded(values)
            let encoded = MLXFloatType.f16.encode(values)
            var roundMismatches = 0, encodeMismatches = 0
            for i in values.indices {
                if rounded[i].bitPattern != expectedRound[i] {
                    roundMismatches += 1
                    if roundMismatches <= 3 { Issue.record("\(path) round of \(Self.hex(values[i].bitPattern)): \(Self.hex(rounded[i].bitPattern)) vs \(Self.hex(expectedRound[i]))") }
                }
                let half = UInt16(encoded[2 * i]) | UInt16(encoded[2 * i + 1]) << 8
                if half != expectedHalves[i] {
                    encodeMismatches += 1
                    if encodeMismatches <= 3 { Issue.record("\(path) encode of \(Self.hex(values[i].bitPattern)): \(Self.hex(half)) vs \(Self.hex(expectedHalves[i]))") }
                }
            }
            #expect(roundMismatches == 0, "\(path) pk_round_f16")
            #expect(encodeMismatches == 0, "\(path) pk_encode_f16")
        }
        // An odd count exercises the tail after the 8-wide loop.
        let tail = Array(values.prefix(13))
        #expect(MLXFloatType.f16.rounded(tail).map(\.bitPattern) == tail.map { Self.referenceRound($0).bitPattern })
    }
}
