import ParityCore
import ParityEngine
import ParityModels

/// A sentence-embedding model's benchmark inputs: the golden's reference sentences (`/reference/*`), each kept as its
/// real tokens (the attention mask's ones) so that a batch is padded only to its own longest sentence, as
/// sentence-transformers batches them.
public struct SentenceSet: Sendable {
    public let ids: [[Int32]]
    public let types: [[Int32]]
    public var count: Int { ids.count }
    public var tokenCount: Int { ids.reduce(0) { $0 + $1.count } }

    /// `ids`, `mask`, `types`: `[sentences, tokens]`, padded; a sentence's tokens are those where the mask is 1.
    public init(ids: IntegerTensor, mask: IntegerTensor, types: IntegerTensor) {
        let (b, t) = (ids.shape[0], ids.shape[1])
        func real(_ x: IntegerTensor, _ i: Int) -> [Int32] { (0..<t).filter { mask.data[i * t + $0] != 0 }.map { x.data[i * t + $0] } }
        self.ids = (0..<b).map { real(ids, $0) }
        self.types = (0..<b).map { real(types, $0) }
    }

    /// The graph's inputs for sentences `start..<start+n`, padded to the longest of them (id 0, mask 0), positions 0…t−1.
    public func inputs(_ graph: ModelGraph, start: Int, count n: Int) throws -> [String: GraphValue] {
        let rows = Array(start..<min(count, start + n))
        let t = rows.map { ids[$0].count }.max() ?? 0
        func tensor(_ value: (Int, Int) -> Int32) -> GraphValue {
            .integers(IntegerTensor(shape: [rows.count, t], data: rows.flatMap { r in (0..<t).map { value(r, $0) } }))
        }
        return try Self.fill(graph, [
            "input_ids": tensor { r, j in j < ids[r].count ? ids[r][j] : 0 },
            "token_type_ids": tensor { r, j in j < types[r].count ? types[r][j] : 0 },
            "attention_mask": tensor { r, j in j < ids[r].count ? 1 : 0 },
            "position_ids": tensor { _, j in Int32(j) },
        ])
    }

    /// One sequence of `tokens` tokens (the longest sentence's ids, cycled), mask all ones: llama-bench's pp at batch 1.
    public func longInput(_ graph: ModelGraph, tokens: Int) throws -> [String: GraphValue] {
        let longest = ids.max { $0.count < $1.count } ?? [0]
        func tensor(_ value: (Int) -> Int32) -> GraphValue { .integers(IntegerTensor(shape: [1, tokens], data: (0..<tokens).map(value))) }
        return try Self.fill(graph, ["input_ids": tensor { longest[$0 % longest.count] }, "token_type_ids": tensor { _ in 0 },
                                     "attention_mask": tensor { _ in 1 }, "position_ids": tensor { Int32($0) }])
    }

    static func fill(_ graph: ModelGraph, _ values: [String: GraphValue]) throws -> [String: GraphValue] {
        var out: [String: GraphValue] = [:]
        for input in graph.inputs {
            guard let v = values[input.name] else {
                throw ParityError.usage("bench: the \(graph.architecture) graph takes input '\(input.name)', which the sentence-embedding test does not know how to fill")
            }
            out[input.path] = v
        }
        return out
    }
}

extension ComputeTimer {
    /// A sentence embedder (BERT): batch-1 latency over the reference sentences (cycled, `latencyRuns` runs); for
    /// each of `batches`, `repetitions` timed runs of `passes` passes over the whole set, as sentences/s and real
    /// (unpadded) tokens/s; then `pp<promptTokens>`, one sequence of that many tokens, tokens/s as llama-bench's
    /// embedding mode (`-embd 1 -p N`) reports it. Every input is built before the clock starts.
    public static func sentences(engine: GraphEngine, graph: ModelGraph, sentences: SentenceSet, batches: [Int], passes: Int,
                                 promptTokens: Int, options: BenchOptions, into m: inout RuntimeMeasurement) throws {
        let singles = try (0..<sentences.count).map { try sentences.inputs(graph, start: $0, count: 1) }
        for _ in 0..<options.warmup { try GraphExecutor.run(graph, engine: engine, inputs: singles[0]) }
        var latencies = [UInt64](repeating: 0, count: options.latencyRuns)
        for r in latencies.indices {
            let input = singles[r % singles.count]
            let start = monotonicNanoseconds()
            try GraphExecutor.run(graph, engine: engine, inputs: input)
            latencies[r] = monotonicNanoseconds() - start
        }
        m.latency = LatencySummary(nanoseconds: latencies)

        for batch in batches where batch <= sentences.count {
            let inputs = try stride(from: 0, to: sentences.count, by: batch).map { try sentences.inputs(graph, start: $0, count: batch) }
            for _ in 0..<options.warmup { try GraphExecutor.run(graph, engine: engine, inputs: inputs[0]) }
            var seconds = [Double](repeating: 0, count: options.repetitions)
            for r in seconds.indices {
                let start = monotonicNanoseconds()
                for _ in 0..<passes { for input in inputs { try GraphExecutor.run(graph, engine: engine, inputs: input) } }
                seconds[r] = Double(monotonicNanoseconds() - start) / 1e9
            }
            let n = Double(sentences.count * passes), tokens = Double(sentences.tokenCount * passes)
            m.throughput.append(ThroughputResult(test: "b\(batch)", batch: batch, unit: "sentences/s", rate: MeanDeviation(seconds.map { n / $0 })))
            m.throughput.append(ThroughputResult(test: "b\(batch) tokens", batch: batch, unit: "tokens/s", rate: MeanDeviation(seconds.map { tokens / $0 })))
        }

        let long = try sentences.longInput(graph, tokens: promptTokens)
        for _ in 0..<options.warmup { try GraphExecutor.run(graph, engine: engine, inputs: long) }
        var rates = [Double](repeating: 0, count: options.repetitions)
        for r in rates.indices {
            let start = monotonicNanoseconds()
            try GraphExecutor.run(graph, engine: engine, inputs: long)
            rates[r] = Double(promptTokens) / (Double(monotonicNanoseconds() - start) / 1e9)
        }
        m.throughput.append(ThroughputResult(test: "pp\(promptTokens)", batch: 1, unit: "tokens/s", rate: MeanDeviation(rates)))
    }
}
