import Foundation
import ParityCore

/// ggml's block quantization: dequantizers, reference quantizers and the CPU backend's dot products, as scalar
/// code that reproduces ggml bit for bit.
///
/// - Dequantization is bit-identical to gguf-py's `gguf.quants.dequantize` (gguf 0.19.0) for every type gguf-py
///   decodes, following its float32 order of operations (`(d·sc)·q − dmin·m`, never `d·(sc·q)`). For these types
///   gguf-py and ggml's `dequantize_row_*` use the same order and agree bit for bit (the fixture generator checks
///   it); the one difference is F16 NaN payloads (see `halfToFloatKeepingSignalingNaN`). Q8_1 and Q8_K, which
///   gguf-py cannot decode, follow ggml's `d·q`.
/// - Quantization reproduces ggml's `quantize_row_*_ref` (ggml-quants.c): for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/MXFP4 that
///   is also what gguf-py's quantizers produce; for the k-quants and the activation types (Q8_1, Q8_K) the tests
///   compare against bytes produced by ggml's own C compiled from source (see tools/make_quant_fixtures.py).
/// - `vecDot` is the CPU backend's generic (non-SIMD) `ggml_vec_dot_<w>_<vec_dot_type>` (ggml-cpu/quants.c).
///
/// Fast paths (SIMD decoders, fused dequantize-dot) belong beside these as separate functions whose tests compare
/// them with this reference; the reference itself stays scalar and in C's operation order.
public enum GGMLQuants {
    // MARK: Dequantization

