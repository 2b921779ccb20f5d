import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import Testing

/// MLX-semantics Llama ops against mlx-lm itself: `mlx_lm convert --dtype float32` copies the reference's f32
/// tensors unchanged, so on the reference weights any difference is in the compute (ours against MLX's CPU stream).
@Suite("Llama MLX semantics vs mlx-lm")
struct LlamaMLXTests {
    @Test("Float32: the engine's logits agree with mlx-lm's")
    func float32Logits() throws {
        let golden = try TinyLlamaGolden()
        let source = try ReferenceLlamaSource()
        let forward = LlamaForward(source: source, ops: MLXLlamaOps(source: source))
        let first = firstSequences(golden.ids, shape: golden.shape, count: 1)
        let ours = try forward.forward(ids: first.ids, shape: first.shape)
        let fixture = try HDF5File(readingFrom: LlamaGGMLTests.ecosystemLogits)
        #expect(try fixture.readIntegers("input_ids").values == first.ids.map { Int64($0) }, "the fixture's tokens are the goldens' first sequence")
        let mlx = try fixture.readFloats("mlx__tiny-llama-float32")
        let reference = try golden.file.readFloats("/reference/logits_f64")
        let firstReference = Tensor(shape: mlx.shape, data: Array(reference.data.prefix(mlx.count)))
        let vsMLX = maxAbsDifference(ours, mlx), mlxVsReference = maxAbsDifference(mlx, firstReference)
        print(String(format: "mlx float32: max|Δlogit| engine vs mlx-lm %.2e (rel L2 %.2e); mlx-lm vs float64 %.2e; engine vs float64 %.2e",
                     vsMLX, TransformerTensors.distance(ours, mlx).relL2, mlxVsReference, maxAbsDifference(ours, firstReference)))
        // Both float32 on identical weights; MLX's CPU kernels (its own exp/sin/cos, BLAS, reduction order) differ
        // from ours only in rounding: float32 noise through 3 layers, as PyTorch's own noise floor at the logits
        // (7.7e-6) and mlx-lm's distance to the float64 reference (1.2e-5).
        #expect(vsMLX <= 3e-5, "logits vs mlx-lm (float32): max |Δ| \(vsMLX) > 3e-5 (float32 noise)")
    }

    @Test("Every golden node fed its golden inputs agrees with the goldens to float32 noise")
    func isolated() throws {
        let golden = try TinyLlamaGolden()
        let source = try ReferenceLlamaSource()
        for row in try golden.isolatedDistances(LlamaForward(source: source, ops: MLXLlamaOps(source: source)), label: "mlx") {
            // MLX's float32 arithmetic on the same weights; its RoPE frequencies (exp of a float32 product) differ
            // from torch's (a float32 pow) by an ulp, which moves q_rope/k_rope by ~1e-7 relative. Same limit as
            // the PyTorch ops, same reason.
            #expect(row.relL2 <= 1e-5, "\(row.path) isolated (MLX): rel L2 \(row.relL2) > 1e-5 — max |Δ| \(row.maxAbs)")
        }
    }
}
