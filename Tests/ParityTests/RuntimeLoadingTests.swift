import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify
import Testing

/// What each format's runtime does with a file before it computes anything — strict loading, the declared
/// architecture — and what a report may say about a runtime's rounding, on the planted files written by gguf-py,
/// real MLX and the safetensors library (tools/planted/make_planted.sh; expected.json records what the real
/// runtimes did with each file).
@Suite("runtime loading rules and attribution on planted files")
struct RuntimeLoadingTests {
    static func manifest() throws -> [JSONValue] {
        let path = Repo.fixtures + "/planted/expected.json"
        return try #require(try fixtureJSON(path).arrayValue, "\(path): not a list of cases")
    }

    static func planted(_ id: Int) throws -> JSONValue {
        try #require(try manifest().first { $0["id"]?.intValue == id }, "case \(id) missing from planted/expected.json")
    }

    static func path(_ c: JSONValue) throws -> String { Repo.fixtures + "/planted/" + (try #require(c["file"]?.stringValue)) }

    static func layerDiff(_ path: String, model: String, support: FormatSupport? = nil) throws -> VerificationReport {
        let model = model.contains("/") ? try ReferenceModel(directory: model) : try Repo.model(model)
        let support = try support ?? FormatRegistry.detect(path)
        let (engine, variant) = try support.open(path, for: model)
        var report = try Comparator.layerDiff(model: model, golden: try model.golden(), engine: engine, format: support.name, variant: variant.label, file: path)
        report.notes += try support.explain(report, path: path, model: model, golden: try model.golden())
        return report
    }

    // MARK: item 2 — a layout written in another framework's order, then reshaped to the expected shape

    @Test("a conv weight in another framework's order, reshaped to fit, is diagnosed with both layouts named", arguments: try nonEmpty([
        (20, "conv2.weight has its values in [out, in, kh, kw] order (PyTorch's and ggml's), reshaped to [16, 3, 3, 8] to fit; the runtime expects [out, kh, kw, in]"),
        (21, "conv2.kernel has its values in [out, kh, kw, in] order (MLX's), reshaped to [16, 8, 3, 3] to fit; the runtime expects [out, in, kh, kw]"),
        (26, "dense.weight holds the [in, out] matrix (784×10) reshaped to [10, 784] without transposing"),
    ], "reshaped-layout cases"))
    func reshapedLayouts(id: Int, message: String) throws {
        let c = try Self.planted(id)
        let layer = try #require(c["layer"]?.stringValue)
        // The real runtime loads these files (the shape fits) and is off from this layer on.
        if c["format"]?.stringValue == "mlx" {
            #expect(c["mlx_loads"]?.boolValue == true && c["mlx_first_layer_off"]?.stringValue == layer)
        } else {
            #expect(c["gguf_py"]?["gguf_py_reads"]?.boolValue == true)
        }
        let report = try Self.layerDiff(try Self.path(c), model: try #require(c["model"]?.stringValue))
        #expect(!report.passed && report.firstDivergence?.name == layer)
        let diagnosis = try #require(report.layers.first { $0.name == layer }?.diagnosis, "case \(id): no diagnosis at \(layer)")
        #expect(diagnosis.id == c["diagnosis"]?.stringValue)
        #expect(diagnosis.message.hasPrefix(message), "case \(id): \(diagnosis.message)")
        // Moving the values back passes the layer's own tolerance: the fix is exact, not approximate.
        let tolerance = try #require(report.layers.first { $0.name == layer }?.tolerance)
        #expect(tolerance.violations(diagnosis.after).isEmpty)
    }

    // MARK: item 3 — the wrong file for the model

    @Test("a file declaring another architecture is bad input naming both (GGUF general.architecture, MLX model_type)", arguments: try nonEmpty([22, 23], "architecture cases"))
    func otherArchitecture(id: Int) throws {
        let c = try Self.planted(id)
        let path = try Self.path(c)
        let against = try #require(c["checked_against"]?.stringValue)
        let own = try #require(c["model"]?.stringValue)
        // The file itself is a correct conversion for its own model …
        #expect(try Self.layerDiff(path, model: own).passed)
        // … and the real runtime, asked to load it as the other model, refuses (recorded for MLX).
        if c["format"]?.stringValue == "mlx" {
            #expect(c["mlx_against_checked_model"]?["mlx_loads"]?.boolValue == false)
        }
        let model = try Repo.model(against)
        #expect { try FormatRegistry.detect(path).open(path, for: model) } throws: { error in
            guard let e = error as? ParityError, case .mismatch = e else { return false }
            return e.description.contains("'mnist-cnn'") && e.description.contains("'\(against)'") && e.description.contains("'mnist-fc'")
                && e.description.contains("another architecture")
        }
        let cli = try runParity(["layer-diff", against, path])
        #expect(cli.status == 2, "stdout: \(cli.stdout) stderr: \(cli.stderr)")
        #expect(cli.stderr.contains("this file is for another architecture") && !cli.stdout.contains("cannot tell which feature map"))
    }

    @Test("weights that share no tensor with the model are bad input (the reference's own PyTorch file against the other model)")
    func otherTensorSet() throws {
        let cnnWeights = Repo.golden + "/fmnist-cnn/model.safetensors"
        let mlp = try Repo.model("fmnist-mlp")
        #expect { try SafetensorsSupport().open(cnnWeights, for: mlp) } throws: { error in
            guard let e = error as? ParityError, case .mismatch = e else { return false }
            return e.description.contains("shares no tensor with model 'fmnist-mlp'") && e.description.contains("fc1.weight")
                && e.description.contains("conv1.weight")
        }
    }

    // MARK: item 4 — strictness is the runtime's

    @Test("MLX: a parameter the model does not have fails, as load_weights(strict=True) refuses it")
    func mlxExtraParameter() throws {
        let c = try Self.planted(24)
        #expect(c["mlx_loads"]?.boolValue == false)
        #expect(c["mlx_error"]?.stringValue?.contains("parameters not in model") == true, "MLX itself refused the file")
        let report = try Self.layerDiff(try Self.path(c), model: "fmnist-cnn")
        // Every layer computes correctly: the only problem is the file the runtime would not load.
        #expect(report.layers.allSatisfy { $0.status.isPass })
        #expect(!report.passed)
        #expect(report.loadRefusals.count == 1)
        #expect(report.loadRefusals.first?.contains("MLX nn.Module.load_weights(strict=True) refuses") == true)
        #expect(report.loadRefusals.first?.contains("conv1.running_var") == true)
        let cli = try runParity(["verify", "fmnist-cnn", "--file", try Self.path(c)])
        #expect(cli.status == 1 && cli.stdout.contains("load_weights(strict=True) refuses"), "stdout: \(cli.stdout)")
    }

    @Test("PyTorch: a safetensors file with an extra tensor fails, as load_state_dict(strict=True) refuses it")
    func pytorchExtraTensor() throws {
        let c = try Self.planted(27)
        #expect(c["pytorch_loads"]?.boolValue == false)
        #expect(c["pytorch_error"]?.stringValue?.contains("Unexpected key(s) in state_dict: \"conv1.running_var\"") == true)
        let report = try Self.layerDiff(try Self.path(c), model: "fmnist-cnn")
        #expect(report.layers.allSatisfy { $0.status.isPass })
        #expect(!report.passed)
        #expect(report.loadRefusals.first?.contains("PyTorch load_state_dict(strict=True) refuses") == true)
        #expect(report.loadRefusals.first?.contains("conv1.running_var") == true)
    }

    @Test("ggml's mnist loader ignores an extra tensor: the file passes with a warning naming it")
    func ggmlExtraTensor() throws {
        let c = try Self.planted(25)
        #expect(c["gguf_py"]?["gguf_py_reads"]?.boolValue == true)
        let report = try Self.layerDiff(try Self.path(c), model: "fmnist-cnn")
        #expect(report.passed && report.loadRefusals.isEmpty)
        let warnings = report.notes.filter { $0.hasPrefix("warning: ggml examples/mnist graph") }
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains("conv1.running_var") == true)
        // The same file without the extra tensor gets no warning (the warning is about that tensor).
        let clean = try Self.layerDiff(try Self.path(try Self.planted(1)), model: "fmnist-cnn")
        #expect(clean.passed && !clean.notes.contains { $0.hasPrefix("warning:") })
    }

