import CParityKernels
import ParityCore

extension MLXQuantization {
    /// The arithmetic, in MLX's order of operations. Sources: mlx/backend/cpu/quantized.cpp (`quantize`,
    /// `_qmm_t`, `fp_qmm_t`), mlx/ops.cpp (`fp_quantize`, `affine_dequantize`, `fp_dequantize`),
    /// mlx/backend/cpu/unary_ops.h (`ToFP8`), each pinned down against MLX 0.32.4's outputs where versions differ.
    enum Kernels {
        /// C++ `std::max(a, b)`: `(a < b) ? b : a` (keeps `a` on ties and NaN; matters for the sign of zero).
        @inline(__always) static func cppMax(_ a: Float, _ b: Float) -> Float { a < b ? b : a }
        /// C++ `std::min(a, b)`: `(b < a) ? b : a`.
        @inline(__always) static func cppMin(_ a: Float, _ b: Float) -> Float { b < a ? b : a }

        /// CPU `quantize<T, U>`: per group of `groupSize` consecutive values (already rounded to the weight dtype),
        /// in float32. Returns the codes and the float32 scales/biases; the caller rounds those to the weight
        /// dtype, which MLX does only when storing them — the codes use the unrounded float scale.
        static func affineQuantize(_ w: [Float], groupSize g: Int, bits: Int) -> (codes: [UInt8], scales: [Float], biases: [Float]) {
            let nBins = Float((1 << bits) - 1)
            let eps: Float = 1e-7
            let groups = w.count / g
            var codes = [UInt8](repeating: 0, count: w.count)
            var scales = [Float](repeating: 0, count: groups), biases = [Float](repeating: 0, count: groups)
            // Buffer pointers: the loops below run over every weight of the model, twice per MLX cell.
            w.withUnsafeBufferPointer { w in codes.withUnsafeMutableBufferPointer { codes in
                for i in 0..<groups {
                    let base = i * g
                    var wMin = Float.infinity, wMax = -Float.infinity
                    for j in base..<(base + g) {
                        wMax = cppMax(wMax, w[j])
                        wMin = cppMin(wMin, w[j])
                    }
                    let mask = abs(wMin) > abs(wMax)
                    var scale: Float, bias: Float
                    if bits == 1 {
                        // 1-bit: code 0 → min, code 1 → max.
                        scale = cppMax(wMax - wMin, eps)
                        bias = wMin
                    } else {
                        scale = cppMax((wMax - wMin) / nBins, eps)
                        scale = mask ? scale : -scale
                        // Snap the larger-magnitude end to a level so it dequantizes exactly.
                        let edge = mask ? wMin : wMax
                        let q0 = (edge / scale).rounded(.toNearestOrEven)
                        bias = 0
                        if q0 != 0 {
                            scale = edge / q0
                            bias = edge
                        }
                    }
                    // codes = min(max(rint((w − bias) / scale), 0), nBins), NaN → 0; eight at a time in CParityKernels.
                    pk_mlx_affine_codes(w.baseAddress! + base, Int64(g), scale, bias, nBins, codes.baseAddress! + base)
                    scales[i] = scale
                    biases[i] = bias
                }
            } }
            return (codes, scales, biases)
        }

        /// The E2M1 code nearest to `v` by `|v − LUT[i]|` in float32, ties to the lowest index (MLX's argmin, which
        /// also returns index 0 for NaN, and for ±Inf where every distance is Inf).
        @inline(__always) static func nearestFP4(_ v: Float) -> UInt8 {
            if v.isNaN { return 0 }
            let lut = MLXQuantization.fp4Values
            var best = 0
            var bestDistance = abs(v - lut[0])
            for i in 1..<16 {
                let d = abs(v - lut[i])
                if d < bestDistance { best = i; bestDistance = d }
            }
            return UInt8(best)
        }

        /// The smallest n with 2^n ≥ x, for finite x > 0 (exact; MLX computes rint(log2 x) and adds one when
        /// 2^n < x, which is the same number).
        @inline(__always) static func ceilLog2(_ x: Float) -> Int {
            x.significand == 1 ? Int(x.exponent) : Int(x.exponent) + 1
        }

