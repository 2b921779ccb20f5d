import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify
import Testing

/// The acceptance gate: every bundled model, converted to every safetensors dtype, reproduces the PyTorch
/// goldens layer by layer within that dtype's tolerance — and a wrong layer is caught where it is wrong.
@Suite("reference engine and verification gate")
struct ReferenceEngineTests {
    static let cases: [(String, String)] = Repo.bundledModels.flatMap { m in SafetensorsSupport().variants.map { (m, $0.label) } }

    func verify(_ modelName: String, variant: String, mutate: ((String, Tensor) -> Tensor)? = nil) throws -> VerificationReport {
        let model = try Repo.model(modelName)
        let dir = try TemporaryDirectory()
        let path = dir.file("converted.safetensors")
        if let mutate {
            let source = try model.weights()
            var writer = SafetensorsWriter()
            for entry in source.entries { try writer.add(name: entry.name, tensor: mutate(entry.name, try source.tensor(entry))) }
            try writer.write(to: path)
        } else {
            _ = try SafetensorsSupport().convert(model, variant: variant, to: path)
        }
        let (engine, detected) = try SafetensorsSupport().open(path, for: model)
        #expect(detected.label == variant)
        return try Comparator.verify(model: model, golden: try model.golden(), engine: engine, format: "safetensors", variant: variant, file: path)
    }

    @Test("gate: every layer within tolerance", arguments: cases)
    func gate(modelName: String, variant: String) throws {
        let report = try verify(modelName, variant: variant)
        for layer in report.layers {
            #expect(layer.status == .pass, "\(modelName) \(variant) \(layer.name): \(layer.status.label) \(layer.status.detail)")
        }
        let expectedLayers = try Repo.model(modelName).config.layers.count
        #expect(report.covered == report.layers.count && report.layers.count == expectedLayers)
        let argmax = try #require(report.argmax)
        #expect(argmax.decisiveAgreeing == argmax.decisive && argmax.decisive > 0)
        #expect(report.passed)
        #expect(report.firstDivergence == nil)
    }

    @Test("f32 runs sit at PyTorch's own float32 noise, far inside tolerance", arguments: Repo.bundledModels)
    func f32NoiseFloor(modelName: String) throws {
        let report = try verify(modelName, variant: "f32")
        for layer in report.layers {
            let m = try #require(layer.metrics)
            // PyTorch's own f32-vs-f64 deviation is recorded per layer; a correct f32 engine is of the same
            // order (different summation order, same precision). 20x is generous and still 50x below tolerance.
            #expect(m.relL2 <= 20 * (layer.noiseFloorRelL2 ?? 0) + 1e-7, "\(layer.name) rel L2 \(m.relL2)")
        }
        let argmax = try #require(report.argmax)
        #expect(argmax.agreeing == argmax.total, "an f32 conversion changes no prediction")
    }

    /// The weight of each parametric layer, scaled by 1.01: verification must fail at exactly that layer.
    static let parametricLayers: [(String, String)] = Repo.bundledModels.flatMap { m in
        ((try? Repo.model(m).config.layers) ?? []).filter(\.hasParameters).map { (m, $0.name) }
    }

