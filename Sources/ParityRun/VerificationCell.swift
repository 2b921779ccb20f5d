import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify

/// One cell of a verification: a model (a bundled name or a reference directory) and either a format + variant that
/// Parity converts to, or a file someone else converted. `parity verify`, `parity verify --config` and the ParityKit
/// library all run cells through `CellRunner.run`, so a cell means the same thing everywhere.
public struct VerificationCell: Hashable, Sendable {
    /// Which engine family runs the cell (decided from the reference's config when the cell is planned).
    public enum Family: String, Hashable, Sendable { case image, llama, bert }
    public enum Source: Hashable, Sendable {
        /// Convert the reference with Parity's converter to this format and variant, then verify the written file.
        case convert(format: Variant.Format, variant: String)
        /// Verify a converted file (format detected from the content when nil; the variant is read from the file).
        case file(path: String, format: Variant.Format?)
    }

    /// The model as given: a bundled name or a reference directory.
    public var model: String
    /// The reference's name (the directory's last component for a reference directory): used in reports and keys.
    public var modelName: String
    public var family: Family
    public var source: Source

    public init(model: String, modelName: String, family: Family, source: Source) {
        self.model = model
        self.modelName = modelName
        self.family = family
        self.source = source
    }

    /// The format as shown in a summary ("-" when a file's format is left to detection).
    public var formatLabel: String {
        switch source {
        case let .convert(format, _): return format.rawValue
        case let .file(_, format): return format?.rawValue ?? "-"
        }
    }

    /// The variant asked for, or the file's name for a converted file.
    public var variantLabel: String {
        switch source {
        case let .convert(_, variant): return variant
        case let .file(path, _): return (path as NSString).lastPathComponent
        }
    }

    /// A stable identity, independent of where the cell was listed and of the machine (no absolute paths): the order of
    /// shards and the name of a cell in a merged report.
    public var key: String {
        switch source {
        case let .convert(format, variant): return "\(modelName) \(format.rawValue) \(variant)"
        case let .file(path, format): return "\(modelName) \(format?.rawValue ?? "auto") file:\((path as NSString).lastPathComponent)"
        }
    }
}

/// One cell that could not be verified: its input was bad (exit 2), never blamed on a conversion.
public struct CellError: Sendable, Equatable {
    public let model: String
    public let format: String
    public let variant: String
    public let message: String

    public init(model: String, format: String, variant: String, message: String) {
        self.model = model
        self.format = format
        self.variant = variant
        self.message = message
    }
}

/// What running (or planning) a cell produced.
public enum CellOutcome: Sendable {
    /// The cell ran: its verdict is the report's.
    case report(VerificationReport)
    /// The cell's input was bad.
    case badInput(CellError)
    /// The cell does not apply (e.g. no layout for this model in a format asked for implicitly); the line says why.
    case skipped(String)
}

/// How the runtimes are emulated, and where converted files go.
public struct CellSettings: Sendable {
    /// GGUF conv_2d im2col typing of the image models (ggml 0.15's kernel typing by default).
    public var im2col: GGMLIm2colRule
    /// llama.cpp's KV cache type and flash attention for GGUF Llama files.
    public var llama: LlamaRuntimeSettings
    /// Where converted files are written (one file per cell, named after the cell).
    public var workDirectory: String

    public init(im2col: GGMLIm2colRule = .kernelType, llama: LlamaRuntimeSettings = .llamaCppCLIDefaults, workDirectory: String) {
        self.im2col = im2col
        self.llama = llama
        self.workDirectory = workDirectory
    }

    /// The format's support, with the GGUF im2col rule applied.
    public func support(_ format: FormatSupport) -> FormatSupport { format.format == .gguf ? GGUFSupport(im2col: im2col) : format }
}

/// Reference models and their goldens, each read once however many cells use it (safe to share between threads). The
/// goldens are read only when a cell runs (a cell served from the cache needs the reference's files' digests only).
public final class ReferenceStore: @unchecked Sendable {
    private let lock = NSLock()
    private var models: [String: Result<ReferenceModel, ParityError>] = [:]
    private var goldens: [String: Result<GoldenFile, ParityError>] = [:]

    public init() {}

    /// The reference model (config and weights located), or the bad-input error reading it gave.
    public func model(_ nameOrPath: String) throws(ParityError) -> ReferenceModel {
        if let done = lock.withLock({ models[nameOrPath] }) { return try done.get() }
        let result: Result<ReferenceModel, ParityError>
        do { result = .success(try ModelRepository.locate(nameOrPath)) } catch { result = .failure(error) }
        lock.withLock { models[nameOrPath] = result }
        return try result.get()
    }

