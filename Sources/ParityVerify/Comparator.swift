import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// Runs an engine over the model graph on the golden inputs and compares every recorded node with the goldens.
public enum Comparator {
    /// The golden input a sequential model reads first: the dataset the first activation's `input` names, else the only input.
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

    /// Every model input of `graph`, typed, by path, from the goldens.
    public static func graphInputs(_ graph: ModelGraph, golden: GoldenFile) throws(ParityError) -> [String: GraphValue] {
        var values: [String: GraphValue] = [:]
        for input in graph.inputs {
            guard let value = golden.inputValues[input.name] else {
                throw .mismatch(file: golden.path, reason: "has no \(input.path), an input of the \(graph.architecture) graph")
            }
            values[input.path] = value
        }
        return values
    }

    /// The tolerances for this file: derived from what each layer of the file stores (read through the engine),
    /// or, for an engine Parity cannot look into, from the variant label when it names one storage for every layer.
    /// A transformer's policy is per node op (`TolerancePolicy.transformer`).
    public static func policy(model: ReferenceModel, engine: GraphEngine, format: String, variant: String, golden: GoldenFile? = nil) -> TolerancePolicy? {
        guard let kind = Variant.Format(rawValue: format) else { return nil }
        // A Llama read from GGUF / MLX: per node from what the file stores (Tolerance+LlamaQuantized.swift).
        if let llama = engine as? LlamaGraphEngine, kind != .safetensors {
            return TolerancePolicy.llama(graph: model.config.graph, engine: llama, format: kind, variant: variant, golden: golden)
        }
        // A BERT read from GGUF: per node from the file's matrix type and llama.cpp's GELU (Tolerance+Bert.swift).
        if let bert = engine as? BertGraphEngine, let gguf = bert.source as? GGUFBertWeights {
            return TolerancePolicy.ggufBert(graph: model.config.graph, model: model, golden: golden, source: gguf, variant: variant)
        }
        // A BERT read from an MLX directory with quantized modules (Tolerance+BertQuantized.swift).
        if let bert = engine as? BertGraphEngine, let mlx = bert.source as? MLXBertWeights, !mlx.quantizedModules.isEmpty, let golden {
            return TolerancePolicy.mlxBertQuantized(graph: model.config.graph, model: model, golden: golden, source: mlx, variant: variant)
        }
        if model.config.isTransformer {
            return (try? Variant.parse(variant, format: kind)).flatMap { TolerancePolicy.transformer(graph: model.config.graph, variant: $0) }
        }
        let stored = (engine as? FormatEngine).flatMap { StoredWeights.of($0, layers: model.config.layers) }
            ?? (try? Variant.parse(variant, format: kind)).flatMap { StoredWeights.uniform($0, layers: model.config.layers) }
        return stored.flatMap { TolerancePolicy.derive(format: kind, variant: variant, layers: model.config.layers, stored: $0) }
    }

    /// The status of one computed value against its golden.
    static func judge(_ value: GraphValue, against golden: GoldenActivation, tolerance: Tolerance?) -> (LayerMetrics?, LayerStatus) {
        guard value.shape == golden.value.shape else { return (nil, .shapeMismatch(expected: golden.value.shape, actual: value.shape)) }
        let m = LayerMetrics.compare(value.asFloats.data, golden.tensor.data)
        if m.goldenNonFinite > 0 { return (m, .goldenNonFinite(m.goldenNonFinite)) }
        if !m.isFinite { return (m, .nonFinite(nan: m.nanCount, inf: m.infCount)) }
        guard let tolerance else { return (m, .unjudged) }
        let violations = tolerance.violations(m)
        return (m, violations.isEmpty ? .pass : .fail(violations))
    }

