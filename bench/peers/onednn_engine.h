// The oneDNN peer: the same network as cardinal's IR, built with oneDNN's C++ API (Debian's
// libdnnl 2.6) the way an expert would, so `cardinal bench` compares generated code with what a
// user would otherwise write by hand.
//
// How the network is built (after BatchNorm folding, fold_batch_norm):
//   - every convolution is one `convolution_forward` (convolution_direct, forward_inference)
//     created with `format_tag::any` for source, weights and destination, so oneDNN picks its
//     blocked layouts (nChw16c, OIhw16i16o, Goihw16g, ...). Grouped and depthwise convolutions
//     carry a groups dimension in their weights (goihw). Weights are reordered into the chosen
//     layout once, when the engine is built;
//   - a ReLU or ReLU6 after a convolution, inner product or sum is an eltwise post-op
//     (eltwise_relu / eltwise_clip); a residual Add after a convolution is a `sum` post-op: the
//     convolution accumulates into the buffer that holds the other operand (in place when that
//     operand dies there, else after one copy). The fused primitive runs at the position of the
//     last node it absorbs, as in cardinal's own lowering. A zero Pad read only by a convolution
//     becomes the convolution's padding; a Flatten read only by a Dense makes a 4-D inner
//     product (weights o,c,h,w), as oneDNN's own examples do;
//   - pooling (max, average with or without padding in the divisor, global average as a window
//     of the whole plane), inner product, softmax, concat, binary add, batch normalization that
//     could not be folded, eltwise and constant pad cover the rest of the IR;
//   - element-wise, pooling and binary primitives take their input's layout as it is; a reorder
//     is inserted only where a consumer needs another layout (the network's NCHW input into the
//     first convolution's layout if it differs, the output back to NCHW / NC, and any true
//     mismatch), never between every pair of layers;
//   - activations live in a small set of buffers reused by lifetime (the smallest free buffer
//     that fits, else the largest one grown), and all primitives share one user scratchpad.
//
// Threads: Debian's libdnnl 2.6 is built with the OpenMP runtime (DNNL_CPU_RUNTIME = OMP,
// GNU libgomp). set_num_threads() calls omp_set_num_threads() on the calling thread, whose value
// oneDNN reads both when it creates primitives (blocking decisions) and when it executes them:
// construct, set threads and run from the same thread. OMP_NUM_THREADS in the environment sets
// the default.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace cardinal::peers {

// One primitive of the oneDNN network, as `--layers` reports it.
struct OnednnStep {
    std::string layers;       // IR layer names it covers, joined by '+' ("" for edge reorders)
    std::string description;  // "Conv2D 3x3/1 g32, 1x128x56x56 -> 1x128x56x56, sum, relu"
    std::string impl;         // oneDNN's implementation name ("jit:avx512_core", "ref", ...)
    int64_t macs = 0;         // multiply-accumulates (cardinal's count_node_macs)
    int64_t bytes = 0;        // bytes read and written: sources, weights, destination (twice
                              // with a sum post-op), in the layouts oneDNN chose
};

class OnednnEngine {
  public:
    // True when this build of cardinal links oneDNN; otherwise the constructor throws
    // PeerUnavailable (see peer.h) and `cardinal bench` reports the peer as missing.
    static bool available();
    // "oneDNN 2.6.3 (OpenMP)" or why it is unavailable.
    static std::string version();

    // Builds every primitive for `graph` (any batch) with `threads` OpenMP threads (0: leave
    // the OpenMP default). Throws cardinal::Error naming the layer if oneDNN cannot express one
    // of its ops the way the IR defines it.
    OnednnEngine(const Graph& graph, int threads);
    ~OnednnEngine();
    OnednnEngine(const OnednnEngine&) = delete;
    OnednnEngine& operator=(const OnednnEngine&) = delete;

    // omp_set_num_threads on the calling thread.
    static void set_num_threads(int threads);

    // Runs the network: `input` is NCHW float32 of the graph's input shape, `output` receives
    // the graph's output (NCHW or NC, dense). If `step_seconds` is given (num_steps() entries),
    // each primitive is timed separately (the stream is waited on after each).
    void run(const float* input, float* output, double* step_seconds = nullptr);

    int num_steps() const;
    const OnednnStep& step(int i) const;
    // Activation buffers and scratchpad, in bytes (weights not included).
    size_t activation_bytes() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace cardinal::peers
