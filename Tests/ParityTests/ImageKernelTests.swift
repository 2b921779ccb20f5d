import CParityKernels
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify
import Testing

/// Bits with every NaN mapped to one pattern: where several NaNs meet in one fused multiply-add chain, which payload
/// survives depends on the FMA instruction's operand form, which the compiler picks per path (IEEE 754 leaves it
/// open; no runtime defines it), so the chained kernels agree with their references on NaN-ness, not payload.
func bitsUpToNaNPayload(_ t: Tensor) -> [UInt32] { t.data.map { $0.isNaN ? Float.nan.bitPattern : $0.bitPattern } }

/// The direct convolution in C (image.c) computes `Kernels.Reference.conv2dNCHW`'s definition — per output element
/// one fused multiply-add chain from +0 over (c, kh, kw), then + bias — bit for bit, on its AVX2+FMA path (vectors of
/// output columns, the row's last vector overlapping the one before, blocks of four, two or one output channels)
/// and on its portable path, including NaN payloads, ±0, ±inf in inputs, weights and biases (an infinite weight
/// times a padding zero is NaN, as in im2col's product).
@Suite("Image kernels (direct convolution)", .serialized)
struct ImageKernelTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let n, c, h, w, oc, kh, kw, sy, sx, py, px: Int
        let bias: Bool
        var testDescription: String { "N\(n) C\(c) \(h)×\(w) → \(oc), kernel \(kh)×\(kw), stride \(sy),\(sx), pad \(py),\(px)\(bias ? ", bias" : "")" }
    }

    static let cases: [Case] = [
        Case(n: 2, c: 1, h: 28, w: 28, oc: 8, kh: 3, kw: 3, sy: 1, sx: 1, py: 1, px: 1, bias: true),   // fmnist-cnn conv1: 4 vectors, 2 channels
        Case(n: 2, c: 8, h: 14, w: 14, oc: 16, kh: 3, kw: 3, sy: 1, sx: 1, py: 1, px: 1, bias: true),  // conv2: 2 overlapping vectors, 4 channels
        Case(n: 1, c: 3, h: 9, w: 8, oc: 7, kh: 3, kw: 3, sy: 1, sx: 1, py: 1, px: 1, bias: false),    // ow 8: one vector, 4 channels then 3 one by one
        Case(n: 1, c: 2, h: 6, w: 22, oc: 5, kh: 2, kw: 3, sy: 2, sx: 1, py: 0, px: 2, bias: true),    // 3 vectors, stride down 2, remainder channels
        Case(n: 1, c: 2, h: 5, w: 40, oc: 3, kh: 3, kw: 5, sy: 1, sx: 1, py: 2, px: 0, bias: true),    // 5 vectors: two column groups
        Case(n: 1, c: 3, h: 7, w: 5, oc: 5, kh: 2, kw: 3, sy: 2, sx: 3, py: 0, px: 2, bias: false),    // strided across: portable only
        Case(n: 2, c: 2, h: 5, w: 6, oc: 3, kh: 5, kw: 1, sy: 1, sx: 1, py: 3, px: 0, bias: true),     // ow < 8: AVX-512 (masked) or portable
    ]

    /// `limit`: 0 the best path this CPU has (AVX-512 here when present), 2 AVX2 at most, 1 portable.
    static func conv(_ k: Case, x: Tensor, w: Tensor, b: Tensor?, limit: Int32) -> Tensor {
        pk_conv_force_path(limit)
        defer { pk_conv_force_path(0) }
        return Kernels.conv2dNCHW(x, weight: w, bias: b, stride: [k.sy, k.sx], padding: [k.py, k.px])
    }

    @Test("direct conv2d NCHW (AVX-512, AVX2+FMA and portable paths) equals the reference bit for bit (NaN payloads aside)", arguments: try nonEmpty(cases, "conv cases"))
    func directConvolution(_ k: Case) {
        let x = Tensor(shape: [k.n, k.c, k.h, k.w], data: KernelEquivalenceTests.values(k.n * k.c * k.h * k.w, seed: 11, specials: true))
        let w = Tensor(shape: [k.oc, k.c, k.kh, k.kw], data: KernelEquivalenceTests.values(k.oc * k.c * k.kh * k.kw, seed: 12, specials: true))
        let b = k.bias ? Tensor(shape: [k.oc], data: KernelEquivalenceTests.values(k.oc, seed: 13, specials: false)) : nil
        let reference = Kernels.Reference.conv2dNCHW(x, weight: w, bias: b, stride: [k.sy, k.sx], padding: [k.py, k.px])
        for limit: Int32 in [0, 2, 1] {
            let fast = Self.conv(k, x: x, w: w, b: b, limit: limit)
            #expect(fast.shape == reference.shape)
            #expect(bitsUpToNaNPayload(fast) == bitsUpToNaNPayload(reference),
                    "\(k.testDescription), \(["best", "portable", "AVX2"][Int(limit)]) path: outputs differ")
        }
    }

    @Test("the reference is a fused multiply-add chain, then the bias: hand-computed cases")
    func referenceDefinition() {
        // e = 1 + 2^-23: e·e = 1 + 2^-22 + 2^-46 rounds to 1 + 2^-22; the next step e·(−e) + that is −2^-46 exactly when
        // fused, 0 when the product is rounded first. So the chain [e, −e]·[e, e] tells the two definitions apart.
        let e = 1 + Float.ulpOfOne
        let x = Tensor(shape: [1, 1, 1, 2], data: [e, -e])
        let w = Tensor(shape: [1, 1, 1, 2], data: [e, e])
        let y = Kernels.Reference.conv2dNCHW(x, weight: w, bias: nil, stride: [1, 1], padding: [0, 0])
        #expect(y.data == [-Float(sign: .plus, exponent: -46, significand: 1)])
        // −0 products: the chain starts at +0, so a sum of −0 terms is +0; the bias −0 then leaves +0.
        let zeros = Kernels.Reference.conv2dNCHW(Tensor(shape: [1, 1, 1, 1], data: [-0.0]), weight: Tensor(shape: [1, 1, 1, 1], data: [1]),
                                                 bias: Tensor(shape: [1], data: [-0.0]), stride: [1, 1], padding: [0, 0])
        #expect(zeros.data.map(\.bitPattern) == [Float(0).bitPattern])
        // An infinite weight over a padding slot gives NaN, as im2col's zero column does in a product.
        let padded = Kernels.Reference.conv2dNCHW(Tensor(shape: [1, 1, 1, 1], data: [1]), weight: Tensor(shape: [1, 1, 1, 2], data: [.infinity, 1]),
                                                  bias: nil, stride: [1, 1], padding: [0, 1])
        #expect(padded.data[0].isNaN)
    }

    /// Pool planes: odd sizes (floor mode drops the last column/row), rows of 14 (one masked vector), 20 and 33
    /// windows (two and three vectors), a single window.
    static let poolShapes: [[Int]] = [[2, 8, 28, 28], [1, 3, 9, 29], [1, 2, 4, 40], [1, 1, 6, 67], [1, 1, 2, 2]]

    @Test("2×2 stride-2 max pool (AVX-512 in C, and the Swift path) equals the reference bit for bit, both NaN rules",
          arguments: try nonEmpty(poolShapes, "pool shapes"))
    func maxPool(_ shape: [Int]) {
        let count = shape.reduce(1, *)
        let x = Tensor(shape: shape, data: KernelEquivalenceTests.values(count, seed: 21, specials: true))
        for nan in [Kernels.MaxPoolNaN.propagate, .skip] {
            let reference = Kernels.Reference.maxPool2dNCHW(x, kernel: [2, 2], stride: [2, 2], nan: nan)
            for limit: Int32 in [0, 2] {
                pk_conv_force_path(limit)
                let fast = Kernels.maxPool2dNCHW(x, kernel: [2, 2], stride: [2, 2], nan: nan)
                pk_conv_force_path(0)
                #expect(fast.shape == reference.shape)
                #expect(KernelEquivalenceTests.bits(fast) == KernelEquivalenceTests.bits(reference),
                        "\(shape), \(nan), \(limit == 0 ? "best" : "Swift") path: outputs differ")
            }
        }
    }

    @Test("relu (AVX-512 in C, and the Swift path) equals the reference bit for bit: NaN payloads kept, −0 → +0")
    func relu() {
        let x = Tensor(shape: [3, 37], data: KernelEquivalenceTests.values(111, seed: 22, specials: true))
        let reference = Kernels.Reference.relu(x)
        for limit: Int32 in [0, 2] {
            pk_conv_force_path(limit)
            let fast = Kernels.relu(x)
            pk_conv_force_path(0)
            #expect(KernelEquivalenceTests.bits(fast) == KernelEquivalenceTests.bits(reference), "\(limit == 0 ? "best" : "Swift") path: relu differs")
        }
        #expect(Kernels.relu(Tensor(shape: [1], data: [-0.0])).data[0].bitPattern == Float(0).bitPattern, "relu(−0) must be +0 (Swift's max(−0, 0))")
    }

    /// (rows, in, out): fmnist-mlp's fc1 and fc2 and fmnist-cnn's dense at odd row counts (the six-row and
    /// three-row blocks' remainders), outputs not a multiple of 32 (masked last panel), one output.
    static let linearShapes: [[Int]] = [[7, 784, 500], [13, 500, 10], [1, 784, 10], [5, 9, 33], [2, 3, 1]]

    @Test("packed linear (AVX-512, AVX2+FMA and portable paths) equals its fused-chain reference bit for bit (NaN payloads aside)",
          arguments: try nonEmpty(linearShapes, "linear shapes"))
    func linear(_ shape: [Int]) {
        let (n, inF, outF) = (shape[0], shape[1], shape[2])
        let x = Tensor(shape: [n, inF], data: KernelEquivalenceTests.values(n * inF, seed: 31, specials: true))
        let w = Tensor(shape: [outF, inF], data: KernelEquivalenceTests.values(outF * inF, seed: 32, specials: true))
        let b = Tensor(shape: [outF], data: KernelEquivalenceTests.values(outF, seed: 33, specials: false))
        for bias in [b, nil] {
            let reference = Kernels.Reference.linearChained(x, weight: w, bias: bias)
            for limit: Int32 in [0, 2, 1] {
                pk_conv_force_path(limit)
                let fast = Kernels.linearChained(x, packed: Kernels.PackedLinearWeight(w), bias: bias)
                pk_conv_force_path(0)
                #expect(fast.shape == reference.shape)
                #expect(bitsUpToNaNPayload(fast) == bitsUpToNaNPayload(reference),
                        "\(shape)\(bias == nil ? "" : " + bias"), \(["best", "portable", "AVX2"][Int(limit)]) path: outputs differ")
            }
        }
    }

    @Test("PyTorchEngine.forwardOutput (the batch in slices) equals the whole-batch forward bit for bit",
          arguments: try nonEmpty(["fmnist-cnn", "fmnist-mlp"], "image models"))
    func slicedForward(_ modelName: String) throws {
        let model = try Repo.model(modelName)
        let engine = try PyTorchEngine(weights: model.weights(), model: model.config)
        // 37 images: four full slices and a partial one; pixel-like values in [0, 1].
        let n = 37, perImage = 28 * 28
        let pixels = KernelEquivalenceTests.values(n * perImage, seed: 41, specials: false).map { abs($0) / 2 }
        let input = Tensor(shape: [n, 1, 28, 28], data: pixels)
        let whole = try engine.forward(model.config.layers, input: input, hook: { _, _ in })
        let sliced = try engine.forwardOutput(model.config.layers, input: input)
        #expect(sliced.shape == whole.shape)
        #expect(bitsUpToNaNPayload(sliced) == bitsUpToNaNPayload(whole), "\(modelName): sliced forward differs from the whole batch")
    }
}
