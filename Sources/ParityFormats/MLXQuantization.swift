import CParityKernels
import ParityCore

// MLX quantization (`mx.quantize`, `mx.dequantize`, `mx.quantized_matmul`) reproduced bit for bit as MLX's CPU
// stream computes it. The oracle is real MLX: Tests/ParityTests/Fixtures/mlx-quant/ holds MLX 0.32.4's own
// outputs (tools/mlx/make_quant_fixtures.py), and MLXQuantizationTests compares every byte.
//
// What the code does, as opposed to what the docstring says — the arithmetic lives in
// MLXQuantization+Kernels.swift, with the exact order of operations:
//   - affine: per group, scale = max((max−min)/(2^b−1), 1e-7), negated unless |min| > |max|; the edge (min or
//     max) is snapped to a quantization level: q0 = rint(edge/scale), scale = edge/q0, bias = edge (bias 0 when
//     q0 == 0). q = clamp(rint((w − bias)/scale), 0, 2^b−1). Everything in float32 on the dtype-rounded inputs;
//     scales and biases are rounded to the weight dtype only when stored, after q was computed with the float
//     scale. bits = 1 (accepted by MLX 0.32.4): scale = max(max − min, 1e-7), bias = min.
//   - mxfp4 / mxfp8: E8M0 scale = the smallest power of two ≥ amax/maxval (6 or 448) — MLX rounds UP, not to
//     nearest as older MLX and its docstring say; an all-zero group gets 127 (2^0), not 0; the byte is (n+127) mod 256
//     with no clamping. amax/maxval and w/2^n are rounded to the weight dtype (MLX evaluates them in that dtype).
//   - nvfp4: E4M3 scale = MLX's ToFP8(amax/6) (round to nearest even; everything from 448 up, and NaN/Inf,
//     saturates to 0x7E = 448, so no NaN code is ever produced); elements w/scale (rounded to the weight
//     dtype) → the E2M1 code nearest in float32, ties to the LOWER code index (MLX's argmin over the LUT
//     {0, .5, 1, 1.5, 2, 3, 4, 6, −0, …, −6}), so 0.75 → 0.5 and −0.25 → +0. A zero scale (amax < 2^-10·6)
//     gives code 0 everywhere. mxfp8 elements use ToFP8 too.
//   - dequantize: affine `scale·q + bias` as two rounded ops in the scales' dtype; fp modes `value·scale`
//     rounded to the output type (bfloat16 by default).
//   - quantized_matmul (transpose=True): see ``MLXQuantization/quantizedMatmul(x:rows:weight:xType:)``.
// Not covered: nvfp4's optional `global_scale`, `transpose=False`, and NaN payloads (any NaN stands for MLX's).

/// MLX's quantization modes with their `quantization_params_from_mode` defaults.
public enum MLXQuantMode: String, CaseIterable, Sendable {
    case affine, mxfp4, mxfp8, nvfp4

    /// `mx.quantize` defaults: affine (64, 4), mxfp4 (32, 4), mxfp8 (32, 8), nvfp4 (16, 4).
    public var defaultGroupSize: Int {
        switch self {
        case .affine: return 64
        case .mxfp4, .mxfp8: return 32
        case .nvfp4: return 16
        }
    }

    public var defaultBits: Int { self == .mxfp8 ? 8 : 4 }

    /// Group sizes `mx.quantize` accepts: affine 32, 64, 128; the floating-point modes only their default.
    public var allowedGroupSizes: [Int] { self == .affine ? [32, 64, 128] : [defaultGroupSize] }

    /// Bit widths MLX 0.32.4 accepts: affine 1, 2, 3, 4, 5, 6, 8 (older MLX allowed 2–8 without 7; 1 is new);
    /// the floating-point modes only their default.
    public var allowedBits: [Int] { self == .affine ? [1, 2, 3, 4, 5, 6, 8] : [defaultBits] }

    /// Only affine stores biases.
    public var hasBiases: Bool { self == .affine }

