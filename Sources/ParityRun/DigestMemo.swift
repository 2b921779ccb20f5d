import Foundation
import ParityCore

/// SHA-256 of files remembered across runs, one small file per file identity under the cache directory: a cache hit
/// then costs a `stat` per reference file instead of hashing megabytes again.
///
/// The identity is device, inode, size, modification time and inode-change time (both in ns). An in-place edit moves
/// the mtime; restoring the mtime (`touch -d`, `cp -p`, `rsync -t`) still moves the ctime, which no user call can set.
/// The classic trap is an edit that keeps the size inside one timestamp tick (the kernel's file clock is coarse, a few
/// ms; some file systems store whole seconds): the identity would not change. So, as git does with its "racily clean"
/// index entries, a file changed less than `settleSeconds` (3 s) before it is hashed is never remembered — it is hashed
/// again on every run until it has been still for that long — and a file whose identity changed while it was being
/// hashed is not remembered either. A damaged or foreign entry is ignored (hashed again), never trusted.
public struct DigestMemo: Sendable {
    public let directory: String

    /// How long a file must have been still before its digest is remembered.
    public let settleSeconds: Double

    public init(directory: String, settleSeconds: Double = DigestMemo.defaultSettleSeconds) {
        self.directory = directory
        self.settleSeconds = settleSeconds
    }

    /// Longer than any file system's timestamp granularity (FAT's 2 s is the coarsest in use).
    public static let defaultSettleSeconds = 3.0

    public func sha256(path: String) throws(ParityError) -> String {
        guard let before = Self.identity(path) else { throw .notFound(path: path, what: "file") }
        let entry = directory + "/" + SHA256.hex(Array(before.text.utf8))
        if let data = FileManager.default.contents(atPath: entry), let text = String(data: data, encoding: .utf8),
           Self.isDigest(text) {
            return text
        }
        // Hashed here, not through FileDigest's in-process memo: its identity has no ctime and no settling rule.
        let digest = try MappedFile(path: path).data.withUnsafeBytes { SHA256.hex($0) }
        let settled = Date().timeIntervalSince1970 - before.lastChange > settleSeconds
        if settled, let after = Self.identity(path), after.text == before.text {
            // Best effort: a memo that cannot be written costs time, never a verdict.
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)  // checked: best effort, see above
            try? AtomicFileWriter.write(Array(digest.utf8), to: entry)  // checked: best effort, see above
        }
        return digest
    }

    static func isDigest(_ text: String) -> Bool { text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) } }

    /// The identity text and the latest of mtime and ctime (seconds since 1970), or nil if the file cannot be stat'ed.
    static func identity(_ path: String) -> (text: String, lastChange: Double)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let m = info.st_mtim, c = info.st_ctim
        let text = "dev \(info.st_dev) ino \(info.st_ino) size \(info.st_size) mtime \(m.tv_sec).\(m.tv_nsec) ctime \(c.tv_sec).\(c.tv_nsec)"
        return (text, max(Double(m.tv_sec) + Double(m.tv_nsec) / 1e9, Double(c.tv_sec) + Double(c.tv_nsec) / 1e9))
    }
}
