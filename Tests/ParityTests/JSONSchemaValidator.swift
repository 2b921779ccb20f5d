import ParityCore

/// The subset of JSON Schema 2020-12 that tools/schemas/parity-report.schema.json uses: type (incl. lists),
/// const, enum, required, properties, additionalProperties: false, items, minItems, minimum, exclusiveMinimum,
/// minLength, oneOf, and local `$ref` to `#/$defs/...`. Returns every violation with its JSON path.
struct JSONSchemaValidator {
    let root: JSONValue

    func validate(_ value: JSONValue) -> [String] { check(value, against: root, at: "$") }

    private func resolve(_ schema: JSONValue) -> JSONValue {
        guard let ref = schema["$ref"]?.stringValue, ref.hasPrefix("#/$defs/") else { return schema }
        return root["$defs"]?[String(ref.dropFirst("#/$defs/".count))] ?? .null
    }

    private func typeName(_ v: JSONValue) -> [String] {
        switch v {
        case .null: return ["null"]
        case .bool: return ["boolean"]
        case let .number(text): return text.contains(where: { ".eE".contains($0) }) ? ["number"] : ["integer", "number"]
        case .string: return ["string"]
        case .array: return ["array"]
        case .object: return ["object"]
        }
    }

    private func check(_ v: JSONValue, against raw: JSONValue, at path: String) -> [String] {
        let s = resolve(raw)
        var errors: [String] = []
        if let types = s["type"] {
            let allowed = types.arrayValue?.compactMap(\.stringValue) ?? [types.stringValue ?? ""]
            if Set(allowed).isDisjoint(with: typeName(v)) { return ["\(path): \(typeName(v)[0]) is not \(allowed)"] }
        }
        if let c = s["const"], c != v { errors.append("\(path): expected \(c.serialized()), got \(v.serialized())") }
        if let e = s["enum"]?.arrayValue, !e.contains(v) { errors.append("\(path): \(v.serialized()) not in enum") }
        if let options = s["oneOf"]?.arrayValue {
            let matching = options.filter { check(v, against: $0, at: path).isEmpty }.count
            if matching != 1 { errors.append("\(path): matches \(matching) of the oneOf alternatives") }
        }
        if let min = s["minimum"]?.doubleValue, let x = v.doubleValue, x < min { errors.append("\(path): \(x) < \(min)") }
        if let min = s["exclusiveMinimum"]?.doubleValue, let x = v.doubleValue, x <= min { errors.append("\(path): \(x) <= \(min)") }
        if let min = s["minLength"]?.intValue, let text = v.stringValue, text.count < min { errors.append("\(path): shorter than \(min)") }
        if let members = v.objectValue {
            let properties = s["properties"]?.objectValue ?? []  // checked: JSON Schema: no "properties" constrains none
            for key in s["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where  // checked: no "required", none required
                   !members.contains(where: { $0.key == key }) {
                errors.append("\(path): missing required \"\(key)\"")
            }
            for (key, value) in members {
                if let sub = properties.first(where: { $0.key == key })?.value {
                    errors += check(value, against: sub, at: "\(path).\(key)")
                } else if s["additionalProperties"] == .bool(false) {
                    errors.append("\(path): unexpected property \"\(key)\"")
                }
            }
        }
        if let items = v.arrayValue {
            if let min = s["minItems"]?.intValue, items.count < min { errors.append("\(path): fewer than \(min) items") }
            if let itemSchema = s["items"] { for (i, item) in items.enumerated() { errors += check(item, against: itemSchema, at: "\(path)[\(i)]") } }
        }
        return errors
    }
}
