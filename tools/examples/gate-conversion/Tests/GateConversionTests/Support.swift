import Foundation
import GateConversion

/// The reference model the conversion is checked against: Parity's bundled fmnist-mlp (config.json, model.safetensors,
/// golden.h5), found relative to this file in the Parity checkout the package depends on.
let repository = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()  // file -> Tests -> gate-conversion
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()  // -> examples -> tools -> the checkout
let referenceDirectory = repository.appendingPathComponent("golden/fmnist-mlp")

/// `GATE_CONVERSION_BROKEN=1 swift test` plants a conversion bug: the gate must then fail (tools/examples/run-example.sh).
let plantBug = ProcessInfo.processInfo.environment["GATE_CONVERSION_BROKEN"] != nil

/// Converts the reference weights into a fresh directory; with `plantBug`, then adds 1.0 to fc2.bias[3] in the written
/// file (a converter that corrupts one value: fc2's output, class 3's logit, moves by 1 for every image).
func convertedFile(_ label: String) throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gate-conversion-\(label)-\(getpid())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let output = directory.appendingPathComponent("fmnist-mlp-f16.safetensors")
    try F16Conversion.convert(referenceDirectory.appendingPathComponent("model.safetensors"), to: output)
    if plantBug {
        var data = try Data(contentsOf: output)
        let (entries, start) = try F16Conversion.header(data, file: output.path)
        guard let bias = entries.first(where: { $0.name == "fc2.bias" }) else { throw F16Conversion.Failure(description: "no fc2.bias") }
        let at = start + bias.begin + 3 * 2
        let old = Float16(bitPattern: UInt16(data[at]) | UInt16(data[at + 1]) << 8)
        let new = Float16(Float(old) + 1).bitPattern
        data[at] = UInt8(new & 0xff)
        data[at + 1] = UInt8(new >> 8)
        try data.write(to: output)
    }
    return output
}
