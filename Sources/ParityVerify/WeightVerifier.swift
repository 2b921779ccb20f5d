import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// Reads every parameter the way the engine's runtime reads it, brings it into the reference layout by the
/// runtime's semantics, and compares it with the reference weights: f32 identical; f16/bf16 identical to
/// round-to-nearest-even (a consistent truncation is named as a finding); block-quantized types within the
/// bounds of `QuantBoundPolicy`. Stored data is read in place from the memory-mapped file, a block at a time;
/// only the reference tensor being checked is held in memory.
public enum WeightVerifier {
    /// Issues listed per tensor (the counts cover all).
    public static let listedIssues = 8
    /// A tensor this large (4 Mi elements: 16 MiB of f32 reference) is split over the cores by row ranges.
    static let largeTensorElements = 1 << 22

    /// Checks the engine's file against `model`'s reference weights; nil when the engine cannot say how it
    /// reads its parameters.
    public static func verify(engine: FormatEngine, model: ReferenceModel) throws(ParityError) -> WeightReport? {
        guard let reader = engine as? RuntimeWeightReading else { return nil }
        let start = Date()
        let reference = try model.weights()
        var results: [TensorWeightResult] = []
        var consumed = Set<String>()
        var bytes = 0
        let mlxFloat = (engine as? MLXEngine)?.floatWeightType
        let bindings = reader.runtimeWeights(for: model.config.layers)
        var entries: [SafetensorsEntry] = []
        for binding in bindings {
            consumed.formUnion(binding.consumedNames)
            guard let entry = reference.entry(named: binding.referenceName) else {
                throw .mismatch(file: reference.path, reason: "the reference weights have no tensor \"\(binding.referenceName)\" that config.json's layer \(binding.layer) needs")
            }
            guard entry.shape == binding.referenceShape else {
                throw .mismatch(file: reference.path, reason: "reference tensor \"\(binding.referenceName)\" has shape \(entry.shape); config.json says \(binding.referenceShape)")
            }
            entries.append(entry)
            bytes += storedBytes(binding.source)
        }
        // Tensors are independent: the small ones are checked concurrently, one per worker; each large one is then
        // split by row ranges over all cores (one large matrix would otherwise keep one core busy while the others
        // idle). Memory: one reference tensor per worker, or the one large tensor being checked.
        let slots = ResultSlots(count: bindings.count)
        let referenceEntries = entries
        func checkOne(_ i: Int, _ execution: WeightCheckExecution) {
            let binding = bindings[i]
            let expected: [Float]
            do { expected = try reference.tensor(referenceEntries[i]).data } catch {
                slots.fail(ParityError.unsupported(file: reference.path, reason: "cannot read reference tensor \"\(binding.referenceName)\": \(error)"))
                return
            }
            var result = check(binding, reference: expected, mlxFloat: mlxFloat, execution: execution)
            if result.status == .outOfBounds || result.status == .refused {
                result.diagnosis = WeightDiagnosis.diagnose(binding, reference: expected)
            }
            slots.set(i, result)
        }
        let large = Set(bindings.indices.filter { binding in bindings[binding].referenceShape.reduce(1, *) >= largeTensorElements })
        let small = bindings.indices.filter { !large.contains($0) }
        withoutActuallyEscaping(checkOne) { run in
            let task = UncheckedSendable(run)
            DispatchQueue.concurrentPerform(iterations: small.count) { k in task.value(small[k], .serial) }
        }
        for i in bindings.indices where large.contains(i) { checkOne(i, .automatic) }
        if let error = slots.error { throw error }
        results = slots.results.compactMap { $0 }
        WeightOtherParameter.annotate(&results, bindings: bindings, entries: entries, reference: reference, mlxFloat: mlxFloat)
        for name in reader.storedTensorNames where !consumed.contains(name) {
            var extra = TensorWeightResult(layer: nil, referenceName: nil, fileName: name, storedType: "-", storedShape: [], referenceShape: [],
                                           layout: "-", status: .extra, failsVerification: reader.refusesUnreadTensors)
            extra.detail = reader.refusesUnreadTensors
                ? "no parameter of the model reads it; the runtime's strict loading refuses unread tensors"
                : "no parameter of the model reads it; ggml's loader looks tensors up by name and ignores it"
            results.append(extra)
        }
        return WeightReport(tensors: results, bytesChecked: bytes, seconds: Date().timeIntervalSince(start), referenceFile: reference.path)
    }

