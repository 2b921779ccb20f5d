import Foundation
import ParityCore
import ParityFormats
import ParityModels
import Testing

/// Goldens are read by libhdf5 in a separate reader process (HDF5Snapshot.swift): a libhdf5 crash or hang ends
/// that process, never this one, and whatever the reader sends is validated before use.
@Suite("HDF5 goldens read in an isolated process")
struct GoldenIsolationTests {
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = Date()
        try body()
        return Date().timeIntervalSince(start)
    }

    @Test("the isolated reader returns exactly what libhdf5 reads in-process; cost of the isolation", arguments: try nonEmpty(Repo.bundledModels, "bundled models"))
    func sameAsInProcess(modelName: String) throws {
        let path = Repo.golden + "/\(modelName)/golden.h5"
        let isolated = try GoldenFile(path: path)
        let inProcess = try GoldenFile(path: path, isolation: .inProcessForFuzzing)
        #expect(isolated.activations.map(\.name) == inProcess.activations.map(\.name))
        #expect(!isolated.activations.isEmpty)
        for (a, b) in zip(isolated.activations, inProcess.activations) {
            #expect(a.tensor == b.tensor && a.op == b.op && a.input == b.input && a.noiseFloorRelL2 == b.noiseFloorRelL2, "\(a.name)")
        }
        #expect(isolated.inputs == inProcess.inputs)
        #expect(isolated.labels == inProcess.labels)
        #expect(isolated.rootAttributes.map(\.name) == inProcess.rootAttributes.map(\.name))
        #expect(isolated.rootAttributes.map(\.value) == inProcess.rootAttributes.map(\.value))
        // The cost, printed for the record (mean of five reads each, after one warm-up read of each kind).
        let runs = 5
        let tIsolated = try Self.seconds { for _ in 0..<runs { _ = try GoldenFile(path: path) } } / Double(runs)
        let tInProcess = try Self.seconds { for _ in 0..<runs { _ = try GoldenFile(path: path, isolation: .inProcessForFuzzing) } } / Double(runs)
        let tLibhdf5 = Self.seconds { for _ in 0..<runs { _ = HDF5Snapshot.inProcessStream(path) } } / Double(runs)
        func ms(_ t: Double) -> String { String(format: "%.1f ms", t * 1000) }
        print("golden read \(modelName): in-process \(ms(tInProcess)) (libhdf5 walk alone \(ms(tLibhdf5))), isolated \(ms(tIsolated))")
    }

    @Test("a golden on which libhdf5 crashes gives a ParityError in the library API, and this process goes on")
    func crashInLibraryAPI() throws {
        let path = Repo.fixtures + "/malformed/libhdf5-segfaults.h5"
        #expect { try GoldenFile(path: path) } throws: { error in
            guard let e = error as? ParityError, case let .malformed(file, _, reason) = e else { return false }
            return file == path && reason.contains("the HDF5 library crashed reading it (signal 11")
        }
        // Still healthy: a valid golden reads after the crash.
        #expect(try GoldenFile(path: Repo.golden + "/fmnist-mlp/golden.h5").activations.count == 4)
    }

    @Test("a golden on which libhdf5 loops is ended at the timeout")
    func hangInLibraryAPI() throws {
        let path = Repo.fixtures + "/malformed/libhdf5-loops.h5"
        let elapsed = Self.seconds {
            #expect { try HDF5Snapshot.read(path, timeout: 2) } throws: { error in
                "\(error)".contains(path) && "\(error)".contains("did not finish reading it within 2 s")
            }
        }
        // 2 s limit + killing and reaping the reader; 20 s means the timeout did not act.
        #expect(elapsed < 20)
    }

    @Test("reads from many threads at once (as Swift Testing and user code call it) all succeed or fail cleanly")
    func concurrent() throws {
        let good = Repo.golden + "/fmnist-cnn/golden.h5"
        let crashing = Repo.fixtures + "/malformed/libhdf5-segfaults.h5"
        let results = ConcurrentResults()
        DispatchQueue.concurrentPerform(iterations: 12) { i in
            let path = i % 3 == 2 ? crashing : good
            do {
                let golden = try GoldenFile(path: path)
                results.add(path == good && golden.activations.count == 8 ? "ok" : "wrong")
            } catch let error as ParityError {
                results.add(path == crashing && "\(error)".contains("crashed") ? "ok" : "wrong: \(error)")
            } catch {
                results.add("wrong: \(error)")
            }
        }
        #expect(results.all.count == 12)
        #expect(results.all.allSatisfy { $0 == "ok" }, "\(results.all)")
    }

    /// Files written by h5py (tools/hdf5/make_link_fixtures.py): links are refused before libhdf5 follows them
    /// (an external link would make it open another file), a non-numeric dataset is named.
    @Test("soft and external links are refused unfollowed; a string dataset where numbers belong is named", arguments: try nonEmpty([
        ("h5py-external-link.h5", "/activations/fc1: is a soft or external link"),
        ("h5py-soft-link.h5", "/activations/fc1: is a soft or external link"),
        ("h5py-string-dataset.h5", "dataset /inputs/images: dataset is not numeric"),
    ], "cases"))
    func linksAndStrings(fixture: String, expected: String) throws {
        let path = Repo.fixtures + "/malformed/" + fixture
        #expect { try GoldenFile(path: path) } throws: { error in
            guard let e = error as? ParityError, case let .unsupported(file, reason) = e else { return false }
            return file == path && reason.contains(expected)
        }
    }

    /// A reader that misbehaves (as a compromised reader could): the parent must answer with an error, never
    /// crash, hang or take its word for sizes.
    @Test("hostile reader processes: garbage, lies about sizes, crash, hang, silence", arguments: try nonEmpty([
        ("printf 'hello world'", "does not start with the snapshot signature"),
        // A dataset claiming 2^27 floats and sending none.
        (#"printf 'PH5SNAP1G\001\000\000\000/D\002\000\000\000/xf\001\000\000\000\000\000\000\010\000\000\000\000'"#, "ends early"),
        // A dataset claiming 2^40 elements.
        (#"printf 'PH5SNAP1G\001\000\000\000/D\002\000\000\000/xf\001\000\000\000\000\000\000\000\000\001\000\000'"#, "more than 2^27 elements"),
        // A member sent before its group, a path with '..', an unknown tag.
        (#"printf 'PH5SNAP1G\001\000\000\000/G\004\000\000\000/a/b'"#, "arrives before its group"),
        (#"printf 'PH5SNAP1G\001\000\000\000/G\003\000\000\000/..'"#, "'..'"),
        (#"printf 'PH5SNAP1Q'"#, "unknown record tag"),
        // Invalid UTF-8 in a name.
        (#"printf 'PH5SNAP1G\001\000\000\000/A\001\000\000\000/\001\000\000\000\377s\000\000\000\000Z'"#, "not valid UTF-8"),
        ("printf 'PH5SNAP1G\\001\\000\\000\\000/'; kill -SEGV $$", "crashed reading it (signal 11"),
        ("exec sleep 600", "did not finish reading it within 1 s"),
        ("exec 1>&-; exec sleep 600", "did not finish reading it within 1 s"),
        ("exit 7", "exited with status 7"),
        ("exit 0", "ends early"),
    ], "cases"))
    func hostileReader(script: String, expected: String) throws {
        let dir = try TemporaryDirectory()
        let reader = dir.file("reader.sh")
        // Written through a close-on-exec descriptor: the cases run in parallel, and a write descriptor inherited by
        // another case's reader (`sleep 600` lives up to the 1 s limit) made exec of this script fail with ETXTBSY
        // ("Text file busy"), seen once in a full run (Foundation's Data.write opens without O_CLOEXEC).
        try AtomicFileWriter.write(Array("#!/bin/sh\n\(script)\n".utf8), to: reader)
        chmod(reader, 0o755)
        let golden = Repo.golden + "/fmnist-mlp/golden.h5"
        let elapsed = try Self.seconds {
            #expect { try HDF5Snapshot.read(golden, timeout: 1, readerExecutable: reader) } throws: { error in
                guard let e = error as? ParityError, case let .malformed(file, _, reason) = e else { return false }
                return file == golden && reason.contains(expected)
            }
        }
        #expect(elapsed < 20, "a 1 s limit must end a hung reader")
    }

    @Test("the snapshot decoder refuses every truncation of a real stream and survives corrupted ones")
    func decoderRobustness() throws {
        let path = Repo.golden + "/fmnist-mlp/golden.h5"
        let stream = HDF5Snapshot.inProcessStream(path)
        let decoded = try HDF5Snapshot.decode(stream, path: path)
        #expect(decoded.datasets.keys.sorted() == ["/activations/fc1", "/activations/fc2", "/activations/flatten", "/activations/relu1", "/inputs/images", "/labels", "/reference/logits_f64"])
        // Every offset through the first records (framing), then 100 cuts through the data.
        let offsets = Array(0..<min(stream.count, 2048)) + Array(stride(from: 2048, to: stream.count, by: max(1, stream.count / 100)))
        for length in offsets {
            #expect(throws: ParityError.self, "truncated to \(length)") { try HDF5Snapshot.decode(Array(stream[0..<length]), path: path) }
        }
        // Byte flips in the framing region (names, tags, lengths): a typed error or a snapshot, never a trap.
        var generator = SplitMix64(seed: 0x5eed)
        var refused = 0
        for _ in 0..<500 {
            var corrupted = stream
            let at = Int(generator.next() % UInt64(min(stream.count, 4096)))
            corrupted[at] ^= UInt8(truncatingIfNeeded: generator.next() | 1)
            if (try? HDF5Snapshot.decode(corrupted, path: path)) == nil { refused += 1 }  // checked: counts refusals; a crash would end the test
        }
        #expect(refused > 0)
    }
}

final class ConcurrentResults: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return items }
}

