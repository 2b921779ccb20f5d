import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// Runs an engine on the golden inputs and compares every layer with the golden activations.
public enum Comparator {
    /// The golden input a model reads first: the dataset the first activation's `input` names, else the only input.
    public static func modelInput(_ golden: GoldenFile) throws(ParityError) -> Tensor {
        if let path = golden.activations.first?.input, path.hasPrefix("/inputs/"),
           let tensor = golden.inputs[String(path.dropFirst("/inputs/".count))] {
            return tensor
        }
        guard golden.inputs.count == 1, let only = golden.inputs.values.first else {
            throw .malformed(file: golden.path, at: "/inputs", reason: "cannot tell which input the model reads")
        }
        return only
    }

    /// The tolerances for this file: derived from what each layer of the file stores (read through the engine),
    /// or, for an engine Parity cannot look into, from the variant label when it names one storage for every layer.
    public static func policy(model: ReferenceModel, engine: FormatEngine, format: String, variant: String) -> TolerancePolicy? {
        guard let kind = Variant.Format(rawValue: format) else { return nil }
        let stored = StoredWeights.of(engine, layers: model.config.layers)
            ?? (try? Variant.parse(variant, format: kind)).flatMap { StoredWeights.uniform($0, layers: model.config.layers) }
        return stored.flatMap { TolerancePolicy.derive(format: kind, variant: variant, layers: model.config.layers, stored: $0) }
    }

    public static func verify(model: ReferenceModel, golden: GoldenFile, engine: FormatEngine,
                              format: String, variant: String, file: String, checkWeights: Bool = true) throws(ParityError) -> VerificationReport {
        let policy = policy(model: model, engine: engine, format: format, variant: variant)
        var outputs: [String: Tensor] = [:]
        var failure: LayerExecutionError?
        let input = try modelInput(golden)
        do throws(LayerExecutionError) {
            _ = try engine.forward(model.config.layers, input: input) { name, output in outputs[name] = output }
        } catch {
            failure = error
        }
        var results: [LayerResult] = []
        var reachedFailure = false
        for activation in golden.activations {
            let layer = model.config.layer(named: activation.name)
            let tolerance = layer.flatMap { policy?.tolerance(for: $0) }
            var metrics: LayerMetrics?
            let status: LayerStatus
            if let failure, failure.layer == activation.name {
                status = .error(failure.reason)
                reachedFailure = true
            } else if reachedFailure {
                status = .notRun
            } else if let output = outputs[activation.name] {
                if output.shape != activation.tensor.shape {
                    status = .shapeMismatch(expected: activation.tensor.shape, actual: output.shape)
                } else {
                    let m = LayerMetrics.compare(output.data, activation.tensor.data)
                    metrics = m
                    if m.goldenNonFinite > 0 {
                        status = .goldenNonFinite(m.goldenNonFinite)
                    } else if !m.isFinite {
                        status = .nonFinite(nan: m.nanCount, inf: m.infCount)
                    } else if let tolerance {
                        let violations = tolerance.violations(m)
                        status = violations.isEmpty ? .pass : .fail(violations)
                    } else {
                        status = .unjudged
                    }
                }
            } else {
                status = .missing
            }
            results.append(LayerResult(name: activation.name, op: activation.op, order: activation.order, input: activation.input,
                                       shape: activation.tensor.shape, metrics: metrics, tolerance: tolerance, status: status,
                                       growth: nil, noiseFloorRelL2: activation.noiseFloorRelL2))
        }
        // Error growth: this layer's rel L2 over that of the layer it reads.
        let relByPath = Dictionary(uniqueKeysWithValues: results.compactMap { r in r.metrics.map { ("/activations/" + r.name, $0.relL2) } })
        for i in results.indices {
            guard let rel = results[i].metrics?.relL2, let input = results[i].input, let upstream = relByPath[input], upstream > 0 else { continue }
            results[i].growth = rel / upstream
        }
        var argmax: ArgmaxAgreement?
        if let last = golden.activations.last, !model.config.classes.isEmpty, let output = outputs[last.name],
           output.shape == last.tensor.shape, let lastResult = results.last, let m = lastResult.metrics {
            // Two logits can each move by the absolute tolerance, so a margin wider than twice it cannot flip.
            // Without a tolerance the margin is 0 and the agreement is shown, not judged (see VerificationReport.verdict).
            let absLimit = (lastResult.tolerance?.maxAbsOverScale ?? 0) * m.goldenMaxAbs
            argmax = ArgmaxAgreement.compute(actual: output, expected: last.tensor, decisiveMargin: 2 * absLimit)
        }
        var report = VerificationReport(model: model.name, format: format, variant: variant, file: file, engine: engine.semantics,
                                        policy: policy, layers: results, argmax: argmax,
                                        inputCount: input.shape.first ?? 0)
        // Weights first: every stored parameter against the reference, independent of activation tolerances.
        if checkWeights { report.weights = try WeightVerifier.verify(engine: engine, model: model) }
        if let loading = (engine as? StrictLoadingEngine)?.loading {
            report.loadRefusals = loading.refusals
            report.notes += loading.refusals.map { "FAIL: \($0)" } + loading.warnings.map { "warning: \($0)" }
        }
        return report
    }

