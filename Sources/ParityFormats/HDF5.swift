import CHDF5
import Foundation
import ParityCore

/// A value of an HDF5 attribute as Parity uses them: strings, integers, floats (scalars or 1-D).
public enum HDF5AttributeValue: Equatable, Sendable, CustomStringConvertible {
    case string(String)
    /// A 1-D array of strings (format_version 2's `inputs`, `input_args`), possibly empty.
    case strings([String])
    case integers([Int64])
    case floats([Double])

    public var description: String {
        switch self {
        case let .string(s): return "\"\(s)\""
        case let .strings(list): return "[" + list.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
        case let .integers(v): return v.count == 1 ? "\(v[0])" : "\(v)"
        case let .floats(v): return v.count == 1 ? "\(v[0])" : "\(v)"
        }
    }
    public var stringValue: String? { if case let .string(s) = self { return s }; return nil }
    public var stringsValue: [String]? { if case let .strings(list) = self { return list }; return nil }
    public var intValue: Int64? { if case let .integers(v) = self, v.count == 1 { return v[0] }; return nil }
    public var doubleValue: Double? {
        switch self {
        case let .floats(v) where v.count == 1: return v[0]
        case let .integers(v) where v.count == 1: return Double(v[0])
        default: return nil
        }
    }
}

/// A thin wrapper over the HDF5 C library: open a file, walk groups, read float/int datasets and attributes,
/// write goldens. Every failing call becomes a `ParityError` naming the file and the object.
/// Reading here runs libhdf5 in this process: use it only on files this process wrote. Goldens and anything
/// else from outside are read through `HDF5Snapshot` (a separate reader process).
/// HDF5's own error printing is switched off per thread (Debian's build is thread-safe, and its auto-print
/// setting is per thread: docs/runtime-notes.md §4).
public final class HDF5File: @unchecked Sendable {
    public let path: String
    let id: hid_t

    /// Runs once, before the first HDF5 call of the process.
    private static let libraryConfigured: Bool = { parity_h5_no_atexit() >= 0 }()

    public init(readingFrom path: String) throws(ParityError) {
        _ = HDF5File.libraryConfigured
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else { throw .notFound(path: path, what: "HDF5 file") }
        _ = parity_h5_silence_errors()
        guard H5Fis_hdf5(path) > 0 else { throw .malformed(file: path, at: "offset 0", reason: "not an HDF5 file (no HDF5 signature)") }
        let id = H5Fopen(path, parity_h5f_acc_rdonly(), parity_h5p_default())
        guard id >= 0 else { throw .io(path: path, reason: "HDF5 could not open the file") }
        self.id = id
    }

    /// Creates (truncating) a file for writing; callers write to a temporary path and rename (see `GoldenWriter`).
    public init(creating path: String) throws(ParityError) {
        _ = HDF5File.libraryConfigured
        self.path = path
        _ = parity_h5_silence_errors()
        let id = H5Fcreate(path, parity_h5f_acc_trunc(), parity_h5p_default(), parity_h5p_default())
        guard id >= 0 else { throw .io(path: path, reason: "HDF5 could not create the file") }
        self.id = id
    }

    /// Opens a file this process may change in place (tests derive a golden from another this way).
    public init(updating path: String) throws(ParityError) {
        _ = HDF5File.libraryConfigured
        self.path = path
        _ = parity_h5_silence_errors()
        let id = H5Fopen(path, parity_h5f_acc_rdwr(), parity_h5p_default())
        guard id >= 0 else { throw .io(path: path, reason: "HDF5 could not open the file for writing") }
        self.id = id
    }

    deinit { H5Fclose(id) }

    // MARK: Reading

    public func exists(_ objectPath: String) -> Bool {
        _ = parity_h5_silence_errors()
        // H5Lexists fails on a missing intermediate group, so check each prefix.
        var prefix = ""
        for part in objectPath.split(separator: "/") {
            prefix += "/" + part
            guard H5Lexists(id, prefix, parity_h5p_default()) > 0 else { return false }
        }
        return true
    }

