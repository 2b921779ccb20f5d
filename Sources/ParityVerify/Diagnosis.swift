import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// A conversion mistake that explains a failing layer: rearranging or correcting one stored parameter this way
/// makes the layer pass on its golden input.
public struct Diagnosis: Sendable {
    /// Stable identifier: transposed, flatten-order, kernel-swapped-hw, kernel-flipped, conv-layout,
    /// dtype-f16-as-bf16, dtype-bf16-as-f16, bias-missing, bias-doubled, scale; for transformer nodes also
    /// qk-rope-permuted, qk-rope-unpermuted, qk-swapped, norm-one-plus, kv-heads-tiled, kv-heads-expanded, and for how
    /// the runtime computes the file rope-convention, rope-theta, rms-epsilon, output-tied (Diagnosis+Graph.swift); for
    /// BERT nodes norm-weight-bias-swapped, qk-/qv-/kv-swapped, token-type-missing, position-shifted and the runtime's
    /// layer-norm-epsilon and gelu-form (Diagnosis+Bert.swift).
    public let id: String
    public let layer: String
    public let parameter: String
    /// What is wrong and what fixes it, with the before/after numbers.
    public let message: String
    public let before: LayerMetrics?
    public let after: LayerMetrics
}

/// Tries the mistakes people make when converting, on the parameters of one failing layer. Each hypothesis is
/// tested by running only that layer, on its golden input, with the parameter rearranged; a hypothesis is
/// reported only if it makes the layer pass its tolerance. The transformer mistakes (the Q/K RoPE permutation,
/// Q and K exchanged, RMSNorm conventions) are tested on graph nodes: Diagnosis+Graph.swift.
public enum Diagnoser {
    /// What `diagnose(layer:…)` tests, for reports.
    public static let imageMistakes = "transposed, flatten order, kernel axes or flip, conv layout, 16-bit dtype, bias missing or doubled, scale"
    /// What `diagnose(node:…)` tests on a transformer's projections and norms, for reports.
    public static let transformerMistakes = "transposed, Q/K rows in llama.cpp's RoPE order or un-permuted twice, Q and K exchanged, RMSNorm weight stored as w − 1 or 1 + w, a projection's global scale, K/V heads expanded to one per query head (tiled or in repeat_kv order)"
    struct Candidate {
        let id: String
        let parameter: String
        let describe: (_ before: String, _ after: String) -> String
        let override: Tensor
    }

    public static func diagnose(layer: LayerSpec, engine: DiagnosableEngine, input: Tensor, golden: Tensor,
                                tolerance: Tolerance, layers: [LayerSpec]) -> Diagnosis? {
        let stored = engine.storedParameters(of: layer)
        guard !stored.isEmpty else { return nil }
        let before: LayerMetrics? = (try? engine.apply(layer, to: input)).flatMap { $0.shape == golden.shape ? LayerMetrics.compare($0.data, golden.data) : nil }
        var candidates = structural(stored, layer: layer, layers: layers)
        candidates += fitted(stored, layer: layer, engine: engine, input: input, golden: golden)
        var best: (Candidate, LayerMetrics)?
        for candidate in candidates {
            guard let out = try? engine.overriding([candidate.parameter: candidate.override]).apply(layer, to: input), out.shape == golden.shape else { continue }
            let m = LayerMetrics.compare(out.data, golden.data)
            guard m.isFinite, tolerance.violations(m).isEmpty else { continue }
            if best == nil || m.relL2 < best!.1.relL2 { best = (candidate, m) }
        }
        guard let (candidate, after) = best else { return nil }
        let beforeText = before.map { "max abs \(formatNumber($0.maxAbs))" } ?? "a layer that could not run"
        return Diagnosis(id: candidate.id, layer: layer.name, parameter: candidate.parameter,
                         message: candidate.describe(beforeText, "max abs \(formatNumber(after.maxAbs))"), before: before, after: after)
    }

