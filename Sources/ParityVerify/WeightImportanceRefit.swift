import Foundation
import ParityCore
import ParityFormats

/// ggml's importance-matrix quantizers for Q4_0/Q5_0 (`make_qx_quants`, rmse_type 1) and Q4_1/Q5_1
/// (`make_qkx3_quants`, rmin −0.9, rdelta 0.05, 36 steps), reproduced as far as the file lets a checker know them,
/// to tell their legitimate output from a corruption where the per-block rules cannot.
///
/// What those quantizers do with one block of input x (ggml-quants.c, `quantize_row_q4_0_impl` … `_q5_1_impl`):
/// - the codes are **exactly** those of one trial scale of a fixed search computed from the block alone:
///   `l = clamp(nearest_int(iscale·x))` with iscale = −(n + 0.1·k)/max, k ∈ −9…9 (Q4_0/Q5_0; max the signed
///   largest-magnitude value), or `clamp(nearest_int(iscale·(x − min₀)))` with iscale = n/(max − min₀) or
///   (n − 0.9 + 0.05·k)/(max − u), k ∈ 0…36, min₀ = min(min x, 0), u the running best min ≤ 0 (Q4_1/Q5_1);
/// - the stored scale (and min) is the **weighted least-squares refit** of x on those codes, with weights
///   w = qw·√(σ² + x²): qw the importance of the element's column (one per column, shared by every row), σ² the
///   mean square of the row. (Q4_1/Q5_1 may instead keep the first trial's own scale and min, when no refit beat it.)
///
/// An element of no importance (a dead ReLU's column) takes no part in the refit, so its code follows the trial
/// scale and can sit several steps from the stored scale's nearest code, and a block can exceed the block RMS
/// rule. Per block, such a refit can reach any scale between the smallest and largest x/l — as can a corruption
/// (a block scale ×1.1): no per-block rule separates them. What does is that the importance is **per column**:
/// one vector qw must make every row's stored scale (and min) its refit. A block that fails the per-block element
/// or RMS rule is accepted only when (1) its codes are exactly one trial's codes, and (2) some qw ≥ 0 makes the
/// stored scale (and min) of every row of that column range whose codes are a trial's the refit of its codes —
/// a linear feasibility problem in qw, decided by a margin LP whose witness is checked against every inequality
/// (`feasible`) — with at least `minimumRefitRows` such rows, so
/// that the rows, not the freedom of 32 unknowns, decide. A corruption leaves a row whose stored scale no shared
/// importance explains (a scale ×1.1 in every block: every row; one changed scale: a row outside the hull of its
/// x/l), or codes no trial gives (a changed code, every code moved a level, a shifted min's codes stay but its
/// refit equations fail); a tensor written by the reference quantizer (d = max/−8, no refit) gives rows that
/// shared importances cannot fit, so a corrupted block in it is never excused. A refit that ignores a block's
/// largest values can also exceed rule 3's 1.25× (measured: exactly at the bound), so an excused block may have
/// failed any per-block rule; the excused count is a finding. What stays open by construction: one excused
/// block's scale moved toward its trial scale (measured: q5_1's excused block ×0.90…×0.99) is still a refit some
/// importance vector gives, so it is excused too — a scale the quantizer could have stored; raised ×1.1 it is not.
enum ImportanceRefit {
    /// Fewest rows (of one 32-column range) whose refit equations must hold together: 16 rows give 32 (Q4_0/Q5_0)
    /// or 64 (Q4_1/Q5_1) inequalities on the range's 32 column importances besides the normalisations.
    static let minimumRefitRows = 16

    static func applies(to type: GGMLType) -> Bool { [.q4_0, .q5_0, .q4_1, .q5_1].contains(type) }

    /// ggml's `nearest_int` (adds 1.5·2²³: round half to even for |v| < 2²²).
    @inline(__always) static func nearestInt(_ v: Float) -> Float { v.rounded(.toNearestOrEven) }

