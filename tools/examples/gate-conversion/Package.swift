// swift-tools-version:6.0
// An example of gating a model conversion in a package's own `swift test` with Parity (docs/library.md).
// It depends on Parity by path (this repository); a user's package would write
// `.package(url: "https://…/parity", from: "…")` instead.
import PackageDescription

let package = Package(
    name: "GateConversion",
    platforms: [.macOS(.v14)],
    dependencies: [
        // `name:` because a path dependency's identity is its directory's name, which differs between checkouts.
        .package(name: "Parity", path: "../../.."),
    ],
    targets: [
        // "The user's converter": float32 safetensors -> float16 safetensors, written without Parity.
        .target(name: "GateConversion"),
        .testTarget(name: "GateConversionTests", dependencies: [
            "GateConversion",
            .product(name: "ParityKit", package: "Parity"),
            .product(name: "ParityTesting", package: "Parity"),
        ]),
    ]
)