    /// `count` values decoded from `bytes` (blocks of `type`, as stored in a GGUF file), in memory order.
    ///
    /// Preconditions (a GGUF reader checks them before calling): `type.isSupported`, `count` is a multiple of
    /// `type.blockSize`, and `bytes` holds at least `count / blockSize * typeSize` bytes.
    public static func dequantize(_ bytes: UnsafeRawBufferPointer, type: GGMLType, count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            dequantize(bytes, type: type, count: count, into: buffer)
            initialized = count
        }
    }

    /// Decodes into a caller-owned buffer (at least `count` floats); same preconditions as the allocating form.
    public static func dequantize(_ bytes: UnsafeRawBufferPointer, type: GGMLType, count: Int, into out: UnsafeMutableBufferPointer<Float>) {
        precondition(type.isSupported, type.unsupportedReason ?? "")
        precondition(count >= 0 && count % type.blockSize == 0, "\(count) values are not whole \(type.name) blocks of \(type.blockSize)")
        let blocks = count / type.blockSize
        precondition(bytes.count >= blocks * type.typeSize, "\(bytes.count) bytes hold fewer than \(blocks) \(type.name) blocks")
        precondition(out.count >= count, "output buffer of \(out.count) floats is smaller than \(count)")
        guard count > 0, let src = bytes.baseAddress, let dst = out.baseAddress else { return }
        switch type {
        case .f32:
            for i in 0..<count { dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .f16:
            for i in 0..<count { dst[i] = halfToFloatKeepingSignalingNaN(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .bf16:
            for i in 0..<count { dst[i] = FloatCodecs.bfloat16ToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        default:
            dequantizeBlocks(codec(for: type)!, src, dst, blocks: blocks)
        }
    }

    private static func dequantizeBlocks<C: GGMLBlockCodec>(_ codec: C.Type, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        let (bs, ts) = C.type.layout
        for b in 0..<blocks { C.dequantize(block: src + b * ts, into: dst + b * bs) }
    }

    // MARK: Quantization

    /// `values` encoded as `type` (F32, F16, BF16, or a block type with a quantizer: Q4_0, Q4_1, Q5_0, Q5_1,
    /// Q8_0, Q8_1, Q2_K…Q6_K, Q8_K, MXFP4) with ggml's reference quantizers.
    /// - Throws: `ParityError.usage` when the count is not a multiple of the block size or the type has no quantizer.
    public static func quantize(_ values: [Float], to type: GGMLType) throws(ParityError) -> [UInt8] {
        guard type.canQuantize else {
            throw .usage("cannot quantize to ggml type \(type.name): \(type.unsupportedReason ?? "no quantizer")")
        }
        guard values.count % type.blockSize == 0 else {
            throw .usage("cannot quantize \(values.count) values to \(type.name): not a multiple of its block size \(type.blockSize)")
        }
        let size = values.count / type.blockSize * type.typeSize
        return values.withUnsafeBufferPointer { v in
            [UInt8](unsafeUninitializedCapacity: size) { out, initialized in
                quantizeUnchecked(v, type: type, into: UnsafeMutableRawBufferPointer(out))
                initialized = size
            }
        }
    }

    /// Non-allocating form: `out` must hold `values.count / blockSize * typeSize` bytes.
    public static func quantize(_ values: UnsafeBufferPointer<Float>, to type: GGMLType, into out: UnsafeMutableRawBufferPointer) throws(ParityError) {
        guard type.canQuantize else {
            throw .usage("cannot quantize to ggml type \(type.name): \(type.unsupportedReason ?? "no quantizer")")
        }
        guard values.count % type.blockSize == 0 else {
            throw .usage("cannot quantize \(values.count) values to \(type.name): not a multiple of its block size \(type.blockSize)")
        }
        guard out.count >= values.count / type.blockSize * type.typeSize else {
            throw .usage("output buffer of \(out.count) bytes is too small for \(values.count) values of \(type.name)")
        }
        quantizeUnchecked(values, type: type, into: out)
    }

    private static func quantizeUnchecked(_ values: UnsafeBufferPointer<Float>, type: GGMLType, into out: UnsafeMutableRawBufferPointer) {
        guard let src = values.baseAddress, let dst = out.baseAddress, values.count > 0 else { return }
        switch type {
        case .f32:
            for i in 0..<values.count { dst.storeBytes(of: src[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        case .f16:
            for i in 0..<values.count { storeHalf(dst, 2 * i, src[i]) }
        case .bf16:
            // gguf-py's BF16.quantize_blocks and ggml_compute_fp32_to_bf16: round to nearest even, NaN kept quiet.
            for i in 0..<values.count { dst.storeBytes(of: FloatCodecs.floatToBFloat16(src[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
        default:
            quantizeBlocks(codec(for: type)!, src, dst, blocks: values.count / type.blockSize)
        }
    }

    private static func quantizeBlocks<C: GGMLBlockCodec>(_ codec: C.Type, _ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
        let (bs, ts) = C.type.layout
        for b in 0..<blocks {
            let y = dst + b * ts
            y.initializeMemory(as: UInt8.self, repeating: 0, count: ts)   // the C quantizers OR bits into zeroed fields
            C.quantize(block: src + b * bs, into: y)
        }
    }

    // MARK: Dot products

    /// One row dot product as ggml's CPU backend computes it: `weights` holds `count` values of `type`,
    /// `activations` the same count already quantized to `type.vecDotType` (F32, F16 and BF16 weights take
    /// activations of their own type). Block types sum integers per block and scale each block sum in float,
    /// in the order of ggml-cpu/quants.c's generic kernels; F32/F16/BF16 accumulate float products in double,
    /// as the scalar `ggml_vec_dot_f32/f16/bf16` do (`ggml_float` = double).
    ///
    /// Note: the SIMD kernels ggml actually runs on x86/ARM sum the same integers but add the per-block floats
    /// in a different order (and F16/F32 in f32 lanes), so a real ggml build can differ from this in the last
    /// bits of the float result; the integer block sums are identical given the same activation bytes. (ggml's
    /// AVX `quantize_row_q8_0`/`q8_1` round ties to even where the reference used here rounds them away from
    /// zero, so on x86 an activation exactly halfway between two codes can quantize differently.)
    public static func vecDot(weights: UnsafeRawBufferPointer, type: GGMLType, activations: UnsafeRawBufferPointer, count: Int) -> Float {
        let dotType = type.vecDotType
        precondition(count % type.blockSize == 0 && count % dotType.blockSize == 0, "\(count) is not whole \(type.name) blocks")
        precondition(weights.count >= count / type.blockSize * type.typeSize, "weights hold fewer than \(count) \(type.name) values")
        precondition(activations.count >= count / dotType.blockSize * dotType.typeSize, "activations hold fewer than \(count) \(dotType.name) values")
        guard count > 0, let x = weights.baseAddress, let y = activations.baseAddress else { return 0 }
        switch type {
        case .f32:
            var sum: Double = 0
            for i in 0..<count {
                let a = Float(bitPattern: UInt32(littleEndian: x.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                let b = Float(bitPattern: UInt32(littleEndian: y.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                sum += Double(a * b)
            }
            return Float(sum)
        case .f16:
            // Products of two halves are exact in float; ggml_vec_dot_f16's scalar path adds them in double.
            var sum: Double = 0
            for i in 0..<count { sum += Double(loadHalf(x, 2 * i) * loadHalf(y, 2 * i)) }
            return Float(sum)
        case .bf16:
            var sum: Double = 0
            for i in 0..<count {
                let a = FloatCodecs.bfloat16ToFloat(UInt16(littleEndian: x.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                let b = FloatCodecs.bfloat16ToFloat(UInt16(littleEndian: y.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                sum += Double(a * b)
            }
            return Float(sum)
        default:
            guard let dot = codec(for: type) as? any GGMLBlockDot.Type else {
                preconditionFailure("ggml's CPU backend has no vec_dot for \(type.name)")
            }
            return rowDot(dot, x, y, blocks: count / type.blockSize)
        }
    }

    /// True when `vecDot` accepts weights of `type`.
    public static func hasVecDot(_ type: GGMLType) -> Bool {
        switch type {
        case .f32, .f16, .bf16: return true
        default: return codec(for: type) is any GGMLBlockDot.Type
        }
    }

    private static func rowDot<C: GGMLBlockDot>(_ codec: C.Type, _ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        C.vecDot(x, y, blocks: blocks)
    }

    // MARK: Registry

    /// The block codec of a type (gguf-py registers one class per type the same way).
    static func codec(for type: GGMLType) -> (any GGMLBlockCodec.Type)? {
        switch type {
        case .q4_0: return GGMLBlockQ4_0.self
        case .q4_1: return GGMLBlockQ4_1.self
        case .q5_0: return GGMLBlockQ5_0.self
        case .q5_1: return GGMLBlockQ5_1.self
        case .q8_0: return GGMLBlockQ8_0.self
        case .q8_1: return GGMLBlockQ8_1.self
        case .mxfp4: return GGMLBlockMXFP4.self
        case .q2_K: return GGMLBlockQ2_K.self
        case .q3_K: return GGMLBlockQ3_K.self
        case .q4_K: return GGMLBlockQ4_K.self
        case .q5_K: return GGMLBlockQ5_K.self
        case .q6_K: return GGMLBlockQ6_K.self
        case .q8_K: return GGMLBlockQ8_K.self
        default: return nil
        }
    }
}

/// One ggml block format, as a scalar reference codec.
protocol GGMLBlockCodec {
    static var type: GGMLType { get }
    /// Decodes the block at `x` (`type.typeSize` bytes) into `type.blockSize` floats.
    static func dequantize(block x: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>)
    /// Encodes `type.blockSize` floats into the block at `y`, which the caller has zeroed.
    static func quantize(block x: UnsafePointer<Float>, into y: UnsafeMutableRawPointer)
}

/// A weight format with a CPU dot-product kernel against its `vecDotType` activations.
protocol GGMLBlockDot: GGMLBlockCodec {
    /// ggml_vec_dot_<type>_<vec_dot_type>_generic over `blocks` weight blocks (and the matching activation blocks).
    static func vecDot(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float
}

// MARK: - Scalar helpers shared by the codecs

/// IEEE half at a byte offset (little-endian, unaligned) → Float, exactly.
@inline(__always) func loadHalf(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    FloatCodecs.halfToFloat(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}

/// Half → float as numpy's `astype(np.float32)` does it (so F16 tensors decode bit-identically to gguf-py):
/// exact, and a signalling NaN stays signalling with its payload shifted into place. The hardware conversion
/// (and ggml's GGML_FP16_TO_FP32, F16C or software) sets the quiet bit instead; only NaN payload bits differ.
@inline(__always) func halfToFloatKeepingSignalingNaN(_ h: UInt16) -> Float {
    if h & 0x7C00 == 0x7C00 && h & 0x03FF != 0 {
        return Float(bitPattern: UInt32(h & 0x8000) << 16 | 0x7F80_0000 | UInt32(h & 0x03FF) << 13)
    }
    return FloatCodecs.halfToFloat(h)
}

/// Float → IEEE half (round to nearest even, as GGML_FP32_TO_FP16) stored little-endian at a byte offset.
@inline(__always) func storeHalf(_ p: UnsafeMutableRawPointer, _ offset: Int, _ value: Float) {
    p.storeBytes(of: FloatCodecs.floatToHalf(value).littleEndian, toByteOffset: offset, as: UInt16.self)
}

@inline(__always) func loadU32(_ p: UnsafeRawPointer, _ offset: Int) -> UInt32 {
    UInt32(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
}

@inline(__always) func loadF32(_ p: UnsafeRawPointer, _ offset: Int) -> Float { Float(bitPattern: loadU32(p, offset)) }

@inline(__always) func loadI8(_ p: UnsafeRawPointer, _ offset: Int) -> Int8 { p.load(fromByteOffset: offset, as: Int8.self) }

@inline(__always) func loadU8(_ p: UnsafeRawPointer, _ offset: Int) -> UInt8 { p.load(fromByteOffset: offset, as: UInt8.self) }

/// C's float → integer conversion (`(int8_t)f`, `(int)f`) as x86's cvttss2si performs it: truncation toward
/// zero, and INT_MIN for NaN or out-of-range values (C leaves those undefined; this never traps, unlike
/// `Int32(_:)`). Callers narrow further with `truncatingIfNeeded`, as the C casts to int8/uint8 do.
@inline(__always) func cTruncate(_ f: Float) -> Int32 {
    (f >= -2147483648 && f < 2147483648) ? Int32(f) : Int32.min
}

/// ggml's `nearest_int`: adds 1.5·2²³ so the FPU rounds to an integer (to nearest, ties to even) and reads it
/// from the mantissa bits. Valid for |x| ≤ 2²²−1 (C asserts that); like the C, returns garbage, not a trap, outside.
@inline(__always) func nearestInt(_ fval: Float) -> Int32 {
    let val = fval + 12582912
    return Int32(bitPattern: val.bitPattern & 0x007F_FFFF) - 0x0040_0000
}

/// ggml's `GROUP_MAX_EPS` (1e-15f), spelled by its bits so no decimal conversion is involved.
let ggmlGroupMaxEps = Float(bitPattern: 0x2690_1D7D)
/// C's `0.1f`.
let ggmlPointOne = Float(bitPattern: 0x3DCC_CCCD)

// MARK: - Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1

/// `block_q4_0`: d (f16), qs[16]; element j in the low nibble of qs[j], element j+16 in its high nibble.
enum GGMLBlockQ4_0: GGMLBlockDot {
    static let type = GGMLType.q4_0

    static func dequantize(block x: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(x, 0)
        for j in 0..<16 {
            let q = loadU8(x, 2 + j)
            y[j] = d * Float(Int(q & 0x0F) - 8)
            y[j + 16] = d * Float(Int(q >> 4) - 8)
        }
    }

    /// quantize_row_q4_0_ref: d = (signed value of largest |x|) / −8; q = min(15, (int8)(x·(1/d) + 8.5)) with the
    /// unrounded 1/d. gguf-py computes the same in float32. (All-zero block whose first element is −0.0: ggml
    /// keeps max = +0 and stores d = −0.0, gguf-py takes x[0] and stores +0.0; this follows ggml.)
    static func quantize(block x: UnsafePointer<Float>, into y: UnsafeMutableRawPointer) {
        var amax: Float = 0, maxValue: Float = 0
        for j in 0..<32 where amax < abs(x[j]) { amax = abs(x[j]); maxValue = x[j] }
        let d = maxValue / -8
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(y, 0, d)
        for j in 0..<16 {
            let x0 = x[j] * id, x1 = x[j + 16] * id
            let q0 = min(15, Int8(truncatingIfNeeded: cTruncate(x0 + 8.5)))
            let q1 = min(15, Int8(truncatingIfNeeded: cTruncate(x1 + 8.5)))
            y.storeBytes(of: UInt8(truncatingIfNeeded: q0) | UInt8(truncatingIfNeeded: q1) << 4, toByteOffset: 2 + j, as: UInt8.self)
        }
    }

    /// ggml_vec_dot_q4_0_q8_0_generic: `sumf += sumi·d_x·d_y`, evaluated as (sumi·d_x)·d_y.
    static func vecDot(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        var sumf: Float = 0
        for ib in 0..<blocks {
            let xb = x + ib * 18, yb = y + ib * 34
            var sumi0: Int32 = 0, sumi1: Int32 = 0
            for j in 0..<16 {
                let q = loadU8(xb, 2 + j)
                sumi0 += (Int32(q & 0x0F) - 8) * Int32(loadI8(yb, 2 + j))
                sumi1 += (Int32(q >> 4) - 8) * Int32(loadI8(yb, 2 + j + 16))
            }
            sumf += Float(sumi0 + sumi1) * loadHalf(xb, 0) * loadHalf(yb, 0)
        }
        return sumf
    }
}

/// `block_q4_1`: d, m (f16), qs[16]; value = d·q + m.
enum GGMLBlockQ4_1: GGMLBlockDot {
    static let type = GGMLType.q4_1

    static func dequantize(block x: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(x, 0), m = loadHalf(x, 2)
        for j in 0..<16 {
            let q = loadU8(x, 4 + j)
            y[j] = d * Float(q & 0x0F) + m
            y[j + 16] = d * Float(q >> 4) + m
        }
    }

    /// quantize_row_q4_1_ref: d = (max − min)/15, q = min(15, (int8)((x − min)·(1/d) + 0.5)). min/max are C's
    /// strict comparisons from ±FLT_MAX (numpy's min/max may pick the other zero of a −0.0/+0.0 pair for m).
    static func quantize(block x: UnsafePointer<Float>, into y: UnsafeMutableRawPointer) {
        var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
        for j in 0..<32 {
            if x[j] < lo { lo = x[j] }
            if x[j] > hi { hi = x[j] }
        }
        let d = (hi - lo) / 15
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(y, 0, d)
        storeHalf(y, 2, lo)
        for j in 0..<16 {
            let x0 = (x[j] - lo) * id, x1 = (x[j + 16] - lo) * id
            let q0 = min(15, Int8(truncatingIfNeeded: cTruncate(x0 + 0.5)))
            let q1 = min(15, Int8(truncatingIfNeeded: cTruncate(x1 + 0.5)))
            y.storeBytes(of: UInt8(truncatingIfNeeded: q0) | UInt8(truncatingIfNeeded: q1) << 4, toByteOffset: 4 + j, as: UInt8.self)
        }
    }

    /// ggml_vec_dot_q4_1_q8_1_generic: `sumf += (d_x·d_y)·sumi + m_x·s_y`.
    static func vecDot(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        var sumf: Float = 0
        for ib in 0..<blocks {
            let xb = x + ib * 20, yb = y + ib * 36
            var sumi0: Int32 = 0, sumi1: Int32 = 0
            for j in 0..<16 {
                let q = loadU8(xb, 4 + j)
                sumi0 += Int32(q & 0x0F) * Int32(loadI8(yb, 4 + j))
                sumi1 += Int32(q >> 4) * Int32(loadI8(yb, 4 + j + 16))
            }
            sumf += (loadHalf(xb, 0) * loadHalf(yb, 0)) * Float(sumi0 + sumi1) + loadHalf(xb, 2) * loadHalf(yb, 2)
        }
        return sumf
    }
}

/// `block_q5_0`: d (f16), qh (u32 LE: bit j is the 5th bit of element j), qs[16]; value = d·(q − 16).
enum GGMLBlockQ5_0: GGMLBlockDot {
    static let type = GGMLType.q5_0

    static func dequantize(block x: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(x, 0)
        let qh = loadU32(x, 2)
        for j in 0..<16 {
            let q = loadU8(x, 6 + j)
            let h0 = Int((qh >> UInt32(j)) & 1) << 4, h1 = Int((qh >> UInt32(j + 16)) & 1) << 4
            y[j] = d * Float((Int(q & 0x0F) | h0) - 16)
            y[j + 16] = d * Float((Int(q >> 4) | h1) - 16)
        }
    }

    /// quantize_row_q5_0_ref: d = max/−16, q = min(31, (int8)(x·(1/d) + 16.5)). Signed zeros as in Q4_0.
    static func quantize(block x: UnsafePointer<Float>, into y: UnsafeMutableRawPointer) {
        var amax: Float = 0, maxValue: Float = 0
        for j in 0..<32 where amax < abs(x[j]) { amax = abs(x[j]); maxValue = x[j] }
        let d = maxValue / -16
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(y, 0, d)
        var qh: UInt32 = 0
        for j in 0..<16 {
            let x0 = x[j] * id, x1 = x[j + 16] * id
            let q0 = UInt8(truncatingIfNeeded: min(31, Int8(truncatingIfNeeded: cTruncate(x0 + 16.5))))
            let q1 = UInt8(truncatingIfNeeded: min(31, Int8(truncatingIfNeeded: cTruncate(x1 + 16.5))))
            y.storeBytes(of: (q0 & 0x0F) | ((q1 & 0x0F) << 4), toByteOffset: 6 + j, as: UInt8.self)
            qh |= UInt32((q0 & 0x10) >> 4) << UInt32(j)
            qh |= UInt32((q1 & 0x10) >> 4) << UInt32(j + 16)
        }
        y.storeBytes(of: qh.littleEndian, toByteOffset: 2, as: UInt32.self)
    }

    /// ggml_vec_dot_q5_0_q8_0_generic: `sumf += (d_x·d_y)·sumi`.
    static func vecDot(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        var sumf: Float = 0
        for ib in 0..<blocks {
            let xb = x + ib * 22, yb = y + ib * 34
            let qh = loadU32(xb, 2)
            var sumi0: Int32 = 0, sumi1: Int32 = 0
            for j in 0..<16 {
                let q = loadU8(xb, 6 + j)
                let x0 = Int32(Int32(q & 0x0F) | Int32((qh >> UInt32(j)) & 1) << 4) - 16
                let x1 = Int32(Int32(q >> 4) | Int32((qh >> UInt32(j + 16)) & 1) << 4) - 16
                sumi0 += x0 * Int32(loadI8(yb, 2 + j))
                sumi1 += x1 * Int32(loadI8(yb, 2 + j + 16))
            }
            sumf += (loadHalf(xb, 0) * loadHalf(yb, 0)) * Float(sumi0 + sumi1)
        }
        return sumf
    }
}

/// `block_q5_1`: d, m (f16), qh (u32), qs[16]; value = d·q + m.
enum GGMLBlockQ5_1: GGMLBlockDot {
    static let type = GGMLType.q5_1

    static func dequantize(block x: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(x, 0), m = loadHalf(x, 2)
        let qh = loadU32(x, 4)
        for j in 0..<16 {
            let q = loadU8(x, 8 + j)
            let h0 = Int((qh >> UInt32(j)) & 1) << 4, h1 = Int((qh >> UInt32(j + 16)) & 1) << 4
            y[j] = d * Float(Int(q & 0x0F) | h0) + m
            y[j + 16] = d * Float(Int(q >> 4) | h1) + m
        }
    }

    /// quantize_row_q5_1_ref: d = (max − min)/31, q = (uint8)((x − min)·(1/d) + 0.5) (gguf-py clips to 31,
    /// which no finite input reaches).
    static func quantize(block x: UnsafePointer<Float>, into y: UnsafeMutableRawPointer) {
        var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
        for j in 0..<32 {
            if x[j] < lo { lo = x[j] }
            if x[j] > hi { hi = x[j] }
        }
        let d = (hi - lo) / 31
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(y, 0, d)
        storeHalf(y, 2, lo)
        var qh: UInt32 = 0
        for j in 0..<16 {
            let x0 = (x[j] - lo) * id, x1 = (x[j + 16] - lo) * id
            let q0 = UInt8(truncatingIfNeeded: cTruncate(x0 + 0.5))
            let q1 = UInt8(truncatingIfNeeded: cTruncate(x1 + 0.5))
            y.storeBytes(of: (q0 & 0x0F) | ((q1 & 0x0F) << 4), toByteOffset: 8 + j, as: UInt8.self)
            qh |= UInt32((q0 & 0x10) >> 4) << UInt32(j)
            qh |= UInt32((q1 & 0x10) >> 4) << UInt32(j + 16)
        }
        y.storeBytes(of: qh.littleEndian, toByteOffset: 4, as: UInt32.self)
    }

    /// ggml_vec_dot_q5_1_q8_1_generic: `sumf += (d_x·d_y)·sumi + m_x·s_y`.
    static func vecDot(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        var sumf: Float = 0
        for ib in 0..<blocks {
            let xb = x + ib * 24, yb = y + ib * 36
            let qh = loadU32(xb, 4)
            var sumi0: Int32 = 0, sumi1: Int32 = 0
            for j in 0..<16 {
                let q = loadU8(xb, 8 + j)
                let x0 = Int32(q & 0x0F) | Int32((qh >> UInt32(j)) & 1) << 4
                let x1 = Int32(q >> 4) | Int32((qh >> UInt32(j + 16)) & 1) << 4
                sumi0 += x0 * Int32(loadI8(yb, 4 + j))
                sumi1 += x1 * Int32(loadI8(yb, 4 + j + 16))
            }
            sumf += (loadHalf(xb, 0) * loadHalf(yb, 0)) * Float(sumi0 + sumi1) + loadHalf(xb, 2) * loadHalf(yb, 2)
        }
        return sumf
    }
}

/// `block_q8_0`: d (f16), qs[32] (int8); value = q·d. Also the activation format of Q4_0, Q5_0, Q8_0, MXFP4.
enum GGMLBlockQ8_0: GGMLBlockDot {
    static let type = GGMLType.q8_0

    static func dequantize(block x: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(x, 0)
        for j in 0..<32 { y[j] = Float(loadI8(x, 2 + j)) * d }
    }

    /// quantize_row_q8_0_ref: d = amax/127, stored as f16, but q = roundf(x·(1/d)) uses the unrounded d;
    /// roundf rounds half away from zero (`.toNearestOrAwayFromZero`), unlike the AVX path's half-to-even.
    static func quantize(block x: UnsafePointer<Float>, into y: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 { amax = amax > abs(x[j]) ? amax : abs(x[j]) }   // C's MAX(amax, fabsf(v))
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(y, 0, d)
        for j in 0..<32 {
            y.storeBytes(of: Int8(truncatingIfNeeded: cTruncate((x[j] * id).rounded(.toNearestOrAwayFromZero))), toByteOffset: 2 + j, as: Int8.self)
        }
    }

    /// ggml_vec_dot_q8_0_q8_0_generic: `sumf += sumi·(d_x·d_y)`.
    static func vecDot(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        var sumf: Float = 0
        for ib in 0..<blocks {
            let xb = x + ib * 34, yb = y + ib * 34
            var sumi: Int32 = 0
            for j in 0..<32 { sumi += Int32(loadI8(xb, 2 + j)) * Int32(loadI8(yb, 2 + j)) }
            sumf += Float(sumi) * (loadHalf(xb, 0) * loadHalf(yb, 0))
        }
        return sumf
    }
}

/// `block_q8_1`: d (f16), s (f16, = d·Σq with the unrounded d), qs[32]. The activation format of Q4_1 and
/// Q5_1; ggml has no dequantizer for it (gguf-py neither), so decoding is `q·d` like Q8_0.
enum GGMLBlockQ8_1: GGMLBlockCodec {
    static let type = GGMLType.q8_1

    static func dequantize(block x: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(x, 0)
        for j in 0..<32 { y[j] = Float(loadI8(x, 4 + j)) * d }
    }

    /// quantize_row_q8_1_ref.
    static func quantize(block x: UnsafePointer<Float>, into y: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 { amax = amax > abs(x[j]) ? amax : abs(x[j]) }
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(y, 0, d)
        var sum: Int32 = 0
        for j in 0..<32 {
            let q = Int8(truncatingIfNeeded: cTruncate((x[j] * id).rounded(.toNearestOrAwayFromZero)))
            y.storeBytes(of: q, toByteOffset: 4 + j, as: Int8.self)
            sum += Int32(q)
        }
        storeHalf(y, 2, Float(sum) * d)
    }
}

// MARK: - MXFP4

/// `block_mxfp4`: e (E8M0 scale), qs[16] (two E2M1 codes per byte, element j low nibble, j+16 high nibble).
/// ggml stores the E2M1 values doubled (`kvalues_mxfp4`) and halves the scale instead (`ggml_e8m0_to_fp32_half`).
enum GGMLBlockMXFP4: GGMLBlockDot {
    static let type = GGMLType.mxfp4
    static let kvalues: [Int8] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12]

    /// ggml_e8m0_to_fp32_half: 2^(e−128), built from bits (e < 2 gives the subnormals 2⁻¹²⁸ and 2⁻¹²⁷).
    @inline(__always) static func e8m0Half(_ e: UInt8) -> Float {
        Float(bitPattern: e < 2 ? UInt32(0x0020_0000) << UInt32(e) : UInt32(e - 1) << 23)
    }

    static func dequantize(block x: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = e8m0Half(loadU8(x, 0))
        kvalues.withUnsafeBufferPointer { kv in
            for j in 0..<16 {
                let q = loadU8(x, 1 + j)
                y[j] = d * Float(kv[Int(q & 0x0F)])
                y[j + 16] = d * Float(kv[Int(q >> 4)])
            }
        }
    }

    /// quantize_row_mxfp4_ref: e = (uint8)(floor(log2f(amax)) − 2 + 127), then each value takes the first
    /// code with the smallest |kvalue·d − x| (gguf-py: `argmin`, same tie rule). log2f is glibc's, as C's and
    /// numpy's float32 log2 on Linux; the fixtures include amax just below powers of two to pin the rounding.
    /// (MLX's MXFP4 uses round(log2(amax/6)) and gives different bytes for the same weights; both are valid.)
    static func quantize(block x: UnsafePointer<Float>, into y: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 where amax < abs(x[j]) { amax = abs(x[j]) }
        let e: UInt8 = amax > 0 ? UInt8(truncatingIfNeeded: cTruncate(floorf(log2f(amax)) - 2 + 127)) : 0
        let d = e8m0Half(e)
        y.storeBytes(of: e, toByteOffset: 0, as: UInt8.self)
        kvalues.withUnsafeBufferPointer { kv in
            func best(_ v: Float) -> UInt8 {
                var bestIndex = 0
                var bestError = abs(Float(kv[0]) * d - v)
                for i in 1..<16 {
                    let err = abs(Float(kv[i]) * d - v)
                    if err < bestError { bestIndex = i; bestError = err }
                }
                return UInt8(bestIndex)
            }
            for j in 0..<16 {
                y.storeBytes(of: best(x[j]) | best(x[j + 16]) << 4, toByteOffset: 1 + j, as: UInt8.self)
            }
        }
    }

    /// ggml_vec_dot_mxfp4_q8_0_generic: d = d_y·e8m0_half(e); `sumf += d·(sumi1 + sumi2)`.
    static func vecDot(_ x: UnsafeRawPointer, _ y: UnsafeRawPointer, blocks: Int) -> Float {
        kvalues.withUnsafeBufferPointer { kv in
            var sumf: Float = 0
            for ib in 0..<blocks {
                let xb = x + ib * 17, yb = y + ib * 34
                let d = loadHalf(yb, 0) * e8m0Half(loadU8(xb, 0))
                var sumi1: Int32 = 0, sumi2: Int32 = 0
                for j in 0..<16 {
                    let q = loadU8(xb, 1 + j)
                    sumi1 += Int32(loadI8(yb, 2 + j)) * Int32(kv[Int(q & 0x0F)])
                    sumi2 += Int32(loadI8(yb, 2 + j + 16)) * Int32(kv[Int(q >> 4)])
                }
                sumf += d * Float(sumi1 + sumi2)
            }
            return sumf
        }
    }
}
