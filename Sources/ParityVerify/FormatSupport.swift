import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// Everything verification needs to know about one weight format: how to convert to it, how to recognise a
/// file of it, and which runtime semantics run it. Converters and engines stay independent: a format's
/// converter writes with its own tables, its engine reads the way that format's runtime reads.
public protocol FormatSupport: Sendable {
    var format: Variant.Format { get }
    /// Variants `verify` covers by default (dtypes, quantization types).
    var variants: [Variant] { get }
    /// Writes `model` in this format; returns one line per tensor describing what was stored.
    func convert(_ model: ReferenceModel, variant: Variant, to path: String) throws -> [String]
    /// Whether the file looks like this format (by content, not by extension).
    func recognizes(_ path: String) -> Bool
    /// The variant a file of this format is, from what it contains (not from its name or how it was asked for).
    func variant(ofFile path: String) throws -> Variant
    /// Opens a file of this format as the runtime would, and tells which variant it is.
    func open(_ path: String, for model: ReferenceModel) throws -> (engine: FormatEngine, variant: Variant)
    /// Opens a file of this format as the runtime would, for any model graph (a transformer's too), and tells
    /// which variant it is. Defaults to `open` (the image-layer engines are graph engines).
    func openGraph(_ path: String, for model: ReferenceModel) throws -> (engine: GraphEngine, variant: Variant)
    /// Why this format cannot verify `model` yet (nil: it can). `verify` without `--format` skips such cells
    /// with a note; asked for explicitly, the cell is an error with this reason.
    func unsupportedReason(for model: ReferenceModel) -> String?
    /// Explanations added to a report, e.g. a counterfactual run that isolates a runtime's own rounding.
    func explain(_ report: VerificationReport, path: String, model: ReferenceModel, golden: GoldenFile) throws -> [String]
}

extension FormatSupport {
    public var name: String { format.rawValue }

    /// Parses a variant label of this format (a usage error names the valid forms).
    public func parseVariant(_ text: String) throws(ParityError) -> Variant { try Variant.parse(text, format: format) }

    /// `convert` with a variant label.
    public func convert(_ model: ReferenceModel, variant text: String, to path: String) throws -> [String] {
        try convert(model, variant: parseVariant(text), to: path)
    }

    public func explain(_ report: VerificationReport, path: String, model: ReferenceModel, golden: GoldenFile) throws -> [String] { [] }

    /// Transformers (a graph from a Hugging Face config) need the format's transformer engine; the image-layer
    /// engines run only the sequential models.
    public func unsupportedReason(for model: ReferenceModel) -> String? {
        model.config.isTransformer ? "\(name): Parity's \(name) engine does not run \(model.config.architecture) graphs yet (safetensors does)" : nil
    }

    public func openGraph(_ path: String, for model: ReferenceModel) throws -> (engine: GraphEngine, variant: Variant) {
        let (engine, variant) = try open(path, for: model)
        return (engine, variant)
    }

    /// Opens `path` as this format, runs it against `golden`, and adds the format's explanations.
    public func verify(_ path: String, model: ReferenceModel, golden: GoldenFile) throws -> VerificationReport {
        let (engine, variant) = try openGraph(path, for: model)
        var report = try Comparator.verify(model: model, golden: golden, engine: engine, format: name, variant: variant.label, file: path)
        report.notes += try explain(report, path: path, model: model, golden: golden)
        return report
    }
}

public enum FormatRegistry {
    public static let all: [FormatSupport] = [SafetensorsSupport(), GGUFSupport(), MLXSupport()]

    public static func named(_ name: String) throws(ParityError) -> FormatSupport {
        guard let format = all.first(where: { $0.name == name }) else {
            throw .usage("unknown format \"\(name)\"; known: \(all.map(\.name).joined(separator: ", "))")
        }
        return format
    }

    public static func detect(_ path: String) throws(ParityError) -> FormatSupport {
        guard FileManager.default.fileExists(atPath: path) else { throw .notFound(path: path, what: "converted file") }
        guard let format = all.first(where: { $0.recognizes(path) }) else {
            throw .unsupported(file: path, reason: "not a format Parity reads (\(all.map(\.name).joined(separator: ", ")))")
        }
        return format
    }
}

public struct SafetensorsSupport: FormatSupport {
    public init() {}

