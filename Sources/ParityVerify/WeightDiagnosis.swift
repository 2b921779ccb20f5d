import ParityCore
import ParityEngine
import ParityFormats

/// Names the conversion mistake behind a failing tensor from the weights alone: each known mistake is applied to
/// the reference, and a stored tensor that equals the result — exactly, after the storage type's rounding, for
/// f32/f16/bf16; within the type's quantization error for block types — names it. This is stronger evidence than
/// fitting activations, and it works where activations cannot tell (a permutation of rows that are all small).
enum WeightDiagnosis {
    /// The stored values as the runtime decodes them, in stored row-major order, with the raw 16-bit words when
    /// the type is f16/bf16 (to test a dtype read as the other one).
    struct Stored {
        var values: [Float]
        var shape: [Int]
        var rounding: (Float) -> Float
        var exact: Bool
        var raw16: (bits: [UInt16], isHalf: Bool)?
    }

    static func stored(_ source: StoredWeightSource) -> Stored? {
        func dense(_ values: [Float], _ shape: [Int], _ dtype: DType, _ bytes: [UInt8]?) -> Stored {
            switch dtype {
            case .f16, .bf16:
                let isHalf = dtype == .f16
                let bits = bytes.map { b in (0..<(b.count / 2)).map { UInt16(b[2 * $0]) | UInt16(b[2 * $0 + 1]) << 8 } }
                return Stored(values: values, shape: shape, rounding: isHalf ? { FloatCodecs.halfToFloat(FloatCodecs.floatToHalf($0)) } : { FloatCodecs.bfloat16ToFloat(FloatCodecs.floatToBFloat16($0)) },
                              exact: true, raw16: bits.map { ($0, isHalf) })
            default:
                return Stored(values: values, shape: shape, rounding: { $0 }, exact: true, raw16: nil)
            }
        }
        switch source {
        case let .gguf(file, t):
            guard let values = try? file.values(t) else { return nil }
            switch t.type {
            case .f32: return dense(values, t.shape, .f32, nil)
            case .f16: return dense(values, t.shape, .f16, try? file.rawBytes(t))
            case .bf16: return dense(values, t.shape, .bf16, try? file.rawBytes(t))
            default: return Stored(values: values, shape: t.shape, rounding: { $0 }, exact: false, raw16: nil)
            }
        case let .safetensors(file, e):
            guard let t = try? file.tensor(e) else { return nil }
            return dense(t.data, e.shape, e.dtype, try? file.rawBytes(e))
        case let .mlxArray(raw):
            guard let values = raw.floats() else { return nil }
            return dense(values, raw.shape, raw.dtype, raw.bytes)
        case let .mlxQuantized(w, s, b, p):
            guard let mode = MLXQuantMode(rawValue: p.mode),
                  let q = try? MLXQuantized(weight: w, scales: s, biases: b, mode: mode, groupSize: p.groupSize, bits: p.bits) else { return nil }
            return Stored(values: MLXQuantization.dequantize(q, outputType: .f32), shape: [q.rows, q.cols], rounding: { $0 }, exact: false, raw16: nil)
        }
    }

    /// A candidate: the reference rearranged the way a mistake would store it, in the stored order.
    struct Hypothesis { let id: String; let message: String; let values: [Float] }

