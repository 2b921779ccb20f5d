import CGoldenReader
import Foundation
import ParityCore

/// Everything an HDF5 file holds that Parity reads (groups, numeric datasets, string/integer/float attributes),
/// read by libhdf5 in a SEPARATE PROCESS and handed back as a byte stream that is validated here, byte by byte.
///
/// Why a separate process: goldens travel with models (downloaded beside the weights), so they are untrusted,
/// and libhdf5 1.10.8 corrupts its own heap on some malformed files (fuzzing found heap-buffer-overflow and
/// memcpy-param-overlap inside it, besides endless loops). Catching SIGSEGV afterwards is no defence — by then
/// the process's memory may already be corrupted. In the reader process a libhdf5 fault ends that process only.
///
/// Why spawn an executable, not fork: the reader must work from the `parity` CLI, from `swift test` (Swift
/// Testing runs tests on several threads) and from a library API called in a user's own test process. A fork
/// without exec of a multi-threaded process copies only the calling thread: any lock another thread held at that
/// moment (in the Swift runtime, Foundation, libhdf5's own global lock) stays locked forever in the child, so a
/// child that runs anything but async-signal-safe code can deadlock. glibc makes malloc safe across fork; nothing
/// makes the Swift runtime or libhdf5 safe. posix_spawn starts a fresh image instead. Which executable? The
/// reader's entry point is a C constructor (CGoldenReader) that runs before `main` when the environment carries
/// the file to read; it is linked into every executable that links ParityFormats — the CLI, the test runner, a
/// user's test bundle — so the reader is simply `/proc/self/exe`, with nothing to install or find. Where this
/// code is not part of the main executable (ParityFormats loaded as a shared library), `PARITY_HDF5_READER` must
/// name an executable that links it (the `parity` CLI does); Parity refuses rather than start a program whose
/// `main` would run instead.
///
/// The reader sends only numbers, names and strings: the parent allocates nothing before checking a size against
/// the limits below and against the bytes actually received, and answers any stream it cannot accept — truncated,
/// oversized, out of order, invalid UTF-8, a dataset whose payload does not match its shape — with a ParityError
/// naming the file.
///
/// Cost, measured on the bundled goldens (release build, 2-core machine under load; GoldenIsolationTests
/// prints it): in-process 15–17 ms (fmnist-mlp, 0.4 MB) and 56–57 ms (fmnist-cnn, 3.5 MB); isolated, from the
/// `swift test` runner, 107–113 ms and 152–154 ms. From the `parity` CLI the reader process alone takes 40–50 ms
/// and 90 ms wall time, i.e. ~25–35 ms more than in-process: the price is one process start (the test
/// runner's is larger: it loads XCTest and Swift Testing) and one pipe copy, paid once per golden.
public struct HDF5Snapshot: Sendable {
    /// A dataset's values as the reader converted them (libhdf5's own conversions, as an in-process H5Dread).
    public enum Values: Sendable, Equatable {
        case floats([Float])
        case integers([Int64])
        /// Not numeric (strings, compounds, ...): only its shape is known, and why it cannot be read.
        case unreadable(reason: String)
    }
    public struct Dataset: Sendable {
        public let shape: [Int]
        public let values: Values
    }
    /// An attribute value, or why it cannot be used (a string array, an unsupported type).
    public enum Attribute: Sendable, Equatable {
        case value(HDF5AttributeValue)
        case unreadable(reason: String)
    }

    public let path: String
    /// Every object path (groups and datasets) in the order the reader walked them: a group before its members,
    /// members in HDF5's name order.
    public let objects: [String]
    public let groups: Set<String>
    public let datasets: [String: Dataset]
    /// Per object path, its attributes in name order.
    public let attributes: [String: [(name: String, value: Attribute)]]

    // MARK: Reading (the in-process HDF5File API, over the snapshot)