    /// The PyTorch engine runs the Llama graph on a Hugging Face checkpoint's names (PyTorchEngine+Graph.swift).
    public func unsupportedReason(for model: ReferenceModel) -> String? {
        model.config.isTransformer && model.config.llama == nil ? "safetensors: no PyTorch ops for \(model.config.architecture) graphs" : nil
    }
    public var format: Variant.Format { .safetensors }
    public var variants: [Variant] { FloatType.allCases.map { .safetensors([$0]) } }

    public func convert(_ model: ReferenceModel, variant: Variant, to path: String) throws -> [String] {
        guard variant.format == .safetensors, variant.isUniform else { throw ParityError.usage("cannot convert to safetensors \(variant.label): give one of \(Variant.forms(.safetensors))") }
        return try SafetensorsConverter.convert(model, dtype: variant.floats[0].rawValue, to: path)
    }

    public func recognizes(_ path: String) -> Bool {
        // An 8-byte little-endian length followed by '{', not marked as MLX's.
        guard let handle = FileHandle(forReadingAtPath: path), let head = try? handle.read(upToCount: 9), head.count == 9 else { return false }
        try? handle.close()
        guard head[8] == UInt8(ascii: "{") else { return false }
        return (try? SafetensorsFile(path: path))?.metadata.contains { $0.key == "format" && $0.value == "mlx" } != true
    }

    /// The float types of the tensors (F8, F64, … included: read, verified, reported unjudged).
    public func variant(ofFile path: String) throws -> Variant {
        try Self.variant(of: SafetensorsFile(path: path))
    }

    static func variant(of file: SafetensorsFile) throws -> Variant {
        let dtypes = Set(file.entries.filter { $0.dtype.isFloatingPoint }.map(\.dtype))
        let floats = dtypes.compactMap(FloatType.init), other = dtypes.filter { FloatType($0) == nil }
        return .safetensors(floats.isEmpty && other.isEmpty ? [.f32] : floats, other: Array(other))
    }

    public func open(_ path: String, for model: ReferenceModel) throws -> (engine: FormatEngine, variant: Variant) {
        let file = try SafetensorsFile(path: path)
        return (try PyTorchEngine(weights: file, model: model.config), try Self.variant(of: file))
    }
}

public struct GGUFSupport: FormatSupport {
    /// Which ggml's conv_2d to emulate; `.kernelType` is current ggml (0.15, run and recorded here).
    public let im2col: GGMLIm2colRule
    public init(im2col: GGMLIm2colRule = .kernelType) { self.im2col = im2col }
    public var format: Variant.Format { .gguf }
    /// The types that apply to the bundled models: every matrix row length there (784, 500, 3) is a multiple of
    /// no block size, so block types would all fall back to F16 (`parity convert --type q8_0` says so).
    public var variants: [Variant] { [GGMLType.f32, .f16, .bf16].map { .gguf([$0], legacyIm2col: im2col == .f16) } }

    public func convert(_ model: ReferenceModel, variant: Variant, to path: String) throws -> [String] {
        guard variant.format == .gguf, variant.isUniform, let choice = GGUFTypeChoice(rawValue: variant.ggmlTypes[0].name) else {
            throw ParityError.usage("cannot convert to gguf \(variant.label): give one of \(GGUFTypeChoice.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return try GGUFConverter.convert(model, type: choice.type, to: path)
    }

    public func recognizes(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path), let head = try? handle.read(upToCount: 4) else { return false }
        try? handle.close()
        return [UInt8](head) == GGUFFile.magic || [UInt8](head) == Array("FUGG".utf8)
    }

    /// The variant is the type of the weight matrices (biases stay F32 in every variant); an emulated older
    /// im2col is part of it ("f32+im2col-f16"), because it changes what the tolerances must allow.
    public func variant(ofFile path: String) throws -> Variant { variant(of: try GGUFFile(path: path)) }

    func variant(of file: GGUFFile) -> Variant {
        .gguf(GGUFConverter.matrixTypes(of: file), legacyIm2col: im2col == .f16)
    }

    public func open(_ path: String, for model: ReferenceModel) throws -> (engine: FormatEngine, variant: Variant) {
        let file = try GGUFFile(path: path)
        let engine = try GGMLEngine(file: file, layers: model.config.layers, im2col: im2col, model: model.config)
        return (engine, variant(of: file))
    }

    /// For a CNN, reruns the file under the other conv_2d im2col rule (FormatSupport+GGUFExplain.swift).
    public func explain(_ report: VerificationReport, path: String, model: ReferenceModel, golden: GoldenFile) throws -> [String] {
        try explainIm2col(report, path: path, model: model, golden: golden)
    }
}

/// MLX: directories (config.json + safetensors), MLX safetensors files, npz. Default variants are the weight dtypes plus
/// the quantization modes that apply to the bundled models: only nvfp4's group of 16 divides their Linear
/// widths (784, 500 are multiples of neither 32 nor 64), so affine/mxfp4/mxfp8 would quantize nothing.
public struct MLXSupport: FormatSupport {
    public init() {}
    public var format: Variant.Format { .mlx }
    public var variants: [Variant] { FloatType.allCases.map { .mlx([$0]) } + [.mlx([.f32], [try! MLXQuantSpec(mode: .nvfp4)])] }

