/// The k-quants (256-value super-blocks) and Q8_K, ported from ggml-quants.c (`quantize_row_q*_K_ref`,
/// `dequantize_row_q*_K`) and ggml-cpu/quants.c (`ggml_vec_dot_q*_K_q8_K_generic`).
///
/// Every float expression keeps C's evaluation order and types (float32, int → float conversions where C
/// converts, `nearest_int`'s magic-number rounding), since the searches in make_qkx2_quants / make_qx_quants /
/// make_q3_quants compare float errors and a one-ulp difference can pick other codes.
///
/// FMA: ggml-base (which holds the reference quantizers) is built with -std=gnu11 and no -march flag, so on
/// x86-64 there is no FMA instruction to contract `a*b + c` into; on arm64, GCC's default -ffp-contract=fast may
/// fuse such expressions and change rare codes (gguf-py notes Q4_0's reference rounding "depends on FMA").
/// Swift never contracts; these codecs, gguf-py and the fixtures all follow the unfused (x86-64) results.

// MARK: - Helpers (ggml-quants.c, static functions)

/// get_scale_min_k4: the j-th 6-bit scale and min of the 12-byte Q4_K/Q5_K `scales`.
@inline(__always) func getScaleMinK4(_ j: Int, _ q: UnsafeRawPointer) -> (scale: UInt8, min: UInt8) {
    if j < 4 {
        return (loadU8(q, j) & 63, loadU8(q, j + 4) & 63)
    }
    let scale = (loadU8(q, j + 4) & 0x0F) | ((loadU8(q, j - 4) >> 6) << 4)
    let min = (loadU8(q, j + 4) >> 4) | ((loadU8(q, j) >> 6) << 4)
    return (scale, min)
}

/// make_qx_quants for `qw == NULL` (what quantize_row_q6_K_ref uses): signed codes L in [0, 2·nmax) with a
/// weighted least-squares scale refined over 18 trial scales. `rmseType` as in C (1: w = x², 2: 1, 3: |x|, else √|x|).
func makeQXQuants(n: Int, nmax: Int, x: UnsafePointer<Float>, L: UnsafeMutablePointer<Int8>, rmseType: Int) -> Float {
    var maxValue: Float = 0, amax: Float = 0
    for i in 0..<n {
        let ax = abs(x[i])
        if ax > amax { amax = ax; maxValue = x[i] }
    }
    if amax < ggmlGroupMaxEps {
        for i in 0..<n { L[i] = 0 }
        return 0
    }
    var iscale = Float(-nmax) / maxValue
    if rmseType == 0 {
        for i in 0..<n {
            let l = Int(nearestInt(iscale * x[i]))
            L[i] = Int8(truncatingIfNeeded: nmax + max(-nmax, min(nmax - 1, l)))
        }
        return 1 / iscale
    }
    var rmse = rmseType
    var returnEarly = false
    if rmse < 0 { rmse = -rmse; returnEarly = true }
    @inline(__always) func weight(_ v: Float) -> Float {
        rmse == 1 ? v * v : rmse == 2 ? 1 : rmse == 3 ? abs(v) : abs(v).squareRoot()
    }
    var sumlx: Float = 0, suml2: Float = 0
    for i in 0..<n {
        var l = Int(nearestInt(iscale * x[i]))
        l = max(-nmax, min(nmax - 1, l))
        L[i] = Int8(truncatingIfNeeded: l + nmax)
        let w = weight(x[i])
        sumlx += w * x[i] * Float(l)
        suml2 += w * Float(l) * Float(l)
    }
    var scale: Float = suml2 != 0 ? sumlx / suml2 : 0
    if returnEarly { return suml2 > 0 ? 0.5 * (scale + 1 / iscale) : 1 / iscale }
    var best = scale * sumlx
    for step in -9...9 where step != 0 {
        iscale = -(Float(nmax) + ggmlPointOne * Float(step)) / maxValue
        sumlx = 0
        suml2 = 0
        for i in 0..<n {
            var l = Int(nearestInt(iscale * x[i]))
            l = max(-nmax, min(nmax - 1, l))
            let w = weight(x[i])
            sumlx += w * x[i] * Float(l)
            suml2 += w * Float(l) * Float(l)
        }
        if suml2 > 0 && sumlx * sumlx > best * suml2 {
            for i in 0..<n {
                let l = Int(nearestInt(iscale * x[i]))
                L[i] = Int8(truncatingIfNeeded: nmax + max(-nmax, min(nmax - 1, l)))
            }
            scale = sumlx / suml2
            best = scale * sumlx
        }
    }
    return scale
}

