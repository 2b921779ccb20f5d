import CZlib
import Foundation
import ParityCore

/// The Fashion-MNIST test set (IDX files, gzip-compressed or not), as the image models' goldens and ggml's
/// mnist-eval read it: 28×28 uint8 pixels scaled to [0, 1] (pixel / 255), labels 0–9.
public struct FashionMNIST: Sendable {
    public let images: [Float]
    public let labels: [Int]
    public let imagesPath: String
    public let labelsPath: String
    public var count: Int { labels.count }
    public static let pixels = 28 * 28

    /// Debian's `dataset-fashion-mnist` package.
    public static let debianDirectory = "/usr/share/datasets/fashion-mnist"

    /// Reads `t10k-images-idx3-ubyte[.gz]` and `t10k-labels-idx1-ubyte[.gz]` from `directory`.
    public init(directory: String) throws(ParityError) {
        func find(_ stem: String) throws(ParityError) -> String {
            for candidate in [stem, stem + ".gz"] where FileManager.default.fileExists(atPath: directory + "/" + candidate) {
                return directory + "/" + candidate
            }
            throw .io(path: directory + "/" + stem, reason: "no Fashion-MNIST test file (\(stem) or \(stem).gz)")
        }
        imagesPath = try find("t10k-images-idx3-ubyte")
        labelsPath = try find("t10k-labels-idx1-ubyte")
        let imageBytes = try Self.readIDX(imagesPath)
        let labelBytes = try Self.readIDX(labelsPath)
        func be32(_ b: [UInt8], _ at: Int) -> Int { Int(b[at]) << 24 | Int(b[at + 1]) << 16 | Int(b[at + 2]) << 8 | Int(b[at + 3]) }
        guard imageBytes.count >= 16, be32(imageBytes, 0) == 0x0803, be32(imageBytes, 8) == 28, be32(imageBytes, 12) == 28,
              imageBytes.count == 16 + be32(imageBytes, 4) * Self.pixels else {
            throw .malformed(file: imagesPath, at: "header", reason: "not an IDX uint8 [N, 28, 28] image file")
        }
        guard labelBytes.count >= 8, be32(labelBytes, 0) == 0x0801, labelBytes.count == 8 + be32(labelBytes, 4),
              be32(labelBytes, 4) == be32(imageBytes, 4) else {
            throw .malformed(file: labelsPath, at: "header", reason: "not an IDX uint8 label file with one label per image")
        }
        images = imageBytes[16...].map { Float($0) / 255 }
        labels = labelBytes[8...].map { Int($0) }
    }

    /// Images `start..<start+count` as a [count, 1, 28, 28] tensor.
    public func batch(_ start: Int, _ count: Int) -> Tensor {
        Tensor(shape: [count, 1, 28, 28], data: Array(images[(start * Self.pixels)..<((start + count) * Self.pixels)]))
    }

    /// Writes the uncompressed IDX files (what mnist-eval opens with fopen) into `directory`; returns their paths.
    public func writeRawIDX(to directory: String) throws -> (images: String, labels: String) {
        let images = directory + "/t10k-images-idx3-ubyte", labels = directory + "/t10k-labels-idx1-ubyte"
        try Data(try Self.readIDX(imagesPath)).write(to: URL(fileURLWithPath: images))
        try Data(try Self.readIDX(labelsPath)).write(to: URL(fileURLWithPath: labels))
        return (images, labels)
    }

    static func readIDX(_ path: String) throws(ParityError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else { throw .io(path: path, reason: "cannot read") }
        let bytes = [UInt8](data)
        return bytes.starts(with: [0x1f, 0x8b]) ? try gunzip(bytes, path: path) : bytes
    }

    /// One gzip member (RFC 1952): header with optional FEXTRA/FNAME/FCOMMENT/FHCRC, raw deflate, ISIZE trailer.
    static func gunzip(_ b: [UInt8], path: String) throws(ParityError) -> [UInt8] {
        func fail(_ reason: String) -> ParityError { .malformed(file: path, at: "gzip", reason: reason) }
        guard b.count >= 18, b[2] == 8 else { throw fail("not a deflate gzip member") }
        let flags = b[3]
        var at = 10
        if flags & 4 != 0 { guard at + 2 <= b.count else { throw fail("truncated FEXTRA") }; at += 2 + Int(b[at]) | Int(b[at + 1]) << 8 }
        for bit in [UInt8(8), 16] where flags & bit != 0 {
            while at < b.count && b[at] != 0 { at += 1 }
            at += 1
        }
        if flags & 2 != 0 { at += 2 }
        guard at < b.count - 8 else { throw fail("truncated header") }
        let size = Int(b[b.count - 4]) | Int(b[b.count - 3]) << 8 | Int(b[b.count - 2]) << 16 | Int(b[b.count - 1]) << 24
        var output = [UInt8](repeating: 0, count: size)
        var input = Array(b[at..<(b.count - 8)])
        var stream = z_stream()
        guard parity_inflate_init_raw(&stream) == Z_OK else { throw fail("zlib inflateInit2 failed") }
        defer { inflateEnd(&stream) }
        let status: Int32 = input.withUnsafeMutableBufferPointer { inBuf in
            output.withUnsafeMutableBufferPointer { outBuf in
                stream.next_in = inBuf.baseAddress
                stream.avail_in = uInt(inBuf.count)
                stream.next_out = outBuf.baseAddress
                stream.avail_out = uInt(outBuf.count)
                return CZlib.inflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END, Int(stream.total_out) == size else { throw fail("deflate data corrupt or not \(size) bytes") }
        return output
    }
}
