import Foundation
import ParityCore

/// The weights of a Hugging Face checkpoint directory, found as transformers' `from_pretrained` finds them:
/// `model.safetensors` if it exists, else the shards `model.safetensors.index.json` names in its `weight_map`
/// (tensor name → shard file). transformers then loads every tensor of every listed shard; it checks neither that
/// a listed tensor is in its shard (a missing one is left randomly initialised, with a warning) nor that no tensor
/// is in two shards (the later shard wins). A reference must be exactly the weights it names, so here each of
/// those is bad input naming the file:
/// - a shard the map lists that does not exist, or whose name leaves the directory (absolute, or a `..`
///   component; symlinks are followed as transformers follows them: the Hugging Face cache links shards to blobs);
/// - a tensor the map assigns to a shard whose header lacks it;
/// - a tensor in two shards' headers, or in a shard the map does not assign it to;
/// - an index without a `weight_map` object of strings, or an empty one.
/// The result is one `SafetensorsFile` view (`init(merging:path:)`) whose `files` are the shards in name order.
public enum SafetensorsCheckpoint {
    public static let singleFileName = "model.safetensors"
    public static let indexFileName = "model.safetensors.index.json"

    /// True when `directory` holds a sharded checkpoint as transformers would load it (no single file beside).
    public static func isSharded(directory: String) -> Bool {
        let fm = FileManager.default
        return !fm.fileExists(atPath: directory + "/" + singleFileName) && fm.fileExists(atPath: directory + "/" + indexFileName)
    }

    /// The checkpoint's weights: the single file, or every shard of the index, validated as described above.
    public static func open(directory: String) throws(ParityError) -> SafetensorsFile {
        guard isSharded(directory: directory) else { return try SafetensorsFile(path: directory + "/" + singleFileName) }
        return try openSharded(indexPath: directory + "/" + indexFileName)
    }

    /// The `weight_map` of an index: tensor name → shard file name, in the index's order.
    public static func weightMap(indexPath: String) throws(ParityError) -> [(tensor: String, file: String)] {
        let file = try MappedFile(path: indexPath)
        let json: JSONValue
        do { json = try JSONParser.parse([UInt8](file.data)) } catch {
            throw .malformed(file: indexPath, at: "offset \(error.offset)", reason: error.reason)
        }
        guard let members = json["weight_map"]?.objectValue else {
            throw .malformed(file: indexPath, at: "key \"weight_map\"", reason: "missing or not an object (tensor name → shard file)")
        }
        guard !members.isEmpty else { throw .malformed(file: indexPath, at: "key \"weight_map\"", reason: "empty: it names no tensor") }
        var map: [(tensor: String, file: String)] = []
        for (tensor, value) in members {
            guard let shard = value.stringValue else {
                throw .malformed(file: indexPath, at: "key \"weight_map.\(tensor)\"", reason: "must be a shard file name, got \(value.serialized())")
            }
            let components = shard.split(separator: "/", omittingEmptySubsequences: false)
            guard !shard.isEmpty, !shard.hasPrefix("/"), !components.contains(".."), !components.contains("") else {
                throw .malformed(file: indexPath, at: "key \"weight_map.\(tensor)\"",
                                 reason: "shard \"\(shard)\" is not a file inside the checkpoint directory")
            }
            map.append((tensor, shard))
        }
        return map
    }

    static func openSharded(indexPath: String) throws(ParityError) -> SafetensorsFile {
        let directory = URL(fileURLWithPath: indexPath).deletingLastPathComponent().path
        let map = try weightMap(indexPath: indexPath)
        var assigned: [String: String] = [:]
        for (tensor, file) in map { assigned[tensor] = file }
        let shardNames = Set(map.map(\.file)).sorted()
        var shards: [SafetensorsFile] = []
        var foundIn: [String: [String]] = [:]
        for name in shardNames {
            let path = directory + "/" + name
            guard FileManager.default.fileExists(atPath: path) else {
                throw .notFound(path: path, what: "shard \"\(name)\" listed in \(indexPath)")
            }
            let shard = try SafetensorsFile(path: path)
            for entry in shard.entries { foundIn[entry.name, default: []].append(name) }
            shards.append(shard)
        }
        for (name, shard) in zip(shardNames, shards) {
            for entry in shard.entries {
                let holders = foundIn[entry.name]!
                if holders.count > 1 {
                    throw .mismatch(file: shard.path, reason: "tensor \"\(entry.name)\" is in shards \(holders.joined(separator: " and ")): a tensor must be in one shard")
                }
                guard let expected = assigned[entry.name] else {
                    throw .mismatch(file: shard.path, reason: "tensor \"\(entry.name)\" is not in \(indexPath)'s weight_map")
                }
                guard expected == name else {
                    throw .mismatch(file: shard.path, reason: "tensor \"\(entry.name)\" is here, but \(indexPath)'s weight_map puts it in \(expected)")
                }
            }
        }
        for (tensor, file) in map where foundIn[tensor] == nil {
            throw .mismatch(file: directory + "/" + file, reason: "has no tensor \"\(tensor)\", which \(indexPath)'s weight_map puts in it")
        }
        return SafetensorsFile(merging: shards, path: indexPath)
    }
}
