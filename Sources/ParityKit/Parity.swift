@_exported import ParityCore
@_exported import ParityRun
@_exported import ParityVerify
import Foundation

/// Parity as a library, for a user's own `swift test` (docs/matrix.md): verify one converted file against a model, or
/// a whole matrix from config files. Bad input throws `ParityError` (the CLI's exit 2); a verification that fails is
/// a report whose verdict says so, with readable failures (node or tensor, metric, value, limit, where).
public enum Parity {
    /// Verifies a converted file (a GGUF, a safetensors file, an MLX directory; format detected from the content)
    /// against a model: a bundled name (`fmnist-mlp`, `tiny-llama`) or a reference directory (config.json, weights,
    /// golden.h5). The same cell `parity verify MODEL --file FILE` runs.
    public static func verify(model: String, file: String, options: VerifyOptions = VerifyOptions()) throws -> VerificationReport {
        let workDirectory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: workDirectory) }
        let settings = CellSettings(im2col: options.im2col == .f16 ? .f16 : .kernelType, llama: options.llama, workDirectory: workDirectory)
        let store = ReferenceStore()
        let planned = try CellRunner.plan(models: [model], formats: options.format.map { [$0] } ?? [], variants: [], file: file,
                                          settings: settings, store: store)
        guard planned.count == 1 else { throw ParityError.usage("verify(model: \(model), file: \(file)): expected one cell, planned \(planned.count)") }
        let outcome: CellOutcome
        switch planned[0] {
        case let .cell(cell): outcome = CellRunner.run(cell, settings: settings, store: store)
        case let .decided(decided): outcome = decided
        }
        switch outcome {
        case var .report(report):
            report.applyToleranceOverrides(options.tolerances)
            return report
        case let .badInput(error): throw ParityError.usage("\(error.model) \(error.format) \(error.variant): \(error.message)")
        case let .skipped(reason): throw ParityError.usage(reason)
        }
    }

    /// `verify(model:file:)` with file URLs (a directory URL for a reference directory or an MLX model).
    public static func verify(model: URL, file: URL, options: VerifyOptions = VerifyOptions()) throws -> VerificationReport {
        try verify(model: model.path, file: file.path, options: options)
    }

    /// A bundled model by name against a converted file at a URL.
    public static func verify(model: String, file: URL, options: VerifyOptions = VerifyOptions()) throws -> VerificationReport {
        try verify(model: model, file: file.path, options: options)
    }

    /// Runs the matrix of one or more config files (YAML or JSON; docs/matrix.md), as `parity verify --config` does.
    public static func verify(config: URL..., options: MatrixOptions = MatrixOptions()) throws -> MatrixReport {
        try verify(configs: config.map(\.path), options: options)
    }

    /// Config files by path or glob pattern (`configs/*.yaml`, expanded by Parity).
    public static func verify(configs: [String], options: MatrixOptions = MatrixOptions()) throws -> MatrixReport {
        try Matrix.run(try MatrixConfig.load(configs), options: options)
    }
}

/// Options of `Parity.verify(model:file:)`.
public struct VerifyOptions: Sendable {
    /// The file's format (nil: detected from the content).
    public var format: Variant.Format?
    /// User tolerances by node-name pattern (each with its reason).
    public var tolerances: [ToleranceOverride] = []
    public var im2col: GGMLIm2colRuleChoice = .kernel
    public var llama: LlamaRuntimeSettings = .llamaCppCLIDefaults

    public init(format: Variant.Format? = nil, tolerances: [ToleranceOverride] = []) {
        self.format = format
        self.tolerances = tolerances
    }
}
