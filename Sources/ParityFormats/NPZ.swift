import CZlib
import Foundation
import ParityCore

/// `.npz` archives (numpy's `savez`, MLX's `mx.savez` / `mx.savez_compressed`): a zip of `<name>.npy` members,
/// stored or deflated. Reads the central directory (ZIP64 extra fields included, as `force_zip64=True` writes),
/// validates every size against the file before reading, and parses each NPY header strictly.
public enum NPZ {
    /// numpy `descr` → Parity dtype (little-endian or byte-order-free only).
    static let descrs: [String: DType] = [
        "|b1": .bool, "|u1": .u8, "|i1": .i8, "<u2": .u16, "<i2": .i16, "<u4": .u32, "<i4": .i32, "<u8": .u64, "<i8": .i64,
        "<f2": .f16, "<f4": .f32, "<f8": .f64, "<c8": .c64,
        // numpy has no bfloat16: mx.savez writes it as a 2-byte void and mx.load reads that back as bfloat16.
        "<V2": .bf16,
    ]

    public static func read(path: String) throws(ParityError) -> [RawTensor] {
        try read(file: MappedFile(path: path))
    }

    public static func read(file: MappedFile) throws(ParityError) -> [RawTensor] {
        let path = file.path
        // Zip parsing jumps around the file; a copy keeps it simple. npz weight files are small (MLX writes
        // large models as safetensors, which are mapped).
        let bytes = [UInt8](file.data)
        func fail(_ at: Int, _ reason: String) -> ParityError { .malformed(file: path, at: "offset \(at)", reason: reason) }
        func u16(_ o: Int) -> Int { Int(bytes[o]) | Int(bytes[o + 1]) << 8 }
        func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
        func u64(_ o: Int) -> UInt64 { UInt64(u32(o)) | UInt64(u32(o + 4)) << 32 }
        // End of central directory: the last "PK\5\6" within the final 22 + 65535 bytes.
        guard bytes.count >= 22 else { throw fail(0, "too short for a zip archive (\(bytes.count) bytes)") }
        var eocd = -1
        for o in stride(from: bytes.count - 22, through: max(0, bytes.count - 22 - 65535), by: -1)
            where bytes[o] == 0x50 && bytes[o + 1] == 0x4B && bytes[o + 2] == 5 && bytes[o + 3] == 6 { eocd = o; break }
        guard eocd >= 0 else { throw fail(bytes.count, "no zip end-of-central-directory record: not an .npz archive") }
        var entryCount = u16(eocd + 10)
        var directoryOffset = u32(eocd + 16)
        if entryCount == 0xFFFF || directoryOffset == 0xFFFF_FFFF {
            // ZIP64: the locator sits just before the EOCD and points at the ZIP64 EOCD record.
            guard eocd >= 20, u32(eocd - 20) == 0x0706_4B50 else { throw fail(eocd, "ZIP64 fields without a ZIP64 locator") }
            let record = u64(eocd - 12)
            guard record <= UInt64(bytes.count - 56), u32(Int(record)) == 0x0606_4B50 else { throw fail(eocd - 12, "bad ZIP64 end record offset") }
            let r = Int(record)
            guard u64(r + 32) < UInt64(Int32.max), u64(r + 48) < UInt64(bytes.count) else { throw fail(r, "absurd ZIP64 directory") }
            entryCount = Int(u64(r + 32)); directoryOffset = Int(u64(r + 48))
        }
        guard directoryOffset <= bytes.count, entryCount <= (bytes.count - directoryOffset) / 46 else {
            throw fail(eocd, "central directory (\(entryCount) entries at \(directoryOffset)) does not fit in the file")
        }
        var arrays: [RawTensor] = []
        var names = Set<String>()
        var o = directoryOffset
        for _ in 0..<entryCount {
            guard o + 46 <= bytes.count, u32(o) == 0x0201_4B50 else { throw fail(o, "bad central directory entry signature") }
            let method = u16(o + 10)
            var compressed = UInt64(u32(o + 20)), uncompressed = UInt64(u32(o + 24))
            let nameLength = u16(o + 28), extraLength = u16(o + 30), commentLength = u16(o + 32)
            var localOffset = UInt64(u32(o + 42))
            guard o + 46 + nameLength + extraLength + commentLength <= bytes.count else { throw fail(o, "central directory entry runs past the end") }
            guard let name = String(validating: bytes[(o + 46)..<(o + 46 + nameLength)], as: UTF8.self) else { throw fail(o + 46, "member name is not UTF-8") }
            // ZIP64 extended information: present fields in order uncompressed, compressed, local offset.
            var e = o + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let id = u16(e), size = u16(e + 2)
                guard e + 4 + size <= extraEnd else { throw fail(e, "extra field runs past its entry") }
                if id == 0x0001 {
                    var f = e + 4
                    if uncompressed == 0xFFFF_FFFF, f + 8 <= e + 4 + size { uncompressed = u64(f); f += 8 }
                    if compressed == 0xFFFF_FFFF, f + 8 <= e + 4 + size { compressed = u64(f); f += 8 }
                    if localOffset == 0xFFFF_FFFF, f + 8 <= e + 4 + size { localOffset = u64(f) }
                }
                e += 4 + size
            }
            o = extraEnd + commentLength
            guard localOffset <= UInt64(bytes.count - 30), u32(Int(localOffset)) == 0x0403_4B50 else {
                throw fail(Int(min(localOffset, UInt64(Int.max))), "member '\(name)': bad local header")
            }
            let l = Int(localOffset)
            let dataStart = l + 30 + u16(l + 26) + u16(l + 28)
            guard compressed <= UInt64(bytes.count), dataStart + Int(compressed) <= bytes.count else {
                throw fail(l, "member '\(name)': \(compressed) bytes of data run past the end of the file")
            }
            // Deflate expands at most 1032:1 (zlib's technical limit), so a declared size beyond that cannot be
            // genuine: refuse it before allocating the output buffer it names.
            guard uncompressed <= compressed * 1032 + 64 else {
                throw fail(l, "member '\(name)': declared size \(uncompressed) cannot come from \(compressed) bytes of zip data")
            }
            let raw = Array(bytes[dataStart..<(dataStart + Int(compressed))])
            let content: [UInt8]
            switch method {
            case 0:
                guard compressed == uncompressed else { throw fail(l, "stored member '\(name)' has different compressed and uncompressed sizes") }
                content = raw
            case 8:
                content = try inflate(raw, expected: Int(uncompressed), path: path, member: name)
            default:
                throw ParityError.unsupported(file: path, reason: "member '\(name)' uses zip compression method \(method) (only stored and deflate)")
            }
            guard name.hasSuffix(".npy") else { throw fail(l, "member '\(name)' is not a .npy file") }
            let key = String(name.dropLast(4))
            guard names.insert(key).inserted else { throw fail(l, "duplicate member '\(name)'") }
            arrays.append(try parseNPY(content, name: key, path: path))
        }
        return arrays
    }

    static func inflate(_ input: [UInt8], expected: Int, path: String, member: String) throws(ParityError) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: expected)
        var stream = z_stream()
        guard parity_inflate_init_raw(&stream) == Z_OK else { throw .io(path: path, reason: "zlib inflateInit2 failed") }
        defer { inflateEnd(&stream) }
        var input = input
        let status: Int32 = input.withUnsafeMutableBufferPointer { inBuf in
            output.withUnsafeMutableBufferPointer { outBuf in
                stream.next_in = inBuf.baseAddress
                stream.avail_in = uInt(inBuf.count)
                stream.next_out = outBuf.baseAddress
                stream.avail_out = uInt(outBuf.count)
                return CZlib.inflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END, Int(stream.total_out) == expected else {
            throw .malformed(file: path, at: "member '\(member)'", reason: "deflate data is corrupt or its size is not the declared \(expected) bytes")
        }
        return output
    }

    /// Parses one `.npy` (format 1.0–3.0): magic, version, header length, a Python-literal dict
    /// `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`, then C-order data.
    static func parseNPY(_ b: [UInt8], name: String, path: String) throws(ParityError) -> RawTensor {
        let at = "member '\(name).npy'"
        func fail(_ reason: String) -> ParityError { .malformed(file: path, at: at, reason: reason) }
        guard b.count >= 10, b[0] == 0x93, Array(b[1..<6]) == Array("NUMPY".utf8) else { throw fail("not a .npy file (bad magic)") }
        let major = b[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1: headerLength = Int(b[8]) | Int(b[9]) << 8; headerStart = 10
        case 2, 3:
            guard b.count >= 12 else { throw fail("truncated header") }
            headerLength = Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24; headerStart = 12
        default: throw fail("unsupported .npy version \(major)")
        }
        guard headerStart + headerLength <= b.count, let header = String(validating: b[headerStart..<(headerStart + headerLength)], as: UTF8.self) else {
            throw fail("header runs past the member or is not text")
        }
        func field(_ key: String) -> Substring? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return header[r.upperBound...].drop { $0 == " " }
        }
        guard let descrField = field("descr"), descrField.first == "'", let end = descrField.dropFirst().firstIndex(of: "'") else { throw fail("no 'descr' in header") }
        let descr = String(descrField[descrField.index(after: descrField.startIndex)..<end])
        guard let dtype = descrs[descr] else { throw ParityError.unsupported(file: path, reason: "\(at): numpy dtype '\(descr)' (big-endian or unknown)") }
        guard let fortran = field("fortran_order"), fortran.hasPrefix("False") || fortran.hasPrefix("True") else {
            throw fail("no 'fortran_order' in header")
        }
        // mx.savez writes column-contiguous arrays (e.g. a transpose) with fortran_order True.
        let isFortran = fortran.hasPrefix("True")
        guard let shapeField = field("shape"), shapeField.first == "(", let close = shapeField.firstIndex(of: ")") else { throw fail("no 'shape' tuple in header") }
        var shape: [Int] = []
        var elements = 1
        for part in shapeField[shapeField.index(after: shapeField.startIndex)..<close].split(separator: ",") {
            let text = part.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            guard let d = Int(text), d >= 0 else { throw fail("bad shape entry '\(text)'") }
            let (p, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow else { throw fail("shape overflows") }
            elements = p
            shape.append(d)
        }
        let dataStart = headerStart + headerLength
        guard let needed = dtype.byteCount(elements: elements), b.count - dataStart == needed else {
            throw fail("data is \(b.count - dataStart) bytes; shape \(shape) of \(descr) needs \(dtype.byteCount(elements: elements) ?? -1)")
        }
        let data = Array(b[dataStart...])
        return RawTensor(name: name, dtype: dtype, shape: shape,
                         bytes: isFortran && shape.count > 1 ? fortranToC(data, shape: shape, elementSize: dtype.bits / 8) : data)
    }

    /// Column-major bytes of `shape` → row-major: the data is a C-order array of the reversed shape, transposed.
    static func fortranToC(_ data: [UInt8], shape: [Int], elementSize: Int) -> [UInt8] {
        let reversed = Array(shape.reversed())
        var strides = [Int](repeating: 1, count: reversed.count)
        for i in stride(from: reversed.count - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * reversed[i + 1] }
        var out = [UInt8](repeating: 0, count: data.count)
        var index = [Int](repeating: 0, count: shape.count)
        let count = shape.reduce(1, *)
        for o in 0..<count {
            // Element at C index `index` of `shape` sits at reversed index `index.reversed()` of the source.
            var src = 0
            for (axis, i) in index.reversed().enumerated() { src += i * strides[axis] }
            for k in 0..<elementSize { out[o * elementSize + k] = data[src * elementSize + k] }
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return out
    }

    /// Writes an uncompressed `.npz` (as `mx.savez` does), atomically.
    public static func write(_ arrays: [RawTensor], to path: String) throws(ParityError) {
        var out: [UInt8] = []
        var central: [UInt8] = []
        for array in arrays {
            guard let descr = descrs.first(where: { $0.value == array.dtype })?.key else {
                throw .unsupported(file: path, reason: "numpy has no dtype for \(array.dtype.rawValue) (tensor '\(array.name)')")
            }
            let shapeText = array.shape.count == 1 ? "(\(array.shape[0]),)" : "(" + array.shape.map(String.init).joined(separator: ", ") + ")"
            var header = Array("{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }".utf8)
            while (10 + header.count + 1) % 64 != 0 { header.append(0x20) }
            header.append(0x0A)
            var npy: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.count & 0xFF), UInt8(header.count >> 8)]
            npy += header + array.bytes
            let crc = npy.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }
            let name = Array((array.name + ".npy").utf8)
            let localOffset = out.count
            func le16(_ v: Int, _ a: inout [UInt8]) { a += [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
            func le32(_ v: UInt32, _ a: inout [UInt8]) { ElementCodec.appendLE(&a, v) }
            guard npy.count < Int(UInt32.max), localOffset < Int(UInt32.max) else { throw .unsupported(file: path, reason: "npz members over 4 GiB") }
            // Local header: version 20, no flags, stored, no time, crc, sizes, name.
            le32(0x0403_4B50, &out); le16(20, &out); le16(0, &out); le16(0, &out); le16(0, &out); le16(0x21, &out)
            le32(crc, &out); le32(UInt32(npy.count), &out); le32(UInt32(npy.count), &out); le16(name.count, &out); le16(0, &out)
            out += name + npy
            le32(0x0201_4B50, &central); le16(20, &central); le16(20, &central); le16(0, &central); le16(0, &central); le16(0, &central); le16(0x21, &central)
            le32(crc, &central); le32(UInt32(npy.count), &central); le32(UInt32(npy.count), &central); le16(name.count, &central)
            le16(0, &central); le16(0, &central); le16(0, &central); le16(0, &central); le32(0, &central); le32(UInt32(localOffset), &central)
            central += name
        }
        let directoryOffset = out.count
        out += central
        ElementCodec.appendLE(&out, UInt32(0x0605_4B50))
        ElementCodec.appendLE(&out, UInt16(0)); ElementCodec.appendLE(&out, UInt16(0))
        ElementCodec.appendLE(&out, UInt16(arrays.count)); ElementCodec.appendLE(&out, UInt16(arrays.count))
        ElementCodec.appendLE(&out, UInt32(central.count)); ElementCodec.appendLE(&out, UInt32(directoryOffset)); ElementCodec.appendLE(&out, UInt16(0))
        try AtomicFileWriter.write(out, to: path)
    }
}
