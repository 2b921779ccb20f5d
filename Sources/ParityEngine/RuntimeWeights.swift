import ParityCore
import ParityFormats
import ParityModels

/// How a runtime's stored tensor maps onto the reference (PyTorch) parameter: the stored row-major values are
/// viewed with `view`, their axes permuted by `permutation` (numpy's `transpose`), and the result is the
/// reference tensor in row-major order. Built from each engine's own reading (names, `ne`, mlx.nn layouts,
/// ggml's permute before the dense layer), never from a converter's table.
public struct StoredLayout: Sendable, Equatable {
    public let view: [Int]
    public let permutation: [Int]
    /// What the runtime does, in words ("ggml ne [KW, KH, IC, OC] = [OC, IC, KH, KW] row-major").
    public let description: String

    public init(view: [Int], permutation: [Int], description: String) {
        self.view = view
        self.permutation = permutation
        self.description = description
    }

    public static func identity(_ shape: [Int], _ description: String) -> StoredLayout {
        StoredLayout(view: shape, permutation: Array(shape.indices), description: description)
    }

    public var isIdentity: Bool { permutation == Array(permutation.indices) }

    /// For each stored flat index, the reference flat index holding the value the runtime uses there; nil when
    /// the layout is the identity (no table needed).
    public func referenceIndexOfStored() -> [Int]? {
        guard !isIdentity else { return nil }
        let rank = view.count
        var viewStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { viewStrides[i] = viewStrides[i + 1] * view[i + 1] }
        // Reference axes are the view's axes in `permutation` order: reference axis k is view axis permutation[k].
        let refShape = permutation.map { view[$0] }
        var refStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { refStrides[i] = refStrides[i + 1] * refShape[i + 1] }
        // stride, in the reference, of each view axis
        var strideOfViewAxis = [Int](repeating: 0, count: rank)
        for (k, axis) in permutation.enumerated() { strideOfViewAxis[axis] = refStrides[k] }
        let count = view.reduce(1, *)
        var out = [Int](repeating: 0, count: count)
        var index = [Int](repeating: 0, count: rank)
        for s in 0..<count {
            var r = 0
            for d in 0..<rank { r += index[d] * strideOfViewAxis[d] }
            out[s] = r
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < view[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return out
    }
}

/// Where a runtime finds a parameter's bytes.
public enum StoredWeightSource: @unchecked Sendable {
    case gguf(GGUFFile, GGUFTensorInfo)
    case safetensors(SafetensorsFile, SafetensorsEntry)
    /// An unquantized MLX array.
    case mlxArray(RawTensor)
    /// An MLX quantized module's `weight` / `scales` / `biases`, read with the module's quantization parameters.
    case mlxQuantized(weight: RawTensor, scales: RawTensor, biases: RawTensor?, parameters: MLXQuantParameters)
}

/// One reference parameter as a runtime reads it from a converted file.
public struct RuntimeWeight: @unchecked Sendable {
    public let layer: String
    /// The PyTorch parameter name (`fc1.weight`).
    public let referenceName: String
    public let referenceShape: [Int]
    /// The name the runtime looks up (`conv1.kernel` in ggml's mnist-cnn).
    public let fileName: String
    /// The row-major shape the runtime requires of the stored tensor (dequantized, for packed types).
    public let requiredShape: [Int]
    public let layout: StoredLayout
    /// nil when the file lacks the tensor.
    public let source: StoredWeightSource?
    /// Why the runtime would refuse this tensor (wrong shape, type it cannot read), nil when it reads it.
    public let refusal: String?
    /// The names of every file tensor this parameter consumes (an MLX quantized module: weight, scales, biases).
    public let consumedNames: [String]

    public init(layer: String, referenceName: String, referenceShape: [Int], fileName: String, requiredShape: [Int],
                layout: StoredLayout, source: StoredWeightSource?, refusal: String?, consumedNames: [String]) {
        self.layer = layer
        self.referenceName = referenceName
        self.referenceShape = referenceShape
        self.fileName = fileName
        self.requiredShape = requiredShape
        self.layout = layout
        self.source = source
        self.refusal = refusal
        self.consumedNames = consumedNames
    }
}

/// An engine that can say, for every reference parameter, which stored tensor it reads and how it lays it out,
/// so that weights can be compared with the reference before any activation.
public protocol RuntimeWeightReading {
    /// Every parameter of `layers`, read as the runtime reads it.
    func runtimeWeights(for layers: [LayerSpec]) -> [RuntimeWeight]
    /// Names of every tensor in the file (to find the ones the runtime never reads).
    var storedTensorNames: [String] { get }
    /// Whether the runtime refuses a file with tensors it does not read (`load_state_dict(strict=True)`,
    /// `load_weights(strict=True)`) or ignores them (ggml's loaders look tensors up by name).
    var refusesUnreadTensors: Bool { get }
}

extension PyTorchEngine: RuntimeWeightReading {
    /// `load_state_dict(strict=True)`: the same names and shapes as the module, no layout change.
    public func runtimeWeights(for layers: [LayerSpec]) -> [RuntimeWeight] {
        layers.flatMap { layer in
            layer.parameters.map { name, shape in
                let entry = weights.entry(named: name)
                var refusal: String?
                if let entry {
                    if entry.shape != shape { refusal = "shape \(entry.shape); the module expects \(shape)" } else if !entry.dtype.isFloatingPoint {
                        refusal = "dtype \(entry.dtype.rawValue) is not a floating-point type"
                    }
                }
                return RuntimeWeight(layer: layer.name, referenceName: name, referenceShape: shape, fileName: name, requiredShape: shape,
                                     layout: .identity(shape, "state_dict: same name, same shape, same order"),
                                     source: entry.map { .safetensors(weights, $0) }, refusal: refusal, consumedNames: [name])
            }
        }
    }

    public var storedTensorNames: [String] { weights.entries.map(\.name) }
    public var refusesUnreadTensors: Bool { true }
}

extension GGMLEngine: RuntimeWeightReading {
    /// mnist-common.cpp's loader: `<layer>.kernel` ne [KW, KH, IC, OC] (= [OC, IC, KH, KW] row-major, PyTorch's
    /// layout), `<layer>.bias` ne [1, 1, OC, 1] for a conv and [OUT] for a dense layer, `<layer>.weight` ne
    /// [IN, OUT]. In mnist-cnn the dense layer reads `ggml_permute(1, 2, 0, 3)` of the (W, H, C, N) map, i.e.
    /// inputs in (h, w, c) order: its stored columns are (h, w, c) and map to PyTorch's (c, h, w) columns.
    public func runtimeWeights(for layers: [LayerSpec]) -> [RuntimeWeight] {
        var out: [RuntimeWeight] = []
        for layer in layers {
            switch layer {
            case let .conv2d(name, inC, outC, kernel, _, _, bias):
                out.append(binding(layer: name, referenceName: "\(name).weight", referenceShape: [outC, inC, kernel[0], kernel[1]],
                                   fileName: "\(name).kernel", ne: [kernel[1], kernel[0], inC, outC],
                                   layout: .identity([outC, inC, kernel[0], kernel[1]], "ne [KW, KH, IC, OC] is [OC, IC, KH, KW] row-major")))
                if bias {
                    out.append(binding(layer: name, referenceName: "\(name).bias", referenceShape: [outC], fileName: "\(name).bias",
                                       ne: [1, 1, outC, 1], layout: .identity([outC], "ne [1, 1, OC, 1] broadcast over (W, H, C, N)")))
                }
            case let .linear(name, inF, outF, bias):
                var layout = StoredLayout.identity([outF, inF], "ne [IN, OUT] is [OUT, IN] row-major")
                if architecture == "mnist-cnn", let map = ChannelsLast.featureMap(before: name, in: self.layers, features: inF) {
                    layout = StoredLayout(view: [outF, map.h, map.w, map.c], permutation: [0, 3, 1, 2],
                                          description: "ne [IN, OUT] with IN in (h, w, c) order (ggml_permute(1, 2, 0, 3) + ggml_cont before mul_mat)")
                }
                out.append(binding(layer: name, referenceName: "\(name).weight", referenceShape: [outF, inF], fileName: "\(name).weight",
                                   ne: [inF, outF], layout: layout))
                if bias {
                    out.append(binding(layer: name, referenceName: "\(name).bias", referenceShape: [outF], fileName: "\(name).bias",
                                       ne: [outF], layout: .identity([outF], "ne [OUT]")))
                }
            default:
                continue
            }
        }
        return out
    }

    func binding(layer: String, referenceName: String, referenceShape: [Int], fileName: String, ne: [Int], layout: StoredLayout) -> RuntimeWeight {
        let t = file.tensor(named: fileName)
        var refusal: String?
        if let t {
            let padded = t.ne + [Int](repeating: 1, count: max(0, 4 - t.ne.count))
            let wanted = ne + [Int](repeating: 1, count: max(0, 4 - ne.count))
            if padded != wanted { refusal = "ne \(t.ne); ggml's \(architecture) loader asserts ne \(ne)" } else if !t.type.isSupported {
                refusal = "type \(t.type.name) cannot be read: \(t.type.unsupportedReason ?? "")"
            } else if t.type.isActivationOnly {
                refusal = "type \(t.type.name) is an activation-only type (no weight file stores it)"
            }
        }
        return RuntimeWeight(layer: layer, referenceName: referenceName, referenceShape: referenceShape, fileName: fileName,
                             requiredShape: ne.reversed(), layout: layout, source: t.map { .gguf(file, $0) }, refusal: refusal,
                             consumedNames: [fileName])
    }

    public var storedTensorNames: [String] { file.tensors.map(\.name) }
    public var refusesUnreadTensors: Bool { false }
}

extension MLXEngine: RuntimeWeightReading {
    /// mlx.nn's parameters: Conv2d weight [out, kh, kw, in] (transposed to PyTorch's [out, in, kh, kw]), Linear
    /// [out, in] — after a conv, its inputs are the NHWC map flattened, (h, w, c) order — and for a module that
    /// mlx-lm's rule quantizes, `weight`/`scales`/(`biases`) read as `mx.dequantize` reads them.
    public func runtimeWeights(for layers: [LayerSpec]) -> [RuntimeWeight] {
        var out: [RuntimeWeight] = []
        func dense(_ layer: String, _ name: String, _ referenceShape: [Int], _ required: [Int], _ layout: StoredLayout) {
            let raw = files.tensor(name)
            var refusal: String?
            if let raw {
                if raw.shape != required { refusal = "shape \(raw.shape); mlx.nn expects \(required)" } else if !raw.dtype.isFloatingPoint {
                    refusal = "dtype \(raw.dtype.rawValue) is not a float type"
                }
            }
            out.append(RuntimeWeight(layer: layer, referenceName: name, referenceShape: referenceShape, fileName: name, requiredShape: required,
                                     layout: layout, source: raw.map { .mlxArray($0) }, refusal: refusal, consumedNames: [name]))
        }
        for layer in layers {
            switch layer {
            case let .conv2d(name, inC, outC, kernel, _, _, bias):
                dense(name, "\(name).weight", [outC, inC, kernel[0], kernel[1]], [outC, kernel[0], kernel[1], inC],
                      StoredLayout(view: [outC, kernel[0], kernel[1], inC], permutation: [0, 3, 1, 2], description: "nn.Conv2d weight [out, kh, kw, in]"))
                if bias { dense(name, "\(name).bias", [outC], [outC], .identity([outC], "[out]")) }
            case let .linear(name, inF, outF, bias):
                var layout = StoredLayout.identity([outF, inF], "nn.Linear weight [out, in]")
                if let map = ChannelsLast.featureMap(before: name, in: self.layers, features: inF) {
                    layout = StoredLayout(view: [outF, map.h, map.w, map.c], permutation: [0, 3, 1, 2],
                                          description: "nn.Linear weight [out, in] with in in (h, w, c) order (reshape of an NHWC map)")
                }
                if let quantization = (try? files.quantization(forModule: name)) ?? nil {
                    let weight = files.tensor("\(name).weight"), scales = files.tensor("\(name).scales"), biases = files.tensor("\(name).biases")
                    var refusal: String?
                    var source: StoredWeightSource?
                    if let weight, let scales {
                        source = .mlxQuantized(weight: weight, scales: scales, biases: biases, parameters: quantization)
                        if let mode = MLXQuantMode(rawValue: quantization.mode) {
                            do {
                                let q = try MLXQuantized(weight: weight, scales: scales, biases: biases, mode: mode,
                                                         groupSize: quantization.groupSize, bits: quantization.bits)
                                if q.rows != outF || q.cols != inF { refusal = "quantized weight unpacks to [\(q.rows), \(q.cols)]; nn.QuantizedLinear expects [\(outF), \(inF)]" }
                            } catch { refusal = error.description }
                        } else {
                            refusal = "unknown quantization mode '\(quantization.mode)'"
                        }
                    }
                    out.append(RuntimeWeight(layer: name, referenceName: "\(name).weight", referenceShape: [outF, inF], fileName: "\(name).weight",
                                             requiredShape: [outF, inF], layout: layout, source: weight == nil ? nil : source,
                                             refusal: weight != nil && scales == nil ? "'\(name).scales' is missing" : refusal,
                                             consumedNames: ["\(name).weight", "\(name).scales"] + (biases == nil ? [] : ["\(name).biases"])))
                } else {
                    dense(name, "\(name).weight", [outF, inF], [outF, inF], layout)
                }
                if bias { dense(name, "\(name).bias", [outF], [outF], .identity([outF], "[out]")) }
            default:
                continue
            }
        }
        return out
    }

    public var storedTensorNames: [String] { files.tensors.map(\.name) }
    public var refusesUnreadTensors: Bool { true }

    /// The float dtype of the file's unquantized weights (what mlx-lm quantized from), if they agree on one.
    public var floatWeightType: MLXFloatType? {
        let types = Set(files.tensors.filter { $0.dtype.isFloatingPoint && $0.dtype != .f8E4M3 && $0.dtype != .f8E8M0 }.map(\.dtype))
        return types.count == 1 ? MLXFloatType(types.first!) : nil
    }
}
