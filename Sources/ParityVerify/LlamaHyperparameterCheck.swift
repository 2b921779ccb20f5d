import ParityEngine
import ParityModels

/// Compares the hyperparameters a runtime reads from a converted Llama file (GGUF metadata, an MLX config.json) with
/// the reference's config.json, exactly. Weights are checked tensor by tensor; these numbers shape the computation
/// just as much, and a wrong one (an RMSNorm ε ten times too large, say) can hide inside the tolerance a quantized
/// file's activations need — so it is judged here, not by its numerical effect.
public enum LlamaHyperparameterCheck {
    /// The mismatches of the source's hyperparameters, plus, for a GGUF, every key llama.cpp computes with whose value
    /// is not the one the reference implies (`GGUFLlamaWeights.referenceDepartures`: `llama.attention.causal = false`,
    /// `llama.rope.scaling.attn_factor ≠ 1`, …; docs/llama-verify.md lists the keys).
    public static func mismatches(source: any LlamaWeightSource, reference architecture: LlamaArchitecture) -> [String] {
        let departures = (source as? GGUFLlamaWeights)?.referenceDepartures ?? []
        return mismatches(file: source.hyperparameters, reference: architecture) + departures.map(\.description)
    }

    /// One line per mismatch (empty: the file computes the reference's model).
    public static func mismatches(file: LlamaHyperparameters, reference architecture: LlamaArchitecture) -> [String] {
        var found: [String] = []
        func integer(_ what: String, _ stored: Int, _ expected: Int) {
            if stored != expected { found.append("\(what) is \(stored) in the file, \(expected) in the reference config") }
        }
        integer("vocabulary size", file.vocabularySize, architecture.vocabularySize)
        integer("hidden size", file.hiddenSize, architecture.hiddenSize)
        integer("layer count", file.layerCount, architecture.layerCount)
        integer("attention head count", file.headCount, architecture.headCount)
        integer("key/value head count", file.keyValueHeadCount, architecture.keyValueHeadCount)
        integer("head dimension", file.headDimension, architecture.headDimension)
        integer("intermediate size", file.intermediateSize, architecture.intermediateSize)
        // Llama rotates every dimension of a head (transformers' LlamaRotaryEmbedding uses head_dim).
        integer("RoPE dimensions", file.ropeDimensions, architecture.headDimension)
        // Both runtimes hold ε and θ as float32 (GGUF stores f32 keys; MLX's rms_norm and rope take float32), and
        // convert_hf_to_gguf / mlx_lm write the config's value: equal once rounded to float32, or the file is another model.
        func float32(_ what: String, _ stored: Double, _ expected: Double) {
            if Float(stored) != Float(expected) {
                found.append("\(what) is \(Float(stored)) in the file, \(Float(expected)) in the reference config (compared as the float32 the runtime uses)")
            }
        }
        float32("RMSNorm epsilon", file.rmsNormEpsilon, architecture.rmsNormEpsilon)
        float32("RoPE θ (freq_base / rope_theta)", file.ropeTheta, architecture.ropeTheta)
        // A file with no output matrix makes the runtime reuse the embedding; for an untied reference that computes
        // another model. (A tied reference stored with a separate, equal output matrix is correct: the weight check judges it.)
        if file.tiedEmbeddings && !architecture.tiedEmbeddings {
            found.append("the file has no separate output matrix, so the runtime reuses the token embedding as the output (tied), but the reference has its own lm_head")
        }
        return found
    }
}