    public func exists(_ objectPath: String) -> Bool { groups.contains(objectPath) || datasets[objectPath] != nil }
    public func isDataset(_ objectPath: String) -> Bool { datasets[objectPath] != nil }

    /// Names of the members of a group, in name order.
    public func members(of group: String) throws(ParityError) -> [String] {
        guard groups.contains(group) else { throw .malformed(file: path, at: group, reason: "group not found") }
        let prefix = group == "/" ? "/" : group + "/"
        return objects.filter { $0.hasPrefix(prefix) && $0.count > prefix.count && !$0.dropFirst(prefix.count).contains("/") }
            .map { String($0.dropFirst(prefix.count)) }
    }

    public func shape(of dataset: String) throws(ParityError) -> [Int] {
        guard let d = datasets[dataset] else { throw .notFound(path: path, what: "dataset \(dataset)") }
        return d.shape
    }

    /// A numeric dataset as float32 (integers converted as HDF5 converts them: rounded to nearest).
    public func readFloats(_ dataset: String) throws(ParityError) -> Tensor {
        guard let d = datasets[dataset] else { throw .notFound(path: path, what: "dataset \(dataset)") }
        switch d.values {
        case let .floats(values): return Tensor(shape: d.shape, data: values)
        case let .integers(values): return Tensor(shape: d.shape, data: values.map { Float($0) })
        case let .unreadable(reason): throw .unsupported(file: path, reason: "dataset \(dataset): \(reason)")
        }
    }

    /// An integer dataset. A float dataset is refused rather than truncated (goldens store labels as integers).
    public func readIntegers(_ dataset: String) throws(ParityError) -> (shape: [Int], values: [Int64]) {
        guard let d = datasets[dataset] else { throw .notFound(path: path, what: "dataset \(dataset)") }
        switch d.values {
        case let .integers(values): return (d.shape, values)
        case .floats: throw .unsupported(file: path, reason: "dataset \(dataset) holds floats where integers are expected")
        case let .unreadable(reason): throw .unsupported(file: path, reason: "dataset \(dataset): \(reason)")
        }
    }

    public func attributeNames(of object: String) throws(ParityError) -> [String] {
        guard exists(object) else { throw .notFound(path: path, what: "object \(object)") }
        return (attributes[object] ?? []).map(\.name)
    }

    /// One attribute, or nil if the object has none of that name.
    public func attribute(_ name: String, of object: String = "/") throws(ParityError) -> HDF5AttributeValue? {
        guard exists(object) else { throw .notFound(path: path, what: "object \(object)") }
        guard let found = attributes[object]?.first(where: { $0.name == name }) else { return nil }
        switch found.value {
        case let .value(value): return value
        case let .unreadable(reason): throw .unsupported(file: path, reason: "\(object)@\(name): \(reason)")
        }
    }
}

// MARK: - Reading a file

extension HDF5Snapshot {
    /// Where libhdf5 runs.
    public enum Isolation: Sendable {
        /// In a separate reader process (the default everywhere Parity reads a golden).
        case separateProcess
        /// In this process. Only for the fuzz harness, which exists to exercise libhdf5 and this reader
        /// together under the sanitizers; never for files a user hands to Parity.
        case inProcessForFuzzing
    }

    /// The time a reader process may take before it is ended and the file refused: `PARITY_HDF5_TIMEOUT`
    /// seconds if set, else 60 s plus 1 s per 10 MB of file. The bundled goldens (0.4 and 3.5 MB) are read in
    /// well under a second; 60 s leaves room for a loaded machine and libhdf5's gzip on much larger goldens.
    public static func defaultTimeout(forFileOfSize bytes: Int) -> Double {
        if let text = ProcessInfo.processInfo.environment["PARITY_HDF5_TIMEOUT"], let seconds = Double(text), seconds > 0 { return seconds }
        return 60 + Double(bytes) / 10_000_000
    }