/// make_q3_quants: signed codes with up to 5 rounds of per-element coordinate descent (`do_rmse`).
func makeQ3Quants(n: Int, nmax: Int, x: UnsafePointer<Float>, L: UnsafeMutablePointer<Int8>, doRMSE: Bool) -> Float {
    var maxValue: Float = 0, amax: Float = 0
    for i in 0..<n {
        let ax = abs(x[i])
        if ax > amax { amax = ax; maxValue = x[i] }
    }
    if amax < ggmlGroupMaxEps {
        for i in 0..<n { L[i] = 0 }
        return 0
    }
    let iscale = Float(-nmax) / maxValue
    if doRMSE {
        var sumlx: Float = 0, suml2: Float = 0
        for i in 0..<n {
            var l = Int(nearestInt(iscale * x[i]))
            l = max(-nmax, min(nmax - 1, l))
            L[i] = Int8(truncatingIfNeeded: l)
            let w = x[i] * x[i]
            sumlx += w * x[i] * Float(l)
            suml2 += w * Float(l) * Float(l)
        }
        for _ in 0..<5 {
            var changed = 0
            for i in 0..<n {
                let w = x[i] * x[i]
                var slx = sumlx - w * x[i] * Float(L[i])
                if slx > 0 {
                    var sl2 = suml2 - w * Float(L[i]) * Float(L[i])
                    var newL = Int(nearestInt(x[i] * sl2 / slx))
                    newL = max(-nmax, min(nmax - 1, newL))
                    if newL != Int(L[i]) {
                        slx += w * x[i] * Float(newL)
                        sl2 += w * Float(newL) * Float(newL)
                        if sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                            L[i] = Int8(truncatingIfNeeded: newL)
                            sumlx = slx
                            suml2 = sl2
                            changed += 1
                        }
                    }
                }
            }
            if changed == 0 { break }
        }
        for i in 0..<n { L[i] = L[i] &+ Int8(truncatingIfNeeded: nmax) }
        return suml2 > 0 ? sumlx / suml2 : 0
    }
    for i in 0..<n {
        var l = Int(nearestInt(iscale * x[i]))
        l = max(-nmax, min(nmax - 1, l))
        L[i] = Int8(truncatingIfNeeded: l + nmax)
    }
    return 1 / iscale
}

/// make_qkx2_quants: unsigned codes in [0, nmax] with a scale and a (non-positive) min, searched over
/// `nstep + 1` trial scales; returns the scale and stores −min in `theMin`.
func makeQKX2Quants(n: Int, nmax: Int, x: UnsafePointer<Float>, weights: UnsafePointer<Float>, L: UnsafeMutablePointer<UInt8>,
                    theMin: inout Float, Laux: UnsafeMutablePointer<UInt8>, rmin: Float, rdelta: Float, nstep: Int, useMAD: Bool) -> Float {
    var lo = x[0], hi = x[0]
    var sumW = weights[0]
    var sumX = sumW * x[0]
    for i in 1..<n {
        if x[i] < lo { lo = x[i] }
        if x[i] > hi { hi = x[i] }
        let w = weights[i]
        sumW += w
        sumX += w * x[i]
    }
    if lo > 0 { lo = 0 }
    if hi == lo {
        for i in 0..<n { L[i] = 0 }
        theMin = -lo
        return 0
    }
    var iscale = Float(nmax) / (hi - lo)
    var scale = 1 / iscale
    var bestError: Float = 0
    for i in 0..<n {
        let l = Int(nearestInt(iscale * (x[i] - lo)))
        L[i] = UInt8(truncatingIfNeeded: max(0, min(nmax, l)))
        var diff = scale * Float(L[i]) + lo - x[i]
        diff = useMAD ? abs(diff) : diff * diff
        bestError += weights[i] * diff
    }
    if nstep < 1 {
        theMin = -lo
        return scale
    }
    for step in 0...nstep {
        iscale = (rmin + rdelta * Float(step) + Float(nmax)) / (hi - lo)
        var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
        for i in 0..<n {
            var l = Int(nearestInt(iscale * (x[i] - lo)))
            l = max(0, min(nmax, l))
            Laux[i] = UInt8(truncatingIfNeeded: l)
            let w = weights[i]
            sumL += w * Float(l)
            sumL2 += w * Float(l) * Float(l)
            sumXL += w * Float(l) * x[i]
        }
        let D = sumW * sumL2 - sumL * sumL
        if D > 0 {
            var thisScale = (sumW * sumXL - sumX * sumL) / D
            var thisMin = (sumL2 * sumX - sumL * sumXL) / D
            if thisMin > 0 {
                thisMin = 0
                thisScale = sumXL / sumL2
            }
            var curError: Float = 0
            for i in 0..<n {
                var diff = thisScale * Float(Laux[i]) + thisMin - x[i]
                diff = useMAD ? abs(diff) : diff * diff
                curError += weights[i] * diff
            }
            if curError < bestError {
                for i in 0..<n { L[i] = Laux[i] }
                bestError = curError
                scale = thisScale
                lo = thisMin
            }
        }
    }
    theMin = -lo
    return scale
}

