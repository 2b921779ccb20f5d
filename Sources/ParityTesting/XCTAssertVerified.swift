import ParityVerify

#if canImport(XCTest)
import XCTest

/// XCTest's form of `ParityTesting.expectVerified`: one `XCTFail` per failure of `report` (node or tensor, metric,
/// value, limit, where), at the caller's file and line; nothing when it passed.
public func XCTAssertVerified(_ report: VerificationReport, file: StaticString = #filePath, line: UInt = #line) {
    for message in ParityTesting.failureMessages(report) { XCTFail(message, file: file, line: line) }
}

/// Several reports: every failure of each; an empty list is itself a failure (it verifies nothing).
public func XCTAssertVerified(_ reports: [VerificationReport], file: StaticString = #filePath, line: UInt = #line) {
    if reports.isEmpty { XCTFail("no verification report to check (an empty list verifies nothing)", file: file, line: line) }
    for report in reports { XCTAssertVerified(report, file: file, line: line) }
}
#endif
