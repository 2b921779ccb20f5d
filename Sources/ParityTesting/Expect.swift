import ParityVerify

#if canImport(Testing)
import Testing

/// Turning Parity reports into test failures (docs/library.md). Under Swift Testing each failure is one `Issue`
/// at the caller's source location, naming the node or tensor, the metric, the value, the limit and where.
public enum ParityTesting {
    /// Records one issue per failure of `report` unless it passed; returns whether it passed.
    @discardableResult
    public static func expectVerified(_ report: VerificationReport, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        record(failureMessages(report), sourceLocation: sourceLocation)
    }

    /// Several reports (e.g. every variant of one conversion): an issue per failure of each.
    @discardableResult
    public static func expectVerified(_ reports: [VerificationReport], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        guard !reports.isEmpty else {
            Issue.record("no verification report to check (an empty list verifies nothing)", sourceLocation: sourceLocation)
            return false
        }
        return reports.map { expectVerified($0, sourceLocation: sourceLocation) }.allSatisfy { $0 }
    }

    static func record(_ messages: [String], sourceLocation: SourceLocation) -> Bool {
        for message in messages { Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation) }
        return messages.isEmpty
    }
}
#else
public enum ParityTesting {}
#endif

extension ParityTesting {
    /// The messages a failed report turns into (empty when it passed): one per `ParityFailure`.
    public static func failureMessages(_ report: VerificationReport) -> [String] {
        report.verdict == .pass ? [] : ParityFailure.of(report).map(\.description)
    }
}