    /// The scale encoding of the floating-point modes (affine scales are plain floats of the weight dtype).
    public var scaleFormat: String {
        switch self {
        case .affine: return "weight dtype"
        case .mxfp4, .mxfp8: return "E8M0 (uint8)"
        case .nvfp4: return "E4M3 (uint8)"
        }
    }

    /// Parses MLX's mode string (`"affine"`, `"mxfp4"`, `"mxfp8"`, `"nvfp4"`).
    public static func parse(_ text: String) throws(ParityError) -> MLXQuantMode {
        guard let mode = MLXQuantMode(rawValue: text) else {
            throw .usage("MLX quantization mode '\(text)' is not one of \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return mode
    }

    /// Fills in MLX's defaults and checks the combination as `mx.quantize` does.
    public func resolve(groupSize: Int?, bits: Int?) throws(ParityError) -> (groupSize: Int, bits: Int) {
        let g = groupSize ?? defaultGroupSize, b = bits ?? defaultBits
        try validate(groupSize: g, bits: b)
        return (g, b)
    }

    /// Throws `ParityError.usage` for a group size or bit width this mode does not support.
    public func validate(groupSize: Int, bits: Int) throws(ParityError) {
        let list: ([Int]) -> String = { $0.map(String.init).joined(separator: ", ") }
        guard allowedGroupSizes.contains(groupSize) else {
            throw .usage("MLX \(rawValue) quantization: group size \(groupSize) is not supported (supported: \(list(allowedGroupSizes)))")
        }
        guard allowedBits.contains(bits) else {
            throw .usage("MLX \(rawValue) quantization: \(bits) bits is not supported (supported: \(list(allowedBits)))")
        }
    }
}

/// The float types MLX quantizes from and computes in.
public enum MLXFloatType: String, CaseIterable, Sendable {
    case f32, f16, bf16

    public var dtype: DType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        }
    }

    public init?(_ dtype: DType) {
        switch dtype {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        default: return nil
        }
    }

    public var byteWidth: Int { self == .f32 ? 4 : 2 }

    /// `x` rounded to this type (round to nearest even) and widened back, exactly as MLX's float16_t /
    /// bfloat16_t conversions do.
    @inlinable @inline(__always) public func round(_ x: Float) -> Float {
        switch self {
        case .f32: return x
        case .f16: return FloatCodecs.roundToHalf(x)
        case .bf16: return FloatCodecs.bfloat16ToFloat(FloatCodecs.floatToBFloat16(x))
        }
    }

    /// Every value rounded to this type, as `values.map(round)` (float16 in bulk by CParityKernels: F16C's
    /// conversions where the CPU has them, the same rounding in integer arithmetic otherwise).
    public func rounded(_ values: [Float]) -> [Float] {
        switch self {
        case .f32: return values
        case .bf16: return values.map(round)
        case .f16:
            return [Float](unsafeUninitializedCapacity: values.count) { out, initialized in
                values.withUnsafeBufferPointer { pk_round_f16($0.baseAddress, Int64(values.count), out.baseAddress) }
                initialized = values.count
            }
        }
    }

    /// MLX's type promotion between two float types: equal types stay, anything else is float32
    /// (float16 with bfloat16 promotes to float32).
    public static func promote(_ a: MLXFloatType, _ b: MLXFloatType) -> MLXFloatType { a == b ? a : .f32 }

    /// Little-endian bytes of values (each rounded to this type).
    public func encode(_ values: [Float]) -> [UInt8] {
        if self == .f16 {
            return [UInt8](unsafeUninitializedCapacity: 2 * values.count) { out, initialized in
                values.withUnsafeBufferPointer { pk_encode_f16($0.baseAddress, Int64(values.count), out.baseAddress) }
                initialized = 2 * values.count
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(values.count * byteWidth)
        for v in values {
            switch self {
            case .f32: withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) }
            case .f16: withUnsafeBytes(of: FloatCodecs.floatToHalf(v).littleEndian) { out.append(contentsOf: $0) }
            case .bf16: withUnsafeBytes(of: FloatCodecs.floatToBFloat16(v).littleEndian) { out.append(contentsOf: $0) }
            }
        }
        return out
    }

