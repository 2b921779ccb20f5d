import Foundation
import ParityKit
import ParityTesting
import XCTest

/// The same gate under XCTest.
final class XCTestGate: XCTestCase {
    func testF16ConversionVerifies() throws {
        let file = try convertedFile("xctest")
        defer { try? FileManager.default.removeItem(at: file.deletingLastPathComponent()) }
        let report = try Parity.verify(model: referenceDirectory.path, file: file.path)
        XCTAssertEqual(report.variant, "f16")
        XCTAssertVerified(report)
    }
}