    public func convert(_ model: ReferenceModel, variant: Variant, to path: String) throws -> [String] {
        guard variant.format == .mlx, variant.isUniform else { throw ParityError.usage("cannot convert to mlx \(variant.label): give one of \(Variant.forms(.mlx))") }
        return try MLXConverter.convert(model, dtype: variant.floats[0].rawValue, quantization: variant.quantizations.first?.parameters, to: path)
    }

    public func recognizes(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return false }
        if isDir.boolValue { return FileManager.default.fileExists(atPath: path + "/config.json") }
        // A zip (npz) or a safetensors file whose header says it came from MLX.
        guard let handle = FileHandle(forReadingAtPath: path), let head = try? handle.read(upToCount: 4) else { return false }
        try? handle.close()
        if [UInt8](head.prefix(2)) == [0x50, 0x4B] { return true }
        guard let st = try? SafetensorsFile(path: path) else { return false }
        return st.metadata.contains { $0.key == "format" && $0.value == "mlx" }
    }

    public func variant(ofFile path: String) throws -> Variant { try Self.variant(of: MLXModelFiles.load(path: path)) }

    /// The float type of the unquantized weights (of any float tensor when every module is quantized) and the
    /// quantization of each quantized module, as mlx-lm's loader decides it per module.
    static func variant(of files: MLXModelFiles) throws -> Variant {
        let quantizedModules = files.tensors.filter { $0.name.hasSuffix(".scales") }.map { String($0.name.dropLast(".scales".count)) }
        var quantizations: [MLXQuantSpec] = []
        for module in quantizedModules {
            if let q = try files.quantization(forModule: module) { quantizations.append(try MLXQuantSpec(q)) }
        }
        let packed = Set(quantizedModules.flatMap { ["\($0).weight", "\($0).scales", "\($0).biases"] })
        let floatTensors = files.tensors.filter { $0.dtype.isFloatingPoint && !packed.contains($0.name) }
        let weights = floatTensors.filter { $0.name.hasSuffix(".weight") }
        let dtypes = Set((weights.isEmpty ? floatTensors : weights).map(\.dtype))
        let floats = dtypes.compactMap(FloatType.init), other = dtypes.filter { FloatType($0) == nil }
        return .mlx(floats.isEmpty && other.isEmpty ? [.f32] : floats, quantizations, other: Array(other))
    }

    public func open(_ path: String, for model: ReferenceModel) throws -> (engine: FormatEngine, variant: Variant) {
        let engine = try MLXEngine(files: MLXModelFiles.load(path: path), layers: model.config.layers, model: model.config)
        return (engine, try Self.variant(of: engine.files))
    }

    /// What reading the files decided that the runtime does not print: quantization read from the shapes, and
    /// where model.safetensors.index.json disagrees with the files mlx-lm loads.
    public func explain(_ report: VerificationReport, path: String, model: ReferenceModel, golden: GoldenFile) throws -> [String] {
        try MLXEngine(files: MLXModelFiles.load(path: path), layers: model.config.layers, model: model.config).files.notes
    }

    /// The variant of a file written for `model` (what `convert` wrote): quantization read from the shapes against its layers.
    public func variant(ofFile path: String, model: ReferenceModel) throws -> Variant {
        try variant(ofFile: path, linear: model.config.layers.compactMap { layer -> (name: String, inFeatures: Int)? in
            if case let .linear(name, inF, _, _) = layer { return (name, inF) } else { return nil }
        })
    }

    /// The variant of weights whose quantized modules have the given in_features (e.g. what `quantize` just wrote):
    /// the quantization of each is read from the shapes as for a model with those layers.
    public func variant(ofFile path: String, linear modules: [(name: String, inFeatures: Int)]) throws -> Variant {
        try Self.variant(of: MLXModelFiles.load(path: path).resolvingQuantization(linear: modules))
    }
}
