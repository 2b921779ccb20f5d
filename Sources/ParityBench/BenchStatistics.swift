import Foundation
import Histogram

/// Mean and spread of repeated measurements, as llama-bench reports them (`avg ± stdev` over `-r` repetitions):
/// the arithmetic mean and the sample standard deviation (n − 1 in the denominator; 0 for a single sample).
public struct MeanDeviation: Equatable, Sendable {
    public let mean: Double
    public let stddev: Double
    public let count: Int

    public init(_ samples: [Double]) {
        count = samples.count
        guard !samples.isEmpty else { mean = .nan; stddev = .nan; return }
        let m = samples.reduce(0, +) / Double(samples.count)
        mean = m
        stddev = samples.count < 2 ? 0 : (samples.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(samples.count - 1)).squareRoot()
    }
}

/// Latency percentiles of many timed runs, from an HdrHistogram (3 significant digits: each reported percentile is
/// within 0.1 % of a recorded value), plus the exact mean and sample standard deviation of the samples.
public struct LatencySummary: Equatable, Sendable {
    public let count: Int
    public let meanSeconds: Double
    public let stddevSeconds: Double
    public let p50Seconds: Double
    public let p95Seconds: Double
    public let p99Seconds: Double
    public let maxSeconds: Double

    /// `nanoseconds`: one entry per timed run.
    public init(nanoseconds: [UInt64]) {
        var histogram = Histogram<UInt64>(highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: .three)
        for value in nanoseconds { _ = histogram.record(Swift.max(value, 1)) }
        let md = MeanDeviation(nanoseconds.map { Double($0) })
        count = nanoseconds.count
        meanSeconds = md.mean / 1e9
        stddevSeconds = md.stddev / 1e9
        func at(_ p: Double) -> Double { nanoseconds.isEmpty ? .nan : Double(histogram.valueAtPercentile(p)) / 1e9 }
        p50Seconds = at(50)
        p95Seconds = at(95)
        p99Seconds = at(99)
        // The largest sample itself (not its histogram bucket's upper edge).
        maxSeconds = nanoseconds.max().map { Double($0) / 1e9 } ?? .nan
    }
}

/// A monotonic clock in nanoseconds (CLOCK_MONOTONIC: unaffected by wall-clock changes; no allocation).
@inline(__always) public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// This process's peak resident set size since the last `resetPeakRSS()` (VmHWM in /proc/self/status), in bytes.
public func peakRSSBytes() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),  // checked: nil = not Linux, reported as absent
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kib = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
    return kib * 1024
}

/// Resets VmHWM to the current RSS (Linux: writing "5" to /proc/self/clear_refs), so each benchmarked file gets
/// its own peak. Returns false where the kernel does not allow it (the peak then includes earlier rows).
@discardableResult public func resetPeakRSS() -> Bool {
    guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
    defer { try? handle.close() }
    do { try handle.write(contentsOf: Data("5".utf8)) } catch { return false }
    return true
}
