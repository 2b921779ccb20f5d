import Foundation

/// A read-only view of a whole file, memory-mapped so that multi-gigabyte weight files cost address space,
/// not resident memory. Every read is bounds-checked and names the file and offset when it fails.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let data: Data

    public init(path: String) throws(ParityError) {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .notFound(path: path, what: "file")
        }
        guard !isDirectory.boolValue else { throw .io(path: path, reason: "is a directory, expected a file") }
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw .io(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
    }

    public var count: Int { data.count }

    /// Runs `body` on the bytes `range`, which must lie inside the file.
    public func withBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard range.lowerBound >= 0, range.upperBound <= data.count else {
            throw ParityError.malformed(file: path, at: "offset \(range.lowerBound)",
                                        reason: "needs bytes \(range.lowerBound)..<\(range.upperBound) but the file has \(data.count)")
        }
        return try data.withUnsafeBytes { all in try body(UnsafeRawBufferPointer(rebasing: all[range])) }
    }

    public func bytes(_ range: Range<Int>) throws -> [UInt8] { try withBytes(range) { Array($0) } }
}

/// Writes a file so that readers only ever see the old complete file or the new complete file: the bytes go
/// to a temporary file in the same directory (same filesystem, so rename is atomic), then it is renamed over
/// the destination. If anything fails before `commit`, the temporary file is removed.
public final class AtomicFileWriter {
    public let destination: String
    public let temporaryPath: String
    private let handle: FileHandle
    private var finished = false

    public init(destination: String) throws(ParityError) {
        self.destination = destination
        let url = URL(fileURLWithPath: destination)
        let directory = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .notFound(path: directory, what: "output directory")
        }
        temporaryPath = directory + "/." + url.lastPathComponent + ".parity-tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard FileManager.default.createFile(atPath: temporaryPath, contents: nil),
              let handle = FileHandle(forWritingAtPath: temporaryPath) else {
            throw .io(path: destination, reason: "cannot create a temporary file in \(directory)")
        }
        self.handle = handle
    }

    public func write(_ bytes: [UInt8]) throws(ParityError) {
        do { try handle.write(contentsOf: bytes) } catch {
            throw .io(path: destination, reason: "write failed: \(error.localizedDescription)")
        }
    }

    public func write(_ data: Data) throws(ParityError) {
        do { try handle.write(contentsOf: data) } catch {
            throw .io(path: destination, reason: "write failed: \(error.localizedDescription)")
        }
    }

    /// Flushes to disk and renames the temporary file over the destination.
    public func commit() throws(ParityError) {
        do {
            try handle.synchronize()
            try handle.close()
        } catch {
            throw .io(path: destination, reason: "flush failed: \(error.localizedDescription)")
        }
        guard rename(temporaryPath, destination) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporaryPath)
            throw .io(path: destination, reason: "rename failed: \(reason)")
        }
        finished = true
    }

    deinit {
        if !finished {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: temporaryPath)
        }
    }

    /// Writes `bytes` to `path` atomically in one call.
    public static func write(_ bytes: [UInt8], to path: String) throws(ParityError) {
        let writer = try AtomicFileWriter(destination: path)
        try writer.write(bytes)
        try writer.commit()
    }
}
