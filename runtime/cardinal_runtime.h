// cardinal's runtime: the few things a generated network needs around its compiled layers —
// the weights file, the activation arena, Halide buffer descriptors, layout conversion at the
// network's edges, a CPU feature check and timing. Generated code includes this header;
// `cardinal generate` copies it (and cardinal_runtime.cpp) next to the generated network so the
// output folder builds on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "HalideRuntime.h"

namespace cardinal::rt {

// Everything the runtime refuses (bad weights file, CPU without the target's features, a failing
// kernel) is reported with this exception; its message is one clear sentence.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& m) : std::runtime_error(m) {}
};

// --- Weights file -------------------------------------------------------------------------
// Layout: a 128-byte header, then the payload (packed weights, each blob 64-byte aligned).
//   0  char[8]  magic "CARDWTS1"
//   8  u32      format version (1)
//   12 u32      header bytes (128)
//   16 u64      fingerprint of the network's weight layout
//   24 u64      payload bytes
//   32 u64      checksum of the payload (see checksum())
//   40 char[64] model name, NUL-padded
constexpr uint32_t kWeightsVersion = 1;
constexpr size_t kWeightsHeaderBytes = 128;

uint64_t checksum(const void* data, size_t bytes);  // bytes: a multiple of 8

// Writes a weights file atomically (temporary file + rename).
void write_weights_file(const std::string& path, const std::string& model, uint64_t fingerprint,
                        const std::vector<std::pair<int64_t, std::vector<float>>>& blobs,
                        int64_t payload_bytes);

// A read-only memory map of a weights file, validated against what the network expects.
class Weights {
public:
    Weights(const std::string& path, const std::string& model, uint64_t fingerprint,
            uint64_t payload_bytes);
    ~Weights();
    Weights(const Weights&) = delete;
    Weights& operator=(const Weights&) = delete;
    const float* at(int64_t offset_bytes) const {
        return reinterpret_cast<const float*>(payload_ + offset_bytes);
    }

private:
    void* map_ = nullptr;
    size_t map_bytes_ = 0;
    const char* payload_ = nullptr;
};

// --- Arena ----------------------------------------------------------------------------------
// One 64-byte aligned block holding every activation; offsets are planned at generation time.
class Arena {
public:
    explicit Arena(size_t bytes);
    ~Arena();
    Arena(const Arena&) = delete;
    Arena& operator=(const Arena&) = delete;
    char* data() const { return data_; }

private:
    char* data_ = nullptr;
};

// --- Halide buffer arguments ---------------------------------------------------------------
// A float32 halide_buffer_t over existing memory, dims given as (extent, stride) innermost first.
struct BufferArg {
    halide_buffer_t buffer{};
    halide_dimension_t dims[5]{};
    BufferArg(const void* host, std::initializer_list<std::pair<int64_t, int64_t>> extent_stride);
    BufferArg(const BufferArg&) = delete;
    BufferArg& operator=(const BufferArg&) = delete;
    halide_buffer_t* get() { return &buffer; }
};

// --- Layout conversion at the network's edges ----------------------------------------------
// NCHW -> NHWC with channels padded to channel_stride (zeros).
void nchw_to_nhwc(const float* src, float* dst, int n, int c, int h, int w, int channel_stride);
// NHWC (channel_stride) -> NCHW.
void nhwc_to_nchw(const float* src, float* dst, int n, int c, int h, int w, int channel_stride);
// Copies `c` channels of every pixel of src (stride src_stride) into dst's channels
// [dst_offset, dst_offset + c) (stride dst_stride).
void copy_channels(const float* src, int c, int src_stride, float* dst, int dst_offset,
                   int dst_stride, int64_t pixels);
// Zeros dst channels [from, dst_stride) of every pixel.
void zero_channels(float* dst, int from, int dst_stride, int64_t pixels);

// --- CPU --------------------------------------------------------------------------------------
// The features of a Halide target string ("x86-64-linux-avx2-fma-...") that this CPU lacks, as
// readable names ("AVX-512 (F, CD)", "FMA", ...). Empty when the CPU can run it.
std::vector<std::string> missing_cpu_features(const std::string& halide_target);
// Throws Error naming the missing features.
void require_cpu_features(const std::string& halide_target, const std::string& what);
// Picks which of a network's code variants (Halide targets, best first) to run: the one the
// environment variable CARDINAL_VARIANT names (an index, or a target string) if set, else the
// first whose features this CPU has. Throws Error naming the missing features when the CPU can
// run none (or not the one asked for) — never lets a kernel hit an illegal instruction.
int select_variant(const char* const* targets, int count, const std::string& what);

// --- Threads and time ---------------------------------------------------------------------
// Threads Halide's pool uses for every layer (0: one per core).
void set_num_threads(int threads);
// The threads every layer runs with now (what set_num_threads resolved 0 to, or was given). The
// generated code reads it to call a layer's kernel tuned for that thread count, where one exists.
int num_threads();
double now_seconds();

// Throws Error("<step>: Halide error code N") when a kernel returned non-zero.
inline void check_kernel(int result, const char* step) {
    if (result != 0)
        throw Error(std::string("layer step '") + step + "' failed with Halide error code " +
                    std::to_string(result));
}

}  // namespace cardinal::rt