    public static func verify(model: ReferenceModel, golden: GoldenFile, engine: GraphEngine,
                              format: String, variant: String, file: String, checkWeights: Bool = true) throws(ParityError) -> VerificationReport {
        let graph = model.config.graph
        let policy = policy(model: model, engine: engine, format: format, variant: variant, golden: golden)
        var outputs: [String: GraphValue] = [:]
        var failure: LayerExecutionError?
        let inputs = try graphInputs(graph, golden: golden)
        do throws(LayerExecutionError) {
            try GraphExecutor.run(graph, engine: engine, inputs: inputs) { node, value in outputs[node.path] = value }
        } catch {
            failure = error
        }
        var results: [LayerResult] = []
        var reachedFailure = false
        for activation in golden.activations {
            let tolerance = policy?.tolerance(forNode: activation.name)
            var metrics: LayerMetrics?
            let status: LayerStatus
            if let failure, failure.layer == activation.name
                || !reachedFailure && outputs[activation.path] == nil && !golden.activations.contains(where: { $0.name == failure.layer }) {
                // The node that could not run (or, for a node no golden records, the first recorded node it left without a value).
                status = .error(failure.layer == activation.name ? failure.reason : "\(failure.layer): \(failure.reason)")
                reachedFailure = true
            } else if let output = outputs[activation.path] {
                (metrics, status) = judge(output, against: activation, tolerance: tolerance)
            } else if reachedFailure {
                // The executor stops at the first node that cannot run; nodes after it in topological order have no value.
                status = .notRun
            } else {
                status = .missing
            }
            results.append(LayerResult(name: activation.name, op: activation.op.isEmpty ? (graph.node(at: activation.path)?.op.label ?? "") : activation.op,
                                       order: activation.order, input: activation.input, inputs: activation.inputs,
                                       shape: activation.value.shape, metrics: metrics, tolerance: tolerance, status: status,
                                       growth: nil, noiseFloorRelL2: activation.noiseFloorRelL2))
        }
        // Error growth: this node's rel L2 over the largest rel L2 among the nodes it reads.
        let relByPath = Dictionary(uniqueKeysWithValues: zip(golden.activations, results).compactMap { a, r in r.metrics.map { (a.path, $0.relL2) } })
        for i in results.indices {
            guard let rel = results[i].metrics?.relL2, let upstream = results[i].inputs.compactMap({ relByPath[$0] }).max(), upstream > 0 else { continue }
            results[i].growth = rel / upstream
        }
        var argmax: ArgmaxAgreement?
        if let lastResult = results.last, let last = golden.activations.last, last.path == graph.output,
           model.config.isTransformer || !model.config.classes.isEmpty,
           let output = outputs[last.path]?.floats, output.shape == last.tensor.shape, let m = lastResult.metrics {
            // Two logits can each move by the absolute tolerance, so a margin wider than twice it cannot flip.
            // Without a tolerance the margin is 0 and the agreement is shown, not judged (see VerificationReport.verdict).
            // A causal LM predicts at every token: each (sequence, token) row is one prediction.
            let absLimit = (lastResult.tolerance?.maxAbsOverScale ?? 0) * m.goldenMaxAbs
            let rows = output.shape.dropLast().reduce(1, *), columns = output.shape.last ?? 1
            argmax = ArgmaxAgreement.compute(actual: output.reshaped([rows, columns]), expected: last.tensor.reshaped([rows, columns]),
                                             decisiveMargin: 2 * absLimit)
        }
        let inputCount = graph.inputs.first.flatMap { inputs[$0.path]?.shape.first } ?? 0
        var report = VerificationReport(model: model.name, format: format, variant: variant, file: file, engine: engine.semantics,
                                        policy: policy, layers: results, argmax: argmax, inputCount: inputCount)
        if model.config.isTransformer, let reference = golden.referenceLogits, let output = outputs[graph.output]?.floats {
            report.logits = LogitAgreement.compute(logits: output, reference: reference, tolerance: results.last?.tolerance)
        }
        // Weights first: every stored parameter against the reference, independent of activation tolerances.
        if checkWeights, !model.config.isTransformer, let formatEngine = engine as? FormatEngine {
            report.weights = try WeightVerifier.verify(engine: formatEngine, model: model)
        } else if checkWeights, let llama = (engine as? LlamaGraphEngine)?.source ?? (engine as? PyTorchEngine)?.llama {
            report.weights = try WeightVerifier.verify(llama: llama, reference: model.weights())  // every Llama tensor, as its runtime reads it
        } else if checkWeights, model.config.isTransformer {
            // Said, not silently skipped: the weight check reads image layers only so far.
            report.notes.append("weights were not checked tensor by tensor (the weight check covers the sequential image models so far); activations were")
        }
        if let loading = (engine as? StrictLoadingEngine)?.loading {
            report.loadRefusals = loading.refusals
            report.notes += loading.refusals.map { "FAIL: \($0)" } + loading.warnings.map { "warning: \($0)" }
        }
        return report
    }

