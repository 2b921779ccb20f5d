import CGoldenReader
import Foundation
import ParityCore

/// Runs one HDF5 reader process (HDF5Snapshot.swift says why a process and why this executable) and collects
/// its output, without ever trusting it: the output is capped, the wait is bounded, and a reader that hangs or
/// floods the pipe is killed. Safe to call from several threads at once (each call has its own child and pipe;
/// the pipe is close-on-exec so a concurrently spawned process cannot hold its write end open).
enum HDF5ReaderProcess {
    enum Ending: Equatable {
        case exited(Int32)
        case signaled(Int32)
        case timedOut(seconds: Double)
        case tooMuchOutput
    }
    struct Outcome {
        let ending: Ending
        let output: [UInt8]
    }

    static func run(path: String, executable: String, timeout: Double) throws(ParityError) -> Outcome {
        var readFD: Int32 = -1
        let pid = parity_h5_spawn_reader(executable, path, &readFD)
        guard pid > 0 else {
            throw .io(path: path, reason: "cannot start the HDF5 reader process \(executable): \(String(cString: strerror(-pid)))")
        }
        defer { close(readFD) }
        let deadline = Date().addingTimeInterval(timeout)
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var ending: Ending?
        // Read until EOF, the deadline or the size limit.
        reading: while true {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { ending = .timedOut(seconds: timeout); break }
            var poller = pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(remaining * 1000 + 1, 60_000)))
            if ready < 0 {
                if errno == EINTR { continue }
                ending = .tooMuchOutput  // unreachable in practice; treated as a failed read
                break
            }
            if ready == 0 { continue }
            let n = chunk.withUnsafeMutableBytes { read(readFD, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR || errno == EAGAIN { continue }; break reading }
            if n == 0 { break }
            guard output.count + n <= HDF5SnapshotLimits.maxStreamBytes else { ending = .tooMuchOutput; break }
            output.append(contentsOf: chunk[0..<n])
        }
        if ending != nil { kill(pid, SIGKILL) }
        // EOF: the reader closed its output; it must also exit before the deadline (a reader that closes stdout
        // and then hangs is ended like any other hang).
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, ending == nil ? WNOHANG : 0)
            if r == pid { break }
            if r < 0 && errno == EINTR { continue }
            if r < 0 {
                // ECHILD: someone else reaped it (SIGCHLD ignored, or a waitpid(-1) elsewhere); judge by the stream.
                // The stream alone then decides: it must be complete and valid, or end in the reader's error record.
                return Outcome(ending: ending ?? .exited(0), output: output)
            }
            if Date() >= deadline {
                kill(pid, SIGKILL)
                ending = .timedOut(seconds: timeout)
                continue
            }
            usleep(1_000)
        }
        if let ending { return Outcome(ending: ending, output: output) }
        // WIFEXITED / WTERMSIG are macros Swift cannot import.
        let signal = status & 0x7f
        return Outcome(ending: signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal), output: output)
    }
}
