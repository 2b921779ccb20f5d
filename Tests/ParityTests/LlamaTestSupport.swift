import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import Testing

/// The reference tiny-llama (golden/tiny-llama) as a `LlamaWeightSource`, read from its safetensors with the
/// Hugging Face names. Test-side only: it can also hand out Q/K rows permuted as convert_hf_to_gguf permutes them
/// (written here from the converter's own formula, `w.reshape(n_head, 2, D/2, cols).swapaxes(1, 2)`), so ggml
/// semantics can be checked on the reference weights without any GGUF reader.
struct ReferenceLlamaSource: LlamaWeightSource {
    let path: String
    let file: SafetensorsFile
    let hyperparameters: LlamaHyperparameters
    let ropeStyle: RopeStyle
    /// Q and K rows as convert_hf_to_gguf writes them.
    let permutedQueryKey: Bool
    /// Every tensor rounded to this dtype (round to nearest even), as `mlx_lm convert --dtype float16` and
    /// `astype` write them; nil keeps float32.
    let storedAs: DType?

    init(directory: String = Repo.golden + "/tiny-llama", ropeStyle: RopeStyle = .halves, permutedQueryKey: Bool = false,
         storedAs: DType? = nil) throws {
        path = directory + "/model.safetensors"
        file = try SafetensorsFile(path: path)
        let config = try fixtureJSON(directory + "/config.json")
        func int(_ key: String) throws -> Int {
            guard let v = try required(config, key, in: directory).intValue else { throw ParityError.usage("\(key) is not an integer") }
            return v
        }
        func double(_ key: String) throws -> Double {
            guard let v = try required(config, key, in: directory).doubleValue else { throw ParityError.usage("\(key) is not a number") }
            return v
        }
        guard let tied = try required(config, "tie_word_embeddings", in: directory).boolValue else {
            throw ParityError.usage("tie_word_embeddings is not a boolean")
        }
        let hidden = try int("hidden_size"), heads = try int("num_attention_heads")
        hyperparameters = LlamaHyperparameters(
            vocabularySize: try int("vocab_size"), hiddenSize: hidden, layerCount: try int("num_hidden_layers"), headCount: heads,
            keyValueHeadCount: try int("num_key_value_heads"), headDimension: try int("head_dim"), intermediateSize: try int("intermediate_size"),
            rmsNormEpsilon: try double("rms_norm_eps"),
            ropeTheta: try double("rope_theta"),
            ropeDimensions: try int("head_dim"), tiedEmbeddings: tied)
        self.ropeStyle = ropeStyle
        self.permutedQueryKey = permutedQueryKey
        self.storedAs = storedAs
    }

    func stored(_ values: [Float]) -> [Float] {
        switch storedAs {
        case .f16?: return values.map { Float(Float16($0)) }
        case .bf16?: return values.map { FloatCodecs.bfloat16ToFloat(FloatCodecs.floatToBFloat16($0)) }
        default: return values
        }
    }

    func matrix(_ role: LlamaTensorRole, layer: Int) throws(ParityError) -> StoredMatrix {
        let name = role.referenceName(layer: layer)
        let t: Tensor
        do { t = try file.tensor(named: name) } catch { throw .notFound(path: path, what: name) }
        var values = t.data
        let (rows, cols) = (t.shape[0], t.shape[1])
        if permutedQueryKey && (role == .query || role == .key) {
            let heads = role == .query ? hyperparameters.headCount : hyperparameters.keyValueHeadCount
            values = Self.convertHFToGGUFPermute(values, rows: rows, cols: cols, heads: heads)
        }
        return StoredMatrix(rows: rows, columns: cols, storage: .dense(values: stored(values), dtype: storedAs ?? .f32), fileName: name)
    }

    func vector(_ role: LlamaTensorRole, layer: Int) throws(ParityError) -> [Float] {
        let name = role.referenceName(layer: layer)
        do { return stored(try file.tensor(named: name).data) } catch { throw .notFound(path: path, what: name) }
    }

    /// `w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols)`: the result's index
    /// (h, j, k) reads the source's (h, k, j).
    static func convertHFToGGUFPermute(_ w: [Float], rows: Int, cols: Int, heads: Int) -> [Float] {
        let half = rows / heads / 2
        var out = w
        for h in 0..<heads {
            for j in 0..<half {
                for k in 0..<2 {
                    let dst = ((h * half + j) * 2 + k) * cols, src = ((h * 2 + k) * half + j) * cols
                    for c in 0..<cols { out[dst + c] = w[src + c] }
                }
            }
        }
        return out
    }
}

/// tiny-llama's goldens, read with the HDF5 reader directly.
struct TinyLlamaGolden {
    static let path = Repo.golden + "/tiny-llama/golden.h5"
    let file: HDF5File
    let ids: [Int32]
    let shape: [Int]

    init() throws {
        file = try HDF5File(readingFrom: Self.path)
        let read = try file.readIntegers("/inputs/input_ids")
        ids = read.values.map { Int32($0) }
        shape = read.shape
    }

    /// Every float dataset a forward pass must produce: /activations, /attention (but the entropies, a statistic
    /// of the probabilities) and /intermediates (but cache_position, an int32 arange).
    func nodePaths() throws -> [String] {
        var paths: [String] = []
        for group in ["/activations", "/attention", "/intermediates"] {
            for member in try file.members(of: group) {
                let path = group + "/" + member
                if file.isDataset(path) {
                    if !path.hasSuffix("cache_position") { paths.append(path) }
                } else {
                    for inner in try file.members(of: path) where inner != "entropy" { paths.append(path + "/" + inner) }
                }
            }
        }
        return paths
    }

