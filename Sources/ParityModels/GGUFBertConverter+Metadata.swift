import Foundation
import ParityCore
import ParityFormats

/// gguf-py's `Metadata` (gguf/metadata.py) as convert_hf_to_gguf fills it for a model directory without an override
/// file: the model card's YAML front matter (README.md), then config.json's `_name_or_path`, then the directory name;
/// written as `set_gguf_meta_model` writes it. Only what a plain model card uses is read: keys with scalar strings or
/// lists of them. A card that gives one of these keys in another form (a nested map, a number) is refused, so the
/// converter never writes a file that differs silently from llama.cpp's.
struct GGUFModelCardMetadata {
    var name: String?, author: String?, version: String?, organization: String?, finetune: String?, basename: String?
    var description: String?, sizeLabel: String?, license: [String]?, licenseName: String?, licenseLink: String?
    var sourceURL: String?, sourceDOI: String?, sourceUUID: String?, sourceRepoURL: String?
    var baseModels: [[(String, String)]]?, datasets: [[(String, String)]]?
    var tags: [String]?, languages: [String]?

    /// The keys gguf-py reads from a card, by metadata field.
    static var scalarKeys: [(field: WritableKeyPath<GGUFModelCardMetadata, String?>, keys: [String])] { [
        (\.name, ["name", "model_name"]), (\.author, ["author", "model_author", "model_creator"]),
        (\.version, ["version", "model_version"]), (\.organization, ["organization", "model_organization"]),
        (\.description, ["description", "model_description"]), (\.finetune, ["finetune", "model_finetune"]),
        (\.basename, ["basename", "model_basename", "model_type"]), (\.sizeLabel, ["size_label", "model_size_label"]),
        (\.sourceURL, ["url", "model_url"]), (\.sourceDOI, ["doi", "model_doi"]), (\.sourceUUID, ["uuid", "model_uuid"]),
        (\.sourceRepoURL, ["repo_url", "model_repo_url"]), (\.licenseName, ["license_name"]), (\.licenseLink, ["license_link"]),
    ] }

    /// `Metadata.load(None, directory, None, parameterCount)` + convert_hf_to_gguf's fallbacks (directory name,
    /// `size_label` from the parameter count).
    static func load(directory: String, config: JSONValue, parameterCount: Int) throws -> GGUFModelCardMetadata {
        var m = GGUFModelCardMetadata()
        let cardPath = directory + "/README.md"
        if FileManager.default.fileExists(atPath: cardPath) {
            let card = try frontMatter(cardPath)
            func scalar(_ key: String) throws -> String? {
                guard let v = card[key] else { return nil }
                guard case let .scalar(s) = v else { throw ParityError.unsupported(file: cardPath, reason: "model card key '\(key)' is a list; gguf-py writes it as a string") }
                return s
            }
            // gguf-py checks its own keys first, then the Hugging Face ones; the first one set wins.
            for order in 0..<3 {
                for (field, keys) in scalarKeys where order < keys.count && m[keyPath: field] == nil {
                    m[keyPath: field] = try scalar(keys[order])
                }
            }
            m.baseModels = try references(card, keys: ["base_model", "base_models", "base_model_sources"], parameterCount: parameterCount, file: cardPath)
            m.datasets = try references(card, keys: ["datasets", "dataset", "dataset_sources"], parameterCount: parameterCount, file: cardPath)
            switch card["license"] {
            case let .scalar(s)?: m.license = [s]
            case let .list(l)?: m.license = l
            case nil: break
            }
            for (field, keys) in [(\GGUFModelCardMetadata.tags, ["tags", "pipeline_tag"]), (\.languages, ["languages", "language"])] {
                for key in keys {
                    switch card[key] {
                    case let .scalar(s)?: m[keyPath: field] = (m[keyPath: field] ?? []) + [s]
                    case let .list(l)?: m[keyPath: field] = (m[keyPath: field] ?? []) + l
                    case nil: break
                    }
                }
            }
        }
        // config.json's _name_or_path when it is a model id (at most one '/'), then the directory's name.
        var ids: [String] = []
        if let id = config["_name_or_path"]?.stringValue, id.filter({ $0 == "/" }).count <= 1 { ids.append(id) }
        ids.append(URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent)
        for id in ids {
            let c = modelIDComponents(id, parameterCount: parameterCount)
            if m.name == nil, let v = c.fullName { m.name = GGUFLlamaConverter.titleFromID(v) }
            if m.organization == nil, let v = c.organization { m.organization = GGUFLlamaConverter.titleFromID(v) }
            if m.basename == nil { m.basename = c.basename }
            if m.finetune == nil { m.finetune = c.finetune }
            if m.version == nil { m.version = c.version }
            if m.sizeLabel == nil { m.sizeLabel = c.sizeLabel }
        }
        if m.name == nil { m.name = URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent }
        if m.sizeLabel == nil && parameterCount > 0 { m.sizeLabel = GGUFLlamaConverter.sizeLabel(parameterCount) }
        return m
    }

