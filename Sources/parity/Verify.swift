import ArgumentParser
import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityRun
import ParityVerify

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert each model to each format (or take --file), run it, and compare every layer with the goldens.",
        discussion: """
            Each model × format × variant is one cell. A cell whose input is bad (a model directory that cannot be read, a model with no layout in a format, an unreadable file) is reported as an error with its reason, and the other cells still run.

            Exit status: 2 if any cell had bad input (or the command line is wrong); else 1 if any cell failed; else 3 if any cell could not be judged (no tolerance policy: verdict UNJUDGED, neither PASS nor FAIL); else 0.
            """)

    @Argument(help: "Bundled model names or reference directories; none means every bundled model.")
    var models: [String] = []
    @Option(name: .long, help: "Formats to verify (repeatable); default: every format.")
    var format: [Variant.Format] = []
    @Option(name: .long, help: ArgumentHelp(
        "Variants to verify (repeatable); default: every variant of each format. Any variant `convert` writes: gguf f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K…q6_K, mxfp4 (optionally +im2col-f16); mlx f16, f16+affine-b4-g64, nvfp4, …; safetensors f32, f16, bf16. A Llama (tiny-llama): gguf f32, f16, bf16, q8_0 or a llama-quantize mix (Q4_0, Q4_K_M, Q5_K_M, Q6_K, …) or pure-<type>; mlx f32, f16, bf16, [f16+]affine-b4-g64, mxfp4, ….",
        valueName: "variant"))
    var variant: [String] = []
    @Option(name: .long, help: "Verify this converted file instead of converting (format detected from content; the variant is read from the file).")
    var file: String?
    @Option(name: .long, help: "Write the reports as JSON (schema parity-report) to this file.")
    var json: String?
    @Option(name: .long, help: "Keep converted files in this directory instead of a temporary one.")
    var keep: String?
    @OptionGroup var im2col: GGMLIm2colOptions
    @OptionGroup var llamaRuntime: LlamaRuntimeOptions
    @OptionGroup var matrix: MatrixOptionGroup

    /// The image models' (format, variant) cells asked for (`parity bench` runs the same cells).
    func cells() throws -> [(support: FormatSupport, variant: Variant)] {
        try CellRunner.parseImageCells(formats: format, variants: variant, settings: CellSettings(im2col: im2col.ggmlIm2col, workDirectory: ""))
    }

    func run() throws {
        ProcessMemory.reuseFreedMemory()
        if let cap = Kernels.kernelCap { printError("kernels: \(cap)") }
        if !matrix.config.isEmpty { return try runMatrix() }
        try matrix.refuseWithoutConfig()
        let names = models.isEmpty ? ModelRepository.bundledNames() : models
        guard !names.isEmpty else { throw ParityError.usage("no models given and no bundled models found") }
        if file != nil && names.count != 1 { throw ParityError.usage("--file verifies one converted file against one model") }
        if file != nil && !variant.isEmpty { throw ParityError.usage("--variant does not apply to --file: the variant is read from the file") }
        let workDir = try keep ?? makeTemporaryDirectory()
        defer { if keep == nil { try? FileManager.default.removeItem(atPath: workDir) } }
        let settings = CellSettings(im2col: im2col.ggmlIm2col, llama: llamaRuntime.settings, workDirectory: workDir)
        let store = ReferenceStore()
        // The cells are planned and run by the library (ParityRun), as `verify --config` and ParityKit run them.
        let planned = try CellRunner.plan(models: names, formats: format, variants: variant, file: file, settings: settings, store: store)
        // Independent cells run `jobs` at a time (the mechanism `verify --config` uses); their reports are printed
        // below in cell order, so the output is the same for any job count.
        if let jobs = matrix.jobs, jobs < 1 { throw ParityError.usage("--jobs \(jobs): give at least 1") }
        let jobs = matrix.jobs ?? ProcessInfo.processInfo.activeProcessorCount
        let started = Date()
        let outcomes: [(cell: VerificationCell?, outcome: CellOutcome, seconds: Double)] = ParallelCells.map(count: planned.count, jobs: jobs) { i in
            switch planned[i] {
            case let .decided(outcome): return (nil, outcome, 0)
            case let .cell(cell):
                let started = Date()
                let outcome = CellRunner.run(cell, settings: settings, store: store)
                return (cell, outcome, Date().timeIntervalSince(started))
            }
        }
        let wallSeconds = Date().timeIntervalSince(started)
        let cellCount = outcomes.filter { $0.cell != nil }.count
        let jobsRun = max(1, min(jobs, cellCount))
        var reports: [VerificationReport] = []
        var errors: [CellError] = []
        var skipped: [String] = []
        for (_, outcome, _) in outcomes {
            switch outcome {
            case let .report(report): reports.append(report)
            case let .badInput(error): errors.append(error)
            case let .skipped(line): skipped.append(line)
            }
        }
        for report in reports {
            print(ReportRendering.terminal(report, color: stdoutIsTTY))
            print()
        }
        for e in errors { printError("error: \(e.message)") }
        print("summary")
        for r in reports { print(MatrixRendering.summaryLine(r)) }
        for e in errors { print(MatrixRendering.summaryLine(e)) }
        for line in skipped { print("  " + line) }
        // With several jobs a group's cells overlap in time: its line then sums each cell's own wall time.
        for line in Self.llamaWallTimes(outcomes) { print("  " + line + (jobsRun > 1 ? " (the cells' own wall times, summed)" : "")) }
        if cellCount > 0 {
            print("  wall time (\(cellCount) cell\(cellCount == 1 ? "" : "s") on \(jobsRun) job\(jobsRun == 1 ? "" : "s")): \(String(format: "%.2f", wallSeconds)) s")
        }
        if reports.isEmpty && errors.isEmpty {
            throw ParityError.usage("nothing to verify: no format/variant matched" + skipped.map { "\n  " + $0 }.joined())
        }
        let exit: Int32 = !errors.isEmpty ? Exit.badInput : reports.isEmpty ? 0 : Exit.status(for: Verdict.combined(reports.map(\.verdict)))
        if let json {
            try AtomicFileWriter.write(Array((MatrixRendering.json(reports: reports, errors: errors).serialized(pretty: true) + "\n").utf8), to: json)
        }
        if exit != 0 { throw ExitCode(exit) }
    }

    /// One wall-time line per Llama model and format (convert + verify of its cells), and one for a Llama --file.
    static func llamaWallTimes(_ outcomes: [(cell: VerificationCell?, outcome: CellOutcome, seconds: Double)]) -> [String] {
        var groups: [(label: String, cells: Int, seconds: Double)] = []
        for case let (cell?, _, seconds) in outcomes where cell.family == .llama {
            let label: String
            switch cell.source {
            case .file: label = "\(cell.modelName) --file"
            case let .convert(format, _): label = "\(cell.modelName) \(format.rawValue)"
            }
            if let i = groups.firstIndex(where: { $0.label == label }) { groups[i].cells += 1; groups[i].seconds += seconds } else {
                groups.append((label, 1, seconds))
            }
        }
        return groups.map { g in
            g.label.hasSuffix("--file") ? "wall time \(g.label): \(String(format: "%.2f", g.seconds)) s"
                : "wall time \(g.label) (\(g.cells) cells, convert + verify): \(String(format: "%.2f", g.seconds)) s"
        }
    }
}


/// A fresh temporary directory for converted files (`verify`, `bench`).
func makeTemporaryDirectory() throws -> String { try ParityRun.makeTemporaryDirectory() }
