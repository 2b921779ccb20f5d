import ParityCore

extension Kernels {
    /// The straightforward element-loop versions of the image kernels, kept as the definition the fast
    /// kernels (KernelsImage.swift) must equal bit for bit (KernelEquivalenceTests).
    public enum Reference {
        /// PyTorch Conv2d (cross-correlation, zero padding), NCHW input [N, C, H, W], weight [OC, C, KH, KW]:
        /// every output element is one fused multiply-add chain from +0 over (c, kh, kw) in that order (a padding
        /// slot contributes w·0, as im2col's zero columns do), then + bias ((Σ) + b, as PyTorch adds it).
        public static func conv2dNCHW(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: [Int], padding: [Int]) -> Tensor {
            let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            let (oc, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
            let oh = (h + 2 * padding[0] - kh) / stride[0] + 1
            let ow = (w + 2 * padding[1] - kw) / stride[1] + 1
            var out = [Float](repeating: 0, count: n * oc * oh * ow)
            for image in 0..<n {
                for o in 0..<oc {
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            var sum: Float = 0
                            for ci in 0..<c {
                                for ky in 0..<kh {
                                    for kx in 0..<kw {
                                        let iy = oy * stride[0] - padding[0] + ky, ix = ox * stride[1] - padding[1] + kx
                                        let v: Float = (iy >= 0 && iy < h && ix >= 0 && ix < w) ? x.data[((image * c + ci) * h + iy) * w + ix] : 0
                                        sum.addProduct(weight.data[((o * c + ci) * kh + ky) * kw + kx], v)
                                    }
                                }
                            }
                            out[((image * oc + o) * oh + oy) * ow + ox] = bias.map { sum + $0.data[o] } ?? sum
                        }
                    }
                }
            }
            return Tensor(shape: [n, oc, oh, ow], data: out)
        }

        /// Channels-last convolution (MLX's Conv2d): x [N, H, W, C], weight [OC, KH, KW, C] → [N, OH, OW, OC].
        /// Columns are built with one row per output pixel in (kh, kw, c) order — the weight's own memory order —
        /// so the product is columns [N·OH·OW, K] · Wᵀ, landing directly in NHWC.
        public static func conv2dNHWC(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: [Int], padding: [Int]) -> Tensor {
            let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            let (oc, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2])
            let oh = (h + 2 * padding[0] - kh) / stride[0] + 1
            let ow = (w + 2 * padding[1] - kw) / stride[1] + 1
            let k = kh * kw * c, pixels = n * oh * ow
            var columns = [Float](repeating: 0, count: pixels * k)
            for image in 0..<n {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        let row = ((image * oh + oy) * ow + ox) * k
                        for ky in 0..<kh {
                            let iy = oy * stride[0] - padding[0] + ky
                            guard iy >= 0 && iy < h else { continue }
                            for kx in 0..<kw {
                                let ix = ox * stride[1] - padding[1] + kx
                                guard ix >= 0 && ix < w else { continue }
                                let src = ((image * h + iy) * w + ix) * c, dst = row + (ky * kw + kx) * c
                                for ci in 0..<c { columns[dst + ci] = x.data[src + ci] }
                            }
                        }
                    }
                }
            }
            var out = [Float](repeating: 0, count: pixels * oc)
            if let bias { for p in 0..<pixels { for o in 0..<oc { out[p * oc + o] = bias.data[o] } } }
            columns.withUnsafeBufferPointer { cols in
                weight.data.withUnsafeBufferPointer { wp in
                    out.withUnsafeMutableBufferPointer { op in
                        Kernels.sgemm(m: pixels, n: oc, k: k, a: cols.baseAddress!, b: wp.baseAddress!, transposeB: true, c: op.baseAddress!, accumulate: bias != nil)
                    }
                }
            }
            return Tensor(shape: [n, oh, ow, oc], data: out)
        }

        /// Channels-last max pooling (MLX's MaxPool2d, no padding) on [N, H, W, C]; NaN propagates.
        public static func maxPool2dNHWC(_ x: Tensor, kernel: [Int], stride: [Int]) -> Tensor {
            let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            let oh = (h - kernel[0]) / stride[0] + 1, ow = (w - kernel[1]) / stride[1] + 1
            var out = [Float](repeating: -.infinity, count: n * oh * ow * c)
            for image in 0..<n {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        let dst = ((image * oh + oy) * ow + ox) * c
                        for ky in 0..<kernel[0] {
                            for kx in 0..<kernel[1] {
                                let src = ((image * h + oy * stride[0] + ky) * w + ox * stride[1] + kx) * c
                                for ci in 0..<c {
                                    let v = x.data[src + ci]
                                    if v > out[dst + ci] || v.isNaN { out[dst + ci] = v }
                                }
                            }
                        }
                    }
                }
            }
            return Tensor(shape: [n, oh, ow, c], data: out)
        }

        /// MaxPool2d (no padding, floor mode) on NCHW, with PyTorch's NaN rule unless told otherwise.
        public static func maxPool2dNCHW(_ x: Tensor, kernel: [Int], stride: [Int], nan: Kernels.MaxPoolNaN = .propagate) -> Tensor {
            let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            let oh = (h - kernel[0]) / stride[0] + 1, ow = (w - kernel[1]) / stride[1] + 1
            var out = [Float](repeating: 0, count: n * c * oh * ow)
            for plane in 0..<(n * c) {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var best = nan == .propagate ? -Float.infinity : -Float.greatestFiniteMagnitude
                        for ky in 0..<kernel[0] {
                            for kx in 0..<kernel[1] {
                                let v = x.data[(plane * h + oy * stride[0] + ky) * w + ox * stride[1] + kx]
                                if v > best || (nan == .propagate && v.isNaN) { best = v }
                                if best.isNaN { break }
                            }
                        }
                        out[(plane * oh + oy) * ow + ox] = best
                    }
                }
            }
            return Tensor(shape: [n, c, oh, ow], data: out)
        }

        /// ReLU; NaN stays NaN (PyTorch's relu propagates NaN).
        public static func relu(_ x: Tensor) -> Tensor {
            Tensor(shape: x.shape, data: x.data.map { $0.isNaN ? $0 : max($0, 0) })
        }
    }
}
