import ParityCore

/// What one `parity bench` run measures. Every field is documented in docs/bench.md and serialized by
/// `BenchJSON` (schema tools/bench/parity-bench.schema.json).
public struct BenchOptions: Sendable {
    /// Timed repetitions per throughput test (llama-bench's `-r`, default 5).
    public var repetitions = 5
    /// Untimed runs before each test (llama-bench runs one warm-up unless `--no-warmup`).
    public var warmup = 1
    /// Batch-1 runs whose latencies make the percentiles.
    public var latencyRuns = 200
    /// Image models: batch sizes for throughput.
    public var batches = [1, 32, 500]
    /// Image models: images per throughput repetition (rounded up to a whole number of batches).
    public var imagesPerRepetition = 500
    /// Language models: prompt tokens (pp N) and generated tokens (tg N); nil prompt = the golden's sequence length.
    public var promptTokens: Int?
    public var generatedTokens = 32
    /// The seeds' quality gates: maximum accuracy drop (their config's `max_accuracy_drop: 0.015`), and the file
    /// size within ±`sizeTolerance` of a target (their "Size Gate: within ±10 % of target size"; no target: not gated).
    public var maxAccuracyDrop = 0.015
    public var sizeTargetBytes: Int?
    public var sizeTolerance = 0.10
    public init() {}
}

/// One throughput test (`b32`: batch of 32 images; `pp32` / `tg32` as llama-bench names them) with its unit.
public struct ThroughputResult: Sendable {
    public let test: String
    public let batch: Int
    public let unit: String
    public let rate: MeanDeviation
    public init(test: String, batch: Int, unit: String, rate: MeanDeviation) {
        self.test = test; self.batch = batch; self.unit = unit; self.rate = rate
    }
}

/// The measurements of one runtime on one file: Parity's engine, or a real runtime run as a separate process.
public struct RuntimeMeasurement: Sendable {
    public enum Status: String, Sendable { case measured, absent, failed }
    public let runtime: String
    public var status: Status
    /// Why it is absent or failed; notes on how it ran when measured.
    public var reason: String?
    public var version: String?
    public var file: String?
    public var loadSeconds: Double?
    public var latency: LatencySummary?
    public var throughput: [ThroughputResult] = []
    public var accuracy: Double?
    public var peakRSSBytes: Int?

    public init(runtime: String, status: Status, reason: String? = nil) {
        self.runtime = runtime; self.status = status; self.reason = reason
    }
    public static func absent(_ runtime: String, _ reason: String) -> RuntimeMeasurement { .init(runtime: runtime, status: .absent, reason: reason) }
}

/// A quality gate from the seeds' configs, with its value, its limit and whether it held.
public struct QualityGate: Sendable {
    public let name: String
    /// nil: not judged (no target given), said so in `detail`.
    public let passed: Bool?
    public let value: Double?
    public let limit: String
    public let detail: String
}

/// One benchmarked cell: a verified file and everything measured on it.
public struct BenchRow: Sendable {
    public let model: String
    public let format: String
    public let variant: String
    public let file: String
    public let fileBytes: Int
    public let sha256: String
    public let verdict: String
    /// The worst activation metric of the verification (the node, the metric, its value).
    public let worstMetric: String
    public let worstValue: Double?
    public let verifySeconds: Double
    public let weightCheckSeconds: Double
    public let activationCheckSeconds: Double
    /// Image models: the reference's accuracy (PyTorch's, recorded in config.json) and this file's on the full test set.
    /// Sentence embedders: the smallest cosine of the reference sentences' embeddings to PyTorch's (reference 1).
    public var referenceAccuracy: Double?
    public var accuracy: Double?
    /// What `accuracy` measures, in words (the end metric of the model's kind).
    public var accuracyMetric: String?
    /// Sentence embedders: the share of reference sentences whose nearest neighbour (by cosine) is PyTorch's.
    public var retrievalAgreement: Double?
    /// Language models: the end metric verification computed against the reference logits.
    public var top1Agreement: Double?
    public var klMean: Double?
    public var gates: [QualityGate] = []
    /// Parity's engine first, then each real runtime (absent ones included).
    public var measurements: [RuntimeMeasurement] = []

    public init(model: String, format: String, variant: String, file: String, fileBytes: Int, sha256: String, verdict: String,
                worstMetric: String, worstValue: Double?, verifySeconds: Double, weightCheckSeconds: Double, activationCheckSeconds: Double) {
        self.model = model; self.format = format; self.variant = variant; self.file = file; self.fileBytes = fileBytes
        self.sha256 = sha256; self.verdict = verdict; self.worstMetric = worstMetric; self.worstValue = worstValue
        self.verifySeconds = verifySeconds; self.weightCheckSeconds = weightCheckSeconds; self.activationCheckSeconds = activationCheckSeconds
    }

    public var accuracyDelta: Double? { accuracy.flatMap { a in referenceAccuracy.map { a - $0 } } }
}

extension QualityGate {
    /// The seeds' accuracy gate: accuracy drop (reference − file) at most `maxDrop`.
    public static func accuracy(_ accuracy: Double?, reference: Double?, maxDrop: Double) -> QualityGate {
        guard let accuracy, let reference else {
            return QualityGate(name: "max_accuracy_drop", passed: nil, value: nil, limit: "≤ \(maxDrop)", detail: "no accuracy measured or no reference accuracy")
        }
        let drop = reference - accuracy
        return QualityGate(name: "max_accuracy_drop", passed: drop <= maxDrop, value: drop, limit: "≤ \(maxDrop)",
                           detail: "reference \(reference), file \(accuracy)")
    }

    /// The seeds' size gate: file size within ±tolerance of the target.
    public static func size(_ bytes: Int, target: Int?, tolerance: Double) -> QualityGate {
        guard let target else {
            return QualityGate(name: "size_target", passed: nil, value: Double(bytes), limit: "-", detail: "no --size-target-mb given: not gated")
        }
        let ratio = Double(bytes) / Double(target)
        return QualityGate(name: "size_target", passed: abs(ratio - 1) <= tolerance, value: Double(bytes),
                           limit: "\(target) B ± \(Int(tolerance * 100))%", detail: "size / target = \(ratio)")
    }
}
