import ArgumentParser
import Foundation
import ParityCore
import ParityRun
import ParityVerify

/// `parity verify --config FILE…`: a matrix from config files, cached, parallel, sharded (docs/matrix.md).
struct MatrixOptionGroup: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Run the matrix of these config files (YAML or JSON; repeatable; a glob such as \"configs/*.yaml\" is expanded by Parity). See docs/matrix.md.", valueName: "file"))
    var config: [String] = []
    @Flag(name: .long, help: "With --config: print the cells (of this shard) and exit.")
    var dryRun = false
    @Option(name: .long, help: "With --config: where cell results are cached (default .parity-cache).")
    var cacheDir: String = ".parity-cache"
    @Flag(name: .long, help: "With --config: run every cell even if its result is cached (fresh results are still cached).")
    var noCache = false
    @Option(name: .long, help: "Cells run at once (default: the machine's cores); reports are printed in cell order whatever the count.")
    var jobs: Int?
    @Option(name: .long, help: ArgumentHelp("With --config: run slice i of n (1-based; cells in key order, every n-th): the same slice on every machine. Join the shards' --json with `parity report merge`.", valueName: "i/n"))
    var shard: String?

    /// The matrix options are errors without --config (they would be silently ignored).
    func refuseWithoutConfig() throws {
        let given = [("--dry-run", dryRun), ("--no-cache", noCache), ("--shard", shard != nil), ("--cache-dir", cacheDir != ".parity-cache")]
            .filter(\.1).map(\.0)
        if !given.isEmpty { throw ParityError.usage("\(given.joined(separator: ", ")) appl\(given.count == 1 ? "ies" : "y") only with --config") }
    }
}

extension Verify {
    func runMatrix() throws {
        guard models.isEmpty, file == nil, format.isEmpty, variant.isEmpty else {
            throw ParityError.usage("--config gives the models, formats, variants and files: do not also name them on the command line")
        }
        if let jobs = matrix.jobs, jobs < 1 { throw ParityError.usage("--jobs \(jobs): give at least 1") }
        let config = try MatrixConfig.load(matrix.config)
        var options = MatrixOptions()
        options.jobs = matrix.jobs ?? ProcessInfo.processInfo.activeProcessorCount
        options.cacheDirectory = matrix.cacheDir
        options.ignoreCache = matrix.noCache
        options.shard = try matrix.shard.map { text throws(ParityError) in try Shard(parsing: text) }
        options.im2col = im2col.ggmlIm2col == .f16 ? .f16 : .kernel
        options.llama = llamaRuntime.settings
        options.workDirectory = keep
        if matrix.dryRun {
            let workDirectory = try keep ?? makeTemporaryDirectory()
            defer { if keep == nil { try? FileManager.default.removeItem(atPath: workDirectory) } }
            let settings = CellSettings(im2col: im2col.ggmlIm2col, llama: llamaRuntime.settings, workDirectory: workDirectory)
            let all = try Matrix.plan(config, settings: settings, store: ReferenceStore())
            let mine = Matrix.slice(all, shard: options.shard)
            print("\(mine.count) cells" + (options.shard.map { " (shard \($0) of \(all.count))" } ?? "") + " from \(config.sources.joined(separator: ", "))")
            for cell in mine {
                switch cell.planned {
                case .cell: print("  \(cell.key)  (\(cell.origin))")
                case let .decided(.skipped(line)): print("  \(line)")
                case let .decided(.badInput(e)): print("  ERROR  \(cell.key)  \(e.message)")
                case .decided(.report): print("  \(cell.key)")
                }
            }
            return
        }
        options.progress = { line in FileHandle.standardError.write(Data(("parity: " + line + "\n").utf8)) }
        let report = try Matrix.run(config, options: options)
        for cell in report.cells {
            if let text = cell.text { print(text); print() }
        }
        for cell in report.cells where cell.status == .error { printError("error: \(cell.message ?? cell.key)") }
        print(report.summary)
        let cached = report.cells.filter(\.cached).count
        print("  \(report.cells.count) cells: \(cached) from the cache (\(matrix.cacheDir)), \(report.cells.count - cached) run")
        if let json {
            try AtomicFileWriter.write(Array((report.json.serialized(pretty: true) + "\n").utf8), to: json)
        }
        if report.exitStatus != 0 { throw ExitCode(report.exitStatus) }
    }
}
