import ArgumentParser
import Foundation
import ParityBench
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify

/// `parity bench`: only a verified file is timed. Every cell is verified first with the code `parity verify` runs;
/// if any fails, nothing is timed (exit 1, the failing node or tensor named). Then each file is loaded once (timed
/// apart), warmed up, and its compute alone is timed in Parity's engine and in the real runtimes beside it.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark verified files: Parity's engine and the real runtimes side by side (compute only).",
        discussion: """
            Each model × format × variant (the cells `parity verify` runs, or --file) is verified first; a file that fails is refused — exit 1, no timings. Then: load time, batch-1 latency percentiles, throughput at --batches (image models, on the Fashion-MNIST test set, with accuracy on the whole set) or prompt processing tokens/s (language models), peak RSS, file size and SHA-256; beside it PyTorch (1 thread), MLX (CPU), llama.cpp's llama-bench and ggml's mnist-eval where installed (an absent runtime is a row saying so). Output: a table in llama-bench's style, --json (schema parity-bench, docs/bench.md), --markdown for the README.
            """)

    @Argument(help: "Bundled model names or reference directories; none means every bundled model.")
    var models: [String] = []
    @Option(name: .long, help: "Formats to benchmark (repeatable); default: every format.")
    var format: [Variant.Format] = []
    @Option(name: .long, help: "Variants to benchmark (repeatable), as `parity verify --variant` takes them.")
    var variant: [String] = []
    @Option(name: .long, help: "Benchmark this converted file instead of converting (one model).")
    var file: String?
    @Option(name: .long, help: "Write the results as JSON (schema parity-bench) to this file.")
    var json: String?
    @Option(name: .long, help: "Write the two tables as markdown to this file (tools/bench/update-readme.sh splices it into README.md).")
    var markdown: String?
    @Option(name: [.customShort("r"), .long], help: "Timed repetitions per throughput test (llama-bench's -r).")
    var repetitions = 5
    @Option(name: .long, help: "Untimed warm-up runs before each test.")
    var warmup = 1
    @Option(name: .long, help: "Batch-1 runs for the latency percentiles.")
    var latencyRuns = 200
    @Option(name: .long, help: "Image models: images per throughput repetition.")
    var images = 500
    @Option(name: .long, help: "Image models: batch sizes for throughput, comma-separated.")
    var batches = "1,32,500"
    @Option(name: .long, help: "Language models: prompt tokens (pp N); default: the golden's sequence length.")
    var nPrompt: Int?
    @Option(name: .long, help: "Language models: generated tokens (tg N) for the runtimes that generate.")
    var nGen = 32
    @Option(name: .long, help: "Sentence embedders: batch sizes over the reference sentences, comma-separated.")
    var sentenceBatches = "1,4,8"
    @Option(name: .long, help: "Sentence embedders: batch-1 runs for the latency percentiles (the reference sentences, cycled).")
    var sentenceLatencyRuns = 32
    @Option(name: .long, help: "Sentence embedders: passes over the reference sentences per throughput repetition.")
    var sentencePasses = 8
    @Option(name: .long, help: "Sentence embedders: tokens of the one-sequence test (pp N, llama-bench's embedding mode).")
    var sentenceTokens = 128
    @Option(name: .long, help: "Directory with the Fashion-MNIST test set (t10k-*-ubyte[.gz]).")
    var testSet = FashionMNIST.debianDirectory
    @Option(name: .long, help: "Quality gate: maximum accuracy drop against the reference (the seeds' max_accuracy_drop).")
    var maxAccuracyDrop = 0.015
    @Option(name: .long, help: "Quality gate: target file size in MB (10^6 bytes), met within ±10% (the seeds' size gate); default: not gated.")
    var sizeTargetMb: Double?
    @Flag(name: .long, help: "Time Parity's engine only (the real runtimes are listed as not run).")
    var noRuntimes = false
    @Option(name: .long, help: "Keep converted files in this directory instead of a temporary one.")
    var keep: String?
    @OptionGroup var im2col: GGMLIm2colOptions
    @OptionGroup var llamaRuntime: LlamaRuntimeOptions

    /// One verified cell, ready to time.
    struct Cell {
        let model: ReferenceModel
        let golden: GoldenFile
        let format: Variant.Format
        let support: FormatSupport?
        let path: String
        let report: VerificationReport
        let verifySeconds: Double
    }

    func options() throws -> BenchOptions {
        var o = BenchOptions()
        o.repetitions = repetitions
        o.warmup = warmup
        o.latencyRuns = latencyRuns
        o.imagesPerRepetition = images
        o.batches = try batches.split(separator: ",").map { text in
            guard let b = Int(text.trimmingCharacters(in: .whitespaces)), b > 0 else { throw ParityError.usage("--batches: \"\(text)\" is not a positive integer") }
            return b
        }
        o.promptTokens = nPrompt
        o.generatedTokens = nGen
        o.maxAccuracyDrop = maxAccuracyDrop
        o.sizeTargetBytes = sizeTargetMb.map { Int($0 * 1_000_000) }
        guard repetitions >= 1, warmup >= 0, latencyRuns >= 1, images >= 1, nGen >= 1, (nPrompt ?? 1) >= 1,
              sentenceLatencyRuns >= 1, sentencePasses >= 1, sentenceTokens >= 1 else {
            throw ParityError.usage("--repetitions, --latency-runs, --images, --n-prompt, --n-gen and the --sentence-* counts must be at least 1; --warmup at least 0")
        }
        return o
    }

    /// The cells `parity verify` would run for these arguments: its own cell list (`Verify.cells`, `LlamaCells`).
    /// Several models in one run: a `--variant` no image format takes (a llama-quantize mix) is left to the Llama.
    func verifyCommand() throws -> Verify {
        let formats = format.isEmpty ? Variant.Format.allCases : format
        let imageVariants = variant.filter { text in formats.contains { (try? Variant.parse(text, format: $0)) != nil } }  // checked: which format takes it
        var arguments = format.flatMap { ["--format", $0.rawValue] } + (models.count == 1 ? variant : imageVariants).flatMap { ["--variant", $0] }
        arguments += ["--ggml-im2col", im2col.ggmlIm2col.rawValue]
        return try Verify.parse(arguments)
    }

    func run() throws {
        // Batch-sized arrays reused from the heap, not mapped afresh per call (fmnist-cnn at batch 500 ran at half
        // speed on page faults without it): the same policy as `parity verify`.
        ProcessMemory.reuseFreedMemory()
        let options = try options()
        var names = models.isEmpty ? ModelRepository.bundledNames() : models
        if models.isEmpty {
            // The models whose weights a set-up script installs (minilm-l6): benchmarked when installed, else said.
            for (name, external) in ExternalModels.known.sorted(by: { $0.key < $1.key }) {
                do { _ = try external.directory(); names.append(name) } catch {
                    printError("bench: \(name): not installed (run \(external.setupScript)); skipped")
                }
            }
        }
        guard !names.isEmpty else { throw ParityError.usage("no models given and no bundled models found") }
        if file != nil && names.count != 1 { throw ParityError.usage("--file benchmarks one converted file against one model") }
        let workDir = try keep ?? makeTemporaryDirectory()
        defer { if keep == nil { try? FileManager.default.removeItem(atPath: workDir) } }

        // 1. Verify every cell; any failure refuses the whole run before a single timing.
        var cells: [Cell] = []
        var refusals: [String] = []
        for name in names {
            let model = try ModelRepository.locate(name)
            let golden = try model.golden()
            for (kind, support, cell) in try cellList(model) {
                let path: String
                if let file { path = file } else {
                    path = "\(workDir)/\(model.name)-\(cell)" + (model.config.llama != nil && kind == .mlx ? "" : ".\(kind.rawValue)")
                    if let support { _ = try support.convert(model, variant: support.parseVariant(cell), to: path) } else if BertCells.isBert(model) {
                        switch kind {
                        case .mlx: _ = try MLXBertCells.convert(model, cell: cell, to: path)
                        case .gguf: _ = try GGUFBertCells.convert(model, cell: cell, to: path)
                        case .safetensors: _ = try SafetensorsConverter.convert(model, dtype: cell, to: path)
                        }
                    } else {
                        _ = try LlamaCells.convert(model, format: kind, cell: cell, to: path)
                    }
                }
                let start = monotonicNanoseconds()
                let report = try support.map { try $0.verify(path, model: model, golden: golden) }
                    ?? (BertCells.isBert(model) ? BertCells.verify(path, format: kind, model: model, golden: golden) : nil)
                    ?? LlamaCells.verify(path, format: kind, model: model, golden: golden, settings: llamaRuntime.settings)
                let seconds = Double(monotonicNanoseconds() - start) / 1e9
                printError("verified \(model.name) \(kind.rawValue) \(report.variant): \(report.verdict.rawValue.uppercased()) (\(String(format: "%.2f", seconds)) s)")
                if report.verdict != .pass { refusals.append(Self.refusal(report)) }
                cells.append(Cell(model: model, golden: golden, format: kind, support: support, path: path, report: report, verifySeconds: seconds))
            }
        }
        guard refusals.isEmpty else {
            for line in refusals { print("REFUSED  " + line) }
            print("bench: nothing was timed — only a file that passes verification is benchmarked")
            if let json { try write(BenchRendering.json([], refusals: refusals, options: options, machine: machine()), to: json) }
            throw ExitCode(Exit.verificationFailed)
        }

        // 2. Time each verified file: Parity's engine, then the real runtimes on the same file.
        let needsTestSet = cells.contains { $0.support != nil }
        let testSet = needsTestSet ? try FashionMNIST(directory: testSet) : nil
        let runner = RuntimeRunner(root: Self.repositoryRoot())
        var rows: [BenchRow] = []
        for cell in cells {
            printError("timing \(cell.model.name) \(cell.format.rawValue) \(cell.report.variant)")
            rows.append(try benchmark(cell, options: options, testSet: testSet, runner: runner))
        }
        let evidence = BenchRendering.evidenceTable(rows) + "\n\n" + BenchRendering.verificationTimeTable(rows)
        let timing = BenchRendering.timingTable(rows)
        print(evidence + "\n\n" + timing)
        if let json { try write(BenchRendering.json(rows, refusals: [], options: options, machine: machine()), to: json) }
        if let markdown {
            // The machine's load beside the numbers: on a shared machine absolute times move with it.
            let info = Dictionary(machine(), uniquingKeysWith: { a, _ in a })
            let header = "<!-- produced by `parity bench` (\(ISO8601DateFormatter().string(from: Date()))), -r \(options.repetitions) -->\n"
                + "Measured on \(info["cpu"] ?? "?"), \(info["cores"] ?? "?") cores, load average \(info["load_average"] ?? "?") (1, 5, 15 min) at the end of the run.\n\n"
            try AtomicFileWriter.write(Array((header + evidence + "\n\n" + timing + "\n").utf8), to: markdown)
        }
    }

    /// (format, support for image models / nil for Llama cells, variant label) for each cell of `model`.
    func cellList(_ model: ReferenceModel) throws -> [(Variant.Format, FormatSupport?, String)] {
        if BertCells.isBert(model) && file == nil {
            return (format.isEmpty ? Variant.Format.allCases : format).flatMap { kind in
                (variant.isEmpty ? BertCells.defaultCells(kind) : variant).map { (kind, nil, $0) }
            }
        }
        if model.config.isTransformer && model.config.llama == nil && !BertCells.isBert(model) {
            // Said, not silently skipped: the timing protocols cover image classifiers, BERT sentence embedders and causal LMs so far.
            printError("bench: \(model.name): no benchmark protocol for \(model.config.architecture) yet (image classifiers, BERT sentence embedders, Llama causal LMs); skipped")
            return []
        }
        if let file {
            let kind = try format.first ?? FormatRegistry.detect(file).format
            if model.config.llama != nil || BertCells.isBert(model) { return [(kind, nil, "file")] }
            let support = im2col.support(try FormatRegistry.named(kind.rawValue))
            return [(kind, support, try support.variant(ofFile: file).label)]
        }
        if model.config.llama != nil {
            var out: [(Variant.Format, FormatSupport?, String)] = []
            for kind in format.isEmpty ? Variant.Format.allCases : format {
                let cells = variant.isEmpty ? LlamaCells.defaultCells(kind) : variant.compactMap { try? LlamaCells.parseCell($0, format: kind) }  // checked: a variant belongs to the format that takes it
                out += cells.map { (kind, nil, $0) }
            }
            return out
        }
        if !variant.isEmpty && models.count != 1 && !variant.contains(where: { text in
            (format.isEmpty ? Variant.Format.allCases : format).contains { (try? Variant.parse(text, format: $0)) != nil }  // checked: which format takes it
        }) { return [] }
        return try verifyCommand().cells().compactMap { support, v in
            support.unsupportedReason(for: model) == nil ? (support.format, support, v.label) : nil
        }
    }

    static func refusal(_ r: VerificationReport) -> String {
        var what: [String] = []
        if let d = r.firstDivergence { what.append("first divergence: \(d.name) (\(d.op)): \(d.status.label) \(d.status.detail)") }
        if let w = r.weights, !w.passed { what.append(WeightRendering.summary(r).trimmingCharacters(in: .whitespaces)) }
        what += r.loadRefusals.map { "the runtime refuses the file: \($0)" }
        what += r.hyperparameterMismatches.map { "hyperparameter: \($0)" }
        if what.isEmpty { what.append("verdict \(r.verdict.rawValue)") }
        return "\(r.model)  \(r.format) \(r.variant)  \(r.file): verification \(r.verdict.rawValue.uppercased()) — " + what.joined(separator: "; ")
    }

    func benchmark(_ cell: Cell, options imageOptions: BenchOptions, testSet: FashionMNIST?, runner: RuntimeRunner) throws -> BenchRow {
        let model = cell.model, report = cell.report
        var options = imageOptions
        if BertCells.isBert(model) { options.latencyRuns = sentenceLatencyRuns }
        let worst = report.layers.filter { $0.metrics != nil }.max { ($0.metrics?.relL2 ?? 0) < ($1.metrics?.relL2 ?? 0) }
        resetPeakRSS()
        var parity = RuntimeMeasurement(runtime: "Parity", status: .measured)
        parity.file = cell.path

        // Load once (timed), then the weight check alone on the loaded engine (the verification above ran it too).
        var weightSeconds = 0.0
        let loadStart = monotonicNanoseconds()
        var agreement: SentenceAgreement?
        if BertCells.isBert(model) {
            let (engine, source) = try openBert(cell)
            parity.loadSeconds = Double(monotonicNanoseconds() - loadStart) / 1e9
            parity.reason = engine.semantics
            let w0 = monotonicNanoseconds()
            _ = try WeightVerifier.verify(bert: source, reference: model.weights())
            weightSeconds = Double(monotonicNanoseconds() - w0) / 1e9
            try ComputeTimer.sentences(engine: engine, graph: model.config.graph, sentences: try Self.sentences(cell.golden), batches: try sentenceBatchList(),
                                       passes: sentencePasses, promptTokens: sentenceTokens, options: options, into: &parity)
            // The end metric, untimed: every reference sentence through the loaded engine against PyTorch's embedding.
            agreement = try SentenceAgreement.compute(graph: model.config.graph, engine: engine, golden: cell.golden)
            parity.accuracy = agreement?.minimumCosine
        } else if model.config.llama == nil, let support = cell.support {
            let engine = try support.open(cell.path, for: model).engine
            parity.loadSeconds = Double(monotonicNanoseconds() - loadStart) / 1e9
            parity.reason = engine.semantics
            let w0 = monotonicNanoseconds()
            _ = try WeightVerifier.verify(engine: engine, model: model)
            weightSeconds = Double(monotonicNanoseconds() - w0) / 1e9
            try ComputeTimer.images(engine: engine, layers: model.config.layers, testSet: testSet!, options: options, into: &parity)
        } else {
            let (engine, source) = try openLlama(cell)
            parity.loadSeconds = Double(monotonicNanoseconds() - loadStart) / 1e9
            parity.reason = engine.semantics + "; generation (tg) is not timed: Parity's Llama engine runs whole sequences (no KV-cache decode path)"
            if let source {
                let w0 = monotonicNanoseconds()
                _ = try WeightVerifier.verify(llama: source, reference: model.weights())
                weightSeconds = Double(monotonicNanoseconds() - w0) / 1e9
            }
            let ids = cell.golden.inputValues["input_ids"]?.integers
            let promptIDs = ids.map { Array($0.data.prefix($0.shape.last ?? 0)) } ?? [1]
            try ComputeTimer.promptProcessing(engine: engine, graph: model.config.graph, promptIDs: promptIDs,
                                              tokens: options.promptTokens ?? promptIDs.count, options: options, into: &parity)
        }
        parity.peakRSSBytes = peakRSSBytes()

        let (bytes, sha) = try Self.fileEvidence(cell.path)
        var row = BenchRow(model: model.name, format: cell.format.rawValue, variant: report.variant, file: cell.path, fileBytes: bytes, sha256: sha,
                           verdict: report.verdict.rawValue, worstMetric: worst.map { "rel L2 \(formatNumber($0.metrics!.relL2)) at \($0.name)" } ?? "-",
                           worstValue: worst?.metrics?.relL2, verifySeconds: cell.verifySeconds, weightCheckSeconds: weightSeconds,
                           activationCheckSeconds: max(0, cell.verifySeconds - weightSeconds))
        if let agreement {
            row.referenceAccuracy = 1
            row.accuracy = agreement.minimumCosine
            row.accuracyMetric = "smallest cosine of the \(agreement.count) reference sentences' embeddings to PyTorch's float32 ones (PyTorch: 1)"
            row.retrievalAgreement = Double(agreement.sameNearestNeighbour) / Double(max(1, agreement.count))
            row.gates = [.size(bytes, target: options.sizeTargetBytes, tolerance: options.sizeTolerance)]
        } else if model.config.llama == nil {
            row.accuracyMetric = "top-1 accuracy on the whole Fashion-MNIST test set"
            row.referenceAccuracy = model.config.testAccuracy
            row.accuracy = parity.accuracy
            row.gates = [.accuracy(parity.accuracy, reference: model.config.testAccuracy, maxDrop: options.maxAccuracyDrop),
                         .size(bytes, target: options.sizeTargetBytes, tolerance: options.sizeTolerance)]
        } else {
            row.top1Agreement = report.logits?.top1
            row.klMean = report.logits?.klMean
            row.gates = [.size(bytes, target: options.sizeTargetBytes, tolerance: options.sizeTolerance)]
        }
        row.measurements = [parity] + runtimes(cell, options: options, testSet: testSet, runner: runner, tokens: options.promptTokens ?? 0, parity: parity)
        return row
    }

    /// The sentence-embedding batch sizes (`--sentence-batches`).
    func sentenceBatchList() throws -> [Int] {
        try sentenceBatches.split(separator: ",").map { text in
            guard let b = Int(text.trimmingCharacters(in: .whitespaces)), b > 0 else { throw ParityError.usage("--sentence-batches: \"\(text)\" is not a positive integer") }
            return b
        }
    }

    /// The golden's reference sentences (`/reference/input_ids`, `attention_mask`, `token_type_ids`).
    static func sentences(_ golden: GoldenFile) throws -> SentenceSet {
        let file = try HDF5Snapshot.read(golden.path)
        func integers(_ name: String) throws -> IntegerTensor {
            let (shape, values) = try file.readIntegers("/reference/" + name)
            return IntegerTensor(shape: shape, data: values.map { Int32(truncatingIfNeeded: $0) })
        }
        let ids = try integers("input_ids"), mask = try integers("attention_mask"), types = try integers("token_type_ids")
        guard ids.rank == 2, mask.shape == ids.shape, types.shape == ids.shape, ids.shape[0] > 0 else {
            throw ParityError.malformed(file: golden.path, at: "/reference", reason: "input_ids \(ids.shape), attention_mask \(mask.shape) and token_type_ids \(types.shape) do not describe one batch")
        }
        return SentenceSet(ids: ids, mask: mask, types: types)
    }

    /// A BERT file opened as its runtime loads it (llama.cpp's bert loader, mlx_embeddings.load, PyTorch), with its
    /// stored tensors for the weight check.
    func openBert(_ cell: Cell) throws -> (GraphEngine, any BertStoredTensors) {
        switch cell.format {
        case .gguf:
            switch try GGUFBertWeights.load(path: cell.path) {
            case let .success(source): return (BertGraphEngine(source: source, ops: BertGGMLOps(source: source)), source)
            case let .failure(refusal): throw ParityError.unsupported(file: cell.path, reason: refusal.description)
            }
        case .mlx:
            let source = try MLXBertWeights.load(directory: cell.path)
            return (BertGraphEngine(source: source, ops: BertMLXOps(source: source)), source)
        case .safetensors:
            let engine = try BertCells.pytorchEngine(cell.path, model: cell.model)
            guard let stored = engine.source as? any BertStoredTensors else {
                throw ParityError.unsupported(file: cell.path, reason: "the safetensors BERT reader exposes no stored tensors for the weight check")
            }
            return (engine, stored)
        }
    }

    /// A Llama file opened as its runtime loads it, with its weight source for the weight check.
    func openLlama(_ cell: Cell) throws -> (GraphEngine, (any LlamaWeightSource)?) {
        switch cell.format {
        case .gguf:
            switch try GGUFLlamaWeights.load(path: cell.path) {
            case let .success(source):
                let s = llamaRuntime.settings
                return (LlamaGraphEngine.ggml(source, kvCache: s.kvCache, flashAttention: s.flashAttention), source)
            case let .failure(refusal): throw ParityError.unsupported(file: cell.path, reason: refusal.description)
            }
        case .mlx:
            let source = try MLXLlamaWeights.load(directory: cell.path)
            return (LlamaGraphEngine.mlx(source), source)
        case .safetensors:
            let engine = try SafetensorsSupport().openGraph(cell.path, for: cell.model).engine
            return (engine, (engine as? PyTorchEngine)?.llama)
        }
    }

    /// The real runtimes for this cell's format, each a row (absent ones say why).
    func runtimes(_ cell: Cell, options: BenchOptions, testSet: FashionMNIST?, runner: RuntimeRunner, tokens: Int, parity: RuntimeMeasurement) -> [RuntimeMeasurement] {
        let model = cell.model
        if BertCells.isBert(model) { return bertRuntimes(cell, options: options, runner: runner) }
        let names: [String] = {
            switch (model.config.llama != nil, cell.format) {
            case (false, .safetensors): return ["PyTorch"]
            case (false, .gguf): return ["ggml mnist-eval", "PyTorch (reference weights)"]
            case (false, .mlx): return ["MLX (CPU)", "PyTorch (reference weights)"]
            case (true, .gguf): return ["llama.cpp llama-bench", "PyTorch (reference weights)"]
            case (true, .mlx): return ["mlx-lm (CPU)", "PyTorch (reference weights)"]
            case (true, .safetensors): return ["PyTorch"]
            }
        }()
        if noRuntimes { return names.map { .absent($0, "not run (--no-runtimes)") } }
        let imageArguments = testSet.map { t in
            ["--test-set", (t.imagesPath as NSString).deletingLastPathComponent, "--batches", options.batches.map(String.init).joined(separator: ","),
             "--repetitions", String(options.repetitions), "--warmup", String(options.warmup), "--latency-runs", String(options.latencyRuns),
             "--images", String(options.imagesPerRepetition)]
        } ?? []
        let pp = parity.throughput.first.map(\.test).flatMap { Int($0.dropFirst(2)) } ?? tokens
        let llamaArguments = ["--prompt-tokens", String(pp), "--gen-tokens", String(options.generatedTokens),
                              "--repetitions", String(options.repetitions), "--warmup", String(options.warmup)]
        return names.map { name -> RuntimeMeasurement in
            var m: RuntimeMeasurement
            switch name {
            case "PyTorch", "PyTorch (reference weights)":
                let weights = name == "PyTorch" ? cell.path : model.weightsPath
                if model.config.llama == nil {
                    m = runner.python(name, interpreter: runner.systemPython, script: "pytorch_bench.py",
                                      ["--config", model.configPath, "--weights", weights] + imageArguments)
                } else {
                    m = runner.python(name, interpreter: runner.llamaPython, script: "llama_torch_bench.py",
                                      ["--reference", model.directory, "--weights", weights] + llamaArguments)
                }
            case "MLX (CPU)":
                m = runner.python(name, interpreter: runner.mlxPython, script: "mlx_bench.py", ["--config", model.configPath, "--file", cell.path] + imageArguments)
            case "mlx-lm (CPU)":
                m = runner.python(name, interpreter: runner.mlxLMPython, script: "mlx_lm_bench.py", ["--directory", cell.path] + llamaArguments)
            case "ggml mnist-eval":
                m = testSet.map { runner.mnistEval(file: cell.path, testSet: $0, options: options) } ?? .absent(name, "no test set")
            default:
                let s = llamaRuntime.settings
                m = runner.llamaBench(file: cell.path, promptTokens: pp, generatedTokens: options.generatedTokens, options: options,
                                      kvCache: s.kvCache.rawValue, flashAttention: s.flashAttention)
            }
            return m
        }
    }

    /// A sentence embedder's runtimes: PyTorch + transformers (one thread) on the reference weights or on the
    /// safetensors file itself, llama.cpp's llama-bench in its embedding mode on a GGUF, mlx-embeddings on an MLX
    /// directory. The Python helpers get the reference sentences and the protocol in one JSON file (bench_common.py).
    func bertRuntimes(_ cell: Cell, options: BenchOptions, runner: RuntimeRunner) -> [RuntimeMeasurement] {
        let names: [String]
        switch cell.format {
        case .safetensors: names = ["PyTorch"]
        case .gguf: names = ["llama.cpp llama-bench", "PyTorch (reference weights)"]
        case .mlx: names = ["mlx-embeddings (CPU)", "PyTorch (reference weights)"]
        }
        if noRuntimes { return names.map { .absent($0, "not run (--no-runtimes)") } }
        let protocolPath = NSTemporaryDirectory() + "parity-bench-sentences-\(getpid()).json"
        defer { try? FileManager.default.removeItem(atPath: protocolPath) }
        do {
            let sentences = try Self.sentences(cell.golden)
            let expected = try HDF5Snapshot.read(cell.golden.path).readFloats("/reference/embeddings")
            let width = expected.shape.last ?? 1
            func integers(_ rows: [[Int32]]) -> JSONValue {
                .array(rows.map { row -> JSONValue in .array(row.map { (v: Int32) -> JSONValue in .number(Int(v)) }) })
            }
            var embeddings: [JSONValue] = []
            for i in 0..<sentences.count {
                embeddings.append(.array((0..<width).map { (j: Int) -> JSONValue in .number(Double(expected.data[i * width + j])) }))
            }
            let batchList: [JSONValue] = try sentenceBatchList().map { (b: Int) -> JSONValue in .number(b) }
            let document = JSONValue.object([
                ("input_ids", integers(sentences.ids)), ("token_type_ids", integers(sentences.types)),
                ("embeddings", .array(embeddings)),
                ("batches", .array(batchList)), ("passes", .number(sentencePasses)),
                ("latency_runs", .number(options.latencyRuns)), ("repetitions", .number(options.repetitions)),
                ("warmup", .number(options.warmup)), ("pp_tokens", .number(sentenceTokens)),
            ])
            try write(document, to: protocolPath)
        } catch {
            return names.map { RuntimeMeasurement(runtime: $0, status: .failed, reason: "the sentence protocol could not be written: \(error)") }
        }
        return names.map { name in
            switch name {
            case "PyTorch", "PyTorch (reference weights)":
                return runner.python(name, interpreter: runner.llamaPython, script: "bert_torch_bench.py",
                                     ["--reference", cell.model.directory, "--weights", name == "PyTorch" ? cell.path : cell.model.weightsPath, "--protocol", protocolPath])
            case "mlx-embeddings (CPU)":
                return runner.python(name, interpreter: runner.mlxEmbeddingsPython, script: "mlx_embeddings_bench.py",
                                     ["--directory", cell.path, "--protocol", protocolPath])
            default:
                return runner.llamaBench(file: cell.path, promptTokens: sentenceTokens, generatedTokens: 0, options: options,
                                         kvCache: "f16", flashAttention: false, embeddings: true)
            }
        }
    }

    /// Size in bytes and SHA-256 of a file; for a directory (an MLX Llama), the sum of its files' sizes and the
    /// SHA-256 of the lines "<name> <sha256 of the file>\n" over its files in name order.
    static func fileEvidence(_ path: String) throws -> (Int, String) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw ParityError.io(path: path, reason: "not found") }
        guard isDirectory.boolValue else {
            let bytes = try readAll(path)
            return (bytes.count, SHA256.hex(bytes))
        }
        var total = 0, lines = ""
        for name in try FileManager.default.contentsOfDirectory(atPath: path).sorted() {
            let bytes = try readAll(path + "/" + name)
            total += bytes.count
            lines += "\(name) \(SHA256.hex(bytes))\n"
        }
        return (total, SHA256.hex(Array(lines.utf8)))
    }

    static func readAll(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ParityError.io(path: path, reason: "cannot read") }
        return [UInt8](data)
    }

    /// The checkout holding tools/bench (the runtimes' helpers): PARITY_ROOT, else walking up from the binary.
    static func repositoryRoot() -> String {
        if let root = ProcessInfo.processInfo.environment["PARITY_ROOT"] { return root }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<8 {
            if FileManager.default.fileExists(atPath: dir.path + "/tools/bench/bench_common.py") { return dir.path }
            dir.deleteLastPathComponent()
        }
        return FileManager.default.currentDirectoryPath
    }

    func machine() -> [(String, String)] {
        var info = [("cores", String(ProcessInfo.processInfo.activeProcessorCount))]
        if let cpu = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),  // checked: informational only
           let line = cpu.split(separator: "\n").first(where: { $0.hasPrefix("model name") }) {
            info.append(("cpu", line.split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "?"))
        }
        if let load = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) {  // checked: informational only
            info.append(("load_average", load.split(separator: " ").prefix(3).joined(separator: " ")))
        }
        // Which of Parity's kernel paths ran: a capped run is slower by design, and says so beside its numbers.
        info.append(("parity_kernels", Kernels.kernelCap ?? "the CPU's best (AVX-512 / AVX2 / portable as available)"))
        info.append(("blas_core", Kernels.blasCore))
        return info
    }

    func write(_ document: JSONValue, to path: String) throws {
        try AtomicFileWriter.write(Array((document.serialized(pretty: true) + "\n").utf8), to: path)
    }
}
