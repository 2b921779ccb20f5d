import Foundation
import ParityCore
import ParityFormats
import ParityModels
import ParityVerify

extension Verify {
    /// A BERT reference (minilm-l6): safetensors cells (or `--file`), each run through the BERT graph engine.
    func verifyBert(_ model: ReferenceModel, golden: GoldenFile, workDir: String,
                    reports: inout [VerificationReport], errors: inout [CellError], skipped: inout [String]) {
        if let file {
            do {
                let kind = try format.first ?? FormatRegistry.detect(file).format
                reports.append(try BertCells.verify(file, format: kind, model: model, golden: golden))
            } catch {
                errors.append(CellError(model: model.name, format: format.first?.rawValue ?? "-", variant: "-", message: "\(error)"))
            }
            return
        }
        for kind in format.isEmpty ? Variant.Format.allCases : format {
            let cells = variant.isEmpty ? BertCells.defaultCells(kind) : variant
            if cells.isEmpty {
                let reason = "\(model.name) \(kind.rawValue): no BERT cells in this format yet"
                if format.isEmpty { skipped.append(reason + ": skipped") } else {
                    errors.append(CellError(model: model.name, format: kind.rawValue, variant: "-", message: reason))
                }
                continue
            }
            for cell in cells {
                let path = "\(workDir)/\(model.name)-\(cell).\(kind.rawValue)"
                do {
                    if kind == .mlx || kind == .gguf {
                        _ = kind == .mlx ? try MLXBertCells.convert(model, cell: cell, to: path) : try GGUFBertCells.convert(model, cell: cell, to: path)
                        reports.append(try BertCells.verify(path, format: kind, model: model, golden: golden))
                        continue
                    }
                    guard kind == .safetensors, FloatType(rawValue: cell) != nil else {
                        throw ParityError.usage("BERT variant \"\(cell)\" of \(kind.rawValue): give safetensors f32, f16 or bf16")
                    }
                    _ = try SafetensorsConverter.convert(model, dtype: cell, to: path)
                    reports.append(try BertCells.verify(path, format: kind, model: model, golden: golden))
                } catch {
                    errors.append(CellError(model: model.name, format: kind.rawValue, variant: cell, message: "\(error)"))
                }
            }
        }
    }
}