    /// Reads the HDF5 file at `path`. Every failure — a missing file, a malformed one, libhdf5 crashing or
    /// hanging on it — is a ParityError naming the file. `readerExecutable` replaces the reader (tests use it to
    /// play a misbehaving one); by default it is this executable (see `readerExecutable()`).
    public static func read(_ path: String, isolation: Isolation = .separateProcess, timeout: Double? = nil,
                            readerExecutable: String? = nil) throws(ParityError) -> HDF5Snapshot {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw .notFound(path: path, what: "HDF5 file")
        }
        switch isolation {
        case .inProcessForFuzzing:
            return try decode(inProcessStream(path), path: path)
        case .separateProcess:
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            let executable: String
            if let readerExecutable { executable = readerExecutable } else { executable = try defaultReaderExecutable() }
            let run = try HDF5ReaderProcess.run(path: path, executable: executable, timeout: timeout ?? defaultTimeout(forFileOfSize: size))
            return try interpret(run, path: path)
        }
    }

    /// The executable started as the reader (see the type's documentation).
    static func defaultReaderExecutable() throws(ParityError) -> String {
        if let explicit = ProcessInfo.processInfo.environment["PARITY_HDF5_READER"], !explicit.isEmpty { return explicit }
        guard parity_h5_reader_is_in_main_executable() == 1 else {
            throw .usage("Parity reads HDF5 goldens in a separate process started from this program's executable, but its "
                + "HDF5 reader is not linked into the main executable here (ParityFormats loaded as a shared library). "
                + "Set PARITY_HDF5_READER to the path of the `parity` executable.")
        }
        if access("/proc/self/exe", X_OK) == 0 { return "/proc/self/exe" }
        // No /proc (some containers): the path this program was started by, when it is absolute.
        if let started = parity_h5_started_executable(), started.pointee == 0x2F {
            return String(cString: started)
        }
        throw .io(path: "/proc/self/exe", reason: "cannot find this program's executable to start the HDF5 reader process; set PARITY_HDF5_READER to the `parity` executable")
    }

    /// The reader's stream produced in this process (libhdf5 in-process): for the fuzz harness and for tests of
    /// the decoder only.
    public static func inProcessStream(_ path: String) -> [UInt8] {
        var buffer: UnsafeMutablePointer<CChar>? = nil
        var size = 0
        guard let stream = open_memstream(&buffer, &size) else { return [] }
        _ = parity_h5_snapshot(path, stream)
        fclose(stream)
        defer { free(buffer) }
        guard let buffer else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: buffer, count: size))
    }

    /// Turns what the reader process did into a snapshot or the error that names the file.
    static func interpret(_ run: HDF5ReaderProcess.Outcome, path: String) throws(ParityError) -> HDF5Snapshot {
        switch run.ending {
        case let .timedOut(seconds):
            throw .malformed(file: path, at: "HDF5 reader process",
                             reason: "the HDF5 library did not finish reading it within \(formatSeconds(seconds)) s (the reader was ended; PARITY_HDF5_TIMEOUT sets the limit)")
        case .tooMuchOutput:
            throw .malformed(file: path, at: "HDF5 reader process", reason: "the reader sent more than the \(HDF5SnapshotLimits.maxStreamBytes)-byte limit of a snapshot")
        case let .signaled(signal):
            throw .malformed(file: path, at: "HDF5 reader process",
                             reason: "the HDF5 library crashed reading it (signal \(signal) in the separate reader process; the verifier itself is unaffected)")
        case let .exited(status):
            // A complete stream (exit 0) or a stream ending in the reader's own error record (exit 1); anything
            // else is a reader that died some other way.
            guard status == 0 || status == 1 else {
                throw .malformed(file: path, at: "HDF5 reader process", reason: "the HDF5 reader exited with status \(status) before finishing")
            }
            let snapshot = try decode(run.output, path: path)
            guard status == 0 else {
                throw .malformed(file: path, at: "HDF5 reader process", reason: "the HDF5 reader exited with status 1 after a complete snapshot")
            }
            return snapshot
        }
    }

    private static func formatSeconds(_ s: Double) -> String { s == s.rounded() ? String(Int(s)) : String(format: "%.1f", s) }
}

