import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// Everything verification needs to know about one weight format: how to convert to it, how to recognise a
/// file of it, and which runtime semantics run it. Converters and engines stay independent: a format's
/// converter writes with its own tables, its engine reads the way that format's runtime reads.
public protocol FormatSupport: Sendable {
    var name: String { get }
    /// Variants `verify` covers by default (dtypes, quantization types).
    var variants: [String] { get }
    /// Writes `model` in this format; returns one line per tensor describing what was done.
    func convert(_ model: ReferenceModel, variant: String, to path: String) throws -> [String]
    /// Whether the file looks like this format (by content, not by extension).
    func recognizes(_ path: String) -> Bool
    /// Opens a file of this format as the runtime would, and tells which variant it is.
    func open(_ path: String, for model: ReferenceModel) throws -> (engine: FormatEngine, variant: String)
    /// Explanations added to a report, e.g. a counterfactual run that isolates a runtime's own rounding.
    func explain(_ report: VerificationReport, path: String, model: ReferenceModel, golden: GoldenFile) throws -> [String]
}

extension FormatSupport {
    public func explain(_ report: VerificationReport, path: String, model: ReferenceModel, golden: GoldenFile) throws -> [String] { [] }

    /// Opens `path` as this format, runs it against `golden`, and adds the format's explanations.
    public func verify(_ path: String, model: ReferenceModel, golden: GoldenFile) throws -> VerificationReport {
        let (engine, variant) = try open(path, for: model)
        var report = try Comparator.verify(model: model, golden: golden, engine: engine, format: name, variant: variant, file: path)
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
    public var name: String { "safetensors" }
    public var variants: [String] { ["f32", "f16", "bf16"] }

    public func convert(_ model: ReferenceModel, variant: String, to path: String) throws -> [String] {
        try SafetensorsConverter.convert(model, dtype: variant, to: path)
    }

    public func recognizes(_ path: String) -> Bool {
        // An 8-byte little-endian length followed by '{', not marked as MLX's.
        guard let handle = FileHandle(forReadingAtPath: path), let head = try? handle.read(upToCount: 9), head.count == 9 else { return false }
        try? handle.close()
        guard head[8] == UInt8(ascii: "{") else { return false }
        return (try? SafetensorsFile(path: path))?.metadata.contains { $0.key == "format" && $0.value == "mlx" } != true
    }

    public func open(_ path: String, for model: ReferenceModel) throws -> (engine: FormatEngine, variant: String) {
        let file = try SafetensorsFile(path: path)
        let floatTypes = Set(file.entries.filter { $0.dtype.isFloatingPoint }.map(\.dtype))
        let variant = floatTypes.count == 1 ? SafetensorsConverter.dtypes.first { $0.value == floatTypes.first! }?.key ?? floatTypes.first!.rawValue.lowercased()
            : "mixed(" + floatTypes.map(\.rawValue).sorted().joined(separator: ",") + ")"
        return (PyTorchEngine(weights: file), variant)
    }
}

public struct GGUFSupport: FormatSupport {
    /// Which ggml's conv_2d to emulate; `.kernelType` is current ggml (0.15, run and recorded here).
    public let im2col: GGMLIm2colRule
    public init(im2col: GGMLIm2colRule = .kernelType) { self.im2col = im2col }
    public var name: String { "gguf" }
    /// The types that apply to the bundled models: every matrix row length there (784, 500, 3) is a multiple of
    /// no block size, so block types would all fall back to F16 (`parity convert --type q8_0` says so).
    public var variants: [String] { ["f32", "f16", "bf16"] }

    public func convert(_ model: ReferenceModel, variant: String, to path: String) throws -> [String] {
        try GGUFConverter.convert(model, typeName: variant, to: path)
    }

    public func recognizes(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path), let head = try? handle.read(upToCount: 4) else { return false }
        try? handle.close()
        return [UInt8](head) == GGUFFile.magic || [UInt8](head) == Array("FUGG".utf8)
    }

    /// The variant is the type of the weight matrices (biases stay F32 in every variant); an emulated older
    /// im2col is part of it ("f32+im2col-f16"), because it changes what the tolerances must allow.
    public func open(_ path: String, for model: ReferenceModel) throws -> (engine: FormatEngine, variant: String) {
        let file = try GGUFFile(path: path)
        let engine = try GGMLEngine(file: file, layers: model.config.layers, im2col: im2col)
        let matrixTypes = Set(file.tensors.filter { $0.ne.count >= 2 && !$0.name.hasSuffix(".bias") }.map(\.type))
        let variant = matrixTypes.count == 1 ? matrixTypes.first!.name : "mixed(" + matrixTypes.map(\.name).sorted().joined(separator: ",") + ")"
        return (engine, im2col == .kernelType ? variant : "\(variant)+im2col-\(im2col.rawValue)")
    }

