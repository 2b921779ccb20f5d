/// A tensor exactly as a file stores it: dtype, row-major shape and little-endian bytes. Formats that hold
/// packed or quantized data (MLX's uint32 words, npz members) pass these around undecoded.
public struct RawTensor: Equatable, Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let bytes: [UInt8]

    public init(name: String, dtype: DType, shape: [Int], bytes: [UInt8]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    public var elementCount: Int { shape.reduce(1, *) }

    /// The values as float32, or nil for a dtype with no real value (complex).
    public func floats() -> [Float]? {
        bytes.withUnsafeBytes { ElementCodec.decode($0, dtype: dtype, count: elementCount) }
    }

    /// The values as little-endian uint32 words (MLX's packed quantized weights).
    public func uint32Words() -> [UInt32] {
        bytes.withUnsafeBytes { b in (0..<(b.count / 4)).map { UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) } }
    }
}
