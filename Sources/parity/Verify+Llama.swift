import Foundation
import ParityCore
import ParityFormats
import ParityModels
import ParityVerify

extension Verify {
    /// A Llama reference: every GGUF type/mix and MLX dtype/quantization Parity writes (or `--file`), each read as
    /// llama.cpp / mlx-lm load it and run through the Llama graph engine of that runtime. Adds one wall-time line per format.
    func verifyLlama(_ model: ReferenceModel, golden: GoldenFile, workDir: String,
                     reports: inout [VerificationReport], errors: inout [CellError], wallTimes: inout [String]) {
        let settings = llamaRuntime.settings
        if let file {
            let started = Date()
            do {
                let kind = try format.first ?? FormatRegistry.detect(file).format
                reports.append(try LlamaCells.verify(file, format: kind, model: model, golden: golden, settings: settings))
            } catch {
                errors.append(CellError(model: model.name, format: format.first?.rawValue ?? "-", variant: "-", message: "\(error)"))
            }
            wallTimes.append("wall time \(model.name) --file: \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
            return
        }
        for kind in format.isEmpty ? Variant.Format.allCases : format {
            let started = Date()
            var cells: [String] = []
            if variant.isEmpty { cells = LlamaCells.defaultCells(kind) } else {
                for text in variant {
                    do { cells.append(try LlamaCells.parseCell(text, format: kind)) } catch {
                        // Several formats asked for: a variant belongs to the format that takes it.
                        if format.count == 1 || Variant.Format.allCases.allSatisfy({ (try? LlamaCells.parseCell(text, format: $0)) == nil }) {  // checked: which format takes it
                            errors.append(CellError(model: model.name, format: kind.rawValue, variant: text, message: "\(error)"))
                        }
                    }
                }
            }
            for cell in cells {
                let path = "\(workDir)/\(model.name)-\(cell)" + (kind == .mlx ? "" : ".\(kind.rawValue)")
                do {
                    _ = try LlamaCells.convert(model, format: kind, cell: cell, to: path)
                    var report = try LlamaCells.verify(path, format: kind, model: model, golden: golden, settings: settings)
                    if report.variant != cell { report.notes.insert("converted as \(cell); the file says \(report.variant)", at: 0) }
                    reports.append(report)
                } catch {
                    errors.append(CellError(model: model.name, format: kind.rawValue, variant: cell, message: "\(error)"))
                }
            }
            if !cells.isEmpty {
                wallTimes.append("wall time \(model.name) \(kind.rawValue) (\(cells.count) cells, convert + verify): "
                    + "\(String(format: "%.2f", Date().timeIntervalSince(started))) s")
            }
        }
    }
}
