import ParityCore
import ParityModels

/// Layout transforms between the reference (PyTorch, channels-first) and channels-last runtimes (ggml's
/// (W, H, C, N) seen through its permute, MLX's NHWC). Engines use these only at the hooks, to report in the
/// reference layout and to accept golden inputs; their own computation stays in their runtime's layout.
public enum ChannelsLast {
    /// NCHW → NHWC (`t.permuted([0, 2, 3, 1])`, as a per-image plane transpose).
    public static func toNHWC(_ t: Tensor) -> Tensor {
        let (n, c, h, w) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
        return Tensor(shape: [n, h, w, c], data: transposedPlanes(t.data, images: n, rows: c, columns: h * w))
    }

    /// NHWC → NCHW (`t.permuted([0, 3, 1, 2])`).
    public static func toNCHW(_ t: Tensor) -> Tensor {
        let (n, h, w, c) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
        return Tensor(shape: [n, c, h, w], data: transposedPlanes(t.data, images: n, rows: h * w, columns: c))
    }

    /// Each of `images` [rows, columns] matrices transposed to [columns, rows].
    static func transposedPlanes(_ data: [Float], images: Int, rows: Int, columns: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: data.count) { out, initialized in
            data.withUnsafeBufferPointer { src in
                for image in 0..<images {
                    let s = src.baseAddress! + image * rows * columns, d = out.baseAddress! + image * rows * columns
                    for r in 0..<rows { for col in 0..<columns { d[col * rows + r] = s[r * columns + col] } }
                }
            }
            initialized = data.count
        }
    }

    /// The (C, H, W) feature map that a flattened input of `features` values came from: the output channels of
    /// the last convolution before `layerName` in the reference architecture, square spatial size.
    public static func featureMap(before layerName: String, in layers: [LayerSpec], features: Int) -> (c: Int, h: Int, w: Int)? {
        guard let index = layers.firstIndex(where: { $0.name == layerName }) else { return nil }
        for layer in layers[..<index].reversed() {
            if case let .conv2d(_, _, outC, _, _, _, _) = layer {
                let side = Int(Double(features / outC).squareRoot())
                return outC * side * side == features ? (outC, side, side) : nil
            }
        }
        return nil
    }

    /// [N, C·H·W] in (c, h, w) order → [N, H·W·C] in (h, w, c) order.
    public static func flattenedToChannelsLast(_ t: Tensor, map: (c: Int, h: Int, w: Int)) -> Tensor {
        let n = t.shape[0]
        precondition(map.c * map.h * map.w == t.shape[1], "feature map \(map) does not flatten to \(t.shape[1])")
        return Tensor(shape: t.shape, data: transposedPlanes(t.data, images: n, rows: map.c, columns: map.h * map.w))
    }

    /// [N, H·W·C] in (h, w, c) order → [N, C·H·W] in (c, h, w) order.
    public static func flattenedToChannelsFirst(_ t: Tensor, map: (c: Int, h: Int, w: Int)) -> Tensor {
        let n = t.shape[0]
        precondition(map.c * map.h * map.w == t.shape[1], "feature map \(map) does not flatten to \(t.shape[1])")
        return Tensor(shape: t.shape, data: transposedPlanes(t.data, images: n, rows: map.h * map.w, columns: map.c))
    }
}
