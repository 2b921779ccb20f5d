import Foundation
import ParityCore
import ParityFormats
import ParityKit
import ParityTesting
import Testing
import XCTest

/// fmnist-mlp's reference weights written back as an f32 safetensors file, with `plant` applied to each tensor.
private func fmnistMLPFile(in dir: TemporaryDirectory, _ name: String, plant: (String, Tensor) -> Tensor = { $1 }) throws -> String {
    let source = try SafetensorsFile(path: Repo.golden + "/fmnist-mlp/model.safetensors")
    var writer = SafetensorsWriter()
    for entry in source.entries { try writer.add(name: entry.name, tensor: plant(entry.name, try source.tensor(entry))) }
    let path = dir.file(name)
    try writer.write(to: path)
    return path
}

/// The bug the tests plant: +1 on fc2.bias[3] (class 3's logit moves by 1 for every image; nothing before fc2 changes).
private func plantedBias(_ name: String, _ tensor: Tensor) -> Tensor {
    guard name == "fc2.bias" else { return tensor }
    var data = tensor.data
    data[3] += 1
    return Tensor(shape: tensor.shape, data: data)
}

@Suite("ParityTesting: reports as test failures")
struct ParityTestingTests {
    @Test("a planted +1 on fc2.bias[3] is named: node fc2 with metric, value over its limit at column 3, and tensor fc2.bias at row 0, column 3")
    func namesNodeAndTensor() throws {
        let dir = try TemporaryDirectory()
        let report = try Parity.verify(model: Repo.golden + "/fmnist-mlp", file: try fmnistMLPFile(in: dir, "bad.safetensors", plant: plantedBias))
        #expect(report.verdict == .fail)
        let failures = ParityFailure.of(report)
        // Only fc2 reads the changed bias: flatten, fc1 and relu1 are untouched and must not be blamed.
        let nodes = Set(failures.compactMap { if case let .node(name, _) = $0.subject { name } else { nil } })
        #expect(nodes == ["fc2"])
        let node = try #require(failures.first { $0.subject == .node(name: "fc2", op: "Linear") })
        let value = try #require(node.value), limit = try #require(node.limit)
        #expect(["rel L2", "max abs"].contains(node.metric))
        #expect(value > limit)
        // The largest difference is in class 3's logit of some image: element [image, 3] of fc2's [64, 10] output.
        #expect(node.location?.hasPrefix("element [") == true && node.location?.contains(", 3] (flat") == true, "\(node)")
        let tensor = try #require(failures.first { $0.subject == .tensor(name: "fc2.bias") })
        // f32 must be stored exactly (an exact rule, limit 0): the distance to the expected value is the planted 1 (up to
        // float32 rounding of b + 1).
        let distance = try #require(tensor.value), bound = try #require(tensor.limit)
        #expect(abs(distance - 1) < 1e-6 && bound == 0, "\(tensor)")
        #expect(tensor.location?.hasPrefix("row 0, column 3") == true, "\(tensor)")
        #expect(tensor.metric == "|stored − expected|")
        // The text names the cell, the subject, the metric, the value and the limit.
        #expect(node.description.hasPrefix("fmnist-mlp safetensors f32 (\(dir.file("bad.safetensors"))): node fc2 (Linear): \(node.metric) "))
        #expect(node.description.contains(" > limit "))
    }

    @Test("expectVerified records one issue per failure of a failed report, and none for a report that passed")
    func swiftTestingIssues() throws {
        let dir = try TemporaryDirectory()
        let bad = try Parity.verify(model: Repo.golden + "/fmnist-mlp", file: try fmnistMLPFile(in: dir, "bad.safetensors", plant: plantedBias))
        let messages = ParityTesting.failureMessages(bad)
        #expect(messages.count == ParityFailure.of(bad).count && messages.count >= 2)
        withKnownIssue("the planted bug must be recorded as issues") {
            #expect(ParityTesting.expectVerified(bad) == false)
        } matching: { issue in
            messages.contains { issue.comments.map(\.rawValue).contains($0) }
        }
        let good = try Parity.verify(model: Repo.golden + "/fmnist-mlp", file: try fmnistMLPFile(in: dir, "good.safetensors"))
        #expect(good.verdict == .pass)
        #expect(ParityTesting.failureMessages(good).isEmpty)
        #expect(ParityTesting.expectVerified(good))
    }
}

@Suite("ParityTesting: matrices as test failures")
struct ParityTestingMatrixTests {
    @Test("a matrix's failing cell is named from its live report, and again from the cache's recorded lines on a second run")
    func matrixFailures() throws {
        let dir = try TemporaryDirectory()
        _ = try fmnistMLPFile(in: dir, "bad.safetensors", plant: plantedBias)
        _ = try fmnistMLPFile(in: dir, "good.safetensors")
        let config = dir.file("matrix.json")
        try writeBytes(Array(#"{"models": [{"model": "\#(Repo.golden)/fmnist-mlp", "files": ["bad.safetensors", "good.safetensors"]}]}"#.utf8),
                       to: config)
        var options = MatrixOptions()
        options.cacheDirectory = dir.file("cache")
        options.jobs = 1
        let first = try Parity.verify(configs: [config], options: options)
        #expect(first.cells.map(\.status).sorted { $0.rawValue < $1.rawValue } == [.fail, .pass])
        let live = ParityFailure.of(first)
        #expect(live.contains { $0.subject == .node(name: "fc2", op: "Linear") && $0.cell.contains("bad.safetensors") })
        #expect(!live.contains { $0.cell.contains("good.safetensors") })
        withKnownIssue("the bad cell's failures are recorded") {
            #expect(ParityTesting.expectVerified(first) == false)
        }

        let second = try Parity.verify(configs: [config], options: options)
        #expect(second.cells.allSatisfy { $0.cached })
        let cached = ParityFailure.of(second)
        #expect(!cached.isEmpty)
        #expect(cached.allSatisfy { $0.subject == .file("cell (cached result)") })
        #expect(cached.contains { $0.detail?.contains("node fc2 (Linear): rel L2") == true }, "\(cached)")
    }
}

@Suite("ParityTesting: every verdict input becomes a failure")
struct ParityTestingEndMetricTests {
    @Test("a report failed only by its end metric (a sentence embedding out of its limit) yields that failure, never none")
    func endMetricFailureIsNamed() throws {
        let dir = try TemporaryDirectory()
        var report = try Parity.verify(model: Repo.golden + "/fmnist-mlp", file: try fmnistMLPFile(in: dir, "good.safetensors"))
        #expect(report.verdict == .pass && ParityTesting.failureMessages(report).isEmpty)
        let line = "sentence 2: embedding cosine 0.9990000 to PyTorch's < limit 0.9999000 (the bar for float files)"
        report.endMetricFailures = [line]
        #expect(report.verdict == .fail)
        let messages = ParityTesting.failureMessages(report)
        #expect(messages.count == 1 && messages[0].contains("sentence embeddings: end metric — " + line), "\(messages)")
    }
}

/// XCTAssertVerified on a report that passes records nothing (its failure path is exercised by the example package,
/// tools/examples/run-example.sh, whose broken run must print the XCTest failures).
final class ParityTestingXCTests: XCTestCase {
    func testPassingReportRecordsNothing() throws {
        let dir = try TemporaryDirectory()
        let good = try Parity.verify(model: Repo.golden + "/fmnist-mlp", file: try fmnistMLPFile(in: dir, "good.safetensors"))
        XCTAssertEqual(good.verdict, .pass)
        XCTAssertVerified(good)
    }
}
