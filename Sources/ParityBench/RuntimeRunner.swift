import Foundation
import ParityCore

/// Runs the real runtimes as separate processes on the same verified file. Each helper prints one JSON object on
/// stdout (tools/bench/*.py: raw timing samples, timed inside the runtime's process after its load) or is a native
/// tool with its own output (llama-bench's `-o json`, mnist-eval's log lines); Parity computes the statistics from
/// the raw samples with the same code as for its own engine. A runtime that is not installed is a row saying so.
public struct RuntimeRunner: Sendable {
    /// The repository root (tools/bench/, .build-* directories).
    public let root: String
    /// Debian's interpreter: the only one with PyTorch (torch 1.13).
    public var systemPython: String
    public var mlxPython: String
    public var mlxLMPython: String
    public var mlxEmbeddingsPython: String
    public var llamaPython: String
    public var llamaBench: String
    public var mnistEval: String
    public var timeoutSeconds: Double = 600

    /// Each runtime's path defaults to where this repository's scripts put it; an environment variable
    /// (PARITY_BENCH_TORCH_PYTHON, _MLX_PYTHON, _MLXLM_PYTHON, _LLAMA_PYTHON, _LLAMA_BENCH, _MNIST_EVAL) overrides it.
    public init(root: String, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.root = root
        func path(_ key: String, _ fallback: String) -> String { environment["PARITY_BENCH_" + key] ?? fallback }
        systemPython = path("TORCH_PYTHON", "/usr/bin/python3")
        mlxPython = path("MLX_PYTHON", root + "/.build-venv-mlx/bin/python")
        mlxLMPython = path("MLXLM_PYTHON", root + "/.build-venv-mlxlm/bin/python")
        mlxEmbeddingsPython = path("MLXEMB_PYTHON", root + "/.build-venv-mlxemb/bin/python")
        llamaPython = path("LLAMA_PYTHON", root + "/.build-venv-llama/bin/python")
        llamaBench = path("LLAMA_BENCH", root + "/.build-llama/build-native/bin/llama-bench")
        mnistEval = path("MNIST_EVAL", root + "/.build-mnist/build-native/bin/mnist-eval")
    }

    public func script(_ name: String) -> String { root + "/tools/bench/" + name }

