// swift-tools-version:6.1
import PackageDescription

// Kernel and engine micro-benchmarks, kept out of the main package so its build does not pay for them.
//   swift run -c release parity-speed kernels            plain timing: thread CPU time, best of N
//   swift run -c release parity-speed images ../golden DIR   the image engines, µs per image
//   swift package benchmark                              the ordo-one/benchmark suite (Benchmarks/KernelBenchmarks)
//   ggml/run.sh                                          ggml's own CPU kernels on the same shapes, and read bandwidth
let package = Package(
    name: "ParityBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "Parity", path: ".."),
        // MallocInterposer only: the default traits also pull swift-runtime-interposer, which the package mirror lacks.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "parity-speed",
            dependencies: [.product(name: "ParityVerify", package: "Parity")],
            path: "Sources/parity-speed"),
        .executableTarget(
            name: "KernelBenchmarks",
            dependencies: [.product(name: "Benchmark", package: "benchmark"), .product(name: "ParityVerify", package: "Parity")],
            path: "Benchmarks/KernelBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),
    ]
)
