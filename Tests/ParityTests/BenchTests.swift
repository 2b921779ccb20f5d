import Foundation
import ParityBench
import ParityCore
import ParityFormats
import Testing

/// `parity bench`: only a verified file is timed; its statistics, its JSON contract and its rows for absent
/// runtimes. No test asserts a time: the machine is shared and times move with load.
@Suite("parity bench")
struct BenchTests {
    /// Every runtime pointed at a path that does not exist, so the rows for absent runtimes are exercised and the
    /// test needs no Python, llama.cpp or ggml.
    static let absentRuntimes = ["TORCH_PYTHON", "MLX_PYTHON", "MLXLM_PYTHON", "MLXEMB_PYTHON", "LLAMA_PYTHON", "LLAMA_BENCH", "MNIST_EVAL"]
        .reduce(into: [String: String]()) { $0["PARITY_BENCH_" + $1] = "/nonexistent/parity-bench-" + $1.lowercased() }

    /// Small counts keep the run short; the timing code runs the same loops at any count.
    static let quick = ["-r", "2", "--warmup", "1", "--latency-runs", "3", "--images", "8", "--batches", "1,8"]

    /// The golden's 64 test images and labels written as Fashion-MNIST IDX files (pixel = value × 255, exact: the
    /// golden stores pixel / 255 of uint8 pixels), so the test does not need Debian's dataset package.
    static func goldenTestSet(_ model: String, in dir: TemporaryDirectory) throws -> String {
        let golden = try GoldenFile(path: Repo.golden + "/\(model)/golden.h5")
        let images = try #require(golden.inputs["images"])
        let labels = try #require(golden.labels)
        let n = images.shape[0]
        func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
        let pixels = images.data.map { UInt8(($0 * 255).rounded()) }
        try writeBytes(be32(0x0803) + be32(n) + be32(28) + be32(28) + pixels, to: dir.file("t10k-images-idx3-ubyte"))
        try writeBytes(be32(0x0801) + be32(n) + labels.map { UInt8($0) }, to: dir.file("t10k-labels-idx1-ubyte"))
        return dir.path
    }

    static func schema() throws -> JSONSchemaValidator {
        JSONSchemaValidator(root: try JSONParser.parse(readBytes(Repo.root + "/tools/bench/parity-bench.schema.json")))
    }

