import ParityCore

/// What a transformer runtime takes from a converted file besides its tensors: hyperparameters it reads from the
/// file's metadata and conventions it applies to the tensors. A converter can get any of these wrong while every
/// tensor is right (a θ from another model family, Llama 1's ε, `rope_traditional: true`, a dropped output
/// matrix), so `layer-diff` re-runs a failing node with one of them changed, as it does with a rearranged parameter.
public struct RuntimeConventions: Equatable, Sendable {
    /// Which pairs of a head's dimensions RoPE rotates together.
    public var ropeStyle: RopeStyle
    /// RoPE's base θ (GGUF `llama.rope.freq_base`, config.json `rope_theta`).
    public var ropeTheta: Double
    /// RMSNorm's ε (GGUF `llama.attention.layer_norm_rms_epsilon`, config.json `rms_norm_eps`).
    public var rmsNormEpsilon: Double
    /// The output projection is the token embedding: the file has no separate output matrix, or says it is tied.
    public var tiedOutput: Bool

    public init(ropeStyle: RopeStyle, ropeTheta: Double, rmsNormEpsilon: Double, tiedOutput: Bool) {
        self.ropeStyle = ropeStyle
        self.ropeTheta = ropeTheta
        self.rmsNormEpsilon = rmsNormEpsilon
        self.tiedOutput = tiedOutput
    }
}

/// Where the runtime gets each convention, in the words of its file format (for diagnosis messages).
public struct RuntimeConventionOrigins: Sendable {
    public let ropeStyle: String
    public let ropeTheta: String
    public let rmsNormEpsilon: String
    public let tiedOutput: String

    public init(ropeStyle: String, ropeTheta: String, rmsNormEpsilon: String, tiedOutput: String) {
        self.ropeStyle = ropeStyle
        self.ropeTheta = ropeTheta
        self.rmsNormEpsilon = rmsNormEpsilon
        self.tiedOutput = tiedOutput
    }
}

/// A graph engine that can compute the same file under other conventions: `layer-diff` tests "would this node pass
/// if the runtime used the reference's θ / ε / RoPE convention / a separate output matrix?" by re-running the node on
/// its golden inputs with the changed engine. Only how the runtime computes changes; the file's tensors do not.
public protocol ConventionOverridingEngine: ParameterOverridingEngine {
    /// The conventions the runtime applies to this file, as it read them.
    var conventions: RuntimeConventions { get }
    var conventionOrigins: RuntimeConventionOrigins { get }
    /// The same engine computing with other conventions.
    func overridingConventions(_ conventions: RuntimeConventions) -> Self
}
