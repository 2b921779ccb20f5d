import ParityCore

/// A model as a graph of named nodes, each computing one value from the values of other nodes or model inputs.
/// Node names are the golden's dataset paths, so the graph, the goldens and every engine's hooks speak of the
/// same thing: `/activations/<module>` for a module's output (PyTorch's `named_modules()` name:
/// `model.layers.0.self_attn.q_proj`), `/attention/<module>/q_rope|k_rope|probs` for what an attention module
/// computes inline, `/intermediates/<reader>.<argument>` for other inline tensors (the residual sum, the causal
/// mask), and `/internal/…` for values no golden records (a decoder layer's second residual sum).
///
/// `nodes` is in topological order: every node comes after everything it reads (`dependencies`).
public struct ModelGraph: Equatable, Sendable {
    /// The architecture the graph was built for (`llama`, `mnist-cnn`, `sequential`, …).
    public let architecture: String
    /// The model's inputs, in the order the model takes them.
    public let inputs: [GraphInput]
    /// In topological order.
    public let nodes: [GraphNode]
    /// Path of the model's final output (the logits).
    public let output: String

    private let index: [String: Int]
    /// Tensors a checkpoint may hold that the graph does not read, with the reason (BERT's `pooler.*`, whose output
    /// sentence-transformers discards, and the `embeddings.position_ids` buffer): not an unexpected extra tensor.
    public var unreadTensors: [String: String] = [:]

    public init(architecture: String, inputs: [GraphInput], nodes: [GraphNode], output: String) {
        self.architecture = architecture
        self.inputs = inputs
        self.nodes = nodes
        self.output = output
        var index: [String: Int] = [:]
        for (i, node) in nodes.enumerated() { index[node.path] = i }
        self.index = index
    }

    public static func == (a: ModelGraph, b: ModelGraph) -> Bool {
        a.architecture == b.architecture && a.inputs == b.inputs && a.nodes == b.nodes && a.output == b.output
    }

    /// The node at a golden path (`/activations/model.norm`), nil for a model input or an unknown path.
    public func node(at path: String) -> GraphNode? { index[path].map { nodes[$0] } }

    /// The node for a report name (`conv1`, `attention/model.layers.0.self_attn/probs`).
    public func node(named name: String) -> GraphNode? { node(at: GraphNode.path(forName: name)) }

    /// Position in topological order.
    public func position(of path: String) -> Int? { index[path] }

    public func input(at path: String) -> GraphInput? { inputs.first { $0.path == path } }

    /// Nodes that have a golden dataset (everything but `/internal/…`), in topological order.
    public var recordedNodes: [GraphNode] { nodes.filter(\.isRecorded) }

    /// Every parameter of every node, in node order, each once (a tied embedding is listed at its first use).
    public var parameters: [GraphParameter] {
        var seen = Set<String>()
        return nodes.flatMap(\.parameters).filter { seen.insert($0.name).inserted }
    }

    /// The nodes that compute a module's output from the module's inputs: walking back from `output`, stopping
    /// at the module's own inputs. Used to run a composite module (a decoder layer) on its golden inputs.
    public func members(of module: GraphNode) -> [GraphNode] {
        guard case let .module(_, output) = module.op else { return [] }
        let boundary = Set(module.inputs)
        var needed = Set<String>()
        var stack = [output]
        while let path = stack.popLast() {
            guard !boundary.contains(path), let node = node(at: path), needed.insert(path).inserted else { continue }
            stack.append(contentsOf: node.dependencies)
        }
        return nodes.filter { needed.contains($0.path) }
    }

    /// Checks that every dependency is a model input or an earlier node, and that paths are unique.
    /// A violation is a defect in an architecture builder, reported with the node.
    public func validate() throws(ParityError) {
        var known = Set(inputs.map(\.path))
        for node in nodes {
            guard !known.contains(node.path) else {
                throw .mismatch(file: architecture, reason: "graph node \(node.path) is defined twice")
            }
            for dependency in node.dependencies where !known.contains(dependency) {
                throw .mismatch(file: architecture, reason: "graph node \(node.path) reads \(dependency), which is neither a model input nor an earlier node")
            }
            known.insert(node.path)
        }
        guard index[output] != nil else { throw .mismatch(file: architecture, reason: "graph output \(output) is not a node") }
    }
}

/// One model input: `/inputs/<name>`.
public struct GraphInput: Equatable, Sendable {
    public enum ElementType: String, Equatable, Sendable {
        case float32, int32
    }
    public let name: String
    public let type: ElementType
    /// The reference layout (`NCHW`, `BT`).
    public let layout: String
    public var path: String { "/inputs/" + name }

