import ParityCore
import ParityModels

extension TolerancePolicy {
    /// Exact: values computed from integers only (the causal mask from the 0/1 attention_mask, cache positions).
    static let exactFromIntegers = Tolerance(
        maxRelL2: 0, maxAbsOverScale: 0,
        reason: "computed from integer inputs alone (0/1 mask → 0 or float32's lowest value; arange): no rounding anywhere, so any difference is a wrong value")

    /// Exact: a row lookup in float32 weights copies them.
    static let exactLookup = Tolerance(
        maxRelL2: 0, maxAbsOverScale: 0,
        reason: "an embedding lookup copies rows of the float32 table: the output is the stored weights themselves, bit for bit")

    /// RoPE's cos/sin tables, computed in float32 from integer positions.
    static let rotaryTables = Tolerance(
        maxRelL2: 1e-6, maxAbsOverScale: 4e-6,
        reason: "cos/sin of float32 angles inv_freq·position (|angle| < T = 32 rad, float32 spacing there 3.8e-6): libm's and PyTorch's "
            + "vectorised cos/sin and pow may differ in the last bit of the frequency or the result; 4e-6 absolute (values are ≤ 1) is one "
            + "spacing of the largest angle, rel L2 1e-6 is what a few such last-bit differences amount to")

    /// f32 weights and compute through a transformer: only the order of float32 operations differs from PyTorch.
    static func transformerFloat32(_ graph: ModelGraph) -> Tolerance {
        let k = graph.nodes.compactMap { node -> Int? in
            if case let .linear(inFeatures, _, _) = node.op { return inFeatures }
            return nil
        }.max() ?? 1
        let perProduct = Double(k).squareRoot() * 0x1p-24
        return Tolerance(
            maxRelL2: 1e-5, maxAbsOverScale: 2e-5,
            reason: "f32 weights, f32 compute: only the order of float32 operations differs from PyTorch (BLAS summation order, "
                + "softmax and norm reductions). A length-K dot product's rounding is about sqrt(K)·2^-24 = \(formatNumber(perProduct)) "
                + "for the longest here (K = \(k)); a different but equally valid order errs by as much again, and errors add across "
                + "layers like PyTorch's own float32 error against float64 (the goldens' noise floors: below 1e-6 at every node of tiny-llama, "
                + "up to 2.5e-6 in minilm-l6's last layer). 1e-5 leaves 4-10x headroom over that and sits 1000x below the 1e-2 of a 1 % weight error. "
                + "Max abs: 2x that times the layer's scale, as the other float limits allow — the largest of thousands of errors sits "
                + "further above their RMS than the scale (the largest value) above the signal's (OpenBLAS's SSE3 kernels, "
                + "OPENBLAS_CORETYPE=Prescott, give minilm-l6's last GELU 1.06e-5 of its scale at rel L2 4.7e-6)")
    }

    /// A row lookup in weights rounded to a 16-bit float: each value within the dtype's unit roundoff.
    static func roundedLookup(_ dtype: FloatType) -> Tolerance {
        let u = dtype == .bf16 ? 0x1p-8 : 0x1p-11
        return Tolerance(
            maxRelL2: 1.5 * u, maxAbsOverScale: u,
            reason: "an embedding lookup copies rows of the table rounded to \(dtype.rawValue): round-to-nearest errs by at most the unit roundoff "
                + "\(formatNumber(u)) of each value (so max abs ≤ u × the largest value); rel L2 1.5u leaves room for subnormal entries, whose "
                + "relative error exceeds u")
    }

    /// Per node op, for a transformer whose weights are stored unquantized (safetensors or MLX floats) and
    /// computed in float32 as PyTorch does after loading them: the ops that only copy or come from integers are
    /// exact; RoPE's tables carry float32 trig rounding; every other value inherits the weights' rounding through
    /// the whole network, so it gets the float limit of the stored dtype (`own`), which already allows for layers
    /// adding their errors. Quantized variants have no transformer policy yet: they are verified and reported
    /// unjudged. A composite module (a decoder layer) has its output node's limit: it is the same tensor.
    public static func transformer(graph: ModelGraph, variant: Variant) -> TolerancePolicy? {
        guard variant.isUniform, variant.quantizations.isEmpty, variant.format != .gguf, let float = variant.floats.first,
              let weightLimit = own(.float(float.dtype), format: variant.format) else { return nil }
        let propagated = float == .f32 ? transformerFloat32(graph) : weightLimit
        var perNode: [String: Tolerance] = [:]
        for node in graph.recordedNodes {
            let tolerance: Tolerance
            switch node.op {
            case .causalMask, .positions, .extendedAttentionMask: tolerance = exactFromIntegers
            case .embedding: tolerance = float == .f32 ? exactLookup : roundedLookup(float)
            case .rotaryEmbedding: tolerance = rotaryTables
            default: tolerance = propagated
            }
            perNode[node.name] = tolerance
        }
        for node in graph.recordedNodes {
            guard case let .module(_, output) = node.op else { continue }
            // Composites follow their output node (decoder layers resolve through their internal residual sum).
            var target = output
            while let inner = graph.node(at: target), inner.kind == .internal || inner.isComposite {
                if case let .module(_, next) = inner.op { target = next } else { break }
            }
            perNode[node.name] = perNode[GraphNode.name(forPath: target)] ?? propagated
        }
        return TolerancePolicy(format: variant.format.rawValue, variant: variant.label, perLayer: perNode)
    }
}
