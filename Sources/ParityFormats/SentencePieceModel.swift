import ParityCore

/// A SentencePiece `tokenizer.model`: the serialized `sentencepiece.ModelProto` protobuf (sentencepiece_model.proto),
/// read with a minimal protobuf wire-format decoder. Only the fields a GGUF vocabulary needs are kept: the pieces
/// (text, score, type), the trainer's special ids and model type, and the normalizer's `add_dummy_prefix`.
/// Unknown fields are skipped as protobuf requires; a truncated or malformed message is a `ParityError`.
public struct SentencePieceModel: Sendable {
    /// `SentencePiece.Type`, whose numbers are also llama.cpp's `llama_token_type` / gguf-py's `TokenType`.
    public enum PieceType: Int32, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    public struct Piece: Sendable, Equatable {
        public let text: String
        public let score: Float
        public let type: PieceType
    }

    public let path: String
    public let pieces: [Piece]
    /// `TrainerSpec.model_type`: 1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR.
    public let modelType: Int
    /// `TrainerSpec.{unk,bos,eos,pad}_id`; -1 means the model has no such token (protobuf defaults 0, 1, 2, -1).
    public let unknownID: Int
    public let beginID: Int
    public let endID: Int
    public let paddingID: Int
    public let byteFallback: Bool
    /// `NormalizerSpec.add_dummy_prefix` (default true).
    public let addDummyPrefix: Bool

    public init(path: String) throws(ParityError) {
        let file = try MappedFile(path: path)
        let bytes = [UInt8](file.data)
        try self.init(bytes: bytes, path: path)
    }

    public init(bytes: [UInt8], path: String) throws(ParityError) {
        self.path = path
        var pieces: [Piece] = []
        var modelType = 1, unk = 0, bos = 1, eos = 2, pad = -1, byteFallback = false, dummyPrefix = true
        var top = ProtobufReader(bytes: bytes[...], path: path, what: "ModelProto")
        while let (field, wire) = try top.nextField() {
            switch (field, wire) {
            case (1, 2):
                var message = try top.lengthDelimited()
                var text = "", score: Float = 0, type = PieceType.normal
                while let (f, w) = try message.nextField() {
                    switch (f, w) {
                    case (1, 2):
                        let raw = try message.lengthDelimited().bytes
                        guard let s = String(validating: Array(raw), as: UTF8.self) else {
                            throw .malformed(file: path, at: "piece \(pieces.count)", reason: "piece text is not valid UTF-8")
                        }
                        text = s
                    case (2, 5): score = Float(bitPattern: try message.fixed32())
                    case (3, 0):
                        let raw = try message.varint()
                        guard let t = PieceType(rawValue: Int32(truncatingIfNeeded: raw)) else {
                            throw .malformed(file: path, at: "piece \(pieces.count)", reason: "unknown SentencePiece type \(raw)")
                        }
                        type = t
                    default: try message.skip(wire: w)
                    }
                }
                pieces.append(Piece(text: text, score: score, type: type))
            case (2, 2):
                var trainer = try top.lengthDelimited()
                while let (f, w) = try trainer.nextField() {
                    switch (f, w) {
                    case (3, 0): modelType = Int(Int32(truncatingIfNeeded: try trainer.varint()))
                    case (35, 0): byteFallback = try trainer.varint() != 0
                    case (40, 0): unk = Int(Int32(truncatingIfNeeded: try trainer.varint()))
                    case (41, 0): bos = Int(Int32(truncatingIfNeeded: try trainer.varint()))
                    case (42, 0): eos = Int(Int32(truncatingIfNeeded: try trainer.varint()))
                    case (43, 0): pad = Int(Int32(truncatingIfNeeded: try trainer.varint()))
                    default: try trainer.skip(wire: w)
                    }
                }
            case (3, 2):
                var normalizer = try top.lengthDelimited()
                while let (f, w) = try normalizer.nextField() {
                    if (f, w) == (3, 0) { dummyPrefix = try normalizer.varint() != 0 } else { try normalizer.skip(wire: w) }
                }
            default:
                try top.skip(wire: wire)
            }
        }
        guard !pieces.isEmpty else { throw .malformed(file: path, at: "ModelProto", reason: "no pieces: not a SentencePiece model") }
        for (name, id) in [("unk_id", unk), ("bos_id", bos), ("eos_id", eos), ("pad_id", pad)] where id >= pieces.count {
            throw .malformed(file: path, at: "trainer_spec.\(name)", reason: "\(id) is outside the \(pieces.count) pieces")
        }
        self.pieces = pieces
        self.modelType = modelType
        unknownID = unk
        beginID = bos
        endID = eos
        paddingID = pad
        self.byteFallback = byteFallback
        addDummyPrefix = dummyPrefix
    }
}

/// Protobuf wire format over a byte slice: varints, fixed32/64, length-delimited fields; every read bounds-checked.
struct ProtobufReader {
    var bytes: ArraySlice<UInt8>
    let path: String
    let what: String

    init(bytes: ArraySlice<UInt8>, path: String, what: String) {
        self.bytes = bytes
        self.path = path
        self.what = what
    }

    private func fail(_ reason: String) -> ParityError {
        .malformed(file: path, at: "\(what) byte \(bytes.startIndex)", reason: reason)
    }

    mutating func varint() throws(ParityError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard let byte = bytes.first else { throw fail("truncated varint") }
            bytes = bytes.dropFirst()
            guard shift < 64 else { throw fail("varint longer than 10 bytes") }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }

    mutating func fixed32() throws(ParityError) -> UInt32 {
        guard bytes.count >= 4 else { throw fail("truncated fixed32") }
        let b = Array(bytes.prefix(4))
        bytes = bytes.dropFirst(4)
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
    }

    mutating func lengthDelimited() throws(ParityError) -> ProtobufReader {
        let length = try varint()
        guard length <= UInt64(bytes.count) else { throw fail("length \(length) runs past the end (\(bytes.count) bytes remain)") }
        let inner = bytes.prefix(Int(length))
        bytes = bytes.dropFirst(Int(length))
        return ProtobufReader(bytes: inner, path: path, what: what)
    }

    /// The next (field number, wire type), or nil at the end of the message.
    mutating func nextField() throws(ParityError) -> (Int, Int)? {
        guard !bytes.isEmpty else { return nil }
        let key = try varint()
        let field = Int(truncatingIfNeeded: key >> 3)
        guard field > 0 else { throw fail("field number 0") }
        return (field, Int(key & 7))
    }

    mutating func skip(wire: Int) throws(ParityError) {
        switch wire {
        case 0: _ = try varint()
        case 1:
            guard bytes.count >= 8 else { throw fail("truncated fixed64") }
            bytes = bytes.dropFirst(8)
        case 2: _ = try lengthDelimited()
        case 5: _ = try fixed32()
        default: throw fail("unsupported wire type \(wire)")
        }
    }
}