    /// For a CNN, rerun the same file with the other conv_2d im2col rule: what older ggml (F16 im2col) would
    /// compute, or — when emulating that — how much of the gap to PyTorch the F16 im2col alone accounts for.
    public func explain(_ report: VerificationReport, path: String, model: ReferenceModel, golden: GoldenFile) throws -> [String] {
        guard model.config.layers.contains(where: { if case .conv2d = $0 { return true } else { return false } }),
              let last = report.layers.last, let lastMetrics = last.metrics else { return [] }
        let other: GGMLIm2colRule = im2col == .kernelType ? .f16 : .kernelType
        let engine = try GGMLEngine(file: GGUFFile(path: path), layers: model.config.layers, im2col: other)
        let alt = try Comparator.verify(model: model, golden: golden, engine: engine, format: name, variant: report.variant, file: path, checkWeights: false)
        guard let altMetrics = alt.layers.last?.metrics else { return [] }
        let here = "max abs \(formatNumber(lastMetrics.maxAbs)) (rel L2 \(formatNumber(lastMetrics.relL2)))"
        let there = "max abs \(formatNumber(altMetrics.maxAbs)) (rel L2 \(formatNumber(altMetrics.relL2)))"
        if im2col == .kernelType {
            return ["ggml 0.15 convolves in the kernel's type: \(last.name) is at \(here) against PyTorch. ggml up to d99724f built "
                + "conv_2d's im2col in F16, which on this file gives \(there): that gap is ggml's rounding, not the conversion"]
        }
        return ["the F16 im2col of older ggml accounts for the gap to PyTorch: \(last.name) is at \(here) with it and \(there) "
            + "when the same file is convolved in the kernel's type (ggml 0.15)"]
    }
}

/// MLX: directories (config.json + safetensors), MLX safetensors files, npz. Variants are the weight dtypes plus
/// the quantization modes that apply to the bundled models: only nvfp4's group of 16 divides their Linear
/// widths (784, 500 are multiples of neither 32 nor 64), so affine/mxfp4/mxfp8 would quantize nothing.
public struct MLXSupport: FormatSupport {
    public init() {}
    public var name: String { "mlx" }
    public var variants: [String] { ["f32", "f16", "bf16", "nvfp4"] }

    /// A variant name → dtype and quantization: "f16", "nvfp4", "affine-b4-g64", "f16+affine-b8-g32".
    public static func parse(variant: String) throws(ParityError) -> (dtype: String, quantization: MLXQuantParameters?) {
        var dtype = "f32", quantText = variant
        if let plus = variant.firstIndex(of: "+") {
            dtype = String(variant[..<plus]); quantText = String(variant[variant.index(after: plus)...])
        } else if MLXConverter.dtypes[variant] != nil {
            return (variant, nil)
        }
        let parts = quantText.split(separator: "-").map(String.init)
        guard let mode = parts.first else { throw .usage("empty MLX variant") }
        let defaults = MLXQuantization.defaults(mode: mode)
        var bits = defaults?.bits, group = defaults?.groupSize
        for part in parts.dropFirst() {
            if part.hasPrefix("b"), let b = Int(part.dropFirst()) { bits = b } else if part.hasPrefix("g"), let g = Int(part.dropFirst()) { group = g } else {
                throw .usage("MLX variant \"\(variant)\": expected MODE[-bBITS][-gGROUP], e.g. affine-b4-g64")
            }
        }
        guard let bits, let group else { throw .usage("unknown MLX quantization mode \"\(mode)\" in variant \"\(variant)\"") }
        return (dtype, MLXQuantParameters(mode: mode, groupSize: group, bits: bits))
    }

    public func convert(_ model: ReferenceModel, variant: String, to path: String) throws -> [String] {
        let (dtype, quantization) = try MLXSupport.parse(variant: variant)
        return try MLXConverter.convert(model, dtype: dtype, quantization: quantization, to: path)
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

    public func open(_ path: String, for model: ReferenceModel) throws -> (engine: FormatEngine, variant: String) {
        let files = try MLXModelFiles.load(path: path)
        let floatTypes = Set(files.tensors.filter { $0.name.hasSuffix(".weight") && $0.dtype.isFloatingPoint }.map(\.dtype))
        let dtype = floatTypes.count == 1 ? MLXConverter.dtypes.first { $0.value == floatTypes.first! }?.key ?? "mixed" : floatTypes.isEmpty ? "f32" : "mixed"
        var variant = dtype
        let quantizedModules = files.tensors.filter { $0.name.hasSuffix(".scales") }.map { String($0.name.dropLast(".scales".count)) }
        if let first = quantizedModules.first, let q = try files.quantization(forModule: first) {
            let defaults = MLXQuantization.defaults(mode: q.mode)
            let suffix = defaults.map { $0.bits == q.bits && $0.groupSize == q.groupSize } == true ? q.mode : "\(q.mode)-b\(q.bits)-g\(q.groupSize)"
            variant = dtype == "f32" ? suffix : "\(dtype)+\(suffix)"
        }
        return (MLXEngine(files: files, layers: model.config.layers), variant)
    }
}