    /// The block's codes as ggml's quantizer stored them (Q4_0/Q5_0: l = q − n, signed; Q4_1/Q5_1: q), its scale
    /// and min; nil for a zero or non-finite scale.
    static func storedBlock(_ raw: UnsafeRawBufferPointer, type: GGMLType) -> (d: Float, m: Float, codes: [Float])? {
        guard let g = GGMLQuants.groups(ofBlock: raw.baseAddress!, type: type)?.first, g.scale != 0, g.scale.isFinite, g.offset.isFinite else { return nil }
        var y = [Float](repeating: 0, count: type.blockSize)
        y.withUnsafeMutableBufferPointer { GGMLQuants.dequantize(raw, type: type, count: type.blockSize, into: $0) }
        return (g.scale, g.offset, y.map { (($0 - g.offset) / g.scale).rounded() })
    }

    /// Whether `codes` are exactly one trial's codes of ggml's search for the block input `x`; for Q4_1/Q5_1 also
    /// whether they are the first trial's with its own scale and min stored (no refit: no equation for the row).
    static func matchesTrial(_ x: [Float], codes: [Float], d: Float, m: Float, type: GGMLType) -> (matches: Bool, firstTrialKept: Bool) {
        let n = x.count
        var l = [Float](repeating: 0, count: n)
        func same(_ iscale: Float, _ shift: Float, lo: Float, hi: Float) -> Bool {
            for i in 0..<n {
                l[i] = min(max(nearestInt(iscale * (x[i] - shift)), lo), hi)
                if l[i] != codes[i] { return false }
            }
            return true
        }
        switch type {
        case .q4_0, .q5_0:
            let nmax: Float = type == .q4_0 ? 8 : 16
            var max: Float = 0, amax: Float = 0
            for v in x where abs(v) > amax { amax = abs(v); max = v }
            guard amax >= 1e-15 else { return (false, false) }
            if same(-nmax / max, 0, lo: -nmax, hi: nmax - 1) { return (true, false) }
            for k in -9...9 where k != 0 {
                if same(-(nmax + 0.1 * Float(k)) / max, 0, lo: -nmax, hi: nmax - 1) { return (true, false) }
            }
            return (false, false)
        default:
            let nmax: Float = type == .q4_1 ? 15 : 31
            var lo = x[0], hi = x[0]
            for v in x { lo = min(lo, v); hi = max(hi, v) }
            if lo > 0 { lo = 0 }
            guard hi > lo else { return (false, false) }
            let first = nmax / (hi - lo)
            if same(first, lo, lo: 0, hi: nmax) {
                let kept = FloatCodecs.halfToFloat(FloatCodecs.floatToHalf(1 / first)) == d && FloatCodecs.halfToFloat(FloatCodecs.floatToHalf(lo)) == m
                return (true, kept)
            }
            // The later trials shift by the running best min u (ggml reuses `min`: the least-squares min of the last
            // trial that improved, or min₀), unknown here but ≤ 0: codes clamp(nearest_int(c_k·(x − u)/(max − u))).
            // Each code confines u to an interval (the position f(u) = c_k·(x − u)/(max − u) falls monotonically from
            // c_k toward c_k·x/max as u rises to 0); a trial matches when some u ≤ 0 lies in all of them (with 10⁻⁴
            // of a step for float evaluation and ties).
            guard hi > 0 else { return (false, false) }
            let top = Double(hi), tolerance = 1e-4
            for k in 0...36 {
                let rmin: Float = -0.9, rdelta: Float = 0.05
                let ck = Double(rmin + rdelta * Float(k) + nmax)
                var uLo = -Double.infinity, uHi = 0.0
                for i in 0..<n where uLo <= uHi {
                    let c = Double(codes[i]), xi = Double(x[i])
                    let lower = c == 0 ? -Double.infinity : c - 0.5 - tolerance
                    let upper = c == Double(nmax) ? Double.infinity : c + 0.5 + tolerance
                    if xi >= top {
                        if ck < lower || ck > upper { uLo = 1; uHi = 0 }
                        continue
                    }
                    let atZero = ck * xi / top
                    func u(_ v: Double) -> Double { (v * top - ck * xi) / (v - ck) }
                    if lower > atZero { if lower >= ck { uLo = 1; uHi = 0 } else { uHi = min(uHi, u(lower)) } }
                    if upper < ck { if upper < atZero { uLo = 1; uHi = 0 } else { uLo = max(uLo, u(upper)) } }
                }
                if uLo <= uHi { return (true, false) }
            }
            return (false, false)
        }
    }