/// Packs 2-bit codes L[0..<256] into Q2_K/Q3_K `qs` (per 128: byte l holds L[l], L[l+32], L[l+64], L[l+96]).
@inline(__always) private func pack2Bit(_ L: UnsafePointer<UInt8>, into qs: UnsafeMutableRawPointer) {
    for j in stride(from: 0, to: 256, by: 128) {
        for l in 0..<32 {
            let byte = L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6)
            qs.storeBytes(of: byte, toByteOffset: j / 4 + l, as: UInt8.self)
        }
    }
}

/// The 16 signed 6-bit scales of a Q3_K block (already minus 32), unpacked from its 12 `scales` bytes.
@inline(__always) private func q3KScale(_ scales: UnsafeRawPointer, _ j: Int) -> Int32 {
    let low = j < 8 ? loadU8(scales, j) & 0x0F : loadU8(scales, j - 8) >> 4
    let high = (loadU8(scales, 8 + j % 4) >> UInt8(2 * (j / 4))) & 3
    return Int32(low | high << 4) - 32
}

/// Stores the 6-bit scale and min of sub-block j into Q4_K/Q5_K `scales` (the inverse of get_scale_min_k4).
@inline(__always) private func packScaleMinK4(_ j: Int, _ ls: UInt8, _ lm: UInt8, _ scales: UnsafeMutableRawPointer) {
    if j < 4 {
        scales.storeBytes(of: ls, toByteOffset: j, as: UInt8.self)
        scales.storeBytes(of: lm, toByteOffset: j + 4, as: UInt8.self)
    } else {
        scales.storeBytes(of: (ls & 0x0F) | ((lm & 0x0F) << 4), toByteOffset: j + 4, as: UInt8.self)
        scales.storeBytes(of: loadU8(scales, j - 4) | ((ls >> 4) << 6), toByteOffset: j - 4, as: UInt8.self)
        scales.storeBytes(of: loadU8(scales, j) | ((lm >> 4) << 6), toByteOffset: j, as: UInt8.self)
    }
}

/// Scratch for the k-quant dot kernels: aux8[256] codes, aux32[8] integer lanes, sums[8] float lanes (the C
/// kernels' stack arrays), without a heap allocation per call.
@inline(__always) func withKQuantDotScratch<R>(_ body: (UnsafeMutablePointer<Int8>, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Float>) -> R) -> R {
    withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256) { aux8 in
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: 8) { aux32 in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 8) { sums in
                sums.initialize(repeating: 0)
                return body(aux8.baseAddress!, aux32.baseAddress!, sums.baseAddress!)
            }
        }
    }
}

// MARK: - Q2_K

/// `block_q2_K`: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin (f16). Value = d·sc·q − dmin·m.
enum GGMLBlockQ2_K: GGMLBlockDot {
    static let type = GGMLType.q2_K

    static func dequantize(block x: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(x, 80), dmin = loadHalf(x, 82)
        var out = 0, isc = 0
        for half in 0..<2 {
            let q = 16 + half * 32
            for shift in stride(from: 0, to: 8, by: 2) {
                for part in 0..<2 {
                    let sc = loadU8(x, isc)
                    isc += 1
                    let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
                    for l in 0..<16 {
                        y[out] = dl * Float((loadU8(x, q + part * 16 + l) >> UInt8(shift)) & 3) - ml
                        out += 1
                    }
                }
            }
        }
    }

