import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// Conversion mistakes of transformer checkpoints, tested on a graph node that fails on its golden inputs: each
/// hypothesis changes one thing — a stored parameter rearranged (Q/K RoPE permutation, Q and K exchanged, RMSNorm
/// w − 1 / 1 + w, a transpose, a global scale, K/V heads expanded to one per query head), or how the runtime computes the file (`ConventionOverridingEngine`:
/// RoPE convention, RoPE θ, RMSNorm ε, an output tied to the embedding) — the node runs again alone
/// (`GraphExecutor.runIsolated`, all its golden inputs) on the changed engine, and the hypothesis is reported only
/// if the node then passes its tolerance.
extension Diagnoser {
    /// One hypothesis about a failing node: what it changes and the engine that computes the file with that change.
    struct Hypothesis {
        let id: String
        /// The parameter or hyperparameter it changes.
        let subject: String
        let describe: (_ before: String, _ after: String) -> String
        let engine: any GraphEngine
    }

    /// What `diagnose(node:…)` tries on this node (for the report's "none of … explains it"), nil: nothing.
    public static func mistakesTried(at node: GraphNode, engine: any GraphEngine) -> String? {
        guard engine is any ParameterOverridingEngine else { return nil }
        if engine is BertGraphEngine { return bertMistakesTried(at: node) }
        let conventions = engine is any ConventionOverridingEngine
        switch node.op {
        case .linear where node.hasParameters:
            return transformerMistakes + (conventions && node.module == "lm_head" ? ", an output tied to the token embedding" : "")
        case .rmsNorm where node.hasParameters:
            return transformerMistakes + (conventions ? ", the RMSNorm ε the runtime reads" : "")
        case .rotaryEmbedding where conventions: return "the RoPE θ the runtime reads"
        case .applyRope where conventions: return "the RoPE convention (adjacent pairs vs rotate-half)"
        default: return nil
        }
    }

    /// Tests the hypotheses that apply to `node` (failing on its golden inputs). `reference` gives a reference
    /// parameter by name (the output matrix a file without one should have had); nil where not available.
    public static func diagnose(node: GraphNode, graph: ModelGraph, engine: any ParameterOverridingEngine, golden: GoldenFile,
                                tolerance: Tolerance, reference: (String) -> Tensor? = { _ in nil }) -> Diagnosis? {
        guard let expected = golden.activation(at: node.path)?.tensor, !node.isComposite else { return nil }
        func computed(_ candidate: any GraphEngine) -> Tensor? {
            do { return try GraphExecutor.runIsolated(node, in: graph, engine: candidate) { golden.value(at: $0) }.floats } catch { return nil }
        }
        func output(_ candidate: any GraphEngine) -> Tensor? { computed(candidate).flatMap { $0.shape == expected.shape ? $0 : nil } }
        let ran = computed(engine)
        let current = ran.flatMap { $0.shape == expected.shape ? $0 : nil }
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
        var hypotheses = candidates.map { c in
            Hypothesis(id: c.id, subject: c.parameter, describe: c.describe, engine: engine.overridingParameters([c.parameter: c.override]))
        }
        if let bert = engine as? BertGraphEngine { hypotheses += bertHypotheses(node, engine: bert, reference: reference) }
        if let runtime = engine as? any ConventionOverridingEngine {
            hypotheses += conventionHypotheses(node, engine: runtime, reference: reference)
        }
        var best: (Hypothesis, LayerMetrics)?
        for hypothesis in hypotheses {
            guard let out = output(hypothesis.engine) else { continue }
            let m = LayerMetrics.compare(out.data, expected.data)
            guard m.isFinite, tolerance.violations(m).isEmpty else { continue }
            if best == nil || m.relL2 < best!.1.relL2 { best = (hypothesis, m) }
        }
        guard let (hypothesis, after) = best else { return nil }
        let beforeText = before.map { "max abs \(formatNumber($0.maxAbs))" }
            ?? ran.map { "an output of shape \($0.shape) (the reference's: \(expected.shape))" } ?? "a node that could not run"
        return Diagnosis(id: hypothesis.id, layer: node.name, parameter: hypothesis.subject,
                         message: hypothesis.describe(beforeText, "max abs \(formatNumber(after.maxAbs))"), before: before, after: after)
    }

