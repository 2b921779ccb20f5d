import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify
import Testing

/// Files written outside Parity by tools/weights/make_fixtures.sh (gguf-py, real MLX): clean tensors pass, and every
/// single corrupted element or block is caught with its tensor and exact position (from the manifests).
@Suite("weights: corrupted fixtures from gguf-py and MLX")
struct WeightFixtureTests {
    static let dir = Repo.fixtures + "/weights"
    /// The reference values every fixture tensor was made from (the ggml-quants source rows).
    static func reference() throws -> [Float] {
        let bytes = try readBytes(Repo.fixtures + "/ggml-quants/src.f32")
        return bytes.withUnsafeBytes { b in (0..<(bytes.count / 4)).map { Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) } }
    }
    static func manifest(_ name: String) throws -> JSONValue { try fixtureJSON(dir + "/" + name) }

    static func files(_ manifestName: String, prefix: String) throws -> [String] {
        let path = dir + "/" + manifestName
        let files = try #require(try required(manifest(manifestName), "files", in: path).objectValue, "\(path): files is not an object")
        return files.map(\.key).filter { $0.hasPrefix(prefix) }.sorted()
    }
    static func ggufFiles() throws -> [String] { try files("gguf-manifest.json", prefix: "gguf-") }
    static func mlxFiles() throws -> [String] { try files("mlx-manifest.json", prefix: "mlx-") }

    @Test("the fixture set covers every storage type and every MLX mode")
    func coverage() throws {
        #expect(try Self.reference().count == 16 * 256)
        let types = Set(try Self.ggufFiles().map { String($0.dropFirst(5).dropLast(5)) })
        #expect(types == ["f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "mxfp4"])
        #expect(Set(try Self.mlxFiles().compactMap { $0.split(separator: "-").dropFirst().first.map(String.init) }) == ["affine", "mxfp4.safetensors", "mxfp8.safetensors", "nvfp4.safetensors"])
        #expect(try Self.mlxFiles().filter { $0.contains("affine") }.count == 7)
    }

    /// The issues must name exactly the corrupted place: every listed element is one whose value changed, in the
    /// manifest's block, and a single changed element is named by itself.
    static func expectNamed(_ r: TensorWeightResult, entry: JSONValue, what: String) throws {
        let changed = Set(try #require(entry["changed_elements"]?.arrayValue, "\(what): no changed_elements").compactMap(\.intValue))
        let block = entry["block"]?.intValue ?? entry["group"]?.intValue
        #expect(r.status == .outOfBounds, "\(what): not caught (\(r.status))")
        #expect(!r.issues.isEmpty && !changed.isEmpty)
        #expect(r.issues.allSatisfy { changed.contains($0.storedIndex) }, "\(what): issues at \(r.issues.map(\.storedIndex)), changed \(changed.sorted().prefix(8))")
        if let block, r.blocks > 0 {
            #expect(r.issues.allSatisfy { $0.block == block } && r.blocksOutOfBounds == 1, "\(what): blocks \(r.issues.map { $0.block ?? -1 }), expected \(block)")
        }
        if changed.count == 1 {
            #expect(r.elementsOutOfBounds == 1 && r.issues.first?.storedIndex == changed.first, "\(what)")
            #expect(r.issues.first.map { $0.row * 256 + $0.column } == changed.first)
        }
    }

    @Test("gguf-py files: clean tensors pass, each corruption is named at its block and element", arguments: try nonEmpty(ggufFiles(), "gguf-py fixture files"))
    func ggufFile(name: String) throws {
        let file = try GGUFFile(path: Self.dir + "/" + name)
        let entries = try #require(try Self.manifest("gguf-manifest.json")["files"]?[name]?["tensors"]?.objectValue)
        #expect(file.tensors.count == entries.count)
        for t in file.tensors {
            let entry = try #require(entries.first { $0.key == t.name }?.value)
            let r = try file.withData(t) { WeightVerifier.checkGGUF(Array($0), type: t.type, reference: try Self.reference(), rowLength: 256, name: t.name) }
            #expect(r.elements == 16 * 256)
            if t.name == "clean" {
                #expect(r.status == .pass && r.elementsOutOfBounds == 0 && r.blocksOutOfBounds == 0, "\(name) clean: \(r.issues.first.map { "\($0)" } ?? "")")
                #expect(r.finding == nil)
                let quantizer = entry["quantizer"]?.stringValue ?? "?"
                print("measured \(quantizer) \(t.type.name): worst element \(r.worstFractionOfBound.map { String(format: "%.3f", $0) } ?? "-") of its bound, worst scale \(r.worstScaleFractionOfBound.map { String(format: "%.3f", $0) } ?? "-"), worst clipping \(r.worstClipFractionOfBound.map { String(format: "%.3f", $0) } ?? "none")")
            } else {
                try try Self.expectNamed(r, entry: entry, what: "\(name) \(t.name)")
            }
        }
    }

    @Test("no false positives: every ggml C / gguf-py quantization recorded in ggml-quants passes", arguments: try nonEmpty(["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "mxfp4", "f16", "bf16"], "test arguments"))
    func recordedQuantizations(type: String) throws {
        let bytes = try readBytes(Repo.fixtures + "/ggml-quants/\(type).q.bin")
        let r = WeightVerifier.checkGGUF(bytes, type: try #require(GGMLType.named(type)), reference: try Self.reference(), rowLength: 256)
        #expect(r.status == .pass && r.elementsOutOfBounds == 0, "\(type): \(r.issues.first.map { "\($0)" } ?? "")")
        print("measured recorded ggml-quants \(type): worst element \(r.worstFractionOfBound.map { String(format: "%.3f", $0) } ?? "-") of its bound, worst scale \(r.worstScaleFractionOfBound.map { String(format: "%.3f", $0) } ?? "-"), worst clipping \(r.worstClipFractionOfBound.map { String(format: "%.3f", $0) } ?? "none")")
        // Parity's quantizers are ggml's reference ones: the recorded bytes are what they write.
        #expect(r.identicalToReferenceQuantizer == nil || r.identicalToReferenceQuantizer == true)
    }

    @Test("MLX files: mx.quantize output passes, each corruption is named at its group and element", arguments: try nonEmpty(mlxFiles(), "MLX fixture files"))
    func mlxFile(name: String) throws {
        let info = try #require(try Self.manifest("mlx-manifest.json")["files"]?[name])
        let mode = try MLXQuantMode.parse(try #require(info["mode"]?.stringValue))
        let files = try MLXModelFiles.load(path: Self.dir + "/" + name)
        let entries = try #require(info["tensors"]?.objectValue)
        for (tensorCase, entry) in entries {
            let q = try MLXQuantized(weight: try #require(files.tensor(tensorCase + ".weight")), scales: try #require(files.tensor(tensorCase + ".scales")),
                                     biases: files.tensor(tensorCase + ".biases"), mode: mode, groupSize: info["group_size"]?.intValue, bits: info["bits"]?.intValue)
            let r = WeightVerifier.checkMLX(q, reference: try Self.reference(), name: tensorCase)
            expectSameJudgement(r, WeightVerifier.checkMLX(q, reference: try Self.reference(), name: tensorCase, tableFastPath: false), "\(name) \(tensorCase)")
            if tensorCase == "clean" {
                #expect(r.status == .pass, "\(name) clean: \(r.issues.first.map { "\($0)" } ?? "")")
                print("measured real MLX \(name): worst element \(r.worstFractionOfBound.map { String(format: "%.3f", $0) } ?? "-") of its bound, worst scale \(r.worstScaleFractionOfBound.map { String(format: "%.3f", $0) } ?? "-"), worst clipping \(r.worstClipFractionOfBound.map { String(format: "%.3f", $0) } ?? "none")")
            } else {
                try Self.expectNamed(r, entry: entry, what: "\(name) \(tensorCase)")
            }
        }
    }

    @Test("verify on a whole model: gguf-py's Q8_0 with one doubled block scale fails on weights, named at fc2.weight block 35")
    func ggufModel() throws {
        let dir = try TemporaryDirectory()
        let result = try runParity(["verify", Repo.fixtures + "/user-mlp-256", "--file", Self.dir + "/user-mlp-256-q8_0-scale.gguf", "--json", dir.file("r.json")])
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("fc2.weight") && result.stdout.contains("block 35"))
        let json = try JSONParser.parse(readBytes(dir.file("r.json")))
        #expect(json["schema_version"]?.intValue == 2)
        let schema = JSONSchemaValidator(root: try JSONParser.parse(readBytes(Repo.root + "/tools/schemas/parity-report.schema.json")))
        #expect(schema.validate(json) == [])
        let weights = try #require(json["reports"]?.arrayValue?.first?["weights"])
        let fc2 = try #require(weights["tensors"]?.arrayValue?.first { $0["file_name"]?.stringValue == "fc2.weight" })
        #expect(fc2["status"]?.stringValue == "out-of-bounds" && fc2["blocks_out_of_bounds"]?.intValue == 1)
        #expect(fc2["issues"]?.arrayValue?.allSatisfy { $0["block"]?.intValue == 35 && $0["row"]?.intValue == 4 } == true)
        #expect(fc2["activations"]?.stringValue?.contains("activations at fc2") == true)
        // Every other tensor is fine: fc1 F16 is numpy's round-to-nearest-even.
        #expect(weights["tensors"]?.arrayValue?.filter { $0["passed"]?.boolValue == false }.count == 1)
    }

    @Test("issue 10's example: seven doubled nvfp4 block scales in one row of fmnist-cnn's dense layer pass activations, fail on weights")
    func sevenScales() throws {
        let dir = try TemporaryDirectory()
        let result = try runParity(["verify", "fmnist-cnn", "--file", Self.dir + "/fmnist-cnn-nvfp4-seven-scales", "--json", dir.file("r.json")])
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("weights out of bounds: dense.weight (95 elements)"))
        let info = try #require(try Self.manifest("mlx-manifest.json")["files"]?["fmnist-cnn-nvfp4-seven-scales"])
        let groups = Set(try #require(info["groups"]?.arrayValue).compactMap(\.intValue))
        let changed = Set(try #require(info["changed_elements"]?.arrayValue).compactMap(\.intValue))
        let report = try #require(try JSONParser.parse(readBytes(dir.file("r.json")))["reports"]?.arrayValue?.first)
        // The activations alone pass at nvfp4's tolerance: only the weights catch it.
        #expect(report["layers"]?.arrayValue?.allSatisfy { $0["status"]?.stringValue == "pass" } == true)
        let tensors = try #require(report["weights"]?["tensors"]?.arrayValue)
        let dense = try #require(tensors.first { $0["file_name"]?.stringValue == "dense.weight" })
        #expect(dense["blocks_out_of_bounds"]?.intValue == 7 && groups.count == 7)
        #expect(dense["issues"]?.arrayValue?.allSatisfy { i in groups.contains(i["block"]?.intValue ?? -1) && i["row"]?.intValue == 3 && changed.contains(i["stored_index"]?.intValue ?? -1) } == true)
        #expect(dense["activations"]?.stringValue?.contains("would not have caught it") == true)
        #expect(tensors.filter { $0["passed"]?.boolValue == false }.count == 1)
    }

    @Test("bf16 by truncation (written by the safetensors library) is named as a finding with counts and sizes, not a failure")
    func truncatedBF16() throws {
        let dir = try TemporaryDirectory()
        let result = try runParity(["verify", "fmnist-cnn", "--file", Self.dir + "/fmnist-cnn-bf16-truncated.safetensors", "--json", dir.file("r.json")])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let expected = try #require(try Self.manifest("gguf-manifest.json")["files"]?["fmnist-cnn-bf16-truncated.safetensors"]?["differs_from_rne"]?.objectValue)
        let tensors = try #require(try JSONParser.parse(readBytes(dir.file("r.json")))["reports"]?.arrayValue?.first?["weights"]?["tensors"]?.arrayValue)
        #expect(tensors.count == expected.count)
        for (name, count) in expected {
            let t = try #require(tensors.first { $0["reference_name"]?.stringValue == name })
            #expect(t["status"]?.stringValue == "pass" && t["identical_to_reference_quantizer"]?.boolValue == false)
            let finding = t["finding"]?.stringValue ?? ""
            #expect(finding.contains("rounded toward zero (truncation)") && finding.contains("\(count.intValue ?? -1) of \(t["elements"]?.intValue ?? -1) elements"), "\(name): \(finding)")
        }
    }

    @Test("layer-diff on a whole model: MLX nvfp4 with one changed code of fc2 fails on weights at [7, 200]")
    func mlxModel() throws {
        let dir = try TemporaryDirectory()
        let result = try runParity(["layer-diff", Repo.fixtures + "/user-mlp-256", Self.dir + "/user-mlp-256-nvfp4", "--json", dir.file("r.json"), "--html", dir.file("r.html")])
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
        let json = try JSONParser.parse(readBytes(dir.file("r.json")))
        let schema = JSONSchemaValidator(root: try JSONParser.parse(readBytes(Repo.root + "/tools/schemas/parity-report.schema.json")))
        #expect(schema.validate(json) == [])
        let tensors = try #require(json["reports"]?.arrayValue?.first?["weights"]?["tensors"]?.arrayValue)
        let fc2 = try #require(tensors.first { $0["file_name"]?.stringValue == "fc2.weight" })
        #expect(fc2["elements_out_of_bounds"]?.intValue == 1)
        let issue = try #require(fc2["issues"]?.arrayValue?.first)
        #expect(issue["row"]?.intValue == 7 && issue["column"]?.intValue == 200 && issue["stored_index"]?.intValue == 1992)
        #expect(tensors.filter { $0["passed"]?.boolValue == false }.count == 1)
        let html = try String(contentsOfFile: dir.file("r.html"), encoding: .utf8)
        #expect(html.contains("Weights: user-mlp-256") && html.contains("[7, 200]"))
    }
}

/// The planted conversion mistakes (tools/planted, written with gguf-py and MLX) named from the weights alone.
@Suite("weights: diagnosis on planted mistakes")
struct WeightDiagnosisTests {
    @Test("each planted mistake is named by the weight check with the same diagnosis; correct files pass", arguments: try nonEmpty(LayerDiffTests.cases(), "planted cases"))
    func planted(_ c: LayerDiffTests.Case) throws {
        let model = try Repo.model(c.model)
        let path = Repo.fixtures + "/planted/" + c.file
        let (engine, _) = try FormatRegistry.named(c.format).open(path, for: model)
        let report = try #require(try WeightVerifier.verify(engine: engine, model: model))
        guard let id = c.diagnosis else {
            #expect(report.passed, "\(c.file): \(report.failing.map(\.fileName))")
            return
        }
        let failing = report.failing
        #expect(failing.count == 1, "\(c.file): failing \(failing.map(\.fileName))")
        #expect(failing.first?.diagnosis?.hasPrefix("[\(id)]") == true, "\(c.file): expected [\(id)], got \(failing.first?.diagnosis ?? "none")")
    }
}

/// Missing, extra and refused tensors, with each runtime's strictness.
@Suite("weights: missing, extra, refused tensors")
struct WeightTensorSetTests {
    @Test("PyTorch (strict state_dict) fails an extra tensor; a missing one and a wrong shape are named")
    func safetensorsStrict() throws {
        let model = try Repo.model("fmnist-mlp")
        let reference = try model.weights()
        let dir = try TemporaryDirectory()
        func write(_ edit: (inout [(String, Tensor)]) -> Void) throws -> WeightReport {
            var tensors = try reference.entries.map { ($0.name, try reference.tensor($0)) }
            edit(&tensors)
            var w = SafetensorsWriter()
            for (name, t) in tensors { try w.add(name: name, tensor: t) }
            try w.write(to: dir.file("m.safetensors"))
            let (engine, _) = try SafetensorsSupport().open(dir.file("m.safetensors"), for: model)
            return try #require(try WeightVerifier.verify(engine: engine, model: model))
        }
        let clean = try write { _ in }
        #expect(clean.passed && clean.tensors.count == 4)
        let extra = try write { $0.append(("fc3.weight", Tensor(zeros: [2, 2]))) }
        #expect(!extra.passed && extra.failing.map(\.fileName) == ["fc3.weight"] && extra.failing.first?.status == .extra)
        let missing = try write { $0.removeAll { $0.0 == "fc2.bias" } }
        #expect(!missing.passed && missing.failing.map(\.fileName) == ["fc2.bias"] && missing.failing.first?.status == .missing)
        let shape = try write { t in t = t.map { $0.0 == "fc2.weight" ? ($0.0, $0.1.reshaped([500, 10])) : $0 } }
        #expect(!shape.passed && shape.failing.first?.status == .refused && shape.failing.first?.detail?.contains("[500, 10]") == true)
        // A transposed matrix refused for its shape is still diagnosed from its values.
        let transposed = try write { t in t = t.map { $0.0 == "fc2.weight" ? ($0.0, $0.1.permuted([1, 0])) : $0 } }
        #expect(transposed.failing.first?.diagnosis?.hasPrefix("[transposed]") == true)
    }

    @Test("GGUF: ggml ignores an extra tensor (listed, not failing); a missing one fails")
    func ggufLenient() throws {
        let model = try Repo.model("fmnist-mlp")
        let dir = try TemporaryDirectory()
        _ = try GGUFConverter.convert(model, typeName: "f16", to: dir.file("m.gguf"))
        let file = try GGUFFile(path: dir.file("m.gguf"))
        func rewrite(_ keep: (GGUFTensorInfo) -> Bool, extra: Bool) throws -> WeightReport {
            var w = try GGUFWriter(architecture: "mnist-fc")
            for t in file.tensors where keep(t) { try w.add(name: t.name, type: t.type, ne: t.ne, bytes: try file.rawBytes(t)) }
            if extra { try w.add(name: "unused.weight", type: .f32, ne: [4], bytes: [UInt8](repeating: 0, count: 16)) }
            try w.write(to: dir.file("e.gguf"))
            let engine = try GGMLEngine(file: GGUFFile(path: dir.file("e.gguf")), layers: model.config.layers)
            return try #require(try WeightVerifier.verify(engine: engine, model: model))
        }
        let extra = try rewrite({ _ in true }, extra: true)
        #expect(extra.passed && extra.tensors.contains { $0.fileName == "unused.weight" && $0.status == .extra && !$0.failsVerification })
        let missing = try rewrite({ $0.name != "fc1.bias" }, extra: false)
        #expect(!missing.passed && missing.failing.map(\.fileName) == ["fc1.bias"])
    }
}

/// ggml's importance-matrix quantizers (the call llama-quantize --imatrix makes), recorded by
/// tools/weights/make_imatrix_fixtures.py: they search scales differently from the reference ones and must pass.
@Suite("weights: importance-matrix quantizations by ggml")
struct WeightImatrixTests {
    static let dir = Repo.fixtures + "/weights"
    static func types() throws -> [String] {
        let path = dir + "/imatrix-manifest.json"
        return try #require(try required(WeightFixtureTests.manifest("imatrix-manifest.json"), "types", in: path).objectValue).map(\.key).sorted()
    }

    @Test("every block type quantized with an imatrix stays within its bounds; a doubled scale still fails", arguments: try nonEmpty(types(), "imatrix types"))
    func imatrix(type name: String) throws {
        let type = try #require(GGMLType.named(name))
        let bytes = try readBytes(Self.dir + "/imatrix-\(name).bin")
        let src = try readBytes(Self.dir + "/imatrix-src.f32")
        let reference = src.withUnsafeBytes { b in (0..<(src.count / 4)).map { Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) } }
        #expect(reference.count == 64 * 256)
        let r = WeightVerifier.checkGGUF(bytes, type: type, reference: reference, rowLength: 256)
        #expect(r.status == .pass, "\(name) imatrix: \(r.elementsOutOfBounds) elements, \(r.blocksOutOfBounds) blocks out; \(r.issues.first.map { "\($0)" } ?? "")")
        print("measured ggml imatrix \(name): worst element \(r.worstFractionOfBound.map { String(format: "%.3f", $0) } ?? "-") of its bound, worst scale \(r.worstScaleFractionOfBound.map { String(format: "%.3f", $0) } ?? "-"), worst clipping \(r.worstClipFractionOfBound.map { String(format: "%.3f", $0) } ?? "none"), block RMS \(r.worstRMSFractionOfBound.map { String(format: "%.3f", $0) } ?? "-"); identical to the reference quantizer: \(r.identicalToReferenceQuantizer.map(String.init) ?? "-")")
        // The same file with block 40's scale doubled (an f16 exponent + 1; E8M0 + 1) is caught in that block.
        let (scaleAt, _, _, _) = WeightBoundsTests.layout(type)
        var doubled = bytes
        let at = 40 * type.typeSize + scaleAt
        if type == .mxfp4 { doubled[at] += 1 } else {
            let h = (UInt16(doubled[at]) | UInt16(doubled[at + 1]) << 8) &+ 0x0400
            doubled[at] = UInt8(h & 0xFF); doubled[at + 1] = UInt8(h >> 8)
        }
        let bad = WeightVerifier.checkGGUF(doubled, type: type, reference: reference, rowLength: 256)
        #expect(bad.status == .outOfBounds && bad.issues.allSatisfy { $0.block == 40 }, "\(name): \(bad.issues.map { $0.block ?? -1 })")
    }
    static func zeroTypes() throws -> [String] {
        let path = dir + "/imatrix-manifest.json"
        let zeros = try required(WeightFixtureTests.manifest("imatrix-manifest.json"), "zeros", in: path)
        return try #require(try required(zeros, "types", in: path).objectValue).map(\.key).sorted()
    }

    /// llama-imatrix's statistic after a ReLU (30 % of columns with importance 0), f16-rounded input, and narrow
    /// groups far from zero: zero-importance values are clipped without limit (a finding, not a failure), a group
    /// all on one code with a coarse scale fits no worse than the nominal scale (rule 3 allows it).
    @Test("imatrix with zero-importance columns, f16 input and narrow groups: every block type passes; unbounded clipping is a finding", arguments: try nonEmpty(zeroTypes(), "imatrix zeros types"))
    func imatrixZeros(type name: String) throws {
        let type = try #require(GGMLType.named(name))
        let bytes = try readBytes(Self.dir + "/imatrix-zeros-\(name).bin")
        let src = try readBytes(Self.dir + "/imatrix-zeros-src.f32")
        let reference = src.withUnsafeBytes { b in (0..<(src.count / 4)).map { Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) } }
        #expect(reference.count == 72 * 256)
        let r = WeightVerifier.checkGGUF(bytes, type: type, reference: reference, rowLength: 256)
        // Where ggml's refit ignores zero-importance elements, their codes follow the trial scale, not the stored one
        // (q5_1: one 4.7 steps off inside the grid; q4_0: one outlier block at a block RMS excess of 0.33 steps, bound
        // 0.3): the per-block rules fail those blocks, and the column-wise refit check (ImportanceRefit) accepts them.
        #expect(r.status == .pass, "\(name) imatrix zeros: \(r.elementsOutOfBounds) elements, \(r.blocksOutOfBounds) blocks out; \(r.issues.map { "\($0)" })")
        func f(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "-" }
        print("measured ggml imatrix-zeros \(name): worst element \(f(r.worstFractionOfBound)), scale \(f(r.worstScaleFractionOfBound)), clipping \(f(r.worstClipFractionOfBound)), block RMS \(f(r.worstRMSFractionOfBound)) of their bounds; finding: \(r.finding ?? "-")")
        if type != .q8_0 && type != .mxfp4 {
            // ggml's imatrix quantizers do clip zero-importance values far beyond 2 steps here (what failed before).
            #expect(r.finding?.contains("clipped beyond the grid's end") == true, "\(name): \(r.finding ?? "no finding")")
        }
    }

    /// The blocks ggml's refit leaves outside the per-block rules in the imatrix-zeros files (measured with the
    /// column-wise check off: q4_0 row 34's block 277, its scale at rule 3's bound, and row 50's block 402, a block
    /// RMS excess of 0.33 steps; q5_1 row 1's block 12, one element 4.7 steps off). The refit check must excuse
    /// exactly these and nothing a scaled scale produces.
    static let refitBlocks: [(type: String, blocks: [Int])] = [("q4_0", [277, 402]), ("q5_1", [12])]

    /// The refit excuse accepts exactly ggml's blocks, never a block whose scale was raised by 10 %, and nothing of a
    /// column range whose every row was scaled ×1.1 or ×0.9 (one importance vector cannot make all those rows
    /// least-squares refits of their unchanged codes). Measured limit, not asserted here: one block's scale lowered
    /// toward ggml's trial scale (q5_1 block 12 ×0.90…×0.99) stays explainable by some importance vector — it lies
    /// between the trial scale, whose codes the block keeps, and the stored refit — and is excused; below ×0.9 that
    /// block passes the per-block rules on its own.
    @Test("the imatrix refit excuse: exactly ggml's blocks are excused; never a block scale ×1.1, nor a column range scaled ×1.1 or ×0.9", arguments: try nonEmpty(refitBlocks.map(\.type), "refit types"))
    func refitExcuseIsNotAScaledScale(type name: String) throws {
        let type = try #require(GGMLType.named(name))
        let excused = try #require(Self.refitBlocks.first { $0.type == name }).blocks
        let (bytes, reference) = try Self.zerosFixture(name)
        let clean = WeightVerifier.checkGGUF(bytes, type: type, reference: reference, rowLength: 256)
        #expect(clean.status == .pass)
        #expect(try Self.excusedCount(clean) == excused.count, "\(name): \(clean.finding ?? "no finding")")
        let blocksPerRow = 256 / type.blockSize
        func scaled(_ factor: Float, blocks: [Int]) -> [UInt8] {
            var out = bytes
            for b in blocks {
                let at = b * type.typeSize  // d is the block's first f16 (Q4_0, Q5_1)
                let d = FloatCodecs.halfToFloat(UInt16(out[at]) | UInt16(out[at + 1]) << 8)
                let h = FloatCodecs.floatToHalf(d * factor)
                out[at] = UInt8(h & 0xFF); out[at + 1] = UInt8(h >> 8)
            }
            return out
        }
        for block in excused {
            let column = block % blocksPerRow
            let wholeColumn = (0..<72).map { $0 * blocksPerRow + column }
            // One block ×1.1: the block itself is never excused (it may pass the per-block rules on its own — q4_0's
            // block 402 does, its RMS excess shrinking — but then the excused count drops by one); the other
            // excused blocks lie in other column ranges and stay excused.
            let one = WeightVerifier.checkGGUF(scaled(1.1, blocks: [block]), type: type, reference: reference, rowLength: 256)
            #expect(try Self.excusedCount(one) == excused.count - 1, "\(name) scale ×1.1 on block \(block): \(one.finding ?? "no finding")")
            #expect(one.status == .pass || one.issues.contains { $0.block == block }, "\(name) ×1.1 block \(block): \(one.issues.map { $0.block ?? -1 })")
            // Every row of the column range ×1.1 or ×0.9: no importance vector explains them; the tensor fails and
            // none of that range is excused.
            for factor: Float in [1.1, 0.9] {
                let r = WeightVerifier.checkGGUF(scaled(factor, blocks: wholeColumn), type: type, reference: reference, rowLength: 256)
                #expect(r.status == .outOfBounds, "\(name) scale ×\(factor) on column range \(column) passed: \(r.finding ?? "")")
                #expect(try Self.excusedCount(r) == excused.count - 1, "\(name) scale ×\(factor) on column range \(column): \(r.finding ?? "no finding")")
            }
        }
    }

    /// How many blocks the report's finding says the importance-matrix refit excused (0 when it names none).
    static func excusedCount(_ r: TensorWeightResult) throws -> Int {
        guard let part = r.finding?.components(separatedBy: "; ").first(where: { $0.contains("importance-matrix refit") }) else { return 0 }
        return try #require(Int(part.prefix { $0.isNumber }), "\(part)")
    }

    /// The imatrix-zeros fixture (ggml's output, the reference input).
    static func zerosFixture(_ name: String) throws -> (bytes: [UInt8], reference: [Float]) {
        let bytes = try readBytes(dir + "/imatrix-zeros-\(name).bin")
        let src = try readBytes(dir + "/imatrix-zeros-src.f32")
        return (bytes, src.withUnsafeBytes { b in (0..<(src.count / 4)).map { Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) } })
    }

    /// A tall tensor (the fixture's rows 16 times: 1 152 rows, ~3 300–4 900 inequalities per column range) is decided
    /// on a bounded subset grown by cutting planes, never one tableau over every row: it passes, with each excused
    /// block excused in every copy, and the column ranges scaled ×1.1 in every row still fail.
    @Test("the imatrix refit excuse on a tall tensor (rows ×16): decided in bounded memory, same verdicts", arguments: try nonEmpty(refitBlocks.map(\.type), "refit types"))
    func refitExcuseOnTallTensor(type name: String) throws {
        let type = try #require(GGMLType.named(name))
        let excused = try #require(Self.refitBlocks.first { $0.type == name }).blocks
        let (bytes, reference) = try Self.zerosFixture(name)
        let copies = 16
        let tallBytes = [[UInt8]](repeating: bytes, count: copies).flatMap { $0 }
        let tallReference = [[Float]](repeating: reference, count: copies).flatMap { $0 }
        let r = WeightVerifier.checkGGUF(tallBytes, type: type, reference: tallReference, rowLength: 256)
        #expect(r.status == .pass, "\(name) ×\(copies) rows: \(r.issues.prefix(4).map { "\($0)" })")
        #expect(try Self.excusedCount(r) == copies * excused.count, "\(name) ×\(copies) rows: \(r.finding ?? "no finding")")
        var scaled = tallBytes
        let blocksPerRow = 256 / type.blockSize, column = excused[0] % blocksPerRow
        for row in 0..<(72 * copies) {
            let at = (row * blocksPerRow + column) * type.typeSize
            let h = FloatCodecs.floatToHalf(FloatCodecs.halfToFloat(UInt16(scaled[at]) | UInt16(scaled[at + 1]) << 8) * 1.1)
            scaled[at] = UInt8(h & 0xFF); scaled[at + 1] = UInt8(h >> 8)
        }
        let bad = WeightVerifier.checkGGUF(scaled, type: type, reference: tallReference, rowLength: 256)
        let badExcused = try Self.excusedCount(bad)
        #expect(bad.status == .outOfBounds && badExcused == copies * (excused.count - 1), "\(name) ×\(copies) rows, column \(column) ×1.1: \(bad.finding ?? "no finding")")
    }

    /// ggml quantizes rows independently (σ² is the row's own; the importance is per column), so the same rows in
    /// another order are just as legitimate: the refit decision, and the verdict, must not depend on the order in
    /// which rows reach the linear program (reversed, rotated by 17, odd rows first).
    @Test("the imatrix refit excuse does not depend on row order: permuted rows of ggml's output pass with the same blocks excused", arguments: try nonEmpty(refitBlocks.map(\.type), "refit types"))
    func refitExcuseIsOrderIndependent(type name: String) throws {
        let type = try #require(GGMLType.named(name))
        let excused = try #require(Self.refitBlocks.first { $0.type == name }).blocks
        let (bytes, reference) = try Self.zerosFixture(name)
        let rowBytes = 256 / type.blockSize * type.typeSize
        let orders: [(String, [Int])] = [("reversed", Array((0..<72).reversed())), ("rotated by 17", (0..<72).map { ($0 + 17) % 72 }),
                                          ("odd rows first", Array(stride(from: 1, to: 72, by: 2)) + Array(stride(from: 0, to: 72, by: 2)))]
        for (label, order) in orders {
            var permutedBytes: [UInt8] = [], permutedReference: [Float] = []
            for row in order {
                permutedBytes += bytes[(row * rowBytes)..<((row + 1) * rowBytes)]
                permutedReference += reference[(row * 256)..<((row + 1) * 256)]
            }
            let r = WeightVerifier.checkGGUF(permutedBytes, type: type, reference: permutedReference, rowLength: 256)
            #expect(r.status == .pass, "\(name) rows \(label): \(r.issues.map { "\($0)" })")
            #expect(r.finding?.contains("\(excused.count) block(s) outside the per-block rules are ggml's importance-matrix refit") == true, "\(name) rows \(label): \(r.finding ?? "no finding")")
        }
    }
}