    /// quantize_row_q2_K_ref.
    static func quantize(block x: UnsafePointer<Float>, into y: UnsafeMutableRawPointer) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256 + 16) { tmp in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 16 + 16 + 16) { f in
                let L = tmp.baseAddress!, Laux = L + 256
                let weights = f.baseAddress!, mins = weights + 16, scales = mins + 16
                let q4scale: Float = 15
                var maxScale: Float = 0, maxMin: Float = 0
                for j in 0..<16 {
                    for l in 0..<16 { weights[l] = abs(x[16 * j + l]) }
                    scales[j] = makeQKX2Quants(n: 16, nmax: 3, x: x + 16 * j, weights: weights, L: L + 16 * j, theMin: &mins[j], Laux: Laux,
                                               rmin: -0.5, rdelta: ggmlPointOne, nstep: 15, useMAD: true)
                    if scales[j] > maxScale { maxScale = scales[j] }
                    if mins[j] > maxMin { maxMin = mins[j] }
                }
                if maxScale > 0 {
                    let iscale = q4scale / maxScale
                    for j in 0..<16 { y.storeBytes(of: UInt8(truncatingIfNeeded: nearestInt(iscale * scales[j])), toByteOffset: j, as: UInt8.self) }
                    storeHalf(y, 80, maxScale / q4scale)
                } else {
                    for j in 0..<16 { y.storeBytes(of: 0, toByteOffset: j, as: UInt8.self) }
                    storeHalf(y, 80, 0)
                }
                if maxMin > 0 {
                    let iscale = q4scale / maxMin
                    for j in 0..<16 {
                        let l = nearestInt(iscale * mins[j])
                        y.storeBytes(of: loadU8(y, j) | UInt8(truncatingIfNeeded: l << 4), toByteOffset: j, as: UInt8.self)
                    }
                    storeHalf(y, 82, maxMin / q4scale)
                } else {
                    storeHalf(y, 82, 0)
                }
                for j in 0..<16 {
                    let sc = loadU8(y, j)
                    let d = loadHalf(y, 80) * Float(sc & 0x0F)
                    if d == 0 { continue }
                    let dm = loadHalf(y, 82) * Float(sc >> 4)
                    for ii in 0..<16 {
                        let l = Int(nearestInt((x[16 * j + ii] + dm) / d))
                        L[16 * j + ii] = UInt8(max(0, min(3, l)))
                    }
                }
                pack2Bit(L, into: y + 16)
            }
        }
    }

    /// ggml_vec_dot_q2_K_q8_K_generic: `sumf += dall·isum − dmin·summs` with dall = d_y·d, dmin = d_y·dmin.
    static func vecDot(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        var sumf: Float = 0
        for i in 0..<blocks {
            let xb = x + i * 84, yb = y + i * 292
            var summs: Int32 = 0
            for j in 0..<16 { summs += Int32(q8KBsum(yb, j)) * Int32(loadU8(xb, j) >> 4) }
            let dy = loadF32(yb, 0)
            let dall = dy * loadHalf(xb, 80)
            let dmin = dy * loadHalf(xb, 82)
            var isum: Int32 = 0
            var isc = 0, q8 = 4
            for k in 0..<2 {
                let q2 = 16 + k * 32
                for shift in stride(from: 0, to: 8, by: 2) {
                    var d = Int32(loadU8(xb, isc) & 0x0F); isc += 1
                    var isuml: Int32 = 0
                    for l in 0..<16 { isuml += Int32(loadI8(yb, q8 + l)) * Int32((loadU8(xb, q2 + l) >> UInt8(shift)) & 3) }
                    isum += d * isuml
                    d = Int32(loadU8(xb, isc) & 0x0F); isc += 1
                    isuml = 0
                    for l in 16..<32 { isuml += Int32(loadI8(yb, q8 + l)) * Int32((loadU8(xb, q2 + l) >> UInt8(shift)) & 3) }
                    isum += d * isuml
                    q8 += 32
                }
            }
            sumf += dall * Float(isum) - dmin * Float(summs)
        }
        return sumf
    }
}

// MARK: - Q3_K

/// `block_q3_K`: hmask[32], qs[64], scales[12] (16 six-bit scales), d (f16). Value = d·(sc−32)·(q − 4·!hbit).
enum GGMLBlockQ3_K: GGMLBlockDot {
    static let type = GGMLType.q3_K

    static func dequantize(block x: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(x, 108)
        let scales = x + 96
        var out = 0, isc = 0
        var m: UInt8 = 1
        for half in 0..<2 {
            let q = 32 + half * 32
            for shift in stride(from: 0, to: 8, by: 2) {
                for part in 0..<2 {
                    let dl = d * Float(q3KScale(scales, isc))
                    isc += 1
                    for l in 0..<16 {
                        let low = Int((loadU8(x, q + part * 16 + l) >> UInt8(shift)) & 3)
                        let high = loadU8(x, part * 16 + l) & m != 0 ? 0 : 4
                        y[out] = dl * Float(low - high)
                        out += 1
                    }
                }
                m <<= 1
            }
        }
    }

