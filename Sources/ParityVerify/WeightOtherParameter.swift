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
    /// Above this many failing tensors the search is skipped: an exchange shows as a few failing tensors, while a
    /// file where most fail (a wrong type, a wrong model) would cost failing × same-shape candidates full checks.
    static let maximumFailingTensors = 16

    /// Sets `diagnosis` on each out-of-bounds result that has none and holds another parameter's reference.
    /// `results[i]` is the check of `bindings[i]`, whose reference is `entries[i]` of `reference`.
    static func annotate(_ results: inout [TensorWeightResult], bindings: [RuntimeWeight], entries: [SafetensorsEntry],
                         reference: SafetensorsFile, mlxFloat: MLXFloatType?) {
        let failing = results.indices.filter { i in
            i < bindings.count && results[i].status == .outOfBounds && results[i].diagnosis == nil
        }
        guard !failing.isEmpty, failing.count <= maximumFailingTensors else { return }
        var cache: [String: [Float]] = [:]
        func referenceValues(_ j: Int) -> [Float]? {
            if let v = cache[entries[j].name] { return v }
            guard let v = try? reference.tensor(entries[j]).data else { return nil }
            cache[entries[j].name] = v
            return v
        }
        for i in failing {
            let binding = bindings[i]
            guard let source = binding.source, let stored = WeightDiagnosis.stored(source), let own = referenceValues(i) else { continue }
            let storedOrder = binding.layout.referenceIndexOfStored()
            func inStoredOrder(_ values: [Float]) -> [Float] { storedOrder.map { m in m.map { values[$0] } } ?? values }
            // Only a parameter nearer to the stored values than the slot's own reference is checked in full.
            let ownDistance = squaredDistance(stored.values, inStoredOrder(own))
            var holds: [Int] = []
            for j in entries.indices where j != i && entries[j].name != entries[i].name && entries[j].shape == binding.referenceShape
                && !holds.contains(where: { entries[$0].name == entries[j].name }) {
                guard let other = referenceValues(j), other.count == own.count,
                      squaredDistance(stored.values, inStoredOrder(other)) < ownDistance else { continue }
                if WeightVerifier.check(binding, reference: other, mlxFloat: mlxFloat).status == .pass { holds.append(j) }
            }
            guard let j = holds.first else { continue }
            let otherBinding = bindings[j]
            var message = "[holds-other-parameter] \(binding.fileName) holds the reference of \(entries[j].name) (the runtime reads that parameter "
                + "from \(otherBinding.fileName)), not of \(binding.referenceName): it passes \(results[i].storedType)'s bound against that tensor"
            if holds.count > 1 { message += " (it passes against \(holds.dropFirst().map { entries[$0].name }.joined(separator: ", ")) too: their references agree within that bound)" }
            // The other slot holding this slot's reference: the two were exchanged.
            if results.indices.contains(j), results[j].status != .pass, otherBinding.source != nil,
               WeightVerifier.check(otherBinding, reference: own, mlxFloat: mlxFloat).status == .pass {
                message += "; \(otherBinding.fileName) holds \(binding.referenceName)'s: the two are exchanged"
            }
            results[i].diagnosis = message
        }
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