    /// Base models or datasets as gguf-py derives them from ids ("org/name") or URLs.
    static func references(_ card: [String: YAMLValue], keys: [String], parameterCount: Int, file: String) throws -> [[(String, String)]]? {
        guard let key = keys.first(where: { card[$0] != nil }), let value = card[key] else { return nil }
        let ids: [String]
        switch value {
        case let .scalar(s): ids = [s]
        case let .list(l): ids = l
        }
        return ids.map { id -> [(String, String)] in
            var entry: [(String, String)] = []
            func add(_ c: ModelIDComponents, repo: String?) {
                if let v = c.fullName { entry.append(("name", GGUFLlamaConverter.titleFromID(v))) }
                if let v = c.organization { entry.append(("organization", GGUFLlamaConverter.titleFromID(v))) }
                if let v = c.version { entry.append(("version", v)) }
                if let repo { entry.append(("repo_url", repo)) }
            }
            if id.hasPrefix("http://") || id.hasPrefix("https://") || id.hasPrefix("ssh://") {
                entry.append(("repo_url", id))
                if id.contains("huggingface.co"),
                   let match = id.range(of: #"^https?://huggingface\.co/[^/]+/[^/]+$"#, options: .regularExpression) {
                    let path = String(id[match]).components(separatedBy: "huggingface.co/")[1]
                    let c = modelIDComponents(path, parameterCount: parameterCount)
                    var named: [(String, String)] = []
                    if let v = c.fullName { named.append(("name", GGUFLlamaConverter.titleFromID(v))) }
                    if let v = c.organization { named.append(("organization", GGUFLlamaConverter.titleFromID(v))) }
                    if let v = c.version { named.append(("version", v)) }
                    entry += named
                }
            } else {
                let c = modelIDComponents(id, parameterCount: parameterCount)
                add(c, repo: c.organization != nil && c.fullName != nil ? "https://huggingface.co/\(c.organization!)/\(c.fullName!)" : nil)
            }
            return entry
        }
    }

    /// `set_gguf_meta_model`'s keys in its order.
    func write(_ w: inout GGUFWriter) throws(ParityError) {
        try w.set("general.name", .string(name ?? ""))
        for (key, value) in [("general.author", author), ("general.version", version), ("general.organization", organization),
                             ("general.finetune", finetune), ("general.basename", basename), ("general.description", description),
                             ("general.size_label", sizeLabel)] {
            if let value { try w.set(key, .string(value)) }
        }
        if let license { try w.set("general.license", .string(license.joined(separator: ","))) }
        for (key, value) in [("general.license.name", licenseName), ("general.license.link", licenseLink),
                             ("general.source.url", sourceURL), ("general.source.doi", sourceDOI),
                             ("general.source.uuid", sourceUUID), ("general.source.repo_url", sourceRepoURL)] {
            if let value { try w.set(key, .string(value)) }
        }
        for (prefix, list) in [("general.base_model", baseModels), ("general.dataset", datasets)] {
            guard let list else { continue }
            try w.set("\(prefix).count", .uint32(UInt32(list.count)))
            for (i, entry) in list.enumerated() {
                // gguf-py writes the entry's fields in this order, whatever order they were found in.
                for field in ["name", "author", "version", "organization", "description", "url", "doi", "uuid", "repo_url"] {
                    if let v = entry.first(where: { $0.0 == field })?.1 { try w.set("\(prefix).\(i).\(field)", .string(v)) }
                }
            }
        }
        if let tags { try w.set("general.tags", .array(.string, tags.map { .string($0) })) }
        if let languages { try w.set("general.languages", .array(.string, languages.map { .string($0) })) }
    }

    // MARK: Model ids

    struct ModelIDComponents { var fullName, organization, basename, finetune, version, sizeLabel: String? }

    static func fullMatch(_ s: String, _ pattern: String) -> Bool {
        s.range(of: "^(?:\(pattern))$", options: [.regularExpression, .caseInsensitive]) != nil
    }