    /// Names of the links in a group, in name order.
    public func members(of group: String) throws(ParityError) -> [String] {
        _ = parity_h5_silence_errors()
        let gid = H5Gopen2(id, group, parity_h5p_default())
        guard gid >= 0 else { throw .malformed(file: path, at: group, reason: "group not found") }
        defer { H5Gclose(gid) }
        var info = H5G_info_t()
        guard H5Gget_info(gid, &info) >= 0 else { throw .malformed(file: path, at: group, reason: "cannot read group info") }
        var names: [String] = []
        for i in 0..<info.nlinks {
            let length = H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, parity_h5p_default())
            guard length >= 0 else { throw .malformed(file: path, at: group, reason: "cannot read link \(i)") }
            var buffer = [CChar](repeating: 0, count: Int(length) + 1)
            H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buffer, Int(length) + 1, parity_h5p_default())
            names.append(buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        }
        return names
    }

    /// Whether the object is a dataset (as opposed to a group).
    public func isDataset(_ objectPath: String) -> Bool {
        _ = parity_h5_silence_errors()
        let did = H5Dopen2(id, objectPath, parity_h5p_default())
        guard did >= 0 else { return false }
        H5Dclose(did)
        return true
    }

    /// The dataset's shape.
    public func shape(of dataset: String) throws(ParityError) -> [Int] {
        try withDataset(dataset) { did throws(ParityError) in try self.shape(ofDatasetID: did, name: dataset) }
    }

    /// Reads a numeric dataset of any stored type, converted by HDF5 to float32.
    public func readFloats(_ dataset: String) throws(ParityError) -> Tensor {
        try withDataset(dataset) { did throws(ParityError) in
            let shape = try self.shape(ofDatasetID: did, name: dataset)
            try self.requireNumeric(did, name: dataset)
            var values = [Float](repeating: 0, count: shape.reduce(1, *))
            let status = values.withUnsafeMutableBytes {
                H5Dread(did, parity_h5t_native_float(), H5S_ALL, H5S_ALL, parity_h5p_default(), $0.baseAddress)
            }
            guard status >= 0 else { throw .malformed(file: path, at: dataset, reason: "cannot read as float32") }
            return Tensor(shape: shape, data: values)
        }
    }

    /// Reads a numeric dataset converted to int64.
    public func readIntegers(_ dataset: String) throws(ParityError) -> (shape: [Int], values: [Int64]) {
        try withDataset(dataset) { did throws(ParityError) in
            let shape = try self.shape(ofDatasetID: did, name: dataset)
            try self.requireNumeric(did, name: dataset)
            var values = [Int64](repeating: 0, count: shape.reduce(1, *))
            let status = values.withUnsafeMutableBytes {
                H5Dread(did, parity_h5t_native_int64(), H5S_ALL, H5S_ALL, parity_h5p_default(), $0.baseAddress)
            }
            guard status >= 0 else { throw .malformed(file: path, at: dataset, reason: "cannot read as int64") }
            return (shape, values)
        }
    }

    /// Names of an object's attributes, in creation-independent name order.
    public func attributeNames(of object: String) throws(ParityError) -> [String] {
        try withObject(object) { oid throws(ParityError) in
            var names: [String] = []
            var index: hsize_t = 0
            while true {
                let length = H5Aget_name_by_idx(oid, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, parity_h5p_default())
                if length < 0 { break }
                var buffer = [CChar](repeating: 0, count: Int(length) + 1)
                H5Aget_name_by_idx(oid, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer, Int(length) + 1, parity_h5p_default())
                names.append(buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
                index += 1
            }
            return names
        }
    }

    /// One attribute, or nil if the object has none of that name.
    public func attribute(_ name: String, of object: String = "/") throws(ParityError) -> HDF5AttributeValue? {
        try withObject(object) { oid throws(ParityError) -> HDF5AttributeValue? in
            guard H5Aexists(oid, name) > 0 else { return nil }
            let aid = H5Aopen(oid, name, parity_h5p_default())
            guard aid >= 0 else { throw .malformed(file: path, at: "\(object)@\(name)", reason: "cannot open attribute") }
            defer { H5Aclose(aid) }
            let fileType = H5Aget_type(aid)
            defer { H5Tclose(fileType) }
            let space = H5Aget_space(aid)
            defer { H5Sclose(space) }
            let count = max(1, Int(H5Sget_simple_extent_npoints(space)))
            let where_ = "\(object)@\(name)"
            switch H5Tget_class(fileType) {
            case H5T_STRING:
                guard count == 1 else { throw .unsupported(file: path, reason: "\(where_): string arrays are not used in goldens") }
                if H5Tis_variable_str(fileType) > 0 {
                    let memType = H5Tcopy(parity_h5t_c_s1())
                    defer { H5Tclose(memType) }
                    H5Tset_size(memType, parity_h5t_variable())
                    H5Tset_cset(memType, H5Tget_cset(fileType))
                    var pointer: UnsafeMutablePointer<CChar>? = nil
                    guard H5Aread(aid, memType, &pointer) >= 0, let pointer else {
                        throw .malformed(file: path, at: where_, reason: "cannot read string attribute")
                    }
                    defer { H5free_memory(pointer) }
                    return .string(String(cString: pointer))
                }
                let size = H5Tget_size(fileType)
                var buffer = [CChar](repeating: 0, count: size + 1)
                guard H5Aread(aid, fileType, &buffer) >= 0 else { throw .malformed(file: path, at: where_, reason: "cannot read string attribute") }
                return .string(buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
            case H5T_INTEGER:
                var values = [Int64](repeating: 0, count: count)
                guard H5Aread(aid, parity_h5t_native_int64(), &values) >= 0 else { throw .malformed(file: path, at: where_, reason: "cannot read integer attribute") }
                return .integers(values)
            case H5T_FLOAT:
                var values = [Double](repeating: 0, count: count)
                guard H5Aread(aid, parity_h5t_native_double(), &values) >= 0 else { throw .malformed(file: path, at: where_, reason: "cannot read float attribute") }
                return .floats(values)
            default:
                throw .unsupported(file: path, reason: "\(where_): attribute type is not a string, integer or float")
            }
        }
    }

    // MARK: Writing

    public func createGroup(_ group: String) throws(ParityError) {
        _ = parity_h5_silence_errors()
        let gid = H5Gcreate2(id, group, parity_h5p_default(), parity_h5p_default(), parity_h5p_default())
        guard gid >= 0 else { throw .io(path: path, reason: "cannot create group \(group)") }
        H5Gclose(gid)
    }

    /// Writes a float32 dataset, gzip-compressed (level 4, with shuffle) when larger than 1 KiB.
    public func writeFloats(_ dataset: String, _ tensor: Tensor) throws(ParityError) {
        try write(dataset, shape: tensor.shape, type: parity_h5t_native_float(), bytes: tensor.data.withUnsafeBytes { Array($0) })
    }

    public func writeIntegers(_ dataset: String, shape: [Int], values: [Int64]) throws(ParityError) {
        try write(dataset, shape: shape, type: parity_h5t_native_int64(), bytes: values.withUnsafeBytes { Array($0) })
    }

    private func write(_ dataset: String, shape: [Int], type: hid_t, bytes: [UInt8]) throws(ParityError) {
        _ = parity_h5_silence_errors()
        let dims = shape.map { hsize_t($0) }
        let space = H5Screate_simple(Int32(dims.count), dims, nil)
        guard space >= 0 else { throw .io(path: path, reason: "cannot create dataspace for \(dataset)") }
        defer { H5Sclose(space) }
        let dcpl = H5Pcreate(parity_h5p_dataset_create())
        defer { H5Pclose(dcpl) }
        if bytes.count > 1024, !shape.contains(0) {
            H5Pset_chunk(dcpl, Int32(dims.count), dims)
            H5Pset_shuffle(dcpl)
            H5Pset_deflate(dcpl, 4)
        }
        let did = H5Dcreate2(id, dataset, type, space, parity_h5p_default(), dcpl, parity_h5p_default())
        guard did >= 0 else { throw .io(path: path, reason: "cannot create dataset \(dataset)") }
        defer { H5Dclose(did) }
        let status = bytes.withUnsafeBytes { H5Dwrite(did, type, H5S_ALL, H5S_ALL, parity_h5p_default(), $0.baseAddress) }
        guard status >= 0 else { throw .io(path: path, reason: "cannot write dataset \(dataset)") }
    }

    /// Removes an attribute (it must exist).
    public func deleteAttribute(_ name: String, on object: String = "/") throws(ParityError) {
        try withObject(object) { oid throws(ParityError) in
            guard H5Adelete(oid, name) >= 0 else { throw .io(path: path, reason: "cannot delete attribute \(object)@\(name)") }
        }
    }

    /// Writes a scalar attribute: strings as variable-length UTF-8 (what h5py writes for `str`).
    public func setAttribute(_ name: String, _ value: HDF5AttributeValue, on object: String = "/") throws(ParityError) {
        try withObject(object) { oid throws(ParityError) in
            let where_ = "\(object)@\(name)"
            switch value {
            case let .string(text):
                let space = H5Screate(H5S_SCALAR)
                defer { H5Sclose(space) }
                let type = H5Tcopy(parity_h5t_c_s1())
                defer { H5Tclose(type) }
                H5Tset_size(type, parity_h5t_variable())
                H5Tset_cset(type, H5T_CSET_UTF8)
                let aid = H5Acreate2(oid, name, type, space, parity_h5p_default(), parity_h5p_default())
                guard aid >= 0 else { throw .io(path: path, reason: "cannot create attribute \(where_)") }
                defer { H5Aclose(aid) }
                let status = text.withCString { cString -> herr_t in
                    var pointers: [UnsafePointer<CChar>?] = [cString]
                    return H5Awrite(aid, type, &pointers)
                }
                guard status >= 0 else { throw .io(path: path, reason: "cannot write attribute \(where_)") }
            case let .strings(texts):
                let space = H5Screate_simple(1, [hsize_t(texts.count)], nil)
                defer { H5Sclose(space) }
                let type = H5Tcopy(parity_h5t_c_s1())
                defer { H5Tclose(type) }
                H5Tset_size(type, parity_h5t_variable())
                H5Tset_cset(type, H5T_CSET_UTF8)
                let aid = H5Acreate2(oid, name, type, space, parity_h5p_default(), parity_h5p_default())
                guard aid >= 0 else { throw .io(path: path, reason: "cannot create attribute \(where_)") }
                defer { H5Aclose(aid) }
                let copies = texts.map { strdup($0) }
                defer { copies.forEach { free($0) } }
                var pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
                guard texts.isEmpty || H5Awrite(aid, type, &pointers) >= 0 else { throw .io(path: path, reason: "cannot write attribute \(where_)") }
            case let .integers(values):
                try writeNumericAttribute(oid, name, where_, type: parity_h5t_native_int64(), count: values.count) { values.withUnsafeBytes { $0.baseAddress! } }
            case let .floats(values):
                try writeNumericAttribute(oid, name, where_, type: parity_h5t_native_double(), count: values.count) { values.withUnsafeBytes { $0.baseAddress! } }
            }
        }
    }

    private func writeNumericAttribute(_ oid: hid_t, _ name: String, _ where_: String, type: hid_t, count: Int,
                                       _ pointer: () -> UnsafeRawPointer) throws(ParityError) {
        let space = count == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, [hsize_t(count)], nil)
        defer { H5Sclose(space) }
        let aid = H5Acreate2(oid, name, type, space, parity_h5p_default(), parity_h5p_default())
        guard aid >= 0 else { throw .io(path: path, reason: "cannot create attribute \(where_)") }
        defer { H5Aclose(aid) }
        guard H5Awrite(aid, type, pointer()) >= 0 else { throw .io(path: path, reason: "cannot write attribute \(where_)") }
    }

    // MARK: Helpers

    private func withDataset<R>(_ dataset: String, _ body: (hid_t) throws(ParityError) -> R) throws(ParityError) -> R {
        _ = parity_h5_silence_errors()
        guard exists(dataset) else { throw .notFound(path: path, what: "dataset \(dataset)") }
        let did = H5Dopen2(id, dataset, parity_h5p_default())
        guard did >= 0 else { throw .malformed(file: path, at: dataset, reason: "not a dataset") }
        defer { H5Dclose(did) }
        return try body(did)
    }

    private func withObject<R>(_ object: String, _ body: (hid_t) throws(ParityError) -> R) throws(ParityError) -> R {
        _ = parity_h5_silence_errors()
        guard object == "/" || exists(object) else { throw .notFound(path: path, what: "object \(object)") }
        let oid = H5Oopen(id, object, parity_h5p_default())
        guard oid >= 0 else { throw .malformed(file: path, at: object, reason: "cannot open object") }
        defer { H5Oclose(oid) }
        return try body(oid)
    }

    private func shape(ofDatasetID did: hid_t, name: String) throws(ParityError) -> [Int] {
        let space = H5Dget_space(did)
        guard space >= 0 else { throw .malformed(file: path, at: name, reason: "cannot read dataspace") }
        defer { H5Sclose(space) }
        let rank = H5Sget_simple_extent_ndims(space)
        guard rank >= 0, rank <= 32 else { throw .malformed(file: path, at: name, reason: "invalid rank \(rank)") }
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        H5Sget_simple_extent_dims(space, &dims, nil)
        var total = 1
        for d in dims {
            let (product, overflow) = total.multipliedReportingOverflow(by: Int(clamping: d))
            // 2^27 float32 values = 512 MiB: far above any golden, far below what an absurd shape would allocate.
            guard !overflow, d <= hsize_t(Int.max), product <= 1 << 27 else {
                throw .malformed(file: path, at: name, reason: "dataset shape \(dims) is too large (over 2^27 elements)")
            }
            total = product
        }
        return dims.map { Int($0) }
    }

    private func requireNumeric(_ did: hid_t, name: String) throws(ParityError) {
        let type = H5Dget_type(did)
        defer { H5Tclose(type) }
        let cls = H5Tget_class(type)
        guard cls == H5T_FLOAT || cls == H5T_INTEGER else {
            throw .unsupported(file: path, reason: "dataset \(name) is not numeric")
        }
    }
}
