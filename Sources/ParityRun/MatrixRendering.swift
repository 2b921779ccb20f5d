import Foundation
import ParityCore
import ParityVerify

/// The summary lines and JSON document of a verification run, shared by `parity verify`, `--config` and ParityKit.
public enum MatrixRendering {
    /// `  PASS  model  format variant  worst rel L2 …  first divergence: …` (+ the weights' summary).
    public static func summaryLine(_ r: VerificationReport) -> String {
        let worst = r.layers.compactMap { $0.metrics?.relL2 }.max().map(formatNumber) ?? "-"
        let first = r.firstDivergence.map { "first divergence: \($0.name)" } ?? failureWithoutDivergence(r)
        return "  \(r.verdict.rawValue.uppercased())  \(r.model)  \(r.format) \(r.variant)  worst rel L2 \(worst)  \(first)" + WeightRendering.summary(r)
    }

    /// Why a report with no diverging node failed, in the words of what failed: a tokenizer mismatch is recorded
    /// beside the hyperparameters (prefixed "tokenizer: ") but is not one, and a failed end metric has no node.
    static func failureWithoutDivergence(_ r: VerificationReport) -> String {
        if !r.loadRefusals.isEmpty { return "the runtime refuses the file (see note)" }
        let tokenizer = r.hyperparameterMismatches.contains { $0.hasPrefix("tokenizer: ") }
        let hyperparameters = r.hyperparameterMismatches.contains { !$0.hasPrefix("tokenizer: ") }
        switch (hyperparameters, tokenizer) {
        case (true, true): return "hyperparameters and the tokenizer differ from the reference (see note)"
        case (true, false): return "hyperparameters differ from the reference (see note)"
        case (false, true): return "the tokenizer differs from the reference (see note)"
        case (false, false): return r.endMetricFailures.isEmpty ? "" : "the end metric is out of its limit (see note)"
        }
    }

    /// `  ERROR  model  format variant  message`.
    public static func summaryLine(_ e: CellError) -> String { "  ERROR  \(e.model)  \(e.format) \(e.variant)  \(e.message)" }

    public static func json(_ e: CellError) -> JSONValue {
        .object([("model", .string(e.model)), ("format", .string(e.format)), ("variant", .string(e.variant)), ("message", .string(e.message))])
    }

    /// The parity-report document of `verify --json`: the reports, and the cells with bad input under "errors".
    public static func json(reports: [VerificationReport], errors: [CellError]) -> JSONValue {
        var document = ReportRendering.json(reports)
        if case var .object(members) = document {
            // A cell with bad input makes the whole run "error" (exit 2), whatever the other cells did.
            if !errors.isEmpty, let i = members.firstIndex(where: { $0.key == "verdict" }) { members[i].value = .string("error") }
            members.append(("errors", .array(errors.map(json))))
            document = .object(members)
        }
        return document
    }
}