    /// gguf-py's `get_model_id_components`: "org/Name-Parts" → full name, organization, and the name's basename,
    /// finetune, version and size label when the parts say enough.
    static func modelIDComponents(_ id: String, parameterCount: Int) -> ModelIDComponents {
        if id.contains(" ") { return ModelIDComponents(fullName: id) }
        var organization: String?, fullName: String
        if let slash = id.firstIndex(of: "/") {
            organization = String(id[..<slash]); fullName = String(id[id.index(after: slash)...])
        } else {
            fullName = id
        }
        if let o = organization, o.first == "." { organization = nil }
        var parts = fullName.split(separator: "-", omittingEmptySubsequences: true).map(String.init)
        var types = [Set<String>](repeating: [], count: parts.count)
        for (i, part) in parts.enumerated() {
            if fullMatch(part, #"(v|iter)?\d+([.]\d+)*"#) {
                types[i].insert("version")
            } else if fullMatch(part, #"i?q\d(_\w)*|b?fp?(16|32)"#) {
                types[i].insert("type"); parts[i] = part.uppercased()
            } else if i > 0, fullMatch(part, #"(([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl)"#) {
                var p = part.replacingOccurrences(of: "_", with: ".")
                var chars = Array(p)
                if let last = chars.last, last.isNumber, chars.count >= 2 {  // bloom-7b1 → 7.1b
                    chars = Array(chars.dropLast(2)) + [".", last, chars[chars.count - 2]]
                }
                if chars.count > 1, chars[chars.count - 2].isNumber, "kmbt".contains(chars.last!) {
                    chars[chars.count - 1] = Character(chars.last!.uppercased())
                }
                p = String(chars)
                if parameterCount != 0, let value = Double(String(p.dropLast())),
                   let power = " KMBT".firstIndex(of: p.last!).map({ " KMBT".distance(from: " KMBT".startIndex, to: $0) }) {
                    let labelParams = value * pow(1000, Double(power))
                    let total = Double(parameterCount)
                    if (parameterCount < 0 && labelParams < Double(abs(parameterCount) / 8))
                        || (parameterCount > 0 && abs(labelParams - total) > Double(7 * parameterCount / 8)) {
                        types[i].insert("finetune")
                        p = String(p.dropLast()) + p.last!.lowercased()
                    }
                }
                if types[i].isEmpty { types[i].insert("size_label") }
                parts[i] = p
            } else if i > 0, fullMatch(part, "chat|instruct|vision|lora") {
                types[i].insert(parameterCount < 0 && part.lowercased() == "lora" ? "type" : "finetune")
            }
        }
        if zip(parts, types).contains(where: { $1.contains("size_label") && $0.contains { $0.isNumber } }) {
            for i in parts.indices where types[i].contains("size_label") && parts[i].allSatisfy({ $0.isLetter }) {
                types[i].remove("size_label")
            }
        }
        var atStart = true
        for i in parts.indices {
            if atStart && ((types[i].isEmpty && parts[i].first?.isLetter == true) || types[i].contains("version")) {
                types[i].insert("basename")
            } else {
                atStart = false
                if types[i].isEmpty { types[i].insert("finetune") }
            }
        }
        for i in parts.indices.reversed() {
            if types[i].contains("basename") && types[i].count > 1 { types[i].remove("basename") } else { break }
        }
        func joined(_ tag: String, excluding: String? = nil) -> String? {
            var seen: [String] = []
            for (p, t) in zip(parts, types) where t.contains(tag) && !(excluding.map { t.contains($0) } ?? false) {
                if tag == "size_label" && seen.contains(p) { continue }
                seen.append(p)
            }
            return seen.isEmpty ? nil : seen.joined(separator: "-")
        }
        var basename = joined("basename")
        let sizeLabel = joined("size_label"), finetune = joined("finetune"), version = joined("version", excluding: "basename")
        if sizeLabel == nil && finetune == nil && version == nil { basename = nil }
        return ModelIDComponents(fullName: fullName, organization: organization, basename: basename, finetune: finetune,
                                 version: version, sizeLabel: sizeLabel)
    }

    // MARK: Front matter

    enum YAMLValue: Equatable { case scalar(String), list([String]) }

