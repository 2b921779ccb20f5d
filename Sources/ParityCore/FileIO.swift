import CParitySys
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

    /// Bytes already in memory under a name for messages (fuzzing, tests).
    public init(data: Data, name: String) {
        path = name
        self.data = data
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

/// Writes a file so that readers only ever see the old complete file or the new complete file, and a killed
/// writer leaves nothing behind. The bytes go to an unnamed file (O_TMPFILE) in the destination's directory,
/// which disappears with the process if it dies; `commit` flushes it, gives it a hidden temporary name and
/// renames that over the destination (same directory, so the rename is atomic). File systems without O_TMPFILE
/// fall back to a named hidden temporary file, removed on any error. Linux cannot link an unnamed file over an
/// existing name, so the name exists for the two adjacent syscalls `linkat` → `rename`: a SIGKILL landing exactly
/// there (seen under CI load) leaves `.<name>.parity-tmp-<pid>-<n>`, which the next write to the same path removes
/// once that pid is gone.
public final class AtomicFileWriter {
    public let destination: String
    private let directory: String
    private let handle: FileHandle
    /// Set when the fallback named temporary file is in use.
    private let namedTemporary: String?
    private var finished = false

    public init(destination: String) throws(ParityError) {
        self.destination = destination
        let url = URL(fileURLWithPath: destination)
        directory = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .notFound(path: directory, what: "output directory")
        }
        AtomicFileWriter.removeAbandonedStaging(for: destination)
        let fd = parity_open_tmpfile(directory)
        if fd >= 0 {
            handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
            namedTemporary = nil
        } else {
            let temporary = AtomicFileWriter.temporaryName(for: destination)
            guard FileManager.default.createFile(atPath: temporary, contents: nil), let h = FileHandle(forWritingAtPath: temporary) else {
                throw .io(path: destination, reason: "cannot create a temporary file in \(directory)")
            }
            handle = h
            namedTemporary = temporary
        }
    }

    static func temporaryName(for destination: String) -> String {
        let url = URL(fileURLWithPath: destination)
        return url.deletingLastPathComponent().path + "/." + url.lastPathComponent + ".parity-tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
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

    /// Flushes to disk and atomically replaces the destination.
    public func commit() throws(ParityError) {
        do { try handle.synchronize() } catch {
            throw .io(path: destination, reason: "flush failed: \(error.localizedDescription)")
        }
        let temporary: String
        if let namedTemporary {
            temporary = namedTemporary
        } else {
            temporary = AtomicFileWriter.temporaryName(for: destination)
            guard parity_link_tmpfile(handle.fileDescriptor, temporary) == 0 else {
                throw .io(path: destination, reason: "cannot name the temporary file: \(String(cString: strerror(errno)))")
            }
        }
        try? handle.close()
        guard rename(temporary, destination) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw .io(path: destination, reason: "rename failed: \(reason)")
        }
        finished = true
    }

    deinit {
        if !finished {
            try? handle.close()
            if let namedTemporary { try? FileManager.default.removeItem(atPath: namedTemporary) }
        }
    }

    /// A writer killed while filling a staging directory, or between naming and renaming a file, leaves it behind
    /// (nothing can run after SIGKILL); the next write to the same path removes those whose process no longer exists.
    static func removeAbandonedStaging(for path: String) {
        let url = URL(fileURLWithPath: path)
        let prefix = "." + url.lastPathComponent + ".parity-tmp-"
        let parent = url.deletingLastPathComponent().path
        for name in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count).split(separator: "-").first ?? ""), pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { try? FileManager.default.removeItem(atPath: parent + "/" + name) }
        }
    }

    /// Writes `bytes` to `path` atomically in one call.
    public static func write(_ bytes: [UInt8], to path: String) throws(ParityError) {
        let writer = try AtomicFileWriter(destination: path)
        try writer.write(bytes)
        try writer.commit()
    }

    /// Builds a directory atomically: `fill` writes into a fresh hidden directory beside `path`, which then
    /// replaces `path` in one step (renameat2 RENAME_EXCHANGE when `path` exists, rename otherwise); the old
    /// contents are removed afterwards. If `fill` throws, nothing at `path` changes.
    public static func writeDirectory(_ path: String, _ fill: (String) throws -> Void) throws {
        let fm = FileManager.default
        let url = URL(fileURLWithPath: path)
        let parent = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ParityError.notFound(path: parent, what: "output directory")
        }
        if fm.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw ParityError.io(path: path, reason: "exists and is not a directory")
        }
        removeAbandonedStaging(for: path)
        let staging = temporaryName(for: path)
        do { try fm.createDirectory(atPath: staging, withIntermediateDirectories: false) } catch {
            throw ParityError.io(path: path, reason: "cannot create a staging directory in \(parent)")
        }
        do {
            try fill(staging)
            if fm.fileExists(atPath: path) {
                guard parity_rename_exchange(staging, path) == 0 else {
                    throw ParityError.io(path: path, reason: "cannot replace the directory: \(String(cString: strerror(errno)))")
                }
            } else {
                guard rename(staging, path) == 0 else {
                    throw ParityError.io(path: path, reason: "cannot move the directory into place: \(String(cString: strerror(errno)))")
                }
            }
        } catch {
            try? fm.removeItem(atPath: staging)
            throw error
        }
        try? fm.removeItem(atPath: staging)  // after an exchange this holds the old contents
    }
}

/// SHA-256 of whole files, remembered for the life of the process per file identity (device, inode, size,
/// modification time in ns): a reference checkpoint is hashed once however many goldens and cells open it
/// (all-MiniLM's 90 MB took seconds per open in debug builds). Any rewrite — Parity's atomic writes make a new
/// inode, an in-place edit moves the mtime — gives a new key, so a changed file is always hashed again.
public enum FileDigest {
    private struct Identity: Hashable { let device: UInt64, inode: UInt64, size: Int64, seconds: Int, nanoseconds: Int }
    nonisolated(unsafe) private static var memo: [Identity: String] = [:]
    private static let lock = NSLock()

    public static func sha256(path: String) throws(ParityError) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .notFound(path: path, what: "file") }
        let identity = Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
                                seconds: info.st_mtim.tv_sec, nanoseconds: info.st_mtim.tv_nsec)
        if let known = lock.withLock({ memo[identity] }) { return known }
        let digest = try MappedFile(path: path).data.withUnsafeBytes { SHA256.hex($0) }
        lock.withLock { memo[identity] = digest }
        return digest
    }
}
