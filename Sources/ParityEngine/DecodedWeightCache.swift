import Foundation

/// Weights an engine has decoded from its file (F16 → float, a kernel rounded to its im2col type, a quantized
/// matrix unpacked), kept for the engine's lifetime so repeated calls do not decode again. The values are
/// exactly what decoding on every call produced; only when they are computed changes.
///
/// Shared by the copies of an engine value (`overriding` copies share it too: overrides are looked up before
/// the cache and never stored in it). Keys name the tensor and the transformation. Safe from several threads:
/// two threads may both decode a missing entry, and the first one stored wins (both are the same values).
public final class DecodedWeightCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String: Any] = [:]

    public init() {}

    /// The cached value for `key`, or `make()`'s value, stored for next time (a throwing `make` stores nothing).
    public func value<T, E: Error>(_ key: String, _ make: () throws(E) -> T) throws(E) -> T {
        lock.lock()
        let cached = entries[key] as? T
        lock.unlock()
        if let cached { return cached }
        let made = try make()
        lock.lock()
        defer { lock.unlock() }
        if let raced = entries[key] as? T { return raced }
        entries[key] = made
        return made
    }

    /// How many entries are cached (for tests: repeated calls must not add entries).
    public var count: Int { lock.lock(); defer { lock.unlock() }; return entries.count }
}
