import CParityKernels
import ParityCore

/// The image kernels on raw pointers: the same float operations in the same order as `Kernels.Reference`
/// (the same fused multiply-add chains, or the same sgemm calls with the same shapes, bias added the same way), without the
/// bounds-checked element loops, so they are bit-identical to it (KernelEquivalenceTests) and much faster.
extension Kernels {
    /// PyTorch Conv2d (cross-correlation, zero padding), NCHW input [N, C, H, W], weight [OC, C, KH, KW]: a direct
    /// convolution in C (image.c; AVX2+FMA across output columns when the CPU has it), each output element the
    /// fused multiply-add chain from +0 over (c, kh, kw) in that order, then + bias — `Reference.conv2dNCHW`'s
    /// definition, bit for bit (KernelEquivalenceTests, ImageKernelTests; where several NaNs meet in one sum, which
    /// payload survives is the FMA instruction's choice, so paths agree on NaN-ness only).
    ///
    /// Why this order is allowed: PyTorch 1.13 runs this convolution through oneDNN on x86 (mkldnn is chosen for
    /// float32 3×3 kernels), whose blocked accumulation order no CPU-independent engine reproduces; its fallback
    /// `slow_conv2d` copies the bias into the output and calls addmm with β = 1, i.e. (Σ) + b, and oneDNN applies the
    /// bias to the finished sum too. So the engine keeps (Σ) + b and only the order inside Σ differs from the
    /// runtime — as it did with im2col + OpenBLAS before. The f32 tolerance (TolerancePolicy.float32) is a
    /// random-walk bound on that difference, valid for any summation order; fused multiply-adds round once per
    /// term instead of twice, which only tightens it. Measured on fmnist-cnn's goldens (64 images) against im2col +
    /// OpenBLAS: conv1 now equals PyTorch's output exactly (max abs 4.8e-7 before), conv2 max abs 1.67e-6 (1.91e-6),
    /// dense 5.7e-6 (7.6e-6) — all far inside the 1e-5 relative limits.
    public static func conv2dNCHW(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: [Int], padding: [Int]) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oc, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let (sy, sx, py, px) = (stride[0], stride[1], padding[0], padding[1])
        let oh = (h + 2 * py - kh) / sy + 1
        let ow = (w + 2 * px - kw) / sx + 1
        let count = n * oc * max(oh, 0) * max(ow, 0)
        // Not zero-filled: the kernel writes every output element.
        let out = [Float](unsafeUninitializedCapacity: count) { op, initialized in
            x.data.withUnsafeBufferPointer { xp in
                weight.data.withUnsafeBufferPointer { wp in
                    if let bias {
                        bias.data.withUnsafeBufferPointer { bp in
                            pk_conv2d_nchw(xp.baseAddress, Int64(n), Int64(c), Int64(h), Int64(w), wp.baseAddress, Int64(oc), Int64(kh), Int64(kw),
                                           Int64(sy), Int64(sx), Int64(py), Int64(px), bp.baseAddress, op.baseAddress)
                        }
                    } else {
                        pk_conv2d_nchw(xp.baseAddress, Int64(n), Int64(c), Int64(h), Int64(w), wp.baseAddress, Int64(oc), Int64(kh), Int64(kw),
                                       Int64(sy), Int64(sx), Int64(py), Int64(px), nil, op.baseAddress)
                    }
                }
            }
            initialized = count
        }
        return Tensor(shape: [n, oc, oh, ow], data: out)
    }

    /// Channels-last convolution (MLX's Conv2d): x [N, H, W, C], weight [OC, KH, KW, C] → [N, OH, OW, OC].
    /// Columns are built with one row per output pixel in (kh, kw, c) order — the weight's own memory order —
    /// so the product is columns [N·OH·OW, K] · Wᵀ (+ the bias the output starts from), landing in NHWC.
    public static func conv2dNHWC(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: [Int], padding: [Int]) -> Tensor {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oc, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2])
        let (sy, sx, py, px) = (stride[0], stride[1], padding[0], padding[1])
        let oh = (h + 2 * py - kh) / sy + 1
        let ow = (w + 2 * px - kw) / sx + 1
        let k = kh * kw * c, pixels = n * oh * ow
        let columns = UnsafeMutablePointer<Float>.allocate(capacity: max(pixels * k, 1))
        defer { columns.deallocate() }
        // Every slot written once: a copy of the input, or 0 where the window reaches into the padding.
        x.data.withUnsafeBufferPointer { inputBuffer in
            let input = inputBuffer.baseAddress!
            for image in 0..<n {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        let row = columns + ((image * oh + oy) * ow + ox) * k
                        for ky in 0..<kh {
                            let iy = oy * sy - py + ky
                            guard iy >= 0 && iy < h else { (row + ky * kw * c).initialize(repeating: 0, count: kw * c); continue }
                            for kx in 0..<kw {
                                let ix = ox * sx - px + kx
                                guard ix >= 0 && ix < w else { (row + (ky * kw + kx) * c).initialize(repeating: 0, count: c); continue }
                                (row + (ky * kw + kx) * c).initialize(from: input + ((image * h + iy) * w + ix) * c, count: c)
                            }
                        }
                    }
                }
            }
        }
        // Not zero-filled: with a bias every row starts from it (β = 1); without, sgemm's β = 0 sets all of C.
        let out = [Float](unsafeUninitializedCapacity: pixels * oc) { op, initialized in
            if let bias {
                bias.data.withUnsafeBufferPointer { bp in
                    for p in 0..<pixels { (op.baseAddress! + p * oc).initialize(from: bp.baseAddress!, count: oc) }
                }
            }
            weight.data.withUnsafeBufferPointer { wp in
                sgemm(m: pixels, n: oc, k: k, a: columns, b: wp.baseAddress!, transposeB: true, c: op.baseAddress!, accumulate: bias != nil)
            }
            initialized = pixels * oc
        }
        return Tensor(shape: [n, oh, ow, oc], data: out)
    }

    /// Channels-last max pooling (MLX's MaxPool2d, no padding) on [N, H, W, C]; NaN propagates.
    public static func maxPool2dNHWC(_ x: Tensor, kernel: [Int], stride: [Int]) -> Tensor {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let oh = (h - kernel[0]) / stride[0] + 1, ow = (w - kernel[1]) / stride[1] + 1
        var out = [Float](repeating: -.infinity, count: n * oh * ow * c)
        x.data.withUnsafeBufferPointer { xb in
            out.withUnsafeMutableBufferPointer { ob in
                let input = xb.baseAddress!, output = ob.baseAddress!
                for image in 0..<n {
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            let dst = output + ((image * oh + oy) * ow + ox) * c
                            for ky in 0..<kernel[0] {
                                for kx in 0..<kernel[1] {
                                    let src = input + ((image * h + oy * stride[0] + ky) * w + ox * stride[1] + kx) * c
                                    for ci in 0..<c { maxPoolStep(&dst[ci], src[ci], true) }
                                }
                            }
                        }
                    }
                }
            }
        }
        return Tensor(shape: [n, oh, ow, c], data: out)
    }

    /// MaxPool2d (no padding, floor mode) on NCHW, with PyTorch's NaN rule unless told otherwise.
    public static func maxPool2dNCHW(_ x: Tensor, kernel: [Int], stride: [Int], nan: MaxPoolNaN = .propagate) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (kh, kw, sy, sx) = (kernel[0], kernel[1], stride[0], stride[1])
        let oh = (h - kh) / sy + 1, ow = (w - kw) / sx + 1
        let propagate = nan == .propagate
        let start = propagate ? -Float.infinity : -Float.greatestFiniteMagnitude
        // Every output element is written below, so the array is not zero-filled first.
        let out = [Float](unsafeUninitializedCapacity: n * c * oh * ow) { ob, initialized in
            x.data.withUnsafeBufferPointer { xb in
                let input = xb.baseAddress!, output = ob.baseAddress!
                // The 2×2 stride-2 pool in C on AVX-512 (sixteen windows per step, each lane these steps); 0 = not run.
                if kh == 2 && kw == 2 && sy == 2 && sx == 2,
                   pk_maxpool2x2_nchw(input, Int64(n * c), Int64(h), Int64(w), propagate ? 1 : 0, output) != 0 { return }
                for plane in 0..<(n * c) {
                    let src = input + plane * h * w, dst = output + plane * oh * ow
                    if kh == 2 && kw == 2 {
                        // The same four steps as the general loop below, unrolled. With stride 2 across, windows go
                        // eight (or four) at a time in vector lanes, each lane taking exactly the scalar steps; the
                        // row's last vector ends at the row's end, recomputing a few windows (same values) instead of
                        // a scalar tail.
                        let lanes = sx == 2 ? (ow >= 8 ? 8 : ow >= 4 ? 4 : 0) : 0
                        for oy in 0..<oh {
                            let line0 = src + (oy * sy) * w, line1 = line0 + w
                            if lanes > 0 {
                                var ox = 0
                                while true {
                                    if lanes == 8 {
                                        maxPool2x2Lanes8(line0 + 2 * ox, line1 + 2 * ox, dst + oy * ow + ox, start: start, propagate: propagate)
                                    } else {
                                        maxPool2x2Lanes4(line0 + 2 * ox, line1 + 2 * ox, dst + oy * ow + ox, start: start, propagate: propagate)
                                    }
                                    if ox + lanes == ow { break }
                                    ox = min(ox + lanes, ow - lanes)
                                }
                                continue
                            }
                            for ox in 0..<ow {
                                let x0 = ox * sx
                                var best = start
                                maxPoolStep(&best, line0[x0], propagate)
                                if !best.isNaN { maxPoolStep(&best, line0[x0 + 1], propagate) }
                                maxPoolStep(&best, line1[x0], propagate)
                                if !best.isNaN { maxPoolStep(&best, line1[x0 + 1], propagate) }
                                dst[oy * ow + ox] = best
                            }
                        }
                        continue
                    }
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            var best = start
                            for ky in 0..<kh {
                                let line = src + (oy * sy + ky) * w + ox * sx
                                for kx in 0..<kw {
                                    let v = line[kx]
                                    if v > best || (propagate && v.isNaN) { best = v }
                                    if best.isNaN { break }  // leaves this kernel row only, as the reference does
                                }
                            }
                            dst[oy * ow + ox] = best
                        }
                    }
                }
            }
            initialized = n * c * oh * ow
        }
        return Tensor(shape: [n, c, oh, ow], data: out)
    }

    /// Eight 2×2 windows at stride 2 across: 16 values from each input row split into the windows' left (even) and
    /// right (odd) columns; per lane the scalar loop's four steps (the second of a row skipped once the best is NaN).
    @inline(__always) static func maxPool2x2Lanes8(_ line0: UnsafePointer<Float>, _ line1: UnsafePointer<Float>,
                                                   _ out: UnsafeMutablePointer<Float>, start: Float, propagate: Bool) {
        let top = UnsafeRawPointer(line0).loadUnaligned(as: SIMD16<Float>.self)
        let bottom = UnsafeRawPointer(line1).loadUnaligned(as: SIMD16<Float>.self)
        var best = SIMD8<Float>(repeating: start)
        maxPoolStep(&best, top.evenHalf, propagate, afterNaNStops: false)
        maxPoolStep(&best, top.oddHalf, propagate, afterNaNStops: true)
        maxPoolStep(&best, bottom.evenHalf, propagate, afterNaNStops: false)
        maxPoolStep(&best, bottom.oddHalf, propagate, afterNaNStops: true)
        UnsafeMutableRawPointer(out).storeBytes(of: best, as: SIMD8<Float>.self)
    }

    /// One max-pool step in eight lanes. `afterNaNStops`: the step follows another in the same kernel row, which
    /// the reference skips once the row's best is NaN (its `break`); a lane whose best is NaN keeps it.
    @inline(__always) static func maxPoolStep(_ best: inout SIMD8<Float>, _ v: SIMD8<Float>, _ propagate: Bool, afterNaNStops: Bool) {
        var take = v .> best
        if propagate { take = take .| (v .!= v) }
        if afterNaNStops { take = take .& (best .== best) }
        best.replace(with: v, where: take)
    }

    /// The same step in four lanes.
    @inline(__always) static func maxPoolStep(_ best: inout SIMD4<Float>, _ v: SIMD4<Float>, _ propagate: Bool, afterNaNStops: Bool) {
        var take = v .> best
        if propagate { take = take .| (v .!= v) }
        if afterNaNStops { take = take .& (best .== best) }
        best.replace(with: v, where: take)
    }

    /// `maxPool2x2Lanes8` with four windows (rows of four to seven windows).
    @inline(__always) static func maxPool2x2Lanes4(_ line0: UnsafePointer<Float>, _ line1: UnsafePointer<Float>,
                                                   _ out: UnsafeMutablePointer<Float>, start: Float, propagate: Bool) {
        let top = UnsafeRawPointer(line0).loadUnaligned(as: SIMD8<Float>.self)
        let bottom = UnsafeRawPointer(line1).loadUnaligned(as: SIMD8<Float>.self)
        var best = SIMD4<Float>(repeating: start)
        maxPoolStep(&best, top.evenHalf, propagate, afterNaNStops: false)
        maxPoolStep(&best, top.oddHalf, propagate, afterNaNStops: true)
        maxPoolStep(&best, bottom.evenHalf, propagate, afterNaNStops: false)
        maxPoolStep(&best, bottom.oddHalf, propagate, afterNaNStops: true)
        UnsafeMutableRawPointer(out).storeBytes(of: best, as: SIMD4<Float>.self)
    }

    /// One element of a max-pool window: taken when larger, or when NaN under PyTorch's rule.
    /// Written as a select, not a branch: which element wins depends on the data, and a mispredicted branch per
    /// element made pooling the slowest layer.
    @inline(__always) static func maxPoolStep(_ best: inout Float, _ v: Float, _ propagate: Bool) {
        let larger: UInt8 = v > best ? 1 : 0
        let nan: UInt8 = v.isNaN ? 1 : 0
        let take = larger | (propagate ? nan : 0)
        best = take != 0 ? v : best
    }

    /// ReLU; NaN stays NaN (PyTorch's relu propagates NaN).
    public static func relu(_ x: Tensor) -> Tensor {
        // Written into a fresh array in one pass (mutating a copy of `x` first copied all of it).
        let count = x.data.count
        let out = [Float](unsafeUninitializedCapacity: count) { p, initialized in
            x.data.withUnsafeBufferPointer { src in
                if pk_relu(src.baseAddress, Int64(count), p.baseAddress) != 0 { return }  // AVX-512 in C; 0 = not run
                for i in 0..<count { let v = src[i]; p[i] = v.isNaN ? v : max(v, 0) }
            }
            initialized = count
        }
        return Tensor(shape: x.shape, data: out)
    }
}