    /// `layer-diff`: the propagated comparison, every node also run on its golden inputs (isolated: all of them,
    /// as the golden's `inputs` list them; a composite module runs its members from its own golden inputs), and a
    /// diagnosis for each image layer that fails in isolation. `progress` receives one line per step.
    public static func layerDiff(model: ReferenceModel, golden: GoldenFile, engine: GraphEngine, format: String, variant: String,
                                 file: String, diagnose: Bool = true, progress: (String) -> Void = { _ in }) throws(ParityError) -> VerificationReport {
        let graph = model.config.graph
        progress("propagated run: \(graph.nodes.count) nodes")
        var report = try verify(model: model, golden: golden, engine: engine, format: format, variant: variant, file: file)
        for (i, activation) in golden.activations.enumerated() {
            progress("isolated \(i + 1)/\(golden.activations.count): \(activation.name)")
            guard let node = graph.node(at: activation.path), activation.inputs.allSatisfy({ golden.value(at: $0) != nil }) else {
                report.setIsolated(i, metrics: nil, status: .missing)
                continue
            }
            do throws(LayerExecutionError) {
                let value = try GraphExecutor.runIsolated(node, in: graph, engine: engine) { golden.value(at: $0) }
                let (metrics, status) = judge(value, against: activation, tolerance: report.layers[i].tolerance)
                report.setIsolated(i, metrics: metrics, status: status)
            } catch {
                report.setIsolated(i, metrics: nil, status: .error(error.reason))
            }
        }
        for (i, result) in report.layers.enumerated() {
            guard let node = graph.node(named: result.name) else { continue }
            if case .layer = node.op {
                report.setDiagnosesTried(i, Diagnoser.imageMistakes)
            } else if let tried = Diagnoser.mistakesTried(at: node, engine: engine) {
                report.setDiagnosesTried(i, tried)
            }
        }
        guard diagnose else { return report }
        if let overriding = engine as? ParameterOverridingEngine {
            // Graph nodes beyond the image layers (a Llama's projections, norms, RoPE): the transformer mistakes. The
            // reference's own weights serve one hypothesis (the output matrix a file without one should have had).
            let referenceWeights = try? model.weights()  // checked: without them that one hypothesis is not tried
            for (i, result) in report.layers.enumerated() {
                guard let status = result.isolatedStatus, !status.isPass, status != .unjudged, let tolerance = result.tolerance,
                      let node = graph.node(named: result.name), Diagnoser.mistakesTried(at: node, engine: engine) != nil else { continue }
                if case .layer = node.op { continue }
                progress("diagnosing \(result.name)")
                report.setDiagnosis(i, Diagnoser.diagnose(node: node, graph: graph, engine: overriding, golden: golden, tolerance: tolerance,
                                                          reference: { name in try? referenceWeights?.tensor(named: name) }))  // checked: absent → not tried
            }
        }
        guard let diagnosable = engine as? DiagnosableEngine else { return report }
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