    /// The model and its goldens.
    public func load(_ nameOrPath: String) throws(ParityError) -> (model: ReferenceModel, golden: GoldenFile) {
        let model = try model(nameOrPath)
        if let done = lock.withLock({ goldens[nameOrPath] }) { return (model, try done.get()) }
        let result: Result<GoldenFile, ParityError>
        do { result = .success(try model.golden()) } catch { result = .failure(error) }
        lock.withLock { goldens[nameOrPath] = result }
        return (model, try result.get())
    }
}

/// Plans `parity verify`'s cells (models × formats × variants, or one --file) and runs one cell.
public enum CellRunner {
    /// A planned cell, or what planning already decided about it (a model that cannot be read, a skipped format).
    public enum Planned: Sendable {
        case cell(VerificationCell)
        case decided(CellOutcome)
    }

    /// The cells `parity verify MODELS [--format …] [--variant …] [--file F]` runs, in its order. A variant no selected
    /// format takes is a usage error naming the valid forms (thrown); a model that cannot be read is a bad-input outcome.
    /// `readGoldens`: check each model's goldens while planning (`parity verify`: one error per model); a matrix leaves
    /// them to the cells that run (a cached cell needs none).
    public static func plan(models: [String], formats: [Variant.Format], variants: [String], file: String?,
                            settings: CellSettings, store: ReferenceStore, readGoldens: Bool = true) throws -> [Planned] {
        var planned: [Planned] = []
        // The image models' cells, parsed when the first image model needs them.
        var imageCells: [(support: FormatSupport, variant: Variant)]?
        for name in models {
            let model: ReferenceModel
            do { model = readGoldens ? try store.load(name).model : try store.model(name) } catch {
                planned.append(.decided(.badInput(CellError(model: name, format: "-", variant: "-", message: "\(error)"))))
                continue
            }
            let family: VerificationCell.Family = BertCells.isBert(model) ? .bert : model.config.llama != nil ? .llama : .image
            func cell(_ source: VerificationCell.Source) -> Planned {
                .cell(VerificationCell(model: name, modelName: model.name, family: family, source: source))
            }
            if let file {
                planned.append(cell(.file(path: file, format: formats.first)))
                continue
            }
            switch family {
            case .bert:
                for kind in formats.isEmpty ? Variant.Format.allCases : formats {
                    let cells = variants.isEmpty ? BertCells.defaultCells(kind) : variants
                    if cells.isEmpty {
                        let reason = "\(model.name) \(kind.rawValue): no BERT cells in this format yet"
                        planned.append(.decided(formats.isEmpty ? .skipped(reason + ": skipped")
                            : .badInput(CellError(model: model.name, format: kind.rawValue, variant: "-", message: reason))))
                        continue
                    }
                    planned += cells.map { cell(.convert(format: kind, variant: $0)) }
                }
            case .llama:
                for kind in formats.isEmpty ? Variant.Format.allCases : formats {
                    if variants.isEmpty {
                        planned += LlamaCells.defaultCells(kind).map { cell(.convert(format: kind, variant: $0)) }
                        continue
                    }
                    for text in variants {
                        do { planned.append(cell(.convert(format: kind, variant: try LlamaCells.parseCell(text, format: kind)))) } catch {
                            // Several formats asked for: a variant belongs to the format that takes it.
                            if formats.count == 1 || Variant.Format.allCases.allSatisfy({ (try? LlamaCells.parseCell(text, format: $0)) == nil }) {  // checked: which format takes it
                                planned.append(.decided(.badInput(CellError(model: model.name, format: kind.rawValue, variant: text, message: "\(error)"))))
                            }
                        }
                    }
                }
            case .image:
                if imageCells == nil { imageCells = try parseImageCells(formats: formats, variants: variants, settings: settings) }
                for (support, v) in imageCells ?? [] {
                    if let reason = support.unsupportedReason(for: model) {
                        // Asked for by name it is an error; as part of "every format" the cell is skipped, and said so.
                        planned.append(.decided(formats.isEmpty ? .skipped("\(model.name) \(support.name) \(v.label): skipped — \(reason)")
                            : .badInput(CellError(model: model.name, format: support.name, variant: v.label, message: reason))))
                        continue
                    }
                    planned.append(cell(.convert(format: support.format, variant: v.label)))
                }
            }
        }
        return planned
    }