    /// Results written by concurrent workers, each to its own slot.
    final class ResultSlots: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var results: [TensorWeightResult?]
        private(set) var error: ParityError?
        init(count: Int) { results = [TensorWeightResult?](repeating: nil, count: count) }
        func set(_ i: Int, _ r: TensorWeightResult) { lock.lock(); results[i] = r; lock.unlock() }
        func fail(_ e: ParityError) { lock.lock(); if error == nil { error = e }; lock.unlock() }
    }

    static func storedBytes(_ source: StoredWeightSource?) -> Int {
        switch source {
        case let .gguf(_, t): return t.byteCount
        case let .safetensors(_, e): return e.dataRange.count
        case let .mlxArray(r): return r.bytes.count
        case let .mlxQuantized(w, s, b, _): return w.bytes.count + s.bytes.count + (b?.bytes.count ?? 0)
        case nil: return 0
        }
    }

    // MARK: One parameter

    static func check(_ b: RuntimeWeight, reference: [Float], mlxFloat: MLXFloatType?, execution: WeightCheckExecution = .serial) -> TensorWeightResult {
        func result(_ type: String, _ shape: [Int], _ status: TensorWeightResult.Status) -> TensorWeightResult {
            TensorWeightResult(layer: b.layer, referenceName: b.referenceName, fileName: b.fileName, storedType: type, storedShape: shape,
                               referenceShape: b.referenceShape, layout: b.layout.description, status: status,
                               failsVerification: status != .pass)
        }
        guard let source = b.source else {
            var r = result("-", [], .missing)
            r.detail = "the runtime looks for '\(b.fileName)' and the file has no such tensor"
            return r
        }
        let (typeName, shape) = describe(source)
        if let refusal = b.refusal {
            var r = result(typeName, shape, .refused)
            r.detail = refusal
            return r
        }
        // The reference values in the stored order: what the runtime must find at each stored position.
        let map = b.layout.referenceIndexOfStored()
        let expected = map.map { m in m.map { reference[$0] } } ?? reference
        var r = result(typeName, shape, .pass)
        let rowLength = b.requiredShape.last ?? 1
        var sink = IssueSink(map: map, rowLength: rowLength)
        switch source {
        case let .gguf(file, t):
            do {
                try file.withData(t) { bytes in
                    switch t.type {
                    case .f32, .f16, .bf16:
                        checkDense(bytes, dtype: t.type == .f32 ? .f32 : t.type == .f16 ? .f16 : .bf16, expected: expected, into: &r, sink: &sink, execution: execution)
                    default:
                        guard let policy = QuantBoundPolicy.gguf(t.type) else {
                            r.status = .unchecked
                            r.detail = "no weight bound for ggml type \(t.type.name)"
                            return
                        }
                        checkGGUFBlocks(bytes, type: t.type, policy: policy, expected: expected, into: &r, sink: &sink, execution: execution)
                        r.identicalToReferenceQuantizer = identicalToGGMLReference(bytes, type: t.type, expected: expected, execution: execution)
                    }
                }
            } catch {
                r.status = .refused
                r.detail = "cannot read '\(t.name)': \(error)"
            }
        case let .safetensors(file, entry):
            do {
                let raw = try file.rawBytes(entry)
                raw.withUnsafeBytes { checkDenseAny($0, dtype: entry.dtype, expected: expected, into: &r, sink: &sink, execution: execution) }
            } catch {
                r.status = .refused
                r.detail = "cannot read '\(entry.name)': \(error)"
            }
        case let .mlxArray(raw):
            raw.bytes.withUnsafeBytes { checkDenseAny($0, dtype: raw.dtype, expected: expected, into: &r, sink: &sink, execution: execution) }
        case let .mlxQuantized(weight, scales, biases, parameters):
            guard let mode = MLXQuantMode(rawValue: parameters.mode),
                  let q = try? MLXQuantized(weight: weight, scales: scales, biases: biases, mode: mode, groupSize: parameters.groupSize, bits: parameters.bits) else {
                var refused = result(typeName, shape, .refused)
                refused.detail = "cannot read the quantized module as \(parameters.mode) \(parameters.bits)-bit group \(parameters.groupSize)"
                return refused
            }
            let policy = QuantBoundPolicy.mlx(mode: mode, bits: q.bits, groupSize: q.groupSize)
            checkMLX(q, policy: policy, expected: expected, into: &r, sink: &sink, execution: execution)
            let dtype: MLXFloatType = mode == .affine ? q.scaleType : (mlxFloat ?? .f32)
            r.identicalToReferenceQuantizer = identicalToMLXReference(q, expected: expected, dtype: dtype, execution: execution)
        }
        r.issues = sink.issues
        r.worst = sink.worst
        if r.status == .pass && (r.elementsOutOfBounds > 0 || r.blocksOutOfBounds > 0) { r.status = .outOfBounds }
        // A type without a weight rule (an fp8 safetensors dtype) is reported, not failed: the activation verdict
        // (UNJUDGED for such types) stands.
        r.failsVerification = r.status != .pass && r.status != .unchecked
        return r
    }

    static func describe(_ source: StoredWeightSource) -> (String, [Int]) {
        switch source {
        case let .gguf(_, t): return (t.type.name, t.shape)
        case let .safetensors(_, e): return (e.dtype.rawValue.lowercased(), e.shape)
        case let .mlxArray(r): return (r.dtype.rawValue.lowercased(), r.shape)
        case let .mlxQuantized(w, s, _, p):
            let rows = w.shape.dropLast().reduce(1, *)
            let cols = (w.shape.last ?? 0) * 32 / max(p.bits, 1)
            let label = p.mode == "affine" ? "affine-b\(p.bits)-g\(p.groupSize) (\(s.dtype.rawValue.lowercased()) scales)" : p.mode
            return (label, [rows, cols])
        }
    }

    // MARK: Issue bookkeeping

    struct IssueSink {
        let map: [Int]?
        let rowLength: Int
        var issues: [WeightIssue] = []
        var worst: WeightIssue?
        var worstScore = -Double.infinity

        mutating func consider(index: Int, block: Int?, scale: Double?, stored: Float, reference: Float, expected: Float, bound: Double,
                               rule: String, score: Double, isIssue: Bool) {
            guard isIssue || score > worstScore else { return }
            let issue = WeightIssue(storedIndex: index, referenceIndex: map?[index] ?? index, row: index / max(rowLength, 1), column: index % max(rowLength, 1),
                                    block: block, scale: scale, stored: Double(stored), reference: Double(reference), expected: Double(expected),
                                    bound: bound, rule: rule)
            if score > worstScore { worstScore = score; worst = issue }
            if isIssue && issues.count < WeightVerifier.listedIssues { issues.append(issue) }
        }

        /// A fresh sink for one range of the same tensor.
        func empty() -> IssueSink { IssueSink(map: map, rowLength: rowLength) }

        /// Appends the sink of the range that follows this one: the first listed issues stay the first in index
        /// order, and the worst stays the first element reaching the highest score (a later range wins only with a
        /// strictly higher one), as one pass over both ranges gives.
        mutating func absorb(_ next: IssueSink) {
            for issue in next.issues where issues.count < WeightVerifier.listedIssues { issues.append(issue) }
            if let w = next.worst, next.worstScore > worstScore { worst = w; worstScore = next.worstScore }
        }
    }

    // MARK: Splitting one tensor across cores

    /// Contiguous ranges of `count` units (blocks, groups' rows, elements) of `unitElements` elements each, checked
    /// concurrently and merged in index order. A range holds at least `minimumChunkElements` elements; about four
    /// ranges per core even out uneven progress.
    static func chunkRanges(count: Int, unitElements: Int, execution: WeightCheckExecution) -> [Range<Int>] {
        guard execution.parallel, count > 1 else { return [0..<max(count, 0)] }
        let byMinimum = max(1, count * max(unitElements, 1) / max(execution.minimumChunkElements, 1))
        let chunks = min(count, byMinimum, max(1, execution.maximumChunks ?? ProcessInfo.processInfo.activeProcessorCount * 4))
        guard chunks > 1 else { return [0..<count] }
        return (0..<chunks).map { c in (count * c / chunks)..<(count * (c + 1) / chunks) }
    }

    /// `body` for each range, concurrently when there are several; results in range order.
    static func runChunks<T>(_ ranges: [Range<Int>], _ body: (Range<Int>) -> T) -> [T] {
        if ranges.count == 1 { return [body(ranges[0])] }
        let box = ChunkResults<T>(count: ranges.count)
        // The ranges read disjoint parts of the same tensor and write only their own slot.
        withoutActuallyEscaping(body) { body in
            let task = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: ranges.count) { i in box.set(i, task.value(ranges[i])) }
        }
        return box.values()
    }

    /// A value handed to concurrent workers that only read it (or write through their own slots).
    struct UncheckedSendable<T>: @unchecked Sendable {
        let value: T
        init(_ value: T) { self.value = value }
    }

    final class ChunkResults<T>: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [T?]
        init(count: Int) { items = [T?](repeating: nil, count: count) }
        func set(_ i: Int, _ v: T) { lock.lock(); items[i] = v; lock.unlock() }
        func values() -> [T] { lock.lock(); defer { lock.unlock() }; return items.map { $0! } }
    }

    /// A flag set by the first range that finds a difference, so the others stop comparing.
    final class StopFlag: @unchecked Sendable {
        private let lock = NSLock()
        private var raised = false
        func raise() { lock.lock(); raised = true; lock.unlock() }
        var isRaised: Bool { lock.lock(); defer { lock.unlock() }; return raised }
    }

    /// What one range of a block-quantized tensor contributes.
    struct RangeOutcome {
        var elementsOut = 0
        var blocksOut = 0
        /// Blocks outside the per-block rules that ggml's imatrix refit explains (see `ImportanceRefit`).
        var refitExcused = 0
        var checker: GroupChecker
        var sink: IssueSink
    }

    /// The ranges' outcomes merged in index order into the tensor's result.
    static func merge(_ outcomes: [RangeOutcome], into r: inout TensorWeightResult, sink: inout IssueSink) -> (GroupChecker, excused: Int) {
        var checker = outcomes[0].checker
        var excused = 0
        for (k, o) in outcomes.enumerated() {
            r.elementsOutOfBounds += o.elementsOut
            r.blocksOutOfBounds += o.blocksOut
            excused += o.refitExcused
            sink.absorb(o.sink)
            if k > 0 { checker.absorb(o.checker) }
        }
        return (checker, excused)
    }

    // MARK: Dense floats

    static func checkDenseAny(_ bytes: UnsafeRawBufferPointer, dtype: DType, expected: [Float], into r: inout TensorWeightResult, sink: inout IssueSink,
                              execution: WeightCheckExecution = .serial) {
        switch dtype {
        case .f32, .f16, .bf16:
            checkDense(bytes, dtype: dtype, expected: expected, into: &r, sink: &sink, execution: execution)
        case .f64:
            // float64 holds every float32 exactly: the values must be the reference's.
            r.rule = "f64: identical to the float32 reference (exactly representable)"
            r.elements = expected.count
            for i in 0..<expected.count {
                let v = Double(bitPattern: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                let same = v == Double(expected[i]) || (v.isNaN && expected[i].isNaN)
                if !same { r.elementsOutOfBounds += 1 }
                sink.consider(index: i, block: nil, scale: nil, stored: Float(v), reference: expected[i], expected: expected[i], bound: 0,
                              rule: "not identical", score: same ? 0 : abs(v - Double(expected[i])), isIssue: !same)
            }
        default:
            r.status = .unchecked
            r.detail = "no weight rule for dtype \(dtype.rawValue)"
        }
    }

    /// f32: bit-identical (NaN matches NaN). f16/bf16: identical to round-to-nearest-even of the reference; an
    /// element equal instead to the reference truncated toward zero is counted separately, and a tensor whose
    /// every difference is such a truncation is named "rounded toward zero" (a finding, not a corruption).
    static func checkDense(_ bytes: UnsafeRawBufferPointer, dtype: DType, expected: [Float], into r: inout TensorWeightResult, sink: inout IssueSink,
                           execution: WeightCheckExecution = .serial) {
        let n = expected.count
        r.elements = n
        var truncated = 0, nearestOnly = 0, neither = 0
        var truncMaxAbs: Float = 0
        let isHalf = dtype == .f16
        r.rule = dtype == .f32 ? "f32: bit-identical to the reference"
            : "\(isHalf ? "f16" : "bf16"): identical to round-to-nearest-even of the reference (PyTorch, numpy, gguf-py, MLX)"
        // One pass per range of elements; counts summed, issues merged in index order.
        let outcomes = runChunks(chunkRanges(count: n, unitElements: 1, execution: execution)) { range -> (neither: Int, truncated: Int, truncMaxAbs: Float, sink: IssueSink) in
            var local = sink.empty()
            var neither = 0, truncated = 0
            var truncMaxAbs: Float = 0
            switch dtype {
            case .f32:
                for i in range {
                    let bits = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                    let x = expected[i]
                    if bits == x.bitPattern { continue }  // the common case, kept cheap
                    let v = Float(bitPattern: bits)
                    if v.isNaN && x.isNaN { continue }
                    neither += 1
                    let diff = Double(abs(v - x))
                    local.consider(index: i, block: nil, scale: nil, stored: v, reference: x, expected: x, bound: 0, rule: "not identical",
                                   score: diff.isNaN ? .infinity : diff, isIssue: true)
                }
            default:
                for i in range {
                    let stored = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    let x = expected[i]
                    let rne = isHalf ? FloatCodecs.floatToHalf(x) : FloatCodecs.floatToBFloat16(x)
                    // Exponent bits all ones: ±inf or NaN. A finite reference stored as one is out of the type's range
                    // (f16 overflows at 65520), whatever rounding produced it.
                    let nonFinite = stored & (isHalf ? 0x7C00 : 0x7F80) == (isHalf ? 0x7C00 : 0x7F80)
                    if nonFinite && x.isFinite {
                        neither += 1
                        let v = isHalf ? FloatCodecs.halfToFloat(stored) : FloatCodecs.bfloat16ToFloat(stored)
                        local.consider(index: i, block: nil, scale: nil, stored: v, reference: x, expected: x, bound: 0,
                                       rule: "out of the type's range (a finite reference stored as \(v))", score: .infinity, isIssue: true)
                        continue
                    }
                    if stored == rne { continue }  // the common case, kept cheap
                    let v = isHalf ? FloatCodecs.halfToFloat(stored) : FloatCodecs.bfloat16ToFloat(stored)
                    if v.isNaN && x.isNaN { continue }
                    if stored == truncate(x, half: isHalf) {
                        truncated += 1
                        truncMaxAbs = max(truncMaxAbs, abs(v - x))
                        continue
                    }
                    neither += 1
                    let rneValue = isHalf ? FloatCodecs.halfToFloat(rne) : FloatCodecs.bfloat16ToFloat(rne)
                    let diff = Double(abs(v - rneValue))
                    local.consider(index: i, block: nil, scale: nil, stored: v, reference: x, expected: rneValue, bound: 0,
                                   rule: "not round-to-nearest-even", score: diff.isNaN ? .infinity : diff, isIssue: true)
                }
            }
            return (neither, truncated, truncMaxAbs, local)
        }
        for o in outcomes {
            neither += o.neither
            truncated += o.truncated
            truncMaxAbs = max(truncMaxAbs, o.truncMaxAbs)
            sink.absorb(o.sink)
        }
        if dtype != .f32 {
            // Elements where the two roundings differ but the stored one is round-to-nearest: counted only when
            // some are truncated (to tell a consistent truncation from a mixed one).
            if truncated > 0 {
                for i in 0..<n {
                    let stored = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    let x = expected[i]
                    let rne = isHalf ? FloatCodecs.floatToHalf(x) : FloatCodecs.floatToBFloat16(x)
                    if stored == rne && truncate(x, half: isHalf) != rne { nearestOnly += 1 }
                }
            }
        }
        r.elementsOutOfBounds = neither
        if truncated > 0 && neither > 0 {
            // Other differences too (a transposed or corrupted tensor): the truncation-equal elements are
            // coincidences, not a rounding choice — out of bounds like the rest, without a rounding finding.
            r.elementsOutOfBounds += truncated
            recordTruncations(bytes, dtype: dtype, expected: expected, sink: &sink)
        } else if truncated > 0 {
            if nearestOnly == 0 {
                r.finding = "rounded toward zero (truncation), not to nearest even: \(truncated) of \(n) elements differ from round-to-nearest-even by one ulp "
                    + "(largest |stored − reference| \(formatNumber(Double(truncMaxAbs)))); a consistent rounding choice, not a corruption"
            } else {
                // Mixed rounding is not any converter's consistent choice: each truncated element is an issue.
                r.elementsOutOfBounds += truncated
                r.finding = "mixed rounding: \(truncated) elements truncated toward zero among \(nearestOnly) rounded to nearest even"
                recordTruncations(bytes, dtype: dtype, expected: expected, sink: &sink)
            }
        }
        r.identicalToReferenceQuantizer = neither == 0 && truncated == 0
    }

    static func recordTruncations(_ bytes: UnsafeRawBufferPointer, dtype: DType, expected: [Float], sink: inout IssueSink) {
        let isHalf = dtype == .f16
        for i in 0..<expected.count {
            let stored = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            let x = expected[i]
            let rne = isHalf ? FloatCodecs.floatToHalf(x) : FloatCodecs.floatToBFloat16(x)
            guard stored != rne, stored == truncate(x, half: isHalf) else { continue }
            let v = isHalf ? FloatCodecs.halfToFloat(stored) : FloatCodecs.bfloat16ToFloat(stored)
            let rneValue = isHalf ? FloatCodecs.halfToFloat(rne) : FloatCodecs.bfloat16ToFloat(rne)
            sink.consider(index: i, block: nil, scale: nil, stored: v, reference: x, expected: rneValue, bound: 0,
                          rule: "truncated (mixed rounding)", score: Double(abs(v - rneValue)), isIssue: true)
        }
    }

    /// The reference rounded toward zero (a converter that drops the low bits).
    static func truncate(_ x: Float, half: Bool) -> UInt16 {
        if half {
            let h = Float16(x)
            if x.isNaN || Float(h) == x { return h.bitPattern }
            // Float16(x) rounds to nearest: step back toward zero when it rounded away.
            guard abs(Float(h)) > abs(x) else { return h.bitPattern }
            return (x > 0 ? h.nextDown : h.nextUp).bitPattern
        }
        if x.isNaN { return FloatCodecs.floatToBFloat16(x) }
        return UInt16(truncatingIfNeeded: x.bitPattern >> 16)
    }

    // MARK: Quantized blocks

    /// Per-tensor accumulation of the block rules.
    struct GroupChecker {
        let policy: QuantBoundPolicy
        let codes: [Float]   // sorted code values (uniform: lo...hi)
        let uniform: (lo: Float, hi: Float)?
        var worstFraction = 0.0
        var worstScaleFraction = 0.0
        var worstClipFraction: Double?
        /// The aggregate rule: the largest group RMS error in steps (refit types), as a fraction of its bound.
        var worstRMSFraction: Double?
        /// Elements stored at the grid's end code with the reference beyond it by more than `clipSteps` gaps
        /// (allowed where `clipUnbounded`), and the farthest, in gaps.
        var clippedBeyondEnd = 0
        var farthestClipGaps: Float = 0
        /// Groups judged against the quantizer's own (reconstructed) unrounded scale, and its rounding of ties.
        var exactGroups = 0
        var exactTies = FloatingPointRoundingRule.toNearestOrEven
        /// ggml computes a Q8_0 position as x·(1/d) (`id = 1.0f/d`), MLX as (w − bias)/scale.
        var exactByInverse = false
        /// The table-grid fast path (see `check`); off only to compare it with the full path in tests.
        var tableFastPath = true
        /// Table grids: each stored code's index in `codes` (-1 when not on it), for the fast path's bracket.
        var codeIndex: [Int32]?
        /// The current block's factor on `policy.maxScaleRatio` (`QuantBoundPolicy.blockScaleRatio`).
        var scaleRatioFactor: Float = 1

        init(policy: QuantBoundPolicy) {
            self.policy = policy
            switch policy.grid {
            case let .uniform(lo, hi):
                uniform = (Float(lo), Float(hi))
                codes = []
            case let .table(t):
                uniform = nil
                codes = t
            }
        }

        /// The aggregate statistics and the clipping finding, into the tensor's result.
        func record(into r: inout TensorWeightResult) {
            r.worstRMSFractionOfBound = worstRMSFraction
            if clippedBeyondEnd > 0 {
                r.finding = "\(clippedBeyondEnd) element(s) clipped beyond the grid's end by more than \(formatNumber(Double(policy.clipSteps))) step(s) "
                    + "(farthest \(formatNumber(Double(farthestClipGaps))) steps), stored at the end code: nearest rounding for their group's scale, "
                    + "as a quantizer that gives them no importance (an importance matrix) does"
            }
        }

        /// The statistics of a later range of the same tensor: maxima and sums, as one pass over both gives.
        mutating func absorb(_ o: GroupChecker) {
            worstFraction = max(worstFraction, o.worstFraction)
            worstScaleFraction = max(worstScaleFraction, o.worstScaleFraction)
            if let c = o.worstClipFraction { worstClipFraction = max(worstClipFraction ?? c, c) }
            if let f = o.worstRMSFraction { worstRMSFraction = max(worstRMSFraction ?? f, f) }
            clippedBeyondEnd += o.clippedBeyondEnd
            farthestClipGaps = max(farthestClipGaps, o.farthestClipGaps)
            exactGroups += o.exactGroups
        }

        /// Checks one group; returns the number of elements out of bounds and whether the scale itself is.
        mutating func check(x: UnsafePointer<Float>, y: UnsafePointer<Float>, count: Int, group g: QuantGroup, base: Int, block: Int,
                            exact: (scale: Float, offset: Float)? = nil, storedIndex: UnsafePointer<Int32>? = nil, sink: inout IssueSink) -> (bad: Int, scaleBad: Bool) {
            let s = g.scale, m = g.offset
            let u = QuantBoundPolicy.inputRounding
            let eps: Float = 4 * 0x1p-24
            // Rule 3: scale tightness against the nominal scale of this group's reference values.
            var amax: Float = 0, lo = Float.infinity, hi = -Float.infinity
            for i in 0..<count { amax = max(amax, abs(x[i])); lo = min(lo, x[i]); hi = max(hi, x[i]) }
            // The nominal scale of the quantizer's input, which may be the reference rounded to bf16/f16: amax moves
            // by u·amax, a range by up to 2u·max(|lo|, |hi|) (large for a narrow group far from zero).
            let nominal: Float, nominalSlack: Float
            switch policy.nominal {
            case let .amax(code):
                nominal = amax / code
                nominalSlack = (u * amax + 0x1p-25) / code
            case let .range(levels, zero):
                nominal = ((zero ? max(hi, 0) : hi) - (zero ? min(lo, 0) : lo)) / levels
                nominalSlack = (2 * u * max(abs(lo), abs(hi)) + 0x1p-24) / levels
            }
            var scaleLimit = max(policy.maxScaleRatio * scaleRatioFactor * (nominal + nominalSlack + g.scaleQuantum) + eps * abs(s), policy.minimumScale)
            if let u = policy.underflowScale, nominal < 0x1p-24 { scaleLimit = max(scaleLimit, u) }
            // A group beyond the format's largest scale is clipped however the quantizer works.
            let saturated = policy.maxScale.map { abs(s) >= $0 && nominal > $0 } ?? false
            var scaleBad = false
            if s.isNaN || !s.isFinite || !m.isFinite {
                scaleBad = true
            } else if policy.subnormalScaleAnyCode && abs(s) < 0x1p-14 {
                // An f16-subnormal scale: not judged (see QuantBoundPolicy.subnormalScaleAnyCode).
            } else if nominal > 0 {
                worstScaleFraction = max(worstScaleFraction, Double(abs(s) / scaleLimit))
                scaleBad = abs(s) > scaleLimit
            }
            if let e = exact, let (clo, chi) = uniform, !scaleBad {
                // The quantizer's own scale and offset, reconstructed from the (hypothesised) input and matching the
                // stored ones after rounding: every code must be the rounding of (x − offset)/scale, clamped to the
                // grid (within `nearestCodeLimit`).
                exactGroups += 1
                var bad = 0
                for i in 0..<count {
                    let xi = x[i], yi = y[i]
                    let t = exactByInverse ? (xi - e.offset) * (1 / e.scale) : (xi - e.offset) / e.scale
                    let tc = min(max(t, clo), chi)
                    let c = ((yi - m) / s).rounded()
                    let distance = abs(c - tc)
                    let limit = nearestCodeLimit(t)
                    let elementBad = !isNearestCode(c, position: t, lo: clo, hi: chi, ties: exactTies) || !yi.isFinite
                    let fraction = Double(distance / limit)
                    if elementBad { bad += 1 }
                    worstFraction = max(worstFraction, fraction.isNaN ? .infinity : fraction)
                    if elementBad || fraction > sink.worstScore {
                        let expected = e.scale * tc.rounded() + e.offset
                        sink.consider(index: base + i, block: block, scale: Double(s), stored: yi, reference: xi, expected: expected,
                                      bound: Double(limit * abs(e.scale)), rule: "not the nearest code for the quantizer's scale \(formatNumber(Double(e.scale)))",
                                      score: elementBad ? 1e30 + Double(abs(xi - yi)) : fraction, isIssue: elementBad)
                    }
                }
                return (bad, false)
            }
            var bad = 0
            var maxErr: Float = 0
            var sumSquaredSteps: Float = 0, judged = 0
            let halfStep = 0.5 * abs(s)
            // The fast path's bound for the statistics: half a step, plus the refit allowance where the type has one.
            let fastBound = halfStep + policy.refitSteps * abs(s)
            let fastPath = uniform != nil && s != 0 && s.isFinite && !saturated
            let (gridLo, gridHi) = uniform.map { (min(s * $0.lo, s * $0.hi) + m, max(s * $0.lo, s * $0.hi) + m) } ?? (0, 0)
            for i in 0..<count {
                let xi = x[i], yi = y[i]
                let err = abs(xi - yi)
                // Fast path, the common case: on a uniform grid, a stored value within half a step of an x inside
                // the grid is a nearest grid value, so rules 1 and 2 hold. Its fraction of the bound is taken
                // against half a step (without the slack): an upper bound of the exact one.
                if err > maxErr { maxErr = err }
                if fastPath && err <= halfStep && xi >= gridLo && xi <= gridHi {
                    // Within half a step of x: a nearest grid value, no excess.
                    judged += 1
                    var fraction = Double(err / fastBound)
                    if fraction > worstFraction {
                        // The exact fraction, against the real bound (half a step + the slack + the refit allowance).
                        let code = (yi - m) / s
                        let slack = 2 * (max(u * abs(xi), 0x1p-25) + (abs(code) + 1) * g.scaleStorageSlack + g.offsetStorageSlack)
                            + eps * (abs(xi) + abs(yi) + abs(m) + abs(s) * policy.grid.maxAbsCode)
                        fraction = Double(err / (fastBound + slack))
                    }
                    if fraction > worstFraction { worstFraction = fraction }
                    if fraction > sink.worstScore {
                        sink.consider(index: base + i, block: block, scale: Double(s), stored: yi, reference: xi, expected: yi, bound: Double(halfStep),
                                      rule: "", score: fraction, isIssue: false)
                    }
                    continue
                }
                // The nearest grid value to x, whether x lies inside the grid, the gap there and the end code.
                var near: Float, gap: Float, inside: Bool, endCode: Float, nearestValue: Float
                if s == 0 || !s.isFinite {
                    nearestValue = m; near = abs(xi - m); gap = 0; inside = xi == m; endCode = policy.grid.maxAbsCode
                } else if let (clo, chi) = uniform {
                    let t = (xi - m) / s
                    let c = min(max(t.rounded(.toNearestOrEven), clo), chi)
                    nearestValue = s * c + m
                    near = abs(xi - nearestValue)
                    inside = t >= clo && t <= chi
                    gap = abs(s)
                    endCode = c
                } else {
                    let t = (xi - m) / s
                    let last = codes.count - 1
                    var k: Int
                    // The bracket codes[a] ≤ t < codes[b] (b = last when t is the last code) that the search below finds,
                    // read off the stored code's neighbours when t lies next to it: the same a and b, without the search.
                    if tableFastPath, let storedIndex, yi.isFinite {
                        let sk = Int(storedIndex[i])
                        var a = -1
                        if sk >= 0 {
                            if codes[sk] <= t {
                                if sk < last { if t < codes[sk + 1] { a = sk } } else if t == codes[last] { a = last - 1 }
                            } else if sk > 0 && codes[sk - 1] <= t {
                                a = sk - 1
                            }
                        }
                        if a >= 0 {
                            let b = a + 1
                            let kn = (t - codes[a]) <= (codes[b] - t) ? a : b
                            let nearNeighbour = abs(xi - (s * codes[kn] + m))
                            if err <= nearNeighbour {
                                let bound = Double(err / (abs(s) * (codes[b] - codes[a]) / 2))
                                if bound <= worstFraction && bound <= sink.worstScore { continue }
                            }
                        }
                    }
                    if t < codes[0] || t > codes[last] {
                        inside = false
                        k = t < codes[0] ? 0 : last
                        gap = abs(s) * (k == 0 ? codes[1] - codes[0] : codes[last] - codes[last - 1])
                    } else {
                        inside = true
                        var a = 0, b = last
                        while b - a > 1 { let mid = (a + b) / 2; if codes[mid] <= t { a = mid } else { b = mid } }
                        k = (t - codes[a]) <= (codes[b] - t) ? a : b
                        gap = abs(s) * (codes[b] - codes[a])
                    }
                    nearestValue = s * codes[k] + m
                    near = abs(xi - nearestValue)
                    endCode = codes[k]
                    // Fast path for a table grid: an element inside the grid stored no farther than the nearest grid
                    // value is in bounds (rule 1; nothing clipped), and its fraction err/allowed is at most
                    // err/(gap/2) (allowed = gap/2 + slack + refit, each term ≥ 0). When that bound is no more than
                    // the worst fraction and the sink's worst score so far, the element changes nothing below.
                    if tableFastPath && inside && err <= near && yi.isFinite {
                        let bound = Double(err / (gap / 2))
                        if bound <= worstFraction && bound <= sink.worstScore { continue }
                    }
                }
                let storedCode: Float = s != 0 && s.isFinite ? (yi - m) / s : endCode
                // Both the stored value and the grid value the quantizer preferred may have moved (see QuantBoundPolicy).
                // Input rounding: bf16's 2⁻⁸ relative, or f16's subnormal half-spacing 2⁻²⁵ for tiny weights.
                let slack = 2 * (max(u * abs(xi), 0x1p-25) + (abs(storedCode) + 1) * g.scaleStorageSlack + g.offsetStorageSlack)
                    + eps * (abs(xi) + abs(yi) + abs(m) + abs(s) * policy.grid.maxAbsCode)
                // Rule 1: a nearest code. Rule 2: bounded clipping.
                let anyCode = policy.subnormalScaleAnyCode && abs(s) < 0x1p-14
                let refit = anyCode ? policy.grid.maxAbsCode * 2 * gap : policy.refitSteps * gap
                let nearestOK = err <= near + slack + refit
                // The quantizer's own step may exceed the stored one by the scale quantum (a k-quant sub-scale rounded down).
                let clipLimit = policy.clipSteps * (gap + g.scaleQuantum * (uniform != nil ? 1 : 0)) + abs(endCode) * g.scaleQuantum + g.offsetQuantum + slack
                // Stored at the grid's end code with the reference beyond that end: nearest rounding for this scale
                // (or, for the refit types, within the refit's steps of it: the code the trial scale clipped to). A zero
                // scale (a block whose every element had no importance) is a grid of one point: all of it clipped.
                let atEnd = !inside && (s == 0 || (uniform != nil && abs(storedCode - endCode) <= 0.5 + policy.refitSteps))
                let clippedFree = policy.clipUnbounded && atEnd && (!anyCode || s == 0)
                if clippedFree && near > clipLimit {
                    clippedBeyondEnd += 1
                    farthestClipGaps = max(farthestClipGaps, gap > 0 ? near / gap : 0)
                }
                if !atEnd && gap > 0 && uniform != nil {
                    // The excess over nearest rounding (beyond the storage/input slack), in steps.
                    let steps = max(0, err - near - slack) / gap
                    sumSquaredSteps += steps * steps
                    judged += 1
                }
                let clipOK = inside || near <= clipLimit || saturated || clippedFree
                let allowed = inside ? gap / 2 + slack + refit : clipLimit
                if !inside && clipLimit > 0 && !saturated && !clippedFree { worstClipFraction = max(worstClipFraction ?? 0, Double(near / clipLimit)) }
                let fraction = allowed > 0 ? Double(err / allowed) : (err == 0 ? 0 : .infinity)
                let elementBad = !nearestOK || !clipOK || !yi.isFinite
                if elementBad { bad += 1 }
                // A saturated group's clipping is the format's limit, not the quantizer's: left out of the statistics.
                // Unbounded clipping (clippedFree) has no bound to be a fraction of: reported as the finding's count.
                if !(saturated && !inside) && !clippedFree { worstFraction = max(worstFraction, elementBad ? max(fraction, 1) : fraction.isNaN ? .infinity : fraction) }
                let bound = Double(nearestOK ? (inside ? near + slack + refit : clipLimit) : near + slack + refit)
                sink.consider(index: base + i, block: block, scale: Double(s), stored: yi, reference: xi, expected: nearestValue, bound: bound,
                              rule: !nearestOK ? "not a nearest code" : !clipOK ? "clipped beyond bound" : "non-finite",
                              score: elementBad ? 1e30 + Double(err) : fraction, isIssue: elementBad)
            }
            // Rule 3 guards against a coarser scale that fits worse; a coarser scale under which every element is as
            // close as half a nominal step (e.g. a narrow group far from zero, all on one code) fits no worse than the
            // nominal scale could, and is what a least-squares quantizer may choose. A doubled scale with re-chosen
            // codes leaves some element a whole nominal step away (rule 3 holds), or is caught by rule 1/the RMS rule.
            if scaleBad && s.isFinite && m.isFinite && nominal > 0 {
                let nominalHalfStep = 0.5 * (nominal + nominalSlack + g.scaleQuantum) + g.offsetQuantum
                    + max(u * amax, 0x1p-25) + eps * (amax + abs(m) + abs(s) * policy.grid.maxAbsCode)
                if maxErr <= nominalHalfStep { scaleBad = false }
            }
            // The aggregate rule (refit types): a least-squares refit moves some codes one step, not all of them.
            var rmsBad = false
            if policy.maxRMSSteps > 0 && judged > 0 && !saturated && s.isFinite && !(policy.subnormalScaleAnyCode && abs(s) < 0x1p-14) {
                let rms = (sumSquaredSteps / Float(judged)).squareRoot()
                let fraction = Double(rms / policy.maxRMSSteps)
                worstRMSFraction = max(worstRMSFraction ?? 0, fraction)
                rmsBad = rms > policy.maxRMSSteps
                if rmsBad && bad == 0 {
                    var k = 0
                    for i in 1..<max(count, 1) where abs(x[i] - y[i]) > abs(x[k] - y[k]) { k = i }
                    sink.consider(index: base + k, block: block, scale: Double(s), stored: y[k], reference: x[k], expected: x[k],
                                  bound: Double(policy.maxRMSSteps * abs(s)),
                                  rule: "block RMS error \(formatNumber(Double(rms))) steps > bound \(formatNumber(Double(policy.maxRMSSteps)))",
                                  score: 1e30, isIssue: true)
                }
            }
            if scaleBad && bad == 0 && !rmsBad {
                // Report the block at its largest element, under the scale rule.
                var k = 0
                for i in 1..<max(count, 1) where abs(x[i]) > abs(x[k]) { k = i }
                sink.consider(index: base + k, block: block, scale: Double(s), stored: y[k], reference: x[k], expected: x[k],
                              bound: Double(scaleLimit), rule: WeightVerifier.groupScaleRule(scale: abs(s), limit: scaleLimit, ratio: policy.maxScaleRatio * scaleRatioFactor,
                                                                                            nominal: nominal, policy: policy, first: base, count: count, rowLength: sink.rowLength),
                              score: 1e30, isIssue: true)
            }
            return (bad, scaleBad || rmsBad)
        }
    }

    static func checkGGUFBlocks(_ bytes: UnsafeRawBufferPointer, type: GGMLType, policy: QuantBoundPolicy, expected: [Float],
                                into r: inout TensorWeightResult, sink: inout IssueSink, execution: WeightCheckExecution = .serial) {
        let blockSize = type.blockSize, typeSize = type.typeSize
        let blocks = expected.count / blockSize
        r.rule = "\(type.name): " + policy.ruleText
        r.derivation = policy.derivation
        r.elements = expected.count
        r.blocks = blocks
        let ranges = chunkRanges(count: blocks, unitElements: blockSize, execution: execution)
        // Q8_0: every quantizer computes d = amax/127 and the codes with that unrounded d; judged against it, under
        // the one input hypothesis (the reference, or it rounded to f16 / bf16) whose d reproduces the most stored scales.
        let hypothesis: InputHypothesis? = type == .q8_0 ? InputHypothesis.best(order: InputHypothesis.allCases) { h in
            runChunks(ranges) { range in
                var misfits = 0
                var xh = [Float](repeating: 0, count: blockSize)
                for blk in range {
                    for j in 0..<blockSize { xh[j] = h.apply(expected[blk * blockSize + j]) }
                    let s = FloatCodecs.halfToFloat(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: blk * typeSize, as: UInt16.self)))
                    guard let d = xh.withUnsafeBufferPointer({ reconstructQ8_0($0.baseAddress!, count: blockSize, stored: s) }) else { misfits += expected.count + 1; continue }
                    for j in 0..<blockSize {
                        let c = Float(Int8(bitPattern: bytes[blk * typeSize + 2 + j]))
                        if !isNearestCode(c, position: xh[j] * (1 / d), lo: -128, hi: 127, ties: .toNearestOrAwayFromZero) { misfits += 1 }
                    }
                }
                return misfits
            }.reduce(0, +)
        } : nil
        if let h = hypothesis { r.rule += "; codes judged against the quantizer's own d = amax/127 of \(h.label)" }
        var template = GroupChecker(policy: policy)
        template.exactTies = .toNearestOrAwayFromZero
        template.exactByInverse = true
        let refit = ImportanceRefit.applies(to: type) ? RefitJudge(bytes: bytes, type: type, expected: expected, rowLength: sink.rowLength) : nil
        let outcomes = runChunks(ranges) { range -> RangeOutcome in
            var o = RangeOutcome(checker: template, sink: sink.empty())
            var y = [Float](repeating: 0, count: blockSize)
            // The hypothesised input of one group at a time (no copy of the tensor).
            var hypothesised = [Float](repeating: 0, count: blockSize)
            expected.withUnsafeBufferPointer { xs in
              hypothesised.withUnsafeMutableBufferPointer { hb in
                y.withUnsafeMutableBufferPointer { yb in
                    for blk in range {
                        let raw = UnsafeRawBufferPointer(rebasing: bytes[(blk * typeSize)..<((blk + 1) * typeSize)])
                        GGMLQuants.dequantize(raw, type: type, count: blockSize, into: yb)
                        guard let groups = GGMLQuants.groups(ofBlock: raw.baseAddress!, type: type) else { continue }
                        let length = blockSize / groups.count
                        o.checker.scaleRatioFactor = policy.blockScaleRatio?(raw.baseAddress!) ?? 1
                        var blockBad = false, elementsBad = 0
                        // The refit types: the block's bookkeeping is kept until it is known whether the refit excuses it.
                        let before = refit == nil ? nil : (o.checker, o.sink)
                        for (gi, g) in groups.enumerated() {
                            let offset = blk * blockSize + gi * length
                            var px = UnsafePointer(xs.baseAddress! + offset)
                            if let h = hypothesis, h != .reference {
                                for j in 0..<length { hb[j] = h.apply(xs[offset + j]) }
                                px = UnsafePointer(hb.baseAddress!)
                            }
                            let exact = hypothesis == nil ? nil : reconstructQ8_0(px, count: length, stored: g.scale).map { ($0, Float(0)) }
                            let (bad, scaleBad) = o.checker.check(x: exact == nil ? xs.baseAddress! + offset : px, y: yb.baseAddress! + gi * length, count: length, group: g,
                                                                  base: offset, block: blk, exact: exact, sink: &o.sink)
                            elementsBad += bad
                            if bad > 0 || scaleBad { blockBad = true }
                        }
                        if blockBad, let refit, let before, refit.excuses(block: blk) {
                            (o.checker, o.sink) = before
                            o.refitExcused += 1
                            continue
                        }
                        o.elementsOut += elementsBad
                        if blockBad { o.blocksOut += 1 }
                    }
                }
              }
            }
            return o
        }
        let (checker, excused) = merge(outcomes, into: &r, sink: &sink)
        r.worstFractionOfBound = checker.worstFraction
        r.worstScaleFractionOfBound = checker.worstScaleFraction
        r.worstClipFractionOfBound = checker.worstClipFraction
        checker.record(into: &r)
        if excused > 0 {
            r.finding = (r.finding.map { $0 + "; " } ?? "") + "\(excused) block(s) outside the per-block rules are ggml's importance-matrix refit: "
                + "codes exactly those of one of its trial scales, and one importance per column makes every row's stored scale\(type == .q4_1 || type == .q5_1 ? " and min" : "") in those columns the weighted least-squares refit of its codes"
        }
    }

    /// Whether `bytes` are exactly ggml's reference quantizer's output for `expected`: re-quantized a run of blocks
    /// at a time over the cores, stopping at the first difference; nil when the type has no quantizer here.
    static func identicalToGGMLReference(_ bytes: UnsafeRawBufferPointer, type: GGMLType, expected: [Float], execution: WeightCheckExecution) -> Bool? {
        guard type.canQuantize else { return nil }
        let blockSize = type.blockSize, typeSize = type.typeSize
        let blocks = expected.count / blockSize
        guard bytes.count == blocks * typeSize else { return false }
        let differs = StopFlag()
        let run = 256
        let failed = runChunks(chunkRanges(count: blocks, unitElements: blockSize, execution: execution)) { range -> Bool in
            var out = [UInt8](repeating: 0, count: min(run, range.count) * typeSize)
            var b = range.lowerBound
            while b < range.upperBound {
                if differs.isRaised { return false }
                let n = min(run, range.upperBound - b)
                let same: Bool = expected.withUnsafeBufferPointer { e in
                    out.withUnsafeMutableBytes { o in
                        let values = UnsafeBufferPointer(rebasing: e[(b * blockSize)..<((b + n) * blockSize)])
                        guard (try? GGMLQuants.quantize(values, to: type, into: o)) != nil else { return false }
                        return memcmp(o.baseAddress!, bytes.baseAddress! + b * typeSize, n * typeSize) == 0
                    }
                }
                if !same { differs.raise(); return true }
                b += n
            }
            return false
        }
        return !failed.contains(true) && !differs.isRaised
    }

    static func checkMLX(_ q: MLXQuantized, policy: QuantBoundPolicy, expected: [Float], into r: inout TensorWeightResult, sink: inout IssueSink,
                         tableFastPath: Bool = true, execution: WeightCheckExecution = .serial) {
        r.rule = "MLX \(policy.type): " + policy.ruleText
        r.derivation = policy.derivation
        r.elements = expected.count
        let groupsPerRow = q.groupsPerRow, g = q.groupSize
        r.blocks = q.rows * groupsPerRow
        var template = GroupChecker(policy: policy)
        template.tableFastPath = tableFastPath
        let scales = q.scaleValues, biases = q.biasValues
        let fpValues: [Float] = q.mode == .mxfp8 ? (0...255).map { FloatCodecs.f8E4M3ToFloat(UInt8($0)) } : MLXQuantization.fp4Values
        // Each code's position in the checker's sorted table (-1: not on it, e.g. an E4M3 NaN): the stored code's
        // neighbours bracket the reference without a search.
        if case let .table(table) = policy.grid {
            template.codeIndex = fpValues.map { v in Int32(table.firstIndex(of: v == 0 ? 0 : v) ?? -1) }
        }
        let ranges = chunkRanges(count: q.rows, unitElements: q.cols, execution: execution)
        // Affine: MLX computes each group's scale and bias in float32 from the (dtype-rounded) input and the codes with
        // those unrounded values; judged against them under the input hypothesis that reproduces the most stored pairs.
        let reconstructs = q.mode == .affine
        // MLX rounds its input to the weight dtype, which is the scales' dtype: that hypothesis first.
        let dtypeFirst: InputHypothesis = q.scaleType == .f16 ? .f16 : q.scaleType == .bf16 ? .bf16 : .reference
        let hypothesis: InputHypothesis? = reconstructs ? InputHypothesis.best(order: [dtypeFirst] + InputHypothesis.allCases.filter { $0 != dtypeFirst }) { h in
            runChunks(ranges) { range in
                var misfits = 0
                var xh = [Float](repeating: 0, count: g)
                let hi = Float((1 << q.bits) - 1)
                for row in range {
                    let codes = q.codes(row: row)
                    for gi in 0..<groupsPerRow {
                        let index = row * groupsPerRow + gi, base = row * q.cols + gi * g
                        for j in 0..<g { xh[j] = h.apply(expected[base + j]) }
                        let stored = (scales[index], biases?[index] ?? 0)
                        guard let e = xh.withUnsafeBufferPointer({ reconstructAffine($0.baseAddress!, count: g, bits: q.bits, dtype: q.scaleType, stored: stored) }) else {
                            misfits += expected.count + 1
                            continue
                        }
                        for j in 0..<g where !isNearestCode(Float(codes[gi * g + j]), position: (xh[j] - e.offset) / e.scale, lo: 0, hi: hi, ties: .toNearestOrEven) { misfits += 1 }
                    }
                }
                return misfits
            }.reduce(0, +)
        } : nil
        if let h = hypothesis { r.rule += "; codes judged against MLX's own float32 scale and bias of \(h.label)" }
        let outcomes = runChunks(ranges) { range -> RangeOutcome in
            var o = RangeOutcome(checker: template, sink: sink.empty())
            var y = [Float](repeating: 0, count: g)
            var indices = [Int32](repeating: -1, count: g)
            var hypothesised = [Float](repeating: 0, count: g)
            let tableIndex = o.checker.codeIndex
            for row in range {
                let codes = q.codes(row: row)
                for gi in 0..<groupsPerRow {
                    let index = row * groupsPerRow + gi
                    let s = scales[index], m = biases?[index] ?? 0
                    let group: QuantGroup
                    switch q.mode {
                    case .affine:
                        let hs = halfULP(s, q.scaleType), hm = halfULP(m, q.scaleType)
                        group = QuantGroup(scale: s, offset: m, scaleStorageSlack: hs, offsetStorageSlack: hm, scaleQuantum: hs, offsetQuantum: hm)
                        for j in 0..<g { y[j] = s * Float(codes[gi * g + j]) + m }
                    case .nvfp4:
                        group = QuantGroup(scale: s, offset: 0, scaleStorageSlack: 0, offsetStorageSlack: 0, scaleQuantum: halfSpacingE4M3(s) + dtypeQuantum(s), offsetQuantum: 0)
                        for j in 0..<g { y[j] = s * fpValues[Int(codes[gi * g + j])] }
                    case .mxfp4, .mxfp8:
                        group = QuantGroup(scale: s, offset: 0, scaleStorageSlack: 0, offsetStorageSlack: 0, scaleQuantum: dtypeQuantum(s), offsetQuantum: 0)
                        for j in 0..<g { y[j] = s * fpValues[Int(codes[gi * g + j])] }
                    }
                    if let tableIndex { for j in 0..<g { indices[j] = tableIndex[Int(codes[gi * g + j])] } }
                    let base = row * q.cols + gi * g
                    let hypothesisApplies = hypothesis.map { $0 != .reference } ?? false
                    if let h = hypothesis, hypothesisApplies { for j in 0..<g { hypothesised[j] = h.apply(expected[base + j]) } }
                    let (bad, scaleBad) = expected.withUnsafeBufferPointer { xs in
                        hypothesised.withUnsafeBufferPointer { hb in
                            y.withUnsafeBufferPointer { yb in
                                indices.withUnsafeBufferPointer { ib in
                                    let px = hypothesisApplies ? hb.baseAddress! : xs.baseAddress! + base
                                    let exact = hypothesis == nil ? nil : reconstructAffine(px, count: g, bits: q.bits, dtype: q.scaleType, stored: (s, m))
                                    return o.checker.check(x: exact == nil ? xs.baseAddress! + base : px, y: yb.baseAddress!, count: g, group: group, base: base, block: index,
                                                           exact: exact, storedIndex: tableIndex == nil ? nil : ib.baseAddress!, sink: &o.sink)
                                }
                            }
                        }
                    }
                    o.elementsOut += bad
                    if bad > 0 || scaleBad { o.blocksOut += 1 }
                }
            }
            return o
        }
        let (checker, _) = merge(outcomes, into: &r, sink: &sink)
        r.worstFractionOfBound = checker.worstFraction
        r.worstScaleFractionOfBound = checker.worstScaleFraction
        r.worstClipFractionOfBound = checker.worstClipFraction
        checker.record(into: &r)
    }

    /// Whether `q` is exactly `mx.quantize`'s output for `expected` in `dtype`: re-quantized a run of rows at a time
    /// over the cores, stopping at the first difference.
    static func identicalToMLXReference(_ q: MLXQuantized, expected: [Float], dtype: MLXFloatType, execution: WeightCheckExecution) -> Bool? {
        let differs = StopFlag()
        let cols = q.cols, packedCols = q.packedCols
        let scaleWidth = q.groupsPerRow * (q.mode == .affine ? q.scaleType.byteWidth : 1)  // scale (bias) bytes per row
        let run = max(1, 65536 / max(cols, 1))
        let outcome = runChunks(chunkRanges(count: q.rows, unitElements: cols, execution: execution)) { range -> Bool? in
            var row = range.lowerBound
            while row < range.upperBound {
                if differs.isRaised { return false }
                let n = min(run, range.upperBound - row)
                guard let ref = try? MLXQuantization.quantize(Array(expected[(row * cols)..<((row + n) * cols)]), rows: n, cols: cols, dtype: dtype,
                                                              mode: q.mode, groupSize: q.groupSize, bits: q.bits) else { return nil }
                let same = ref.packed[...] == q.packed[(row * packedCols)..<((row + n) * packedCols)]
                    && ref.scales[...] == q.scales[(row * scaleWidth)..<((row + n) * scaleWidth)]
                    && (ref.biases.map { $0[...] } == q.biases.map { $0[(row * scaleWidth)..<((row + n) * scaleWidth)] })
                if !same { differs.raise(); return true }
                row += n
            }
            return false
        }
        if outcome.contains(where: { $0 == nil }) { return nil }
        return !outcome.contains(true) && !differs.isRaised
    }

    /// MLX rounds amax/top to the weight dtype before choosing an fp scale: up to bf16's 2⁻⁸ relative, or f16's
    /// subnormal half-spacing 2⁻²⁵ absolute for tiny weights.
    static func dtypeQuantum(_ s: Float) -> Float { max(0x1p-25, abs(s) * 0x1p-8) }

    /// Half an ulp of `v` in an MLX float type.
    static func halfULP(_ v: Float, _ t: MLXFloatType) -> Float {
        switch t {
        case .f32: return v.ulp / 2
        case .f16: return halfULPOfHalf(v)
        case .bf16:
            let a = abs(v)
            guard a.isFinite, a > 0 else { return 0 }
            return Float(sign: .plus, exponent: max(a.exponent, -126) - 8, significand: 1)
        }
    }
}

