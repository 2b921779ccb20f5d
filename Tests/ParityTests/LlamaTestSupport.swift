import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
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

extension TinyLlamaGolden {
    /// Every golden dataset a node can read, by path: the model inputs and cache_position as int32, the rest float32.
    func allValues() throws -> [String: GraphValue] {
        var given: [String: GraphValue] = [:]
        for path in ["/inputs/input_ids", "/inputs/position_ids", "/inputs/attention_mask", "/intermediates/model.layers.0.cache_position"] {
            let read = try file.readIntegers(path)
            given[path] = .integers(IntegerTensor(shape: read.shape, data: read.values.map { Int32($0) }))
        }
        for path in try nodePaths() { given[path] = .floats(try file.readFloats(path)) }
        return given
    }

    /// tiny-llama's graph, built from its config.json by the architecture registry.
    static func graph() throws -> ModelGraph {
        let path = Repo.golden + "/tiny-llama/config.json"
        return try ArchitectureRegistry.graph(config: try fixtureJSON(path), path: path)
    }

    /// Runs every recorded node alone on its golden inputs (a composite module runs its members) through the shared
    /// executor; prints and returns (path, max |Δ|, rel L2, noise floor) per float node. Int32 nodes must be exact.
    func isolatedDistances(_ engine: LlamaGraphEngine, label: String) throws -> [(path: String, maxAbs: Double, relL2: Double, floor: Double)] {
        let graph = try Self.graph()
        let given = try allValues()
        var rows: [(String, Double, Double, Double)] = []
        for node in try nonEmpty(graph.recordedNodes, "recorded nodes") {
            let out = try GraphExecutor.runIsolated(node, in: graph, engine: engine) { given[$0] }
            if case .integers = out {
                #expect(out == given[node.path], "\(node.path): int32 values must equal the golden's")
                continue
            }
            let value = try #require(out.floats, "\(node.path) is float32")
            let expected = try file.readFloats(node.path)
            #expect(value.shape == expected.shape, "\(node.path): shape \(value.shape), golden \(expected.shape)")
            let d = TransformerTensors.distance(value, expected)
            let floor = try noiseFloorMaxAbs(node.path)
            print(String(format: "%@ isolated %-72@ max|Δ| %.2e  relL2 %.2e  (noise floor %.2e)", label, node.path, d.maxAbs, d.relL2, floor))
            rows.append((node.path, d.maxAbs, d.relL2, floor))
        }
        return rows
    }
}