        /// mxfp4 / mxfp8 / nvfp4 quantization of values already rounded to `dtype`: codes (4-bit E2M1 indices or
        /// E4M3 bytes) and scale bytes. `amax / maxval` and `w / scale` are rounded to `dtype` because MLX
        /// evaluates them in the weight's dtype; the LUT search is in float32.
        static func fpQuantize(_ w: [Float], mode: MLXQuantMode, dtype: MLXFloatType) -> (codes: [UInt8], scales: [UInt8]) {
            let g = mode.defaultGroupSize
            let maxval: Float = mode == .mxfp8 ? 448 : 6
            let groups = w.count / g
            var codes = [UInt8](repeating: 0, count: w.count)
            var scales = [UInt8](repeating: 0, count: groups)
            for i in 0..<groups {
                let base = i * g
                var amax: Float = 0
                for j in base..<(base + g) { amax = cppMax(amax, abs(w[j])) }
                let raw = dtype.round(amax / maxval)
                let divisor: Float
                if mode == .nvfp4 {
                    scales[i] = MLXQuantization.floatToE4M3(raw)
                    divisor = FloatCodecs.f8E4M3ToFloat(scales[i])  // exact in every float type (or NaN)
                } else {
                    // E8M0, rounded up; no clamping: the byte wraps modulo 256 as MLX's int32 → uint8 cast does.
                    let n = raw == 0 ? 0 : ceilLog2(raw)
                    scales[i] = UInt8(truncatingIfNeeded: n + 127)
                    divisor = dtype.round(Float(sign: .plus, exponent: n, significand: 1))
                }
                for j in base..<(base + g) {
                    let v = dtype.round(w[j] / divisor)
                    codes[j] = mode == .mxfp8 ? MLXQuantization.floatToE4M3(v) : nearestFP4(v)
                }
            }
            return (codes, scales)
        }

        /// The real value of each code: E2M1 for 4-bit fp modes, E4M3 for mxfp8.
        static func fpCodeValues(_ mode: MLXQuantMode) -> [Float] {
            mode == .mxfp8 ? (0...255).map { FloatCodecs.f8E4M3ToFloat(UInt8($0)) } : MLXQuantization.fp4Values
        }

        static func dequantize(_ q: MLXQuantized, outputType: MLXFloatType?) -> [Float] {
            if q.mode == .affine, q.scaleType == .f16, outputType == nil || outputType == .f16 || outputType == .f32,
               let fast = affineDequantizeF16(q) {
                return fast  // float16 values: widening to float32 output changes nothing
            }
            return dequantizeScalar(q, outputType: outputType)
        }

        /// The element loop `dequantize` reproduces MLX with; the reference the C kernels are tested against.
        static func dequantizeScalar(_ q: MLXQuantized, outputType: MLXFloatType?) -> [Float] {
            var out = [Float](repeating: 0, count: q.rows * q.cols)
            let g = q.groupSize
            if q.mode == .affine {
                let t = q.scaleType, o = outputType ?? t
                let s = q.scaleValues, b = q.biasValues ?? []
                for r in 0..<q.rows {
                    let codes = q.codes(row: r)
                    for k in 0..<q.cols {
                        let gi = r * q.groupsPerRow + k / g
                        // multiply(w, scales) then add(…, biases): two rounded ops in the scales' dtype.
                        let v = t.round(t.round(Float(codes[k]) * s[gi]) + b[gi])
                        out[r * q.cols + k] = o.round(v)
                    }
                }
            } else {
                let o = outputType ?? .bf16
                let values = fpCodeValues(q.mode)
                let scaleBytes = q.scales
                for r in 0..<q.rows {
                    let codes = q.codes(row: r)
                    for k in 0..<q.cols {
                        let e = scaleBytes[r * q.groupsPerRow + k / g]
                        let scale = q.mode == .nvfp4
                            ? FloatCodecs.f8E4M3ToFloat(e)
                            : o.round(Float(sign: .plus, exponent: Int(e) - 127, significand: 1))  // 2^(e−127) in o
                        out[r * q.cols + k] = o.round(values[Int(codes[k])] * scale)
                    }
                }
            }
            return out
        }