// MARK: Entry points for single tensors (tests, measurements)

extension WeightVerifier {
    /// Checks GGUF block bytes of `type` (rows of `rowLength`) against reference values in the same order.
    public static func checkGGUF(_ bytes: [UInt8], type: GGMLType, reference: [Float], rowLength: Int, name: String = "tensor",
                                 execution: WeightCheckExecution = .serial) -> TensorWeightResult {
        var r = TensorWeightResult(layer: nil, referenceName: name, fileName: name, storedType: type.name, storedShape: [reference.count / rowLength, rowLength],
                                   referenceShape: [reference.count / rowLength, rowLength], layout: "identity", status: .pass, failsVerification: false)
        var sink = IssueSink(map: nil, rowLength: rowLength)
        bytes.withUnsafeBytes { b in
            switch type {
            case .f32, .f16, .bf16: checkDense(b, dtype: type == .f32 ? .f32 : type == .f16 ? .f16 : .bf16, expected: reference, into: &r, sink: &sink, execution: execution)
            default:
                if let policy = QuantBoundPolicy.gguf(type) {
                    checkGGUFBlocks(b, type: type, policy: policy, expected: reference, into: &r, sink: &sink, execution: execution)
                } else { r.status = .unchecked }
            }
        }
        r.issues = sink.issues
        r.worst = sink.worst
        if r.status == .pass && (r.elementsOutOfBounds > 0 || r.blocksOutOfBounds > 0) { r.status = .outOfBounds }
        r.failsVerification = r.status != .pass
        return r
    }