    /// The stored f16 value's rounding interval, widened by `relative`·`magnitude` for the quantizer's float
    /// arithmetic and by 2⁻²⁵ absolute (f16's subnormal half-spacing).
    static func interval(_ v: Float, relative: Double, magnitude: Double) -> (Double, Double) {
        let h = Double(halfULPOfHalf(v)) + relative * magnitude + 0x1p-25
        return (Double(v) - h, Double(v) + h)
    }

    /// Q4_0/Q5_0's refit Σw·x·l / Σw·l² adds 32 terms of one sign each: 2⁻¹⁶ relative covers its float sums and the
    /// weights' √. Q4_1/Q5_1 solve a 2×2 system by Cramer's rule in float, (Σw·Σwxq − Σwx·Σwq)/(Σw·Σwq² − (Σwq)²):
    /// the differences cancel (measured on ggml's output up to ~1e-3 of the scale on rows with a 100× outlier), so
    /// 2⁻⁸ of the scale for both scale and min.
    static let refitRelative: [GGMLType: Double] = [.q4_0: 0x1p-16, .q5_0: 0x1p-16, .q4_1: 0x1p-8, .q5_1: 0x1p-8]

    /// The refit equations of one row's block as linear inequalities `a·qw ≥ b` in the block's column importances.
    /// `x` the block's input, `a` = √(σ² + x²) per element, codes and stored scale/min.
    static func inequalities(x: [Float], weightFactor a: [Double], codes: [Float], d: Float, m: Float, type: GGMLType) -> [([Double], Double)] {
        let n = x.count
        var out: [([Double], Double)] = []
        // The normalisation (qw is defined up to a factor; the quantizer's Σw·l² was positive since it stored d ≠ 0).
        out.append(((0..<n).map { a[$0] * Double(codes[$0] * codes[$0]) }, 1))
        let relative = refitRelative[type] ?? 0x1p-16
        let (dLo, dHi) = interval(d, relative: relative, magnitude: abs(Double(d)))
        switch type {
        case .q4_0, .q5_0:
            // g(s) = Σ qw·a·l·(x − s·l) decreases in s and vanishes at the refit d: g(d_lo) ≥ 0 ≥ g(d_hi).
            out.append(((0..<n).map { a[$0] * Double(codes[$0]) * (Double(x[$0]) - dLo * Double(codes[$0])) }, 0))
            out.append(((0..<n).map { -a[$0] * Double(codes[$0]) * (Double(x[$0]) - dHi * Double(codes[$0])) }, 0))
        default:
            // E1 = Σ qw·a·(x − s·q − m), E2 = Σ qw·a·q·(x − s·q − m) both decrease in s and m (q ≥ 0) and vanish at the
            // refit; a min the refit put above 0 is stored as 0 with only E2 (m = 0). A stored 0 may be either.
            let (mLo, mHi) = m == 0 ? (-relative * abs(Double(d)) - 0x1p-24, 0) : interval(m, relative: relative, magnitude: abs(Double(d)) + abs(Double(m)))
            func e(_ withCode: Bool, _ s: Double, _ mm: Double, sign: Double) -> [Double] {
                (0..<n).map { j in sign * a[j] * (withCode ? Double(codes[j]) : 1) * (Double(x[j]) - s * Double(codes[j]) - mm) }
            }
            if m != 0 {
                out.append((e(false, dLo, mLo, sign: 1), 0))
                out.append((e(false, dHi, mHi, sign: -1), 0))
            }
            out.append((e(true, dLo, mLo, sign: 1), 0))
            out.append((e(true, dHi, mHi, sign: -1), 0))
        }
        return out
    }

