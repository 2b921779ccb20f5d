import Foundation
import ParityCore

/// Per-layer error statistics of an engine's output `actual` against the golden `expected`, accumulated in
/// Double (as Model Explorer's debugger does) so that the metric itself adds no float32 noise.
public struct LayerMetrics: Equatable, Sendable, Codable {
    /// max |a − b| (Polygraphy's abs diff, max statistic).
    public var maxAbs: Double
    /// Index (flat, row-major) of the element with the largest |a − b|.
    public var maxAbsIndex: Int
    /// mean |a − b|.
    public var meanAbs: Double
    /// ‖a − b‖₂ / ‖b‖₂ (Model Explorer's relative L2; torch.ao.ns's normalized L2); 0 when both are zero.
    public var relL2: Double
    /// a·b / (‖a‖‖b‖), clamped to [−1, 1]; nil when either norm is zero (undefined, Polygraphy/Model Explorer).
    public var cosine: Double?
    /// 20·log10(‖b‖ / ‖a − b‖) dB (torch.ao.ns compute_sqnr); +∞ when identical.
    public var sqnrDB: Double
    /// max |b|: the golden's scale at this layer, against which absolute errors are read.
    public var goldenMaxAbs: Double
    public var nanCount: Int
    public var infCount: Int
    /// NaN or Inf in the golden itself: nothing can be judged against it.
    public var goldenNonFinite: Int = 0

    public var isFinite: Bool { nanCount == 0 && infCount == 0 && goldenNonFinite == 0 }

    /// Compares two equally sized buffers. NaN/Inf in `actual` are counted and excluded from the statistics.
    public static func compare(_ actual: [Float], _ expected: [Float]) -> LayerMetrics {
        precondition(actual.count == expected.count)
        var maxAbs = 0.0, maxIndex = 0, sumAbs = 0.0, sumDiff2 = 0.0, sumRef2 = 0.0, sumAct2 = 0.0, dot = 0.0, refMax = 0.0
        var nan = 0, inf = 0, goldenBad = 0
        for i in 0..<actual.count {
            let a = Double(actual[i]), b = Double(expected[i])
            if !b.isFinite { goldenBad += 1; continue }
            refMax = max(refMax, abs(b))
            if a.isNaN { nan += 1; continue }
            if a.isInfinite { inf += 1; continue }
            let d = abs(a - b)
            if d > maxAbs { maxAbs = d; maxIndex = i }
            sumAbs += d
            sumDiff2 += d * d
            sumRef2 += b * b
            sumAct2 += a * a
            dot += a * b
        }
        let refNorm = sumRef2.squareRoot(), diffNorm = sumDiff2.squareRoot()
        let relL2 = refNorm > 0 ? diffNorm / refNorm : (diffNorm > 0 ? .infinity : 0)
        let cosine: Double? = (sumRef2 > 0 && sumAct2 > 0) ? min(1, max(-1, dot / (refNorm * sumAct2.squareRoot()))) : nil
        let sqnr = diffNorm > 0 ? 20 * log10(refNorm / diffNorm) : .infinity
        return LayerMetrics(maxAbs: maxAbs, maxAbsIndex: maxIndex, meanAbs: actual.isEmpty ? 0 : sumAbs / Double(actual.count),
                            relL2: relL2, cosine: cosine, sqnrDB: sqnr, goldenMaxAbs: refMax, nanCount: nan, infCount: inf,
                            goldenNonFinite: goldenBad)
    }
}

/// Top-1 agreement of classifier logits [N, classes].
public struct ArgmaxAgreement: Equatable, Sendable, Codable {
    public var agreeing: Int
    public var total: Int
    /// Rows where the golden's top-2 margin is wider than the layer's absolute tolerance: these must agree,
    /// because an error within tolerance cannot reorder them. Narrower margins may flip legitimately.
    public var decisive: Int
    public var decisiveAgreeing: Int
    /// The rows that disagree (indices into the input batch).
    public var disagreeingRows: [Int]

    public static func compute(actual: Tensor, expected: Tensor, decisiveMargin: Double) -> ArgmaxAgreement {
        let rows = expected.shape[0], cols = expected.count / max(rows, 1)
        var result = ArgmaxAgreement(agreeing: 0, total: rows, decisive: 0, decisiveAgreeing: 0, disagreeingRows: [])
        for r in 0..<rows {
            let ref = expected.data[(r * cols)..<((r + 1) * cols)], act = actual.data[(r * cols)..<((r + 1) * cols)]
            let refTop = ref.indices.max { ref[$0] < ref[$1] }!
            let actTop = act.indices.max { act[$0] < act[$1] || act[$1].isNaN }!
            let sorted = ref.sorted(by: >)
            let margin = cols > 1 ? Double(sorted[0] - sorted[1]) : .infinity
            let agrees = refTop == actTop
            if agrees { result.agreeing += 1 } else { result.disagreeingRows.append(r) }
            if margin > decisiveMargin {
                result.decisive += 1
                if agrees { result.decisiveAgreeing += 1 }
            }
        }
        return result
    }
}
