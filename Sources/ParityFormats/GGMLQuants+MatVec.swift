import CParityKernels

extension GGMLQuants {
    /// `vecDot` of each of `rows` consecutive weight rows (`count` values each) with one activation row already in
    /// `type.vecDotType`: out[r] is exactly `vecDot(row r, activations)`. Q8_0, Q4_0, Q4_K, Q5_K and Q6_K run in CParityKernels
    /// (SIMD integer block sums, the float operations in the same order); other types row by row here.
    public static func matVec(weights: UnsafeRawBufferPointer, type: GGMLType, rows: Int, activations: UnsafeRawBufferPointer,
                              count: Int, into out: UnsafeMutableBufferPointer<Float>) {
        let dotType = type.vecDotType
        precondition(count % type.blockSize == 0 && count % dotType.blockSize == 0, "\(count) is not whole \(type.name) blocks")
        let rowBytes = count / type.blockSize * type.typeSize
        precondition(weights.count >= rows * rowBytes, "weights hold fewer than \(rows) rows of \(count) \(type.name) values")
        precondition(activations.count >= count / dotType.blockSize * dotType.typeSize, "activations hold fewer than \(count) \(dotType.name) values")
        precondition(out.count >= rows, "output holds fewer than \(rows) values")
        guard rows > 0 else { return }
        guard count > 0, let w = weights.baseAddress, let y = activations.baseAddress, let o = out.baseAddress else {
            for r in 0..<rows { out[r] = 0 }
            return
        }
        switch type {
        case .q8_0:
            pk_matvec_q8_0(w, Int64(rows), Int64(count / 32), y, o)
        case .q4_0:
            pk_matvec_q4_0(w, Int64(rows), Int64(count / 32), y, o)
        case .q4_K:
            pk_matvec_q4_K(w, Int64(rows), Int64(count / 256), y, o)
        case .q5_K:
            pk_matvec_q5_K(w, Int64(rows), Int64(count / 256), y, o)
        case .q6_K:
            pk_matvec_q6_K(w, Int64(rows), Int64(count / 256), y, o)
        default:
            for r in 0..<rows {
                o[r] = vecDot(weights: UnsafeRawBufferPointer(start: w + r * rowBytes, count: rowBytes), type: type,
                              activations: activations, count: count)
            }
        }
    }
}