    /// Checks an MLX quantized matrix against reference values `[rows, cols]`. `tableFastPath: false` judges every
    /// element of a table grid (nvfp4, mxfp4, mxfp8) by the full path: the same result, for comparing the two.
    public static func checkMLX(_ q: MLXQuantized, reference: [Float], name: String = "tensor", tableFastPath: Bool = true,
                                execution: WeightCheckExecution = .serial) -> TensorWeightResult {
        var r = TensorWeightResult(layer: nil, referenceName: name, fileName: name, storedType: q.mode.rawValue, storedShape: [q.rows, q.cols],
                                   referenceShape: [q.rows, q.cols], layout: "identity", status: .pass, failsVerification: false)
        var sink = IssueSink(map: nil, rowLength: q.cols)
        checkMLX(q, policy: QuantBoundPolicy.mlx(mode: q.mode, bits: q.bits, groupSize: q.groupSize), expected: reference, into: &r, sink: &sink,
                 tableFastPath: tableFastPath, execution: execution)
        r.issues = sink.issues
        r.worst = sink.worst
        if r.elementsOutOfBounds > 0 || r.blocksOutOfBounds > 0 { r.status = .outOfBounds }
        r.failsVerification = r.status != .pass
        return r
    }
}

// MARK: The quantizer's own scales, reconstructed

