// Pieces shared by cardinal's Halide generators: activation epilogues and the NHWC buffer
// contract every layer pipeline follows.
//
// Activation layout inside a generated network: NHWC ("channels innermost"), dense, with the
// channel dimension stored padded to a multiple of the channel alignment (16 floats: one AVX-512
// vector). In Halide's dimension order a tensor is (c, x, y, n) with strides
// (1, C_stride, C_stride*W, C_stride*W*H). Padded channels always hold zeros: every layer writes
// its whole padded channel range and its packed weights and bias are zero there.
#pragma once

#include <map>
#include <stdexcept>
#include <string>

#include "Halide.h"
#include "halide/conv_blocking.h"

namespace cardinal::halide_gen {

// Channels are stored padded to a multiple of this, and conv weights are packed in blocks of
// this many output channels: one AVX-512 vector of floats (two AVX2 vectors, four NEON ones).
constexpr int kChannelAlign = 16;
constexpr int kWeightBlock = 16;

enum class Activation { None, Relu, Clip };

inline const std::map<std::string, Activation>& activation_names() {
    static const std::map<std::string, Activation> names{
        {"none", Activation::None}, {"relu", Activation::Relu}, {"clip", Activation::Clip}};
    return names;
}

inline Halide::Expr apply_activation(Halide::Expr v, Activation act, float lo, float hi) {
    switch (act) {
        case Activation::None: return v;
        case Activation::Relu: return Halide::max(v, 0.0f);
        case Activation::Clip: return Halide::clamp(v, lo, hi);
    }
    return v;
}

// Fixes the bounds and strides of an NHWC tensor: constant shapes let Halide specialize every
// loop and address computation for this one layer. The same extents are the estimates an
// autoscheduler needs: with Halide's built-in GeneratorParam auto_schedule=true (`cardinal tune
// --strategy adams2019`), each generator skips its manual schedule and Adams2019 schedules it.
template <class BufferParam>
void set_nhwc_layout(BufferParam& b, int channel_stride, int width, int height, int batch) {
    b.dim(0).set_bounds(0, channel_stride).set_stride(1).set_estimate(0, channel_stride);
    b.dim(1).set_bounds(0, width).set_stride(channel_stride).set_estimate(0, width);
    b.dim(2).set_bounds(0, height).set_stride(channel_stride * width).set_estimate(0, height);
    b.dim(3).set_bounds(0, batch).set_stride(channel_stride * width * height).set_estimate(0, batch);
}

// Dense row-major layout for a buffer whose extents are given innermost first.
template <class BufferParam>
void set_dense_layout(BufferParam& b, const std::vector<int>& extents) {
    int stride = 1;
    for (size_t i = 0; i < extents.size(); ++i) {
        b.dim(static_cast<int>(i)).set_bounds(0, extents[i]).set_stride(stride).set_estimate(
            0, extents[i]);
        stride *= extents[i];
    }
}

// Register budget for accumulators: AVX-512 and AArch64 have 32 vector registers, AVX2/SSE 16.
inline int accumulator_registers(const Halide::Target& t) {
    if (t.has_feature(Halide::Target::AVX512) || t.has_feature(Halide::Target::AVX512_Skylake) ||
        (t.arch == Halide::Target::ARM && t.bits == 64))
        return 24;
    return 12;
}

// A conv's output channels per register tile: the schedule's oc_block (0: default_oc_block in
// conv_blocking.h), checked to make whole weight blocks that divide the stored channels.
inline int choose_oc_block(int oc_block, int out_channel_stride, int vec, const Halide::Target& t) {
    if (kWeightBlock % vec)
        throw std::invalid_argument("vector width " + std::to_string(vec) +
                                    " does not divide the weight block of " +
                                    std::to_string(kWeightBlock));
    if (oc_block > 0) {
        if (oc_block % kWeightBlock || out_channel_stride % oc_block)
            throw std::invalid_argument("oc_block " + std::to_string(oc_block) +
                                        " must be a multiple of " + std::to_string(kWeightBlock) +
                                        " and divide " + std::to_string(out_channel_stride));
        return oc_block;
    }
    if (out_channel_stride % kWeightBlock)
        throw std::invalid_argument("out_channel_stride " + std::to_string(out_channel_stride) +
                                    " is not a multiple of " + std::to_string(kWeightBlock));
    return default_oc_block(out_channel_stride, vec, accumulator_registers(t) >= 24);
}

}  // namespace cardinal::halide_gen
