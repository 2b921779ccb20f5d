import Foundation
import ParityCore

/// The weight section of reports: terminal, JSON and HTML.
public enum WeightRendering {
    /// Whether a failing tensor's layer shows the corruption in activations, in words.
    public static func visibility(of tensor: TensorWeightResult, in report: VerificationReport) -> String? {
        guard let layerName = tensor.layer, let layer = report.layers.first(where: { $0.name == layerName }) else { return nil }
        var text = "activations at \(layerName): \(layer.status.label)"
        if let m = layer.metrics {
            text += " (rel L2 \(formatNumber(m.relL2))"
            if let t = layer.tolerance { text += ", tolerance \(formatNumber(t.maxRelL2))" }
            text += ")"
        }
        if let own = layer.isolatedStatus { text += "; on its golden input: \(own.label)" + (layer.isolated.map { " (rel L2 \(formatNumber($0.relL2)))" } ?? "") }
        if layer.status.isPass && (layer.isolatedStatus?.isPass ?? true) {
            text += " — the activation comparison alone would not have caught it"
        }
        if let a = report.argmax, !a.disagreeingRows.isEmpty {
            text += "; \(a.total - a.agreeing) of \(a.total) predictions differ from the golden's"
        }
        return text
    }

    /// For a summary line: the weight tensors that fail, or nothing when all pass.
    public static func summary(_ report: VerificationReport) -> String {
        guard let w = report.weights, !w.passed else { return "" }
        return "  weights out of bounds: " + w.failing.map { "\($0.fileName) (\(summaryCause($0)))" }.joined(separator: ", ")
    }

    /// Why one tensor fails, for the summary line: its elements out of bounds, or — when every element is within the
    /// element rules and only blocks fail (a group scale over its bound, a block RMS) — the first such block's rule.
    public static func summaryCause(_ t: TensorWeightResult) -> String {
        guard t.status == .outOfBounds else { return t.status.rawValue }
        if t.elementsOutOfBounds == 0, t.blocksOutOfBounds > 0 {
            let first = t.issues.first.map { ": row \($0.row)" + ($0.block.map { ", block \($0)" } ?? "") + ", " + $0.rule } ?? ""
            return "\(t.blocksOutOfBounds) block(s)\(first)"
        }
        return "\(t.elementsOutOfBounds) elements"
    }

    static func position(_ i: WeightIssue) -> String {
        var parts = ["[\(i.row), \(i.column)]"]
        if let b = i.block { parts.append("block \(b)") }
        if let s = i.scale { parts.append("scale \(formatNumber(s))") }
        parts.append("reference index \(i.referenceIndex)")
        return parts.joined(separator: ", ")
    }

    static func describe(_ i: WeightIssue) -> String {
        // A group scale over its bound is the group's finding, not an element's: its position and the scale rule only.
        if i.rule.hasPrefix(WeightVerifier.groupScalePrefix) {
            return "row \(i.row)" + (i.block.map { ", block \($0)" } ?? "") + ": " + i.rule
        }
        return "\(position(i)): stored \(formatNumber(i.stored)), reference \(formatNumber(i.reference)), expected \(formatNumber(i.expected))"
            + (i.bound > 0 ? " (bound \(formatNumber(i.bound)))" : "") + (i.rule.isEmpty ? "" : " — \(i.rule)")
    }