/// What the quantizer's input was: the reference itself, or the reference rounded to f16 / bf16 first (a
/// conversion to an f16/bf16 file before quantizing; MLX casting to the weight dtype). A tensor is judged under one.
enum InputHypothesis: CaseIterable {
    case reference, f16, bf16

    func apply(_ v: Float) -> Float {
        switch self {
        case .reference: return v
        case .f16: return FloatCodecs.halfToFloat(FloatCodecs.floatToHalf(v))
        case .bf16: return FloatCodecs.bfloat16ToFloat(FloatCodecs.floatToBFloat16(v))
        }
    }

    var label: String {
        switch self {
        case .reference: return "the reference values"
        case .f16: return "the reference rounded to f16"
        case .bf16: return "the reference rounded to bf16"
        }
    }

    /// The hypothesis with the fewest misfits — first the groups whose stored scale it does not reproduce (each
    /// counted as more than all elements), then the codes off the quantizer's own — the first in `order` on ties;
    /// stops at a perfect fit. A corruption of codes leaves the scales, so the hypothesis stays the quantizer's.
    static func best(order: [InputHypothesis], misfits: (InputHypothesis) -> Int) -> InputHypothesis {
        var best = order[0], fewest = Int.max
        for h in order {
            let m = misfits(h)
            if m < fewest { best = h; fewest = m }
            if m == 0 { break }
        }
        return best
    }
}

