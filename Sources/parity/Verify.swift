import ArgumentParser
import Foundation
import ParityCore
import ParityEngine
import ParityModels
import ParityVerify

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert each model to each format (or take --file), run it, and compare every layer with the goldens.",
        discussion: "Exit status: 0 all passed, 1 a verification failed, 2 bad input or usage.")

    @Argument(help: "Bundled model names or reference directories; none means every bundled model.")
    var models: [String] = []
    @Option(name: .long, help: "Formats to verify (repeatable); default: every format.")
    var format: [String] = []
    @Option(name: .long, help: "Variants to verify (repeatable), e.g. f16; default: every variant of each format.")
    var variant: [String] = []
    @Option(name: .long, help: "Verify this converted file instead of converting (format detected from content).")
    var file: String?
    @Option(name: .long, help: "Write the reports as JSON (schema parity-report v2) to this file.")
    var json: String?
    @Option(name: .long, help: "Keep converted files in this directory instead of a temporary one.")
    var keep: String?
    @Option(name: .long, help: "GGUF: emulate ggml's conv_2d im2col typing: kernel (ggml 0.15, default) or f16 (ggml up to d99724f).")
    var ggmlIm2col: GGMLIm2colRule = .kernelType

    func run() throws {
        let names = models.isEmpty ? ModelRepository.bundledNames() : models
        guard !names.isEmpty else { throw ParityError.usage("no models given and no bundled models found") }
        if file != nil && names.count != 1 { throw ParityError.usage("--file verifies one converted file against one model") }
        let formats = try (format.isEmpty ? FormatRegistry.all : format.map { name throws(ParityError) in try FormatRegistry.named(name) })
            .map { $0.name == "gguf" ? GGUFSupport(im2col: ggmlIm2col) : $0 }
        let workDir = try keep ?? makeTemporaryDirectory()
        defer { if keep == nil { try? FileManager.default.removeItem(atPath: workDir) } }

        var reports: [VerificationReport] = []
        for name in names {
            let model = try ModelRepository.locate(name)
            let golden = try Watchdog.guardingHDF5(model.goldenPath) { try model.golden() }
            if let file {
                var support = try format.first.map { name throws(ParityError) in try FormatRegistry.named(name) } ?? FormatRegistry.detect(file)
                if support.name == "gguf" { support = GGUFSupport(im2col: ggmlIm2col) }
                reports.append(try support.verify(file, model: model, golden: golden))
                continue
            }
            for support in formats {
                let variants = variant.isEmpty ? support.variants : variant.filter(support.variants.contains)
                for v in variants {
                    let path = "\(workDir)/\(model.name)-\(v).\(support.name)"
                    _ = try support.convert(model, variant: v, to: path)
                    let report = try support.verify(path, model: model, golden: golden)
                    guard report.variant.split(separator: "+").first.map(String.init) == v else {
                        throw ParityError.mismatch(file: path, reason: "converted as \(v) but the file reads as \(report.variant)")
                    }
                    reports.append(report)
                }
            }
        }
        guard !reports.isEmpty else { throw ParityError.usage("nothing to verify: no format/variant matched") }
        for report in reports {
            print(ReportRendering.terminal(report, color: stdoutIsTTY))
            print()
        }
        print("summary")
        for r in reports {
            let worst = r.layers.compactMap { $0.metrics?.relL2 }.max().map(formatNumber) ?? "-"
            let first = r.firstDivergence.map { "first divergence: \($0.name)" } ?? ""
            print("  \(r.passed ? "PASS" : "FAIL")  \(r.model)  \(r.format) \(r.variant)  worst rel L2 \(worst)  \(first)")
        }
        if let json {
            try AtomicFileWriter.write(Array((ReportRendering.json(reports).serialized(pretty: true) + "\n").utf8), to: json)
        }
        if !reports.allSatisfy(\.passed) { throw ExitCode(Exit.verificationFailed) }
    }
}

func makeTemporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "parity-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
        throw ParityError.io(path: path, reason: "cannot create a temporary directory")
    }
    return path
}

extension GGMLIm2colRule: ExpressibleByArgument {}
