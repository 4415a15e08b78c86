// Lowering: from an IR graph to a NetworkPlan. Folds BatchNorm into convolutions, fuses
// epilogues (bias, residual Add, ReLU/ReLU6) into the conv or dense layer that feeds them, picks
// a layer pipeline per step with the GeneratorParams of its layer (shape, epilogue; schedule
// knobs are added per target later), packs weights, and plans the arena.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "codegen/plan.h"
#include "ir/graph.h"

namespace cardinal {

struct LoweringOptions {
    // Dense 3x3 stride-1 convs with enough channels and tiles run Winograd F(4x4, 3x3)
    // (winograd_conv_applies in halide/winograd.h); false: every conv runs direct.
    bool winograd = true;
    int winograd_tile = 4;  // the output tile m: 4, or 2 (exact as direct, 2.25x fewer FMAs)
    // cardinal_grouped_conv2d's natural lane order at 4 input and 4 output channels per group
    // (grouped_natural_lane_order in halide/conv_blocking.h) instead of group-minor. The weights
    // are packed once for every target of a generated library, so generate() decides it for the
    // whole library when unset: natural when every target has AVX-512.
    std::optional<bool> grouped_natural_lanes;
};

// Throws cardinal::Error for a graph it cannot lower (e.g. a Flatten feeding something other
// than Dense), naming the layer.
NetworkPlan lower_graph(const Graph& graph, const LoweringOptions& options = {});

// Assigns arena offsets from tensor lifetimes (largest first, reuse after last use, 64-byte
// aligned; among the offsets that fit, one whose cache state suits the writer: see
// arena_plan.cpp) and sets plan.arena_bytes.
void plan_arena(NetworkPlan& plan);

// Sum of every stored activation's bytes: what an arena without reuse would need.
int64_t total_activation_bytes(const NetworkPlan& plan);

// Identity of the weights layout (model, shapes, blob names and sizes): a weights file made for
// another network or packing is refused by comparing it.
uint64_t weights_fingerprint(const NetworkPlan& plan);

int round_up(int v, int multiple);

}  // namespace cardinal