    /// quantize_row_q3_K_ref.
    static func quantize(block x: UnsafePointer<Float>, into y: UnsafeMutableRawPointer) {
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256) { tmp in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { s in
                let L = tmp.baseAddress!, scales = s.baseAddress!
                var maxScale: Float = 0, amax: Float = 0
                for j in 0..<16 {
                    scales[j] = makeQ3Quants(n: 16, nmax: 4, x: x + 16 * j, L: L + 16 * j, doRMSE: true)
                    let scale = abs(scales[j])
                    if scale > amax { amax = scale; maxScale = scales[j] }
                }
                let sc = y + 96
                for b in 0..<12 { sc.storeBytes(of: 0, toByteOffset: b, as: UInt8.self) }
                if maxScale != 0 {
                    let iscale = -32 / maxScale
                    for j in 0..<16 {
                        var l = Int8(truncatingIfNeeded: nearestInt(iscale * scales[j]))
                        l = max(-32, min(31, l)) + 32
                        if j < 8 {
                            sc.storeBytes(of: UInt8(l) & 0x0F, toByteOffset: j, as: UInt8.self)
                        } else {
                            sc.storeBytes(of: loadU8(sc, j - 8) | ((UInt8(l) & 0x0F) << 4), toByteOffset: j - 8, as: UInt8.self)
                        }
                        l >>= 4
                        sc.storeBytes(of: loadU8(sc, j % 4 + 8) | (UInt8(l) << UInt8(2 * (j / 4))), toByteOffset: j % 4 + 8, as: UInt8.self)
                    }
                    storeHalf(y, 108, 1 / iscale)
                } else {
                    storeHalf(y, 108, 0)
                }
                for j in 0..<16 {
                    let d = loadHalf(y, 108) * Float(q3KScale(sc, j))
                    if d == 0 { continue }
                    for ii in 0..<16 {
                        let l = Int(nearestInt(x[16 * j + ii] / d))
                        L[16 * j + ii] = Int8(max(-4, min(3, l)) + 4)
                    }
                }
                // hmask: the high bit of the first 32 codes in bit 0, the next 32 in bit 1, ...
                for b in 0..<32 { y.storeBytes(of: 0, toByteOffset: b, as: UInt8.self) }
                var m = 0
                var hm: UInt8 = 1
                for j in 0..<256 {
                    if L[j] > 3 {
                        y.storeBytes(of: loadU8(y, m) | hm, toByteOffset: m, as: UInt8.self)
                        L[j] -= 4
                    }
                    m += 1
                    if m == 32 { m = 0; hm <<= 1 }
                }
                L.withMemoryRebound(to: UInt8.self, capacity: 256) { pack2Bit($0, into: y + 32) }
            }
        }
    }

    /// ggml_vec_dot_q3_K_q8_K_generic: per block, eight int32 lanes of Σ (sc−32)·q8·q, then
    /// sums[l] += (d·d_y)·aux32[l]; finally sumf = Σ sums[l] in lane order.
    static func vecDot(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        withKQuantDotScratch { aux8, aux32, sums in
            for i in 0..<blocks {
                let xb = x + i * 110, yb = y + i * 292
                var m: UInt8 = 1
                var a = 0
                for half in 0..<2 {
                    let q3 = 32 + half * 32
                    for shift in stride(from: 0, to: 8, by: 2) {
                        for l in 0..<32 {
                            let low = Int8((loadU8(xb, q3 + l) >> UInt8(shift)) & 3)
                            aux8[a + l] = low - (loadU8(xb, l) & m != 0 ? 0 : 4)
                        }
                        a += 32
                        m <<= 1
                    }
                }
                aux32.update(repeating: 0, count: 8)
                var q8 = 4
                a = 0
                for j in 0..<16 {
                    let scale = q3KScale(xb + 96, j)
                    for _ in 0..<2 {
                        for l in 0..<8 { aux32[l] += scale * Int32(Int16(loadI8(yb, q8 + l)) * Int16(aux8[a + l])) }
                        q8 += 8
                        a += 8
                    }
                }
                let d = loadHalf(xb, 108) * loadF32(yb, 0)
                for l in 0..<8 { sums[l] += d * Float(aux32[l]) }
            }
            var sumf: Float = 0
            for l in 0..<8 { sumf += sums[l] }
            return sumf
        }
    }
}

// MARK: - Q4_K

/// `block_q4_K`: d, dmin (f16), scales[12] (8 six-bit scales and mins), qs[128]. Value = (d·sc)·q − dmin·m.
enum GGMLBlockQ4_K: GGMLBlockDot {
    static let type = GGMLType.q4_K

    static func dequantize(block x: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(x, 0), dmin = loadHalf(x, 2)
        let scales = x + 4
        for j in 0..<4 {
            let (sc1, m1) = getScaleMinK4(2 * j, scales), (sc2, m2) = getScaleMinK4(2 * j + 1, scales)
            let d1 = d * Float(sc1), dm1 = dmin * Float(m1)
            let d2 = d * Float(sc2), dm2 = dmin * Float(m2)
            for l in 0..<32 {
                let q = loadU8(x, 16 + 32 * j + l)
                y[64 * j + l] = d1 * Float(q & 0x0F) - dm1
                y[64 * j + 32 + l] = d2 * Float(q >> 4) - dm2
            }
        }
    }

    /// quantize_row_q4_K_ref.
    static func quantize(block x: UnsafePointer<Float>, into y: UnsafeMutableRawPointer) {
        quantizeQ45K(x, y, nmax: 15, rmin: -1, nstep: 20)
    }

