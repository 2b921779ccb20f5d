import ParityCore
import Testing

@Suite("Float16 / BFloat16 / FP8 / FP4 / FP6 codecs")
struct FloatCodecsTests {
    @Test("every finite half survives half → float → half")
    func halfRoundTrip() {
        for bits in 0...UInt16.max {
            let f = FloatCodecs.halfToFloat(UInt16(bits))
            if f.isNaN { #expect(FloatCodecs.floatToHalf(f) & 0x7C00 == 0x7C00); continue }
            #expect(FloatCodecs.floatToHalf(f) == UInt16(bits), "half 0x\(String(bits, radix: 16))")
        }
    }

    @Test("the midpoint between adjacent halves rounds to the even one")
    func halfTiesToEven() {
        // For every positive finite half h (except the largest), the exact midpoint to its successor is a
        // Float; round-to-nearest-even must pick whichever of h, h+1 has an even mantissa.
        for bits in UInt16(0)..<0x7BFF {
            let lo = Double(FloatCodecs.halfToFloat(bits)), hi = Double(FloatCodecs.halfToFloat(bits + 1))
            let mid = Float((lo + hi) / 2)
            #expect(Double(mid) == (lo + hi) / 2)
            let expected = bits & 1 == 0 ? bits : bits + 1
            #expect(FloatCodecs.floatToHalf(mid) == expected, "midpoint after 0x\(String(bits, radix: 16))")
            // Just above / below the midpoint round away from the tie.
            #expect(FloatCodecs.floatToHalf(mid.nextUp) == bits + 1)
            #expect(FloatCodecs.floatToHalf(mid.nextDown) == bits)
        }
        #expect(FloatCodecs.floatToHalf(65520) == 0x7C00, "65520 is the midpoint to the next power and rounds to +Inf")
        #expect(FloatCodecs.floatToHalf(65519.996) == 0x7BFF)
    }

    @Test("bfloat16 rounds to nearest even and keeps NaN a NaN")
    func bfloat16() {
        #expect(FloatCodecs.floatToBFloat16(1.0) == 0x3F80)
        // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties to even (0x3F80).
        #expect(FloatCodecs.floatToBFloat16(Float(bitPattern: 0x3F80_8000)) == 0x3F80)
        // 1 + 3·2^-8 is halfway between 0x3F81 and 0x3F82: ties to even (0x3F82).
        #expect(FloatCodecs.floatToBFloat16(Float(bitPattern: 0x3F81_8000)) == 0x3F82)
        #expect(FloatCodecs.floatToBFloat16(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(FloatCodecs.floatToBFloat16(Float(bitPattern: 0x3F80_7FFF)) == 0x3F80)
        // A NaN whose payload lives only in the low half must not become Inf.
        let nan = Float(bitPattern: 0x7F80_0001)
        #expect(FloatCodecs.bfloat16ToFloat(FloatCodecs.floatToBFloat16(nan)).isNaN)
        #expect(FloatCodecs.floatToBFloat16(.infinity) == 0x7F80)
        #expect(FloatCodecs.floatToBFloat16(Float.greatestFiniteMagnitude) == 0x7F80, "rounds up to Inf")
        for bits in stride(from: 0, through: 0xFFFF, by: 1) where (bits & 0x7F80) != 0x7F80 {
            #expect(FloatCodecs.floatToBFloat16(FloatCodecs.bfloat16ToFloat(UInt16(bits))) == UInt16(bits))
        }
    }

    @Test("FP8 / FP6 / FP4 decode the OCP tables' anchor values")
    func narrowFloats() {
        #expect(FloatCodecs.f8E4M3ToFloat(0x7E) == 448, "E4M3 max")
        #expect(FloatCodecs.f8E4M3ToFloat(0x7F).isNaN)
        #expect(FloatCodecs.f8E4M3ToFloat(0x01) == Float.pow2Test(-9), "smallest E4M3 subnormal 2^-9")
        #expect(FloatCodecs.f8E4M3ToFloat(0xB8) == -1)
        #expect(FloatCodecs.f8E5M2ToFloat(0x7B) == 57344, "E5M2 max")
        #expect(FloatCodecs.f8E5M2ToFloat(0x7C) == .infinity)
        #expect(FloatCodecs.f8E5M2ToFloat(0x7D).isNaN)
        #expect(FloatCodecs.f8E8M0ToFloat(127) == 1)
        #expect(FloatCodecs.f8E8M0ToFloat(0) == Float.pow2Test(-127))
        #expect(FloatCodecs.f8E8M0ToFloat(0xFF).isNaN)
        #expect(FloatCodecs.f8E4M3FNUZToFloat(0x80).isNaN)
        #expect(FloatCodecs.f8E4M3FNUZToFloat(0x7F) == 240, "E4M3FNUZ max")
        #expect(FloatCodecs.f8E5M2FNUZToFloat(0x7F) == 57344)
        let e2m1: [Float] = [0, 0.5, 1, 1.5, 2, 3, 4, 6]
        for (code, value) in e2m1.enumerated() {
            #expect(FloatCodecs.f4E2M1ToFloat(UInt8(code)) == value)
            #expect(FloatCodecs.f4E2M1ToFloat(UInt8(code) | 8) == -value)
        }
        #expect(FloatCodecs.f6E2M3ToFloat(0x1F) == 7.5, "E2M3 max")
        #expect(FloatCodecs.f6E3M2ToFloat(0x1F) == 28, "E3M2 max")
        #expect(FloatCodecs.f6E2M3ToFloat(0x01) == 0.125)
        #expect(FloatCodecs.f6E3M2ToFloat(0x01) == 0.0625)
    }
}

extension Float {
    static func pow2Test(_ n: Int) -> Float { Float(sign: .plus, exponent: n, significand: 1) }
}
