import ParityCore

/// One element (or block) of a stored tensor that no quantizer of its type could have produced from the
/// reference, or that differs from the reference's rounding.
public struct WeightIssue: Sendable, Equatable {
    /// Flat index in the stored (runtime) layout.
    public let storedIndex: Int
    /// Flat index of the same parameter element in the reference tensor.
    public let referenceIndex: Int
    /// Row and column of the stored tensor viewed as [rows, row length] (the row is the quantization axis).
    public let row: Int
    public let column: Int
    /// The block and its scale group's scale (quantized types).
    public let block: Int?
    public let scale: Double?
    /// The value the runtime reads, the reference value, and the nearest value the format could hold.
    public let stored: Double
    public let reference: Double
    public let expected: Double
    /// The largest |stored − reference| the rule allows here.
    public let bound: Double
    /// Which rule: "not round-to-nearest-even", "not a nearest code", "clipped beyond bound", "scale too large".
    public let rule: String
}

/// The weight check of one reference parameter.
public struct TensorWeightResult: Sendable {
    public enum Status: String, Sendable {
        /// Every element within its bound (a finding may still be attached: a consistent other rounding).
        case pass
        /// Some element or block out of bounds.
        case outOfBounds = "out-of-bounds"
        /// The runtime finds no tensor under this name.
        case missing
        /// A tensor the runtime does not read (reported with the runtime's strictness).
        case extra
        /// The runtime would refuse it: wrong shape, a type it cannot read.
        case refused
        /// The type has no weight bound in Parity (e.g. an fp8 safetensors dtype).
        case unchecked
    }

    public var layer: String?
    public var referenceName: String?
    public var fileName: String
    public var storedType: String
    public var storedShape: [Int]
    public var referenceShape: [Int]
    public var layout: String
    public var status: Status
    /// Whether an `extra` or other non-pass status fails verification (ggml ignores extra tensors).
    public var failsVerification: Bool
    public var elements = 0
    public var blocks = 0
    public var elementsOutOfBounds = 0
    public var blocksOutOfBounds = 0
    /// The element with the largest error relative to its bound (dense: the largest |stored − expected|).
    public var worst: WeightIssue?
    /// The largest |stored − reference| as a fraction of its bound over the tensor (quantized types).
    public var worstFractionOfBound: Double?
    /// The farthest clipped value (beyond its grid's end) as a fraction of the clipping bound; nil if none clipped.
    public var worstClipFractionOfBound: Double?
    /// The largest group scale as a fraction of the type's scale bound.
    public var worstScaleFractionOfBound: Double?
    /// Refit types: the largest block RMS error (in steps, over elements not clipped at the grid's end) as a
    /// fraction of its bound; nil where the aggregate rule does not apply.
    public var worstRMSFractionOfBound: Double?
    /// The first issues in stored order (up to `WeightVerifier.listedIssues`).
    public var issues: [WeightIssue] = []
    /// The rule applied, in words, and why it holds.
    public var rule: String = ""
    public var derivation: String = ""
    /// The bytes are exactly what Parity's reference quantizer (= ggml's `quantize_row_*_ref`, `mx.quantize`,
    /// round-to-nearest-even) writes for the reference: a fact, never a requirement. nil when not determined.
    public var identicalToReferenceQuantizer: Bool?
    /// A consistent deviation that is not a corruption (e.g. "bf16 by truncation: 4,211 of 7,840 elements").
    public var finding: String?
    /// Why the tensor could not be checked, or the runtime's refusal.
    public var detail: String?
    /// A rearrangement of the stored values that matches the reference exactly, naming the mistake.
    public var diagnosis: String?

    public init(layer: String?, referenceName: String?, fileName: String, storedType: String, storedShape: [Int], referenceShape: [Int],
                layout: String, status: Status, failsVerification: Bool) {
        self.layer = layer
        self.referenceName = referenceName
        self.fileName = fileName
        self.storedType = storedType
        self.storedShape = storedShape
        self.referenceShape = referenceShape
        self.layout = layout
        self.status = status
        self.failsVerification = failsVerification
    }

    public var passed: Bool { !failsVerification }

    /// The largest of the rules' fractions of their bounds — element, scale, clipping, block RMS — and which rule:
    /// a tensor failing on one rule shows that rule's fraction (> 1).
    public var largestFractionOfBound: (fraction: Double, rule: String)? {
        let all: [(Double?, String)] = [(worstFractionOfBound, "element"), (worstScaleFractionOfBound, "scale"),
                                        (worstClipFractionOfBound, "clipping"), (worstRMSFractionOfBound, "block RMS")]
        return all.compactMap { v, rule in v.map { ($0, rule) } }.max { $0.0 < $1.0 }
    }
}

/// Every parameter of a converted file checked against the reference weights.
public struct WeightReport: Sendable {
    public var tensors: [TensorWeightResult]
    /// Bytes of stored tensor data examined, and the wall time it took.
    public var bytesChecked: Int
    public var seconds: Double
    public var referenceFile: String

    public var passed: Bool { tensors.allSatisfy(\.passed) }
    public var failing: [TensorWeightResult] { tensors.filter { !$0.passed } }
}

/// How one tensor's weight check uses the cores: a large tensor is split into contiguous row ranges checked
/// concurrently and merged in index order, so that its counts, fractions, worst element and listed issues are
/// exactly the serial pass's (tests compare the two).
public struct WeightCheckExecution: Sendable {
    public var parallel: Bool
    /// The fewest elements a range holds (a smaller tensor stays on one core: the split costs more than it saves).
    public var minimumChunkElements: Int
    /// At most this many ranges (nil: four per core).
    public var maximumChunks: Int?

    public init(parallel: Bool, minimumChunkElements: Int, maximumChunks: Int? = nil) {
        self.parallel = parallel
        self.minimumChunkElements = minimumChunkElements
        self.maximumChunks = maximumChunks
    }

    /// One pass, in index order.
    public static let serial = WeightCheckExecution(parallel: false, minimumChunkElements: .max)
    /// Ranges of at least 256 Ki elements (about a millisecond of checking each) over all cores.
    public static let automatic = WeightCheckExecution(parallel: true, minimumChunkElements: 1 << 18)
}