/// The limits the reader enforces (golden_reader.h), enforced again here on what it sends.
public enum HDF5SnapshotLimits {
    public static let maxRank = Int(PARITY_H5SNAP_MAX_RANK)
    public static let maxElements = Int(PARITY_H5SNAP_MAX_ELEMENTS)
    public static let maxTotalPayloadBytes = Int(PARITY_H5SNAP_MAX_TOTAL_BYTES)
    public static let maxObjects = Int(PARITY_H5SNAP_MAX_OBJECTS)
    public static let maxDepth = Int(PARITY_H5SNAP_MAX_DEPTH)
    public static let maxName = Int(PARITY_H5SNAP_MAX_NAME)
    public static let maxString = Int(PARITY_H5SNAP_MAX_STRING)
    public static let maxAttributeValues = Int(PARITY_H5SNAP_MAX_ATTRIBUTE_VALUES)
    public static let maxAttributesPerObject = 10_000
    /// Payload plus framing: names, tags and lengths of at most maxObjects objects and their attributes.
    public static let maxStreamBytes = maxTotalPayloadBytes + 64 << 20
}

// MARK: - Decoding the stream

extension HDF5Snapshot {
    /// Validates and decodes a reader's stream. Never traps on any input: every read is bounds-checked first.
    public static func decode(_ bytes: [UInt8], path: String) throws(ParityError) -> HDF5Snapshot {
        var reader = StreamReader(bytes: bytes, path: path)
        return try reader.snapshot()
    }
}

private struct StreamReader {
    let bytes: [UInt8]
    let path: String
    var offset = 0

    init(bytes: [UInt8], path: String) { self.bytes = bytes; self.path = path }

    func bad(_ reason: String) -> ParityError {
        .malformed(file: path, at: "HDF5 reader stream offset \(offset)", reason: "the reader's output is invalid: \(reason)")
    }

