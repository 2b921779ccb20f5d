import Foundation

/// One self-contained HTML page (no scripts, no external assets): a per-layer error chart on a log scale, one
/// series per metric and report, then each report's table with the first divergence and diagnoses highlighted.
public enum HTMLReport {
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]

    public static func render(_ reports: [VerificationReport], title: String) -> String {
        var body = "<h1>\(escape(title))</h1>\n"
        let verdict = Verdict.combined(reports.map(\.verdict))
        body += "<p class=\"verdict \(verdict.rawValue)\">\(verdict.rawValue.uppercased()) — \(reports.count) report(s)</p>\n"
        body += chart(reports)
        for r in reports { body += table(r) + WeightRendering.html(r) }
        return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
        <style>
        body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
        h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
        table { border-collapse: collapse; margin: .5em 0; } th, td { padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
        td.l:last-child { white-space: normal; max-width: 28em; }
        th { background: #f4f4f4; } td.l, th.l { text-align: left; }
        tr.fail td { background: #fff4e5; } tr.first td { background: #ffe0e0; font-weight: bold; }
        .verdict { font-weight: bold; font-size: 1.2em; } .pass { color: #1a7f37; } .fail { color: #c62828; } .unjudged { color: #9a6700; }
        .diag { background: #e8f4fd; border-left: 4px solid #1f77b4; padding: .5em 1em; margin: .5em 0; }
        .note { color: #555; } svg text { font: 11px system-ui, sans-serif; }
        </style></head><body>
        \(body)
        </body></html>

        """
    }

    /// Log-scale line chart over the layers of the first report (all reports verify the same model's layers).
    static func chart(_ reports: [VerificationReport]) -> String {
        guard let layers = reports.first?.layers.map(\.name), !layers.isEmpty else { return "" }
        struct Series { let name: String; let color: String; let dash: String; let values: [Double?] }
        var series: [Series] = []
        for (i, r) in reports.enumerated() {
            let color = palette[i % palette.count]
            let label = "\(r.format) \(r.variant)"
            series.append(Series(name: "\(label): rel L2", color: color, dash: "", values: r.layers.map { $0.metrics?.relL2 }))
            series.append(Series(name: "\(label): max abs / scale", color: color, dash: "2,3",
                                 values: r.layers.map { m in m.metrics.map { $0.goldenMaxAbs > 0 ? $0.maxAbs / $0.goldenMaxAbs : $0.maxAbs } }))
            if r.hasIsolatedRun {
                series.append(Series(name: "\(label): own rel L2 (golden input)", color: color, dash: "8,4", values: r.layers.map { $0.isolated?.relL2 }))
            }
            series.append(Series(name: "\(label): tolerance (rel L2)", color: "#999", dash: "1,2", values: r.layers.map { $0.tolerance?.maxRelL2 }))
        }
        let floor = 1e-12
        // Exact zeros (a ReLU fed its golden input) have no place on a log scale: they are drawn as hollow markers
        // in a separate "= 0" row under the axis, never joined to the points around them.
        let all = series.flatMap { $0.values.compactMap { $0 } }.filter { $0.isFinite && $0 > 0 }.map { max($0, floor) }
        let hasZeros = series.contains { $0.values.contains { $0 == 0 } }
        let lo = floor10(all.min() ?? 1e-8), hi = ceil10(all.max() ?? 1)
        let (w, h, left, right, top, bottom) = (960.0, 360.0, 70.0, 110.0, 20.0, 80.0)
        let plotW = w - left - right, plotH = h - top - bottom
        let zeroBand = hasZeros ? 26.0 : 0, logH = plotH - zeroBand, zeroY = top + plotH - zeroBand / 2
        func x(_ i: Int) -> Double { left + (layers.count == 1 ? plotW / 2 : plotW * Double(i) / Double(layers.count - 1)) }
        func y(_ v: Double) -> Double { top + logH * (1 - (log10(max(v, floor)) - lo) / max(hi - lo, 1)) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\" aria-label=\"per-layer error\">\n"
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotW)\" height=\"\(plotH)\" fill=\"#fcfcfc\" stroke=\"#ccc\"/>\n"
        for e in stride(from: Int(lo), through: Int(hi), by: 1) {
            let yy = y(pow(10, Double(e)))
            svg += "<line x1=\"\(left)\" x2=\"\(left + plotW)\" y1=\"\(yy)\" y2=\"\(yy)\" stroke=\"#eee\"/><text x=\"\(left - 6)\" y=\"\(yy + 4)\" text-anchor=\"end\">1e\(e)</text>\n"
        }
        if hasZeros {
            svg += "<line x1=\"\(left)\" x2=\"\(left + plotW)\" y1=\"\(top + logH)\" y2=\"\(top + logH)\" stroke=\"#999\" stroke-dasharray=\"6,3\"/>"
            svg += "<text x=\"\(left - 16)\" y=\"\(zeroY + 4)\" text-anchor=\"end\">= 0</text>\n"
        }
        for (i, name) in layers.enumerated() {
            svg += "<text transform=\"translate(\(x(i)),\(top + plotH + 12)) rotate(30)\">\(escape(name))</text>\n"
        }
        if let first = reports.first?.firstDivergence, let i = layers.firstIndex(of: first.name) {
            // Labels for layers in the right half grow leftwards, so they stay inside the picture.
            let leftwards = x(i) > left + plotW / 2
            svg += "<line x1=\"\(x(i))\" x2=\"\(x(i))\" y1=\"\(top)\" y2=\"\(top + plotH)\" stroke=\"#c62828\" stroke-width=\"2\" stroke-dasharray=\"4,3\"/>"
            svg += "<text x=\"\(leftwards ? x(i) - 4 : x(i) + 4)\" y=\"\(top + 12)\" text-anchor=\"\(leftwards ? "end" : "start")\" fill=\"#c62828\">first divergence: \(escape(first.name))</text>\n"
        }
        for (index, s) in series.enumerated() {
            // A line joins only neighbouring layers that were both measured and non-zero: a layer with no value
            // (not run, no tolerance) or an exact zero breaks it.
            var runs: [[(Double, Double)]] = [[]]
            var zeros: [Double] = []
            for (i, v) in s.values.enumerated() {
                if let v, v.isFinite, v > 0 {
                    runs[runs.count - 1].append((x(i), y(v)))
                } else {
                    if v == 0 { zeros.append(x(i)) }
                    if !runs[runs.count - 1].isEmpty { runs.append([]) }
                }
            }
            for run in runs where run.count > 1 {
                let points = run.map { "\($0.0),\($0.1)" }.joined(separator: " ")
                svg += "<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"2\" stroke-dasharray=\"\(s.dash)\" points=\"\(points)\"><title>\(escape(s.name))</title></polyline>\n"
            }
            for p in runs.joined() { svg += "<circle cx=\"\(p.0)\" cy=\"\(p.1)\" r=\"2.5\" fill=\"\(s.color)\"><title>\(escape(s.name))</title></circle>" }
            // Several series can be exactly 0 at one layer: their markers sit side by side, not on top of each other.
            let nudge = (Double(index) - Double(series.count - 1) / 2) * 7
            for zx in zeros {
                svg += "<circle class=\"zero\" cx=\"\(zx + nudge)\" cy=\"\(zeroY)\" r=\"4\" fill=\"#fff\" stroke=\"\(s.color)\" stroke-width=\"1.5\"><title>\(escape(s.name)): exactly 0</title></circle>"
            }
            svg += "\n"
        }
        svg += "</svg>\n"
        let legend = series.map { "<span style=\"margin-right:1.2em\"><svg width=\"28\" height=\"8\"><line x1=\"0\" x2=\"28\" y1=\"4\" y2=\"4\" stroke=\"\($0.color)\" stroke-width=\"2\" stroke-dasharray=\"\($0.dash)\"/></svg> \(escape($0.name))</span>" }
        return "<h2>Error per layer (log scale)</h2>\n" + svg + "<p>" + legend.joined() + "</p>\n"
            + "<p class=\"note\">Lines join only neighbouring layers that both have a non-zero value. Exact agreement (0) cannot be "
            + "placed on a log scale: it is drawn as a hollow marker in the \u{201C}= 0\u{201D} row under the axis.</p>\n"
    }

    static func table(_ r: VerificationReport) -> String {
        let first = r.firstDivergence?.name
        var html = "<h2>\(escape(r.model)) · \(escape(r.format)) \(escape(r.variant))</h2>\n"
        html += "<p class=\"note\">\(escape(r.file)) — \(escape(r.engine))</p>\n"
        html += "<p class=\"verdict \(r.verdict.rawValue)\">\(r.verdict.rawValue.uppercased())"
        if let first { html += " — first divergence: \(escape(first))" }
        html += "</p>\n<table><tr><th>#</th><th class=\"l\">layer</th><th class=\"l\">op</th><th>max abs</th><th>mean abs</th><th>rel L2</th><th>cosine</th><th>SQNR dB</th><th>growth</th>"
        if r.hasIsolatedRun { html += "<th>own rel L2</th><th class=\"l\">own</th>" }
        html += "<th>tol rel L2</th><th class=\"l\">status</th></tr>\n"
        for l in r.layers {
            let m = l.metrics
            let cls = l.name == first ? "first" : (l.status.isPass && (l.isolatedStatus?.isPass ?? true)) ? "" : "fail"
            html += "<tr class=\"\(cls)\"><td>\(l.order)</td><td class=\"l\">\(escape(l.name))</td><td class=\"l\">\(escape(l.op))</td>"
            html += [m.map { formatNumber($0.maxAbs) }, m.map { formatNumber($0.meanAbs) }, m.map { formatNumber($0.relL2) },
                     m?.cosine.map { String(format: "%.7f", $0) }, m.map { $0.sqnrDB.isInfinite ? "inf" : String(format: "%.1f", $0.sqnrDB) },
                     l.growth.map { String(format: "%.2fx", $0) }].map { "<td>\($0 ?? "-")</td>" }.joined()
            if r.hasIsolatedRun {
                html += "<td>\(l.isolated.map { formatNumber($0.relL2) } ?? "-")</td><td class=\"l\">\(escape(l.isolatedStatus?.label ?? "-"))</td>"
            }
            html += "<td>\(l.tolerance.map { formatNumber($0.maxRelL2) } ?? "-")</td><td class=\"l\">\(escape(l.status.label))"
            if !l.status.isPass && !l.status.detail.isEmpty { html += ": " + escape(l.status.detail) }
            html += "</td></tr>\n"
        }
        html += "</table>\n"
        for l in r.layers { if let d = l.diagnosis { html += "<div class=\"diag\"><b>diagnosis at \(escape(l.name)) [\(escape(d.id))]</b>: \(escape(d.message))</div>\n" } }
        for note in r.notes { html += "<p class=\"note\">note: \(escape(note))</p>\n" }
        if let p = r.policy {
            for reason in p.reasons(in: r.layers.map(\.name)) { html += "<p class=\"note\">tolerance: \(escape(reason))</p>\n" }
        }
        return html
    }

    static func floor10(_ v: Double) -> Double { Foundation.floor(log10(v)) }
    static func ceil10(_ v: Double) -> Double { Foundation.ceil(log10(v)) }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
