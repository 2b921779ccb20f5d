import Foundation
import ParityCore
import ParityModels

/// What happened at one reference layer.
public enum LayerStatus: Equatable, Sendable {
    case pass
    case fail([Violation])
    /// The engine produced no output under this name.
    case missing
    case shapeMismatch(expected: [Int], actual: [Int])
    case nonFinite(nan: Int, inf: Int)
    /// The golden itself holds NaN or Inf at this layer (a broken golden: regenerate it).
    case goldenNonFinite(Int)
    /// The layer could not run on the file's weights (e.g. a weight of the wrong shape).
    case error(String)
    /// An earlier layer could not run.
    case notRun
    /// No tolerance policy exists for this (format, variant): metrics are shown, nothing is judged.
    case unjudged

    public var isPass: Bool { self == .pass }
    public var label: String {
        switch self {
        case .pass: return "pass"
        case .fail: return "FAIL"
        case .missing: return "MISSING"
        case .shapeMismatch: return "SHAPE"
        case .nonFinite: return "NON-FINITE"
        case .goldenNonFinite: return "BAD GOLDEN"
        case .error: return "ERROR"
        case .notRun: return "not run"
        case .unjudged: return "unjudged"
        }
    }
    public var detail: String {
        switch self {
        case let .fail(v): return v.map(\.description).joined(separator: "; ")
        case let .shapeMismatch(e, a): return "expected shape \(e), got \(a)"
        case let .nonFinite(nan, inf): return "\(nan) NaN, \(inf) Inf"
        case let .goldenNonFinite(n): return "the golden has \(n) NaN/Inf values at this layer; regenerate it"
        case let .error(reason): return reason
        case .missing: return "the engine emitted no output for this layer"
        case .notRun: return "an earlier layer could not run"
        case .unjudged: return "no tolerance policy"
        case .pass: return ""
        }
    }
}

public struct LayerResult: Sendable {
    public let name: String
    public let op: String
    public let order: Int
    /// HDF5 path of what this layer reads in the golden (its first input).
    public let input: String?
    /// HDF5 paths of everything this node reads, in argument order (the golden's `inputs`).
    public let inputs: [String]
    public let shape: [Int]
    public let metrics: LayerMetrics?
    public let tolerance: Tolerance?
    public var status: LayerStatus
    /// rel L2 of this node over the largest rel L2 among the nodes it reads: > 1 means the error grew here.
    public var growth: Double?
    /// The reference's own f32-vs-f64 noise at this layer, for scale.
    public let noiseFloorRelL2: Double?
    /// The layer fed its golden input (`layer-diff`): the error it introduces itself, not what it inherits.
    public var isolated: LayerMetrics?
    public var isolatedStatus: LayerStatus?
    /// The conversion mistake that explains a failure, when one was found.
    public var diagnosis: Diagnosis?
    /// The mistakes `layer-diff` can test at this node, for the report's "none of them explains it" (nil: none
    /// apply, e.g. a composite module, whose members are diagnosed instead).
    public var diagnosesTried: String?
}

/// The outcome of verifying one converted file against one model's goldens.
public struct VerificationReport: Sendable {
    public let model: String
    public let format: String
    public let variant: String
    public let file: String
    public let engine: String
    public let policy: TolerancePolicy?
    public internal(set) var layers: [LayerResult]
    public let argmax: ArgmaxAgreement?
    public let inputCount: Int
    /// Format-specific explanations (e.g. how much of the gap to PyTorch a runtime's own numerics account for).
    public var notes: [String] = []
    /// Every stored parameter compared with the reference weights (WeightVerifier); a tensor out of bounds fails.
    public var weights: WeightReport?
    /// Why the format's runtime would refuse to load the file (its strict-loading rule): the file fails.
    public var loadRefusals: [String] = []
    /// Hyperparameters the runtime reads from the file that differ from the reference config (LlamaHyperparameterCheck): the file fails.
    public var hyperparameterMismatches: [String] = []
    /// A causal LM's logits against the goldens' float64 logits, as llama-perplexity's --kl-divergence reports them.
    public var logits: LogitAgreement?
    /// A sentence-embedding model's end metric out of its limit (SentenceAgreement: cosine to PyTorch's embedding, nearest neighbour): the file fails.
    public var endMetricFailures: [String] = []
    /// A sentence-embedding model's end metric as measured (nil: the model defines none, or it was not measured).
    public var sentenceAgreement: SentenceAgreement?