    mutating func take(_ count: Int) throws(ParityError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= bytes.count - offset else { throw bad("ends early (needs \(count) more bytes, \(bytes.count - offset) left)") }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }
    mutating func u8() throws(ParityError) -> UInt8 { try take(1).first! }
    /// Integers in host byte order: the reader is this same executable on this same machine.
    mutating func u32() throws(ParityError) -> UInt32 { try take(4).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } }
    mutating func u64() throws(ParityError) -> UInt64 { try take(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } }
    /// A length-prefixed UTF-8 string of at most `limit` bytes; invalid UTF-8 is refused, not repaired.
    mutating func string(limit: Int, what: String) throws(ParityError) -> String {
        let length = Int(try u32())
        guard length <= limit else { throw bad("\(what) of \(length) bytes exceeds the \(limit)-byte limit") }
        let raw = try take(length)
        let text = String(decoding: raw, as: UTF8.self)
        guard text.utf8.elementsEqual(raw) else { throw bad("\(what) is not valid UTF-8") }
        return text
    }

    /// `count` values from exactly `count * stride` bytes (checked by the caller's `take`), copied bytewise.
    static func copy<T: BitwiseCopyable>(_ raw: ArraySlice<UInt8>, count: Int, as: T.Type) -> [T] {
        precondition(raw.count == count * MemoryLayout<T>.stride)
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            raw.withUnsafeBytes { source in
                if count > 0 { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source) }
            }
            initialized = count
        }
    }

    static let maxPathBytes = HDF5SnapshotLimits.maxDepth * (HDF5SnapshotLimits.maxName + 1)

    /// An object path: "/" or "/a/b" with non-empty components that are neither "." nor "..", no NUL.
    mutating func objectPath() throws(ParityError) -> String {
        let p = try string(limit: StreamReader.maxPathBytes, what: "an object path")
        guard p == "/" || (p.hasPrefix("/") && !p.hasSuffix("/")) else { throw bad("object path \"\(p)\" is not absolute") }
        if p != "/" {
            let parts = p.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
            guard parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." && $0.utf8.count <= HDF5SnapshotLimits.maxName }),
                  parts.count <= HDF5SnapshotLimits.maxDepth else { throw bad("object path \"\(p)\" has an empty, '.', '..' or over-long component, or is too deep") }
        }
        guard !p.utf8.contains(0) else { throw bad("object path holds a NUL byte") }
        return p
    }

    static func parent(of p: String) -> String {
        guard let slash = p.lastIndex(of: "/"), slash != p.startIndex else { return "/" }
        return String(p[..<slash])
    }

    mutating func snapshot() throws(ParityError) -> HDF5Snapshot {
        guard bytes.count <= HDF5SnapshotLimits.maxStreamBytes else { throw bad("more than \(HDF5SnapshotLimits.maxStreamBytes) bytes") }
        guard Array(try take(8)) == Array("PH5SNAP1".utf8) else { offset = 0; throw bad("does not start with the snapshot signature") }
        var objects: [String] = []
        var groups: Set<String> = []
        var datasets: [String: HDF5Snapshot.Dataset] = [:]
        var attributes: [String: [(name: String, value: HDF5Snapshot.Attribute)]] = [:]
        var payload = 0
        func addPayload(_ n: Int, _ r: StreamReader) throws(ParityError) {
            guard n <= HDF5SnapshotLimits.maxTotalPayloadBytes - payload else { throw r.bad("payloads exceed \(HDF5SnapshotLimits.maxTotalPayloadBytes) bytes") }
            payload += n
        }
        while true {
            let tagOffset = offset
            switch try u8() {
            case UInt8(ascii: "G"):
                let p = try objectPath()
                if p == "/" {
                    guard objects.isEmpty else { throw bad("the root group is sent twice or late") }
                } else {
                    guard groups.contains(StreamReader.parent(of: p)) else { throw bad("\(p) arrives before its group") }
                    guard !groups.contains(p), datasets[p] == nil else { throw bad("\(p) is sent twice") }
                }
                guard objects.count < HDF5SnapshotLimits.maxObjects + 1 else { throw bad("more than \(HDF5SnapshotLimits.maxObjects) objects") }
                groups.insert(p)
                objects.append(p)
            case UInt8(ascii: "D"):
                let p = try objectPath()
                guard p != "/", groups.contains(StreamReader.parent(of: p)) else { throw bad("dataset \(p) arrives before its group") }
                guard !groups.contains(p), datasets[p] == nil else { throw bad("\(p) is sent twice") }
                guard objects.count < HDF5SnapshotLimits.maxObjects + 1 else { throw bad("more than \(HDF5SnapshotLimits.maxObjects) objects") }
                let kind = try u8()
                let rank = Int(try u32())
                guard rank <= HDF5SnapshotLimits.maxRank else { throw bad("dataset \(p) has rank \(rank)") }
                var shape: [Int] = []
                var count = 1
                for _ in 0..<rank {
                    let d = try u64()
                    // Each factor is at most 2^27, so the product is checked before it could overflow.
                    guard d <= UInt64(HDF5SnapshotLimits.maxElements), count * Int(d) <= HDF5SnapshotLimits.maxElements else {
                        throw bad("dataset \(p) has more than 2^27 elements")
                    }
                    count *= Int(d)
                    shape.append(Int(d))
                }
                let values: HDF5Snapshot.Values
                switch kind {
                case UInt8(ascii: "f"):
                    try addPayload(count * 4, self)
                    let raw = try take(count * 4)
                    values = .floats(StreamReader.copy(raw, count: count, as: Float.self))
                case UInt8(ascii: "i"):
                    try addPayload(count * 8, self)
                    let raw = try take(count * 8)
                    values = .integers(StreamReader.copy(raw, count: count, as: Int64.self))
                case UInt8(ascii: "o"):
                    values = .unreadable(reason: try string(limit: 4096, what: "a reason"))
                default:
                    throw bad("dataset \(p) has unknown value kind \(kind)")
                }
                datasets[p] = HDF5Snapshot.Dataset(shape: shape, values: values)
                objects.append(p)
            case UInt8(ascii: "A"):
                let object = try objectPath()
                guard groups.contains(object) || datasets[object] != nil else { throw bad("attribute of \(object), which was not sent") }
                let name = try string(limit: HDF5SnapshotLimits.maxName, what: "an attribute name")
                guard !name.isEmpty, !name.utf8.contains(0) else { throw bad("an attribute of \(object) has an empty name or a NUL byte") }
                var list = attributes[object] ?? []
                guard !list.contains(where: { $0.name == name }) else { throw bad("attribute \(object)@\(name) is sent twice") }
                guard list.count < HDF5SnapshotLimits.maxAttributesPerObject else { throw bad("\(object) has too many attributes") }
                let value: HDF5Snapshot.Attribute
                switch try u8() {
                case UInt8(ascii: "s"):
                    let text = try string(limit: HDF5SnapshotLimits.maxString, what: "string attribute \(object)@\(name)")
                    try addPayload(text.utf8.count, self)
                    value = .value(.string(text))
                case UInt8(ascii: "S"):
                    let n = try u64()
                    guard n <= UInt64(HDF5SnapshotLimits.maxAttributeValues) else { throw bad("attribute \(object)@\(name) claims \(n) strings") }
                    var texts: [String] = []
                    for _ in 0..<Int(n) {
                        let text = try string(limit: HDF5SnapshotLimits.maxString, what: "a string of attribute \(object)@\(name)")
                        try addPayload(text.utf8.count + 4, self)
                        texts.append(text)
                    }
                    value = .value(.strings(texts))
                case let k where k == UInt8(ascii: "i") || k == UInt8(ascii: "f"):
                    let n = try u64()
                    guard n >= 1, n <= UInt64(HDF5SnapshotLimits.maxAttributeValues) else { throw bad("attribute \(object)@\(name) claims \(n) values") }
                    try addPayload(Int(n) * 8, self)
                    let raw = try take(Int(n) * 8)
                    if k == UInt8(ascii: "i") {
                        value = .value(.integers(StreamReader.copy(raw, count: Int(n), as: Int64.self)))
                    } else {
                        value = .value(.floats(StreamReader.copy(raw, count: Int(n), as: Double.self)))
                    }
                case UInt8(ascii: "o"):
                    value = .unreadable(reason: try string(limit: 4096, what: "a reason"))
                case let k:
                    throw bad("attribute \(object)@\(name) has unknown kind \(k)")
                }
                list.append((name, value))
                attributes[object] = list
            case UInt8(ascii: "E"):
                let kind = try u8()
                let at = try string(limit: StreamReader.maxPathBytes, what: "an error location")
                let reason = try string(limit: 4096, what: "an error reason")
                guard offset == bytes.count else { throw bad("bytes follow the error record") }
                switch kind {
                case UInt8(ascii: "m"): throw .malformed(file: path, at: at, reason: reason)
                case UInt8(ascii: "u"): throw .unsupported(file: path, reason: at.isEmpty ? reason : "\(at): \(reason)")
                case UInt8(ascii: "i"): throw .io(path: path, reason: at.isEmpty ? reason : "\(at): \(reason)")
                default: throw bad("error record of unknown kind \(kind)")
                }
            case UInt8(ascii: "Z"):
                guard offset == bytes.count else { throw bad("bytes follow the end record") }
                guard groups.contains("/") else { throw bad("no root group") }
                return HDF5Snapshot(path: path, objects: objects, groups: groups, datasets: datasets, attributes: attributes)
            case let tag:
                offset = tagOffset
                throw bad("unknown record tag \(tag)")
            }
        }
    }
}