    /// Rearrangements of stored values: transposes, flatten orders, kernel axes, misread 16-bit dtypes.
    static func structural(_ stored: [StoredParameter], layer: LayerSpec, layers: [LayerSpec]) -> [Candidate] {
        var out: [Candidate] = []
        for p in stored where p.role == .weight {
            let v = p.values, e = p.expectedShape
            if v.rank == 2 && e.count == 2 && v.shape == [e[1], e[0]] {
                out.append(Candidate(id: "transposed", parameter: p.name, describe: {
                    "\(p.name) is stored transposed (\(v.shape), the runtime expects \(e)); transposing it brings \($0) → \($1)"
                }, override: v.permuted([1, 0])))
            }
            if v.rank == 2 && v.shape == e, e[0] == e[1] {
                out.append(Candidate(id: "transposed", parameter: p.name, describe: { "\(p.name) is transposed; transposing it brings \($0) → \($1)" },
                                     override: v.permuted([1, 0])))
            }
            if v.rank == 2 && v.shape == e && e[0] != e[1] {
                // The [in, out] matrix written in that order and then reshaped to the [out, in] the runtime wants.
                out.append(Candidate(id: "transposed", parameter: p.name, describe: {
                    "\(p.name) holds the [in, out] matrix (\(e[1])×\(e[0])) reshaped to \(e) without transposing; transposing its values brings \($0) → \($1)"
                }, override: Tensor(shape: [e[1], e[0]], data: v.data).permuted([1, 0])))
            }
            if v.rank == 2, v.shape == e, let map = ChannelsLast.featureMap(before: layer.name, in: layers, features: e[1]) {
                out.append(Candidate(id: "flatten-order", parameter: p.name, describe: {
                    "\(p.name) columns are in (c, h, w) order; reordering to (h, w, c) brings \($0) → \($1)"
                }, override: ChannelsLast.flattenedToChannelsLast(v, map: map)))
                out.append(Candidate(id: "flatten-order", parameter: p.name, describe: {
                    "\(p.name) columns are in (h, w, c) order; reordering to (c, h, w) brings \($0) → \($1)"
                }, override: ChannelsLast.flattenedToChannelsFirst(v, map: map)))
            }
            if let (a, b) = p.spatialAxes, e.count == 4 {
                if v.shape == e {
                    var swap = Array(0..<4); swap.swapAt(a, b)
                    out.append(Candidate(id: "kernel-swapped-hw", parameter: p.name, describe: {
                        "\(p.name) has the kernel's height and width exchanged; swapping them back brings \($0) → \($1)"
                    }, override: v.permuted(swap)))
                    out.append(Candidate(id: "kernel-flipped", parameter: p.name, describe: {
                        "\(p.name) is flipped in space (convolution vs cross-correlation); flipping it back brings \($0) → \($1)"
                    }, override: flipped(v, axes: [a, b])))
                }
                out += layoutCandidates(p, spatial: (a, b))
            }
            if let raw = p.raw16, raw.shape == v.shape {
                let other: DType = raw.dtype == .f16 ? .bf16 : .f16
                if let values = raw.bytes.withUnsafeBytes({ ElementCodec.decode($0, dtype: other, count: raw.elementCount) }) {
                    let id = other == .f16 ? "dtype-f16-as-bf16" : "dtype-bf16-as-f16"
                    let (label, real) = other == .f16 ? ("BF16", "f16") : ("F16", "bf16")
                    var t = Tensor(shape: v.shape, data: values)
                    if v.shape != e, v.rank == 2, v.shape == [e[1], e[0]] { t = t.permuted([1, 0]) }
                    if t.shape == e {
                        out.append(Candidate(id: id, parameter: p.name, describe: {
                            "\(p.name) holds \(real) bytes labelled \(label); reading them as \(real) brings \($0) → \($1)"
                        }, override: t))
                    }
                }
            }
        }
        for p in stored where p.role == .bias && p.values.shape == p.expectedShape && p.values.data.contains(where: { $0 != 0 }) {
            out.append(Candidate(id: "bias-doubled", parameter: p.name, describe: {
                "\(p.name) is twice what it should be; halving it brings \($0) → \($1)"
            }, override: Tensor(shape: p.values.shape, data: p.values.data.map { $0 / 2 })))
        }
        return out
    }

    /// Corrections fitted from the layer's golden output: a missing bias (a per-channel constant offset) and a
    /// wrong global scale of the weight. Fitting uses the golden output, but a candidate is still only reported
    /// if the corrected layer passes — and a fitted bias only where the stored one is all zeros.
    static func fitted(_ stored: [StoredParameter], layer: LayerSpec, engine: DiagnosableEngine, input: Tensor, golden: Tensor) -> [Candidate] {
        var out: [Candidate] = []
        guard let bias = stored.first(where: { $0.role == .bias && $0.values.shape == $0.expectedShape }) else { return out }
        let zeroBias = Tensor(shape: bias.values.shape, data: [Float](repeating: 0, count: bias.values.count))
        guard let unbiased = try? engine.overriding([bias.name: zeroBias]).apply(layer, to: input), unbiased.shape == golden.shape else { return out }
        let channels = bias.values.count
        // Output channel of element i: axis 1 of [N, C, ...] (NCHW or [N, out]).
        let perChannel = golden.count / max(golden.shape[0], 1) / channels
        func channel(_ i: Int) -> Int { (i / perChannel) % channels }
        if bias.values.data.allSatisfy({ $0 == 0 }) {
            var sums = [Double](repeating: 0, count: channels), counts = [Double](repeating: 0, count: channels)
            for i in 0..<golden.count { sums[channel(i)] += Double(golden.data[i] - unbiased.data[i]); counts[channel(i)] += 1 }
            let fittedBias = Tensor(shape: bias.values.shape, data: (0..<channels).map { Float(sums[$0] / max(counts[$0], 1)) })
            out.append(Candidate(id: "bias-missing", parameter: bias.name, describe: {
                "\(bias.name) is all zeros: the output is off by a per-channel constant; adding the fitted bias brings \($0) → \($1)"
            }, override: fittedBias))
        }
        if let weight = stored.first(where: { $0.role == .weight && $0.values.shape == $0.expectedShape }) {
            // golden ≈ s·(W x) + b  →  s = <Wx, golden − b> / <Wx, Wx>.
            var num = 0.0, den = 0.0
            for i in 0..<golden.count {
                let wx = Double(unbiased.data[i]), target = Double(golden.data[i]) - Double(bias.values.data[channel(i)])
                num += wx * target
                den += wx * wx
            }
            if den > 0 {
                let s = num / den
                if abs(s - 1) > 0.01 {
                    out.append(Candidate(id: "scale", parameter: weight.name, describe: {
                        "\(weight.name) is scaled by \(String(format: "%.4g", 1 / s)); multiplying it by \(String(format: "%.4g", s)) brings \($0) → \($1)"
                    }, override: Tensor(shape: weight.values.shape, data: weight.values.data.map { Float(Double($0) * s) })))
                }
            }
        }
        return out
    }

