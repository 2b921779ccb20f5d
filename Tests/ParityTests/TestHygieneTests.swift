import Foundation
import Testing

/// The test suite's own rules, checked on its sources so that a new test cannot quietly break them:
/// a parameterized test takes its arguments through `nonEmpty` (Swift Testing reports an empty argument list as
/// "skipped" and the run as passed), and nothing turns a missing value into a default that lets a check pass
/// (`try?`, `?? []`, `?? true`, …) unless the line says, after `// checked:`, why that cannot hide a failure.
@Suite("test hygiene")
struct TestHygieneTests {
    static let directory = Repo.root + "/Tests/ParityTests"

    static func sources() throws -> [(name: String, text: String)] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".swift") }.sorted()
        return try nonEmpty(names, "\(directory)/*.swift").map { ($0, String(decoding: try readBytes(directory + "/" + $0), as: UTF8.self)) }
    }

    @Test("every parameterized test fails on an empty argument list")
    func argumentsGoThroughNonEmpty() throws {
        var parameterized = 0
        for (name, text) in try Self.sources() where name != "TestHygieneTests.swift" {
            // Each @Test attribute up to its function: its arguments must be `try nonEmpty(…)`.
            for attribute in text.components(separatedBy: "@Test(").dropFirst() {
                guard let end = attribute.range(of: "func ") else { continue }  // checked: an attribute always precedes a func
                let head = attribute[..<end.lowerBound]
                guard head.contains("arguments:") else { continue }  // checked: not parameterized
                parameterized += 1
                #expect(head.contains("arguments: try nonEmpty("), "\(name): @Test(\(head.prefix(80))…) takes arguments without nonEmpty")
            }
        }
        #expect(parameterized >= 20, "found \(parameterized) parameterized tests")
    }

    @Test("no default stands in for a missing value, and no expectation is a constant")
    func noSilentDefaults() throws {
        let forbidden = ["try?", "?? []", "?? [:]", "?? true", "?? false", "#expect(true", "#expect(false", "else { return }"]
        var lines = 0
        for (name, text) in try Self.sources() where name != "TestHygieneTests.swift" {
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                lines += 1
                let code = line.components(separatedBy: "// checked:")
                guard code.count == 1 else {
                    #expect(!code[1].trimmingCharacters(in: .whitespaces).isEmpty, "\(name):\(number + 1): `// checked:` without a reason")
                    continue
                }
                for pattern in forbidden where line.contains(pattern) {
                    #expect(Bool(false), "\(name):\(number + 1): `\(pattern)` can turn a missing value into a pass: \(line.trimmingCharacters(in: .whitespaces))")
                }
            }
        }
        #expect(lines > 1000)
    }

    @Test("the hygiene checks themselves can fail")
    func checksCanFail() throws {
        // The helpers the rules rely on refuse empty input.
        #expect(throws: EmptyCases.self) { try nonEmpty([Int](), "an empty list") }
        #expect(try nonEmpty([1], "one") == [1])
        #expect { try required(.object([]), "files", in: "manifest.json") } throws: { "\($0)".contains("manifest.json") && "\($0)".contains("files") }
    }
}