    @Test("where ggml's mnist-eval program would abort (its hard-coded widths, F32 CNN tensors) is a named warning, not a verdict")
    func mnistEvalProgramWarnings() throws {
        // Planted case 9 (gguf-py): a BF16 dense weight in a CNN. The real mnist-eval aborted on it (recorded).
        let c = try Self.planted(9)
        let eval = try #require(c["mnist_eval"])
        #expect(eval["loads"]?.boolValue == false && eval["error"]?.stringValue?.contains("GGML_ASSERT(model.dense_weight->type == GGML_TYPE_F32)") == true,
                "\(eval.serialized())")
        let cnn = try Self.layerDiff(try Self.path(c), model: "fmnist-cnn")
        let warning = try #require(cnn.notes.first { $0.hasPrefix("warning: ggml's mnist-eval program would abort") }, "\(cnn.notes)")
        #expect(warning.contains("dense.weight is BF16 (it asserts GGML_TYPE_F32)"))
        #expect(cnn.loadRefusals.isEmpty, "a program's assert is not the graph's refusal: \(cnn.loadRefusals)")
        // A gguf-py-written file of the 784→256→10 user model: the graph runs it and it passes; mnist-eval's
        // MNIST_NHIDDEN = 500 would abort, and the warning says so without misquoting the assert.
        let user = try Self.layerDiff(Repo.fixtures + "/verdict-gguf/user-mlp-256-q8_0.gguf", model: Repo.fixtures + "/user-mlp-256")
        #expect(user.passed, "\(user.layers.map { "\($0.name): \($0.status.detail)" })")
        let userWarning = try #require(user.notes.first { $0.hasPrefix("warning: ggml's mnist-eval program would abort") }, "\(user.notes)")
        #expect(userWarning.contains("fc1.weight ne [784, 256, 1, 1] (it asserts [784, 500, 1, 1])"), "\(userWarning)")
        // The bundled models' own files trigger no such warning.
        #expect(!(try Self.layerDiff(try Self.path(try Self.planted(1)), model: "fmnist-cnn")).notes.contains { $0.contains("mnist-eval program") })
    }

    @Test("the loading rules: what each runtime refuses and what it ignores")
    func rules() {
        let expected = [StrictLoadingRule.Parameter(name: "a", shape: [2, 3]), .init(name: "b", shape: [3])]
        let stored = [StrictLoadingRule.Parameter(name: "a", shape: [3, 2]), .init(name: "x", shape: [1])]
        let mlx = StrictLoadingRule.mlxStrict.check(file: "f", expected: expected, stored: stored)
        #expect(mlx.refusals.count == 3 && mlx.warnings.isEmpty)
        #expect(mlx.refusals.contains { $0.contains("1 parameter(s) not in the model: x") })
        #expect(mlx.refusals.contains { $0.contains("1 parameter(s) missing: b") })
        #expect(mlx.refusals.contains { $0.contains("a has shape [3, 2], the model's is [2, 3]") })
        let ggml = StrictLoadingRule.ggmlMnist.check(file: "f", expected: expected, stored: stored)
        #expect(ggml.refusals.count == 2 && ggml.warnings.count == 1 && ggml.warnings[0].contains("x"))
        #expect(StrictLoadingRule.mlxStrict.check(file: "f", expected: expected, stored: expected) == .accepted(by: .mlxStrict))
    }

    // MARK: item 6 — a failing report does not excuse itself

    @Test("a file that fails both im2col rules gets no rounding excuse; a correct one does", arguments: try nonEmpty(GGMLIm2colRule.allCases.filter { $0 != .f32 }, "im2col rules"))
    func noExcuse(rule: GGMLIm2colRule) throws {
        let c = try Self.planted(3)
        #expect(c["report_rule"]?.stringValue != nil)
        let bad = try Self.layerDiff(try Self.path(c), model: "fmnist-cnn", support: GGUFSupport(im2col: rule))
        #expect(!bad.passed)
        let excuses = bad.notes.filter { $0.contains("ggml's rounding, not the conversion") || $0.contains("accounts for the gap") }
        #expect(excuses.isEmpty, "\(excuses)")
        // The correct file of the same model under the same rule is where attribution belongs.
        let good = try Self.layerDiff(try Self.path(try Self.planted(1)), model: "fmnist-cnn", support: GGUFSupport(im2col: rule))
        #expect(good.passed)
        #expect(good.notes.contains { $0.contains("ggml's rounding, not the conversion") || $0.contains("accounts for the gap") })
    }

    // MARK: item 10 — the chart draws only what was measured

    @Test("HTML chart: exact zeros are marked in their own row, never joined by a line; the divergence label stays inside")
    func chart() throws {
        let c = try Self.planted(3)
        let report = try Self.layerDiff(try Self.path(c), model: "fmnist-cnn")
        let zeros = report.layers.filter { $0.isolated?.relL2 == 0 }.map(\.name)
        #expect(zeros.count >= 4, "relu/pool/flatten fed their golden inputs are exact: \(zeros)")
        let html = HTMLReport.render([report], title: "t")
        // One hollow "exactly 0" marker per zero of the own-error series.
        let ownZeroMarkers = html.components(separatedBy: "own rel L2 (golden input): exactly 0").count - 1
        #expect(ownZeroMarkers == zeros.count)
        // No polyline of the own-error series spans a zero: its only non-zero neighbours here are conv1/conv2
        // (separated by zeros) and dense (after zeros), so it has no line at all.
        let polylines = html.components(separatedBy: "<polyline").dropFirst().map { $0.components(separatedBy: "</polyline>")[0] }
        #expect(!polylines.isEmpty, "the other series still have lines")
        let ownLines = polylines.filter { $0.contains("own rel L2 (golden input)</title>") }
        #expect(ownLines.isEmpty, "\(ownLines.count) own-error lines")
        // The last layer's label grows leftwards (text-anchor end), so it is not clipped at the right edge.
        #expect(html.contains("text-anchor=\"end\" fill=\"#c62828\">first divergence: dense</text>"))
    }
}