    public static func terminal(_ report: VerificationReport) -> [String] {
        guard let w = report.weights else { return [] }
        var lines: [String] = []
        let failing = w.failing
        lines.append("weights: \(w.tensors.count) tensors against \(w.referenceFile): \(failing.isEmpty ? "all within bounds" : "\(failing.count) out of bounds or unreadable") "
            + "(\(formatBytes(w.bytesChecked)) in \(String(format: "%.2f", w.seconds)) s)")
        let header = ["tensor", "reference", "type", "elements", "blocks", "out", "worst/bound", "ref bytes", "status"]
        var rows: [[String]] = []
        for t in w.tensors {
            rows.append([t.fileName, t.referenceName ?? "-", t.storedType, t.elements > 0 ? "\(t.elements)" : "-", t.blocks > 0 ? "\(t.blocks)" : "-",
                         t.elements > 0 ? (t.blocks > 0 ? "\(t.elementsOutOfBounds) el / \(t.blocksOutOfBounds) bl" : "\(t.elementsOutOfBounds)") : "-",
                         t.largestFractionOfBound.map { String(format: "%.3f", $0.fraction) + ($0.rule == "element" ? "" : " (\($0.rule))") } ?? "-",
                         t.identicalToReferenceQuantizer.map { $0 ? "identical" : "differ" } ?? "-",
                         t.status.rawValue + (t.finding != nil && t.status == .pass ? " (finding)" : "") + (t.status != .pass && !t.failsVerification ? " (ignored)" : "")])
        }
        let widths = header.indices.map { i in max(header[i].count, rows.map { $0[i].count }.max() ?? 0) }
        func line(_ cells: [String]) -> String {
            "  " + cells.indices.map { i in cells[i] + String(repeating: " ", count: widths[i] - cells[i].count) }.joined(separator: "  ")
        }
        lines.append(line(header))
        for row in rows { lines.append(line(row)) }
        for t in w.tensors {
            let name = t.fileName + (t.referenceName.map { $0 == t.fileName ? "" : " (\($0))" } ?? "")
            if let f = t.finding { lines.append("  \(name): finding: \(f)") }
            if t.status == .pass { continue }
            var head = "  \(name): \(t.status.rawValue)"
            if let d = t.detail { head += ": \(d)" }
            if t.status == .outOfBounds {
                head += t.elementsOutOfBounds == 0 && t.blocksOutOfBounds > 0
                    ? ": \(t.blocksOutOfBounds) of \(t.blocks) blocks out of bounds (every element within the element rules; the block's scale or RMS is not); rule: \(t.rule)"
                    : ": \(t.elementsOutOfBounds) of \(t.elements) elements" + (t.blocks > 0 ? " in \(t.blocksOutOfBounds) of \(t.blocks) blocks" : "") + " out of bounds; rule: \(t.rule)"
            }
            lines.append(head)
            for i in t.issues { lines.append("    " + describe(i)) }
            if let d = t.diagnosis { lines.append("    diagnosis: \(d)") }
            if t.failsVerification, let v = visibility(of: t, in: report) { lines.append("    \(v)") }
        }
        return lines
    }

    static func formatBytes(_ n: Int) -> String {
        n >= 1 << 20 ? String(format: "%.1f MiB", Double(n) / Double(1 << 20)) : n >= 1 << 10 ? String(format: "%.1f KiB", Double(n) / 1024) : "\(n) B"
    }

    // MARK: JSON

    public static func json(_ report: VerificationReport) -> JSONValue {
        guard let w = report.weights else { return .null }
        func num(_ x: Double?) -> JSONValue { x.map { $0.isFinite ? JSONValue.number($0) : .null } ?? .null }
        func issue(_ i: WeightIssue) -> JSONValue {
            .object([
                ("stored_index", .number(i.storedIndex)), ("reference_index", .number(i.referenceIndex)),
                ("row", .number(i.row)), ("column", .number(i.column)),
                ("block", i.block.map { .number($0) } ?? .null), ("scale", num(i.scale)),
                ("stored", num(i.stored)), ("reference", num(i.reference)), ("expected", num(i.expected)),
                ("bound", num(i.bound)), ("rule", .string(i.rule)),
            ])
        }
        func tensor(_ t: TensorWeightResult) -> JSONValue {
            var m: [(key: String, value: JSONValue)] = []
            m.append(("file_name", .string(t.fileName)))
            m.append(("reference_name", t.referenceName.map { JSONValue.string($0) } ?? .null))
            m.append(("layer", t.layer.map { JSONValue.string($0) } ?? .null))
            m.append(("type", .string(t.storedType)))
            m.append(("stored_shape", .array(t.storedShape.map { JSONValue.number($0) })))
            m.append(("reference_shape", .array(t.referenceShape.map { JSONValue.number($0) })))
            m.append(("layout", .string(t.layout)))
            m.append(("status", .string(t.status.rawValue)))
            m.append(("passed", .bool(t.passed)))
            m.append(("elements", .number(t.elements)))
            m.append(("blocks", .number(t.blocks)))
            m.append(("elements_out_of_bounds", .number(t.elementsOutOfBounds)))
            m.append(("blocks_out_of_bounds", .number(t.blocksOutOfBounds)))
            m.append(("worst", t.worst.map(issue) ?? .null))
            m.append(("worst_fraction_of_bound", num(t.worstFractionOfBound)))
            m.append(("worst_scale_fraction_of_bound", num(t.worstScaleFractionOfBound)))
            m.append(("worst_clip_fraction_of_bound", num(t.worstClipFractionOfBound)))
            m.append(("worst_rms_fraction_of_bound", num(t.worstRMSFractionOfBound)))
            m.append(("issues", .array(t.issues.map(issue))))
            m.append(("rule", .string(t.rule)))
            m.append(("derivation", .string(t.derivation)))
            m.append(("identical_to_reference_quantizer", t.identicalToReferenceQuantizer.map { JSONValue.bool($0) } ?? .null))
            m.append(("finding", t.finding.map { JSONValue.string($0) } ?? .null))
            m.append(("detail", t.detail.map { JSONValue.string($0) } ?? .null))
            m.append(("diagnosis", t.diagnosis.map { JSONValue.string($0) } ?? .null))
            let shows: JSONValue = t.failsVerification ? (visibility(of: t, in: report).map { JSONValue.string($0) } ?? .null) : .null
            m.append(("activations", shows))
            return .object(m)
        }
        let tensors: [JSONValue] = w.tensors.map(tensor)
        return .object([
            ("passed", .bool(w.passed)), ("reference_file", .string(w.referenceFile)),
            ("bytes_checked", .number(w.bytesChecked)), ("seconds", num(w.seconds)),
            ("tensors", .array(tensors)),
        ])
    }

