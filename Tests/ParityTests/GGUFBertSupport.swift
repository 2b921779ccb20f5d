import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import Testing

/// The recorded llama.cpp fixtures of all-MiniLM-L6-v2 (tools/minilm/llamacpp_fixtures.sh) and what the BERT GGUF
/// tests share: decoding the stored embeddings, running the BERT graph on the held-out sentences.
enum MiniLMGGUF {
    static let directory = Repo.fixtures + "/minilm-gguf"
    static let tablesPath = directory + "/gguf-tables.json"
    static let embeddingsPath = directory + "/embeddings.json"
    static let manifestPath = directory + "/manifest.json"

    static func tables() throws -> JSONValue { try required(try fixtureJSON(tablesPath), "files", in: tablesPath) }
    static func embeddings() throws -> JSONValue { try fixtureJSON(embeddingsPath) }

    /// A base64 block of little-endian float32 vectors of 384 as [sentences][384].
    static func vectors(_ base64: String, width: Int = 384) throws -> [[Float]] {
        let data = try #require(Data(base64Encoded: base64), "not base64")
        let floats = data.withUnsafeBytes { raw in (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) } }
        try #require(floats.count % width == 0, "\(floats.count) floats are not rows of \(width)")
        return stride(from: 0, to: floats.count, by: width).map { Array(floats[$0..<($0 + width)]) }
    }

    /// llama.cpp's token ids of the held-out sentences (each with [CLS] … [SEP]).
    static func tokenIDs() throws -> [[Int32]] {
        let ids = try #require(try required(try embeddings(), "llama_cpp_token_ids", in: embeddingsPath).arrayValue)
        return try nonEmpty(try ids.map { list in
            let items = try #require(list.arrayValue, "a token id list is not an array")
            return try items.map { try #require($0.intValue.map(Int32.init), "token id \($0) is not an integer") }
        }, "token id lists")
    }

    /// The graph's inputs for sequences padded to the longest: ids, token types 0, positions 0..n-1, mask.
    static func inputs(_ sequences: [[Int32]]) -> [String: GraphValue] {
        let t = sequences.map(\.count).max() ?? 0, b = sequences.count
        var ids = [Int32](repeating: 0, count: b * t), mask = ids, positions = ids
        for (i, s) in sequences.enumerated() {
            for (j, id) in s.enumerated() { ids[i * t + j] = id; mask[i * t + j] = 1 }
            for j in 0..<t { positions[i * t + j] = Int32(j) }
        }
        return ["/inputs/input_ids": .integers(IntegerTensor(shape: [b, t], data: ids)),
                "/inputs/token_type_ids": .integers(IntegerTensor(shape: [b, t], data: [Int32](repeating: 0, count: b * t))),
                "/inputs/position_ids": .integers(IntegerTensor(shape: [b, t], data: positions)),
                "/inputs/attention_mask": .integers(IntegerTensor(shape: [b, t], data: mask))]
    }

    /// The sentence embeddings an engine computes for the held-out sentences.
    static func run(_ engine: BertGraphEngine, architecture: BertArchitecture) throws -> [[Float]] {
        let graph = architecture.graph()
        let values = try GraphExecutor.run(graph, engine: engine, inputs: inputs(try tokenIDs()))
        let out = try #require(values[graph.output]?.floats, "no sentence embedding")
        let width = out.shape[1]
        return (0..<out.shape[0]).map { Array(out.data[($0 * width)..<(($0 + 1) * width)]) }
    }

    static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0
        for i in a.indices { dot += Double(a[i]) * Double(b[i]); na += Double(a[i]) * Double(a[i]); nb += Double(b[i]) * Double(b[i]) }
        return dot / (na.squareRoot() * nb.squareRoot())
    }

    /// Minimum cosine and maximum |Δ| over sentences.
    static func compare(_ a: [[Float]], _ b: [[Float]]) -> (cosine: Double, maxAbs: Double) {
        var cos = 1.0, maxAbs = 0.0
        for (x, y) in zip(a, b) {
            cos = min(cos, cosine(x, y))
            for i in x.indices { maxAbs = max(maxAbs, Double(abs(x[i] - y[i]))) }
        }
        return (cos, maxAbs)
    }

    /// Nearest neighbour of each sentence among the others (by dot product of normalised vectors).
    static func nearest(_ e: [[Float]]) -> [Int] {
        e.indices.map { i in
            e.indices.filter { $0 != i }.max { MiniLMGGUF.cosine(e[i], e[$0]) < MiniLMGGUF.cosine(e[i], e[$1]) }!
        }
    }
}
