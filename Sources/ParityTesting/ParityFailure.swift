import ParityCore
import ParityVerify

/// One reason a verification did not pass, as a test failure states it: which cell, what (a node, a tensor, the
/// logits, …), the metric, its value, the limit, and where (element index, row/column/block).
public struct ParityFailure: Sendable, Equatable, CustomStringConvertible {
    public enum Subject: Sendable, Equatable {
        /// A node of the model graph (a golden activation): its name and op.
        case node(name: String, op: String)
        /// A stored tensor of the converted file (weights first).
        case tensor(name: String)
        /// The output's argmax / a causal LM's logits (KL, top-1).
        case output(String)
        /// Something about the whole file: the runtime would refuse to load it, a hyperparameter differs, nothing ran.
        case file(String)
    }

    /// `model format variant (file)`.
    public let cell: String
    public let subject: Subject
    /// `rel L2`, `max abs`, `|stored − expected|` (an exact rule), `|stored − reference|` (a bounded rule), `KL mean`, or a status
    /// (`MISSING`, `NON-FINITE`, …) when no number applies.
    public let metric: String
    public let value: Double?
    public let limit: Double?
    /// Where: `element [3, 1, 14, 7] (flat 12345)`, `row 4, column 17, block 2`; nil when the whole node or file is meant.
    public let location: String?
    /// What else the report says (the rule, a diagnosis, the status detail).
    public let detail: String?

    public init(cell: String, subject: Subject, metric: String, value: Double?, limit: Double?, location: String?, detail: String?) {
        self.cell = cell
        self.subject = subject
        self.metric = metric
        self.value = value
        self.limit = limit
        self.location = location
        self.detail = detail
    }

    public var subjectDescription: String {
        switch subject {
        case let .node(name, op): return "node \(name) (\(op))"
        case let .tensor(name): return "tensor \(name)"
        case let .output(what): return what
        case let .file(what): return what
        }
    }

    /// `fmnist-mlp gguf q8_0 (x.gguf): node fc1 (Linear): rel L2 0.031 > limit 0.002 at element [12, 40] (flat 6040) — …`
    public var description: String {
        var text = "\(cell): \(subjectDescription): \(metric)"
        if let value { text += " \(formatNumber(value))" }
        if let limit { text += " > limit \(formatNumber(limit))" }
        if let location { text += " at \(location)" }
        if let detail, !detail.isEmpty { text += " — \(detail)" }
        return text
    }
}