        /// The float32 affine product below (dequantize `scale·q + bias`, then `sum += x·w` in column order) for
        /// 4- and 8-bit codes, computed by CParityKernels without materialising the dequantized matrix: the same
        /// operations in the same order per output, several output rows in SIMD lanes (KernelEquivalenceTests).
        static func affineMatmulF32(x: [Float], rows n: Int, weight q: MLXQuantized) -> [Float]? {
            guard q.bits == 4 || q.bits == 8, q.mode == .affine, let biasBytes = q.biases, q.packed.count == q.rows * q.packedCols,
                  x.count == n * q.cols else { return nil }
            // The scales and biases as floats (half → float is exact; the F16C decode equals `scaleValues`).
            func decoded(_ bytes: [UInt8]) -> [Float] { q.scaleType == .f16 ? decodeHalves(bytes) : q.scaleType.decode(bytes) }
            let scales = decoded(q.scales), biases = decoded(biasBytes)
            guard scales.count == q.rows * q.groupsPerRow, biases.count == scales.count else { return nil }
            var out = [Float](repeating: 0, count: n * q.rows)
            q.packed.withUnsafeBufferPointer { wp in
                scales.withUnsafeBufferPointer { sp in
                    biases.withUnsafeBufferPointer { bp in
                        x.withUnsafeBufferPointer { xp in
                            out.withUnsafeMutableBufferPointer { op in
                                // Several rows of x: dequantize each block of weight rows once (mlx_f16.c); one row: on the fly.
                                let tiled = n >= 2 && pk_mlx_affine_matmul_f32_tiled(wp.baseAddress, sp.baseAddress, bp.baseAddress, Int64(q.rows), Int64(q.cols),
                                                                                     Int64(q.groupSize), Int32(q.bits), xp.baseAddress, Int64(n), op.baseAddress) != 0
                                if !tiled {
                                    pk_mlx_affine_matmul_f32(wp.baseAddress, sp.baseAddress, bp.baseAddress, Int64(q.rows), Int64(q.cols),
                                                             Int64(q.groupSize), Int32(q.bits), xp.baseAddress, Int64(n), op.baseAddress)
                                }
                            }
                        }
                    }
                }
            }
            return out
        }

        /// Little-endian halves → their exact float values (F16C where the CPU has it).
        static func decodeHalves(_ bytes: [UInt8]) -> [Float] {
            [Float](unsafeUninitializedCapacity: bytes.count / 2) { out, initialized in
                bytes.withUnsafeBytes { pk_decode_f16($0.baseAddress, Int64(bytes.count / 2), out.baseAddress) }
                initialized = bytes.count / 2
            }
        }

        /// Runs a CParityKernels affine kernel on `q`'s codes and decoded float16 scales/biases; nil when `q` is
        /// not float16 affine or the kernel declines the shape (then the scalar loop runs).
        static func withHalfAffine(_ q: MLXQuantized, outputCount: Int,
                                   _ body: (UnsafePointer<UInt32>?, UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?) -> Int32) -> [Float]? {
            guard q.mode == .affine, q.scaleType == .f16, let biasBytes = q.biases, q.packed.count == q.rows * q.packedCols else { return nil }
            let scales = decodeHalves(q.scales), biases = decodeHalves(biasBytes)
            guard scales.count == q.rows * q.groupsPerRow, biases.count == scales.count else { return nil }
            var handled: Int32 = 0
            let out = [Float](unsafeUninitializedCapacity: outputCount) { op, initialized in
                q.packed.withUnsafeBufferPointer { wp in
                    scales.withUnsafeBufferPointer { sp in
                        biases.withUnsafeBufferPointer { bp in handled = body(wp.baseAddress, sp.baseAddress, bp.baseAddress, op.baseAddress) }
                    }
                }
                // Every element is written when the kernel accepts the shape; otherwise zeros (discarded below).
                if handled == 0 { op.initialize(repeating: 0) }
                initialized = outputCount
            }
            return handled != 0 ? out : nil
        }

        /// `dequantizeScalar` for float16 affine weights (output float16 or float32), by CParityKernels: the same
        /// two rounded operations per element (F16KernelTests).
        static func affineDequantizeF16(_ q: MLXQuantized) -> [Float]? {
            withHalfAffine(q, outputCount: q.rows * q.cols) { w, s, b, out in
                pk_mlx_affine_dequantize_f16(w, s, b, Int64(q.rows), Int64(q.cols), Int64(q.groupSize), Int32(q.bits), out)
            }
        }