    /// Values from little-endian bytes of this type (exact).
    public func decode(_ bytes: [UInt8]) -> [Float] {
        let n = bytes.count / byteWidth
        return bytes.withUnsafeBytes { b in
            (0..<n).map { i -> Float in
                switch self {
                case .f32: return Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                case .f16: return FloatCodecs.halfToFloat(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                case .bf16: return FloatCodecs.bfloat16ToFloat(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                }
            }
        }
    }
}

/// A quantized matrix exactly as `mx.quantize` returns it: the three arrays' bytes (`weight`, `scales`, and
/// `biases` for affine) for a weight of `rows` rows (all leading dimensions flattened) and `cols` columns.
///
/// - `packed`: uint32 `[rows, cols·bits/32]`, an LSB-first bitstream in little-endian words (see
///   ``MLXQuantization/pack(_:bits:)``).
/// - `scales`: `[rows, cols/groupSize]`; affine: floats of ``scaleType`` (the weight dtype); mxfp4/mxfp8: uint8
///   E8M0; nvfp4: uint8 E4M3 (MLX's arrays have dtype uint8, saved as safetensors `U8`).
/// - `biases`: affine only, `[rows, cols/groupSize]` of ``scaleType``.
public struct MLXQuantized: Equatable, Sendable {
    public let mode: MLXQuantMode
    public let groupSize: Int
    public let bits: Int
    public let rows: Int
    public let cols: Int
    /// Affine: the dtype of scales and biases (= the quantized weight's dtype). For the floating-point modes
    /// the scale bytes are uint8 and this is the type `mx.dequantize` returns by default (bfloat16).
    public let scaleType: MLXFloatType
    public let packed: [UInt32]
    /// Raw little-endian scale bytes (uint8 codes for the floating-point modes).
    public let scales: [UInt8]
    /// Raw little-endian bias bytes (affine only).
    public let biases: [UInt8]?

    public var packedCols: Int { cols * bits / 32 }
    public var groupsPerRow: Int { cols / groupSize }
    public var weightShape: [Int] { [rows, packedCols] }
    public var scalesShape: [Int] { [rows, groupsPerRow] }
    /// The safetensors dtype MLX writes for `scales` (and `biases`).
    public var scalesDType: DType { mode == .affine ? scaleType.dtype : .u8 }
    /// `weight`'s bytes as MLX saves them (little-endian uint32).
    public var weightBytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: packed.count * 4) { out, initialized in
            let raw = UnsafeMutableRawBufferPointer(out)
            for (i, w) in packed.enumerated() { raw.storeBytes(of: w.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            initialized = packed.count * 4
        }
    }

    /// Validates sizes and the mode/group/bits combination.
    public init(mode: MLXQuantMode, groupSize: Int, bits: Int, rows: Int, cols: Int, scaleType: MLXFloatType,
                packed: [UInt32], scales: [UInt8], biases: [UInt8]?) throws(ParityError) {
        try mode.validate(groupSize: groupSize, bits: bits)
        guard rows >= 0, cols > 0, cols % groupSize == 0 else {
            throw .usage("MLX quantization: the last dimension (\(cols)) must be divisible by the group size \(groupSize)")
        }
        let groups = rows * (cols / groupSize)
        let scaleWidth = mode == .affine ? scaleType.byteWidth : 1
        guard packed.count == rows * cols * bits / 32 else {
            throw .mismatch(file: "MLX quantized weight", reason: "has \(packed.count) uint32 words; [\(rows), \(cols)] at \(bits) bits needs \(rows * cols * bits / 32)")
        }
        guard scales.count == groups * scaleWidth else {
            throw .mismatch(file: "MLX quantized weight", reason: "scales have \(scales.count) bytes; \(groups) groups need \(groups * scaleWidth)")
        }
        if mode == .affine {
            guard let biases, biases.count == groups * scaleWidth else {
                throw .mismatch(file: "MLX quantized weight", reason: "affine quantization needs biases of \(groups * scaleWidth) bytes")
            }
        } else if biases != nil {
            throw .mismatch(file: "MLX quantized weight", reason: "\(mode.rawValue) quantization has no biases")
        }
        self.mode = mode
        self.groupSize = groupSize
        self.bits = bits
        self.rows = rows
        self.cols = cols
        self.scaleType = scaleType
        self.packed = packed
        self.scales = scales
        self.biases = biases
    }

    /// The arrays as they come out of a file (`<module>.weight`, `.scales`, `.biases`), checked as MLX checks
    /// them: uint32 weight `[..., cols·bits/32]`, scales `[..., cols/group]` of a float type (affine) or uint8,
    /// biases of the same shape (affine) or absent.
    public init(weight: RawTensor, scales: RawTensor, biases: RawTensor?, mode: MLXQuantMode,
                groupSize: Int? = nil, bits: Int? = nil) throws(ParityError) {
        let (g, b) = try mode.resolve(groupSize: groupSize, bits: bits)
        guard weight.dtype == .u32, let packedCols = weight.shape.last, weight.shape.count >= 2 else {
            throw .mismatch(file: weight.name, reason: "a quantized weight is uint32 with at least 2 dimensions; got \(weight.dtype.rawValue) \(weight.shape)")
        }
        let rows = weight.shape.dropLast().reduce(1, *)
        let cols = packedCols * 32 / b
        guard packedCols * 32 % b == 0, scales.shape == Array(weight.shape.dropLast()) + [cols / g], cols % g == 0 else {
            throw .mismatch(file: scales.name, reason: "scales \(scales.shape) do not match weight \(weight.shape) at \(b) bits, group \(g)")
        }
        let scaleType: MLXFloatType
        if mode == .affine {
            guard let t = MLXFloatType(scales.dtype) else {
                throw .mismatch(file: scales.name, reason: "affine scales must be float32, float16 or bfloat16; got \(scales.dtype.rawValue)")
            }
            guard let biases, biases.shape == scales.shape, biases.dtype == scales.dtype else {
                throw .mismatch(file: scales.name, reason: "affine quantization needs biases with the scales' shape \(scales.shape) and dtype \(scales.dtype.rawValue)")
            }
            scaleType = t
        } else {
            guard [.u8, .f8E8M0, .f8E4M3].contains(scales.dtype) else {
                throw .mismatch(file: scales.name, reason: "\(mode.rawValue) scales must be uint8; got \(scales.dtype.rawValue)")
            }
            guard biases == nil else { throw .mismatch(file: scales.name, reason: "\(mode.rawValue) quantization has no biases") }
            scaleType = .bf16
        }
        try self.init(mode: mode, groupSize: g, bits: b, rows: rows, cols: cols, scaleType: scaleType,
                      packed: weight.uint32Words(), scales: scales.bytes, biases: biases?.bytes)
    }

    /// Scale values as MLX's kernels use them: affine floats; E8M0 as `2^(e−127)` read through bfloat16 (e = 0 →
    /// 2^-127, e = 255 → +Inf); E4M3 decoded exactly (0x7F / 0xFF → NaN).
    public var scaleValues: [Float] {
        switch mode {
        case .affine: return scaleType.decode(scales)
        case .mxfp4, .mxfp8: return scales.map(MLXQuantization.e8m0ToFloat)
        case .nvfp4: return scales.map(FloatCodecs.f8E4M3ToFloat)
        }
    }

    /// Affine biases as floats (nil for the other modes).
    public var biasValues: [Float]? { biases.map { scaleType.decode($0) } }

    /// The codes (0 ..< 2^bits) of row `row`, unpacked.
    public func codes(row: Int) -> [UInt8] {
        let start = row * packedCols
        return MLXQuantization.unpack(Array(packed[start..<(start + packedCols)]), bits: bits, count: cols)
    }
}

/// `mx.quantize`, `mx.dequantize` and `mx.quantized_matmul` as MLX's CPU stream computes them.
public enum MLXQuantization {
    /// `mx.quantize(w, group_size, bits, mode)` for a `[rows, cols]` weight of dtype `dtype`. The values are first
    /// rounded to `dtype` (what `mx.array(w).astype(dtype)` does), so pass float16/bfloat16 weights as their exact
    /// float values. Throws `ParityError.usage` for an unsupported mode/group/bits combination or a last
    /// dimension not divisible by the group size.
    public static func quantize(_ w: [Float], rows: Int, cols: Int, dtype: MLXFloatType = .f32, mode: MLXQuantMode = .affine,
                                groupSize: Int? = nil, bits: Int? = nil) throws(ParityError) -> MLXQuantized {
        let (g, b) = try mode.resolve(groupSize: groupSize, bits: bits)
        guard rows >= 0, cols > 0 else { throw .usage("MLX quantization needs a matrix with at least one column; got [\(rows), \(cols)]") }
        guard cols % g == 0 else {
            throw .usage("MLX \(mode.rawValue) quantization: the last dimension (\(cols)) must be divisible by the group size \(g)")
        }
        guard w.count == rows * cols else { throw .usage("MLX quantization: \(w.count) values do not fill [\(rows), \(cols)]") }
        let input = dtype == .f32 ? w : w.map(dtype.round)
        switch mode {
        case .affine:
            let r = Kernels.affineQuantize(input, groupSize: g, bits: b)
            return try MLXQuantized(mode: mode, groupSize: g, bits: b, rows: rows, cols: cols, scaleType: dtype,
                                    packed: pack(r.codes, bits: b), scales: dtype.encode(r.scales), biases: dtype.encode(r.biases))
        case .mxfp4, .mxfp8, .nvfp4:
            let r = Kernels.fpQuantize(input, mode: mode, dtype: dtype)
            return try MLXQuantized(mode: mode, groupSize: g, bits: b, rows: rows, cols: cols, scaleType: .bf16,
                                    packed: pack(r.codes, bits: b), scales: r.scales, biases: nil)
        }
    }

    /// `mx.dequantize(...)`: `[rows, cols]` values of `outputType`, which defaults as MLX's does (affine: the
    /// scales' dtype; floating-point modes: bfloat16). Affine computes `scale·q + bias` as two separately
    /// rounded operations in the scales' dtype (MLX's CPU multiply then add, no FMA), then converts; the
    /// floating-point modes compute `value · scale` rounded to `outputType`.
    public static func dequantize(_ q: MLXQuantized, outputType: MLXFloatType? = nil) -> [Float] {
        Kernels.dequantize(q, outputType: outputType)
    }

    /// `mx.quantized_matmul(x, w, scales, biases, transpose=True, group_size, bits, mode)` for `x` `[n, cols]` of
    /// dtype `xType`: returns `[n, w.rows]`. The compute type is MLX's: affine promotes `xType` with the scales'
    /// dtype; the floating-point modes use `xType`. In float32 it reproduces MLX's CPU kernel exactly — one float
    /// accumulator per output, over k in order: affine `sum += x·(scale·q + bias)`; fp modes per group
    /// `g += x·v`, then `sum += scale·g` — no FMA. In float16/bfloat16 every one of those operations is rounded
    /// to the type, as MLX's half kernels (the same loops in `T`) do.
    public static func quantizedMatmul(x: [Float], rows n: Int, weight q: MLXQuantized, xType: MLXFloatType = .f32) throws(ParityError) -> [Float] {
        guard x.count == n * q.cols else {
            throw .usage("quantized_matmul: x has \(x.count) values; [\(n), \(q.cols)] expected")
        }
        return Kernels.quantizedMatmul(x: xType.rounded(x), rows: n, weight: q, xType: xType)
    }

    /// ``quantizedMatmul(x:rows:weight:xType:)`` by its plain element loops only (no CParityKernels): the reference
    /// the SIMD kernels must equal bit for bit (F16KernelTests, KernelEquivalenceTests).
    public static func quantizedMatmulReference(x: [Float], rows n: Int, weight q: MLXQuantized, xType: MLXFloatType = .f32) throws(ParityError) -> [Float] {
        guard x.count == n * q.cols else {
            throw .usage("quantized_matmul: x has \(x.count) values; [\(n), \(q.cols)] expected")
        }
        return Kernels.quantizedMatmulScalar(x: xType == .f32 ? x : x.map(xType.round), rows: n, weight: q, xType: xType)
    }

    /// ``dequantize(_:outputType:)`` by its plain element loop only (the reference for the C kernel).
    public static func dequantizeReference(_ q: MLXQuantized, outputType: MLXFloatType? = nil) -> [Float] {
        Kernels.dequantizeScalar(q, outputType: outputType)
    }

    /// `nn.QuantizedLinear` without its bias, from the module's stored tensors (float32 `x` `[rows, inFeatures]`).
    public static func quantizedMatmul(x: [Float], rows: Int, weight: RawTensor, scales: RawTensor, biases: RawTensor?,
                                       outFeatures: Int, inFeatures: Int, mode: String, groupSize: Int, bits: Int) throws(ParityError) -> [Float] {
        let q = try MLXQuantized(weight: weight, scales: scales, biases: biases, mode: MLXQuantMode.parse(mode),
                                 groupSize: groupSize, bits: bits)
        guard q.rows == outFeatures, q.cols == inFeatures else {
            throw .mismatch(file: weight.name, reason: "quantized weight \(weight.shape) unpacks to [\(q.rows), \(q.cols)]; the layer is [\(outFeatures), \(inFeatures)]")
        }
        return try quantizedMatmul(x: x, rows: rows, weight: q)
    }

    // MARK: Packing

    /// Packs codes (each < 2^bits) into MLX's layout: one LSB-first bitstream stored as little-endian uint32
    /// words — element k occupies stream bits [k·bits, (k+1)·bits). For bits 1, 2, 4, 8 that is 32/bits elements
    /// per word; 3- and 5-bit codes come 8 per 3 / 5 bytes and 6-bit codes 4 per 3 bytes, crossing byte and word
    /// boundaries. `codes.count · bits` must be a multiple of 32.
    public static func pack(_ codes: [UInt8], bits: Int) -> [UInt32] {
        precondition((1...8).contains(bits) && codes.count * bits % 32 == 0, "pack: \(codes.count) codes of \(bits) bits do not fill whole words")
        var words = [UInt32](repeating: 0, count: codes.count * bits / 32)
        let mask = UInt64(1) << UInt64(bits) - 1
        var acc: UInt64 = 0, filled = 0, out = 0
        for c in codes {
            acc |= (UInt64(c) & mask) << UInt64(filled)
            filled += bits
            if filled >= 32 {
                words[out] = UInt32(truncatingIfNeeded: acc)
                out += 1
                acc >>= 32
                filled -= 32
            }
        }
        return words
    }

    /// The inverse of ``pack(_:bits:)``: the first `count` codes of the stream.
    public static func unpack(_ words: [UInt32], bits: Int, count: Int) -> [UInt8] {
        precondition((1...8).contains(bits) && count * bits <= words.count * 32, "unpack: \(words.count) words hold fewer than \(count) codes")
        var out = [UInt8](repeating: 0, count: count)
        let mask = UInt64(1) << UInt64(bits) - 1
        var acc: UInt64 = 0, available = 0, next = 0
        for i in 0..<count {
            if available < bits {
                acc |= UInt64(words[next]) << UInt64(available)
                next += 1
                available += 32
            }
            out[i] = UInt8(truncatingIfNeeded: acc & mask)
            acc >>= UInt64(bits)
            available -= bits
        }
        return out
    }

    // MARK: Scalar formats

    /// E2M1 values by code, MLX's `FP4_LUT`: {0, .5, 1, 1.5, 2, 3, 4, 6, −0, −.5, …, −6}.
    public static let fp4Values: [Float] = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6]

    /// MLX's `detail::ToFP8` (float → OCP E4M3 "fn"): round to nearest even; magnitudes from 448 up (its
    /// threshold `543 << 21` is the bit pattern of 448.0), NaN and Inf saturate to 0x7E (448); the sign is kept.
    public static func floatToE4M3(_ f: Float) -> UInt8 {
        var bits = f.bitPattern
        let sign = bits & 0x8000_0000
        bits ^= sign
        let code: UInt8
        if bits >= 543 << 21 {
            code = 0x7E
        } else if bits < 121 << 23 {
            // Below 2^-6: add 2^(141-127) = 16384 so the FPU rounds the value at E4M3's subnormal spacing.
            let denorm: UInt32 = 141 << 23
            let low = (Float(bitPattern: bits) + Float(bitPattern: denorm)).bitPattern &- denorm
            code = UInt8(truncatingIfNeeded: low)
        } else {
            let mantissaOdd = (bits >> 20) & 1
            let rebias = UInt32(bitPattern: Int32(7 - 127)) << 23
            let high = bits &+ rebias &+ 0x7FFFF &+ mantissaOdd
            code = UInt8(truncatingIfNeeded: high >> 20)
        }
        return code | UInt8(truncatingIfNeeded: sign >> 24)
    }

    /// An E8M0 scale as MLX's kernels read it: the byte shifted into a bfloat16 exponent, `2^(e−127)`, with
    /// e = 0 read as 2^-127 (bfloat16 0x0040) and e = 255 as +Inf.
    public static func e8m0ToFloat(_ e: UInt8) -> Float {
        FloatCodecs.bfloat16ToFloat(e == 0 ? 0x0040 : UInt16(e) << 7)
    }
}

// MARK: String-keyed entry points (config.json's "mode" strings, RawTensor in and out)

extension MLXQuantization {
    /// `quantization_params_from_mode`'s defaults for a mode string, or nil for an unknown mode.
    public static func defaults(mode: String) -> (groupSize: Int, bits: Int)? {
        MLXQuantMode(rawValue: mode).map { ($0.defaultGroupSize, $0.defaultBits) }
    }

