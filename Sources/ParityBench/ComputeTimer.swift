import ParityCore
import ParityEngine
import ParityModels

/// Times compute only, on an engine already loaded: inputs are built before the clock starts, one warm-up run
/// precedes each test, and the timed loops write into preallocated arrays. (What an engine allocates inside its
/// own forward pass — its output tensors — is the engine's, not the harness's.)
public enum ComputeTimer {
    /// Image models: batch-1 latency percentiles, throughput (images/s) per batch size, and accuracy on the whole
    /// test set (untimed, batches of 500).
    public static func images(engine: FormatEngine, layers: [LayerSpec], testSet: FashionMNIST, options: BenchOptions,
                              into m: inout RuntimeMeasurement) throws(LayerExecutionError) {
        let singles = (0..<min(options.latencyRuns, testSet.count)).map { testSet.batch($0, 1) }
        if let first = singles.first {
            for _ in 0..<options.warmup { _ = try engine.forwardOutput(layers, input: first) }
        }
        var latencies = [UInt64](repeating: 0, count: singles.count)
        for i in singles.indices {
            let start = monotonicNanoseconds()
            _ = try engine.forwardOutput(layers, input: singles[i])
            latencies[i] = monotonicNanoseconds() - start
        }
        m.latency = LatencySummary(nanoseconds: latencies)

        for batch in options.batches where batch <= testSet.count {
            let batchesPerRepetition = max(1, (options.imagesPerRepetition + batch - 1) / batch)
            let inputs = (0..<batchesPerRepetition).map { testSet.batch(($0 * batch) % (testSet.count - batch + 1), batch) }
            for _ in 0..<options.warmup { _ = try engine.forwardOutput(layers, input: inputs[0]) }
            var rates = [Double](repeating: 0, count: options.repetitions)
            for r in 0..<options.repetitions {
                let start = monotonicNanoseconds()
                for input in inputs { _ = try engine.forwardOutput(layers, input: input) }
                rates[r] = Double(batchesPerRepetition * batch) / (Double(monotonicNanoseconds() - start) / 1e9)
            }
            m.throughput.append(ThroughputResult(test: "b\(batch)", batch: batch, unit: "images/s", rate: MeanDeviation(rates)))
        }
        m.accuracy = try accuracy(engine: engine, layers: layers, testSet: testSet)
    }

    /// Top-1 accuracy over the whole test set (argmax of the logits; ties take the first class, as torch.argmax).
    public static func accuracy(engine: FormatEngine, layers: [LayerSpec], testSet: FashionMNIST) throws(LayerExecutionError) -> Double {
        var correct = 0
        var start = 0
        while start < testSet.count {
            let n = min(500, testSet.count - start)
            let logits = try engine.forwardOutput(layers, input: testSet.batch(start, n))
            let classes = logits.count / n
            for i in 0..<n {
                var best = 0
                for c in 1..<classes where logits.data[i * classes + c] > logits.data[i * classes + best] { best = c }
                if best == testSet.labels[start + i] { correct += 1 }
            }
            start += n
        }
        return Double(correct) / Double(testSet.count)
    }

    /// A causal LM: prompt processing (pp N) as llama-bench measures it — one forward pass over N prompt tokens at
    /// batch 1, tokens/s = N / time, `repetitions` times after a warm-up. The prompt is the golden's first sequence
    /// (cycled to N tokens), positions 0..N−1, attention mask all ones.
    public static func promptProcessing(engine: GraphEngine, graph: ModelGraph, promptIDs: [Int32], tokens: Int, options: BenchOptions,
                                        into m: inout RuntimeMeasurement) throws {
        var inputs: [String: GraphValue] = [:]
        for input in graph.inputs {
            switch input.name {
            case "input_ids": inputs[input.path] = .integers(IntegerTensor(shape: [1, tokens], data: (0..<tokens).map { promptIDs[$0 % promptIDs.count] }))
            case "position_ids": inputs[input.path] = .integers(IntegerTensor(shape: [1, tokens], data: (0..<tokens).map { Int32($0) }))
            case "attention_mask": inputs[input.path] = .integers(IntegerTensor(shape: [1, tokens], data: [Int32](repeating: 1, count: tokens)))
            default: throw ParityError.usage("bench: the \(graph.architecture) graph takes input '\(input.name)', which the prompt-processing test does not know how to fill")
            }
        }
        for _ in 0..<options.warmup { try GraphExecutor.run(graph, engine: engine, inputs: inputs) }
        var rates = [Double](repeating: 0, count: options.repetitions)
        for r in 0..<options.repetitions {
            let start = monotonicNanoseconds()
            try GraphExecutor.run(graph, engine: engine, inputs: inputs)
            rates[r] = Double(tokens) / (Double(monotonicNanoseconds() - start) / 1e9)
        }
        m.throughput.append(ThroughputResult(test: "pp\(tokens)", batch: 1, unit: "tokens/s", rate: MeanDeviation(rates)))
    }
}
