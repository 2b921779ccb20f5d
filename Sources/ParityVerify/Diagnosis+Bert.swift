import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// The mistakes people make converting a BERT checkpoint, as hypotheses for a BERT graph node that fails on its
/// golden inputs (`Diagnoser.diagnose(node:…)` runs each one alone on the changed engine and reports the best that
/// passes): a LayerNorm's weight and bias exchanged, two of Q, K, V exchanged (weight and bias together, as a
/// converter mapping the wrong tensor name writes them), the token-type table left out or zeroed (llama.cpp then adds
/// nothing), the position table shifted by a row or two (RoBERTa's padding offset applied to BERT, or the first row
/// dropped); and how the runtime computes the file: the LayerNorm ε it reads, and the GELU form its graph computes
/// (a runtime's convention, not a conversion mistake). The generic ones (a square matrix transposed, a global scale)
/// come from `transformerCandidates`.
extension Diagnoser {
    /// What is tried on each BERT op, for reports ("none of … explains it").
    static func bertMistakesTried(at node: GraphNode) -> String? {
        switch node.op {
        case .linear where node.hasParameters:
            let attention = bertProjection(node) != nil ? ", two of Q, K and V exchanged" : ""
            return "transposed (square matrices), a global scale" + attention
        case .layerNorm where node.hasParameters: return "LayerNorm weight and bias exchanged, the LayerNorm ε the runtime reads"
        case .embedding where node.module?.hasSuffix("token_type_embeddings") == true: return "the token-type table missing or zeroed"
        case .embedding where node.module?.hasSuffix("position_embeddings") == true: return "the position table shifted by one or two rows"
        case .gelu: return "the GELU form the runtime computes (erf vs tanh)"
        default: return nil
        }
    }

    /// "q", "k" or "v" for a BERT self-attention projection.
    static func bertProjection(_ node: GraphNode) -> String? {
        guard let module = node.module else { return nil }
        for (suffix, letter) in [(".attention.self.query", "q"), (".attention.self.key", "k"), (".attention.self.value", "v")] where module.hasSuffix(suffix) {
            return letter
        }
        return nil
    }

    static func bertHypotheses(_ node: GraphNode, engine: BertGraphEngine, reference: (String) -> Tensor?) -> [Hypothesis] {
        var out: [Hypothesis] = []
        let names = node.parameters.map(\.name)
        func stored(_ name: String) -> Tensor? { engine.referenceParameter(name) }
        switch node.op {
        case .linear:
            guard let mine = bertProjection(node), names.count == 2, let module = node.module else { break }
            let base = String(module.dropLast(mine == "q" ? "query".count : mine == "k" ? "key".count : "value".count))
            let full = ["q": "query", "k": "key", "v": "value"]
            for other in ["q", "k", "v"] where other != mine {
                let otherModule = base + full[other]!
                guard let w = stored(otherModule + ".weight"), let b = stored(otherModule + ".bias"), w.shape == node.parameters[0].shape else { continue }
                let pair = ["q", "k", "v"].filter { $0 == mine || $0 == other }.joined()
                out.append(Hypothesis(id: "\(pair)-swapped", subject: names[0], describe: {
                    "\(module) holds \(otherModule)'s weight and bias: \(pair.uppercased().map(String.init).joined(separator: " and ")) are exchanged "
                        + "(the converter mapped one name to the other); exchanging them back brings \($0) → \($1)"
                }, engine: engine.overridingParameters([names[0]: w, names[1]: b])))
            }
        case let .layerNorm(_, epsilon):
            if names.count == 2, let w = stored(names[0]), let b = stored(names[1]), w.shape == b.shape {
                out.append(Hypothesis(id: "norm-weight-bias-swapped", subject: names[0], describe: {
                    "\(names[0]) and \(names[1]) are exchanged (the file's LayerNorm weight holds the bias and the other way round); exchanging them back brings \($0) → \($1)"
                }, engine: engine.overridingParameters([names[0]: b, names[1]: w])))
            }
            let file = engine.source.hyperparameters.layerNormEpsilon
            if Float(file) != Float(epsilon) {
                out.append(Hypothesis(id: "layer-norm-epsilon", subject: engine.layerNormEpsilonOrigin, describe: {
                    "the runtime's LayerNorm ε is \(Float(file)) (\(engine.layerNormEpsilonOrigin)), the reference config's layer_norm_eps is \(Float(epsilon)); computing with \(Float(epsilon)) brings \($0) → \($1)"
                }, engine: engine.overridingLayerNormEpsilon(epsilon)))
            }
        case .embedding:
            guard let name = names.first, let table = stored(name), table.rank == 2 else { break }
            if node.module?.hasSuffix("token_type_embeddings") == true, table.data.allSatisfy({ $0 == 0 }),
               let real = reference(name), real.shape == table.shape {
                out.append(Hypothesis(id: "token-type-missing", subject: name, describe: {
                    "\(name) is all zeros in the file (left out or zeroed by the converter; llama.cpp then adds nothing for the token type), while BERT adds its row 0 to every token; the reference's table brings \($0) → \($1)"
                }, engine: engine.overridingParameters([name: real])))
            }
            if node.module?.hasSuffix("position_embeddings") == true {
                let rows = table.shape[0], width = table.shape[1]
                for shift in [1, -1, 2, -2] {
                    // The file's row i holds the reference's row i + shift: the reference's row p is the file's p − shift.
                    var data = table.data
                    for p in 0..<rows where (0..<rows).contains(p - shift) {
                        data.replaceSubrange(p * width..<(p + 1) * width, with: table.data[(p - shift) * width..<(p - shift + 1) * width])
                    }
                    let moved = Tensor(shape: table.shape, data: data)
                    out.append(Hypothesis(id: "position-shifted", subject: name, describe: {
                        "\(name) is shifted by \(shift) row\(abs(shift) == 1 ? "" : "s"): the file's row p holds position \(shift > 0 ? "p + \(shift)" : "p − \(-shift)")"
                            + (shift == -2 ? " (RoBERTa's padding offset applied to a BERT)" : "") + "; moving the rows back brings \($0) → \($1)"
                    }, engine: engine.overridingParameters([name: moved])))
                }
            }
        case let .gelu(tanh):
            let wanted: BertActivation = tanh ? .geluTanh : .geluErf
            if engine.computedGELU != wanted {
                out.append(Hypothesis(id: "gelu-form", subject: "GELU", describe: {
                    "the runtime's convention, not the file: it computes GELU's \(engine.computedGELU.rawValue) form (\(engine.geluOrigin)), the reference \(wanted.rawValue); computing \(wanted.rawValue) brings \($0) → \($1)"
                }, engine: engine.computingGELU(wanted)))
            }
        default:
            break
        }
        return out
    }
}
