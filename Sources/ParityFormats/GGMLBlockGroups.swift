import ParityCore

/// The values one scale group of a quantized block can take: `scale · c + offset` for every code value c.
public enum QuantGrid: Sendable, Equatable {
    /// Integer codes lo...hi.
    case uniform(lo: Int, hi: Int)
    /// A table of code values (E2M1, E4M3, ggml's doubled E2M1), sorted ascending without duplicates.
    case table([Float])

    public var minCode: Float { switch self { case let .uniform(lo, _): return Float(lo); case let .table(t): return t.first ?? 0 } }
    public var maxCode: Float { switch self { case let .uniform(_, hi): return Float(hi); case let .table(t): return t.last ?? 0 } }
    /// The largest |code|: the code that reaches a symmetric group's amax.
    public var maxAbsCode: Float { max(abs(minCode), abs(maxCode)) }
}

/// One scale group of a stored block, as the type's dequantization reads it: `y = scale·c + offset`.
public struct QuantGroup: Sendable {
    public var scale: Float
    public var offset: Float
    /// How far the scale the quantizer computed the codes with can be from the stored one because of the
    /// stored scale's own rounding (half an f16 ulp of `d`, times the integer sub-scale for k-quants).
    public var scaleStorageSlack: Float
    public var offsetStorageSlack: Float
    /// How far the scale (offset) the quantizer wanted can be from the stored one because the stored form is
    /// coarse: half the quantum of a k-quant's 4-/6-/8-bit sub-scale (d/2, dmin/2), or the fp16 rounding.
    public var scaleQuantum: Float
    public var offsetQuantum: Float

    public init(scale: Float, offset: Float, scaleStorageSlack: Float, offsetStorageSlack: Float, scaleQuantum: Float, offsetQuantum: Float) {
        self.scale = scale
        self.offset = offset
        self.scaleStorageSlack = scaleStorageSlack
        self.offsetStorageSlack = offsetStorageSlack
        self.scaleQuantum = scaleQuantum
        self.offsetQuantum = offsetQuantum
    }
}

/// Half of an f16 ulp at `v`: the most an f16 rounding of a float moved it.
@inline(__always) public func halfULPOfHalf(_ v: Float) -> Float {
    let h = Float16(v)
    guard h.isFinite else { return 0 }
    return Float(h.ulp) / 2
}

extension GGMLQuants {
    /// The code grid of a block type's scale groups and the number of elements per group, for the types whose
    /// values are `scale·code + offset` per group (every block type Parity decodes except the activation-only
    /// Q8_1 and Q8_K).
    public static func groupStructure(_ type: GGMLType) -> (groupLength: Int, grid: QuantGrid)? {
        switch type {
        case .q4_0: return (32, .uniform(lo: -8, hi: 7))
        case .q4_1: return (32, .uniform(lo: 0, hi: 15))
        case .q5_0: return (32, .uniform(lo: -16, hi: 15))
        case .q5_1: return (32, .uniform(lo: 0, hi: 31))
        case .q8_0: return (32, .uniform(lo: -128, hi: 127))
        case .q2_K: return (16, .uniform(lo: 0, hi: 3))
        case .q3_K: return (16, .uniform(lo: -4, hi: 3))
        case .q4_K: return (32, .uniform(lo: 0, hi: 15))
        case .q5_K: return (32, .uniform(lo: 0, hi: 31))
        case .q6_K: return (16, .uniform(lo: -32, hi: 31))
        case .mxfp4: return (32, .table(Array(Set(GGMLBlockMXFP4.kvalues.map(Float.init))).sorted()))
        default: return nil
        }
    }