    /// Throws `ParityError.usage` unless `mx.quantize` accepts (mode, group size, bits).
    public static func validate(mode: String, groupSize: Int, bits: Int) throws(ParityError) {
        try MLXQuantMode.parse(mode).validate(groupSize: groupSize, bits: bits)
    }

    /// `nn.QuantizedLinear.from_linear` for one module: `mx.quantize` of a `[rows, cols]` weight of dtype `dtype`
    /// (f32, f16 or bf16), returned as the tensors mlx-lm saves: `<module>.weight` (U32), `<module>.scales`
    /// (the weight dtype for affine, U8 otherwise) and, for affine, `<module>.biases`.
    public static func quantizeModule(_ module: String, values: [Float], rows: Int, cols: Int, dtype: DType,
                                      mode: String, groupSize: Int, bits: Int) throws(ParityError) -> [RawTensor] {
        guard let type = MLXFloatType(dtype) else {
            throw .usage("MLX quantizes float32, float16 or bfloat16 weights, not \(dtype.rawValue)")
        }
        let q = try quantize(values, rows: rows, cols: cols, dtype: type, mode: MLXQuantMode.parse(mode), groupSize: groupSize, bits: bits)
        var out = [RawTensor(name: module + ".weight", dtype: .u32, shape: q.weightShape, bytes: q.weightBytes),
                   RawTensor(name: module + ".scales", dtype: q.scalesDType, shape: q.scalesShape, bytes: q.scales)]
        if let biases = q.biases {
            out.append(RawTensor(name: module + ".biases", dtype: q.scalesDType, shape: q.scalesShape, bytes: biases))
        }
        return out
    }
}
