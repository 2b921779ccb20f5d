// Engine timings for the bundled image models: thread CPU time (CLOCK_THREAD_CPUTIME_ID), best of N runs, so
// other work on a shared machine moves the numbers less than wall time would. Usage:
//   parity-speed images GOLDEN_DIR FILES_DIR [FILTER]  (µs per image, batch 1 and 500, per engine and file)
//   parity-speed kernels                            (4096×4096 matvec per quantized type, and read bandwidth)
import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

func threadSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Best-of-`runs` thread CPU time of `body`, after one warm-up call.
func best(runs: Int, _ body: () throws -> Void) rethrows -> Double {
    try body()
    var bestTime = Double.infinity
    for _ in 0..<runs {
        let t0 = threadSeconds()
        try body()
        bestTime = min(bestTime, threadSeconds() - t0)
    }
    return bestTime
}

func randomImages(_ n: Int) -> Tensor {
    var g = SystemRandomNumberGenerator()
    return Tensor(shape: [n, 1, 28, 28], data: (0..<(n * 784)).map { _ in Float.random(in: 0...1, using: &g) })
}

func timeImages(golden: String, files: String) throws {
    let cases: [(String, String, (ModelConfig) throws -> any FormatEngine)] = [
        ("fmnist-cnn", "pytorch safetensors f32", { _ in PyTorchEngine(weights: try SafetensorsFile(path: golden + "/fmnist-cnn/model.safetensors")) }),
        ("fmnist-cnn", "ggml gguf f32", { try GGMLEngine(file: GGUFFile(path: files + "/cnn-f32.gguf"), layers: $0.layers) }),
        ("fmnist-cnn", "mlx f32", { try MLXEngine(files: MLXModelFiles.load(path: files + "/cnn-mlx"), layers: $0.layers) }),
        ("fmnist-mlp", "pytorch safetensors f32", { _ in PyTorchEngine(weights: try SafetensorsFile(path: golden + "/fmnist-mlp/model.safetensors")) }),
        ("fmnist-mlp", "ggml gguf f32", { try GGMLEngine(file: GGUFFile(path: files + "/mlp-f32.gguf"), layers: $0.layers) }),
        ("fmnist-mlp", "ggml gguf f16", { try GGMLEngine(file: GGUFFile(path: files + "/mlp-f16.gguf"), layers: $0.layers) }),
        ("fmnist-mlp", "mlx f16", { try MLXEngine(files: MLXModelFiles.load(path: files + "/mlp-mlx-q4"), layers: $0.layers) }),
    ]
    let only = CommandLine.arguments.count > 4 ? CommandLine.arguments[4] : ""
    for (model, label, make) in cases where only.isEmpty || "\(model) \(label)".contains(only) {
        let config = try ReferenceModel(directory: golden + "/" + model).config
        let engine = try make(config)
        for batch in [1, 500] {
            let x = randomImages(batch)
            let seconds = try best(runs: batch == 1 ? 200 : 5) { _ = try engine.forward(config.layers, input: x) { _, _ in } }
            print(String(format: "%@  %-26@ batch %3d: %9.1f µs/image", model, label, batch, seconds / Double(batch) * 1e6))
        }
    }
}

let arguments = CommandLine.arguments
switch arguments.dropFirst().first {
case "images":
    try timeImages(golden: arguments[2], files: arguments[3])
case "kernels":
    try timeKernels()
default:
    print("usage: parity-speed images GOLDEN_DIR FILES_DIR | kernels")
}
