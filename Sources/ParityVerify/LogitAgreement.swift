import Foundation
import ParityCore

/// The end metric of a causal LM as llama-perplexity's `--kl-divergence` reports it, against the goldens' float64
/// logits (`/reference/logits_f64`): per position KL(reference ‖ file) of the softmax distributions, its mean and
/// maximum, and top-1 agreement. The limits come from the output node's tolerance (what the file stores), so every
/// type gets its own: see `LogitLimits.derive`.
public struct LogitAgreement: Equatable, Sendable {
    public let klMean: Double
    public let klMax: Double
    public let top1Agreeing: Int
    public let positions: Int
    public let limits: LogitLimits?

    public var top1: Double { positions == 0 ? 0 : Double(top1Agreeing) / Double(positions) }

    /// "KL mean 0.48 > 0.15" …; empty when within every limit (or without limits: shown, not judged).
    public var violations: [String] {
        guard let limits else { return [] }
        var out: [String] = []
        if !(klMean <= limits.klMean) { out.append("KL mean \(formatNumber(klMean)) > \(formatNumber(limits.klMean))") }
        if !(klMax <= limits.klMax) { out.append("KL max \(formatNumber(klMax)) > \(formatNumber(limits.klMax))") }
        if top1Agreeing < limits.top1Minimum { out.append("top-1 \(top1Agreeing)/\(positions) < \(limits.top1Minimum)/\(positions)") }
        return out
    }

    /// `logits` and `reference` are [..., vocabulary]; every leading index is one position.
    public static func compute(logits: Tensor, reference: Tensor, tolerance: Tolerance?) -> LogitAgreement? {
        guard logits.shape == reference.shape, let vocabulary = reference.shape.last, vocabulary > 1 else { return nil }
        let rows = reference.count / vocabulary
        func logSoftmax(_ t: Tensor, _ r: Int) -> [Double] {
            let row = t.data[r * vocabulary..<(r + 1) * vocabulary].map(Double.init)
            let m = row.max() ?? 0
            let logSum = log(row.reduce(0) { $0 + exp($1 - m) }) + m
            return row.map { $0 - logSum }
        }
        var klSum = 0.0, klMax = 0.0, agreeing = 0
        var margins: [Double] = [], squares = 0.0, largest = 0.0
        for r in 0..<rows {
            let p = logSoftmax(reference, r), q = logSoftmax(logits, r)
            var kl = 0.0
            for i in 0..<vocabulary where p[i] > -700 { kl += exp(p[i]) * (p[i] - q[i]) }
            kl = max(kl, 0)
            klSum += kl
            klMax = max(klMax, kl)
            let refRow = reference.data[r * vocabulary..<(r + 1) * vocabulary], fileRow = logits.data[r * vocabulary..<(r + 1) * vocabulary]
            let refTop = refRow.indices.max { refRow[$0] < refRow[$1] }!, fileTop = fileRow.indices.max { fileRow[$0] < fileRow[$1] }!
            if refTop == fileTop { agreeing += 1 }
            let sorted = refRow.sorted(by: >)
            margins.append(Double(sorted[0] - sorted[1]))
            for v in refRow { squares += Double(v) * Double(v); largest = max(largest, abs(Double(v))) }
        }
        let rms = (squares / Double(reference.count)).squareRoot()
        let limits = tolerance.map { LogitLimits.derive(tolerance: $0, rmsLogit: rms, maxLogit: largest, margins: margins) }
        return LogitAgreement(klMean: klSum / Double(rows), klMax: klMax, top1Agreeing: agreeing, positions: rows, limits: limits)
    }
}

/// KL and top-1 limits from the output node's tolerance (rel L2 ε, max abs α of the largest logit):
/// - a logit error δ of rms σ moves KL by ≈ ½·Var_p(δ) ≤ ½σ² (second order of KL in the logits), and the tolerance
///   allows σ = ε·rms(z): KL mean ≤ ½(ε·rms z)²;
/// - one position's KL ≤ ½·(max |δ_i − δ_j|/2)²·… ≤ ½(α·max|z|)² with the allowed max abs error;
/// - top-1 can flip only where the reference's top-2 margin is within reach: two logits each off by a Gaussian error
///   of rms σ differ by more than 4√2·σ with probability < 1e-4, so every position whose margin exceeds that must agree.
public struct LogitLimits: Equatable, Sendable {
    public let klMean: Double
    public let klMax: Double
    public let top1Minimum: Int
    public let reason: String

    static func derive(tolerance: Tolerance, rmsLogit: Double, maxLogit: Double, margins: [Double]) -> LogitLimits {
        let sigma = tolerance.maxRelL2 * rmsLogit
        let maxError = tolerance.maxAbsOverScale * maxLogit
        let reach = 4 * 2.0.squareRoot() * sigma
        let mustAgree = margins.filter { $0 > reach }.count
        return LogitLimits(
            klMean: 0.5 * sigma * sigma, klMax: 0.5 * maxError * maxError, top1Minimum: mustAgree,
            reason: "from the logits' tolerance (rel L2 \(formatNumber(tolerance.maxRelL2)), max abs \(formatNumber(tolerance.maxAbsOverScale)) of the "
                + "scale): a logit error of rms σ = ε·rms(z) = \(formatNumber(sigma)) changes KL by about ½·Var_p(δ) ≤ ½σ² = \(formatNumber(0.5 * sigma * sigma)) "
                + "(KL is second order in the logits); one position at most ½(max abs error)² = \(formatNumber(0.5 * maxError * maxError)); top-1 must "
                + "agree wherever the reference's top-2 margin exceeds 4√2·σ = \(formatNumber(reach)) (a flip there has probability < 1e-4): "
                + "\(mustAgree) of \(margins.count) positions")
    }
}
