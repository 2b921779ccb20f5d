import ArgumentParser
import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
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

    /// One cell that could not be verified: its input was bad.
    struct CellError {
        let model: String
        let format: String
        let variant: String
        let message: String
    }

    /// The (format, variant) cells asked for, each variant parsed once here; a variant no selected format takes is
    /// a usage error naming the valid forms.
    func cells() throws -> [(support: FormatSupport, variant: Variant)] {
        let formats = (format.isEmpty ? FormatRegistry.all : format.map { f in FormatRegistry.all.first { $0.format == f }! }).map(im2col.support)
        guard !variant.isEmpty else { return formats.flatMap { s in s.variants.map { (s, $0) } } }
        var out: [(FormatSupport, Variant)] = []
        for text in variant {
            var matched = false
            var reasons: [String] = []
            for support in formats {
                do {
                    let v = try support.parseVariant(text)
                    guard v.isUniform else { reasons.append("\(support.name) \(v.label): Parity does not convert to it (verify such a file with --file)"); continue }
                    out.append((v.legacyIm2col ? GGUFSupport(im2col: .f16) : support, v))
                    matched = true
                } catch {
                    reasons.append(error.description)
                }
            }
            guard matched else { throw ParityError.usage("unknown variant \"\(text)\" for \(formats.map(\.name).joined(separator: ", ")):\n  " + reasons.joined(separator: "\n  ")) }
        }
        return out
    }

    func run() throws {
        let names = models.isEmpty ? ModelRepository.bundledNames() : models
        guard !names.isEmpty else { throw ParityError.usage("no models given and no bundled models found") }
        if file != nil && names.count != 1 { throw ParityError.usage("--file verifies one converted file against one model") }
        if file != nil && !variant.isEmpty { throw ParityError.usage("--variant does not apply to --file: the variant is read from the file") }
        // The image models' cells, parsed when the first non-Llama model needs them (Llama cells: Verify+Llama.swift).
        var parsedCells: [(support: FormatSupport, variant: Variant)]?
        let workDir = try keep ?? makeTemporaryDirectory()
        defer { if keep == nil { try? FileManager.default.removeItem(atPath: workDir) } }

        var reports: [VerificationReport] = []
        var errors: [CellError] = []
        var skipped: [String] = []
        var wallTimes: [String] = []
        for name in names {
            let model: ReferenceModel, golden: GoldenFile
            do {
                model = try ModelRepository.locate(name)
                golden = try model.golden()
            } catch {
                errors.append(CellError(model: name, format: "-", variant: "-", message: "\(error)"))
                continue
            }
            if BertCells.isBert(model) {
                verifyBert(model, golden: golden, workDir: workDir, reports: &reports, errors: &errors, skipped: &skipped)
                continue
            }
            if model.config.llama != nil {
                verifyLlama(model, golden: golden, workDir: workDir, reports: &reports, errors: &errors, wallTimes: &wallTimes)
                continue
            }
            if let file {
                do {
                    let support = im2col.support(try format.first.map { f in FormatRegistry.all.first { $0.format == f }! } ?? FormatRegistry.detect(file))
                    reports.append(try support.verify(file, model: model, golden: golden))
                } catch {
                    // The cell's format as given or as detected, for the summary line (the variant could not be read).
                    let detected = format.first?.rawValue ?? (try? FormatRegistry.detect(file))?.name ?? "-"  // checked: a label only
                    errors.append(CellError(model: model.name, format: detected, variant: "-", message: "\(error)"))
                }
                continue
            }
            if parsedCells == nil { parsedCells = try cells() }
            for (support, v) in parsedCells ?? [] {
                if let reason = support.unsupportedReason(for: model) {
                    // Asked for by name it is an error; as part of "every format" the cell is skipped, and said so.
                    if format.isEmpty { skipped.append("\(model.name) \(support.name) \(v.label): skipped — \(reason)") } else {
                        errors.append(CellError(model: model.name, format: support.name, variant: v.label, message: reason))
                    }
                    continue
                }
                let path = "\(workDir)/\(model.name)-\(v.label).\(support.name)"
                do {
                    let notes = try support.convert(model, variant: v, to: path)
                    var report = try support.verify(path, model: model, golden: golden)
                    if report.variant != v.label {
                        // Say what was written: the report is labelled by the file's content, with the reasons.
                        report.notes.insert("converted as \(v.label), but the file holds \(report.variant): "
                            + notes.filter { $0.contains("falling back") || $0.contains("left unquantized") || $0.hasPrefix("note:") }.joined(separator: "; "), at: 0)
                    }
                    reports.append(report)
                } catch {
                    errors.append(CellError(model: model.name, format: support.name, variant: v.label, message: "\(error)"))
                }
            }
        }
        for report in reports {
            print(ReportRendering.terminal(report, color: stdoutIsTTY))
            print()
        }
        for e in errors { printError("error: \(e.message)") }
        print("summary")
        for r in reports {
            let worst = r.layers.compactMap { $0.metrics?.relL2 }.max().map(formatNumber) ?? "-"
            let first = r.firstDivergence.map { "first divergence: \($0.name)" } ?? (r.loadRefusals.isEmpty ? (r.hyperparameterMismatches.isEmpty ? "" : "hyperparameters differ from the reference (see note)") : "the runtime refuses the file (see note)")
            print("  \(r.verdict.rawValue.uppercased())  \(r.model)  \(r.format) \(r.variant)  worst rel L2 \(worst)  \(first)" + WeightRendering.summary(r))
        }
        for e in errors { print("  ERROR  \(e.model)  \(e.format) \(e.variant)  \(e.message)") }
        for line in skipped { print("  " + line) }
        for line in wallTimes { print("  " + line) }
        if reports.isEmpty && errors.isEmpty {
            throw ParityError.usage("nothing to verify: no format/variant matched" + skipped.map { "\n  " + $0 }.joined())
        }
        let exit: Int32 = !errors.isEmpty ? Exit.badInput : reports.isEmpty ? 0 : Exit.status(for: Verdict.combined(reports.map(\.verdict)))
        if let json {
            var document = ReportRendering.json(reports)
            if case var .object(members) = document {
                // A cell with bad input makes the whole run "error" (exit 2), whatever the other cells did.
                if !errors.isEmpty, let i = members.firstIndex(where: { $0.key == "verdict" }) { members[i].value = .string("error") }
                members.append(("errors", .array(errors.map { e in
                    .object([("model", .string(e.model)), ("format", .string(e.format)), ("variant", .string(e.variant)), ("message", .string(e.message))])
                })))
                document = .object(members)
            }
            try AtomicFileWriter.write(Array((document.serialized(pretty: true) + "\n").utf8), to: json)
        }
        if exit != 0 { throw ExitCode(exit) }
    }
}

func makeTemporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "parity-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
        throw ParityError.io(path: path, reason: "cannot create a temporary directory")
    }
    return path
}
