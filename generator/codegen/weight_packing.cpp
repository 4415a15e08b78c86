#include "codegen/weight_packing.h"

#include <algorithm>

#include "halide/conv_blocking.h"
#include "halide/winograd.h"

namespace cardinal {

namespace {
constexpr int kBlock = 16;  // == halide_gen::kWeightBlock
}

std::vector<float> pack_conv_weights(const Conv2D& conv, int in_channels, int in_channel_stride,
                                     int out_channel_stride) {
    const ConvBlocking b = compute_conv_blocking(in_channels, in_channel_stride,
                                                 conv.out_channels, out_channel_stride,
                                                 conv.groups, kBlock);
    const int kh = conv.kernel_h, kw = conv.kernel_w, cib = b.ci_per_block;
    const int cin_pg = in_channels / conv.groups, cout_pg = conv.out_channels / conv.groups;
    std::vector<float> packed(size_t(b.num_blocks) * kh * kw * cib * kBlock, 0.0f);
    const float* w = conv.weight.ptr();  // [out][cin_pg][kh][kw]
    for (int blk = 0; blk < b.num_blocks; ++blk)
        for (int ky = 0; ky < kh; ++ky)
            for (int kx = 0; kx < kw; ++kx)
                for (int cil = 0; cil < cib; ++cil)
                    for (int col = 0; col < kBlock; ++col) {
                        const int co = blk * kBlock + col;
                        const int ci = b.ci_start[blk] + cil;
                        if (co >= conv.out_channels || ci >= in_channels) continue;
                        const int g = co / cout_pg;
                        const int ci_in_group = ci - g * cin_pg;
                        if (ci_in_group < 0 || ci_in_group >= cin_pg) continue;  // other group
                        const size_t dst =
                            (((size_t(blk) * kh + ky) * kw + kx) * cib + cil) * kBlock + col;
                        packed[dst] = w[((size_t(co) * cin_pg + ci_in_group) * kh + ky) * kw + kx];
                    }
    return packed;
}

std::vector<float> pack_grouped_conv_weights(const Conv2D& conv, int in_channels,
                                             int out_channel_stride, bool natural_lanes) {
    const int kh = conv.kernel_h, kw = conv.kernel_w;
    const int ig = in_channels / conv.groups, og = conv.out_channels / conv.groups;
    const int og_v = std::min(og, kBlock);  // channels of a group within a block
    const int G = kBlock / og_v;            // groups within a block
    const int blocks = out_channel_stride / kBlock;
    std::vector<float> packed(size_t(blocks) * kh * kw * ig * kBlock, 0.0f);
    const float* w = conv.weight.ptr();  // [out][ig][kh][kw]
    for (int co = 0; co < conv.out_channels; ++co) {
        // Group-minor lane order: channel i of group g within the block sits in lane i*G + g.
        // Natural (4 per group): in lane g*4 + i, and step k of the reduction holds the
        // weight of input channel (i + k) % 4, the channel rotation k brings to lane i.
        const int blk = co / kBlock, g = (co % kBlock) / og_v, i = co % og_v;
        const int lane = natural_lanes ? co % kBlock : i * G + g;
        for (int ky = 0; ky < kh; ++ky)
            for (int kx = 0; kx < kw; ++kx)
                for (int k = 0; k < ig; ++k) {
                    const int j = natural_lanes ? (i + k) % ig : k;
                    packed[(((size_t(blk) * kh + ky) * kw + kx) * ig + k) * kBlock + lane] =
                        w[((size_t(co) * ig + j) * kh + ky) * kw + kx];
                }
    }
    return packed;
}

std::vector<float> pack_winograd_weights(const Conv2D& conv, int in_channels,
                                         int out_channel_stride, int tile) {
    if (conv.kernel_h != 3 || conv.kernel_w != 3 || conv.groups != 1)
        throw std::invalid_argument("Winograd weights need a dense 3x3 conv");
    const WinogradTransforms& t = winograd_transforms(tile);
    const int a = t.a, blocks = out_channel_stride / kBlock;
    std::vector<float> packed(size_t(blocks) * a * a * in_channels * kBlock, 0.0f);
    const float* w = conv.weight.ptr();  // [out][in][3][3]
    for (int co = 0; co < conv.out_channels; ++co)
        for (int ci = 0; ci < in_channels; ++ci) {
            const float* g = w + (size_t(co) * in_channels + ci) * 9;
            double gg[6][3];  // G g
            for (int xi = 0; xi < a; ++xi)
                for (int kx = 0; kx < 3; ++kx) {
                    gg[xi][kx] = 0;
                    for (int ky = 0; ky < 3; ++ky) gg[xi][kx] += t.g[xi][ky] * g[ky * 3 + kx];
                }
            for (int xi = 0; xi < a; ++xi)
                for (int nu = 0; nu < a; ++nu) {
                    double u = 0;  // (G g G^T)[xi][nu]
                    for (int kx = 0; kx < 3; ++kx) u += gg[xi][kx] * t.g[nu][kx];
                    const int blk = co / kBlock, lane = co % kBlock;
                    packed[(((size_t(blk) * a + xi) * a + nu) * in_channels + ci) * kBlock + lane] =
                        float(u);
                }
        }
    return packed;
}

std::vector<float> pack_bias(const std::optional<Tensor>& bias, int channel_stride) {
    std::vector<float> packed(channel_stride, 0.0f);
    if (bias)
        for (size_t i = 0; i < bias->data.size(); ++i) packed[i] = bias->data[i];
    return packed;
}

std::vector<float> pack_depthwise_weights(const Conv2D& conv, int channel_stride) {
    const int kh = conv.kernel_h, kw = conv.kernel_w;
    std::vector<float> packed(size_t(kh) * kw * channel_stride, 0.0f);
    for (int c = 0; c < conv.out_channels; ++c)
        for (int ky = 0; ky < kh; ++ky)
            for (int kx = 0; kx < kw; ++kx)
                packed[(size_t(ky) * kw + kx) * channel_stride + c] =
                    conv.weight.data[(size_t(c) * kh + ky) * kw + kx];
    return packed;
}

std::vector<float> pack_dense_weights(const Dense& dense, int in_stride, int out_stride,
                                      int flat_h, int flat_w, int flat_c_stride) {
    const int64_t in_features = dense.weight.shape[1];
    if (out_stride % 16)
        throw std::invalid_argument("dense weights: out_stride " + std::to_string(out_stride) +
                                    " is not a multiple of 16");
    std::vector<float> packed(size_t(in_stride) * out_stride, 0.0f);
    for (int o = 0; o < dense.out_features; ++o)
        for (int64_t i = 0; i < in_features; ++i) {
            int64_t stored = i;
            if (flat_h * flat_w > 1) {  // NCHW flatten order -> NHWC storage order
                const int64_t c = i / (flat_h * flat_w), hw = i % (flat_h * flat_w);
                stored = hw * flat_c_stride + c;
            }
            packed[(size_t(o / 16) * in_stride + size_t(stored)) * 16 + size_t(o % 16)] =
                dense.weight.data[size_t(o) * in_features + i];
        }
    return packed;
}

}  // namespace cardinal