    /// Layers compared against a golden (not missing, not errored, not skipped).
    public var covered: Int { layers.filter { $0.metrics != nil }.count }

    /// Whether layers were also run on their golden inputs.
    public var hasIsolatedRun: Bool { layers.contains { $0.isolatedStatus != nil } }

    /// Where error is introduced rather than inherited. With isolated runs: the earliest node, in topological
    /// order, that fails when fed its golden inputs. Otherwise: the earliest node that fails while every node it
    /// reads passes (model inputs always do) — Core ML's failure-source rule. Without a tolerance policy there is
    /// no first divergence (Model Explorer's rule: no threshold is invented).
    public var firstDivergence: LayerResult? {
        guard policy != nil else { return nil }
        if hasIsolatedRun, let own = layers.first(where: { ($0.isolatedStatus.map { !$0.isPass && $0 != .notRun && $0 != .unjudged }) ?? false }) {
            return own
        }
        var byPath: [String: LayerResult] = [:]
        for layer in layers { byPath[GraphNode.path(forName: layer.name)] = layer }
        return layers.first { layer in
            // An unjudged layer has no limit to exceed: it is never a divergence.
            guard !layer.status.isPass, layer.status != .notRun, layer.status != .unjudged else { return false }
            return layer.inputs.allSatisfy { byPath[$0]?.status.isPass ?? true }
        }
    }

    public var argmaxPasses: Bool { argmax.map { $0.decisiveAgreeing == $0.decisive } ?? true }

    /// pass: every layer within its limit (and decisive argmaxes agree). fail: a layer exceeds its limit, or
    /// cannot be compared at all (missing, wrong shape, NaN/Inf, could not run) — a broken file needs no
    /// tolerance to be called broken. unjudged: nothing failed, but some layer has no tolerance policy, so
    /// nothing is called a pass (metrics are shown; Model Explorer's rule: no threshold is invented).
    public var verdict: Verdict {
        guard !layers.isEmpty else { return .fail }
        let statuses = layers.map(\.status) + layers.compactMap(\.isolatedStatus)
        if statuses.contains(where: { !$0.isPass && $0 != .unjudged }) { return .fail }
        // A file the format's runtime would refuse to load fails, however well its layers compute.
        if !loadRefusals.isEmpty { return .fail }
        // A file whose hyperparameters are another model's computes another model, whatever its activations show.
        if !hyperparameterMismatches.isEmpty { return .fail }
        // A stored parameter no quantizer of its type could have produced from the reference fails (weights first).
        if let weights, !weights.passed { return .fail }
        // The argmax margin comes from the output layer's tolerance; without one, agreement is shown only.
        if layers.last?.tolerance != nil && !argmaxPasses { return .fail }
        // KL / top-1 beyond what the logits' tolerance allows (LogitLimits).
        if let logits, !logits.violations.isEmpty { return .fail }
        if !endMetricFailures.isEmpty { return .fail }
        if statuses.contains(.unjudged) || policy == nil { return .unjudged }
        return .pass
    }

    /// Pass only if a policy exists, every expected layer was compared and passed, decisive argmaxes agree, and
    /// the format's runtime would load the file.
    public var passed: Bool { verdict == .pass }
}

/// The outcome of one verification (one model × format × variant).
public enum Verdict: String, Sendable, CaseIterable {
    case pass, fail, unjudged

    /// Several reports: fail if any failed, else unjudged if any is, else pass (an empty list passes nothing: fail).
    public static func combined(_ verdicts: [Verdict]) -> Verdict {
        if verdicts.isEmpty || verdicts.contains(.fail) { return .fail }
        return verdicts.contains(.unjudged) ? .unjudged : .pass
    }
}

extension VerificationReport {
    mutating func setIsolated(_ index: Int, metrics: LayerMetrics?, status: LayerStatus) {
        var copy = layers
        copy[index].isolated = metrics
        copy[index].isolatedStatus = status
        layers = copy
    }

    mutating func setDiagnosesTried(_ index: Int, _ tried: String?) {
        var copy = layers
        copy[index].diagnosesTried = tried
        layers = copy
    }

    mutating func setDiagnosis(_ index: Int, _ diagnosis: Diagnosis?) {
        var copy = layers
        copy[index].diagnosis = diagnosis
        layers = copy
    }
}
