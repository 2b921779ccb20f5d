/// Turning raw little-endian element bytes into Float values and back.
public enum ElementCodec {
    /// Decodes `count` elements of `dtype` from `bytes` (which must hold exactly `dtype.byteCount(count)` bytes).
    /// Integers and booleans convert to the nearest Float; complex numbers have no real value and are refused.
    public static func decode(_ bytes: UnsafeRawBufferPointer, dtype: DType, count: Int) -> [Float]? {
        guard dtype.isRealValued, let needed = dtype.byteCount(elements: count), bytes.count == needed else { return nil }
        func each<T>(_ type: T.Type, _ convert: (T) -> Float) -> [Float] {
            let size = MemoryLayout<T>.size
            return [Float](unsafeUninitializedCapacity: count) { out, initialized in
                for i in 0..<count { out[i] = convert(bytes.loadUnaligned(fromByteOffset: i * size, as: T.self)) }
                initialized = count
            }
        }
        switch dtype {
        case .f32:
            #if _endian(little)
            // The bytes are the floats: one copy.
            return [Float](unsafeUninitializedCapacity: count) { out, initialized in
                if count > 0, let source = bytes.baseAddress, let destination = out.baseAddress {
                    UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: 4 * count)
                }
                initialized = count
            }
            #else
            return each(UInt32.self) { Float(bitPattern: UInt32(littleEndian: $0)) }
            #endif
        case .f64: return each(UInt64.self) { Float(Double(bitPattern: UInt64(littleEndian: $0))) }
        case .f16: return each(UInt16.self) { FloatCodecs.halfToFloat(UInt16(littleEndian: $0)) }
        case .bf16: return each(UInt16.self) { FloatCodecs.bfloat16ToFloat(UInt16(littleEndian: $0)) }
        case .bool: return each(UInt8.self) { $0 == 0 ? 0 : 1 }
        case .u8: return each(UInt8.self) { Float($0) }
        case .i8: return each(Int8.self) { Float($0) }
        case .u16: return each(UInt16.self) { Float(UInt16(littleEndian: $0)) }
        case .i16: return each(Int16.self) { Float(Int16(littleEndian: $0)) }
        case .u32: return each(UInt32.self) { Float(UInt32(littleEndian: $0)) }
        case .i32: return each(Int32.self) { Float(Int32(littleEndian: $0)) }
        case .u64: return each(UInt64.self) { Float(UInt64(littleEndian: $0)) }
        case .i64: return each(Int64.self) { Float(Int64(littleEndian: $0)) }
        case .f8E4M3: return each(UInt8.self, FloatCodecs.f8E4M3ToFloat)
        case .f8E5M2: return each(UInt8.self, FloatCodecs.f8E5M2ToFloat)
        case .f8E8M0: return each(UInt8.self, FloatCodecs.f8E8M0ToFloat)
        case .f8E4M3FNUZ: return each(UInt8.self, FloatCodecs.f8E4M3FNUZToFloat)
        case .f8E5M2FNUZ: return each(UInt8.self, FloatCodecs.f8E5M2FNUZToFloat)
        case .f4: return (0..<count).map { FloatCodecs.f4E2M1ToFloat(unpackBits(bytes, index: $0, width: 4)) }
        case .f6E2M3: return (0..<count).map { FloatCodecs.f6E2M3ToFloat(unpackBits(bytes, index: $0, width: 6)) }
        case .f6E3M2: return (0..<count).map { FloatCodecs.f6E3M2ToFloat(unpackBits(bytes, index: $0, width: 6)) }
        case .c64: return nil  // excluded by the guard above
        }
    }

    /// Element `index` of an LSB-first bitstream of `width`-bit codes (width ≤ 8).
    @inline(__always) static func unpackBits(_ bytes: UnsafeRawBufferPointer, index: Int, width: Int) -> UInt8 {
        let bit = index * width
        var word = UInt16(bytes[bit / 8])
        if bit % 8 + width > 8 { word |= UInt16(bytes[bit / 8 + 1]) << 8 }
        return UInt8(truncatingIfNeeded: word >> UInt16(bit % 8)) & UInt8((1 << width) - 1)
    }

    /// Encodes Float values as `dtype` bytes (little-endian). Only the float types Parity writes are supported.
    public static func encode(_ values: [Float], as dtype: DType) -> [UInt8]? {
        switch dtype {
        case .f32: return store(values, as: UInt32.self) { $0.bitPattern }
        case .f64: return store(values, as: UInt64.self) { Double($0).bitPattern }
        case .f16: return store(values, as: UInt16.self, FloatCodecs.floatToHalf)
        case .bf16: return store(values, as: UInt16.self, FloatCodecs.floatToBFloat16)
        default: return nil
        }
    }

    /// Each value's little-endian bit pattern, written in place (no per-element append).
    @inline(__always) static func store<T: FixedWidthInteger>(_ values: [Float], as type: T.Type, _ bits: (Float) -> T) -> [UInt8] {
        let size = MemoryLayout<T>.size
        return [UInt8](unsafeUninitializedCapacity: values.count * size) { out, initialized in
            let raw = UnsafeMutableRawBufferPointer(out)
            for (i, v) in values.enumerated() { raw.storeBytes(of: bits(v).littleEndian, toByteOffset: i * size, as: T.self) }
            initialized = values.count * size
        }
    }

    @inline(__always) public static func appendLE<T: FixedWidthInteger>(_ out: inout [UInt8], _ value: T) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }
}