extension ParityFailure {
    /// Every failure of a report, in report order (nodes in graph order, then tensors, then the output and the file).
    /// Empty for a report that passed. An UNJUDGED report yields one failure naming the nodes without a tolerance policy:
    /// a gate that is not judged has not passed.
    public static func of(_ report: VerificationReport) -> [ParityFailure] {
        let cell = "\(report.model) \(report.format) \(report.variant) (\(report.file))"
        var failures: [ParityFailure] = []
        for layer in report.layers {
            let subject = Subject.node(name: layer.name, op: layer.op)
            for (status, run) in [(layer.status, ""), (layer.isolatedStatus, " (fed its golden inputs)")] {
                guard let status else { continue }
                let metrics = run.isEmpty ? layer.metrics : layer.isolated
                switch status {
                case .pass, .unjudged, .notRun:
                    continue
                case let .fail(violations):
                    for violation in violations {
                        failures.append(ParityFailure(
                            cell: cell, subject: subject, metric: violation.metric + run, value: violation.value, limit: violation.limit,
                            location: metrics.map { elementLocation(flat: $0.maxAbsIndex, shape: layer.shape) },
                            detail: layer.diagnosis.map { "diagnosis: \($0)" }))
                    }
                case let .nonFinite(nan, inf):
                    failures.append(ParityFailure(cell: cell, subject: subject, metric: "NaN/Inf count" + run, value: Double(nan + inf), limit: 0,
                                                  location: nil, detail: "\(nan) NaN, \(inf) Inf"))
                default:
                    failures.append(ParityFailure(cell: cell, subject: subject, metric: status.label + run, value: nil, limit: nil,
                                                  location: nil, detail: status.detail))
                }
            }
        }
        for tensor in report.weights?.failing ?? [] {
            let name = tensor.referenceName.map { $0 == tensor.fileName ? $0 : "\(tensor.fileName) (reference \($0))" } ?? tensor.fileName
            guard tensor.status == .outOfBounds, let worst = tensor.worst ?? tensor.issues.first else {
                failures.append(ParityFailure(cell: cell, subject: .tensor(name: name), metric: tensor.status.rawValue, value: nil, limit: nil,
                                              location: nil, detail: tensor.detail ?? tensor.diagnosis))
                continue
            }
            var location = "row \(worst.row), column \(worst.column)"
            if let block = worst.block { location += ", block \(block)" }
            location += " (stored index \(worst.storedIndex))"
            let counts = "\(tensor.elementsOutOfBounds) of \(tensor.elements) elements" + (tensor.blocks > 0 ? ", \(tensor.blocksOutOfBounds) of \(tensor.blocks) blocks" : "")
                + " out of bounds; stored \(formatNumber(worst.stored)), reference \(formatNumber(worst.reference)), nearest representable \(formatNumber(worst.expected))"
                + (worst.rule.isEmpty ? "" : "; \(worst.rule)") + (tensor.diagnosis.map { "; diagnosis: \($0)" } ?? "")
            // A bound of 0 is an exact rule (f32 identical, f16/bf16 round-to-nearest-even): the stored value must be the
            // expected one. Otherwise the bound limits the distance to the reference (quantized types).
            let exact = worst.bound == 0
            failures.append(ParityFailure(cell: cell, subject: .tensor(name: name), metric: exact ? "|stored − expected|" : "|stored − reference|",
                                          value: abs(worst.stored - (exact ? worst.expected : worst.reference)), limit: worst.bound,
                                          location: location, detail: counts))
        }
        for refusal in report.loadRefusals {
            failures.append(ParityFailure(cell: cell, subject: .file("the runtime refuses the file"), metric: "load", value: nil, limit: nil,
                                          location: nil, detail: refusal))
        }
        for mismatch in report.hyperparameterMismatches {
            failures.append(ParityFailure(cell: cell, subject: .file("hyperparameter"), metric: "mismatch", value: nil, limit: nil,
                                          location: nil, detail: mismatch))
        }
        if let logits = report.logits, let limits = logits.limits {
            if !(logits.klMean <= limits.klMean) {
                failures.append(ParityFailure(cell: cell, subject: .output("logits"), metric: "KL mean", value: logits.klMean, limit: limits.klMean,
                                              location: nil, detail: nil))
            }
            if !(logits.klMax <= limits.klMax) {
                failures.append(ParityFailure(cell: cell, subject: .output("logits"), metric: "KL max", value: logits.klMax, limit: limits.klMax,
                                              location: nil, detail: nil))
            }
            if logits.top1Agreeing < limits.top1Minimum {
                failures.append(ParityFailure(cell: cell, subject: .output("logits"), metric: "top-1 agreeing positions (at least)",
                                              value: Double(logits.top1Agreeing), limit: Double(limits.top1Minimum),
                                              location: nil, detail: "of \(logits.positions) positions"))
            }
        }
        if let last = report.layers.last, last.tolerance != nil, !report.argmaxPasses, let argmax = report.argmax {
            failures.append(ParityFailure(cell: cell, subject: .output("argmax of \(last.name)"), metric: "decisive rows agreeing (all required)",
                                          value: Double(argmax.decisiveAgreeing), limit: Double(argmax.decisive),
                                          location: "rows " + argmax.disagreeingRows.prefix(8).map(String.init).joined(separator: ", "), detail: nil))
        }
        // A sentence-embedding model's end metric (each line names the sentence, the cosine and the limit).
        for line in report.endMetricFailures {
            failures.append(ParityFailure(cell: cell, subject: .output("sentence embeddings"), metric: "end metric", value: nil, limit: nil,
                                          location: nil, detail: line))
        }
        if report.layers.isEmpty {
            failures.append(ParityFailure(cell: cell, subject: .file("the report"), metric: "no node was compared", value: nil, limit: nil,
                                          location: nil, detail: nil))
        }
        // Every verdict input above has its failure; should a new one be added to the verdict first, a failed report
        // still fails the test (naming the verdict) rather than passing silently.
        if failures.isEmpty && report.verdict == .fail {
            failures.append(ParityFailure(cell: cell, subject: .file("verdict FAIL"), metric: "verdict", value: nil, limit: nil,
                                          location: nil, detail: "the report failed; see its text (`parity verify --file`) for why"))
        }
        if failures.isEmpty && report.verdict == .unjudged {
            let unjudged = report.layers.filter { $0.status == .unjudged }.map(\.name)
            failures.append(ParityFailure(cell: cell, subject: .file("verdict UNJUDGED"), metric: "no tolerance policy", value: nil, limit: nil,
                                          location: nil, detail: unjudged.isEmpty ? "for this format and variant"
                                            : "for node(s) \(unjudged.prefix(8).joined(separator: ", "))\(unjudged.count > 8 ? ", …" : "")"))
        }
        return failures
    }

    /// `element [3, 1, 14, 7] (flat 12345, the largest |difference|)`: a row-major flat index as a multi-index of `shape`.
    static func elementLocation(flat: Int, shape: [Int]) -> String {
        var rest = flat, index: [Int] = []
        for extent in shape.reversed() where extent > 0 {
            index.insert(rest % extent, at: 0)
            rest /= extent
        }
        return "element [\(index.map(String.init).joined(separator: ", "))] (flat \(flat), the largest |difference|)"
    }
}
