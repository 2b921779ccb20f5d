import ArgumentParser
import Foundation
import ParityCore
import ParityRun

/// `parity report merge`: joins the JSON of `verify --config --shard i/n --json` runs into one summary.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Work with matrix reports (JSON of `verify --config --json`).",
        subcommands: [Merge.self])

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Join the shards' JSON of one matrix into one report; refuses overlapping, missing or foreign shards.",
            discussion: "Exit status as verify's: 2 if any cell had bad input (or the shards do not add up), else 1 if any cell failed, else 3 if any cell is unjudged, else 0.")

        @Argument(help: "The shards' JSON files.")
        var shards: [String]
        @Option(name: .long, help: "Write the merged report (schema parity-matrix) to this file.")
        var json: String?

        func run() throws {
            var documents: [(json: JSONValue, source: String)] = []
            for path in shards {
                guard let data = FileManager.default.contents(atPath: path) else { throw ParityError.notFound(path: path, what: "shard JSON") }
                do { documents.append((try JSONParser.parse(Array(data)), path)) } catch {
                    throw ParityError.malformed(file: path, at: error.description, reason: "not valid JSON")
                }
            }
            let report = try Matrix.merge(documents)
            print(report.summary)
            if let json { try AtomicFileWriter.write(Array((report.json.serialized(pretty: true) + "\n").utf8), to: json) }
            if report.exitStatus != 0 { throw ExitCode(report.exitStatus) }
        }
    }
}
