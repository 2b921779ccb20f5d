/// Every failure Parity reports to a user. Each case names the file (or model) and what is wrong, so the
/// CLI can print `description` verbatim and exit 2 (bad input) — never a crash or a bare "invalid data".
public enum ParityError: Error, CustomStringConvertible, Equatable {
    /// The file exists but its bytes do not follow the format; `at` is a byte offset ("offset 123") or a key path.
    case malformed(file: String, at: String, reason: String)
    /// A file, directory, model or dataset that should exist does not.
    case notFound(path: String, what: String)
    /// Well-formed, but uses something Parity does not implement (a dtype, an op, an architecture).
    case unsupported(file: String, reason: String)
    /// Two things that must agree do not (a checksum, a shape, a config and its weights).
    case mismatch(file: String, reason: String)
    /// Reading or writing failed at the operating-system level.
    case io(path: String, reason: String)
    /// The command line itself is wrong.
    case usage(String)

    public var description: String {
        switch self {
        case let .malformed(file, at, reason): return "\(file): malformed at \(at): \(reason)"
        case let .notFound(path, what): return "\(path): \(what) not found"
        case let .unsupported(file, reason): return "\(file): unsupported: \(reason)"
        case let .mismatch(file, reason): return "\(file): \(reason)"
        case let .io(path, reason): return "\(path): \(reason)"
        case let .usage(message): return message
        }
    }
}