    /// How the runtime computes the file, against what the reference graph computes: each value the runtime read that
    /// differs from the reference config's (compared as the float32 the runtimes hold), and the two RoPE conventions.
    static func conventionHypotheses(_ node: GraphNode, engine: any ConventionOverridingEngine, reference: (String) -> Tensor?) -> [Hypothesis] {
        let file = engine.conventions, origin = engine.conventionOrigins
        func plain(_ value: Double) -> String { String(describing: Float(value)) }  // as the runtime holds it: 500000.0, 1e-06
        func pairs(_ style: RopeStyle) -> String { style == .halves ? "rotate-half pairs (i, i+D/2)" : "adjacent pairs (2i, 2i+1)" }
        func changed(_ change: (inout RuntimeConventions) -> Void) -> RuntimeConventions {
            var c = file
            change(&c)
            return c
        }
        switch node.op {
        case let .rotaryEmbedding(_, _, theta) where Float(theta) != Float(file.ropeTheta):
            return [Hypothesis(id: "rope-theta", subject: origin.ropeTheta, describe: {
                "the runtime's RoPE θ is \(plain(file.ropeTheta)) (\(origin.ropeTheta)), the reference config's rope_theta is \(plain(theta)); computing with \(plain(theta)) brings \($0) → \($1)"
            }, engine: engine.overridingConventions(changed { $0.ropeTheta = theta }))]
        case let .rmsNorm(_, epsilon) where Float(epsilon) != Float(file.rmsNormEpsilon):
            return [Hypothesis(id: "rms-epsilon", subject: origin.rmsNormEpsilon, describe: {
                "the runtime's RMSNorm ε is \(plain(file.rmsNormEpsilon)) (\(origin.rmsNormEpsilon)), the reference config's rms_norm_eps is \(plain(epsilon)); computing with \(plain(epsilon)) brings \($0) → \($1)"
            }, engine: engine.overridingConventions(changed { $0.rmsNormEpsilon = epsilon }))]
        case .applyRope:
            let other: RopeStyle = file.ropeStyle == .halves ? .adjacentPairs : .halves
            return [Hypothesis(id: "rope-convention", subject: origin.ropeStyle, describe: {
                "the runtime rotates \(pairs(file.ropeStyle)) — \(origin.ropeStyle) — but the checkpoint's Q and K are laid out for \(pairs(other)), as the reference rotates them; rotating those brings \($0) → \($1)"
            }, engine: engine.overridingConventions(changed { $0.ropeStyle = other }))]
        case .linear where file.tiedOutput && node.parameters.first?.name == "lm_head.weight":
            // The reference graph names its own output matrix (an untied reference) while the runtime reuses the embedding.
            guard let parameter = node.parameters.first, let untied = reference(parameter.name), untied.shape == parameter.shape else { return [] }
            return [Hypothesis(id: "output-tied", subject: parameter.name, describe: {
                "the runtime computes \(node.name) with the token embedding (\(origin.tiedOutput)), but the reference has its own \(parameter.name): the output is untied; computing with the reference's \(parameter.name) brings \($0) → \($1)"
            }, engine: engine.overridingConventions(changed { $0.tiedOutput = false }).overridingParameters([parameter.name: untied]))]
        default:
            return []
        }
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
        guard let parameter = node.parameters.first, let stored = engine.referenceParameter(parameter.name) else { return [] }
        guard stored.shape == parameter.shape else { return expandedKeyValueCandidates(node, graph: graph, parameter: parameter, stored: stored) }
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

    /// K or V of a grouped-query model stored with its n_kv heads expanded to one per query head (n_heads·D rows where
    /// the reference has n_kv·D): what converters for runtimes without grouped-query attention write. transformers'
    /// `repeat_kv` gives query head h the KV head h / g (g = n_heads / n_kv): expanded head e must hold head e / g
    /// (repeat_interleave). Tiling instead (`torch.Tensor.repeat`, `np.tile`: heads 0…n_kv−1 over and over) gives query
    /// head h the KV head h mod n_kv. Each hypothesis takes the n_kv original heads back out of the expanded rows the way
    /// that expansion put them in; only the one matching the file makes the node pass (the heads differ).
    static func expandedKeyValueCandidates(_ node: GraphNode, graph: ModelGraph, parameter: GraphParameter, stored: Tensor) -> [Candidate] {
        guard case .linear = node.op, let module = node.module, module.hasSuffix(".k_proj") || module.hasSuffix(".v_proj"),
              let d = ropeHeadDimension(graph, block: node.block), stored.rank == 2, parameter.shape.count == 2,
              stored.shape[1] == parameter.shape[1], parameter.shape[0] % d == 0, stored.shape[0] % parameter.shape[0] == 0 else { return [] }
        let kvHeads = parameter.shape[0] / d, copies = stored.shape[0] / parameter.shape[0], columns = stored.shape[1]
        guard copies > 1 else { return [] }
        func heads(_ pick: (Int) -> Int) -> Tensor {
            var out: [Float] = []
            out.reserveCapacity(parameter.shape[0] * columns)
            for j in 0..<kvHeads { out += stored.data[(pick(j) * d * columns)..<((pick(j) + 1) * d * columns)] }
            return Tensor(shape: parameter.shape, data: out)
        }
        let name = parameter.name, expanded = kvHeads * copies
        return [
            Candidate(id: "kv-heads-tiled", parameter: name, describe: {
                "\(name) has \(expanded) heads where the reference has \(kvHeads): its KV heads were expanded to one per query head by tiling (heads 0…\(kvHeads - 1) repeated \(copies) times, torch.Tensor.repeat), so query head h reads KV head h mod \(kvHeads) instead of h / \(copies) (transformers' repeat_kv); taking the \(kvHeads) original heads (the first \(kvHeads)) brings \($0) → \($1)"
            }, override: heads { $0 }),
            Candidate(id: "kv-heads-expanded", parameter: name, describe: {
                "\(name) has \(expanded) heads where the reference has \(kvHeads): its KV heads were expanded to one per query head in transformers' repeat_kv order (each repeated \(copies) times in place), which computes the same attention as multi-head attention, but the file is not the reference's grouped-query model; taking every \(copies)th head brings \($0) → \($1)"
            }, override: heads { $0 * copies }),
        ]
    }

    /// The head dimension of the block's RoPE (from its `apply_rope` nodes).
    static func ropeHeadDimension(_ graph: ModelGraph, block: Int?) -> Int? {
        for node in graph.nodes where node.block == block {
            if case let .applyRope(_, headDimension) = node.op { return headDimension }
        }
        return nil
    }
}