    public init(name: String, type: ElementType, layout: String) {
        self.name = name
        self.type = type
        self.layout = layout
    }
}

/// A parameter a node owns, with its PyTorch name (`named_parameters()`) and reference shape.
public struct GraphParameter: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public init(name: String, shape: [Int]) {
        self.name = name
        self.shape = shape
    }
}

/// What a node is, as the golden's `kind` attribute says.
public enum GraphNodeKind: String, Equatable, Sendable {
    /// A module's output (`/activations/<module>`).
    case module
    /// Element i > 0 of a module's tuple output (`/activations/<module>:<i>`).
    case output
    /// A tensor an attention module computes inline (`/attention/<module>/…`).
    case attention
    /// A tensor computed inline between modules (`/intermediates/…`).
    case intermediate
    /// A value no golden records (`/internal/…`): computed, never compared.
    case `internal`
}

/// The computations a graph node can ask an engine for. Shapes use the reference (PyTorch) layout: B batch,
/// T query tokens, S key tokens, C features, H heads, D head dimension.
public enum GraphOp: Equatable, Sendable {
    /// One of the sequential image layers (Conv2d, ReLU, MaxPool2d, Flatten, Linear on [N, C]): one input.
    case layer(LayerSpec)
    /// `nn.Embedding`: int32 ids [B, T] → [B, T, width], weight [vocabularySize, width].
    case embedding(vocabularySize: Int, width: Int)
    /// `LlamaRMSNorm`: x · rsqrt(mean(x²) + ε) · weight over the last axis (computed in float32).
    case rmsNorm(width: Int, epsilon: Double)
    /// `nn.Linear` on the last axis of [B, T, inFeatures] (or any leading axes): weight [out, in].
    case linear(inFeatures: Int, outFeatures: Int, bias: Bool)
    /// `LlamaRotaryEmbedding`: (hidden states for the dtype, int32 position_ids [B, T]) → cos or sin [B, T, D],
    /// inverse frequencies θ^(−2i/D), each frequency repeated for both halves (`cat((freqs, freqs))`).
    case rotaryEmbedding(RotaryComponent, headDimension: Int, theta: Double)
    /// `apply_rotary_pos_emb` on one projection: ([B, T, heads·D], cos, sin) → [B, heads, T, D], rotating halves
    /// (`x·cos + rotate_half(x)·sin`) of rows in the checkpoint's (Hugging Face) order.
    case applyRope(heads: Int, headDimension: Int)
    /// softmax(q · repeat_kv(k)ᵀ / √D + mask) over keys: (q_rope [B, H, T, D], k_rope [B, H_kv, S, D],
    /// additive mask [B, 1, T, S]) → [B, H, T, S].
    case attentionProbs(heads: Int, keyValueHeads: Int, headDimension: Int)
    /// probs · repeat_kv(v), heads concatenated: (probs [B, H, T, S], v_proj [B, S, H_kv·D]) → [B, T, H·D].
    case attentionOutput(heads: Int, keyValueHeads: Int, headDimension: Int)
    /// Elementwise a + b (the residual).
    case add
    /// Elementwise a · b (SwiGLU's act_fn(gate) · up).
    case mul
    /// SiLU x · sigmoid(x).
    case silu
    /// The 4-D additive causal mask transformers builds from the int32 attention_mask [B, T]: float32
    /// [B, 1, T, T], 0 where key ≤ query and the key is not padding, float32's lowest value elsewhere.
    case causalMask
    /// arange(T) as int32 [T] (`cache_position`), T taken from the node's implicit input (the token ids).
    case positions
    /// A composite module (a decoder layer, an attention block, the model body): its inputs are the module's
    /// arguments as the golden records them; its value is the value of node `output`, computed by its members.
    case module(className: String, output: String)
    /// `nn.LayerNorm` over the last axis: (x − mean) / sqrt(var + ε) · weight + bias (BERT; computed in float32).
    case layerNorm(width: Int, epsilon: Double)
    /// GELU (BERT's feed-forward activation), in the form the architecture's config names: erf (`"gelu"`) or the
    /// tanh approximation (`"gelu_new"`, `"gelu_pytorch_tanh"`).
    case gelu(tanhApproximation: Bool)
    /// The additive padding mask BERT builds from the int32 attention_mask [B, S] (`get_extended_attention_mask`):
    /// float32 [B, 1, 1, S], (1 − mask) · float32's lowest value (so 0 for real tokens, the lowest value for padding).
    case extendedAttentionMask
    /// sentence-transformers' `Pooling` (mean over the real tokens, or the first token): (token states [B, T, C],
    /// int32 attention_mask [B, T]) → [B, C].
    case sentencePooling(mode: String)
    /// sentence-transformers' `Normalize`: x / max(‖x‖₂, 1e-12) over the last axis.
    case l2Normalize