    /// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): make_qkx2_quants per 32, 6-bit scales/mins, then requantize.
    static func quantizeQ45K(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, nmax: Int, rmin: Float, nstep: Int) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256 + 32) { tmp in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 32 + 8 + 8) { f in
                let L = tmp.baseAddress!, Laux = L + 256
                let weights = f.baseAddress!, mins = weights + 32, scales = mins + 8
                var maxScale: Float = 0, maxMin: Float = 0
                for j in 0..<8 {
                    var sumX2: Float = 0
                    for l in 0..<32 { sumX2 += x[32 * j + l] * x[32 * j + l] }
                    let avX = (sumX2 / 32).squareRoot()
                    for l in 0..<32 { weights[l] = avX + abs(x[32 * j + l]) }
                    scales[j] = makeQKX2Quants(n: 32, nmax: nmax, x: x + 32 * j, weights: weights, L: L + 32 * j, theMin: &mins[j], Laux: Laux,
                                               rmin: rmin, rdelta: ggmlPointOne, nstep: nstep, useMAD: false)
                    if scales[j] > maxScale { maxScale = scales[j] }
                    if mins[j] > maxMin { maxMin = mins[j] }
                }
                let invScale: Float = maxScale > 0 ? 63 / maxScale : 0
                let invMin: Float = maxMin > 0 ? 63 / maxMin : 0
                let sc = y + 4
                for j in 0..<8 {
                    let ls = min(63, UInt8(truncatingIfNeeded: nearestInt(invScale * scales[j])))
                    let lm = min(63, UInt8(truncatingIfNeeded: nearestInt(invMin * mins[j])))
                    packScaleMinK4(j, ls, lm, sc)
                }
                storeHalf(y, 0, maxScale / 63)
                storeHalf(y, 2, maxMin / 63)
                for j in 0..<8 {
                    let (s, m) = getScaleMinK4(j, sc)
                    let d = loadHalf(y, 0) * Float(s)
                    if d == 0 { continue }
                    let dm = loadHalf(y, 2) * Float(m)
                    for ii in 0..<32 {
                        let l = Int(nearestInt((x[32 * j + ii] + dm) / d))
                        L[32 * j + ii] = UInt8(max(0, min(nmax, l)))
                    }
                }
                if nmax == 15 {
                    for j in 0..<4 {
                        for l in 0..<32 {
                            y.storeBytes(of: L[64 * j + l] | (L[64 * j + l + 32] << 4), toByteOffset: 16 + 32 * j + l, as: UInt8.self)
                        }
                    }
                } else {
                    // Q5_K: qh[32] at 16, qs[128] at 48; the 5th bit of codes n+j and n+j+32 goes to qh[j] under masks m1, m2.
                    for b in 0..<32 { y.storeBytes(of: 0, toByteOffset: 16 + b, as: UInt8.self) }
                    var m1: UInt8 = 1, m2: UInt8 = 2
                    for n in stride(from: 0, to: 256, by: 64) {
                        for j in 0..<32 {
                            var l1 = L[n + j], l2 = L[n + j + 32]
                            var h = loadU8(y, 16 + j)
                            if l1 > 15 { l1 -= 16; h |= m1 }
                            if l2 > 15 { l2 -= 16; h |= m2 }
                            y.storeBytes(of: h, toByteOffset: 16 + j, as: UInt8.self)
                            y.storeBytes(of: l1 | (l2 << 4), toByteOffset: 48 + n / 2 + j, as: UInt8.self)
                        }
                        m1 <<= 2
                        m2 <<= 2
                    }
                }
            }
        }
    }

    /// ggml_vec_dot_q4_K_q8_K_generic.
    static func vecDot(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        kQuantDot(x, y, blocks: blocks, blockBytes: 144, fifthBit: false)
    }

    /// The shared body of ggml_vec_dot_q4_K_q8_K_generic and _q5_K_: codes a (0…15, +16 with the qh bit for
    /// Q5_K), eight int32 lanes of Σ scale·q8·a, `sums[l] += (d·d_y)·aux32[l]`, `sumf −= (dmin·d_y)·Σ bsums·min`
    /// per block, and finally `sumf += sums[l]` in lane order.
    static func kQuantDot(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int, blockBytes: Int, fifthBit: Bool) -> Float {
        withKQuantDotScratch { aux8, aux32, sums in
            var sumf: Float = 0
            let qsOffset = fifthBit ? 48 : 16
            for i in 0..<blocks {
                let xb = x + i * blockBytes, yb = y + i * 292
                var m: UInt8 = 1
                for j in 0..<4 {
                    for l in 0..<32 {
                        let q = loadU8(xb, qsOffset + 32 * j + l)
                        var lo = Int8(q & 0x0F), hi = Int8(q >> 4)
                        if fifthBit {
                            let h = loadU8(xb, 16 + l)
                            lo += h & m != 0 ? 16 : 0
                            hi += h & (m << 1) != 0 ? 16 : 0
                        }
                        aux8[64 * j + l] = lo
                        aux8[64 * j + 32 + l] = hi
                    }
                    m <<= 2
                }
                let scales = xb + 4
                var sumi: Int32 = 0
                for j in 0..<16 { sumi += Int32(q8KBsum(yb, j)) * Int32(getScaleMinK4(j / 2, scales).min) }
                aux32.update(repeating: 0, count: 8)
                var q8 = 4, a = 0
                for j in 0..<8 {
                    let scale = Int32(getScaleMinK4(j, scales).scale)
                    for _ in 0..<4 {
                        for l in 0..<8 { aux32[l] += scale * Int32(Int16(loadI8(yb, q8 + l)) * Int16(aux8[a + l])) }
                        q8 += 8
                        a += 8
                    }
                }
                let dy = loadF32(yb, 0)
                let d = loadHalf(xb, 0) * dy
                for l in 0..<8 { sums[l] += d * Float(aux32[l]) }
                let dmin = loadHalf(xb, 2) * dy
                sumf -= dmin * Float(sumi)
            }
            for l in 0..<8 { sumf += sums[l] }
            return sumf
        }
    }
}

