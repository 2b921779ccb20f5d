import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify
import Testing

/// The verdict: typed variants, tolerances derived from what each layer of a file stores, pass / fail / unjudged,
/// labels that say what was written, and one cell's bad input not stopping the others. The files judged here are
/// written by the real libraries: Fixtures/verdict-gguf (gguf-py's writer with gguf-py's and ggml's reference
/// quantizers, tools/ggml/make_verdict_fixtures.py) and Fixtures/verdict-mlx (MLX 0.32, tools/mlx/make_verdict_fixtures.py),
/// both of the user's own model Fixtures/user-mlp-256 (784 → 256 → 10, trained in PyTorch).
@Suite("verdict")
struct VerdictTests {
    static let userModel = Repo.fixtures + "/user-mlp-256"
    static let ggufDir = Repo.fixtures + "/verdict-gguf"
    static let mlxDir = Repo.fixtures + "/verdict-mlx"

    static func manifest(_ dir: String) throws -> JSONValue { try JSONParser.parse(readBytes(dir + "/manifest.json")) }

    /// Every variant `convert` can write, by format (what `verify --variant` must accept).
    static let writableLabels: [(Variant.Format, String)] = {
        var out: [(Variant.Format, String)] = FloatType.allCases.map { (.safetensors, $0.rawValue) }
        for t in GGUFTypeChoice.allCases { out += [(.gguf, t.rawValue), (.gguf, t.rawValue + "+im2col-f16")] }
        for f in FloatType.allCases {
            out.append((.mlx, f.rawValue))
            for bits in MLXQuantMode.affine.allowedBits { for g in MLXQuantMode.affine.allowedGroupSizes { out.append((.mlx, "\(f.rawValue)+affine-b\(bits)-g\(g)")) } }
            for mode in [MLXQuantMode.mxfp4, .mxfp8, .nvfp4] { out.append((.mlx, "\(f.rawValue)+\(mode.rawValue)")) }
        }
        return out
    }()

    @Test("every variant convert writes parses to a typed value whose label is canonical and round-trips")
    func variantsRoundTrip() throws {
        #expect(Self.writableLabels.count > 100)
        for (format, label) in Self.writableLabels {
            let v = try Variant.parse(label, format: format)
            #expect(v.isUniform, "\(label)")
            // f32 is left out before a quantization ("nvfp4" is f32 weights + nvfp4); everything else is kept.
            let canonical = format == .mlx && label.hasPrefix("f32+") ? String(label.dropFirst(4)) : label
            #expect(v.label == canonical, "\(format) \(label) → \(v.label)")
            #expect(try Variant.parse(v.label, format: format) == v, "\(label)")
        }
        // Short forms take mx.quantize's defaults, and the label then names them.
        #expect(try Variant.parse("f16+affine", format: .mlx).label == "f16+affine-b4-g64")
        #expect(try Variant.parse("affine-b8", format: .mlx).label == "affine-b8-g64")
        #expect(try Variant.parse("nvfp4-b4-g16", format: .mlx).label == "nvfp4")
        // Labels of mixed files round-trip too.
        for (format, label) in [(Variant.Format.gguf, "mixed(f16,q8_0)"), (.gguf, "mixed(f16,q4_K)+im2col-f16"), (.safetensors, "mixed(bf16,f32)"),
                                (.mlx, "f16+mixed(affine-b4-g64,affine-b8-g32)"), (.mlx, "mixed(bf16,f16)+nvfp4")] {
            let v = try Variant.parse(label, format: format)
            #expect(v.label == label && !v.isUniform, "\(label)")
        }
    }

    @Test("an unknown variant is a usage error that names the valid forms", arguments: try nonEmpty([
        (Variant.Format.gguf, "q9_0"), (.gguf, "q8_K"), (.mlx, "f16+affine-b7-g64"), (.mlx, "affine-b4-g48"), (.mlx, "nvfp4-g32"),
        (.mlx, "f8+affine"), (.safetensors, "fp16"), (.mlx, "f16+affine-b4-b8"),
    ], "unknown variants"))
    func unknownVariant(format: Variant.Format, label: String) throws {
        #expect(throws: ParityError.self) { try Variant.parse(label, format: format) }
        do { _ = try Variant.parse(label, format: format) } catch {
            #expect(error.description.contains("valid forms: \(Variant.forms(format))"), "\(error.description)")
        }
    }