    /// The image models' (format, variant) cells, each variant parsed once; a variant no selected format takes is a
    /// usage error naming the valid forms.
    public static func parseImageCells(formats: [Variant.Format], variants: [String], settings: CellSettings) throws -> [(support: FormatSupport, variant: Variant)] {
        let supports = (formats.isEmpty ? FormatRegistry.all : formats.map { f in FormatRegistry.all.first { $0.format == f }! }).map(settings.support)
        guard !variants.isEmpty else { return supports.flatMap { s in s.variants.map { (s, $0) } } }
        var out: [(FormatSupport, Variant)] = []
        for text in variants {
            var matched = false
            var reasons: [String] = []
            for support in supports {
                do {
                    let v = try support.parseVariant(text)
                    guard v.isUniform else { reasons.append("\(support.name) \(v.label): Parity does not convert to it (verify such a file with --file)"); continue }
                    out.append((v.legacyIm2col ? GGUFSupport(im2col: .f16) : support, v))
                    matched = true
                } catch {
                    reasons.append(error.description)
                }
            }
            guard matched else { throw ParityError.usage("unknown variant \"\(text)\" for \(supports.map(\.name).joined(separator: ", ")):\n  " + reasons.joined(separator: "\n  ")) }
        }
        return out
    }

    /// Runs one cell: converts (when asked) and verifies. Bad input of any kind becomes `.badInput`, naming the cell.
    public static func run(_ cell: VerificationCell, settings: CellSettings, store: ReferenceStore) -> CellOutcome {
        let model: ReferenceModel, golden: GoldenFile
        do { (model, golden) = try store.load(cell.model) } catch {
            return .badInput(CellError(model: cell.model, format: "-", variant: "-", message: "\(error)"))
        }
        switch cell.source {
        case let .file(path, format):
            do {
                switch cell.family {
                case .llama:
                    return .report(try LlamaCells.verify(path, format: try format ?? FormatRegistry.detect(path).format, model: model, golden: golden, settings: settings.llama))
                case .bert:
                    return .report(try BertCells.verify(path, format: try format ?? FormatRegistry.detect(path).format, model: model, golden: golden))
                case .image:
                    let support = settings.support(try format.map { f in FormatRegistry.all.first { $0.format == f }! } ?? FormatRegistry.detect(path))
                    return .report(try support.verify(path, model: model, golden: golden))
                }
            } catch {
                // The cell's format as given or (image models) as detected, for the summary line (the variant could not be read).
                let detected = cell.family == .image ? format?.rawValue ?? (try? FormatRegistry.detect(path))?.name ?? "-" : format?.rawValue ?? "-"  // checked: a label only
                return .badInput(CellError(model: model.name, format: detected, variant: "-", message: "\(error)"))
            }
        case let .convert(kind, variant):
            do {
                switch cell.family {
                case .llama:
                    let path = "\(settings.workDirectory)/\(model.name)-\(variant)" + (kind == .mlx ? "" : ".\(kind.rawValue)")
                    _ = try LlamaCells.convert(model, format: kind, cell: variant, to: path)
                    var report = try LlamaCells.verify(path, format: kind, model: model, golden: golden, settings: settings.llama)
                    if report.variant != variant { report.notes.insert("converted as \(variant); the file says \(report.variant)", at: 0) }
                    return .report(report)
                case .bert:
                    let path = "\(settings.workDirectory)/\(model.name)-\(variant).\(kind.rawValue)"
                    if kind == .mlx || kind == .gguf {
                        _ = kind == .mlx ? try MLXBertCells.convert(model, cell: variant, to: path) : try GGUFBertCells.convert(model, cell: variant, to: path)
                        return .report(try BertCells.verify(path, format: kind, model: model, golden: golden))
                    }
                    guard kind == .safetensors, FloatType(rawValue: variant) != nil else {
                        throw ParityError.usage("BERT variant \"\(variant)\" of \(kind.rawValue): give safetensors f32, f16 or bf16")
                    }
                    _ = try SafetensorsConverter.convert(model, dtype: variant, to: path)
                    return .report(try BertCells.verify(path, format: kind, model: model, golden: golden))
                case .image:
                    let base = settings.support(FormatRegistry.all.first { $0.format == kind }!)
                    let v = try base.parseVariant(variant)
                    let support = v.legacyIm2col ? GGUFSupport(im2col: .f16) : base
                    if let reason = support.unsupportedReason(for: model) { throw ParityError.usage(reason) }
                    let path = "\(settings.workDirectory)/\(model.name)-\(v.label).\(support.name)"
                    let notes = try support.convert(model, variant: v, to: path)
                    var report = try support.verify(path, model: model, golden: golden)
                    if report.variant != v.label {
                        // Say what was written: the report is labelled by the file's content, with the reasons.
                        report.notes.insert("converted as \(v.label), but the file holds \(report.variant): "
                            + notes.filter { $0.contains("falling back") || $0.contains("left unquantized") || $0.hasPrefix("note:") }.joined(separator: "; "), at: 0)
                    }
                    return .report(report)
                }
            } catch {
                return .badInput(CellError(model: model.name, format: kind.rawValue, variant: variant, message: "\(error)"))
            }
        }
    }
}
