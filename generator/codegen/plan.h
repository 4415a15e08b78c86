// NetworkPlan: a network lowered to the steps a generated program executes. Each step is one
// layer kernel (a Halide pipeline instance) or a small runtime routine (layout conversion at the
// edges, channel concatenation), reading and writing tensors that live in one activation arena.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "codegen/kernel_compiler.h"
#include "ir/graph.h"

namespace cardinal {

// One activation tensor as stored inside the generated network: NHWC, channels padded to
// `channel_stride` (padded channels hold zeros). Rank-2 tensors (N x C) are stored as N x 1 x 1
// x C. A tensor may alias another's storage (Flatten is free in NHWC).
struct PlannedTensor {
    std::string name;          // the IR tensor name
    Shape logical;             // its IR shape (NCHW or NC)
    int n = 1, c = 1, h = 1, w = 1;
    int channel_stride = 1;    // stored channels
    // For a rank-2 tensor made by flattening an NHWC tensor with spatial extent > 1: the
    // channels, height and width it came from (its feature order is then h, w, c_stride).
    int flat_c = 0, flat_h = 1, flat_w = 1;
    int alias_of = -1;         // index of the tensor whose storage this one shares
    int64_t arena_offset = -1; // bytes, assigned by plan_arena()

    int64_t stored_elements() const { return int64_t(n) * h * w * channel_stride; }
    int64_t stored_bytes() const { return stored_elements() * int64_t(sizeof(float)); }
};

// The extent and stride of each dimension of a buffer argument, innermost first.
struct BufferDim {
    int64_t extent, stride;
};

// One argument of a kernel call: either an activation tensor or a weight blob, seen through
// `dims` (a kernel may view a tensor as 4-D NHWC, 2-D (features, n) or flat 1-D).
struct KernelArg {
    enum class Kind { Tensor, Weights } kind = Kind::Tensor;
    int index = 0;             // tensor index or blob index
    std::vector<BufferDim> dims;
};

struct WeightBlob {
    std::string name;          // "layer1.0.conv1.weights"
    std::vector<float> data;   // packed
    int64_t offset = 0;        // bytes into the weights file's payload (64-byte aligned)
};

enum class StepKind {
    Kernel,      // call a compiled Halide layer pipeline
    InputToNHWC, // network input NCHW -> internal NHWC (pads channels with zeros)
    OutputToNCHW,// internal NHWC -> network output NCHW / NC
    Concat,      // copy operands into channel slices of the output
};

struct PlannedStep {
    StepKind kind = StepKind::Kernel;
    std::string layers;        // IR layers this step computes, e.g. "layer1.0.conv3+add+relu3"
    std::string description;   // op, shapes and epilogue, for comments and tables
    KernelSpec kernel;         // for Kernel steps: generator + the layer's params (shape, epilogue)
    std::vector<KernelArg> args;  // for Kernel steps: in the pipeline's argument order, output last
    std::vector<int> inputs;   // tensors read
    int output = -1;           // tensor written
    int64_t macs = 0;          // multiply-accumulates of the IR layers it computes
    int kernel_slot = -1;      // index into NetworkPlan::kernels (set by the generator)
};

// A layer kernel compiled with the knobs measured fastest at one thread count, called instead of
// the kernel of every thread count when the network runs with exactly that many threads.
struct ThreadKernel {
    int threads = 0;
    KernelSpec spec;
    std::string function_name;
};

// One compiled instance of a layer kernel for one target: the layer's params plus the schedule
// knobs chosen for that target.
struct CompiledKernel {
    KernelSpec spec;            // generator + all GeneratorParams
    std::string function_name;  // cardinal_k<content hash>
    std::string schedule_source = "default";  // "default" or "database"
    std::vector<ThreadKernel> by_threads;     // by increasing thread count; never spec's knobs
};

struct NetworkPlan {
    std::string model;
    Shape input_shape;         // NCHW, as the user passes it
    Shape output_shape;        // as the user receives it (NCHW or NC)
    std::vector<PlannedTensor> tensors;
    std::vector<PlannedStep> steps;
    std::vector<WeightBlob> blobs;
    // Code variants: one per target (a fat library dispatches between them at load time). All
    // share the steps, arena and weights; they differ in compiled kernels.
    std::vector<std::string> targets;                 // Halide target strings, best first
    std::vector<KernelSpec> kernels;                  // unique layer kernels, by slot
    std::vector<std::vector<CompiledKernel>> variant_kernels;  // [target][slot]
    int input_tensor = -1;     // internal NHWC copy of the input
    int output_tensor = -1;    // internal tensor converted to the user's output
    int64_t arena_bytes = 0;   // peak activation memory (set by plan_arena)
    int64_t weights_bytes = 0; // payload size of the weights file
    int64_t total_macs = 0;

    // Root storage tensor of `t` (following aliases).
    int storage_of(int t) const {
        while (tensors[t].alias_of >= 0) t = tensors[t].alias_of;
        return t;
    }
};

}  // namespace cardinal