// MARK: - Q5_K

/// `block_q5_K`: d, dmin (f16), scales[12], qh[32], qs[128]. As Q4_K with a fifth bit from qh.
enum GGMLBlockQ5_K: GGMLBlockDot {
    static let type = GGMLType.q5_K

    static func dequantize(block x: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(x, 0), dmin = loadHalf(x, 2)
        let scales = x + 4
        var u1: UInt8 = 1, u2: UInt8 = 2
        for j in 0..<4 {
            let (sc1, m1) = getScaleMinK4(2 * j, scales), (sc2, m2) = getScaleMinK4(2 * j + 1, scales)
            let d1 = d * Float(sc1), dm1 = dmin * Float(m1)
            let d2 = d * Float(sc2), dm2 = dmin * Float(m2)
            for l in 0..<32 {
                let q = loadU8(x, 48 + 32 * j + l), h = loadU8(x, 16 + l)
                y[64 * j + l] = d1 * Float((q & 0x0F) | (h & u1 != 0 ? 16 : 0)) - dm1
                y[64 * j + 32 + l] = d2 * Float((q >> 4) | (h & u2 != 0 ? 16 : 0)) - dm2
            }
            u1 <<= 2
            u2 <<= 2
        }
    }

    /// quantize_row_q5_K_ref.
    static func quantize(block x: UnsafePointer<Float>, into y: UnsafeMutableRawPointer) {
        GGMLBlockQ4_K.quantizeQ45K(x, y, nmax: 31, rmin: -0.5, nstep: 15)
    }

    /// ggml_vec_dot_q5_K_q8_K_generic.
    static func vecDot(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        GGMLBlockQ4_K.kQuantDot(x, y, blocks: blocks, blockBytes: 176, fifthBit: true)
    }
}

// MARK: - Q6_K

/// `block_q6_K`: ql[128], qh[64], scales[16] (int8), d (f16). Value = (d·sc)·(q − 32).
enum GGMLBlockQ6_K: GGMLBlockDot {
    static let type = GGMLType.q6_K

    /// The 256 signed codes (−32…31) of a block, in element order.
    @inline(__always) static func codes(_ x: UnsafeRawPointer, _ body: (Int, Int8) -> Void) {
        for half in 0..<2 {
            let ql = 64 * half, qh = 128 + 32 * half
            for l in 0..<32 {
                let h = loadU8(x, qh + l)
                let a = loadU8(x, ql + l), b = loadU8(x, ql + l + 32)
                body(128 * half + l, Int8((a & 0x0F) | ((h >> 0) & 3) << 4) - 32)
                body(128 * half + l + 32, Int8((b & 0x0F) | ((h >> 2) & 3) << 4) - 32)
                body(128 * half + l + 64, Int8((a >> 4) | ((h >> 4) & 3) << 4) - 32)
                body(128 * half + l + 96, Int8((b >> 4) | ((h >> 6) & 3) << 4) - 32)
            }
        }
    }

    static func dequantize(block x: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(x, 208)
        codes(x) { i, q in
            y[i] = (d * Float(loadI8(x, 192 + i / 16))) * Float(q)
        }
    }