    /// Whether some qw ≥ 0 satisfies every inequality `g·qw ≥ b`, decided deterministically and checked.
    ///
    /// Every inequality here is homogeneous in qw except the normalisations (b > 0), which only say Σ qw·a·l² > 0
    /// (qw is defined up to a positive factor). So the question is whether the cone {qw ≥ 0: g·qw ≥ 0 for every g,
    /// with the normalisations strictly positive} is non-empty, and the margin LP answers it without a thin feasible
    /// set: with each g scaled to ‖g‖₁ = 1,
    ///     maximise t  subject to  g·qw ≥ t for every g,  Σ qw ≤ 1,  qw ≥ 0,
    /// written with s = t + 1 ≥ 0 as  −g·qw + s ≤ 1,  Σ qw ≤ 1  (|g·qw| ≤ 1 on Σ qw ≤ 1, so t ≥ −1 loses nothing).
    /// Its origin (qw = 0, s = 0) is feasible, so no phase I is needed; the optimum is bounded (s ≤ 1 + ‖g‖∞ ≤ 2).
    /// The system is feasible in the sense above iff the optimum t* > 0. The LP is solved by the dense-tableau simplex
    /// with Bland's rule (lowest-index entering column with a positive reduced cost, ties of the ratio test to the
    /// lowest-index basic variable): no random start, no dependence on which row failed, and no cycling in exact arithmetic (in floating point
    /// an iteration cap bounds it; nothing unverified is accepted). The simplex
    /// only proposes; the answer is a witness qw checked against every original (unscaled) inequality in `verify`.
    /// A point at t* > 0 sits inside every interval by a margin instead of on an interval's edge — why this finds the
    /// points the earlier subset simplex and the least-squares witness (both aiming at the thin set itself) missed.
    ///
    /// A dense tableau over every row of a large tensor (4096 rows: ~12 000 inequalities) would need gigabytes, so
    /// the LP runs on a subset grown by cutting planes: the first `initialInequalities`, then, while the subset's
    /// witness violates some inequality, the most violated ones (ties to the lower index) are added. Exact in
    /// principle both ways: a subset whose margin LP has t* ≤ 0 proves the whole system infeasible (fewer
    /// constraints can only raise t*), and a witness that satisfies every inequality proves it feasible. Past
    /// `maximumInequalities` the system stays undecided and nothing is excused (the block stays out of bounds).
    static func feasible(_ all: [([Double], Double)]) -> Bool {
        var active = Array(all.indices.prefix(initialInequalities))
        while true {
            guard let qw = marginWitness(active.map { all[$0] }) else { return false }
            let activeSet = Set(active)
            var violated: [(index: Int, amount: Double)] = []
            for k in all.indices where !activeSet.contains(k) && !verify(qw, [all[k]]) {
                let norm = all[k].0.reduce(0) { $0 + abs($1) }
                let sum = zip(all[k].0, qw).reduce(0) { $0 + $1.0 * $1.1 }
                violated.append((k, norm > 0 ? -sum / norm : .infinity))
            }
            if violated.isEmpty { return verify(qw, all) }
            violated.sort { $0.amount != $1.amount ? $0.amount > $1.amount : $0.index < $1.index }
            active += violated.prefix(addedPerRound).map(\.index)
            if active.count > maximumInequalities { return false }
        }
    }

    /// The cutting-plane sizes: 192 inequalities start (~48–64 rows; a 33-variable LP's optimum rests on at most 33 of
    /// them), 32 more per round, and at most 1 200 (a 1 200 × 1 234 tableau: 12 MB, well under a second).
    static let initialInequalities = 192, addedPerRound = 32, maximumInequalities = 1200

