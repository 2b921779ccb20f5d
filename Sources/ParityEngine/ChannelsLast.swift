import ParityCore
import ParityModels

/// Layout transforms between the reference (PyTorch, channels-first) and channels-last runtimes (ggml's
/// (W, H, C, N) seen through its permute, MLX's NHWC). Engines use these only at the hooks, to report in the
/// reference layout and to accept golden inputs; their own computation stays in their runtime's layout.
public enum ChannelsLast {
    /// NCHW → NHWC.
    public static func toNHWC(_ t: Tensor) -> Tensor { t.permuted([0, 2, 3, 1]) }
    /// NHWC → NCHW.
    public static func toNCHW(_ t: Tensor) -> Tensor { t.permuted([0, 3, 1, 2]) }

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
        return t.reshaped([n, map.c, map.h, map.w]).permuted([0, 2, 3, 1]).reshaped([n, t.shape[1]])
    }

    /// [N, H·W·C] in (h, w, c) order → [N, C·H·W] in (c, h, w) order.
    public static func flattenedToChannelsFirst(_ t: Tensor, map: (c: Int, h: Int, w: Int)) -> Tensor {
        let n = t.shape[0]
        return t.reshaped([n, map.h, map.w, map.c]).permuted([0, 3, 1, 2]).reshaped([n, t.shape[1]])
    }
}