    /// quantize_row_q6_K_ref.
    static func quantize(block x: UnsafePointer<Float>, into y: UnsafeMutableRawPointer) {
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256) { tmp in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { s in
                let L = tmp.baseAddress!, scales = s.baseAddress!
                var maxScale: Float = 0, maxAbsScale: Float = 0
                for ib in 0..<16 {
                    let scale = makeQXQuants(n: 16, nmax: 32, x: x + 16 * ib, L: L + 16 * ib, rmseType: 1)
                    scales[ib] = scale
                    let absScale = abs(scale)
                    if absScale > maxAbsScale { maxAbsScale = absScale; maxScale = scale }
                }
                if maxAbsScale < ggmlGroupMaxEps {
                    // The block is already zeroed (d = +0).
                    return
                }
                let iscale = -128 / maxScale
                storeHalf(y, 208, 1 / iscale)
                for ib in 0..<16 {
                    y.storeBytes(of: Int8(truncatingIfNeeded: min(127, nearestInt(iscale * scales[ib]))), toByteOffset: 192 + ib, as: Int8.self)
                }
                for j in 0..<16 {
                    let d = loadHalf(y, 208) * Float(loadI8(y, 192 + j))
                    if d == 0 { continue }
                    for ii in 0..<16 {
                        let l = Int(nearestInt(x[16 * j + ii] / d))
                        L[16 * j + ii] = Int8(max(-32, min(31, l)) + 32)
                    }
                }
                L.withMemoryRebound(to: UInt8.self, capacity: 256) { L in
                    for half in 0..<2 {
                        let j = 128 * half
                        for l in 0..<32 {
                            let q1 = L[j + l] & 0x0F, q2 = L[j + l + 32] & 0x0F
                            let q3 = L[j + l + 64] & 0x0F, q4 = L[j + l + 96] & 0x0F
                            y.storeBytes(of: q1 | (q3 << 4), toByteOffset: 64 * half + l, as: UInt8.self)
                            y.storeBytes(of: q2 | (q4 << 4), toByteOffset: 64 * half + l + 32, as: UInt8.self)
                            let h = (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6)
                            y.storeBytes(of: h, toByteOffset: 128 + 32 * half + l, as: UInt8.self)
                        }
                    }
                }
            }
        }
    }

    /// ggml_vec_dot_q6_K_q8_K_generic: eight int32 lanes of Σ sc·q8·q per block, sums[l] += (d·d_y)·aux32[l].
    static func vecDot(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        withKQuantDotScratch { aux8, aux32, sums in
            for i in 0..<blocks {
                let xb = x + i * 210, yb = y + i * 292
                codes(xb) { k, q in aux8[k] = q }
                aux32.update(repeating: 0, count: 8)
                var q8 = 4, a = 0
                for j in 0..<16 {
                    let scale = Int32(loadI8(xb, 192 + j))
                    for _ in 0..<2 {
                        for l in 0..<8 { aux32[l] += scale * Int32(Int16(loadI8(yb, q8 + l)) * Int16(aux8[a + l])) }
                        q8 += 8
                        a += 8
                    }
                }
                let d = loadHalf(xb, 208) * loadF32(yb, 0)
                for l in 0..<8 { sums[l] += d * Float(aux32[l]) }
            }
            var sumf: Float = 0
            for l in 0..<8 { sumf += sums[l] }
            return sumf
        }
    }
}

// MARK: - Q8_K

/// The j-th int16 group sum of a Q8_K block.
@inline(__always) func q8KBsum(_ block: UnsafeRawPointer, _ j: Int) -> Int16 {
    Int16(littleEndian: block.loadUnaligned(fromByteOffset: 260 + 2 * j, as: Int16.self))
}

/// `block_q8_K`: d (f32), qs[256] (int8), bsums[16] (int16 sums of 16 codes). The activation format of the
/// k-quants; dequantization is ggml's `dequantize_row_q8_K` (`d·q`; gguf-py has none).
enum GGMLBlockQ8_K: GGMLBlockCodec {
    static let type = GGMLType.q8_K

    static func dequantize(block x: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadF32(x, 0)
        for j in 0..<256 { y[j] = d * Float(loadI8(x, 4 + j)) }
    }

    /// quantize_row_q8_K_ref: iscale = −127/max with the signed max, q = min(127, nearest_int(iscale·x)),
    /// d = 1/iscale stored as f32. For an all-zero block C writes d = 0 and qs = 0 but leaves bsums as they
    /// were in memory; here (and in the fixtures) they are 0.
    static func quantize(block x: UnsafePointer<Float>, into y: UnsafeMutableRawPointer) {
        var maxValue: Float = 0, amax: Float = 0
        for j in 0..<256 {
            let ax = abs(x[j])
            if ax > amax { amax = ax; maxValue = x[j] }
        }
        if amax == 0 { return }
        let iscale = -127 / maxValue
        for j in 0..<256 {
            let v = nearestInt(iscale * x[j])
            y.storeBytes(of: Int8(truncatingIfNeeded: min(127, v)), toByteOffset: 4 + j, as: Int8.self)
        }
        for j in 0..<16 {
            var sum: Int32 = 0
            for ii in 0..<16 { sum += Int32(loadI8(y, 4 + 16 * j + ii)) }
            y.storeBytes(of: Int16(truncatingIfNeeded: sum).littleEndian, toByteOffset: 260 + 2 * j, as: Int16.self)
        }
        y.storeBytes(of: (1 / iscale).bitPattern.littleEndian, toByteOffset: 0, as: UInt32.self)
    }
}