    // MARK: tolerances derived from the stored weights

    /// The weight-error column of the ggml derivation against what the reference quantizers (byte-identical to
    /// ggml's) do to Gaussian rows: the block-grid estimate must hold within a factor that the 2x limit covers.
    @Test("the ggml block-grid error estimates match the reference quantizers on Gaussian rows")
    func blockErrorEstimates() throws {
        var rng = SplitMix64(seed: 9)
        let rows = 64, cols = 1024
        let values = (0..<(rows * cols)).map { _ in rng.normal() }
        let types = GGUFTypeChoice.allCases.map(\.type).filter(\.isQuantized)
        #expect(types.count == 11)
        for type in types {
            let estimate = try #require(TolerancePolicy.ggmlBlockErrors(type)).weight
            let bytes = try GGMLQuants.quantize(values, to: type)
            let back = bytes.withUnsafeBytes { GGMLQuants.dequantize($0, type: type, count: values.count) }
            let measured = relL2(back, values)
            // Lower bound: an estimate far above the truth would make the limit too loose to catch a mistake;
            // upper bound: the limit is 2x the estimate, so the estimate may not undershoot by more than 1.3x.
            #expect(measured > 0.5 * estimate && measured < 1.3 * estimate, "\(type.name): measured \(measured), estimate \(estimate)")
        }
    }

    @Test("a gguf-py-written quantized GGUF of the user's model passes, each layer judged by its own stored type",
          arguments: try nonEmpty(["user-mlp-256-q8_0.gguf", "user-mlp-256-q4_K.gguf"], "gguf-py files"))
    func ggufPyQuantizedPasses(file: String) throws {
        let manifest = try Self.manifest(Self.ggufDir)
        let entry = try #require(manifest["files"]?[file])
        #expect(SHA256.hex(try readBytes(Self.ggufDir + "/" + file)) == entry["sha256"]?.stringValue)
        let typeName = try #require(entry["type"]?.stringValue)
        let type = try #require(GGMLType.named(typeName))
        let model = try ReferenceModel(directory: Self.userModel)
        let report = try GGUFSupport().verify(Self.ggufDir + "/" + file, model: model, golden: model.golden())
        #expect(report.variant == "mixed(f16,\(type.name))")
        #expect(report.verdict == .pass, "\(report.layers.map { "\($0.name) \($0.status.label) \($0.status.detail)" })")
        // fc1 is F16 (784 fits no block of 32): F16 × F16 activations; fc2 is the block type with its activations.
        let fc1 = try #require(report.layers.first { $0.name == "fc1" }?.tolerance)
        let fc2 = try #require(report.layers.first { $0.name == "fc2" }?.tolerance)
        #expect(fc1.maxRelL2 == 3e-3)
        #expect(fc2.reason.contains("ggml \(type.name) weights") && fc2.reason.contains(type.vecDotType.name))
        // The same file with one block scale of fc2 doubled (a wrong scale) fails at fc2.
        let scratch = try TemporaryDirectory()
        var bytes = try readBytes(Self.ggufDir + "/" + file)
        let gguf = try GGUFFile(path: Self.ggufDir + "/" + file)
        let t = try #require(gguf.tensor(named: "fc2.weight"))
        // d is the first f16 of a q8_0 block and of a q4_K block (then dmin): scaling it by 2 adds 1 to its exponent.
        let at = gguf.dataStart + t.offset
        let d = UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8
        let doubled = d &+ 0x0400
        bytes[at] = UInt8(doubled & 0xFF); bytes[at + 1] = UInt8(doubled >> 8)
        try AtomicFileWriter.write(bytes, to: scratch.file(file))
        let broken = try GGUFSupport().verify(scratch.file(file), model: model, golden: model.golden())
        #expect(broken.verdict == .fail && broken.firstDivergence?.name == "fc2", "\(broken.layers.map { "\($0.name) \($0.status.detail)" })")
    }

