import ArgumentParser
import Foundation
import ParityCore
import ParityEngine
import ParityModels
import ParityVerify

struct LayerDiff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layer-diff",
        abstract: "Verify any converted file (GGUF, MLX file or directory, safetensors — Parity's or another tool's) layer by layer, and diagnose the first divergence.",
        discussion: """
            Every layer is also run on its golden input, which separates the error a layer introduces from the error it
            inherits. The first divergence is the earliest layer, in forward order, that fails on its golden input (see
            README "Reading a report"). For each layer that fails on its golden input, Parity tries the conversion mistakes
            people make (transposed matrix, flatten order, swapped or flipped kernel, conv layout, f16/bf16 mix-up,
            missing or doubled bias, wrong scale) and reports the one that makes it pass.
            Exit status: 0 pass, 1 a layer failed, 2 bad input or usage.
            """)

    @Argument(help: "A bundled model name or a reference model directory.") var model: String
    @Argument(help: "The converted file or MLX directory.") var converted: String
    @Option(name: .long, help: "Format, if not detected from the content: safetensors, gguf, mlx.") var format: String?
    @Flag(name: .long, help: "Show each layer's own error (fed its golden input) beside the propagated error.") var isolated = false
    @Flag(name: .long, help: "Skip diagnosis.") var noDiagnose = false
    @Option(name: .long, help: "Write the report as JSON (schema parity-report v2).") var json: String?
    @Option(name: .long, help: "Write a self-contained HTML page with a per-layer error chart.") var html: String?
    @Option(name: .long, help: "GGUF: emulate ggml's conv_2d im2col typing: kernel (ggml 0.15, default) or f16 (older ggml).")
    var ggmlIm2col: GGMLIm2colRule = .kernelType

    func run() throws {
        let reference = try ModelRepository.locate(model)
        let golden = try Watchdog.guardingHDF5(reference.goldenPath) { try reference.golden() }
        var support = try format.map { name throws(ParityError) in try FormatRegistry.named(name) } ?? FormatRegistry.detect(converted)
        if support.name == "gguf" { support = GGUFSupport(im2col: ggmlIm2col) }
        let (engine, variant) = try support.open(converted, for: reference)
        let showProgress = isatty(STDERR_FILENO) == 1
        var report = try Comparator.layerDiff(model: reference, golden: golden, engine: engine, format: support.name, variant: variant,
                                              file: converted, diagnose: !noDiagnose) { line in
            if showProgress { FileHandle.standardError.write(Data("\u{1B}[2K\rlayer-diff: \(line)".utf8)) }
        }
        if showProgress { FileHandle.standardError.write(Data("\u{1B}[2K\r".utf8)) }
        report.notes += try support.explain(report, path: converted, model: reference, golden: golden)
        if report.policy == nil {
            printError("note: no tolerance policy for \(support.name) \(variant): Parity will not name a first divergence without one")
        }
        // The isolated run always drives the first divergence and the diagnosis; --isolated shows its columns.
        print(ReportRendering.terminal(report, color: stdoutIsTTY, showIsolated: isolated))
        if let json {
            try AtomicFileWriter.write(Array((ReportRendering.json([report]).serialized(pretty: true) + "\n").utf8), to: json)
        }
        if let html {
            try AtomicFileWriter.write(Array(HTMLReport.render([report], title: "Parity layer-diff: \(reference.name) · \(converted)").utf8), to: html)
        }
        if !report.passed { throw ExitCode(Exit.verificationFailed) }
    }
}
