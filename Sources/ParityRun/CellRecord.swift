import Foundation
import ParityCore
import ParityVerify

/// A cell's result in a form that is cached, written to a matrix JSON and merged across shards: the verdict, the
/// summary line, the readable failures (node or tensor, metric, value, limit), the gates, the report's JSON and its
/// terminal rendering. A cell run in this process also carries its live `VerificationReport`.
public struct CellRecord: Sendable {
    /// pass / fail / unjudged (a report's verdict), error (bad input) or skipped.
    public enum Status: String, Sendable, CaseIterable { case pass, fail, unjudged, error, skipped }

    public var key: String
    public var model: String
    public var format: String
    public var variant: String
    public var status: Status
    /// The summary line `parity verify` prints for the cell.
    public var summary: String
    /// One line per failure: what failed, the metric, the value, the limit, where.
    public var failures: [String]
    /// The bad-input message (status error) or why the cell was skipped.
    public var message: String?
    /// The report's JSON (schema parity-report's per-report object); nil for an error or a skipped cell.
    public var reportJSON: JSONValue?
    /// The report as `parity verify` prints it (no colour).
    public var text: String?
    /// The quality gates checked on the cell (`name: value vs limit: pass|FAIL`).
    public var gates: [String]
    /// Wall time of convert + verify (0 when decided without running, or served from the cache).
    public var seconds: Double
    /// Served from the cache instead of run.
    public var cached: Bool
    /// The live report (nil when served from the cache or read from a JSON).
    public var report: VerificationReport?

    public init(key: String, model: String, format: String, variant: String, status: Status, summary: String, failures: [String] = [],
                message: String? = nil, reportJSON: JSONValue? = nil, text: String? = nil, gates: [String] = [], seconds: Double = 0,
                cached: Bool = false, report: VerificationReport? = nil) {
        self.key = key
        self.model = model
        self.format = format
        self.variant = variant
        self.status = status
        self.summary = summary
        self.failures = failures
        self.message = message
        self.reportJSON = reportJSON
        self.text = text
        self.gates = gates
        self.seconds = seconds
        self.cached = cached
        self.report = report
    }

    /// The record of an outcome.
    public init(key: String, outcome: CellOutcome, seconds: Double) {
        switch outcome {
        case let .report(r):
            let json = ReportRendering.json([r])["reports"]?.arrayValue?.first
            self.init(key: key, model: r.model, format: r.format, variant: r.variant, status: Status(rawValue: r.verdict.rawValue) ?? .fail,
                      summary: MatrixRendering.summaryLine(r), failures: FailureLines.of(r), reportJSON: json,
                      text: ReportRendering.terminal(r, color: false), seconds: seconds, report: r)
        case let .badInput(e):
            self.init(key: key, model: e.model, format: e.format, variant: e.variant, status: .error, summary: MatrixRendering.summaryLine(e),
                      failures: ["\(e.model) \(e.format) \(e.variant): bad input: \(e.message)"], message: e.message, seconds: seconds)
        case let .skipped(line):
            self.init(key: key, model: key.split(separator: " ").first.map(String.init) ?? key, format: "-", variant: "-", status: .skipped,
                      summary: "  " + line, message: line, seconds: seconds)
        }
    }

    /// The record with every occurrence of `path` in its texts replaced (a temporary directory's name differs per run
    /// and per machine; a matrix writes `<temporary>` so cached, sharded and merged results compare equal).
    public func replacingPath(_ path: String, with replacement: String) -> CellRecord {
        func replace(_ text: String) -> String { text.replacingOccurrences(of: path, with: replacement) }
        func replace(_ json: JSONValue) -> JSONValue {
            switch json {
            case let .string(s): return .string(replace(s))
            case let .array(items): return .array(items.map(replace))
            case let .object(members): return .object(members.map { ($0.key, replace($0.value)) })
            default: return json
            }
        }
        var copy = self
        copy.summary = replace(summary)
        copy.failures = failures.map(replace)
        copy.message = message.map(replace)
        copy.text = text.map(replace)
        copy.reportJSON = reportJSON.map(replace)
        copy.gates = gates.map(replace)
        return copy
    }