    /// Runs a command with /usr/bin/time measuring its peak RSS; returns (status, stdout, stderr, peak RSS bytes).
    func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String, peakRSS: Int?) {
        let rssFile = NSTemporaryDirectory() + "parity-bench-rss-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: rssFile) }
        let timed = FileManager.default.isExecutableFile(atPath: "/usr/bin/time")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: timed ? "/usr/bin/time" : executable)
        process.arguments = timed ? ["-f", "%M", "-o", rssFile, executable] + arguments : arguments
        var environment = ProcessInfo.processInfo.environment
        // One thread everywhere: the runtimes are compared with Parity's single-threaded engine.
        for key in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"] { environment[key] = "1" }
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes while it runs (a full pipe would block the child).
        nonisolated(unsafe) var errData = Data()
        let reader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !reader.isFinished { usleep(1000) }
        let rss = (try? String(contentsOfFile: rssFile, encoding: .utf8))  // checked: no file = RSS not measured
            .flatMap { $0.split(separator: "\n").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } }.map { $0 * 1024 }
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self), rss)
    }

    /// A path as a reader of the table should see it: relative to the repository root when inside it (a results table
    /// pasted into the README must not carry the machine's checkout path).
    func shown(_ path: String) -> String {
        path.hasPrefix(root + "/") ? String(path.dropFirst(root.count + 1)) : path
    }

    /// A Python helper: `{"absent": reason}` or the measurement fields (docs/bench.md, "helper output").
    public func python(_ runtime: String, interpreter: String, script name: String, _ arguments: [String]) -> RuntimeMeasurement {
        guard FileManager.default.isExecutableFile(atPath: interpreter) else {
            return .absent(runtime, "\(shown(interpreter)) not found (see docs/bench.md: how to install the runtimes)")
        }
        do {
            let result = try run(interpreter, [script(name)] + arguments)
            guard result.status == 0 else {
                var m = RuntimeMeasurement(runtime: runtime, status: .failed,
                                           reason: "\(name) exited \(result.status): " + result.stderr.split(separator: "\n").suffix(3).joined(separator: " | "))
                m.peakRSSBytes = result.peakRSS
                return m
            }
            var m = try Self.parseHelper(runtime, JSONParser.parse(Array(result.stdout.utf8)))
            if m.peakRSSBytes == nil { m.peakRSSBytes = result.peakRSS }
            return m
        } catch {
            return RuntimeMeasurement(runtime: runtime, status: .failed, reason: "\(name): \(error)")
        }
    }

    /// Parses a helper's JSON (the schema is in docs/bench.md).
    public static func parseHelper(_ runtime: String, _ json: JSONValue) throws -> RuntimeMeasurement {
        if let reason = json["absent"]?.stringValue { return .absent(runtime, reason) }
        var m = RuntimeMeasurement(runtime: runtime, status: .measured, reason: json["notes"]?.stringValue)
        m.version = json["version"]?.stringValue
        m.file = json["file"]?.stringValue
        m.loadSeconds = json["load_seconds"]?.doubleValue
        if let latencies = json["latency_ns"]?.arrayValue, !latencies.isEmpty {
            m.latency = LatencySummary(nanoseconds: latencies.compactMap { $0.doubleValue.map { UInt64(max(0, $0)) } })
        }
        for t in json["throughput"]?.arrayValue ?? [] {  // checked: a helper may time no throughput test
            guard let test = t["test"]?.stringValue, let batch = t["batch"]?.intValue, let unit = t["unit"]?.stringValue,
                  let samples = t["samples"]?.arrayValue else { throw ParityError.usage("helper output: a throughput entry lacks test/batch/unit/samples") }
            m.throughput.append(ThroughputResult(test: test, batch: batch, unit: unit, rate: MeanDeviation(samples.compactMap(\.doubleValue))))
        }
        m.accuracy = json["accuracy"]?.doubleValue
        m.peakRSSBytes = json["peak_rss_bytes"]?.intValue
        return m
    }

    /// llama.cpp's own llama-bench (`-o json`, one thread, `-r` repetitions with its warm-up) on a GGUF file.
    public func llamaBench(file: String, promptTokens: Int, generatedTokens: Int, options: BenchOptions,
                           kvCache: String, flashAttention: Bool, embeddings: Bool = false) -> RuntimeMeasurement {
        let runtime = "llama.cpp llama-bench"
        guard FileManager.default.isExecutableFile(atPath: llamaBench) else {
            return .absent(runtime, "\(shown(llamaBench)) not built (tools/llama/build-llama.sh builds it)")
        }
        do {
            // Embedding mode (a BERT): `-embd 1` runs the prompt through llama.cpp's embedding path; no generation.
            let mode = embeddings ? ["-embd", "1"] : ["-ctk", kvCache, "-ctv", kvCache]
            let result = try run(llamaBench, ["-m", file, "-p", String(promptTokens), "-n", String(generatedTokens), "-r", String(options.repetitions),
                                              "-t", "1", "-fa", flashAttention ? "on" : "off", "-o", "json"] + mode
                                 + (options.warmup == 0 ? ["--no-warmup"] : []))
            guard result.status == 0 else {
                return RuntimeMeasurement(runtime: runtime, status: .failed,
                                          reason: "llama-bench exited \(result.status): " + result.stderr.split(separator: "\n").suffix(3).joined(separator: " | "))
            }
            var m = RuntimeMeasurement(runtime: runtime, status: .measured,
                                       reason: embeddings
                                           ? "1 thread, embedding mode (-embd 1), flash attention \(flashAttention ? "on" : "off"); pp only (llama-bench times no batches of sentences); load time is not reported by llama-bench"
                                           : "1 thread, KV cache \(kvCache), flash attention \(flashAttention ? "on" : "off"); load time is not reported by llama-bench")
            m.file = file
            m.peakRSSBytes = result.peakRSS
            for entry in try JSONParser.parse(Array(result.stdout.utf8)).arrayValue ?? [] {  // checked: no entries = no rows, said below
                m.version = entry["build_commit"]?.stringValue.map { "build \($0)" }
                let nPrompt = entry["n_prompt"]?.intValue ?? 0, nGen = entry["n_gen"]?.intValue ?? 0
                let samples = (entry["samples_ts"]?.arrayValue ?? []).compactMap(\.doubleValue)
                let test = nPrompt > 0 ? "pp\(nPrompt)" : "tg\(nGen)"
                m.throughput.append(ThroughputResult(test: test, batch: 1, unit: "tokens/s", rate: MeanDeviation(samples)))
            }
            if m.throughput.isEmpty { m.status = .failed; m.reason = "llama-bench printed no test results" }
            return m
        } catch {
            return RuntimeMeasurement(runtime: runtime, status: .failed, reason: "llama-bench: \(error)")
        }
    }

    /// ggml's mnist-eval (examples/mnist) on an image model's GGUF: it evaluates the whole test set at its physical
    /// batch of 500 and prints the evaluation time (excluding its load) and the accuracy.
    public func mnistEval(file: String, testSet: FashionMNIST, options: BenchOptions) -> RuntimeMeasurement {
        let runtime = "ggml mnist-eval"
        guard FileManager.default.isExecutableFile(atPath: mnistEval) else {
            return .absent(runtime, "\(shown(mnistEval)) not built (tools/bench/build-mnist-eval.sh builds it)")
        }
        do {
            let dir = NSTemporaryDirectory() + "parity-bench-idx-\(getpid())"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let (images, labels) = try testSet.writeRawIDX(to: dir)
            var m = RuntimeMeasurement(runtime: runtime, status: .measured,
                                       reason: "whole test set at mnist-eval's batch 500, its default threads (no option to set them); load excluded")
            m.file = file
            var rates: [Double] = []
            for _ in 0..<(options.repetitions + options.warmup) {
                let result = try run(mnistEval, [file, images, labels, "CPU"])
                let log = result.stdout + "\n" + result.stderr
                guard result.status == 0 else {
                    // The source path relative to the checkout: the table goes into the README.
                    let assertion = log.split(separator: "\n").first { $0.contains("GGML_ASSERT") }
                        .map { String($0).replacingOccurrences(of: root + "/", with: "") }
                    return RuntimeMeasurement(runtime: runtime, status: .failed,
                                              reason: "mnist-eval refuses the file: " + (assertion ?? "exit \(result.status)")
                                                + " (mnist-eval's loader takes only the layout and types of ggml's own mnist GGUFs)")
                }
                m.peakRSSBytes = max(m.peakRSSBytes ?? 0, result.peakRSS ?? 0)
                // "mnist_model_eval: model evaluation on 10000 images took 1234.56 ms, 123.45 us/image"
                if let line = log.split(separator: "\n").first(where: { $0.contains("us/image") }),
                   let us = line.split(separator: ",").last?.split(separator: " ").first.flatMap({ Double($0) }) {
                    rates.append(1e6 / us)
                }
                if let line = log.split(separator: "\n").first(where: { $0.contains("test_acc=") }),
                   let value = line.split(separator: "=").last?.split(separator: "+").first.flatMap({ Double($0) }) {
                    m.accuracy = value / 100
                }
            }
            let timed = Array(rates.dropFirst(options.warmup))
            guard !timed.isEmpty else { return RuntimeMeasurement(runtime: runtime, status: .failed, reason: "mnist-eval printed no evaluation time") }
            m.throughput = [ThroughputResult(test: "b500", batch: 500, unit: "images/s", rate: MeanDeviation(timed))]
            return m
        } catch {
            return RuntimeMeasurement(runtime: runtime, status: .failed, reason: "mnist-eval: \(error)")
        }
    }
}
