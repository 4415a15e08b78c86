// How a convolution's output channels are cut into register blocks and which input channels
// each block reads. Shared by the Halide conv generator (which reads packed weights) and by the
// weight packer (which writes them), so the two can never disagree.
//
// Output channels are processed in blocks of `oc_block` (a multiple of the vector width). For a
// dense conv a block reads all input channels. For a grouped conv a block reads the contiguous
// input-channel range of the groups its output channels belong to; when a group has fewer output
// channels than a block (ResNeXt's 4 or 8 channels per group against 16 AVX-512 lanes) the block
// spans several groups and its packed weights are block-diagonal: zero where an output channel
// and an input channel belong to different groups. That keeps every FMA a full-width vector op
// with the input broadcast, at the cost of multiplying some zeros.
#pragma once

#include <algorithm>
#include <vector>

namespace cardinal {

struct ConvBlocking {
    int oc_block = 0;               // output channels per block
    int num_blocks = 0;             // out_channel_stride / oc_block
    int ci_per_block = 0;           // input channels each block reduces over
    std::vector<int> ci_start;      // first input channel of each block
};

// in/out_channels are the real counts; *_stride the padded storage counts. oc_block must divide
// out_channel_stride. Throws std::invalid_argument on inconsistent arguments.
ConvBlocking compute_conv_blocking(int in_channels, int in_channel_stride, int out_channels,
                                   int out_channel_stride, int groups, int oc_block);

// True when cardinal_grouped_conv2d can compute this grouping (every FMA useful, see its header):
// groups > 1, the output channels per group og divide 16 or are a multiple of 16, and the input
// channels each 16-channel output block reads, (16b/og)*ig .. + max(1, 16/og)*ig, lie inside the
// stored input channels.
bool grouped_conv_applies(int in_channels, int in_channel_stride, int out_channels,
                          int out_channel_stride, int groups);

// Can cardinal_grouped_conv2d run ig input and og output channels per group in natural lane
// order? At 4 and 4 (ResNeXt's 32x4d and 64x4d layer1) its input vectors are then in-lane
// rotations of the staged pixel (vpermilps) instead of 128-bit broadcasts, which on Zen 5 hold
// the kernel's loop at 86 % of the FMA rate (bench/broadcast_probe.cpp). With AVX-512 only (see
// LoweringOptions::grouped_natural_lanes): on AVX2 (ResNeXt-50's layer1 alone 0.36 -> 0.50 ms)
// and NEON the group-minor broadcast is a plain 128-bit load.
inline bool grouped_natural_lane_order(int ig, int og) {
    return ig == 4 && og == 4;
}

// cardinal_conv2d's "auto" parallel split: true for threads over output-channel blocks, false
// for threads over output rows. Rows, unless there are too few of them to share (fewer than 16
// tile rows and fewer than the 16-channel blocks), or the conv is a dense 1x1 whose weights
// outweigh its input and whose output has at least 16 register tiles of channels: threads over
// rows each read every weight, threads over blocks each read the input once per block from L2.
// Measured on Xception's 728->728 1x1 convs at 19x19 (2.1 MB of weights, 1 MB of input; 23
// blocks of 32): blocks took 0.87-0.93 of the time of rows in the network, 2 threads; with 2
// blocks (ResNet-50's 128->128 3x3 at 28x28) blocks took 1.2x.
inline bool conv_default_splits_blocks(int row_tasks, int weight_blocks, int tile_blocks,
                                       bool dense_pointwise, double weight_bytes,
                                       double input_bytes) {
    if (row_tasks < 16 && row_tasks < weight_blocks) return true;
    return dense_pointwise && weight_bytes > input_bytes && tile_blocks >= 16;
}

// cardinal_conv2d's "auto" loop order: true for pixel_outer (each row task runs every channel
// block over the row's inputs), false for co_outer (each channel block sweeps the image). For a
// dense 1x1 conv whose threads split rows and whose input exceeds 1 MiB (more than an L2 of the
// machines we target): co_outer streams that input from L3 or memory once per channel block,
// pixel_outer once, its rows staying in L1/L2 while the weights (here at most 2.1 MB) cycle
// through L2. Measured in the network, 2 threads, AVX2 (16-channel blocks): Xception's
// 128->128 at 147x147 0.64 of the co_outer time, its 64->128 and 256->256 0.85-0.90, its
// 256->728 and 728->728 at 37x37 0.94-0.95; ResNeXt-50's 256-channel 56x56 ones 0.90-0.97. The
// tuner had picked pixel_outer for most such layers on Zen 4 (AVX-512) too. Not when threads
// split channel blocks: 728->728 at 19x19 (1 MiB of input) took 1.07-1.14x as long in rows.
inline bool conv_default_pixel_outer(bool dense_pointwise, bool splits_blocks, double input_bytes) {
    return dense_pointwise && !splits_blocks && input_bytes > 1024.0 * 1024.0;
}

// cardinal_grouped_conv2d's default staging: true to stage a task's input rows once for every
// channel block ("task"), false to stage each block's channels of them in its turn ("block").
// Per block, each staged pixel reads a 64-byte slice of a pixel of in_channel_stride floats:
// 16 strided streams over the rows, which the prefetchers serve poorly once the input is not in
// L2 (above 1 MiB). Staged per task, the rows are read contiguously, once. Strided convs only:
// their tasks are one row (see rows_per_task), so block staging re-reads every input row
// per block and per task. Measured in ResNeXt-50 on Zen 4 (cardinal bench --layers, 1 and 2
// threads): layer2.0.conv2 (3.2 MB of input) 0.79-0.90 of the block-staged time, layer3.0.conv2
// (1.6 MB) 0.83-0.94, while layer4.0.conv2 (0.8 MB) took 1.1-1.36x; the stride-1 layers, whose
// tasks stage several rows, gained nothing.
inline bool grouped_default_stages_per_task(int stride_h, double input_bytes) {
    return stride_h > 1 && input_bytes > 1024.0 * 1024.0;
}

// cardinal_grouped_conv2d's "auto" parallel split: true for tasks of one register tile of channel
// blocks over a chunk of rows, false for tasks of output rows over every channel block. Threads
// over rows each read all of the layer's weights once per task, and below 16 output rows a task
// is one row: ResNeXt-101 64x4d's 1024-channel grouped 3x3 at 14x14 reads its 590 KB of weights
// 14 times for 14 rows of 14 pixels. Over blocks each block's weights are read once per chunk
// (the whole image when its staging fits L1). Measured in the network on Zen 4 (cardinal bench
// --layers, 2 threads): the 14x14 and 7x7 stride-1 layers took 0.66-0.87 of the rows time (0.35
// vs 0.49 ms at 14x14); the 28x28 and 56x56 ones, whose row tasks hold 3-4 rows, the same. Not
// strided convs: a block's staging then reads 64-byte slices of every input pixel, and the
// 28x28 -> 14x14 and 56x56 -> 28x28 layers took 1.14-1.26x; unless their weights exceed an L2
// (1 MiB on Zen 4/5; weight_bytes = out_channel_stride * ig * kh * kw * 4): then every row task
// streams all of them from L3 again, and over blocks, each over the whole image (see
// grouped_default_rows_per_task), ResNeXt-50's 1024-channel layer at 14x14 -> 7x7 (1.2 MB) and
// ResNeXt-101 32x8d's 1024 at 28x28 (1.2 MB) and 2048 at 14x14 (4.7 MB) took 0.70-0.74 of the
// rows time at 1 and 2 threads (Zen 5, bench --compare-schedules --layers). At least 8 tiles of
// blocks, so that two threads balance.
inline bool grouped_default_splits_blocks(int stride_h, int out_height, int tile_blocks,
                                          double weight_bytes) {
    if (tile_blocks < 8) return false;
    return stride_h == 1 ? out_height < 16 : weight_bytes > 1024.0 * 1024.0;
}

// cardinal_depthwise_conv2d's default output rows per task when threads split rows: from 4 to 8
// rows (tasks of 8 rows ran MobileNetV2's depthwise convs in 1.03 ms against 1.35 with tasks of
// 1 row: each task reads kh - stride input rows more than it writes) and at least two tasks; of
// those, the one that leaves the busier of two threads the fewest rows (tasks go to whichever
// thread is free, the last task holds the remainder), then the most rows. Xception's 19-row
// layers took 8, 8 and 3 rows: 11 rows on one thread; 5 gives 10 (in the network at 2 threads,
// its 17 depthwise convs at 19x19 1.86 -> 1.71 ms).
inline int depthwise_default_rows_per_task(int rows) {
    auto busier_thread_rows = [rows](int r) {
        int load[2] = {0, 0};
        for (int done = 0; done < rows; done += r)
            load[load[1] < load[0] ? 1 : 0] += (rows - done < r ? rows - done : r);
        return load[0] > load[1] ? load[0] : load[1];
    };
    const int most = std::clamp((rows + 1) / 2, 1, 8), fewest = std::min(4, most);
    int best = most;
    for (int r = most - 1; r >= fewest; --r)
        if (busier_thread_rows(r) < busier_thread_rows(best)) best = r;
    return best;
}

// cardinal_grouped_conv2d's default reduction order: kernel rows outermost (for each ky, the
// input channels j, then the kw taps) from 64 input channels per group on, else channels
// outermost. Weights are packed [block][ky][kx][j][lane], so with channels outermost one step of
// j touches kh*kw weight vectors ig*64 B apart: at 64 channels 4 KB apart, all in one L1 set
// (12 ways on Zen 4/5; 9 lines per block, 18 for a tile of two), evicting each other. With kernel
// rows outermost a step touches kw of them. Measured in the network (bench --layers, Zen 5):
// ResNeXt-101 32x8d's 64-per-group convs 0.90x the time at 7x7 and 0.5-0.7x strided at 14x14;
// at 32 per group (2 KB apart, two sets) it is mixed: 0.96-0.97x in ResNeXt-50 and
// 32x8d, 1.14-1.21x in ResNeXt-101 64x4d's 2048-channel layers, so those are left to the tuner.
inline bool grouped_default_kernel_rows_outer(int in_channels_per_group) {
    return in_channels_per_group >= 64;
}

// cardinal_grouped_conv2d's default output rows per task (a multiple of tile_y). The most rows
// whose staged input (rows*stride + (kh-1)*dilation rows of in_width + 2*pad_left pixels of G*ig
// floats) fits half of L1 (24 KB); over rows, also at most out_height/8 (>= 8 tasks per image, so
// that threads balance) and 1 for strided convs (their rows share only kh - stride staged rows:
// more rows stage little less and measured slower). Among those, the fewest rows computed: the
// last chunk of an image shifts inwards and recomputes its overlap, so 14 rows in chunks of 10
// compute 20. ResNeXt-101 32x8d's 32-channel groups at 14x14 (10 rows fit) took that 43 % more
// work in 22 layers; chunks of 7 compute 14. Strided convs over blocks take the whole image: a
// block's staging reads a 64-byte slice of each input pixel, better once than once per chunk
// (chunks of 2 rows took 1.11-1.15x the time in ResNeXt-101 32x8d).
inline int grouped_default_rows_per_task(int in_width, int pad_left, int staged_floats_per_pixel,
                                         int kernel_h, int dilation_h, int stride_h, int out_height,
                                         int tile_y, bool splits_blocks) {
    if (splits_blocks && stride_h > 1) {
        const int ty = tile_y > 0 ? tile_y : 1;
        return (out_height + ty - 1) / ty * ty;
    }
    const int in_row_bytes = (in_width + 2 * pad_left) * staged_floats_per_pixel * 4;
    const int l1_rows = (24 * 1024) / (in_row_bytes > 0 ? in_row_bytes : 1);
    int cap = (l1_rows - (kernel_h - 1) * dilation_h) / (stride_h > 0 ? stride_h : 1);
    if (!splits_blocks) {
        cap = cap < out_height / 8 ? cap : out_height / 8;
        if (stride_h > 1) cap = 1;
    }
    const int ty = tile_y > 0 ? tile_y : 1;
    const int most = ty > out_height ? ty : out_height;
    cap = (cap < ty ? ty : cap > most ? most : cap) / ty * ty;
    auto computed = [&](int r) { return (out_height + r - 1) / r * r; };
    int best = cap;
    for (int r = cap - ty; r >= ty; r -= ty)
        if (computed(r) < computed(best)) best = r;
    return best;
}

// Output channels per register tile when the schedule leaves oc_block unset (cardinal_conv2d,
// cardinal_winograd_conv2d): the most vectors, up to 4 with 32 vector registers (AVX-512,
// AArch64) or 2 with 16 (AVX2), that make whole 16-channel weight blocks and divide the stored
// channels; else one weight block.
inline int default_oc_block(int out_channel_stride, int vector_width, bool big_register_file) {
    constexpr int kBlock = 16;
    for (int v = big_register_file ? 4 : 2; v >= 1; --v)
        if ((v * vector_width) % kBlock == 0 && out_channel_stride % (v * vector_width) == 0)
            return v * vector_width;
    return kBlock;
}

}  // namespace cardinal