    /// `layer-diff`: the propagated comparison, every layer also run on its golden input (isolated), and a
    /// diagnosis for each layer that fails in isolation. `progress` receives one line per step.
    public static func layerDiff(model: ReferenceModel, golden: GoldenFile, engine: FormatEngine, format: String, variant: String,
                                 file: String, diagnose: Bool = true, progress: (String) -> Void = { _ in }) throws(ParityError) -> VerificationReport {
        progress("propagated run: \(model.config.layers.count) layers")
        var report = try verify(model: model, golden: golden, engine: engine, format: format, variant: variant, file: file)
        for (i, activation) in golden.activations.enumerated() {
            progress("isolated \(i + 1)/\(golden.activations.count): \(activation.name)")
            guard let layer = model.config.layer(named: activation.name), let path = activation.input, let input = golden.tensor(at: path) else {
                report.setIsolated(i, metrics: nil, status: .missing)
                continue
            }
            do throws(LayerExecutionError) {
                let out = try engine.apply(layer, to: input)
                guard out.shape == activation.tensor.shape else {
                    report.setIsolated(i, metrics: nil, status: .shapeMismatch(expected: activation.tensor.shape, actual: out.shape))
                    continue
                }
                let m = LayerMetrics.compare(out.data, activation.tensor.data)
                let status: LayerStatus
                if m.goldenNonFinite > 0 { status = .goldenNonFinite(m.goldenNonFinite) } else if !m.isFinite { status = .nonFinite(nan: m.nanCount, inf: m.infCount) } else if let t = report.layers[i].tolerance {
                    let v = t.violations(m)
                    status = v.isEmpty ? .pass : .fail(v)
                } else { status = .unjudged }
                report.setIsolated(i, metrics: m, status: status)
            } catch {
                report.setIsolated(i, metrics: nil, status: .error(error.reason))
            }
        }
        guard diagnose, let diagnosable = engine as? DiagnosableEngine else { return report }
        for (i, result) in report.layers.enumerated() {
            guard let status = result.isolatedStatus, !status.isPass, status != .unjudged, let tolerance = result.tolerance,
                  let layer = model.config.layer(named: result.name), let path = result.input, let input = golden.tensor(at: path),
                  let expected = golden.activation(named: result.name)?.tensor else { continue }
            progress("diagnosing \(result.name)")
            report.setDiagnosis(i, Diagnoser.diagnose(layer: layer, engine: diagnosable, input: input, golden: expected,
                                                      tolerance: tolerance, layers: model.config.layers))
        }
        return report
    }
}