/// The quantizer's code for position t (x in units of its own scale) is round(t) clamped to the grid; float
/// evaluation order (x·(1/d) versus x/d) moves t by a few ulps (2⁻²³ relative each): 2⁻²⁰·(1 + |t|) covers it.
@inline(__always) func nearestCodeLimit(_ t: Float) -> Float { 0.5 + 0x1p-20 * (1 + abs(t)) }

/// An exact tie (t at k + ½) is decided by the quantizer's rounding: ggml's `roundf` away from zero, MLX's `rint`
/// to even.
@inline(__always) func isNearestCode(_ c: Float, position t: Float, lo: Float, hi: Float, ties: FloatingPointRoundingRule) -> Bool {
    let tc = min(max(t, lo), hi)
    if tc - tc.rounded(.down) == 0.5 { return c == tc.rounded(ties) }
    return abs(c - tc) <= nearestCodeLimit(t)
}

extension WeightVerifier {
    /// Q8_0's d = amax/127 (ggml's reference and imatrix paths, gguf-py) when its f16 rounding is the stored d.
    static func reconstructQ8_0(_ x: UnsafePointer<Float>, count: Int, stored: Float) -> Float? {
        var amax: Float = 0
        for i in 0..<count { amax = max(amax, abs(x[i])) }
        let d = amax / 127
        guard d > 0, d.isFinite, stored != 0, FloatCodecs.halfToFloat(FloatCodecs.floatToHalf(d)) == stored else { return nil }
        return d
    }

