#include "halide/conv_blocking.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace cardinal {

ConvBlocking compute_conv_blocking(int in_channels, int in_channel_stride, int out_channels,
                                   int out_channel_stride, int groups, int oc_block) {
    if (groups < 1 || in_channels % groups || out_channels % groups || oc_block < 1 ||
        out_channel_stride % oc_block || out_channel_stride < out_channels ||
        in_channel_stride < in_channels)
        throw std::invalid_argument("inconsistent conv blocking: in " +
                                    std::to_string(in_channels) + "/" +
                                    std::to_string(in_channel_stride) + ", out " +
                                    std::to_string(out_channels) + "/" +
                                    std::to_string(out_channel_stride) + ", groups " +
                                    std::to_string(groups) + ", block " +
                                    std::to_string(oc_block));
    const int cin_pg = in_channels / groups, cout_pg = out_channels / groups;
    ConvBlocking b;
    b.oc_block = oc_block;
    b.num_blocks = out_channel_stride / oc_block;
    std::vector<int> lo(b.num_blocks, 0), hi(b.num_blocks, 0);
    for (int blk = 0; blk < b.num_blocks; ++blk) {
        const int co_lo = blk * oc_block;
        const int co_hi = std::min(co_lo + oc_block, out_channels);  // exclusive
        if (co_lo >= out_channels) continue;                          // all padding
        lo[blk] = (co_lo / cout_pg) * cin_pg;
        hi[blk] = ((co_hi - 1) / cout_pg + 1) * cin_pg;
        b.ci_per_block = std::max(b.ci_per_block, hi[blk] - lo[blk]);
    }
    b.ci_start.resize(b.num_blocks);
    for (int blk = 0; blk < b.num_blocks; ++blk) {
        // Shift a short block's window left so it stays inside the stored channels.
        b.ci_start[blk] = std::max(0, std::min(lo[blk], in_channel_stride - b.ci_per_block));
    }
    return b;
}

bool grouped_conv_applies(int in_channels, int in_channel_stride, int out_channels,
                          int out_channel_stride, int groups) {
    if (groups < 2 || in_channels % groups || out_channels % groups || out_channel_stride % 16)
        return false;
    const int ig = in_channels / groups, og = out_channels / groups;
    if (16 % og && og % 16) return false;
    const int groups_per_block = std::max(1, 16 / og);
    const int last_block = out_channel_stride / 16 - 1;
    return (last_block * 16 / og) * ig + groups_per_block * ig <= in_channel_stride;
}

}  // namespace cardinal
