import ParityCore
import ParityEngine
import ParityFormats

/// A failing tensor that holds another parameter's reference: gate and up exchanged, the two norms of a layer
/// exchanged, Q and K exchanged where their shapes agree, one layer's tensor in another layer's slot, a LayerNorm's
/// weight and bias exchanged. One rule for all of them, with no list of roles: a stored tensor that fails its own
/// check is checked again, with the same rule and bound of its stored type (`WeightVerifier.check`), against every
/// other reference parameter of the same shape, rearranged into the layout the runtime reads this slot in; one that
/// passes is what the slot holds.
enum WeightOtherParameter {
    /// Above this many failing tensors (still unnamed after the layer pass) the full search is skipped: an exchange
    /// shows as a few failing tensors, while a file where most fail (a wrong type, a wrong model) would cost failing ×
    /// same-shape candidates full checks.
    static let maximumFailingTensors = 16

    /// Sets `diagnosis` on each out-of-bounds result that has none and holds another parameter's reference.
    /// `results[i]` is the check of `bindings[i]`, whose reference is `entries[i]` of `reference`.
    ///
    /// Two passes. First the layer correspondence, with no cap: a failing tensor of layer A is tried against the
    /// same-named parameter of every other layer B (its reference name with A's index replaced by B's) — at most
    /// (layers − 1) candidates per failing tensor, each first screened by one distance pass and checked in full only
    /// when nearer than the slot's own reference: a whole-layer exchange (2 × 9 tensors of a Llama layer) costs about
    /// what reading those layers once more costs, and is named tensor by tensor. Then, when at most
    /// `maximumFailingTensors` remain unnamed, every same-shape parameter is tried for them.
    static func annotate(_ results: inout [TensorWeightResult], bindings: [RuntimeWeight], entries: [SafetensorsEntry],
                         reference: SafetensorsFile, mlxFloat: MLXFloatType?) {
        func unnamedFailing() -> [Int] {
            results.indices.filter { i in i < bindings.count && results[i].status == .outOfBounds && results[i].diagnosis == nil }
        }
        guard !unnamedFailing().isEmpty else { return }
        var cache: [String: [Float]] = [:]
        func referenceValues(_ j: Int) -> [Float]? {
            if let v = cache[entries[j].name] { return v }
            guard let v = try? reference.tensor(entries[j]).data else { return nil }
            cache[entries[j].name] = v
            return v
        }
        let indexOfName = Dictionary(entries.indices.map { (entries[$0].name, $0) }, uniquingKeysWith: { a, _ in a })
        let layerNumbers = Set(entries.compactMap { layerIndex(of: $0.name)?.number })
        // The layer of the parameter each named slot holds (filled by `name`).
        var heldLayer: [Int: Int] = [:]

        // Pass 1: layer for layer.
        for i in unnamedFailing() {
            guard let (number, component) = layerIndex(of: entries[i].name) else { continue }
            let candidates = layerNumbers.sorted().filter { $0 != number }.compactMap { other -> Int? in
                var parts = entries[i].name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
                parts[component] = String(other)
                return indexOfName[parts.joined(separator: ".")]
            }
            name(i, candidates: candidates)
        }
        // A whole-layer exchange, said once per layer pair on each tensor it covers.
        markWholeLayerExchanges()

        // Pass 2: every same-shape parameter, for the few still unnamed.
        let rest = unnamedFailing()
        guard !rest.isEmpty, rest.count <= maximumFailingTensors else { return }
        for i in rest { name(i, candidates: Array(entries.indices)) }

        /// Checks slot i against `candidates` (parameters of its shape nearer to the stored values than its own
        /// reference) and, when one passes, sets the diagnosis.
        func name(_ i: Int, candidates: [Int]) {
            let binding = bindings[i]
            guard let source = binding.source, let stored = WeightDiagnosis.stored(source), let own = referenceValues(i) else { return }
            let storedOrder = binding.layout.referenceIndexOfStored()
            func inStoredOrder(_ values: [Float]) -> [Float] { storedOrder.map { m in m.map { values[$0] } } ?? values }
            // Only a parameter nearer to the stored values than the slot's own reference is checked in full.
            let ownDistance = squaredDistance(stored.values, inStoredOrder(own))
            var holds: [Int] = []
            for j in candidates where j != i && entries[j].name != entries[i].name && entries[j].shape == binding.referenceShape
                && !holds.contains(where: { entries[$0].name == entries[j].name }) {
                guard let other = referenceValues(j), other.count == own.count,
                      squaredDistance(stored.values, inStoredOrder(other)) < ownDistance else { continue }
                if WeightVerifier.check(binding, reference: other, mlxFloat: mlxFloat).status == .pass { holds.append(j) }
            }
            guard let j = holds.first else { return }
            let otherBinding = bindings[j]
            var message = "[holds-other-parameter] \(binding.fileName) holds the reference of \(entries[j].name) (the runtime reads that parameter "
                + "from \(otherBinding.fileName)), not of \(binding.referenceName): it passes \(results[i].storedType)'s bound against that tensor"
            if holds.count > 1 { message += " (it passes against \(holds.dropFirst().map { entries[$0].name }.joined(separator: ", ")) too: their references agree within that bound)" }
            // The other slot holding this slot's reference: the two were exchanged.
            if results.indices.contains(j), results[j].status != .pass, otherBinding.source != nil,
               WeightVerifier.check(otherBinding, reference: own, mlxFloat: mlxFloat).status == .pass {
                message += "; \(otherBinding.fileName) holds \(binding.referenceName)'s: the two are exchanged"
            }
            heldLayer[i] = layerIndex(of: entries[j].name)?.number
            results[i].diagnosis = message
        }

        /// When every parameter of layer A fails and holds layer B's, and the other way round, the diagnoses say the
        /// layers are exchanged whole. A parameter that passes counts only when its reference is identical to its
        /// counterpart's in the other layer (e.g. norms left at 1): then the exchange cannot show in it.
        func markWholeLayerExchanges() {
            var byLayer: [Int: [Int]] = [:]
            for i in entries.indices where i < results.count { if let n = layerIndex(of: entries[i].name)?.number { byLayer[n, default: []].append(i) } }
            func counterpart(_ i: Int, in layer: Int) -> Int? {
                guard let (_, component) = layerIndex(of: entries[i].name) else { return nil }
                var parts = entries[i].name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
                parts[component] = String(layer)
                return indexOfName[parts.joined(separator: ".")]
            }
            func covered(_ slots: [Int], holding other: Int) -> Bool {
                slots.allSatisfy { i in
                    if results[i].status != .pass { return heldLayer[i] == other }
                    guard let j = counterpart(i, in: other), let mine = referenceValues(i), let theirs = referenceValues(j) else { return false }
                    return mine == theirs
                }
            }
            for (a, slots) in byLayer {
                let failingA = slots.filter { results[$0].status != .pass }
                guard let b = failingA.first.flatMap({ heldLayer[$0] }), a < b, let slotsB = byLayer[b], slotsB.count == slots.count,
                      covered(slots, holding: b), covered(slotsB, holding: a) else { continue }
                let failingB = slotsB.filter { results[$0].status != .pass }
                for i in failingA + failingB {
                    results[i].diagnosis? += "; every tensor of layers \(a) and \(b) holds the other layer's parameter: the two layers are exchanged whole"
                }
            }
        }
    }

    /// The layer index of a parameter name — its first all-digit dot-separated component (`model.layers.3.mlp…`,
    /// `encoder.layer.3.…`) — and that component's position; nil for a parameter outside the layers.
    static func layerIndex(of name: String) -> (number: Int, component: Int)? {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard let k = parts.firstIndex(where: { !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }), let n = Int(parts[k]) else { return nil }
        return (n, k)
    }

    static func squaredDistance(_ a: [Float], _ b: [Float]) -> Double {
        guard a.count == b.count else { return .infinity }
        var sum = 0.0
        for k in a.indices {
            let d = Double(a[k]) - Double(b[k])
            sum += d * d
        }
        return sum
    }
}