    /// The witness check: each inequality's sum Σ g_j·qw_j is evaluated in Double; its rounding error is at most
    /// γ_n·Σ|g_j·qw_j| with γ_n = n·u/(1 − n·u), u = 2⁻⁵³ (Higham, Accuracy and Stability, §3.1), so an inequality is
    /// taken as holding only when the computed sum exceeds that bound (b = 0) — strictly positive for the
    /// normalisations. The coefficients' own rounding (x − d·l formed in Double from float inputs: relative 2⁻⁵³ per
    /// term) is far inside the intervals' widening (2⁻¹⁶ or 2⁻⁸ of the scale, `refitRelative`).
    static func verify(_ qw: [Double], _ all: [([Double], Double)]) -> Bool {
        guard qw.allSatisfy({ $0 >= 0 && $0.isFinite }), qw.contains(where: { $0 > 0 }) else { return false }
        for (g, _) in all {
            var sum = 0.0, magnitude = 0.0
            for (c, w) in zip(g, qw) { sum += c * w; magnitude += abs(c * w) }
            let n = Double(g.count + 1), u = 0x1p-53
            let roundingBound = n * u / (1 - n * u) * magnitude
            // Exact value ≥ computed − bound > 0 (b = 0: ≥ 0); the normalisations (b > 0) too, qw being defined up to a factor.
            if !(sum > roundingBound) { return false }
        }
        return true
    }

    /// The margin LP's optimal qw (rescaled to Σ qw = 1), or nil when its optimum t* ≤ 0 or an inequality is void.
    static func marginWitness(_ all: [([Double], Double)]) -> [Double]? {
        guard let n = all.first?.0.count, n > 0 else { return nil }
        var rows: [[Double]] = []
        for (g, _) in all {
            let norm = g.reduce(0) { $0 + abs($1) }
            // 0·qw ≥ 0 holds for every qw (and a zero normalisation cannot be positive: no refit stored such a row).
            guard norm > 0 else { if all.contains(where: { $0.0 == g && $0.1 > 0 }) { return nil }; continue }
            rows.append(g.map { $0 / norm })
        }
        // Tableau: constraints rows.count + 1, columns qw (n), s (1), slacks (m), right-hand side.
        let m = rows.count + 1, columns = n + 1 + m, width = columns + 1
        var tab = [Double](repeating: 0, count: (m + 1) * width)
        for (i, g) in rows.enumerated() {
            for j in 0..<n { tab[i * width + j] = -g[j] }
            tab[i * width + n] = 1
            tab[i * width + n + 1 + i] = 1
            tab[i * width + columns] = 1
        }
        for j in 0..<n { tab[(m - 1) * width + j] = 1 }
        tab[(m - 1) * width + n + 1 + (m - 1)] = 1
        tab[(m - 1) * width + columns] = 1
        // Objective row holds reduced costs c_j − z_j for maximising s.
        let objective = m * width
        tab[objective + n] = 1
        var basis = (0..<m).map { n + 1 + $0 }
        // Pivot tolerances: coefficients are O(1) after the ‖g‖₁ scaling; 1e-12 separates a real improvement or pivot
        // from rounding noise of a few hundred such operations (each ~1e-16).
        let eps = 1e-12
        for _ in 0..<(50 * (m + columns)) {
            guard let enter = (0..<columns).first(where: { tab[objective + $0] > eps }) else { break }
            var leave = -1, best = Double.infinity
            for i in 0..<m where tab[i * width + enter] > eps {
                let ratio = tab[i * width + columns] / tab[i * width + enter]
                let tie = leave >= 0 && abs(ratio - best) <= eps * max(1, abs(best))
                if leave < 0 || (ratio < best && !tie) || (tie && basis[i] < basis[leave]) {
                    best = ratio; leave = i
                }
            }
            guard leave >= 0 else { return nil }  // unbounded cannot happen (s ≤ 2); treat as undecided
            let p = tab[leave * width + enter]
            for j in 0..<width { tab[leave * width + j] /= p }
            for i in 0...m where i != leave {
                let f = tab[i * width + enter]
                if f != 0 { for j in 0..<width { tab[i * width + j] -= f * tab[leave * width + j] } }
            }
            basis[leave] = enter
        }
        var qw = [Double](repeating: 0, count: n), s = 0.0
        for (i, b) in basis.enumerated() {
            if b < n { qw[b] = max(0, tab[i * width + columns]) } else if b == n { s = tab[i * width + columns] }
        }
        let total = qw.reduce(0, +)
        guard s - 1 > 0, total > 0 else { return nil }
        return qw.map { $0 / total }
    }
}