    @Test("a file that fails verification is refused: exit 1, the failing layer named, no timings, JSON verdict refused")
    func refusesFailingFile() throws {
        let dir = try TemporaryDirectory()
        // The same broken file as CLITests' verify failure: conv2's weights scaled by 1.01.
        let source = try SafetensorsFile(path: Repo.golden + "/fmnist-cnn/model.safetensors")
        var writer = SafetensorsWriter()
        for entry in source.entries {
            let t = try source.tensor(entry)
            try writer.add(name: entry.name, tensor: entry.name == "conv2.weight" ? Tensor(shape: t.shape, data: t.data.map { $0 * 1.01 }) : t)
        }
        try writer.write(to: dir.file("perturbed.safetensors"))
        let result = try runParity(["bench", "fmnist-cnn", "--file", dir.file("perturbed.safetensors"), "--json", dir.file("b.json")]
                                   + Self.quick, environment: Self.absentRuntimes)
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("REFUSED  fmnist-cnn  safetensors f32"))
        #expect(result.stdout.contains("first divergence: conv2"))
        #expect(result.stdout.contains("conv2.weight"), "the weight check names the tensor")
        for timing in ["images/s", "latency", "timing ", "µs"] {
            #expect(!result.stdout.contains(timing) && !result.stderr.contains(timing), "no timing is printed: found '\(timing)'")
        }
        let json = try JSONParser.parse(readBytes(dir.file("b.json")))
        #expect(try Self.schema().validate(json) == [])
        #expect(json["verdict"]?.stringValue == "refused")
        #expect(json["rows"]?.arrayValue?.isEmpty == true)
        #expect(json["refusals"]?.arrayValue?.first?.stringValue?.contains("conv2") == true)
    }

    @Test("a verified file is timed; the JSON validates against its schema; each absent runtime is a row naming what is missing")
    func measuresVerifiedFile() throws {
        let dir = try TemporaryDirectory()
        let testSet = try Self.goldenTestSet("fmnist-mlp", in: dir)
        let reference = Repo.golden + "/fmnist-mlp/model.safetensors"
        let result = try runParity(["bench", "fmnist-mlp", "--file", reference, "--test-set", testSet, "--json", dir.file("b.json")] + Self.quick,
                                   environment: Self.absentRuntimes, timeout: 300)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let json = try JSONParser.parse(readBytes(dir.file("b.json")))
        #expect(try Self.schema().validate(json) == [])
        let row = try #require(json["rows"]?.arrayValue?.first)
        // The file's SHA-256 as the golden recorded it (computed by the Python generator, not by Parity).
        let golden = try GoldenFile(path: Repo.golden + "/fmnist-mlp/golden.h5")
        #expect(row["sha256"]?.stringValue == golden.weightsSHA256)
        #expect(row["verification"]?["verdict"]?.stringValue == "pass")
        let measurements = try #require(row["measurements"]?.arrayValue)
        let parity = try #require(measurements.first)
        #expect(parity["runtime"]?.stringValue == "Parity" && parity["status"]?.stringValue == "measured")
        #expect(parity["throughput"]?.arrayValue?.compactMap { $0["test"]?.stringValue } == ["b1", "b8"])
        #expect(parity["latency"]?["runs"]?.intValue == 3)
        // A verified file's accuracy on the 64 golden images: every golden prediction is decisive for this file
        // (float32, exact weights), so it equals the fraction of golden labels PyTorch's logits get right.
        let logits = try #require(golden.activations.last?.tensor)
        let correct = (0..<64).filter { i in
            let row = logits.data[(i * 10)..<(i * 10 + 10)]
            return row.firstIndex(of: row.max()!)! - i * 10 == Int(golden.labels![i])
        }.count
        #expect(parity["accuracy"]?.doubleValue == Double(correct) / 64)
        let pytorch = try #require(measurements.dropFirst().first)
        #expect(pytorch["runtime"]?.stringValue == "PyTorch" && pytorch["status"]?.stringValue == "absent")
        #expect(pytorch["reason"]?.stringValue?.contains("/nonexistent/parity-bench-torch_python") == true)
        #expect(result.stdout.contains("| PyTorch") && result.stdout.contains("ABSENT"))
        #expect(result.stdout.contains("/nonexistent/parity-bench-torch_python"), "the table says which runtime path is missing")
    }

    /// Small counts for the sentence embedder (minilm-l6): the same loops at any count.
    static let quickSentences = ["-r", "2", "--warmup", "1", "--sentence-latency-runs", "3", "--sentence-passes", "1",
                                 "--sentence-batches", "1,8", "--sentence-tokens", "16"]

    @Test("minilm-l6: a GGUF whose attn_q and attn_k are swapped is refused — exit 1, the node named, no timings")
    func refusesFailingBertFile() throws {
        let bytes = try BertVerifyCellsTests.llamaCppFile(.f32)
        let planted = try #require(BertVerifyCellsTests.planted.first { $0.tensor == "blk.0.attn_q.weight" })
        let dir = try TemporaryDirectory()
        try writeBytes(try planted.plant(bytes), to: dir.file("swapped.gguf"))
        let result = try runParity(["bench", "minilm-l6", "--file", dir.file("swapped.gguf"), "--format", "gguf", "--json", dir.file("b.json")]
                                   + Self.quickSentences, environment: Self.absentRuntimes, timeout: 300)
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("REFUSED  minilm-l6  gguf"))
        #expect(result.stdout.contains(planted.node), "the first divergent node is named")
        for timing in ["sentences/s", "tokens/s", "latency", "timing ", "µs"] {
            #expect(!result.stdout.contains(timing) && !result.stderr.contains(timing), "no timing is printed: found '\(timing)'")
        }
        let json = try JSONParser.parse(readBytes(dir.file("b.json")))
        #expect(try Self.schema().validate(json) == [])
        #expect(json["verdict"]?.stringValue == "refused" && json["rows"]?.arrayValue?.isEmpty == true)
    }

    @Test("minilm-l6 GGUF f32: verified, timed; the row holds the end metric, the evidence and a row per absent runtime")
    func measuresBertCell() throws {
        let dir = try TemporaryDirectory()
        let result = try runParity(["bench", "minilm-l6", "--format", "gguf", "--variant", "f32", "--json", dir.file("b.json")] + Self.quickSentences,
                                   environment: Self.absentRuntimes, timeout: 300)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let json = try JSONParser.parse(readBytes(dir.file("b.json")))
        #expect(try Self.schema().validate(json) == [])
        let row = try #require(json["rows"]?.arrayValue?.first)
        #expect(row["model"]?.stringValue == "minilm-l6" && row["format"]?.stringValue == "gguf" && row["variant"]?.stringValue == "f32")
        // Parity's converter writes llama.cpp's file byte for byte: its SHA-256 is the one recorded from llama.cpp's
        // convert_hf_to_gguf.py (tools/minilm/llamacpp_fixtures.sh), not one computed by Parity.
        let record = try required(try MiniLMGGUF.tables(), "minilm-l6-f32.gguf", in: MiniLMGGUF.tablesPath)
        #expect(row["sha256"]?.stringValue == record["sha256"]?.stringValue)
        #expect(row["verification"]?["verdict"]?.stringValue == "pass")
        #expect((row["verification"]?["weight_check_seconds"]?.doubleValue ?? -1) > 0, "the weight check ran on the loaded file")
        // The end metric: the issue's bar for float files is cosine 0.9999 to PyTorch's embedding, and every nearest
        // neighbour kept (verification fails a float file otherwise, so a pass implies both).
        #expect((row["accuracy"]?.doubleValue ?? 0) >= 0.9999)
        #expect(row["reference_accuracy"]?.doubleValue == 1)
        #expect(row["retrieval_agreement"]?.doubleValue == 1)
        #expect(row["accuracy_metric"]?.stringValue?.contains("cosine") == true)
        let measurements = try #require(row["measurements"]?.arrayValue)
        let parity = try #require(measurements.first)
        #expect(parity["runtime"]?.stringValue == "Parity" && parity["status"]?.stringValue == "measured")
        #expect(parity["throughput"]?.arrayValue?.compactMap { $0["test"]?.stringValue } == ["b1", "b1 tokens", "b8", "b8 tokens", "pp16"])
        #expect(parity["throughput"]?.arrayValue?.compactMap { $0["unit"]?.stringValue } == ["sentences/s", "tokens/s", "sentences/s", "tokens/s", "tokens/s"])
        #expect(parity["latency"]?["runs"]?.intValue == 3)
        #expect((parity["peak_rss_bytes"]?.intValue ?? 0) > 0)
        let runtimes = measurements.dropFirst().compactMap { m in m["runtime"]?.stringValue.map { ($0, m["status"]?.stringValue ?? "", m["reason"]?.stringValue ?? "") } }
        #expect(runtimes.map(\.0) == ["llama.cpp llama-bench", "PyTorch (reference weights)"])
        #expect(runtimes.allSatisfy { $0.1 == "absent" && $0.2.contains("/nonexistent/parity-bench-") }, "\(runtimes)")
    }

    @Test("statistics on a known sample: mean, sample standard deviation and HdrHistogram percentiles")
    func statistics() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, Σ(x − mean)² = 32, sample variance 32 / 7.
        let md = MeanDeviation([2, 4, 4, 4, 5, 5, 7, 9])
        #expect(md.mean == 5 && md.count == 8)
        #expect(abs(md.stddev - (32.0 / 7).squareRoot()) < 1e-12)
        #expect(MeanDeviation([3]).stddev == 0, "one repetition has no spread (llama-bench prints 0)")

        // 1, 2, …, 100 µs: p50 = 50 µs, p95 = 95 µs, p99 = 99 µs, max = 100 µs; mean 50.5 µs;
        // sample variance Σ(i − 50.5)² / 99 = 83325 / 99 µs².
        let l = LatencySummary(nanoseconds: (1...100).map { UInt64($0) * 1000 })
        // HdrHistogram with 3 significant digits reports a value's bucket: within 0.1 % of the recorded value.
        let resolution = 1e-3
        for (got, want) in [(l.p50Seconds, 50e-6), (l.p95Seconds, 95e-6), (l.p99Seconds, 99e-6)] {
            #expect(abs(got - want) <= want * resolution, "percentile \(got) s, expected \(want) s within 0.1 %")
        }
        #expect(l.maxSeconds == 100e-6)
        #expect(abs(l.meanSeconds - 50.5e-6) < 1e-15)
        #expect(abs(l.stddevSeconds - (83325.0 / 99).squareRoot() * 1e-6) < 1e-15)
        #expect(l.count == 100)
    }

    @Test("the verification-time table sums each model's cells and all cells; weight and activation checks apart")
    func verificationTimeTable() {
        func row(_ model: String, _ weights: Double, _ activations: Double) -> BenchRow {
            BenchRow(model: model, format: "gguf", variant: "f32", file: "/x", fileBytes: 1, sha256: "00", verdict: "pass",
                     worstMetric: "-", worstValue: nil, verifySeconds: weights + activations, weightCheckSeconds: weights,
                     activationCheckSeconds: activations)
        }
        let table = BenchRendering.verificationTimeTable([row("a", 0.25, 1.5), row("b", 0.5, 0.25), row("a", 0.1, 2)])
        let lines = table.split(separator: "\n").map { $0.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) } }
        // Header, rule, one row per model in first-seen order (a: 0.25 + 0.1, 1.5 + 2), then all three cells.
        // (No sum lands on a rounding tie at two digits, so the expected strings do not depend on printf's tie rule.)
        #expect(lines.count == 5)
        #expect(lines[2] == ["a", "2", "0.35", "3.50", "3.85"], "\(lines[2])")
        #expect(lines[3] == ["b", "1", "0.50", "0.25", "0.75"], "\(lines[3])")
        #expect(lines[4] == ["all", "3", "0.85", "3.75", "4.60"], "\(lines[4])")
    }

    @Test("a helper's JSON: absent is a row with its reason; samples become mean ± stddev")
    func helperOutput() throws {
        let absent = try RuntimeRunner.parseHelper("MLX (CPU)", JSONParser.parse(Array(#"{"absent": "no mlx"}"#.utf8)))
        #expect(absent.status == .absent && absent.reason == "no mlx")
        let measured = try RuntimeRunner.parseHelper("PyTorch", JSONParser.parse(Array(
            #"{"version": "torch 1.13", "load_seconds": 0.5, "latency_ns": [1000, 2000, 3000], "accuracy": 0.9, "throughput": [{"test": "b1", "batch": 1, "unit": "images/s", "samples": [2, 4, 4, 4, 5, 5, 7, 9]}]}"#.utf8)))
        #expect(measured.status == .measured && measured.loadSeconds == 0.5 && measured.accuracy == 0.9)
        #expect(measured.throughput.first?.rate == MeanDeviation([2, 4, 4, 4, 5, 5, 7, 9]))
        #expect(measured.latency?.maxSeconds == 3e-6)
    }
}