    /// The keys of gguf-py's interest from README.md's YAML front matter (between a first line `---` and the next):
    /// `key: value` and `key:` followed by `- item` lines; other keys' blocks are skipped. A key of interest in a
    /// form this reader does not take (a map, a number, a flow sequence) is refused.
    static func frontMatter(_ path: String) throws -> [String: YAMLValue] {
        let file = try MappedFile(path: path)
        guard let text = String(data: file.data, encoding: .utf8) else {
            throw ParityError.malformed(file: path, at: "offset 0", reason: "not UTF-8 text")
        }
        // Python's splitlines on \n, \r\n and \r.
        let lines = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
            .components(separatedBy: "\n")
        guard lines.first == "---" else { return [:] }
        var yaml: [String] = []
        for line in lines.dropFirst() {
            if line == "---" { break }
            yaml.append(line.replacingOccurrences(of: "\t", with: "  "))
        }
        let interesting = Set(scalarKeys.flatMap(\.keys) + ["base_model", "base_models", "base_model_sources", "datasets", "dataset",
                                                            "dataset_sources", "license", "tags", "pipeline_tag", "languages", "language"])
        var out: [String: YAMLValue] = [:]
        var i = 0
        func refuse(_ key: String, _ why: String) -> ParityError {
            .unsupported(file: path, reason: "model card key '\(key)': \(why); Parity's GGUF converter reads plain strings and lists of strings only")
        }
        while i < yaml.count {
            let line = yaml[i]
            i += 1
            if line.trimmingCharacters(in: .whitespaces).isEmpty || line.hasPrefix("#") || line.first == " " || line.hasPrefix("-") { continue }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon]).trimmingCharacters(in: .whitespaces)
            let rest = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            guard interesting.contains(key) else { continue }
            if rest.isEmpty {
                var items: [String] = []
                while i < yaml.count {
                    let item = yaml[i].trimmingCharacters(in: .whitespaces)
                    if item.isEmpty { i += 1; continue }
                    guard item.hasPrefix("- ") || item == "-" else {
                        if yaml[i].first == " " { throw refuse(key, "a nested map") }
                        break
                    }
                    items.append(try plainString(String(item.dropFirst(2)), key: key, refuse: refuse))
                    i += 1
                }
                out[key] = .list(items)
            } else {
                out[key] = .scalar(try plainString(rest, key: key, refuse: refuse))
            }
        }
        return out
    }

    /// A YAML scalar that safe_load reads as a string: quoted, or plain and not a number, bool or null.
    static func plainString(_ raw: String, key: String, refuse: (String, String) -> ParityError) throws -> String {
        var s = raw
        if let hash = s.range(of: " #") { s = String(s[..<hash.lowerBound]).trimmingCharacters(in: .whitespaces) }
        if s.count >= 2, (s.first == "\"" && s.last == "\"") || (s.first == "'" && s.last == "'") {
            let inner = String(s.dropFirst().dropLast())
            if inner.contains("\\") || inner.contains("''") { throw refuse(key, "a quoted string with escapes") }
            return inner
        }
        if s.hasPrefix("[") || s.hasPrefix("{") || s.hasPrefix("&") || s.hasPrefix("*") || s.hasPrefix("|") || s.hasPrefix(">") || s.hasPrefix("!") {
            throw refuse(key, "'\(s)' is not a plain scalar")
        }
        let lowered = s.lowercased()
        if ["null", "~", "true", "false", "yes", "no", "on", "off", ""].contains(lowered)
            || fullMatch(s, #"[-+]?(\d[\d_]*)?(\.\d*)?([eE][-+]?\d+)?"#) && s.contains(where: \.isNumber)
            || fullMatch(s, #"[-+]?\.(inf|nan)"#) || fullMatch(s, #"0x[0-9a-f]+|0o[0-7]+"#) {
            throw refuse(key, "'\(s)' is not a string in YAML")
        }
        return s
    }
}

extension GGUFBertConverter {
    /// gguf-py's reading of a model card: the keys it uses from README.md's front matter (refusing forms Parity does
    /// not read), as scalars or lists.
    public static func modelCardKeys(_ path: String) throws -> [String: [String]] {
        try GGUFModelCardMetadata.frontMatter(path).mapValues { value in
            switch value {
            case let .scalar(s): return [s]
            case let .list(l): return l
            }
        }
    }

    /// gguf-py's `get_model_id_components` and `id_to_title`, for reports and tests.
    public static func modelIDComponents(_ id: String, parameterCount: Int)
        -> (fullName: String?, organization: String?, basename: String?, finetune: String?, version: String?, sizeLabel: String?) {
        let c = GGUFModelCardMetadata.modelIDComponents(id, parameterCount: parameterCount)
        return (c.fullName, c.organization, c.basename, c.finetune, c.version, c.sizeLabel)
    }

    public static func titleFromID(_ id: String) -> String { GGUFLlamaConverter.titleFromID(id) }
}
