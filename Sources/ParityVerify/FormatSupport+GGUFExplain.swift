import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

extension GGUFSupport {
    /// What ggml's conv_2d im2col rule contributes to this file's gap to PyTorch. The same file is run under the
    /// other rule: ggml 0.15 convolves in the kernel's type (exact for F32 kernels), ggml up to d99724f built
    /// im2col in F16. A gap is put down to ggml's F16 rounding only when rounding explains it — the file passes
    /// when convolved in the kernel's type. A file that fails that way has a conversion mistake, and no note
    /// may excuse it, whatever the F16 run shows.
    func explainIm2col(_ report: VerificationReport, path: String, model: ReferenceModel, golden: GoldenFile) throws -> [String] {
        guard model.config.layers.contains(where: { if case .conv2d = $0 { return true } else { return false } }),
              let last = report.layers.last, let lastMetrics = last.metrics else { return [] }
        let other: GGMLIm2colRule = im2col == .kernelType ? .f16 : .kernelType
        let otherSupport = GGUFSupport(im2col: other)
        let (engine, otherVariant) = try otherSupport.open(path, for: model)
        let alt = try Comparator.verify(model: model, golden: golden, engine: engine, format: name, variant: otherVariant.label, file: path, checkWeights: false)
        guard let altMetrics = alt.layers.last?.metrics else { return [] }
        let here = "max abs \(formatNumber(lastMetrics.maxAbs)) (rel L2 \(formatNumber(lastMetrics.relL2)))"
        let there = "max abs \(formatNumber(altMetrics.maxAbs)) (rel L2 \(formatNumber(altMetrics.relL2)))"
        // The exact run (kernel-type im2col) decides whether the conversion is right.
        let exact = im2col == .kernelType ? report : alt
        if im2col == .kernelType {
            guard exact.passed else { return [] }
            return ["ggml 0.15 convolves in the kernel's type, and the file passes: \(last.name) is at \(here) against PyTorch. ggml up to "
                + "d99724f built conv_2d's im2col in F16, which on this file gives \(there) (\(alt.passed ? "within" : "outside") the "
                + "\(otherVariant.label) tolerances); that difference is ggml's rounding, not the conversion"]
        }
        guard exact.passed else {
            return ["the F16 im2col of older ggml does not explain this file's gap: convolved in the kernel's type (ggml 0.15) the same file "
                + "also fails (\(last.name) at \(there) there, \(here) here), so the conversion itself is wrong"]
        }
        return ["the F16 im2col of older ggml accounts for the gap to PyTorch: \(last.name) is at \(here) with it and \(there) "
            + "when the same file is convolved in the kernel's type (ggml 0.15), where it passes"]
    }
}
