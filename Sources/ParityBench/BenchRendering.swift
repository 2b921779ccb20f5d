import Foundation
import ParityCore

/// The bench results as llama-bench prints them (a markdown table, columns aligned) and as JSON (schema
/// `parity-bench`, version 1: tools/bench/parity-bench.schema.json, documented in docs/bench.md).
public enum BenchRendering {
    public static let schema = "parity-bench"
    public static let schemaVersion = 1

    /// Pads every column to its widest cell, as llama-bench's markdown printer does.
    public static func table(_ header: [String], _ rows: [[String]], rightAligned: Set<Int> = []) -> String {
        let widths = header.indices.map { c in ([header] + rows).map { $0[c].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            "| " + cells.enumerated().map { c, s in
                let pad = String(repeating: " ", count: widths[c] - s.count)
                return rightAligned.contains(c) ? pad + s : s + pad
            }.joined(separator: " | ") + " |"
        }
        let rule = "|" + widths.indices.map { c in rightAligned.contains(c) ? String(repeating: "-", count: widths[c] + 1) + ":" : String(repeating: "-", count: widths[c] + 2) }.joined(separator: "|") + "|"
        return ([line(header), rule] + rows.map(line)).joined(separator: "\n")
    }

    static func f(_ x: Double?, _ digits: Int = 2) -> String { x.map { $0.isFinite ? String(format: "%.\(digits)f", $0) : "-" } ?? "-" }
    static func mib(_ bytes: Int?) -> String { bytes.map { String(format: "%.1f", Double($0) / 1_048_576) } ?? "-" }
    static func size(_ bytes: Int) -> String { bytes >= 1_048_576 ? String(format: "%.2f MiB", Double(bytes) / 1_048_576) : String(format: "%.1f KiB", Double(bytes) / 1024) }

    /// The evidence table: one row per verified file.
    public static func evidenceTable(_ rows: [BenchRow]) -> String {
        table(["model", "format", "variant", "size", "sha256", "verdict", "worst metric", "verify weights s", "verify activations s", "accuracy", "Δ ref", "end metric", "gates"],
              rows.map { r in
                  let gates = r.gates.map { "\($0.name) \($0.passed.map { $0 ? "pass" : "FAIL" } ?? "n/a")" }.joined(separator: ", ")
                  let end = r.top1Agreement.map { String(format: "top-1 %.3f, KL %.2e", $0, r.klMean ?? .nan) }
                      ?? r.retrievalAgreement.map { String(format: "min cos %.6f, NN %.3f", r.accuracy ?? .nan, $0) } ?? "-"
                  return [r.model, r.format, r.variant, size(r.fileBytes), String(r.sha256.prefix(12)), r.verdict, r.worstMetric,
                          f(r.weightCheckSeconds, 3), f(r.activationCheckSeconds, 3), f(r.accuracy, 4),
                          r.accuracyDelta.map { String(format: "%+.4f", $0) } ?? "-", end, gates.isEmpty ? "-" : gates]
              }, rightAligned: [3, 7, 8, 9, 10])
    }

    /// Verification time per model (the weight check, timed alone on the loaded file, and the rest of the verification:
    /// reading the goldens, running every golden input and the end metric), then all cells together — the number the
    /// product promises to keep small (docs/bench.md: every bundled model in every format well under 10 s).
    public static func verificationTimeTable(_ rows: [BenchRow]) -> String {
        var models: [String] = []
        var sums: [String: (cells: Int, weights: Double, activations: Double, total: Double)] = [:]
        for r in rows {
            if sums[r.model] == nil { models.append(r.model) }
            let s = sums[r.model, default: (0, 0, 0, 0)]
            sums[r.model] = (s.cells + 1, s.weights + r.weightCheckSeconds, s.activations + r.activationCheckSeconds, s.total + r.verifySeconds)
        }
        let lines = models.map { m -> [String] in
            let s = sums[m]!
            return [m, "\(s.cells)", f(s.weights, 2), f(s.activations, 2), f(s.total, 2)]
        }
        let all = sums.values.reduce((cells: 0, weights: 0.0, activations: 0.0, total: 0.0)) {
            ($0.cells + $1.cells, $0.weights + $1.weights, $0.activations + $1.activations, $0.total + $1.total)
        }
        return table(["verification", "cells", "weight check s", "activation check s", "total s"],
                     lines + [["all", "\(all.cells)", f(all.weights, 2), f(all.activations, 2), f(all.total, 2)]],
                     rightAligned: [1, 2, 3, 4])
    }

    /// The timing table: one row per (file, runtime, test), Parity's engine first; `vs Parity` is Parity's rate
    /// over the runtime's on the same test (> 1: Parity is faster). Absent runtimes are rows saying why.
    public static func timingTable(_ rows: [BenchRow]) -> String {
        var lines: [[String]] = []
        var notes: [String] = []
        /// A long reason would widen the whole column: it becomes a numbered note under the table.
        func note(_ text: String?) -> String {
            guard let text else { return "-" }
            if let i = notes.firstIndex(of: text) { return "note \(i + 1)" }
            notes.append(text)
            return "note \(notes.count)"
        }
        for r in rows {
            let parity = r.measurements.first
            for m in r.measurements {
                let head = [r.model, "\(r.format) \(r.variant)", m.runtime, f(m.accuracy, 4)]
                guard m.status == .measured else {
                    lines.append(head + ["-", "-", m.status.rawValue.uppercased(), note(m.reason), "-", "-"])
                    continue
                }
                if let l = m.latency {
                    lines.append(head + [f(m.loadSeconds.map { $0 * 1000 }), mib(m.peakRSSBytes), "latency b1 µs",
                                         String(format: "p50 %.1f p95 %.1f p99 %.1f max %.1f", l.p50Seconds * 1e6, l.p95Seconds * 1e6, l.p99Seconds * 1e6, l.maxSeconds * 1e6),
                                         "-", ratio(parity?.latency.map { 1 / $0.p50Seconds }, 1 / l.p50Seconds, same: m.runtime == parity?.runtime)])
                }
                for t in m.throughput {
                    let mine = parity?.throughput.first { $0.test == t.test }?.rate.mean
                    lines.append(head + [f(m.loadSeconds.map { $0 * 1000 }), mib(m.peakRSSBytes), t.test,
                                         String(format: "%.1f ± %.1f", t.rate.mean, t.rate.stddev), t.unit,
                                         ratio(mine, t.rate.mean, same: m.runtime == parity?.runtime)])
                }
                if m.latency == nil && m.throughput.isEmpty {
                    lines.append(head + [f(m.loadSeconds.map { $0 * 1000 }), mib(m.peakRSSBytes), "-", note(m.reason), "-", "-"])
                }
            }
        }
        return table(["model", "file", "runtime", "accuracy", "load ms", "peak RSS MiB", "test", "result", "unit", "Parity ÷ runtime"], lines,
                     rightAligned: [3, 4, 5, 9])
            + notes.enumerated().map { "\n\nnote \($0.offset + 1): \($0.element)" }.joined()
    }

    static func ratio(_ parity: Double?, _ runtime: Double, same: Bool) -> String {
        if same { return "1.00" }
        guard let parity, runtime > 0 else { return "-" }
        return String(format: "%.2f", parity / runtime)
    }

    // MARK: JSON

    static func num(_ x: Double?) -> JSONValue { x.map { JSONValue.number($0) } ?? .null }
    static func int(_ x: Int?) -> JSONValue { x.map { JSONValue.number($0) } ?? .null }
    static func str(_ x: String?) -> JSONValue { x.map { JSONValue.string($0) } ?? .null }

    public static func json(_ rows: [BenchRow], refusals: [String], options: BenchOptions, machine: [(String, String)]) -> JSONValue {
        .object([
            ("schema", .string(schema)), ("schema_version", .number(schemaVersion)),
            ("verdict", .string(refusals.isEmpty ? "measured" : "refused")),
            ("refusals", .array(refusals.map { .string($0) })),
            ("options", .object([
                ("repetitions", .number(options.repetitions)), ("warmup", .number(options.warmup)), ("latency_runs", .number(options.latencyRuns)),
                ("batches", .array(options.batches.map { .number($0) })), ("images_per_repetition", .number(options.imagesPerRepetition)),
                ("max_accuracy_drop", .number(options.maxAccuracyDrop)), ("size_target_bytes", int(options.sizeTargetBytes)),
                ("size_tolerance", .number(options.sizeTolerance)),
            ])),
            ("machine", .object(machine.map { ($0.0, .string($0.1)) })),
            ("rows", .array(rows.map(json))),
        ])
    }

    static func json(_ r: BenchRow) -> JSONValue {
        .object([
            ("model", .string(r.model)), ("format", .string(r.format)), ("variant", .string(r.variant)), ("file", .string(r.file)),
            ("file_bytes", .number(r.fileBytes)), ("sha256", .string(r.sha256)),
            ("verification", .object([
                ("verdict", .string(r.verdict)), ("worst_metric", .string(r.worstMetric)), ("worst_value", num(r.worstValue)),
                ("seconds", .number(r.verifySeconds)), ("weight_check_seconds", .number(r.weightCheckSeconds)),
                ("activation_check_seconds", .number(r.activationCheckSeconds)),
            ])),
            ("accuracy", num(r.accuracy)), ("reference_accuracy", num(r.referenceAccuracy)), ("accuracy_delta", num(r.accuracyDelta)),
            ("accuracy_metric", str(r.accuracyMetric)), ("retrieval_agreement", num(r.retrievalAgreement)),
            ("top1_agreement", num(r.top1Agreement)), ("kl_mean", num(r.klMean)),
            ("gates", .array(r.gates.map { g in
                .object([("name", .string(g.name)), ("passed", g.passed.map { JSONValue.bool($0) } ?? .null), ("value", num(g.value)),
                         ("limit", .string(g.limit)), ("detail", .string(g.detail))])
            })),
            ("measurements", .array(r.measurements.map(json))),
        ])
    }

    static func json(_ m: RuntimeMeasurement) -> JSONValue {
        .object([
            ("runtime", .string(m.runtime)), ("status", .string(m.status.rawValue)), ("reason", str(m.reason)),
            ("version", str(m.version)), ("file", str(m.file)), ("load_seconds", num(m.loadSeconds)), ("peak_rss_bytes", int(m.peakRSSBytes)),
            ("accuracy", num(m.accuracy)),
            ("latency", m.latency.map { l in
                JSONValue.object([("runs", .number(l.count)), ("mean_seconds", .number(l.meanSeconds)), ("stddev_seconds", .number(l.stddevSeconds)),
                                  ("p50_seconds", .number(l.p50Seconds)), ("p95_seconds", .number(l.p95Seconds)),
                                  ("p99_seconds", .number(l.p99Seconds)), ("max_seconds", .number(l.maxSeconds))])
            } ?? .null),
            ("throughput", .array(m.throughput.map { t in
                .object([("test", .string(t.test)), ("batch", .number(t.batch)), ("unit", .string(t.unit)),
                         ("mean", .number(t.rate.mean)), ("stddev", .number(t.rate.stddev)), ("repetitions", .number(t.rate.count))])
            })),
        ])
    }
}
