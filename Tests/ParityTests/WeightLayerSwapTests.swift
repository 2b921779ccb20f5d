import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify
import Testing

/// Two whole layers exchanged in a GGUF (every `blk.1.*` tensor carries `blk.2.*`'s bytes and the other way round):
/// 18 failing tensors, more than the full other-parameter search takes (`maximumFailingTensors`), yet each is named by
/// the layer-for-layer pass, and the report says the layers are exchanged whole.
@Suite("Weights: a whole-layer exchange is named")
struct WeightLayerSwapTests {
    static let model = Repo.golden + "/tiny-llama"

    static func exchanged(_ name: String) -> String? {
        if name.hasPrefix("blk.1.") { return "blk.2." + name.dropFirst("blk.1.".count) }
        if name.hasPrefix("blk.2.") { return "blk.1." + name.dropFirst("blk.2.".count) }
        return nil
    }

    @Test("layers 1 and 2 exchanged (f32 from Parity's converter): every failing tensor holds the other layer's parameter")
    func exchangedLayers() throws {
        let scratch = try TemporaryDirectory()
        let (writer, _) = try GGUFLlamaConverter.build(directory: Self.model, output: .converter(.f32))
        let byName = Dictionary(uniqueKeysWithValues: writer.tensors.map { ($0.name, $0.bytes) })
        let source = try LlamaWeightTests.gguf(.converter(.f32), in: scratch) { t in Self.exchanged(t.name).flatMap { byName[$0] } }
        let report = try WeightVerifier.verify(llama: source, reference: try LlamaWeightTests.reference.get())
        let failing = report.failing.map(\.fileName).sorted()
        // Every tensor of the two layers whose references differ between them fails: more than the full search's cap.
        #expect(failing.count == 18, "\(failing)")
        #expect(failing.allSatisfy { $0.hasPrefix("blk.1.") || $0.hasPrefix("blk.2.") }, "\(failing)")
        for t in report.failing {
            let diagnosis = try #require(t.diagnosis, "\(t.fileName) has no diagnosis")
            let other = try #require(Self.exchanged(t.fileName))
            #expect(diagnosis.hasPrefix("[holds-other-parameter] \(t.fileName) holds the reference of "), "\(diagnosis)")
            #expect(diagnosis.contains("from \(other))"), "\(t.fileName): \(diagnosis)")
            let own = try #require(t.referenceName)
            #expect(diagnosis.contains("\(other) holds \(own)'s: the two are exchanged"), "\(diagnosis)")
            #expect(diagnosis.hasSuffix("every tensor of layers 1 and 2 holds the other layer's parameter: the two layers are exchanged whole"), "\(diagnosis)")
        }
    }

    @Test("one layer's tensors moved to the next without the reverse: named per tensor, not called a whole-layer exchange")
    func shiftedNotExchanged() throws {
        let scratch = try TemporaryDirectory()
        let (writer, _) = try GGUFLlamaConverter.build(directory: Self.model, output: .converter(.f32))
        let byName = Dictionary(uniqueKeysWithValues: writer.tensors.map { ($0.name, $0.bytes) })
        // blk.2.* carries blk.1.*'s bytes; blk.1.* is left as it is.
        let source = try LlamaWeightTests.gguf(.converter(.f32), in: scratch) { t in
            t.name.hasPrefix("blk.2.") ? byName["blk.1." + t.name.dropFirst("blk.2.".count)] : nil
        }
        let report = try WeightVerifier.verify(llama: source, reference: try LlamaWeightTests.reference.get())
        #expect(!report.failing.isEmpty)
        for t in report.failing {
            #expect(t.fileName.hasPrefix("blk.2."))
            let diagnosis = try #require(t.diagnosis, "\(t.fileName) has no diagnosis")
            #expect(diagnosis.contains("(the runtime reads that parameter from blk.1."), "\(diagnosis)")
            #expect(!diagnosis.contains("exchanged"), "\(diagnosis)")
        }
    }
}
