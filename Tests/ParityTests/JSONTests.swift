import ParityCore
import Testing

@Suite("Strict JSON parser")
struct JSONTests {
    func parse(_ text: String) throws -> JSONValue { try JSONParser.parse(Array(text.utf8)) }

    @Test("values, key order and exact integers")
    func values() throws {
        let v = try parse(#"{"b": [1, -2.5e3, true, null], "a": "x\u00e9\n", "big": 18446744073709551615}"#)
        #expect(v.objectValue?.map(\.key) == ["b", "a", "big"])
        #expect(v["a"]?.stringValue == "xé\n")
        #expect(v["big"]?.uint64Value == UInt64.max)
        #expect(v["b"]?.arrayValue?[1].doubleValue == -2500)
        #expect(try parse("{}  \n ") == .object([]), "trailing whitespace (safetensors padding) is allowed")
    }

    @Test("rejects malformed input with the offending byte offset", arguments: try nonEmpty([
        (#"{"a": 1, "a": 2}"#, "duplicate key"),
        (#"{"a": 1} x"#, "unexpected data"),
        (#"{"a": 01}"#, "expected ','"),
        (#"{"a": "\x"}"#, "invalid escape"),
        ("{\"a\": \"\u{01}\"}", "control character"),
        (#"{"a": [1, 2}"#, "expected ','"),
        (#"{"a": "\ud800"}"#, "unpaired surrogate"),
        (#"{"a"#, "unterminated string"),
        ("", "unexpected end"),
    ], "malformed JSON cases"))
    func rejects(text: String, reason: String) {
        #expect {
            try parse(text)
        } throws: { error in
            "\(error)".contains(reason)
        }
    }

    @Test("rejects invalid UTF-8 and overlong encodings")
    func invalidUTF8() {
        for bad: [UInt8] in [[0x22, 0xC0, 0xAF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xFF, 0x22], [0x22, 0xE2, 0x82, 0x22]] {
            #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(bad) }
        }
    }

    @Test("nesting is bounded instead of overflowing the stack")
    func depth() {
        let deep = String(repeating: "[", count: 100_000)
        #expect { try parse(deep) } throws: { "\($0)".contains("nesting deeper") }
    }

    @Test("serialisation round-trips")
    func roundTrip() throws {
        let text = #"{"name":"a\"b\\c","shape":[1,2],"nested":{"t":true,"n":null,"f":-0.5}}"#
        let v = try parse(text)
        #expect(v.serialized() == text)
        #expect(try parse(v.serialized(pretty: true)) == v)
    }
}