    /// MLX affine's float32 scale and bias of a group (MLX's CPU `quantize`: see MLXQuantization) when their
    /// rounding to the weight dtype is the stored pair.
    static func reconstructAffine(_ w: UnsafePointer<Float>, count: Int, bits: Int, dtype: MLXFloatType, stored: (Float, Float)) -> (scale: Float, offset: Float)? {
        var wMin = Float.infinity, wMax = -Float.infinity
        for j in 0..<count {
            if wMax < w[j] { wMax = w[j] }
            if w[j] < wMin { wMin = w[j] }
        }
        let eps: Float = 1e-7
        var scale: Float, bias: Float
        if bits == 1 {
            scale = max(wMax - wMin, eps)
            bias = wMin
        } else {
            let mask = abs(wMin) > abs(wMax)
            scale = max((wMax - wMin) / Float((1 << bits) - 1), eps)
            scale = mask ? scale : -scale
            let edge = mask ? wMin : wMax
            let q0 = (edge / scale).rounded(.toNearestOrEven)
            bias = 0
            if q0 != 0 {
                scale = edge / q0
                bias = edge
            }
        }
        guard scale.isFinite, bias.isFinite, dtype.round(scale) == stored.0, dtype.round(bias) == stored.1 else { return nil }
        return (scale, bias)
    }
}
