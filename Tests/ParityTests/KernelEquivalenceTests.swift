import ParityCore
import ParityEngine
import Testing

/// The fast image kernels (KernelsImage.swift, ChannelsLast) compute the same float operations in the same order
/// as the element-loop definitions in `Kernels.Reference`, so their outputs must be identical bit for bit —
/// including NaN payloads, the sign of zero, odd sizes, padding wider than the kernel's reach, and strides.
@Suite("Kernel equivalence")
struct KernelEquivalenceTests {
    /// Deterministic values in [-2, 2] with planted specials: NaNs with distinct payloads, ±0, ±inf, ties.
    static func values(_ count: Int, seed: UInt64, specials: Bool) -> [Float] {
        var state = seed
        var out = (0..<count).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(truncatingIfNeeded: state >> 40) % 4001 - 2000) / 1000
        }
        if specials && count > 8 {
            let planted: [Float] = [.nan, Float(bitPattern: 0x7FC0_1234), -0.0, 0.0, .infinity, -.infinity, Float(bitPattern: 0xFFC0_0042)]
            for (i, v) in planted.enumerated() { out[(i * 7919 + 13) % count] = v }
            out[count - 1] = out[count - 2]  // a tie
        }
        return out
    }

    static func bits(_ t: Tensor) -> [UInt32] { t.data.map(\.bitPattern) }

    struct ConvCase: CustomTestStringConvertible, Sendable {
        let n, c, h, w, oc, kh, kw, sy, sx, py, px: Int
        let bias: Bool
        var testDescription: String { "N\(n) C\(c) \(h)×\(w) → \(oc), kernel \(kh)×\(kw), stride \(sy),\(sx), pad \(py),\(px)\(bias ? ", bias" : "")" }
    }

    static let convCases: [ConvCase] = [
        ConvCase(n: 3, c: 1, h: 28, w: 28, oc: 8, kh: 3, kw: 3, sy: 1, sx: 1, py: 1, px: 1, bias: true),   // fmnist-cnn conv1
        ConvCase(n: 2, c: 8, h: 14, w: 14, oc: 16, kh: 3, kw: 3, sy: 1, sx: 1, py: 1, px: 1, bias: true),  // conv2
        ConvCase(n: 1, c: 3, h: 7, w: 5, oc: 5, kh: 2, kw: 3, sy: 2, sx: 3, py: 0, px: 2, bias: false),    // odd, strided
        ConvCase(n: 2, c: 2, h: 5, w: 9, oc: 3, kh: 5, kw: 1, sy: 1, sx: 2, py: 3, px: 0, bias: true),     // padding past the kernel
        ConvCase(n: 1, c: 1, h: 1, w: 1, oc: 1, kh: 1, kw: 1, sy: 1, sx: 1, py: 0, px: 0, bias: true),     // one pixel
    ]

    @Test("conv2d NCHW equals the reference bit for bit", arguments: try nonEmpty(convCases, "conv cases"))
    func convNCHW(_ k: ConvCase) {
        let x = Tensor(shape: [k.n, k.c, k.h, k.w], data: Self.values(k.n * k.c * k.h * k.w, seed: 1, specials: true))
        let w = Tensor(shape: [k.oc, k.c, k.kh, k.kw], data: Self.values(k.oc * k.c * k.kh * k.kw, seed: 2, specials: false))
        let b = k.bias ? Tensor(shape: [k.oc], data: Self.values(k.oc, seed: 3, specials: false)) : nil
        let fast = Kernels.conv2dNCHW(x, weight: w, bias: b, stride: [k.sy, k.sx], padding: [k.py, k.px])
        let reference = Kernels.Reference.conv2dNCHW(x, weight: w, bias: b, stride: [k.sy, k.sx], padding: [k.py, k.px])
        #expect(fast.shape == reference.shape)
        #expect(Self.bits(fast) == Self.bits(reference), "\(k.testDescription): outputs differ")
    }

    @Test("conv2d NHWC equals the reference bit for bit", arguments: try nonEmpty(convCases, "conv cases"))
    func convNHWC(_ k: ConvCase) {
        let x = Tensor(shape: [k.n, k.h, k.w, k.c], data: Self.values(k.n * k.c * k.h * k.w, seed: 4, specials: true))
        let w = Tensor(shape: [k.oc, k.kh, k.kw, k.c], data: Self.values(k.oc * k.c * k.kh * k.kw, seed: 5, specials: false))
        let b = k.bias ? Tensor(shape: [k.oc], data: Self.values(k.oc, seed: 6, specials: false)) : nil
        let fast = Kernels.conv2dNHWC(x, weight: w, bias: b, stride: [k.sy, k.sx], padding: [k.py, k.px])
        let reference = Kernels.Reference.conv2dNHWC(x, weight: w, bias: b, stride: [k.sy, k.sx], padding: [k.py, k.px])
        #expect(fast.shape == reference.shape)
        #expect(Self.bits(fast) == Self.bits(reference), "\(k.testDescription): outputs differ")
    }

    struct PoolCase: CustomTestStringConvertible, Sendable {
        let n, c, h, w, kh, kw, sy, sx: Int
        var testDescription: String { "N\(n) C\(c) \(h)×\(w), window \(kh)×\(kw), stride \(sy),\(sx)" }
    }

    static let poolCases: [PoolCase] = [
        PoolCase(n: 2, c: 8, h: 28, w: 28, kh: 2, kw: 2, sy: 2, sx: 2),  // the unrolled 2×2 path
        PoolCase(n: 1, c: 3, h: 7, w: 9, kh: 2, kw: 2, sy: 2, sx: 2),    // odd sides: floor mode drops the last row/column
        PoolCase(n: 1, c: 2, h: 9, w: 8, kh: 3, kw: 2, sy: 2, sx: 1),    // the general path
        PoolCase(n: 3, c: 1, h: 4, w: 4, kh: 2, kw: 2, sy: 1, sx: 1),    // overlapping windows
        PoolCase(n: 1, c: 2, h: 5, w: 37, kh: 2, kw: 2, sy: 1, sx: 2),   // eight lanes twice + an overlapping last vector; rows overlap
        PoolCase(n: 2, c: 3, h: 14, w: 15, kh: 2, kw: 2, sy: 2, sx: 2),  // seven windows a row (fmnist-cnn pool2): four lanes twice
        PoolCase(n: 1, c: 2, h: 6, w: 18, kh: 2, kw: 2, sy: 2, sx: 2),   // nine windows a row: eight lanes, then 1–8 again
        PoolCase(n: 1, c: 2, h: 4, w: 7, kh: 2, kw: 2, sy: 2, sx: 2),    // three windows a row: the scalar loop
    ]

    @Test("max pool NCHW (both NaN rules) and NHWC equal the reference bit for bit", arguments: try nonEmpty(poolCases, "pool cases"))
    func pools(_ p: PoolCase) {
        // Dense specials, so that windows hold NaNs of different payloads, ±0 ties and infinities.
        var data = Self.values(p.n * p.c * p.h * p.w, seed: 7, specials: true)
        for i in stride(from: 5, to: data.count, by: 11) { data[i] = i % 2 == 0 ? -0.0 : Float(bitPattern: 0x7FC0_0000 | UInt32(i)) }
        let x = Tensor(shape: [p.n, p.c, p.h, p.w], data: data)
        for rule in [Kernels.MaxPoolNaN.propagate, .skip] {
            let fast = Kernels.maxPool2dNCHW(x, kernel: [p.kh, p.kw], stride: [p.sy, p.sx], nan: rule)
            let reference = Kernels.Reference.maxPool2dNCHW(x, kernel: [p.kh, p.kw], stride: [p.sy, p.sx], nan: rule)
            #expect(Self.bits(fast) == Self.bits(reference), "\(p.testDescription), NaN \(rule): outputs differ")
        }
        let nhwc = Tensor(shape: [p.n, p.h, p.w, p.c], data: data)
        let fast = Kernels.maxPool2dNHWC(nhwc, kernel: [p.kh, p.kw], stride: [p.sy, p.sx])
        let reference = Kernels.Reference.maxPool2dNHWC(nhwc, kernel: [p.kh, p.kw], stride: [p.sy, p.sx])
        #expect(Self.bits(fast) == Self.bits(reference), "\(p.testDescription), NHWC: outputs differ")
    }

    @Test("relu and the channels-last transposes equal their definitions")
    func elementwise() {
        let x = Tensor(shape: [2, 3, 5, 7], data: Self.values(210, seed: 8, specials: true))
        #expect(Self.bits(Kernels.relu(x)) == Self.bits(Kernels.Reference.relu(x)))
        #expect(Self.bits(ChannelsLast.toNHWC(x)) == Self.bits(x.permuted([0, 2, 3, 1])))
        let nhwc = x.reshaped([2, 5, 7, 3])
        #expect(Self.bits(ChannelsLast.toNCHW(nhwc)) == Self.bits(nhwc.permuted([0, 3, 1, 2])))
        let flat = x.reshaped([2, 105])
        let map = (c: 3, h: 5, w: 7)
        #expect(Self.bits(ChannelsLast.flattenedToChannelsLast(flat, map: map))
                == Self.bits(flat.reshaped([2, 3, 5, 7]).permuted([0, 2, 3, 1]).reshaped([2, 105])))
        #expect(Self.bits(ChannelsLast.flattenedToChannelsFirst(flat, map: map))
                == Self.bits(flat.reshaped([2, 5, 7, 3]).permuted([0, 3, 1, 2]).reshaped([2, 105])))
    }
}