    /// The scale groups of one stored block of `type` (in element order), decoded as the type's `dequantize`
    /// reads them. Nil for types without a group structure.
    public static func groups(ofBlock x: UnsafeRawPointer, type: GGMLType) -> [QuantGroup]? {
        func symmetric(_ d: Float) -> [QuantGroup] {
            let h = halfULPOfHalf(d)
            return [QuantGroup(scale: d, offset: 0, scaleStorageSlack: h, offsetStorageSlack: 0, scaleQuantum: h, offsetQuantum: 0)]
        }
        func affine(_ d: Float, _ m: Float) -> [QuantGroup] {
            let hd = halfULPOfHalf(d), hm = halfULPOfHalf(m)
            return [QuantGroup(scale: d, offset: m, scaleStorageSlack: hd, offsetStorageSlack: hm, scaleQuantum: hd, offsetQuantum: hm)]
        }
        switch type {
        case .q4_0, .q5_0, .q8_0:
            return symmetric(loadHalf(x, 0))
        case .q4_1, .q5_1:
            return affine(loadHalf(x, 0), loadHalf(x, 2))
        case .mxfp4:
            // Exact power of two: no rounding of the scale itself.
            return [QuantGroup(scale: GGMLBlockMXFP4.e8m0Half(loadU8(x, 0)), offset: 0, scaleStorageSlack: 0, offsetStorageSlack: 0, scaleQuantum: 0, offsetQuantum: 0)]
        case .q2_K:
            // y = d·(sc & 0xF)·q − dmin·(sc >> 4), 16 groups of 16.
            let d = loadHalf(x, 80), dmin = loadHalf(x, 82), hd = halfULPOfHalf(d), hm = halfULPOfHalf(dmin)
            return (0..<16).map { j in
                let sc = loadU8(x, j)
                let s = Float(sc & 0x0F), m = Float(sc >> 4)
                return QuantGroup(scale: d * s, offset: -(dmin * m), scaleStorageSlack: s * hd, offsetStorageSlack: m * hm,
                                  scaleQuantum: abs(d) / 2 + s * hd, offsetQuantum: abs(dmin) / 2 + m * hm)
            }
        case .q3_K:
            // y = d·(sc − 32)·q with 16 six-bit scales packed in 12 bytes, 16 groups of 16.
            let d = loadHalf(x, 108), hd = halfULPOfHalf(d)
            return (0..<16).map { j in
                let low = j < 8 ? loadU8(x, 96 + j) & 0x0F : loadU8(x, 96 + j - 8) >> 4
                let high = (loadU8(x, 96 + 8 + j % 4) >> UInt8(2 * (j / 4))) & 3
                let sc = Float(Int(low | high << 4) - 32)
                return QuantGroup(scale: d * sc, offset: 0, scaleStorageSlack: abs(sc) * hd, offsetStorageSlack: 0,
                                  scaleQuantum: abs(d) / 2 + abs(sc) * hd, offsetQuantum: 0)
            }
        case .q4_K, .q5_K:
            // y = d·sc·q − dmin·m with get_scale_min_k4, 8 groups of 32.
            let d = loadHalf(x, 0), dmin = loadHalf(x, 2), hd = halfULPOfHalf(d), hm = halfULPOfHalf(dmin)
            return (0..<8).map { j in
                let (sc, mn) = getScaleMinK4(j, x + 4)
                let s = Float(sc), m = Float(mn)
                return QuantGroup(scale: d * s, offset: -(dmin * m), scaleStorageSlack: s * hd, offsetStorageSlack: m * hm,
                                  scaleQuantum: abs(d) / 2 + s * hd, offsetQuantum: abs(dmin) / 2 + m * hm)
            }
        case .q6_K:
            // y = d·sc·q with int8 scales, 16 groups of 16.
            let d = loadHalf(x, 208), hd = halfULPOfHalf(d)
            return (0..<16).map { j in
                let sc = Float(loadI8(x, 192 + j))
                return QuantGroup(scale: d * sc, offset: 0, scaleStorageSlack: abs(sc) * hd, offsetStorageSlack: 0,
                                  scaleQuantum: abs(d) / 2 + abs(sc) * hd, offsetQuantum: 0)
            }
        default:
            return nil
        }
    }
}