    /// The record as a matrix JSON's cell object.
    public var json: JSONValue {
        var members: [(String, JSONValue)] = [
            ("key", .string(key)), ("model", .string(model)), ("format", .string(format)), ("variant", .string(variant)),
            ("status", .string(status.rawValue)), ("summary", .string(summary)), ("failures", .array(failures.map(JSONValue.string))),
            ("gates", .array(gates.map(JSONValue.string))),
        ]
        members.append(("message", message.map(JSONValue.string) ?? .null))
        members.append(("report", reportJSON ?? .null))
        members.append(("text", text.map(JSONValue.string) ?? .null))
        members.append(("seconds", .number(seconds)))
        members.append(("cached", .bool(cached)))
        return .object(members)
    }

    /// Reads a cell object written by `json` (a cache entry, a shard's JSON); `source` names the file in errors.
    public init(json: JSONValue, source: String) throws(ParityError) {
        func string(_ name: String) throws(ParityError) -> String {
            guard let s = json[name]?.stringValue else { throw .malformed(file: source, at: "cells", reason: "a cell has no string \"\(name)\"") }
            return s
        }
        func strings(_ name: String) throws(ParityError) -> [String] {
            guard let items = json[name]?.arrayValue else { throw .malformed(file: source, at: "cells", reason: "a cell has no array \"\(name)\"") }
            var out: [String] = []
            for item in items {
                guard let s = item.stringValue else { throw .malformed(file: source, at: "cells", reason: "a cell's \"\(name)\" holds a non-string") }
                out.append(s)
            }
            return out
        }
        let statusText = try string("status")
        guard let status = Status(rawValue: statusText) else { throw .malformed(file: source, at: "cells", reason: "a cell's status \"\(statusText)\" is not one of \(Status.allCases.map(\.rawValue))") }
        let report = json["report"].flatMap { $0 == .null ? nil : $0 }
        self.init(key: try string("key"), model: try string("model"), format: try string("format"), variant: try string("variant"), status: status,
                  summary: try string("summary"), failures: try strings("failures"), message: json["message"]?.stringValue,
                  reportJSON: report, text: json["text"]?.stringValue, gates: try strings("gates"),
                  seconds: json["seconds"]?.doubleValue ?? 0, cached: json["cached"]?.boolValue ?? false)
    }
}

/// Readable failures of a report: one line per failed node or tensor, naming the metric, the value, the limit and where.
public enum FailureLines {
    public static func of(_ r: VerificationReport) -> [String] {
        let cell = "\(r.model) \(r.format) \(r.variant) (\(r.file))"
        var lines: [String] = []
        for layer in r.layers {
            switch layer.status {
            case .pass, .unjudged, .notRun: continue
            case let .fail(violations):
                for v in violations {
                    lines.append("\(cell): node \(layer.name) (\(layer.op)): \(v.metric) \(formatNumber(v.value)) > limit \(formatNumber(v.limit))")
                }
            default:
                lines.append("\(cell): node \(layer.name) (\(layer.op)): \(layer.status.label): \(layer.status.detail)")
            }
        }
        if let weights = r.weights, !weights.passed {
            lines.append("\(cell): weights:" + WeightRendering.summary(r))
        }
        lines += r.loadRefusals.map { "\(cell): the runtime refuses the file: \($0)" }
        lines += r.hyperparameterMismatches.map { "\(cell): hyperparameter: \($0)" }
        if let logits = r.logits { lines += logits.violations.map { "\(cell): logits: \($0)" } }
        if r.layers.last?.tolerance != nil, !r.argmaxPasses, let a = r.argmax {
            lines.append("\(cell): argmax: \(a.decisiveAgreeing) of \(a.decisive) decisive rows agree with the reference (limit: all)")
        }
        if r.layers.isEmpty { lines.append("\(cell): no layer was compared") }
        return lines
    }
}
