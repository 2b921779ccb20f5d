import Foundation

/// libhdf5 1.10.8 (Debian 12) can loop forever on some corrupt files (found by fuzzing: H5Aread of a
/// variable-length string attribute spins in the metadata cache). A library call cannot be interrupted, so
/// HDF5 reads run under an alarm: if one does not finish in time, the process prints which file and exits 2.
enum Watchdog {
    nonisolated(unsafe) static var message: [CChar] = []

    /// `PARITY_HDF5_TIMEOUT` (seconds) overrides the default of 30: reading a golden takes well under a second.
    static func guardingHDF5<T>(_ path: String, _ body: () throws -> T) rethrows -> T {
        let seconds = UInt32(ProcessInfo.processInfo.environment["PARITY_HDF5_TIMEOUT"] ?? "") ?? 30
        message = Array("error: \(path): malformed: the HDF5 library did not finish reading it within \(seconds) s\n".utf8CString)
        signal(SIGALRM) { _ in
            Watchdog.message.withUnsafeBufferPointer { buffer in _ = write(STDERR_FILENO, buffer.baseAddress, buffer.count - 1) }
            _exit(2)
        }
        // The alarm must be deliverable even if the parent left SIGALRM blocked (the mask survives exec).
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGALRM)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        alarm(seconds)
        defer { alarm(0) }
        return try body()
    }
}