    /// A convolution weight whose values are in another axis order than the runtime's — whether the file
    /// keeps that order's shape (PyTorch's [out, in, kh, kw] where mlx.nn wants [out, kh, kw, in]) or the values
    /// were reshaped to the expected shape afterwards, which is the usual form of the mistake (the loader's shape
    /// check then passes). Each hypothesis reads the stored element order as the expected axes in another
    /// order and moves them back. The frameworks' own layouts are tried first, so that among hypotheses giving the
    /// same values (possible when an axis has size 1) the one reported is a layout someone actually writes.
    static func layoutCandidates(_ p: StoredParameter, spatial: (Int, Int)) -> [Candidate] {
        let e = p.expectedShape, v = p.values
        guard e.count == 4, v.count == e.reduce(1, *) else { return [] }
        let labels = axisLabels(rank: 4, spatial: spatial)
        let named: [([String], String)] = [(["out", "in", "kh", "kw"], "PyTorch's and ggml's [out, in, kh, kw]"),
                                           (["out", "kh", "kw", "in"], "MLX's [out, kh, kw, in]"),
                                           (["kh", "kw", "in", "out"], "TensorFlow/Keras's [kh, kw, in, out]")]
        // order[k] = the expected axis stored at position k.
        var orders: [[Int]] = named.compactMap { layout, _ in
            let order = layout.compactMap { labels.firstIndex(of: $0) }
            return order.count == 4 ? order : nil
        }
        for order in permutations([0, 1, 2, 3]) where !orders.contains(order) { orders.append(order) }
        var swapOnly = Array(0..<4); swapOnly.swapAt(spatial.0, spatial.1)
        var out: [Candidate] = []
        for order in orders where order != [0, 1, 2, 3] && !(order == swapOnly && v.shape == e) {
            let storedShape = order.map { e[$0] }
            let inverse = (0..<4).map { axis in order.firstIndex(of: axis)! }
            let override = Tensor(shape: storedShape, data: v.data).permuted(inverse)
            let storedLabels = order.map { labels[$0] }
            let name = named.first { $0.0 == storedLabels }.map { " (\($0.1.components(separatedBy: " [").first!))" } ?? ""
            let how = v.shape == storedShape ? "with that shape, \(v.shape)" : "reshaped to \(v.shape) to fit"
            out.append(Candidate(id: "conv-layout", parameter: p.name, describe: {
                "\(p.name) has its values in [\(storedLabels.joined(separator: ", "))] order\(name), \(how); the runtime expects "
                    + "[\(labels.joined(separator: ", "))]; moving the axes back brings \($0) → \($1)"
            }, override: override))
        }
        return out
    }

    static func flipped(_ t: Tensor, axes: [Int]) -> Tensor {
        var strides = [Int](repeating: 1, count: t.rank)
        for i in stride(from: t.rank - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * t.shape[i + 1] }
        var out = t
        for i in 0..<t.count {
            var rest = i, source = 0
            for d in 0..<t.rank {
                var index = rest / strides[d]
                rest %= strides[d]
                if axes.contains(d) { index = t.shape[d] - 1 - index }
                source += index * strides[d]
            }
            out.data[i] = t.data[source]
        }
        return out
    }

    static func axisLabels(rank: Int, spatial: (Int, Int)) -> [String] {
        (0..<rank).map { $0 == 0 ? "out" : $0 == spatial.0 ? "kh" : $0 == spatial.1 ? "kw" : "in" }
    }

    static func permutations(_ items: [Int]) -> [[Int]] {
        guard items.count > 1 else { return [items] }
        return items.indices.flatMap { i -> [[Int]] in
            var rest = items
            let head = rest.remove(at: i)
            return permutations(rest).map { [head] + $0 }
        }
    }
}