    /// The issue's must-show: the user's 784 → 256 → 10 MLP passes in every GGUF type Parity writes (ggml's
    /// reference quantizers, byte-identical to ggml's C — GGMLQuantsTests) and every MLX quantization whose
    /// groups fit its rows. Prints the table of measured worst rel L2 against the limit.
    @Test("the user's own MLP passes in every GGUF type and every MLX quantization that fits its rows")
    func userModelEveryType() throws {
        let model = try ReferenceModel(directory: Self.userModel)
        let golden = try model.golden()
        let scratch = try TemporaryDirectory()
        var cells: [(FormatSupport, Variant)] = GGUFTypeChoice.allCases.map { (GGUFSupport(), Variant.gguf([$0.type])) }
        for bits in MLXQuantMode.affine.allowedBits where bits >= 2 {
            for g in MLXQuantMode.affine.allowedGroupSizes where 256 % g == 0 { cells.append((MLXSupport(), .mlx([.f16], [try MLXQuantSpec(mode: .affine, bits: bits, groupSize: g)]))) }
        }
        for mode in [MLXQuantMode.mxfp4, .mxfp8, .nvfp4] { cells.append((MLXSupport(), .mlx([.f16], [try MLXQuantSpec(mode: mode)]))) }
        #expect(cells.count == 14 + 18 + 3)
        var table: [String] = []
        for (support, variant) in cells {
            let path = scratch.file("\(variant.label).\(support.name)")
            _ = try support.convert(model, variant: variant, to: path)
            let report = try support.verify(path, model: model, golden: golden)
            #expect(report.verdict == .pass, "\(support.name) \(variant.label): \(report.layers.map { "\($0.name) \($0.status.label) \($0.status.detail)" })")
            let worst = try #require(report.layers.compactMap { l in l.metrics.flatMap { m in l.tolerance.map { (l.name, m.relL2, $0.maxRelL2) } } }
                .max { $0.1 / $0.2 < $1.1 / $1.2 })
            table.append("\(support.name) \(report.variant): worst \(worst.0) rel L2 \(formatNumber(worst.1)), limit \(formatNumber(worst.2)), margin \(formatNumber(worst.2 / worst.1))x")
        }
        print(table.joined(separator: "\n"))
    }

    @Test("an MLX file whose first Linear stayed f16 judges that layer as f16, not by the 4-bit name (MLX-written)")
    func mlxToleranceFollowsContent() throws {
        let model = try ReferenceModel(directory: Self.userModel)
        let dir = Self.mlxDir + "/f16-affine-b4-g64"
        let manifest = try Self.manifest(Self.mlxDir)
        let entry = try #require(manifest["cases"]?["f16-affine-b4-g64"])
        #expect(entry["quantized_modules"] == .array([.string("fc2")]))
        #expect(SHA256.hex(try readBytes(dir + "/model.safetensors")) == entry["sha256"]?["model.safetensors"]?.stringValue)
        let report = try MLXSupport().verify(dir, model: model, golden: model.golden())
        #expect(report.variant == "f16+affine-b4-g64")
        #expect(report.verdict == .pass)
        #expect(report.layers.first { $0.name == "fc1" }?.tolerance?.maxRelL2 == 2e-3)
        #expect(report.layers.first { $0.name == "relu1" }?.tolerance?.maxRelL2 == 2e-3)
        let fc2 = try #require(report.layers.first { $0.name == "fc2" }?.tolerance)
        #expect(abs(fc2.maxRelL2 - (4e-6 + 0.144 * 0.144).squareRoot()) < 1e-9, "\(fc2.maxRelL2)")
        // MLX's own logits error, recorded when the file was written, is what Parity's engine measures.
        let mlxRel = try #require(entry["mlx_logits_rel_l2"]?.doubleValue)
        let ours = try #require(report.layers.first { $0.name == "fc2" }?.metrics?.relL2)
        #expect(abs(ours - mlxRel) < 1e-3 * mlxRel + 1e-6, "Parity \(ours), MLX \(mlxRel)")
    }

    @Test("no tolerance policy is its own outcome: UNJUDGED, never PASS or FAIL, exit 3, JSON verdict unjudged (MLX-written 1-bit)")
    func unjudged() throws {
        let dir = Self.mlxDir + "/f16-affine-b1-g64"
        let scratch = try TemporaryDirectory()
        let result = try runParity(["verify", Self.userModel, "--file", dir, "--json", scratch.file("r.json")])
        #expect(result.status == 3, "\(result.stdout)\(result.stderr)")
        let summary = try #require(result.stdout.components(separatedBy: "summary\n").last)
        #expect(summary.hasPrefix("  UNJUDGED  user-mlp-256  mlx f16+affine-b1-g64"), "\(summary)")
        #expect(!result.stdout.contains("FAIL") && !summary.contains("PASS"), "\(result.stdout)")
        let json = try JSONParser.parse(readBytes(scratch.file("r.json")))
        #expect(json["verdict"] == .string("unjudged") && json["passed"] == .bool(false))
        let report = try #require(json["reports"]?.arrayValue?.first)
        #expect(report["verdict"] == .string("unjudged") && report["first_divergence"] == .null)
        let statuses = try #require(report["layers"]?.arrayValue).map { ($0["name"]?.stringValue ?? "", $0["status"]?.stringValue ?? "") }
        // fc1 (f16) is still judged; fc2 (1-bit) has no derivation.
        #expect(statuses.first { $0.0 == "fc1" }?.1 == "pass" && statuses.first { $0.0 == "fc2" }?.1 == "unjudged", "\(statuses)")
        let schema = JSONSchemaValidator(root: try JSONParser.parse(readBytes(Repo.root + "/tools/schemas/parity-report.schema.json")))
        #expect(schema.validate(json) == [])
    }

    @Test("an F64 safetensors file (official library) is judged by the f32 policy: PyTorch rounds it into f32 parameters")
    func f64JudgedAsF32() throws {
        let dir = Repo.fixtures + "/verdict-extra"
        let name = "fmnist-cnn-f64.safetensors"
        #expect(SHA256.hex(try readBytes(dir + "/" + name)) == (try Self.manifest(dir))["files"]?[name]?["sha256"]?.stringValue)
        let result = try runParity(["verify", "fmnist-cnn", "--file", dir + "/" + name])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("  PASS  fmnist-cnn  safetensors f64  worst rel L2"), "\(result.stdout)")
        #expect(!result.stdout.contains("no tolerance policy"))
    }

    @Test("a ggml type Parity does not compute (gguf-py TQ1_0) is unsupported input, exit 2 naming the tensor, never a failed conversion")
    func uncomputableTypeIsUnsupported() throws {
        let dir = Repo.fixtures + "/verdict-extra"
        let name = "user-mlp-256-tq1_0.gguf"
        let manifest = try Self.manifest(dir)
        #expect(manifest["files"]?[name]?["tensor_types"]?["fc2.weight"] == .string("TQ1_0"))
        #expect(SHA256.hex(try readBytes(dir + "/" + name)) == manifest["files"]?[name]?["sha256"]?.stringValue)
        for command in [["verify", Self.userModel, "--file", dir + "/" + name], ["layer-diff", Self.userModel, dir + "/" + name]] {
            let result = try runParity(command)
            #expect(result.status == 2, "\(command[0]): \(result.stdout)\(result.stderr)")
            #expect(result.stderr.contains("tensor 'fc2.weight' is TQ1_0") && !result.stdout.contains("FAIL"), "\(result.stdout)\(result.stderr)")
        }
    }

    @Test("an F8 safetensors file (official library) is read, verified and UNJUDGED: Parity derives no F8 tolerance")
    func f8Unjudged() throws {
        let dir = Repo.fixtures + "/verdict-safetensors"
        let manifest = try Self.manifest(dir)
        let name = "user-mlp-256-f8_e4m3.safetensors"
        #expect(SHA256.hex(try readBytes(dir + "/" + name)) == manifest["files"]?[name]?["sha256"]?.stringValue)
        let result = try runParity(["verify", Self.userModel, "--file", dir + "/" + name])
        #expect(result.status == 3, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("  UNJUDGED  user-mlp-256  safetensors f8_e4m3  worst rel L2"), "\(result.stdout)")
        #expect(!result.stdout.contains("FAIL") && !result.stdout.contains("PASS"))
        #expect(try Variant.parse("f8_e4m3", format: .safetensors).label == "f8_e4m3")
        #expect(try !Variant.parse("f8_e4m3", format: .safetensors).isUniform)
    }

    // MARK: labels say what was written

    @Test("convert labels the output by what it holds: all-F16 GGUF is MOSTLY_F16; an MLX file with nothing quantized is not called quantized")
    func convertSaysWhatWasWritten() throws {
        let scratch = try TemporaryDirectory()
        let gguf = try runParity(["convert", "fmnist-mlp", "--to", "gguf", "--type", "q8_0", "-o", scratch.file("q8.gguf")])
        #expect(gguf.status == 0)
        #expect(gguf.stdout.contains("fc1.weight: rows of 784 are not a multiple of q8_0's block size 32; falling back to F16"))
        #expect(gguf.stdout.contains("(gguf f16; asked for q8_0"), "\(gguf.stdout)")
        let file = try GGUFFile(path: scratch.file("q8.gguf"))
        #expect(file["general.file_type"]?.intValue == 1)  // LLAMA_FTYPE_MOSTLY_F16
        #expect(file["general.quantization_version"] == nil)
        // The user's model: fc2 fits q8_0's block, so the file is MOSTLY_Q8_0 and says which tensor is which.
        let user = try runParity(["convert", Self.userModel, "--to", "gguf", "--type", "q8_0", "-o", scratch.file("u.gguf")])
        #expect(user.stdout.contains("(gguf mixed(f16,q8_0); asked for q8_0"), "\(user.stdout)")
        #expect(user.stdout.contains("fc2.weight [10, 256] -> fc2.weight ne [256, 10] q8_0"))
        #expect(try GGUFFile(path: scratch.file("u.gguf"))["general.file_type"]?.intValue == 7)
        let mlx = try runParity(["convert", "fmnist-mlp", "--to", "mlx", "--dtype", "f16", "--mode", "affine", "-o", scratch.file("m")])
        #expect(mlx.status == 0)
        #expect(mlx.stdout.contains("nothing was quantized"))
        #expect(mlx.stdout.contains("(mlx f16; asked for f16+affine-b4-g64"), "\(mlx.stdout)")
        #expect(!mlx.stdout.contains("wrote \(scratch.file("m")) (mlx f16+affine"))
    }

    // MARK: the command line

    @Test("verify --variant takes every variant convert writes; the report keeps bits and group")
    func verifyVariants() throws {
        let result = try runParity(["verify", Self.userModel, "--variant", "f16+affine-b4-g64", "--variant", "q4_K", "--variant", "bf16"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let summary = try #require(result.stdout.components(separatedBy: "summary\n").last)
        for line in ["PASS  user-mlp-256  mlx f16+affine-b4-g64", "PASS  user-mlp-256  gguf mixed(f16,q4_K)", "PASS  user-mlp-256  safetensors bf16",
                     "PASS  user-mlp-256  gguf bf16", "PASS  user-mlp-256  mlx bf16"] {
            #expect(summary.contains(line), "\(line) in \(summary)")
        }
        #expect(result.stdout.contains("converted as q4_K, but the file holds mixed(f16,q4_K)"))
    }

    @Test("bad variants and option values are usage errors (exit 2) that say what is accepted", arguments: try nonEmpty([
        (["verify", "fmnist-mlp", "--variant", "f16+affine-b7-g64"], "valid forms"),
        (["verify", "fmnist-mlp", "--format", "gguf", "--variant", "nvfp4"], "unknown variant \"nvfp4\""),
        (["verify", "fmnist-mlp", "--format", "ggfu"], "ggfu"),
        (["convert", "fmnist-mlp", "--to", "mlx", "--mode", "afine", "-o", "/tmp/x"], "afine"),
        (["convert", "fmnist-mlp", "--to", "mlx", "--bits", "7", "-o", "/tmp/x"], "7 bits is not supported (supported: 1, 2, 3, 4, 5, 6, 8)"),
        (["convert", "fmnist-mlp", "--to", "gguf", "--type", "q4_k", "-o", "/tmp/x"], "q4_k"),
        (["layer-diff", "fmnist-mlp", "x", "--ggml-im2col", "f32"], "f32"),
    ], "usage errors"))
    func usageErrors(arguments: [String], message: String) throws {
        let result = try runParity(arguments)
        #expect(result.status == 2, "\(arguments): \(result.stdout)\(result.stderr)")
        #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
    }

    @Test("--help lists the fixed values and what --bits accepts")
    func help() throws {
        let convert = try runParity(["convert", "--help"])
        // argument-parser wraps the help to the terminal width: compare with single spaces.
        func flat(_ s: String) -> String { s.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ") }
        #expect(flat(convert.stdout).contains("affine, mxfp4, mxfp8, nvfp4") && flat(convert.stdout).contains("q2_K, q3_K") && flat(convert.stdout).contains("affine 1, 2, 3, 4, 5, 6, 8 (default 4; MLX refuses 7)"),
                "\(convert.stdout)")
        let quantize = try runParity(["quantize", "--help"])
        #expect(flat(quantize.stdout).contains("affine 1, 2, 3, 4, 5, 6, 8") && flat(quantize.stdout).contains("values: affine, mxfp4, mxfp8, nvfp4"))
    }

    @Test("one cell's bad input does not stop the run: the other cells report, the error cell is named, exit 2")
    func cellErrorsDoNotAbort() throws {
        // The user's own model under an architecture Parity has no GGUF or MLX layout for.
        let scratch = try TemporaryDirectory()
        let dir = scratch.file("my-mlp")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in ["model.safetensors", "golden.h5"] { try FileManager.default.copyItem(atPath: Self.userModel + "/" + f, toPath: dir + "/" + f) }
        let config = try String(contentsOfFile: Self.userModel + "/config.json", encoding: .utf8)
        #expect(config.contains("\"architecture\": \"mnist-fc\""))
        try config.replacingOccurrences(of: "\"architecture\": \"mnist-fc\"", with: "\"architecture\": \"my-mlp\"")
            .write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        let result = try runParity(["verify", dir, "--json", scratch.file("r.json")])
        #expect(result.status == 2, "\(result.stdout)\(result.stderr)")
        let summary = try #require(result.stdout.components(separatedBy: "summary\n").last)
        for dtype in ["f32", "f16", "bf16"] { #expect(summary.contains("PASS  user-mlp-256  safetensors \(dtype)"), "\(summary)") }
        #expect(summary.contains("ERROR  user-mlp-256  gguf f32") && summary.contains("no GGUF layout for architecture my-mlp"), "\(summary)")
        #expect(summary.contains("ERROR  user-mlp-256  mlx f16") && summary.contains("no MLX layout for architecture my-mlp"), "\(summary)")
        #expect(result.stderr.contains("error: ") && result.stderr.contains("config.json"))
        let json = try JSONParser.parse(readBytes(scratch.file("r.json")))
        #expect(json["verdict"] == .string("error"))
        #expect(json["reports"]?.arrayValue?.count == 3)
        #expect(json["errors"]?.arrayValue?.count == 7)
        let schema = JSONSchemaValidator(root: try JSONParser.parse(readBytes(Repo.root + "/tools/schemas/parity-report.schema.json")))
        #expect(schema.validate(json) == [])
    }
}

/// ‖a − b‖ / ‖b‖ in double precision.
func relL2(_ a: [Float], _ b: [Float]) -> Double {
    var num = 0.0, den = 0.0
    for (x, y) in zip(a, b) { num += Double(x - y) * Double(x - y); den += Double(y) * Double(y) }
    return (num / den).squareRoot()
}

