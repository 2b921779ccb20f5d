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
            missing or doubled bias, wrong scale; for a Llama also Q/K RoPE permutation missing or doubled, Q and K
            exchanged, RMSNorm w − 1 / 1 + w, K/V heads expanded tiled, and how the file makes the runtime compute:
            RoPE convention, RoPE θ, RMSNorm ε, an output tied to the embedding; for a BERT LayerNorm weight and bias
            exchanged, two of Q, K, V exchanged, token-type table missing or zeroed, position table shifted, and the
            runtime's LayerNorm ε and GELU form) and reports the one that makes it pass.
            Exit status: 0 pass, 1 a layer failed, 2 bad input or usage, 3 nothing failed but some layer could not be judged (verdict UNJUDGED: no tolerance policy).
            """)

    @Argument(help: "A bundled model name or a reference model directory.") var model: String
    @Argument(help: "The converted file or MLX directory.") var converted: String
    @Option(name: .long, help: "Format, if not detected from the content.") var format: Variant.Format?
    @Flag(name: .long, help: "Show each layer's own error (fed its golden input) beside the propagated error.") var isolated = false
    @Flag(name: .long, help: "Skip diagnosis.") var noDiagnose = false
    @Option(name: .long, help: "Write the report as JSON (schema parity-report v2).") var json: String?
    @Option(name: .long, help: "Write a self-contained HTML page with a per-layer error chart.") var html: String?
    @OptionGroup var im2col: GGMLIm2colOptions
    @OptionGroup var llamaRuntime: LlamaRuntimeOptions

    func run() throws {
        let reference = try ModelRepository.locate(model)
        let golden = try reference.golden()
        let support = im2col.support(try format.map { f in FormatRegistry.all.first { $0.format == f }! } ?? FormatRegistry.detect(converted))
        let showProgress = isatty(STDERR_FILENO) == 1
        let progress: (String) -> Void = { line in
            if showProgress { FileHandle.standardError.write(Data("\u{1B}[2K\rlayer-diff: \(line)".utf8)) }
        }
        var report: VerificationReport
        if BertCells.isBert(reference) {
            // A BERT (minilm-l6) in any format, opened as its runtime opens it (BertLayerDiff).
            report = try BertLayerDiff.run(converted, format: support.format, model: reference, golden: golden, diagnose: !noDiagnose, progress: progress)
        } else if reference.config.llama != nil, support.format != .safetensors {
            // A GGUF / MLX Llama: read as llama.cpp / mlx-lm load it, run by the Llama engine of that runtime (LlamaCells).
            report = try LlamaCells.verify(converted, format: support.format, model: reference, golden: golden, settings: llamaRuntime.settings,
                                           layerDiff: true, diagnose: !noDiagnose, progress: progress)
        } else {
            let (engine, opened) = try support.openGraph(converted, for: reference)
            report = try Comparator.layerDiff(model: reference, golden: golden, engine: engine, format: support.name, variant: opened.label,
                                              file: converted, diagnose: !noDiagnose, progress: progress)
            report.notes += try support.explain(report, path: converted, model: reference, golden: golden)
        }
        let variant = report.variant
        if showProgress { FileHandle.standardError.write(Data("\u{1B}[2K\r".utf8)) }
        if report.verdict == .unjudged {
            printError("note: no tolerance policy for some layers of \(support.name) \(variant): they are unjudged, and the verdict is UNJUDGED, not PASS")
        }
        // The isolated run always drives the first divergence and the diagnosis; --isolated shows its columns.
        print(ReportRendering.terminal(report, color: stdoutIsTTY, showIsolated: isolated))
        if let json {
            try AtomicFileWriter.write(Array((ReportRendering.json([report]).serialized(pretty: true) + "\n").utf8), to: json)
        }
        if let html {
            try AtomicFileWriter.write(Array(HTMLReport.render([report], title: "Parity layer-diff: \(reference.name) · \(converted)").utf8), to: html)
        }
        let status = Exit.status(for: report.verdict)
        if status != 0 { throw ExitCode(status) }
    }
}