extension WeightVerifier {
    /// Decides, once per 32-column range, whether ggml's imatrix refit with one importance per column explains the
    /// range's rows (see `ImportanceRefit`); blocks outside the per-block rules are excused only then.
    final class RefitJudge: @unchecked Sendable {
        let bytes: UnsafeRawBufferPointer
        let type: GGMLType
        let expected: [Float]
        let blocksPerRow: Int
        let rows: Int
        private let lock = NSLock()
        private var decided: [Int: Bool] = [:]

        init(bytes: UnsafeRawBufferPointer, type: GGMLType, expected: [Float], rowLength: Int) {
            self.bytes = bytes
            self.type = type
            self.expected = expected
            blocksPerRow = max(1, rowLength / type.blockSize)
            rows = expected.count / max(rowLength, 1)
        }

        /// The block's input under each hypothesis, first the one whose trial codes it matches.
        func trialMatch(block: Int) -> (x: [Float], hypothesis: InputHypothesis, firstTrialKept: Bool)? {
            let size = type.blockSize
            let raw = UnsafeRawBufferPointer(rebasing: bytes[(block * type.typeSize)..<((block + 1) * type.typeSize)])
            guard let stored = ImportanceRefit.storedBlock(raw, type: type) else { return nil }
            for h in InputHypothesis.allCases {
                let x = (0..<size).map { h.apply(expected[block * size + $0]) }
                let match = ImportanceRefit.matchesTrial(x, codes: stored.codes, d: stored.d, m: stored.m, type: type)
                if match.matches { return (x, h, match.firstTrialKept) }
            }
            return nil
        }

        /// Whether the block (outside the per-block rules) is one of the rows its column range's shared-importance
        /// refit explains. The column's decision depends on the column's rows only — never on which block asked
        /// first or which row range's thread asked — so the verdict is the same in any order.
        func excuses(block: Int) -> Bool {
            guard isRefitRow(block: block) != nil else { return false }
            let column = block % blocksPerRow
            lock.lock()
            if let known = decided[column] { lock.unlock(); return known }
            lock.unlock()
            let answer = decide(column: column)
            lock.lock(); decided[column] = answer; lock.unlock()
            return answer
        }

        /// The block's refit data when its row takes part in its column's system: a scale that is normal in f16 (a
        /// zero or subnormal scale is judged otherwise, QuantBoundPolicy.subnormalScaleAnyCode), codes exactly one
        /// trial's (codes no trial gives are not the imatrix path's: they fail on their own), and not the first trial
        /// kept with its own scale and min (Q4_1/Q5_1, no refit: nearest rounding for its scale, nothing to excuse).
        private func isRefitRow(block: Int) -> (stored: (d: Float, m: Float, codes: [Float]), x: [Float], hypothesis: InputHypothesis)? {
            let raw = UnsafeRawBufferPointer(rebasing: bytes[(block * type.typeSize)..<((block + 1) * type.typeSize)])
            guard let stored = ImportanceRefit.storedBlock(raw, type: type), abs(stored.d) >= 0x1p-14,
                  let match = trialMatch(block: block), !match.firstTrialKept else { return nil }
            return (stored, match.x, match.hypothesis)
        }

        private func decide(column: Int) -> Bool {
            let rowLength = blocksPerRow * type.blockSize
            var all: [([Double], Double)] = []
            var refitRows = 0
            for row in 0..<rows {
                let block = row * blocksPerRow + column
                guard let (stored, x, hypothesis) = isRefitRow(block: block) else { continue }
                // σ² = the row's mean square of the quantizer's input (float sum in index order, as ggml).
                var sumSquares: Float = 0
                for j in 0..<rowLength { let v = hypothesis.apply(expected[row * rowLength + j]); sumSquares += v * v }
                let sigma2 = sumSquares / Float(rowLength)
                let a = x.map { Double((sigma2 + $0 * $0).squareRoot()) }
                all += ImportanceRefit.inequalities(x: x, weightFactor: a, codes: stored.codes, d: stored.d, m: stored.m, type: type)
                refitRows += 1
            }
            guard refitRows >= ImportanceRefit.minimumRefitRows else { return false }
            return ImportanceRefit.feasible(all)
        }
    }
}