    static func diagnose(_ binding: RuntimeWeight, reference: [Float]) -> String? {
        guard let source = binding.source, let s = stored(source), s.values.count == reference.count, !reference.isEmpty else { return nil }
        let ref = Tensor(shape: binding.referenceShape, data: reference)
        let expectedStored: [Float] = binding.layout.referenceIndexOfStored().map { m in m.map { reference[$0] } } ?? reference
        var hypotheses: [Hypothesis] = []
        let name = binding.fileName
        // The reference in its own (PyTorch) order where the runtime needs another layout: a missing permutation.
        if !binding.layout.isIdentity {
            hypotheses.append(Hypothesis(id: binding.referenceShape.count == 4 ? "conv-layout" : "flatten-order",
                                         message: "\(name) holds the reference in PyTorch's own order; the runtime reads it as \(binding.layout.description)", values: reference))
        }
        if ref.rank == 2 {
            // The matrix the runtime expects, written transposed; and the same without the runtime's column permutation.
            let e = Tensor(shape: binding.referenceShape, data: expectedStored).permuted([1, 0])
            hypotheses.append(Hypothesis(id: "transposed", message: "\(name) holds the transpose of the matrix the runtime expects ([in, out] instead of [out, in])", values: e.data))
            if !binding.layout.isIdentity {
                hypotheses.append(Hypothesis(id: "transposed", message: "\(name) holds the transpose of \(binding.referenceName) in PyTorch's column order", values: ref.permuted([1, 0]).data))
            }
        }
        if ref.rank == 4 {
            // A channels-last kernel [out, kh, kw, in] (MLX, TensorFlow) reshaped to fit a runtime that reads
            // [out, in, kh, kw] (ggml ne [KW, KH, IC, OC], PyTorch).
            if binding.layout.isIdentity {
                hypotheses.append(Hypothesis(id: "conv-layout", message: "\(name) holds a channels-last [out, kh, kw, in] kernel reshaped to the runtime's [out, in, kh, kw] (\(binding.layout.description))",
                                             values: ref.permuted([0, 2, 3, 1]).data))
            }
            let swapped = ref.permuted([0, 1, 3, 2])
            let flipped = flip(ref)
            for (id, text, t) in [("kernel-swapped-hw", "kernel height and width swapped", swapped), ("kernel-flipped", "kernel flipped (rotated 180°: correlation vs convolution)", flipped)] {
                hypotheses.append(Hypothesis(id: id, message: "\(name): \(text)", values: rearrangeToStored(t.data, binding)))
            }
        }
        let isBias = binding.referenceName.hasSuffix(".bias")
        hypotheses.append(Hypothesis(id: isBias ? "bias-missing" : "missing", message: "\(name) is all zeros (the parameter was not written)", values: [Float](repeating: 0, count: reference.count)))
        if isBias {
            hypotheses.append(Hypothesis(id: "bias-doubled", message: "\(name) holds twice the reference (added twice)", values: expectedStored.map { 2 * $0 }))
        }
        for h in hypotheses where matches(s, h.values) {
            return "[\(h.id)] \(h.message)"
        }
        // f16 bytes labelled bf16 or the reverse: the raw words are the other type's rounding of the reference.
        if let raw = s.raw16, raw.bits.count == expectedStored.count {
            let other = expectedStored.map { raw.isHalf ? FloatCodecs.floatToBFloat16($0) : FloatCodecs.floatToHalf($0) }
            if other == raw.bits {
                return "[dtype-\(raw.isHalf ? "bf16-as-f16" : "f16-as-bf16")] \(name) holds \(raw.isHalf ? "bf16" : "f16") bytes labelled \(raw.isHalf ? "f16" : "bf16")"
            }
        }
        // A constant factor: every element is c times the reference (after rounding).
        if let c = constantFactor(s.values, expectedStored), matches(s, expectedStored.map { c * $0 }) {
            return "[scale] \(name) is the reference times \(formatNumber(Double(c)))"
        }
        // Rows or channels permuted: every stored row is some reference row, not in order.
        if s.shape.count >= 2, let p = permutation(s, expectedStored, rowLength: s.shape.last!) {
            return "[rows-permuted] \(name): rows are the reference's rows in another order (first moved: stored row \(p.0) holds reference row \(p.1))"
        }
        // A vector in another order (a bias permuted along with its layer's rows).
        if s.shape.count == 1, let p = permutation(s, expectedStored, rowLength: 1) {
            return "[elements-permuted] \(name): the reference's values in another order (first moved: stored element \(p.0) holds reference element \(p.1)), as when a bias is permuted with its layer's rows"
        }
        return nil
    }

    /// Whether stored values equal `candidate` (in the stored order): exactly after the type's rounding for dense
    /// types; for block types, a relative L2 error below 3 % while the actual one (against the expected layout)
    /// is at least 4× larger — a quantized copy of the rearranged reference.
    static func matches(_ s: Stored, _ candidate: [Float]) -> Bool {
        guard candidate.count == s.values.count else { return false }
        if s.exact {
            for i in 0..<candidate.count where s.rounding(candidate[i]).bitPattern != s.values[i].bitPattern && !(candidate[i].isNaN && s.values[i].isNaN) {
                return false
            }
            return true
        }
        var num = 0.0, den = 0.0
        for i in 0..<candidate.count {
            let d = Double(s.values[i]) - Double(candidate[i])
            num += d * d
            den += Double(candidate[i]) * Double(candidate[i])
        }
        return den > 0 && (num / den).squareRoot() < 0.03
    }

    static func constantFactor(_ a: [Float], _ b: [Float]) -> Float? {
        var dot = 0.0, bb = 0.0
        for i in 0..<a.count { dot += Double(a[i]) * Double(b[i]); bb += Double(b[i]) * Double(b[i]) }
        guard bb > 0 else { return nil }
        let c = Float(dot / bb)
        guard c.isFinite, c != 0, abs(c - 1) > 1e-3 else { return nil }
        // Snap to a simple factor when close (×2, ×0.5, ×−1, ×255 …): the exact test decides anyway.
        let rounded = (c * 64).rounded() / 64
        return abs(rounded - c) < 1e-3 * abs(c) ? rounded : c
    }

    static func permutation(_ s: Stored, _ expected: [Float], rowLength: Int) -> (Int, Int)? {
        let rows = expected.count / rowLength
        guard rows > 1, s.exact else { return nil }
        var index: [[UInt32]: [Int]] = [:]
        for r in 0..<rows { index[(0..<rowLength).map { s.rounding(expected[r * rowLength + $0]).bitPattern }, default: []].append(r) }
        var firstMoved: (Int, Int)?
        for r in 0..<rows {
            let key = (0..<rowLength).map { s.values[r * rowLength + $0].bitPattern }
            guard var candidates = index[key], !candidates.isEmpty else { return nil }
            let source = candidates.contains(r) ? r : candidates.removeFirst()
            index[key] = candidates.filter { $0 != source }
            if source != r && firstMoved == nil { firstMoved = (r, source) }
        }
        return firstMoved
    }

    static func flip(_ t: Tensor) -> Tensor {
        let (o, i, kh, kw) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
        var out = t
        for a in 0..<o { for b in 0..<i { for y in 0..<kh { for x in 0..<kw {
            out.data[((a * i + b) * kh + y) * kw + x] = t.data[((a * i + b) * kh + (kh - 1 - y)) * kw + (kw - 1 - x)]
        } } } }
        return out
    }

    /// Reference-layout values moved into the runtime's stored order.
    static func rearrangeToStored(_ values: [Float], _ binding: RuntimeWeight) -> [Float] {
        binding.layout.referenceIndexOfStored().map { m in m.map { values[$0] } } ?? values
    }
}
