import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// An unquantized float storage type of weights.
public enum FloatType: String, CaseIterable, Sendable, Comparable {
    case f32, f16, bf16

    public var dtype: DType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        }
    }

    public init?(_ dtype: DType) {
        guard let match = FloatType.allCases.first(where: { $0.dtype == dtype }) else { return nil }
        self = match
    }

    public static func < (a: FloatType, b: FloatType) -> Bool { a.rawValue < b.rawValue }
}

/// One MLX quantization (mode, bits, group size) as `mx.quantize` accepts it.
public struct MLXQuantSpec: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let mode: MLXQuantMode
    public let bits: Int
    public let groupSize: Int

    /// Checks the combination as `mx.quantize` does (usage error otherwise).
    public init(mode: MLXQuantMode, bits: Int? = nil, groupSize: Int? = nil) throws(ParityError) {
        let resolved = try mode.resolve(groupSize: groupSize, bits: bits)
        self.mode = mode
        self.bits = resolved.bits
        self.groupSize = resolved.groupSize
    }

    /// From config.json's entry (mode string, bits, group size), validated.
    public init(_ parameters: MLXQuantParameters) throws(ParityError) {
        try self.init(mode: MLXQuantMode.parse(parameters.mode), bits: parameters.bits, groupSize: parameters.groupSize)
    }

    public var parameters: MLXQuantParameters { MLXQuantParameters(mode: mode.rawValue, groupSize: groupSize, bits: bits) }

    /// Affine always names its bits and group ("affine-b4-g64"); the floating-point modes have exactly one
    /// (bits, group) each, so their mode alone is the whole label ("nvfp4").
    public var label: String { mode == .affine ? "affine-b\(bits)-g\(groupSize)" : mode.rawValue }
    public var description: String { label }

    /// "affine", "affine-b8", "affine-b8-g32", "nvfp4", "nvfp4-b4-g16" (bits and group default as in mx.quantize).
    public static func parse(_ text: String) throws(ParityError) -> MLXQuantSpec {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard let modeText = parts.first, let mode = MLXQuantMode(rawValue: modeText) else {
            throw .usage("unknown MLX quantization \"\(text)\"; modes: \(MLXQuantMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var bits: Int?, group: Int?
        for part in parts.dropFirst() {
            if part.hasPrefix("b"), bits == nil, let b = Int(part.dropFirst()) { bits = b } else if part.hasPrefix("g"), group == nil, let g = Int(part.dropFirst()) { group = g } else {
                throw .usage("MLX quantization \"\(text)\": expected MODE[-bBITS][-gGROUP], e.g. affine-b4-g64")
            }
        }
        return try MLXQuantSpec(mode: mode, bits: bits, groupSize: group)
    }

    public static func < (a: MLXQuantSpec, b: MLXQuantSpec) -> Bool { a.label < b.label }
}

/// What a file stores for one layer's weight. Tolerances follow this, not the name a file was given.
public enum WeightStorage: Hashable, Sendable, CustomStringConvertible {
    /// Unquantized floats of this dtype (safetensors, MLX).
    case float(DType)
    /// A ggml tensor type (GGUF), float or block-quantized.
    case ggml(GGMLType)
    /// An MLX-quantized module (`nn.QuantizedLinear`).
    case mlxQuantized(MLXQuantSpec)

    public var description: String {
        switch self {
        case let .float(dtype): return FloatType(dtype)?.rawValue ?? dtype.rawValue.lowercased()
        case let .ggml(type): return type.name
        case let .mlxQuantized(q): return q.label
        }
    }
}

/// A converted file's variant, parsed once from a label (`--variant`, a report) or computed from what a file
/// contains. Its `label` is canonical: `Variant.parse(v.label, format: v.format) == v`.
///
/// - safetensors: the float type of the weights: `f32`, `f16`, `bf16`; a file mixing them: `mixed(bf16,f32)`.
/// - gguf: the ggml type of the weight matrices (`f16`, `q8_0`, `q4_K`, …), or `mixed(f16,q8_0)` when they differ
///   (a matrix whose rows fit no block stays F16); `+im2col-f16` when older ggml's F16 im2col is emulated.
/// - mlx: the float type of the unquantized weights, then `+` and the quantization of the quantized modules:
///   `f16`, `f16+affine-b4-g64`, `nvfp4` (f32 is left out before a quantization), `f16+mixed(affine-b4-g64,affine-b8-g32)`.
public struct Variant: Hashable, Sendable, CustomStringConvertible {
    public enum Format: String, CaseIterable, Sendable {
        case safetensors, gguf, mlx
    }

    public let format: Format
    /// Float types of unquantized weights (sorted; more than one means a mix). Empty for GGUF.
    public let floats: [FloatType]
    /// Other float dtypes a file may hold (F8_E4M3, F64, …): Parity reads them but converts to none of them and
    /// derives no tolerance for them, so such a file is verified and reported unjudged.
    public let otherFloats: [DType]
    /// GGUF: ggml types of the weight matrices (sorted by name; more than one means a mix).
    public let ggmlTypes: [GGMLType]
    /// MLX: quantizations of the quantized modules (sorted; empty = nothing quantized).
    public let quantizations: [MLXQuantSpec]
    /// GGUF: emulate older ggml's F16 im2col for conv_2d.
    public let legacyIm2col: Bool

    init(format: Format, floats: [FloatType] = [], otherFloats: [DType] = [], ggmlTypes: [GGMLType] = [], quantizations: [MLXQuantSpec] = [],
         legacyIm2col: Bool = false) {
        self.format = format
        self.floats = Array(Set(floats)).sorted()
        self.otherFloats = Array(Set(otherFloats)).sorted { $0.rawValue < $1.rawValue }
        self.ggmlTypes = Array(Set(ggmlTypes)).sorted { $0.name < $1.name }
        self.quantizations = Array(Set(quantizations)).sorted()
        self.legacyIm2col = legacyIm2col
    }

    public static func safetensors(_ floats: [FloatType], other: [DType] = []) -> Variant { Variant(format: .safetensors, floats: floats, otherFloats: other) }
    public static func gguf(_ types: [GGMLType], legacyIm2col: Bool = false) -> Variant { Variant(format: .gguf, ggmlTypes: types, legacyIm2col: legacyIm2col) }
    public static func mlx(_ floats: [FloatType], _ quantizations: [MLXQuantSpec] = [], other: [DType] = []) -> Variant {
        Variant(format: .mlx, floats: floats, otherFloats: other, quantizations: quantizations)
    }

    /// One float type, one ggml type, at most one quantization: what a converter can be asked to write.
    public var isUniform: Bool {
        switch format {
        case .safetensors: return floats.count == 1 && otherFloats.isEmpty
        case .gguf: return ggmlTypes.count == 1
        case .mlx: return floats.count == 1 && otherFloats.isEmpty && quantizations.count <= 1
        }
    }

    public var label: String {
        func list(_ items: [String]) -> String { items.count == 1 ? items[0] : "mixed(" + items.joined(separator: ",") + ")" }
        let floatNames = (floats.map(\.rawValue) + otherFloats.map { $0.rawValue.lowercased() }).sorted()
        switch format {
        case .safetensors:
            return list(floatNames)
        case .gguf:
            return list(ggmlTypes.map(\.name)) + (legacyIm2col ? "+im2col-f16" : "")
        case .mlx:
            let dtype = list(floatNames)
            guard !quantizations.isEmpty else { return dtype }
            let quant = list(quantizations.map(\.label))
            return floats == [.f32] ? quant : dtype + "+" + quant
        }
    }

    public var description: String { label }

    /// The variant forms a format takes, for usage messages.
    public static func forms(_ format: Format) -> String {
        switch format {
        case .safetensors: return "f32, f16, bf16"
        case .gguf:
            return GGUFTypeChoice.allCases.map(\.rawValue).joined(separator: ", ") + " (each optionally +im2col-f16)"
        case .mlx:
            return "f32, f16, bf16, optionally +MODE[-bBITS][-gGROUP] (affine-b4-g64, affine-b8-g32, mxfp4, mxfp8, nvfp4; "
                + "affine bits \(MLXQuantMode.affine.allowedBits.map(String.init).joined(separator: ", ")), groups 32, 64, 128), or a quantization alone (f32 weights)"
        }
    }

    /// Parses a variant label of `format`; a usage error names the valid forms.
    public static func parse(_ text: String, format: Format) throws(ParityError) -> Variant {
        func bad(_ why: String) -> ParityError { .usage("\(format.rawValue) variant \"\(text)\": \(why); valid forms: \(forms(format))") }
        func items(_ s: String) -> [String]? {
            guard s.hasPrefix("mixed("), s.hasSuffix(")") else { return nil }
            let inner = s.dropFirst("mixed(".count).dropLast()
            return inner.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        }
        func floats(_ s: String) throws(ParityError) -> (known: [FloatType], other: [DType]) {
            let names = items(s) ?? [s]
            var known: [FloatType] = [], other: [DType] = []
            for n in names {
                if let f = FloatType(rawValue: n) { known.append(f) } else if let d = DType(rawValue: n.uppercased()), d.isFloatingPoint, n == n.lowercased() {
                    other.append(d)
                } else {
                    throw bad("\"\(n)\" is not a float type")
                }
            }
            if Set(names).count != names.count { throw bad("a type repeats") }
            return (known, other)
        }
        func isFloatList(_ s: String) -> Bool { (try? floats(s)) != nil }
        switch format {
        case .safetensors:
            let f = try floats(text)
            return .safetensors(f.known, other: f.other)
        case .gguf:
            var body = text, legacy = false
            if body.hasSuffix("+im2col-f16") { body = String(body.dropLast("+im2col-f16".count)); legacy = true }
            var types: [GGMLType] = []
            for n in items(body) ?? [body] {
                guard let t = GGMLType.named(n), t.isSupported, !t.isActivationOnly else { throw bad("\"\(n)\" is not a ggml weight type Parity reads") }
                types.append(t)
            }
            return .gguf(types, legacyIm2col: legacy)
        case .mlx:
            let plus = text.firstIndex(of: "+")
            let head = plus.map { String(text[..<$0]) } ?? text
            let tail = plus.map { String(text[text.index(after: $0)...]) }
            var dtype: (known: [FloatType], other: [DType]) = ([.f32], []), quantText: String?
            if let tail {
                dtype = try floats(head); quantText = tail
            } else if isFloatList(head) {
                dtype = try floats(head)
            } else {
                quantText = head
            }
            var quants: [MLXQuantSpec] = []
            if let quantText {
                for q in items(quantText) ?? [quantText] {
                    do { quants.append(try MLXQuantSpec.parse(q)) } catch { throw bad(error.description) }
                }
            }
            return .mlx(dtype.known, quants, other: dtype.other)
        }
    }
}

/// The ggml types `parity convert --type` / `parity quantize --type` write.
public enum GGUFTypeChoice: String, CaseIterable, Sendable {
    case f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K, mxfp4
    public var type: GGMLType { GGMLType.named(rawValue)! }
}

/// What each layer of an opened file stores, read from the engine's own view of the file (the runtime's).
public struct StoredWeights: Sendable {
    /// By reference layer name; only layers with weights.
    public let byLayer: [String: WeightStorage]
    /// GGUF: conv_2d builds its im2col in F16 (older ggml).
    public let legacyIm2col: Bool

    /// Reads each parametric layer's weight storage from an engine Parity knows; nil for any other engine.
    public static func of(_ engine: FormatEngine, layers: [LayerSpec]) -> StoredWeights? {
        var out: [String: WeightStorage] = [:]
        if let ggml = engine as? GGMLEngine {
            for layer in layers where layer.hasParameters {
                if let type = ggml.weightType(of: layer) { out[layer.name] = .ggml(type) }
            }
            return StoredWeights(byLayer: out, legacyIm2col: ggml.im2col == .f16)
        }
        if let mlx = engine as? MLXEngine {
            for layer in layers where layer.hasParameters {
                if let parameters = try? mlx.files.quantization(forModule: layer.name), let spec = try? MLXQuantSpec(parameters) {
                    out[layer.name] = .mlxQuantized(spec)
                } else if let weight = mlx.files.tensor(layer.name + ".weight") {
                    out[layer.name] = .float(weight.dtype)
                }
            }
            return StoredWeights(byLayer: out, legacyIm2col: false)
        }
        if let torch = engine as? PyTorchEngine {
            for layer in layers where layer.hasParameters {
                if let entry = torch.weights.entry(named: layer.name + ".weight") { out[layer.name] = .float(entry.dtype) }
            }
            return StoredWeights(byLayer: out, legacyIm2col: false)
        }
        return nil
    }

    /// Every parametric layer stored as the variant says (for engines Parity cannot look into).
    public static func uniform(_ variant: Variant, layers: [LayerSpec]) -> StoredWeights? {
        guard variant.isUniform else { return nil }
        let storage: WeightStorage
        switch variant.format {
        case .safetensors: storage = .float(variant.floats[0].dtype)
        case .gguf: storage = .ggml(variant.ggmlTypes[0])
        case .mlx: storage = variant.quantizations.first.map { .mlxQuantized($0) } ?? .float(variant.floats[0].dtype)
        }
        var out: [String: WeightStorage] = [:]
        for layer in layers where layer.hasParameters {
            // MLX quantizes Linear modules only (nn.quantize's default class predicate); convolutions keep floats.
            if case .mlxQuantized = storage, case .conv2d = layer { out[layer.name] = .float(variant.floats[0].dtype) } else { out[layer.name] = storage }
        }
        return StoredWeights(byLayer: out, legacyIm2col: variant.legacyIm2col)
    }
}
