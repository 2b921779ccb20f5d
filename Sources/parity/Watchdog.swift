import Foundation

/// libhdf5 1.10.8 (Debian 12) can loop forever or crash on corrupt files (both found by fuzzing: H5Aread of a
/// variable-length string spinning in the metadata cache; a bad pointer dereference while decoding object
/// headers). A C library call can be neither interrupted nor made safe from Swift, so the CLI runs HDF5 reads
/// under a guard: an alarm for hangs, and handlers for the crash signals. Either way the process prints which
/// file and why, and exits 2 — the CLI contract for bad input — instead of hanging or dying with a backtrace.
enum Watchdog {
    nonisolated(unsafe) static var timeoutMessage: [CChar] = []
    nonisolated(unsafe) static var crashMessage: [CChar] = []
    static let crashSignals: [Int32] = [SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT]

    /// `PARITY_HDF5_TIMEOUT` (seconds) overrides the default of 30: reading a golden takes well under a second.
    static func guardingHDF5<T>(_ path: String, _ body: () throws -> T) rethrows -> T {
        let seconds = UInt32(ProcessInfo.processInfo.environment["PARITY_HDF5_TIMEOUT"] ?? "") ?? 30
        timeoutMessage = Array("error: \(path): malformed: the HDF5 library did not finish reading it within \(seconds) s\n".utf8CString)
        crashMessage = Array("error: \(path): malformed: the HDF5 library crashed reading it (a libhdf5 bug on corrupt files)\n".utf8CString)
        var previous: [Int32: sigaction] = [:]
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in
            Watchdog.crashMessage.withUnsafeBufferPointer { buffer in _ = write(STDERR_FILENO, buffer.baseAddress, buffer.count - 1) }
            _exit(2)
        }
        sigemptyset(&action.sa_mask)
        for signal in crashSignals {
            var old = sigaction()
            sigaction(signal, &action, &old)
            previous[signal] = old
        }
        signal(SIGALRM) { _ in
            Watchdog.timeoutMessage.withUnsafeBufferPointer { buffer in _ = write(STDERR_FILENO, buffer.baseAddress, buffer.count - 1) }
            _exit(2)
        }
        // The alarm must be deliverable even if the parent left SIGALRM blocked (the mask survives exec).
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGALRM)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        alarm(seconds)
        defer {
            alarm(0)
            for (signal, old) in previous { var old = old; sigaction(signal, &old, nil) }
        }
        return try body()
    }
}