    /// The golden's float32-vs-float64 noise floor (max |Δ|); the mask has none (its masked entries are float32's minimum).
    func noiseFloorMaxAbs(_ path: String) throws -> Double {
        if path.hasSuffix("attention_mask") { return 0 }
        return try #require(try file.attribute("noise_floor_max_abs", of: path)?.doubleValue, "\(path) has no noise_floor_max_abs")
    }
}

/// The first `count` sequences (rows of the batch) of [B, ...] ids.
func firstSequences(_ ids: [Int32], shape: [Int], count: Int) -> (ids: [Int32], shape: [Int]) {
    (Array(ids.prefix(count * shape[1])), [count, shape[1]])
}

/// Max |a − b| over all elements, in Double.
func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Double { TransformerTensors.distance(a, b).maxAbs }

/// The golden datasets a node reads, in argument order, as golden/README.md's table lists them (the HDF5 reader
/// here reads no string-array attributes, so the `inputs` attribute is restated for the tests).
func tinyLlamaGoldenInputs(of path: String) throws -> [String] {
    let kind = try #require(LlamaNodeKind(path: path), "\(path) is not a Llama node")
    let a = LlamaForward.activation, att = LlamaForward.attention, i = LlamaForward.intermediate
    func block(_ n: Int, _ m: String) -> String { a("model.layers.\(n).\(m)") }
    func layerInput(_ n: Int) -> String { n == 0 ? a("model.embed_tokens") : a("model.layers.\(n - 1)") }
    let rotary = [a("model.rotary_emb"), a("model.rotary_emb:1")]
    let layerArgs = [i("model.layers.0.attention_mask"), "/inputs/position_ids", i("model.layers.0.cache_position")] + rotary
    switch kind {
    case .embedding: return ["/inputs/input_ids"]
    case .rotary: return [a("model.embed_tokens"), "/inputs/position_ids"]
    case .causalMask: return ["/inputs/attention_mask"]
    case let .norm(role, n):
        switch role {
        case .attentionNorm: return [layerInput(n)]
        case .feedForwardNorm: return [i("model.layers.\(n).post_attention_layernorm.hidden_states")]
        default: return [a("model.layers.2")]
        }
    case let .projection(role, n):
        switch role {
        case .query, .key, .value: return [block(n, "input_layernorm")]
        case .attentionOutput: return [i("model.layers.\(n).self_attn.o_proj.input")]
        case .gate, .up: return [block(n, "post_attention_layernorm")]
        case .down: return [i("model.layers.\(n).mlp.down_proj.input")]
        default: return [a("model.norm")]
        }
    case let .rope(query, n): return [block(n, query ? "self_attn.q_proj" : "self_attn.k_proj")] + rotary
    case let .probs(n): return [att(n, "q_rope"), att(n, "k_rope"), i("model.layers.0.attention_mask")]
    case let .attentionOutput(n): return [att(n, "probs"), block(n, "self_attn.v_proj")]
    case let .residual(n): return [layerInput(n), block(n, "self_attn")]
    case let .silu(n): return [block(n, "mlp.gate_proj")]
    case let .swigluProduct(n): return [block(n, "mlp.act_fn"), block(n, "mlp.up_proj")]
    case let .attentionBlock(n): return [block(n, "input_layernorm")] + layerArgs
    case let .mlpBlock(n): return [block(n, "post_attention_layernorm")]
    case let .decoderLayer(n): return [layerInput(n)] + layerArgs
    case .model: return ["/inputs/input_ids", "/inputs/attention_mask", "/inputs/position_ids"]
    }
}

extension TinyLlamaGolden {
    /// A dataset as a node input: int32 datasets (inputs, cache_position) as integers, the rest as floats.
    func value(_ path: String) throws -> LlamaValue {
        if path.hasPrefix("/inputs/") || path.hasSuffix("cache_position") {
            let read = try file.readIntegers(path)
            return .integers(read.values.map { Int32($0) }, shape: read.shape)
        }
        return .floats(try file.readFloats(path))
    }

    /// Runs every golden node alone on its golden inputs; returns (path, max |Δ|, rel L2, noise floor) per node.
    func isolatedDistances(_ forward: LlamaForward, label: String) throws -> [(path: String, maxAbs: Double, relL2: Double, floor: Double)] {
        var rows: [(String, Double, Double, Double)] = []
        for path in try nonEmpty(nodePaths(), "tiny-llama golden nodes") {
            let inputs = try tinyLlamaGoldenInputs(of: path).map(value)
            let out = try forward.node(path, inputs: inputs)
            let expected = try file.readFloats(path)
            #expect(out.shape == expected.shape, "\(path): shape \(out.shape), golden \(expected.shape)")
            let d = TransformerTensors.distance(out, expected)
            let floor = try noiseFloorMaxAbs(path)
            print(String(format: "%@ isolated %-72@ max|Δ| %.2e  relL2 %.2e  (noise floor %.2e)", label, path, d.maxAbs, d.relL2, floor))
            rows.append((path, d.maxAbs, d.relL2, floor))
        }
        return rows
    }
}
