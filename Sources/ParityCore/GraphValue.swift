/// A dense integer tensor in row-major order: token ids, positions, attention masks of a causal language model.
/// Kept apart from `Tensor` so an id is never a float (a float32 holds integers exactly only up to 2^24, and an
/// id rounded to a neighbour is another token).
public struct IntegerTensor: Equatable, Sendable {
    public var shape: [Int]
    public var data: [Int32]

    public init(shape: [Int], data: [Int32]) {
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not hold \(data.count) values")
        self.shape = shape
        self.data = data
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }
}

/// A value flowing along a model graph's edge: float activations, or integers (token ids, positions, masks).
public enum GraphValue: Equatable, Sendable {
    case floats(Tensor)
    case integers(IntegerTensor)

    public var shape: [Int] {
        switch self {
        case let .floats(t): return t.shape
        case let .integers(t): return t.shape
        }
    }

    /// The float tensor, or nil for integers.
    public var floats: Tensor? { if case let .floats(t) = self { return t }; return nil }
    /// The integer tensor, or nil for floats.
    public var integers: IntegerTensor? { if case let .integers(t) = self { return t }; return nil }

    /// The values as float32 for metrics (integers of a golden are small: ids, positions, 0/1 masks).
    public var asFloats: Tensor {
        switch self {
        case let .floats(t): return t
        case let .integers(t): return Tensor(shape: t.shape, data: t.data.map { Float($0) })
        }
    }

    /// "float32" or "int32", for messages.
    public var typeName: String {
        switch self {
        case .floats: return "float32"
        case .integers: return "int32"
        }
    }
}