    @Test("a 1% weight perturbation is reported at its layer and not before", arguments: parametricLayers)
    func perturbedWeights(modelName: String, layerName: String) throws {
        let report = try verify(modelName, variant: "f32") { name, tensor in
            name == layerName + ".weight" ? Tensor(shape: tensor.shape, data: tensor.data.map { $0 * 1.01 }) : tensor
        }
        #expect(!report.passed)
        #expect(report.firstDivergence?.name == layerName)
        let index = try #require(report.layers.firstIndex { $0.name == layerName })
        for earlier in report.layers[..<index] { #expect(earlier.status == .pass, "\(earlier.name) should pass") }
        guard case let .fail(violations) = report.layers[index].status else {
            Issue.record("\(layerName) status \(report.layers[index].status.label)"); return
        }
        #expect(violations.contains { $0.metric == "rel L2" })
    }

    /// Every layer in turn (parametric or not) has its output scaled by 1.01 inside the engine.
    static let allLayers: [(String, String)] = Repo.bundledModels.flatMap { m in
        ((try? Repo.model(m).config.layers) ?? []).map { (m, $0.name) }
    }

    @Test("a 1% error injected at any layer's output is reported at that layer and not before", arguments: allLayers)
    func perturbedOutputs(modelName: String, layerName: String) throws {
        let model = try Repo.model(modelName)
        let engine = OutputPerturbingEngine(base: PyTorchEngine(weights: try model.weights()), layer: layerName, factor: 1.01)
        let report = try Comparator.verify(model: model, golden: try model.golden(), engine: engine, format: "safetensors", variant: "f32", file: "test")
        #expect(report.firstDivergence?.name == layerName)
        let index = try #require(report.layers.firstIndex { $0.name == layerName })
        for earlier in report.layers[..<index] { #expect(earlier.status == .pass) }
        for later in report.layers[index...] { #expect(!later.status.isPass, "\(later.name) inherits the error") }
    }

    @Test("a weight of the wrong shape fails that layer with a clear reason, and later layers are not run")
    func wrongShape() throws {
        let model = try Repo.model("fmnist-cnn")
        let dir = try TemporaryDirectory()
        let source = try model.weights()
        var writer = SafetensorsWriter()
        for entry in source.entries {
            let t = try source.tensor(entry)
            // The mistake seed 004 makes: a transposed Linear weight.
            try writer.add(name: entry.name, tensor: entry.name == "dense.weight" ? t.permuted([1, 0]) : t)
        }
        try writer.write(to: dir.file("bad.safetensors"))
        let (engine, _) = try SafetensorsSupport().open(dir.file("bad.safetensors"), for: model)
        let report = try Comparator.verify(model: model, golden: try model.golden(), engine: engine, format: "safetensors", variant: "f32", file: "bad")
        #expect(report.firstDivergence?.name == "dense")
        #expect(report.layers.last?.status == .error("tensor \"dense.weight\" has shape [784, 10], the module expects [10, 784]"))
    }

    @Test("NaN in the weights is a per-layer non-finite status, never a pass")
    func nonFinite() throws {
        let report = try verify("fmnist-mlp", variant: "f32") { name, t in
            name == "fc2.bias" ? Tensor(shape: t.shape, data: [Float.nan] + t.data.dropFirst()) : t
        }
        #expect(report.layers.last?.status == .nonFinite(nan: 64, inf: 0))
        #expect(report.firstDivergence?.name == "fc2")
    }

    @Test("without a tolerance policy nothing passes and no first divergence is named")
    func noPolicy() throws {
        let model = try Repo.model("fmnist-mlp")
        // An engine Parity cannot look into, labelled with a variant it has no derivation for: no policy at all.
        let engine = OutputPerturbingEngine(base: PyTorchEngine(weights: try model.weights()), layer: "fc1", factor: 1)
        let report = try Comparator.verify(model: model, golden: try model.golden(), engine: engine, format: "safetensors", variant: "f8", file: "x")
        #expect(report.layers.allSatisfy { $0.status == .unjudged })
        #expect(report.firstDivergence == nil)
        #expect(!report.passed && report.verdict == .unjudged)
    }
}

/// Wraps an engine and scales one layer's output, to inject an error at a known place.
struct OutputPerturbingEngine: FormatEngine {
    let base: FormatEngine
    let layer: String
    let factor: Float
    var semantics: String { base.semantics + " with \(layer) scaled by \(factor)" }
    func apply(_ spec: LayerSpec, to input: Tensor) throws(LayerExecutionError) -> Tensor {
        let out = try base.apply(spec, to: input)
        return spec.name == layer ? Tensor(shape: out.shape, data: out.data.map { $0 * factor }) : out
    }
}

