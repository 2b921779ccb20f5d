// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Parity",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "parity", targets: ["parity"]),
        .library(name: "ParityVerify", targets: ["ParityVerify"]),
        // The library API for a user's own `swift test`: `Parity.verify(model:file:)`, `Parity.verify(config:)` (docs/matrix.md).
        .library(name: "ParityKit", targets: ["ParityKit"]),
        // Failed reports and matrices as readable test failures under Swift Testing and XCTest (docs/library.md).
        .library(name: "ParityTesting", targets: ["ParityTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // Latency percentiles for `parity bench` (HdrHistogram: fixed memory, no allocation while recording).
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // Matrix config files in YAML (`parity verify --config`); its Node API gives the line of every key.
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // C bridges: system libraries from Debian, with static-inline getters for the macros Swift cannot import.
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        .target(name: "CParitySys"),
        // Quantized matrix-vector kernels (AVX2 chosen at run time, portable C otherwise; no unsafe flags).
        .target(name: "CParityKernels"),
        // The HDF5 reader process for goldens (untrusted input: libhdf5 runs only there; see HDF5Snapshot.swift).
        .target(name: "CGoldenReader", dependencies: ["CHDF5"]),
        .target(name: "ParityCore", dependencies: ["CParitySys"]),
        .target(name: "ParityFormats", dependencies: ["ParityCore", "CHDF5", "CZlib", "CGoldenReader", "CParityKernels"]),
        .target(name: "ParityModels", dependencies: ["ParityCore", "ParityFormats"]),
        .target(name: "ParityEngine", dependencies: ["ParityCore", "ParityFormats", "ParityModels", "CBLAS", "CParityKernels"]),
        .target(name: "ParityVerify", dependencies: ["ParityCore", "ParityFormats", "ParityModels", "ParityEngine"]),
        // The benchmark: times compute only, and only for a file whose verification passed (`parity bench`).
        .target(name: "ParityBench", dependencies: [
            "ParityCore", "ParityFormats", "ParityModels", "ParityEngine", "ParityVerify", "CZlib",
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ]),
        // Cells (model × format × variant, or a converted file), the matrix config, its cache, shards and merged reports:
        // the one mechanism `parity verify` and ParityKit share.
        .target(name: "ParityRun", dependencies: [
            "ParityCore", "ParityFormats", "ParityModels", "ParityEngine", "ParityVerify",
            .product(name: "Yams", package: "Yams"),
        ]),
        .target(name: "ParityKit", dependencies: ["ParityCore", "ParityVerify", "ParityRun"]),
        // Turns a failed verification (a report or a matrix) into test failures naming node or tensor, metric, value,
        // limit and where, under Swift Testing and XCTest (docs/library.md).
        .target(name: "ParityTesting", dependencies: ["ParityCore", "ParityVerify", "ParityRun"]),
        .executableTarget(name: "parity", dependencies: [
            "ParityCore", "ParityFormats", "ParityModels", "ParityEngine", "ParityVerify", "ParityBench", "ParityRun",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // libFuzzer harnesses (tools/fuzz.sh builds them with -sanitize=fuzzer,address -DPARITY_LIBFUZZER); a
        // normal build makes a replay tool that runs seed/crash files through the same entry point.
        .executableTarget(name: "parity-fuzz", dependencies: ["ParityCore", "ParityFormats", "ParityModels"]),
        // Fixtures are read by path (tools/ regenerates them); they are not bundle resources.
        .testTarget(name: "ParityTests", dependencies: ["ParityCore", "ParityFormats", "ParityModels", "ParityEngine", "ParityVerify", "ParityBench", "CParityKernels", "ParityRun", "ParityKit", "ParityTesting"],
                    exclude: ["Fixtures"]),
    ]
)
