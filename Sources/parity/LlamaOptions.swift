import ArgumentParser
import ParityEngine
import ParityVerify

extension GGMLKVCacheType: ExpressibleByArgument {}

/// llama.cpp's numerics options for GGUF Llama files (`verify`, `layer-diff`); defaults are llama.cpp's CLI defaults
/// on the CPU backend (`LlamaRuntimeSettings.llamaCppCLIDefaults` cites the source lines).
struct LlamaRuntimeOptions: ParsableArguments {
    enum Switch: String, ExpressibleByArgument, CaseIterable { case on, off }

    @Option(name: .long, help: "GGUF Llama: llama.cpp's KV cache type (--cache-type-k/-v): f16 (llama.cpp's default) or f32.")
    var kvCache: GGMLKVCacheType?
    @Option(name: .long, help: "GGUF Llama: llama.cpp's flash attention (-fa): on (llama.cpp's default 'auto' resolves to on for the CPU backend) or off.")
    var flashAttn: Switch?

    var settings: LlamaRuntimeSettings {
        let defaults = LlamaRuntimeSettings.llamaCppCLIDefaults
        return LlamaRuntimeSettings(kvCache: kvCache ?? defaults.kvCache, flashAttention: flashAttn.map { $0 == .on } ?? defaults.flashAttention)
    }
}
