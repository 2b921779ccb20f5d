import Foundation
import ParityCore

/// Renders reports as an aligned terminal table (coloured on a TTY) and as versioned JSON.
public enum ReportRendering {
    public static func terminal(_ report: VerificationReport, color: Bool, showIsolated: Bool = true) -> String {
        func paint(_ text: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
        var lines: [String] = []
        lines.append("\(report.model) · \(report.format) \(report.variant) · \(report.file)")
        lines.append("engine: \(report.engine); \(report.inputCount) golden inputs")
        let first = report.firstDivergence?.name
        let isolated = report.hasIsolatedRun && showIsolated
        var header = ["#", "layer", "op", "shape", "max abs", "mean abs", "rel L2", "cosine", "SQNR dB", "growth", "tol rel L2", "noise floor"]
        if isolated { header += ["own rel L2", "own"] }
        header.append("status")
        var rows: [[String]] = []
        for layer in report.layers {
            let m = layer.metrics
            var ownColumns: [String] = []
            if isolated {
                ownColumns = [layer.isolated.map { formatNumber($0.relL2) } ?? "-", layer.isolatedStatus?.label ?? "-"]
            }
            rows.append([
                "\(layer.order)", layer.name, layer.op, layer.shape.map(String.init).joined(separator: "×"),
                m.map { formatNumber($0.maxAbs) } ?? "-", m.map { formatNumber($0.meanAbs) } ?? "-",
                m.map { formatNumber($0.relL2) } ?? "-", m?.cosine.map { String(format: "%.7f", $0) } ?? "-",
                m.map { $0.sqnrDB.isInfinite ? "inf" : String(format: "%.1f", $0.sqnrDB) } ?? "-",
                layer.growth.map { String(format: "%.2fx", $0) } ?? "-",
                layer.tolerance.map { formatNumber($0.maxRelL2) } ?? "-",
                layer.noiseFloorRelL2.map(formatNumber) ?? "-",
            ] + ownColumns + [layer.status.label + (layer.name == first ? "  ◀ first divergence" : "")])
        }
        let widths = header.indices.map { i in max(header[i].count, rows.map { $0[i].count }.max() ?? 0) }
        func line(_ cells: [String]) -> String {
            cells.indices.map { i in
                let pad = String(repeating: " ", count: widths[i] - cells[i].count)
                return i <= 3 || i == cells.count - 1 ? cells[i] + pad : pad + cells[i]
            }.joined(separator: "  ")
        }
        lines.append(line(header))
        for (row, layer) in zip(rows, report.layers) {
            let text = line(row)
            lines.append(layer.status.isPass ? text : layer.name == first ? paint(text, "1;31") : paint(text, "33"))
        }
        for layer in report.layers where !layer.status.isPass && !layer.status.detail.isEmpty && layer.status != .notRun {
            lines.append("  \(layer.name): \(layer.status.label): \(layer.status.detail)")
        }
        if isolated {
            lines.append("own = the layer fed its golden input (the error it introduces); rel L2 = the error it shows after inheriting upstream error")
            for layer in report.layers where layer.status != .pass && layer.isolatedStatus == .pass {
                lines.append("  \(layer.name): inherits error from upstream; on its golden input it passes (rel L2 \(layer.isolated.map { formatNumber($0.relL2) } ?? "-"))")
            }
        }
        for layer in report.layers {
            if let d = layer.diagnosis {
                lines.append(paint("diagnosis at \(layer.name) [\(d.id)]: \(d.message)", "1;36"))
            } else if let own = layer.isolatedStatus, !own.isPass, own != .unjudged, let tried = layer.diagnosesTried {
                lines.append("diagnosis at \(layer.name): none of the known conversion mistakes (\(tried)) explains it")
            }
        }
        if let a = report.argmax {
            let note = a.disagreeingRows.isEmpty ? "" : " (differ at inputs \(a.disagreeingRows.prefix(10).map(String.init).joined(separator: ", ")))"
            lines.append("argmax agreement: \(a.agreeing)/\(a.total); decisive (golden margin > 2× abs tolerance): \(a.decisiveAgreeing)/\(a.decisive)\(note)")
        }
        if let l = report.logits {
            let limits = l.limits.map { " (limits: KL mean ≤ \(formatNumber($0.klMean)), max ≤ \(formatNumber($0.klMax)), top-1 ≥ \($0.top1Minimum)/\(l.positions))" } ?? " (no limits: shown, not judged)"
            lines.append("logits vs float64 reference: KL mean \(formatNumber(l.klMean)), KL max \(formatNumber(l.klMax)), top-1 \(l.top1Agreeing)/\(l.positions)" + limits
                + (l.violations.isEmpty ? "" : " FAIL: " + l.violations.joined(separator: "; ")))
            if let reason = l.limits?.reason { lines.append("logit limits: " + reason) }
        }
        // A note that carries its own kind ("warning:", "FAIL:") is printed as it is.
        for note in report.notes { lines.append(note.hasPrefix("warning: ") || note.hasPrefix("FAIL: ") ? note : "note: " + note) }
        lines += WeightRendering.terminal(report).map { line in line.contains("out-of-bounds") || line.contains("missing") ? paint(line, "33") : line }
        lines.append("coverage: \(report.covered)/\(report.layers.count) layers compared")
        if let policy = report.policy {
            for reason in policy.reasons(in: report.layers.map(\.name)) {
                let users = report.layers.filter { $0.tolerance?.reason == reason }.map(\.name)
                // A transformer has dozens of nodes per limit: name the count and the span instead of every node.
                let who = users.count > 8 ? "\(users.count) nodes (\(users[0]) … \(users[users.count - 1]))" : users.joined(separator: ", ")
                lines.append("tolerance for \(who): \(reason)")
            }
        } else if report.loadRefusals.isEmpty {
            lines.append("no tolerance policy for \(report.format) \(report.variant): metrics only, no first divergence; verdict UNJUDGED (neither pass nor fail)")
        } else {
            // Nothing ran: the runtime refuses the file (the FAIL note names its rule), so there is nothing to judge with a tolerance.
            lines.append("nothing was run: the runtime refuses the file")
        }
        if let first = report.firstDivergence {
            lines.append(paint("first divergence: \(first.name) (\(first.op)): \(first.status.label): \(first.status.detail)", "1;31"))
        }
        switch report.verdict {
        case .pass: lines.append(paint("PASS", "1;32"))
        case .fail: lines.append(paint("FAIL", "1;31"))
        case .unjudged: lines.append(paint("UNJUDGED", "1;33") + ": no tolerance policy for some layers; nothing failed, nothing is called a pass")
        }
        return lines.joined(separator: "\n")
    }

    /// JSON schema "parity-report" version 2 (version 1 + per-report `weights`): documented in README.md (section "Reports").
    public static func json(_ reports: [VerificationReport]) -> JSONValue {
        .object([
            ("schema", .string("parity-report")),
            ("schema_version", .number(2)),
            ("passed", .bool(reports.allSatisfy(\.passed))),
            ("verdict", .string(Verdict.combined(reports.map(\.verdict)).rawValue)),
            ("reports", .array(reports.map(json))),
        ])
    }

    static func json(_ r: VerificationReport) -> JSONValue {
        func num(_ x: Double?) -> JSONValue { x.map { JSONValue.number($0) } ?? .null }
        let layers: [JSONValue] = r.layers.map { l in
            var members: [(key: String, value: JSONValue)] = [
                ("name", .string(l.name)), ("op", .string(l.op)), ("order", .number(l.order)),
                ("input", l.input.map { .string($0) } ?? .null),
                ("inputs", .array(l.inputs.map { JSONValue.string($0) })),
                ("shape", .array(l.shape.map { JSONValue.number($0) })),
                ("status", .string(l.status.label.lowercased())), ("detail", .string(l.status.detail)),
                ("growth", num(l.growth)), ("noise_floor_rel_l2", num(l.noiseFloorRelL2)),
            ]
            if let m = l.metrics {
                members.append(("metrics", .object([
                    ("max_abs", num(m.maxAbs)), ("max_abs_index", .number(m.maxAbsIndex)), ("mean_abs", num(m.meanAbs)),
                    ("rel_l2", num(m.relL2)), ("cosine", num(m.cosine)), ("sqnr_db", num(m.sqnrDB.isInfinite ? nil : m.sqnrDB)),
                    ("golden_max_abs", num(m.goldenMaxAbs)), ("nan_count", .number(m.nanCount)), ("inf_count", .number(m.infCount)),
                ])))
            } else {
                members.append(("metrics", .null))
            }
            members.append(("isolated", l.isolatedStatus.map { status in .object([
                ("status", .string(status.label.lowercased())), ("detail", .string(status.detail)),
                ("rel_l2", num(l.isolated?.relL2)), ("max_abs", num(l.isolated?.maxAbs)), ("cosine", num(l.isolated?.cosine)),
            ]) } ?? .null))
            members.append(("diagnosis", l.diagnosis.map { d in .object([
                ("id", .string(d.id)), ("parameter", .string(d.parameter)), ("message", .string(d.message)),
                ("max_abs_before", num(d.before?.maxAbs)), ("max_abs_after", num(d.after.maxAbs)),
                ("rel_l2_before", num(d.before?.relL2)), ("rel_l2_after", num(d.after.relL2)),
            ]) } ?? .null))
            members.append(("tolerance", l.tolerance.map { .object([("max_rel_l2", num($0.maxRelL2)), ("max_abs_over_scale", num($0.maxAbsOverScale)), ("reason", .string($0.reason))]) } ?? .null))
            return .object(members)
        }
        return .object([
            ("model", .string(r.model)), ("format", .string(r.format)), ("variant", .string(r.variant)),
            ("file", .string(r.file)), ("engine", .string(r.engine)), ("inputs", .number(r.inputCount)),
            ("passed", .bool(r.passed)),
            ("verdict", .string(r.verdict.rawValue)),
            ("first_divergence", r.firstDivergence.map { .string($0.name) } ?? .null),
            ("coverage", .object([("compared", .number(r.covered)), ("expected", .number(r.layers.count))])),
            ("tolerance_reasons", r.policy.map { p in .array(p.reasons(in: r.layers.map(\.name)).map { JSONValue.string($0) }) } ?? .null),
            ("argmax", r.argmax.map { a in .object([
                ("agreeing", .number(a.agreeing)), ("total", .number(a.total)),
                ("decisive", .number(a.decisive)), ("decisive_agreeing", .number(a.decisiveAgreeing)),
                ("disagreeing_rows", .array(a.disagreeingRows.map { JSONValue.number($0) })),
            ]) } ?? .null),
            ("notes", .array(r.notes.map { JSONValue.string($0) })),
            ("logits", logitsJSON(r.logits)),
            ("weights", WeightRendering.json(r)),
            ("layers", .array(layers)),
        ])
    }

    /// The logit metric (LogitAgreement) of a causal LM, or null.
    static func logitsJSON(_ logits: LogitAgreement?) -> JSONValue {
        guard let l = logits else { return .null }
        var limits: JSONValue = .null
        if let m = l.limits {
            limits = .object([("kl_mean", .number(m.klMean)), ("kl_max", .number(m.klMax)), ("top1_minimum", .number(m.top1Minimum)), ("reason", .string(m.reason))])
        }
        return .object([("kl_mean", .number(l.klMean)), ("kl_max", .number(l.klMax)), ("top1_agreeing", .number(l.top1Agreeing)),
                         ("positions", .number(l.positions)), ("limits", limits), ("passed", .bool(l.violations.isEmpty))])
    }
}