    /// The name reports show: the PyTorch module class, or the golden's op name for inline computations.
    public var label: String {
        switch self {
        case let .layer(spec): return spec.op
        case .embedding: return "Embedding"
        case .rmsNorm: return "LlamaRMSNorm"
        case .linear: return "Linear"
        case .rotaryEmbedding: return "LlamaRotaryEmbedding"
        case .applyRope: return "apply_rope"
        case .attentionProbs: return "attention_probs"
        case .attentionOutput: return "attention_output"
        case .add: return "add"
        case .mul: return "mul"
        case .silu: return "SiLU"
        case .causalMask: return "causal_mask"
        case .positions: return "arange"
        case let .module(className, _): return className
        case .layerNorm: return "LayerNorm"
        case .gelu: return "GELUActivation"
        case .extendedAttentionMask: return "extended_attention_mask"
        case .sentencePooling: return "Pooling"
        case .l2Normalize: return "Normalize"
        }
    }
}

/// Which output of `LlamaRotaryEmbedding` a node is: element 0 (cos) or 1 (sin) of its tuple.
public enum RotaryComponent: String, Equatable, Sendable {
    case cos, sin
}

/// One node: a value the model computes, named by its golden path.
public struct GraphNode: Equatable, Sendable {
    /// The golden dataset path (`/activations/model.layers.0.self_attn.q_proj`).
    public let path: String
    public let kind: GraphNodeKind
    public let op: GraphOp
    /// What it reads, in argument order: golden paths of nodes or model inputs (`/inputs/input_ids`), exactly as
    /// the golden's `inputs` attribute lists them (a format_version 1 golden's single `input`).
    public let inputs: [String]
    /// The argument each input is passed as (the golden's `input_args`): `input`, `hidden_states`, `q`, `cos`, …
    public let inputArgs: [String]
    /// Nodes read for something other than an argument value (the token ids whose length `positions` takes).
    /// The executor runs them first and passes their values after `inputs`.
    public let implicitInputs: [String]
    /// The parameters the node's own computation uses.
    public let parameters: [GraphParameter]
    /// The PyTorch module the node belongs to (`model.layers.0.self_attn` for its q_rope), if any.
    public let module: String?
    /// The decoder layer (`model.layers.N`) the node belongs to, if any.
    public let block: Int?

    public init(path: String, kind: GraphNodeKind, op: GraphOp, inputs: [String], inputArgs: [String], implicitInputs: [String] = [],
                parameters: [GraphParameter] = [], module: String? = nil, block: Int? = nil) {
        precondition(inputs.count == inputArgs.count, "\(path): \(inputs.count) inputs but \(inputArgs.count) argument names")
        self.path = path
        self.kind = kind
        self.op = op
        self.inputs = inputs
        self.inputArgs = inputArgs
        self.implicitInputs = implicitInputs
        self.parameters = parameters
        self.module = module
        self.block = block
    }

    /// The name reports show: the module name for `/activations/<module>` (`conv1`, `model.norm`), the path
    /// without its leading slash otherwise (`attention/model.layers.0.self_attn/probs`).
    public var name: String { GraphNode.name(forPath: path) }

    public static func name(forPath path: String) -> String {
        path.hasPrefix("/activations/") ? String(path.dropFirst("/activations/".count)) : String(path.drop { $0 == "/" })
    }

    public static func path(forName name: String) -> String {
        for group in ["attention/", "intermediates/", "internal/", "inputs/"] where name.hasPrefix(group) { return "/" + name }
        return "/activations/" + name
    }

    /// Everything that must be computed before this node: `inputs`, `implicitInputs`, and a composite module's
    /// `output`.
    public var dependencies: [String] {
        if case let .module(_, output) = op { return inputs + implicitInputs + [output] }
        return inputs + implicitInputs
    }

    /// Whether the goldens record this node (every node but `/internal/…` ones).
    public var isRecorded: Bool { kind != .internal }

    /// Whether the node's value is another node's (a composite module): it introduces no error of its own.
    public var isComposite: Bool { if case .module = op { return true }; return false }

    /// Whether the node has parameters (and so can be wrong by itself, not only by inheriting error).
    public var hasParameters: Bool { !parameters.isEmpty }
}
