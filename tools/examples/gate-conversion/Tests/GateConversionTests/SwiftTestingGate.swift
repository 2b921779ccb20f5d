import Foundation
import ParityKit
import ParityTesting
import Testing

/// The gate under Swift Testing: the f16 conversion of fmnist-mlp must verify node by node and weight by weight.
@Test func f16ConversionVerifies() throws {
    let file = try convertedFile("swift-testing")
    defer { try? FileManager.default.removeItem(at: file.deletingLastPathComponent()) }
    let report = try Parity.verify(model: referenceDirectory.path, file: file.path)
    #expect(report.variant == "f16")
    ParityTesting.expectVerified(report)
}
