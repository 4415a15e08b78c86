// Weight packing: from the IR's weight layouts (OIHW conv, [out, in] dense) to the layouts the
// layer pipelines read (see each generator's header comment). Done once, at generation time.
#pragma once

#include <optional>
#include <vector>

#include "ir/ops.h"

namespace cardinal {

// cardinal_conv2d: weights[block16][ky][kx][ci_local][co_local16], block-diagonal for groups.
std::vector<float> pack_conv_weights(const Conv2D& conv, int in_channels, int in_channel_stride,
                                     int out_channel_stride);
// cardinal_grouped_conv2d: weights[block16][ky][kx][k][lane16]. Group-minor lanes: with og_v =
// min(og, 16) and G = 16/og_v, output channel g*og_v + i of the block (group g, channel i) sits
// in lane i*G + g, and k is the input channel within the group. natural_lanes (4 input and 4
// output channels per group): lane g*4 + i, and k the rotation: input channel (i + k) % 4.
// Zero for padded output channels.
std::vector<float> pack_grouped_conv_weights(const Conv2D& conv, int in_channels,
                                             int out_channel_stride, bool natural_lanes);
// cardinal_winograd_conv2d: U = G g G^T for F(tile x tile, 3x3), weights[block16][xi][nu][ci]
// [co_local16] for the in_channels real input channels. Dense 3x3 convs only.
std::vector<float> pack_winograd_weights(const Conv2D& conv, int in_channels,
                                         int out_channel_stride, int tile);
// Bias padded to the stored channel count (zeros when the conv has none).
std::vector<float> pack_bias(const std::optional<Tensor>& bias, int channel_stride);
// cardinal_depthwise_conv2d: weights[ky][kx][c_stride].
std::vector<float> pack_depthwise_weights(const Conv2D& conv, int channel_stride);
// cardinal_dense: weights[o / 16][i_stored][o % 16] (out_stride a multiple of 16), each block's
// weights contiguous. When the input is an NHWC tensor flattened
// (flat_h * flat_w > 1), the IR's NCHW feature order is permuted to the stored (h, w, c) order.
std::vector<float> pack_dense_weights(const Dense& dense, int in_stride, int out_stride,
                                      int flat_h, int flat_w, int flat_c_stride);

}  // namespace cardinal
