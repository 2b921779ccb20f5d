import ArgumentParser
import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify

struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Embed sentences with a BERT sentence-embedding model (minilm-l6): Parity's WordPiece tokenizer, then the BERT graph as PyTorch computes it.",
        discussion: "Prints each sentence's token count and the first embedding values, then the cosine similarity of every pair.")

    @Argument(help: "A bundled BERT model (minilm-l6) or a sentence-transformers BERT directory.")
    var model: String
    @Argument(help: "The sentences.")
    var sentences: [String]
    @Option(name: .long, help: "Read the weights from this safetensors file instead of the reference's.")
    var file: String?

    func run() throws {
        guard !sentences.isEmpty else { throw ParityError.usage("give at least one sentence") }
        let reference = try ModelRepository.locate(model)
        guard BertCells.isBert(reference) else { throw ParityError.usage("\(model) is not a BERT model (model_type \(reference.config.modelType ?? "none"))") }
        let tokenizer = try WordPieceTokenizer(directory: reference.directory)
        // sentence-transformers cuts inputs to the model's max_seq_length (sentence_bert_config.json), else 512.
        let maxLength = (try? BertArchitecture.maxSequenceLength(directory: reference.directory)) ?? 512  // checked: an absent file means BERT's 512
        let encoded = sentences.map { tokenizer.encode($0, maxLength: maxLength) }
        let t = encoded.map(\.count).max() ?? 0, b = encoded.count
        var ids = [Int32](repeating: 0, count: b * t), mask = [Int32](repeating: 0, count: b * t)
        for (i, row) in encoded.enumerated() {
            for (j, id) in row.enumerated() { ids[i * t + j] = id; mask[i * t + j] = 1 }
        }
        let positions = (0..<b).flatMap { _ in (0..<t).map { Int32($0) } }
        let inputs: [String: GraphValue] = [
            "/inputs/input_ids": .integers(IntegerTensor(shape: [b, t], data: ids)),
            "/inputs/token_type_ids": .integers(IntegerTensor(shape: [b, t], data: [Int32](repeating: 0, count: b * t))),
            "/inputs/position_ids": .integers(IntegerTensor(shape: [b, t], data: positions)),
            "/inputs/attention_mask": .integers(IntegerTensor(shape: [b, t], data: mask)),
        ]
        let engine = try BertCells.pytorchEngine(file ?? reference.weightsPath, model: reference)
        let graph = reference.config.graph
        let outputs = try GraphExecutor.run(graph, engine: engine, inputs: inputs)
        guard let embeddings = outputs[graph.output]?.floats, embeddings.rank == 2 else {
            throw ParityError.usage("\(model)'s graph ends in \(graph.output), not a sentence embedding (no pooling module)")
        }
        let c = embeddings.shape[1]
        func row(_ i: Int) -> ArraySlice<Float> { embeddings.data[(i * c)..<((i + 1) * c)] }
        print("\(reference.name): \(engine.semantics); \(c) dimensions")
        for (i, sentence) in sentences.enumerated() {
            let first = row(i).prefix(6).map { String(format: "%+.4f", $0) }.joined(separator: " ")
            print("[\(i)] \(encoded[i].count) tokens  [\(first) …]  \(sentence)")
        }
        if b > 1 {
            print("cosine similarity:")
            for i in 0..<b {
                let line = (0..<b).map { j -> String in
                    let dot = zip(row(i), row(j)).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                    let ni = row(i).reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                    let nj = row(j).reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                    return String(format: "%7.4f", ni > 0 && nj > 0 ? dot / (ni * nj) : 0)
                }.joined(separator: " ")
                print("  [\(i)] \(line)")
            }
        }
    }
}