        /// The float16 affine product of `quantizedMatmulScalar` (`w = r(r(s·q) + b)`, `sum = r(sum + r(x·w))` per
        /// output in column order) by CParityKernels: independent output rows in SIMD lanes, each lane performing its
        /// row's operations in the reference's order (F16KernelTests).
        static func affineMatmulF16(x: [Float], rows n: Int, weight q: MLXQuantized) -> [Float]? {
            guard x.count == n * q.cols else { return nil }
            return x.withUnsafeBufferPointer { xp in
                withHalfAffine(q, outputCount: n * q.rows) { w, s, b, out in
                    pk_mlx_affine_matmul_f16(w, s, b, Int64(q.rows), Int64(q.cols), Int64(q.groupSize), Int32(q.bits), xp.baseAddress, Int64(n), out)
                }
            }
        }

        /// `quantized_matmul(x, w, …, transpose=True)` with `x` already rounded to `xType`.
        static func quantizedMatmul(x: [Float], rows n: Int, weight q: MLXQuantized, xType: MLXFloatType) -> [Float] {
            if q.mode == .affine {
                switch MLXFloatType.promote(xType, q.scaleType) {
                case .f32: if let fast = affineMatmulF32(x: x, rows: n, weight: q) { return fast }
                case .f16: if let fast = affineMatmulF16(x: x, rows: n, weight: q) { return fast }
                case .bf16: break
                }
            }
            return quantizedMatmulScalar(x: x, rows: n, weight: q, xType: xType)
        }

        /// The element loops `quantizedMatmul` reproduces MLX with; the reference the C kernels are tested against.
        static func quantizedMatmulScalar(x: [Float], rows n: Int, weight q: MLXQuantized, xType: MLXFloatType) -> [Float] {
            let outF = q.rows, k = q.cols, g = q.groupSize
            var out = [Float](repeating: 0, count: n * outF)
            if q.mode == .affine {
                let t = MLXFloatType.promote(xType, q.scaleType)
                let s = q.scaleValues, b = q.biasValues ?? []
                // scale·q + bias per weight element: the same two ops, in the same type, as inside MLX's loop.
                var w = [Float](repeating: 0, count: outF * k)
                for o in 0..<outF {
                    let codes = q.codes(row: o)
                    for c in 0..<k {
                        let gi = o * q.groupsPerRow + c / g
                        w[o * k + c] = t.round(t.round(s[gi] * Float(codes[c])) + b[gi])
                    }
                }
                for m in 0..<n {
                    for o in 0..<outF {
                        var sum: Float = 0
                        if t == .f32 {
                            for c in 0..<k { sum += x[m * k + c] * w[o * k + c] }
                        } else {
                            for c in 0..<k { sum = t.round(sum + t.round(x[m * k + c] * w[o * k + c])) }
                        }
                        out[m * outF + o] = sum
                    }
                }
            } else {
                let t = xType
                let values = fpCodeValues(q.mode)
                var scales = [Float](repeating: 0, count: q.scales.count)
                for i in 0..<scales.count {
                    let e = q.scales[i]
                    scales[i] = t.round(q.mode == .nvfp4 ? FloatCodecs.f8E4M3ToFloat(e) : MLXQuantization.e8m0ToFloat(e))
                }
                var v = [Float](repeating: 0, count: outF * k)
                for o in 0..<outF {
                    let codes = q.codes(row: o)
                    for c in 0..<k { v[o * k + c] = values[Int(codes[c])] }
                }
                for m in 0..<n {
                    for o in 0..<outF {
                        var sum: Float = 0
                        for gi in 0..<(k / g) {
                            var gsum: Float = 0
                            let scale = scales[o * q.groupsPerRow + gi]
                            if t == .f32 {
                                for c in (gi * g)..<(gi * g + g) { gsum += x[m * k + c] * v[o * k + c] }
                                sum += scale * gsum
                            } else {
                                for c in (gi * g)..<(gi * g + g) { gsum = t.round(gsum + t.round(x[m * k + c] * v[o * k + c])) }
                                sum = t.round(sum + t.round(scale * gsum))
                            }
                        }
                        out[m * outF + o] = sum
                    }
                }
            }
            return out
        }
    }
}