    // MARK: HTML

    public static func html(_ report: VerificationReport) -> String {
        guard let w = report.weights else { return "" }
        func esc(_ s: String) -> String { HTMLReport.escape(s) }
        var html = "<h3>Weights: \(report.model) · \(esc(report.format)) \(esc(report.variant))</h3>\n"
        html += "<p class=\"verdict \(w.passed ? "pass" : "fail")\">\(w.passed ? "every tensor within bounds" : "\(w.failing.count) tensor(s) out of bounds or unreadable") — "
            + "\(formatBytes(w.bytesChecked)) in \(String(format: "%.2f", w.seconds)) s</p>\n"
        html += "<table><tr><th class=\"l\">tensor</th><th class=\"l\">reference</th><th class=\"l\">type</th><th>elements</th><th>blocks</th>"
            + "<th>out (elements / blocks)</th><th>worst / bound</th><th class=\"l\">bytes vs reference quantizer</th><th class=\"l\">status</th></tr>\n"
        for t in w.tensors {
            html += "<tr class=\"\(t.passed ? "" : "fail")\"><td class=\"l\">\(esc(t.fileName))</td><td class=\"l\">\(esc(t.referenceName ?? "-"))</td><td class=\"l\">\(esc(t.storedType))</td>"
            html += "<td>\(t.elements)</td><td>\(t.blocks)</td><td>\(t.elementsOutOfBounds) / \(t.blocksOutOfBounds)</td>"
            html += "<td>\(t.largestFractionOfBound.map { String(format: "%.3f", $0.fraction) + ($0.rule == "element" ? "" : " (\($0.rule))") } ?? "-")</td>"
            html += "<td class=\"l\">\(t.identicalToReferenceQuantizer.map { $0 ? "identical" : "differ" } ?? "-")</td><td class=\"l\">\(esc(t.status.rawValue))"
            if let d = t.detail { html += ": " + esc(d) }
            html += "</td></tr>\n"
        }
        html += "</table>\n"
        for t in w.tensors where !t.passed || t.finding != nil {
            html += "<div class=\"diag\"><b>\(esc(t.fileName))</b>"
            if let f = t.finding { html += " — finding: \(esc(f))" }
            if t.status == .outOfBounds { html += "<br>rule: \(esc(t.rule))<br>" + t.issues.map { esc(describe($0)) }.joined(separator: "<br>") }
            if let d = t.diagnosis { html += "<br>diagnosis: \(esc(d))" }
            if !t.passed, let v = visibility(of: t, in: report) { html += "<br>\(esc(v))" }
            html += "</div>\n"
        }
        return html
    }
}

extension WeightVerifier {
    /// The start of a group-scale issue's rule (rendering tells it from an element's issue by it).
    static let groupScalePrefix = "scale of the group"

    /// The rule text of a group whose scale exceeds rule 3's bound: the scale, the bound, how the bound is made, and
    /// where the group lies in its row.
    static func groupScaleRule(scale: Float, limit: Float, ratio: Float, nominal: Float, policy: QuantBoundPolicy, first: Int, count: Int, rowLength: Int) -> String {
        let column = first % max(rowLength, 1)
        let nominalText: String
        switch policy.nominal {
        case let .amax(code): nominalText = "amax/\(formatNumber(Double(code)))"
        case let .range(levels, _): nominalText = "range/\(formatNumber(Double(levels)))"
        }
        return "\(groupScalePrefix) at columns \(column)…\(column + count - 1): \(formatNumber(Double(scale))) > bound \(formatNumber(Double(limit))) "
            + "(\(formatNumber(Double(ratio)))× \(nominalText) = \(formatNumber(Double(nominal))), + the sub-scale quantum)"
    }
}
