import CParitySys

/// How the process's allocator treats freed memory.
public enum ProcessMemory {
    /// Keeps freed memory in glibc's heap for reuse instead of unmapping it (see parity_sys.h). `parity verify`
    /// allocates and frees tensor-sized arrays in every cell; returning each to the kernel made the kernel fault in
    /// and zero them again every time. Measured here: the 7 MiniLM safetensors and GGUF cells, 1.6 s of system time
    /// before and 0.75 s after, peak RSS 311 → 399 MB; all 48 bundled cells on 2 jobs, 2.8 → 1.7 s system time, peak
    /// RSS 472 → 709 MB (each thread's arena keeps its own freed memory). Changes no computed value.
    /// Returns false where the allocator is not glibc's (nothing changed).
    @discardableResult
    public static func reuseFreedMemory() -> Bool { parity_malloc_reuse_freed_memory() == 0 }
}
