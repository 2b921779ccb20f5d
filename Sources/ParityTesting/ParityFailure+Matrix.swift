import ParityRun
import ParityVerify

extension ParityFailure {
    /// Every failure of a matrix (`Parity.verify(config:)`), cell by cell in key order: a cell run in this process by
    /// its live report (as `of(_ report:)`) plus its failed quality gates; a cell served from the cache or read from a
    /// shard's JSON by the failure lines it recorded (each already names node or tensor, metric, value and limit); a
    /// bad-input cell by its message. Skipped cells are not failures. A matrix where nothing ran is one failure.
    public static func of(_ matrix: MatrixReport) -> [ParityFailure] {
        var failures: [ParityFailure] = []
        for cell in matrix.cells {
            let label = "\(cell.model) \(cell.format) \(cell.variant)"
            switch cell.status {
            case .pass, .skipped:
                continue
            case .error:
                failures.append(ParityFailure(cell: label, subject: .file("bad input"), metric: "ERROR", value: nil, limit: nil,
                                              location: nil, detail: cell.message ?? cell.failures.joined(separator: "; ")))
            case .fail, .unjudged:
                if let report = cell.report {
                    failures += of(report)
                    // Quality gates are judged on the cell, not in the report: their lines say gate, value and limit.
                    for line in cell.failures where line.contains(": gate ") {
                        failures.append(ParityFailure(cell: label, subject: .file("quality gate"), metric: "gate", value: nil, limit: nil,
                                                      location: nil, detail: line))
                    }
                } else {
                    let lines = cell.failures.isEmpty ? [cell.summary] : cell.failures
                    for line in lines {
                        failures.append(ParityFailure(cell: label, subject: .file("cell (\(cell.cached ? "cached" : "recorded") result)"),
                                                      metric: cell.status.rawValue.uppercased(), value: nil, limit: nil, location: nil, detail: line))
                    }
                }
            }
        }
        if matrix.cells.allSatisfy({ $0.status == .skipped }) && matrix.shard == nil {
            failures.append(ParityFailure(cell: "matrix", subject: .file("the matrix"), metric: "no cell ran", value: nil, limit: nil,
                                          location: nil, detail: nil))
        }
        return failures
    }
}

extension ParityTesting {
    /// The messages a matrix's failures turn into (empty when every cell passed or was skipped).
    public static func failureMessages(_ matrix: MatrixReport) -> [String] {
        ParityFailure.of(matrix).map(\.description)
    }
}

#if canImport(Testing)
import Testing

extension ParityTesting {
    /// Records one issue per failure of every cell of a matrix unless the matrix passed; returns whether it passed.
    @discardableResult
    public static func expectVerified(_ matrix: MatrixReport, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        record(failureMessages(matrix), sourceLocation: sourceLocation)
    }
}
#endif

#if canImport(XCTest)
import XCTest

/// XCTest's form for a matrix: one `XCTFail` per failure of every cell.
public func XCTAssertVerified(_ matrix: MatrixReport, file: StaticString = #filePath, line: UInt = #line) {
    for message in ParityTesting.failureMessages(matrix) { XCTFail(message, file: file, line: line) }
}
#endif
