// libFuzzer target for the ONNX importer: whatever the bytes, import_onnx_bytes must either return
// a graph that passes shape inference or throw cardinal::Error. Anything else (a crash, another
// exception, a leak, a hang, an absurd allocation) is a bug. Built and run by
// scripts/fuzz-onnx.sh (clang-14, -fsanitize=fuzzer,address,undefined).
#include <cstddef>
#include <cstdint>
#include <string>

#include "ir/error.h"
#include "onnx/onnx_import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    // Batch 1 and 3: a symbolic batch dimension takes either; a fixed one accepts one of them.
    for (int batch : {1, 3}) {
        try {
            cardinal::Graph g = cardinal::import_onnx_bytes(bytes, batch, "fuzz");
            cardinal::infer_shapes(g);
            (void)cardinal::count_macs(g);
        } catch (const cardinal::Error&) {
        }
    }
    return 0;
}
