import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// Conversion mistakes of transformer checkpoints, tested on a graph node that fails on its golden inputs: each
/// hypothesis rearranges one stored parameter, the node runs again alone (`GraphExecutor.runIsolated`), and it
/// is reported only if the node then passes its tolerance.
extension Diagnoser {
    public static func diagnose(node: GraphNode, graph: ModelGraph, engine: ParameterOverridingEngine, golden: GoldenFile,
                                tolerance: Tolerance) -> Diagnosis? {
        guard let expected = golden.activation(at: node.path)?.tensor, !node.isComposite else { return nil }
        func output(_ overrides: [String: Tensor]) -> Tensor? {
            let candidate = overrides.isEmpty ? engine : engine.overridingParameters(overrides)
            do {
                let value = try GraphExecutor.runIsolated(node, in: graph, engine: candidate) { golden.value(at: $0) }
                guard let out = value.floats, out.shape == expected.shape else { return nil }
                return out
            } catch {
                return nil
            }
        }
        func run(_ overrides: [String: Tensor]) -> LayerMetrics? { output(overrides).map { LayerMetrics.compare($0.data, expected.data) } }
        let current = output([:])
        let before = current.map { LayerMetrics.compare($0.data, expected.data) }
        var candidates = transformerCandidates(node, graph: graph, engine: engine)
        // A wrong global scale of a projection's weight, fitted from the golden output (least squares); still only
        // reported if the rescaled node passes.
        if case .linear = node.op, let current, let parameter = node.parameters.first, let stored = engine.referenceParameter(parameter.name) {
            var dot = 0.0, norm = 0.0
            for (a, b) in zip(current.data, expected.data) { dot += Double(a) * Double(b); norm += Double(a) * Double(a) }
            if norm > 0 {
                let factor = dot / norm
                candidates.append(Candidate(id: "scale", parameter: parameter.name, describe: {
                    "\(parameter.name) is \(formatNumber(1 / factor))× what it should be; scaling it by \(formatNumber(factor)) brings \($0) → \($1)"
                }, override: Tensor(shape: stored.shape, data: stored.data.map { Float(Double($0) * factor) })))
            }
        }
        var best: (Candidate, LayerMetrics)?
        for candidate in candidates {
            guard let m = run([candidate.parameter: candidate.override]), m.isFinite, tolerance.violations(m).isEmpty else { continue }
            if best == nil || m.relL2 < best!.1.relL2 { best = (candidate, m) }
        }
        guard let (candidate, after) = best else { return nil }
        let beforeText = before.map { "max abs \(formatNumber($0.maxAbs))" } ?? "a node that could not run"
        return Diagnosis(id: candidate.id, layer: node.name, parameter: candidate.parameter,
                         message: candidate.describe(beforeText, "max abs \(formatNumber(after.maxAbs))"), before: before, after: after)
    }

    /// The rows of a Q or K projection as llama.cpp's `convert_hf_to_gguf.py` permutes them for ggml's
    /// adjacent-pair RoPE: within each head, row s·D/2 + i moves to 2i + s (`reshape(heads, 2, D/2, C).swapaxes(1, 2)`).
    /// `inverse` undoes it.
    static func ropePermutedRows(_ w: Tensor, heads: Int, inverse: Bool) -> Tensor? {
        guard w.rank == 2, heads > 0, w.shape[0] % (2 * heads) == 0 else { return nil }
        let rows = w.shape[0], columns = w.shape[1], d = rows / heads, half = d / 2
        var out = [Float](repeating: 0, count: w.count)
        for h in 0..<heads {
            for s in 0..<2 {
                for i in 0..<half {
                    let hf = h * d + s * half + i, ggml = h * d + 2 * i + s
                    let (to, from) = inverse ? (hf, ggml) : (ggml, hf)
                    out.replaceSubrange(to * columns..<(to + 1) * columns, with: w.data[from * columns..<(from + 1) * columns])
                }
            }
        }
        return Tensor(shape: w.shape, data: out)
    }

    static func transformerCandidates(_ node: GraphNode, graph: ModelGraph, engine: ParameterOverridingEngine) -> [Candidate] {
        guard let parameter = node.parameters.first, let stored = engine.referenceParameter(parameter.name), stored.shape == parameter.shape else { return [] }
        let name = parameter.name
        var out: [Candidate] = []
        switch node.op {
        case let .linear(inFeatures, outFeatures, _):
            if inFeatures == outFeatures {
                out.append(Candidate(id: "transposed", parameter: name, describe: { "\(name) is transposed; transposing it brings \($0) → \($1)" },
                                     override: stored.permuted([1, 0])))
            }
            // Q and K: the RoPE row permutation of llama.cpp's converter, applied where it does not belong (or twice).
            let projection = node.module.map { $0.hasSuffix(".q_proj") ? "q" : $0.hasSuffix(".k_proj") ? "k" : "" } ?? ""
            if !projection.isEmpty, let headDimension = ropeHeadDimension(graph, block: node.block) {
                let heads = outFeatures / headDimension
                for inverse in [true, false] {
                    guard let fixed = ropePermutedRows(stored, heads: heads, inverse: inverse) else { continue }
                    out.append(Candidate(id: inverse ? "qk-rope-permuted" : "qk-rope-unpermuted", parameter: name, describe: {
                        inverse
                            ? "\(name) rows are in llama.cpp's RoPE order (convert_hf_to_gguf's Q/K permutation, for adjacent-pair RoPE) in a checkpoint read with rotate-half RoPE; undoing the permutation brings \($0) → \($1)"
                            : "\(name) rows are un-permuted once too often (the inverse of convert_hf_to_gguf's Q/K permutation was applied); applying the permutation brings \($0) → \($1)"
                    }, override: fixed))
                }
                // Q and K exchanged (possible only when they have one shape: no grouped-query attention).
                let other = projection == "q" ? name.replacingOccurrences(of: ".q_proj.", with: ".k_proj.") : name.replacingOccurrences(of: ".k_proj.", with: ".q_proj.")
                if let swapped = engine.referenceParameter(other), swapped.shape == stored.shape {
                    out.append(Candidate(id: "qk-swapped", parameter: name, describe: {
                        "\(name) holds the other projection's weights (\(other)): Q and K are exchanged; exchanging them back brings \($0) → \($1)"
                    }, override: swapped))
                }
            }
        case .rmsNorm:
            // RMSNorm conventions: Llama multiplies by w, Gemma-style norms by (1 + w) and store w − 1.
            out.append(Candidate(id: "norm-one-plus", parameter: name, describe: {
                "\(name) is stored as w − 1 (the (1 + w) RMSNorm convention) for a norm that multiplies by w; adding 1 brings \($0) → \($1)"
            }, override: Tensor(shape: stored.shape, data: stored.data.map { $0 + 1 })))
            out.append(Candidate(id: "norm-one-plus", parameter: name, describe: {
                "\(name) is stored as 1 + w for a norm that multiplies by w; subtracting 1 brings \($0) → \($1)"
            }, override: Tensor(shape: stored.shape, data: stored.data.map { $0 - 1 })))
        default:
            break
        }
        return out
    }

    /// The head dimension of the block's RoPE (from its `apply_rope` nodes).
    static func ropeHeadDimension(_ graph: ModelGraph, block: Int?) -> Int? {
        for node in graph.nodes where node.block == block {
            if case let .applyRope(_, headDimension) = node.op { return headDimension }
        }
        return nil
    }
}
