// cardinal_grouped_conv2d: grouped convolution (ResNeXt's 32 groups of 4, 8, 16 or 32 channels,
// depthwise convs with a channel multiplier) with the fused epilogue
//     output = act(conv(input, weights) + bias [+ residual]).
// Every FMA is useful, unlike the block-diagonal path of cardinal_conv2d, which multiplies zeros
// when a group is narrower than a 16-lane vector (4x the work at 4 channels per group).
//
// Algorithm. ig, og: input and output channels per group; og divides 16 or is a multiple of
// it. Vectorize over a block of 16 consecutive output channels: og_v = min(og, 16) channels of
// each of G = 16/og_v groups (G = 4 at 4 channels per group, 2 at 8, 1 from 16 on). For input
// channel j < ig of its group, lane (g, i) of the block (group g, channel i in the group) reads
//     X_j[g, i] = input[in_base(b) + g*ig + j],     in_base(b) = (16b / og) * ig,
// the same value for all og_v lanes of a group. So each output vector costs ig*kh*kw FMAs whose
// input operand is a vector of G distinct values, each repeated og_v times.
//
// Lane order. In natural order ("repeated og_v times" = consecutive lanes) building X_j takes a
// cross-lane shuffle, and on AVX-512 shuffles and FMAs share a port. So inside the kernel a
// block's lanes are "group-minor": lane i*G + g holds output channel g*og_v + i, and the input
// is staged as staged[j*G + g] = input[in_base + g*ig + j]. Then
//     X_j = staged[j*G .. j*G + G) broadcast og_v times
// is a single broadcast load (vbroadcastf32x4 for G = 4, vbroadcastsd for G = 2, vbroadcastss for
// G = 1) that uses a load port only. Staging permutes each staged input pixel once (one vpermps),
// the epilogue permutes each output vector back to natural order once (one vpermps), and the
// weights are packed group-minor at generation time (see weight_packing.h):
//     weights[block][ky][kx][j][lane]         (Halide dims: lane, j, kx, ky, block)
// zero for padded output channels; independent of schedule and target.
//
// Natural lanes with rotations (lane_order "natural", for 4 input and 4 output channels per
// group: ResNeXt's 32x4d and 64x4d). On Zen 5 a vbroadcastf32x4 from memory is not free: the
// kernel's inner loop runs at 86 % of the FMA rate with it, at 97-104 % with an in-lane shuffle
// (bench/broadcast_probe.cpp). So lane g*4 + i holds output channel g*4 + i, the staged pixel is
// the block's 16 input channels in their own order (a plain copy), and the reduction runs over
// rotations k = 0..3 instead of input channels:
//     X_k[g, i] = staged[g*4 + (i + k) % 4]
// is the pixel itself for k = 0 and one vpermilps/vpermilpd of it for k = 1..3 (the pixel loaded
// once for all four), with the weights packed so that step k of lane (g, i) holds the weight of
// input channel (i + k) % 4. Neither the staging nor the epilogue permutes.
//
// The lane_order GeneratorParam names the weight layout ("group_minor" or "natural", chosen by
// grouped_natural_lane_order() in conv_blocking.h) so that it is part of every compiled kernel's
// identity.
//
// Applicability: grouped_conv_applies() in conv_blocking.h (og divides 16 or 16 divides og, and
// every block's input channels lie inside the stored input channels).
//
// Schedule knobs (0: derived from the shape and the target):
//   oc_block        output channels per register tile, a multiple of 16 (one block per 16).
//                   Default 32 when og >= 32: the two blocks of a tile belong to one group and
//                   share every X_j, doubling the accumulators for the same loads; else 16.
//   tile_x, tile_y  output pixels per register tile. For one (ky, j) step of the reduction a row
//                   of tile_x outputs reads (tile_x-1)*stride_w + (kw-1)*dilation_w + 1 vectors
//                   X_j, each loaded once and reused by up to kw taps, so registers hold
//                   oc_block/16 * tile_x * tile_y accumulators + that row of X_j (the kw weight
//                   vectors stay FMA memory operands): at most 31 zmm (AVX2: 15 ymm, where an
//                   accumulator takes two and tile_x = 4). Default tile_y = 1 and
//                   the tile_x within that budget with >= 8 accumulators (the FMA latency), then
//                   the fewest columns computed, then the widest: 14 for a 3x3 stride-1 conv on
//                   56, 28 or 14 columns (14 accumulators + 16 X_j), 10 for stride 2 on 28.
//   stage           block: each block of output channels stages its channels of the task's
//                   input rows in its turn (they stay in L1); task: the task stages its rows
//                   once for every block, reading each input pixel contiguously (default for
//                   strided convs whose input exceeds an L2, see conv_blocking.h); row: as
//                   block, but each output row stages only the input rows it is the first to
//                   need, just before it (Halide's sliding window over a ring of rows): the
//                   staging interleaves with the compute and the ring (4 rows: 30 KB for two
//                   blocks at 56 columns) stays in L1, where block staging writes all of the
//                   task's rows (220 KB at 28 rows) to L2 first. With parallel=blocks, row
//                   staging is per task (its tile of blocks) the same way.
//   reduction       channels_outer: the reduction runs input channel j, then kernel row ky, then
//                   the kw taps (unrolled); rows_outer: ky, then j, then the taps, so one step
//                   of j reads kw weight vectors instead of kh*kw lines ig*64 B apart that share
//                   an L1 set. Default rows_outer from 64 input channels per group on, see
//                   grouped_default_kernel_rows_outer in conv_blocking.h.
//   parallel        rows: a task is a run of output rows, over every block in turn (each task
//                   reads all of the layer's weights); blocks: a task is one register tile of
//                   blocks over a chunk of rows (its weights read once per chunk; the stage
//                   knob does not apply). Default: blocks for stride-1 convs under 16 rows
//                   and strided convs with over 1 MiB of weights, see
//                   grouped_default_splits_blocks in conv_blocking.h.
//   rows_per_task   output rows per parallel task. A task stages the block's input rows once
//                   (rows*stride + kh - 1 rows), so more rows stage (and permute) each input row
//                   fewer times. Default: the most rows whose staging fits half of L1 (24 KB);
//                   splitting rows, also keeping >= 8 tasks per image so that threads stay
//                   balanced, and 1 for strided convs (rows share only kh - stride staged rows);
//                   splitting blocks, the whole image for strided convs.
// Loop order per task: block (its weights, ig*kh*kw*64 B, and its staged rows stay in L1), then
// rows, then tiles along x; per tile the reduction (see the reduction knob).
#include <algorithm>

#include "halide/common.h"
#include "halide/conv_blocking.h"

namespace cardinal::halide_gen {

using namespace Halide;

// The weight layouts the kernel reads (one so far).
enum class LaneOrder { GroupMinor, Natural };
// Where the input rows are staged: per block of output channels (its channels of the task's
// rows), once per task for every block, or per block one output row at a time (a sliding
// window); auto: grouped_default_stages_per_task().
enum class StageAt { Auto, Block, Task, Row };
// What the threads split: tasks of output rows (each runs every channel block over its rows), or
// tasks of one register tile of channel blocks over a chunk of rows; auto:
// grouped_default_splits_blocks().
enum class GroupedSplit { Auto, Rows, Blocks };
// The reduction's loop order: input channels or kernel rows outermost; auto:
// grouped_default_kernel_rows_outer().
enum class ReductionOrder { Auto, ChannelsOuter, RowsOuter };

class GroupedConv2DGenerator : public Generator<GroupedConv2DGenerator> {
  public:
    // --- The layer (fixed) ---
    GeneratorParam<int> batch{"batch", 1};
    GeneratorParam<int> in_channels{"in_channels", 16};
    GeneratorParam<int> in_channel_stride{"in_channel_stride", 16};
    GeneratorParam<int> in_height{"in_height", 8};
    GeneratorParam<int> in_width{"in_width", 8};
    GeneratorParam<int> out_channels{"out_channels", 16};
    GeneratorParam<int> out_channel_stride{"out_channel_stride", 16};
    GeneratorParam<int> out_height{"out_height", 8};
    GeneratorParam<int> out_width{"out_width", 8};
    GeneratorParam<int> kernel_h{"kernel_h", 3};
    GeneratorParam<int> kernel_w{"kernel_w", 3};
    GeneratorParam<int> stride_h{"stride_h", 1};
    GeneratorParam<int> stride_w{"stride_w", 1};
    GeneratorParam<int> pad_top{"pad_top", 1};
    GeneratorParam<int> pad_left{"pad_left", 1};
    GeneratorParam<int> dilation_h{"dilation_h", 1};
    GeneratorParam<int> dilation_w{"dilation_w", 1};
    GeneratorParam<int> groups{"groups", 4};
    // --- The fused epilogue ---
    GeneratorParam<Activation> activation{"activation", Activation::None, activation_names()};
    GeneratorParam<float> clip_min{"clip_min", 0.0f};
    GeneratorParam<float> clip_max{"clip_max", 6.0f};
    GeneratorParam<bool> residual{"residual", false};
    // --- The weight layout contract (see weight_packing.h); part of the kernel's identity ---
    GeneratorParam<LaneOrder> lane_order{
        "lane_order",
        LaneOrder::GroupMinor,
        {{"group_minor", LaneOrder::GroupMinor}, {"natural", LaneOrder::Natural}}};
    // --- Schedule knobs ---
    GeneratorParam<int> oc_block{"oc_block", 0};
    GeneratorParam<int> tile_x{"tile_x", 0};
    GeneratorParam<int> tile_y{"tile_y", 1};
    GeneratorParam<int> rows_per_task{"rows_per_task", 0};
    GeneratorParam<StageAt> stage{"stage",
                                  StageAt::Auto,
                                  {{"auto", StageAt::Auto},
                                   {"block", StageAt::Block},
                                   {"task", StageAt::Task},
                                   {"row", StageAt::Row}}};
    GeneratorParam<GroupedSplit> parallel{"parallel",
                                          GroupedSplit::Auto,
                                          {{"auto", GroupedSplit::Auto},
                                           {"rows", GroupedSplit::Rows},
                                           {"blocks", GroupedSplit::Blocks}}};
    GeneratorParam<ReductionOrder> reduction{"reduction",
                                             ReductionOrder::Auto,
                                             {{"auto", ReductionOrder::Auto},
                                              {"channels_outer", ReductionOrder::ChannelsOuter},
                                              {"rows_outer", ReductionOrder::RowsOuter}}};

    Input<Buffer<float>> input{"input", 4};      // (c, x, y, n)
    Input<Buffer<float>> weights{"weights", 5};  // (lane, j, kx, ky, block)
    Input<Buffer<float>> bias{"bias", 1};        // (c), zero-padded
    GeneratorInput<Buffer<float>>* residual_input = nullptr;
    Output<Buffer<float>> output{"output", 4};  // (c, x, y, n)

    void configure() {
        if (residual) residual_input = add_input<Buffer<float>>("residual", 4);
    }

    void generate() {
        if (!grouped_conv_applies(in_channels, in_channel_stride, out_channels, out_channel_stride,
                                  groups))
            throw std::invalid_argument("cardinal_grouped_conv2d does not apply to in " +
                                        std::to_string(int(in_channels)) + ", out " +
                                        std::to_string(int(out_channels)) + ", groups " +
                                        std::to_string(int(groups)));
        const int ig = int(in_channels) / int(groups), og = int(out_channels) / int(groups);
        const int og_v = std::min(og, kWeightBlock);  // channels of a group within a block
        const int G = kWeightBlock / og_v;            // groups within a block
        const int blocks = int(out_channel_stride) / kWeightBlock;
        const bool natural = lane_order == LaneOrder::Natural;
        if (natural && !(ig == 4 && og == 4))
            throw std::invalid_argument(
                "lane_order natural is for 4 input and 4 output channels per group");

        // --- Algorithm ---
        const int reach_h = (out_height - 1) * stride_h + (kernel_h - 1) * dilation_h - pad_top;
        const int reach_w = (out_width - 1) * stride_w + (kernel_w - 1) * dilation_w - pad_left;
        const bool needs_boundary =
            pad_top > 0 || pad_left > 0 || reach_h >= in_height || reach_w >= in_width;
        Func in =
            needs_boundary
                ? BoundaryConditions::constant_exterior(
                      input, 0.0f,
                      {{Expr(), Expr()}, {0, int(in_width)}, {0, int(in_height)}, {Expr(), Expr()}})
                : Func(input);

        // The input channels of output block b, group-minor: staged(g, j, q) holds input
        // channel q*G*ig + g*ig + j at position j*G + g, for q = b / bpg the block's input block
        // (bpg = og/16 output blocks share one group's input when og >= 32).
        const int bpg = std::max(1, og / kWeightBlock);
        staged(g, j, q, x, y, n) = in(q * G * ig + g * ig + j, x, y, n);

        // conv(g, i, b): the accumulator of output channel 16b + g*og_v + i, in lane i*G + g.
        RDom r(0, ig, 0, int(kernel_w), 0, int(kernel_h), "r");
        const Expr ix = x * int(stride_w) + r.y * int(dilation_w) - int(pad_left);
        const Expr iy = y * int(stride_h) + r.z * int(dilation_h) - int(pad_top);
        conv(g, i, b, x, y, n) = 0.0f;
        if (natural)
            conv(g, i, b, x, y, n) += weights(g * og_v + i, r.x, r.y, r.z, b) *
                                      staged(g, (i + r.x) % ig, b / bpg, ix, iy, n);
        else
            conv(g, i, b, x, y, n) +=
                weights(i * G + g, r.x, r.y, r.z, b) * staged(g, r.x, b / bpg, ix, iy, n);

        // Back to natural order: output lane l of a block reads accumulator lane
        // perm[l] = (l % og_v)*G + l/og_v.
        std::vector<int> perm(kWeightBlock);
        for (int l = 0; l < kWeightBlock; ++l)
            perm[l] = (l % og_v) * G + l / og_v;
        const Expr p = lane_table(c % kWeightBlock, perm);
        Expr value = (natural ? conv(c % kWeightBlock / og_v, c % og_v, c / kWeightBlock, x, y, n)
                              : conv(p % G, p / G, c / kWeightBlock, x, y, n)) +
                     bias(c);
        if (residual_input) value += (*residual_input)(c, x, y, n);
        output(c, x, y, n) = apply_activation(value, activation, clip_min, clip_max);

        // --- Buffer contract ---
        set_nhwc_layout(input, in_channel_stride, in_width, in_height, batch);
        set_nhwc_layout(output, out_channel_stride, out_width, out_height, batch);
        if (residual_input)
            set_nhwc_layout(*residual_input, out_channel_stride, out_width, out_height, batch);
        set_dense_layout(weights, {kWeightBlock, ig, int(kernel_w), int(kernel_h), blocks});
        set_dense_layout(bias, {int(out_channel_stride)});

        // --- Schedule ---
        if (auto_schedule) return;  // an autoscheduler schedules it (see common.h)
        // Blocks per register tile: 2 when two blocks belong to one group (og >= 32), so they
        // share every X_j load and the tile has twice the accumulators for the same inputs.
        int vb = oc_block > 0 ? int(oc_block) / kWeightBlock : (og % 32 == 0 ? 2 : 1);
        if (vb < 1 || int(oc_block) % kWeightBlock || blocks % vb)
            throw std::invalid_argument("oc_block must be a multiple of 16 dividing " +
                                        std::to_string(int(out_channel_stride)));
        const int ty = std::clamp(int(tile_y), 1, int(out_height));
        int tx = tile_x;
        if (tx <= 0) {
            // Within the register budget (31 of 32 zmm: accumulators + one row of X_j), the
            // widths with >= 8 independent accumulator registers (which hide the 4-cycle FMA
            // latency on two FMA ports), then the fewest columns computed (the last tile of a
            // row is shifted inwards and recomputes its overlap), then the widest. Narrower
            // registers (AVX2: 16 ymm of 8 lanes) hold a 16-lane accumulator in 16/lanes
            // registers, and an X_j in one when its G-float chunk fits.
            const int lanes = natural_vector_size<float>();
            const int per_vec = std::max(1, kWeightBlock / lanes);
            const int regs = (accumulator_registers(get_target()) >= 24 ? 32 : 16) - 1;
            const int x_regs = G <= lanes ? 1 : per_vec;
            auto row_inputs = [&](int t) {
                return (t - 1) * int(stride_w) + (int(kernel_w) - 1) * int(dilation_w) + 1;
            };
            auto better = [&](int t, int u) {  // is width t better than width u?
                const bool tl = vb * t * ty * per_vec >= 8, ul = vb * u * ty * per_vec >= 8;
                if (tl != ul) return tl;
                const int tc = (int(out_width) + t - 1) / t * t;
                const int uc = (int(out_width) + u - 1) / u * u;
                return tc != uc ? tc < uc : t > u;
            };
            tx = 1;
            for (int t = 2; t <= int(out_width); ++t) {
                if (vb * t * ty * per_vec + row_inputs(t) * x_regs > regs) break;
                if (better(t, tx)) tx = t;
            }
        }
        tx = std::clamp(tx, 1, int(out_width));

        const int blocks_per_tile = blocks / vb;
        const bool split_blocks =
            parallel == GroupedSplit::Auto
                ? grouped_default_splits_blocks(
                      int(stride_h), int(out_height), blocks_per_tile,
                      4.0 * int(out_channel_stride) * ig * kernel_h * kernel_w)
                : parallel == GroupedSplit::Blocks;
        int rows = rows_per_task;
        if (rows <= 0)
            rows = grouped_default_rows_per_task(in_width, pad_left, G * ig, kernel_h, dilation_h,
                                                 stride_h, out_height, ty, split_blocks);
        rows = std::clamp(rows, ty, std::max(ty, int(out_height))) / ty * ty;

        Var co("co"), ci("ci"), cb("cb"), cl("cl"), xo("xo"), xi("xi"), yt("yt"), yr("yr"),
            yo("yo"), yi("yi"), task("task");
        output.split(c, co, ci, vb * kWeightBlock)
            .split(ci, cb, cl, kWeightBlock)
            .split(x, xo, xi, tx, TailStrategy::ShiftInwards)
            .split(y, yt, yr, rows, TailStrategy::ShiftInwards)
            .split(yr, yo, yi, ty, TailStrategy::ShiftInwards)
            .vectorize(cl)
            .unroll(cb)
            .unroll(xi)
            .unroll(yi);
        if (split_blocks) {
            // A task: one tile of channel blocks over one chunk of rows. Its weights are read
            // once and its input channels staged once per chunk.
            Var tile_rows("tile_rows");
            output.reorder(cl, cb, xi, yi, xo, yo, yt, co, n)
                .fuse(yt, co, tile_rows)
                .fuse(tile_rows, n, task)
                .parallel(task);
        } else {
            output.reorder(cl, cb, xi, yi, xo, yo, co, yt, n).fuse(yt, n, task).parallel(task);
        }
        // Nested vectorization over (g, i) makes X_j a broadcast of a G-float load and the
        // staging of a pixel a dense load + one shuffle.
        // Natural: the block's 16 input channels in their own order (a plain copy).
        staged.bound(g, 0, G).bound(j, 0, ig);
        if (natural)
            staged.reorder(j, g, q, x, y, n)
                .reorder_storage(j, g, q, x, y, n)
                .vectorize(j)
                .vectorize(g);
        else
            staged.reorder(g, j, q, x, y, n).vectorize(g).vectorize(j);
        const double input_bytes =
            double(in_channel_stride) * in_width * in_height * batch * sizeof(float);
        const bool per_task = stage == StageAt::Auto
                                  ? grouped_default_stages_per_task(stride_h, input_bytes)
                                  : stage == StageAt::Task;
        if (stage == StageAt::Row)  // a ring of rows, each staged by the first row needing it
            staged.store_at(output, split_blocks ? task : co).compute_at(output, yo);
        else if (split_blocks)  // the task is one tile of blocks: stage its channels of its rows
            staged.compute_at(output, task);
        else if (per_task)  // each block's staged rows contiguous, as the compute reads them
            staged.compute_at(output, task)
                .reorder_storage(natural ? j : g, natural ? g : j, x, y, q, n);
        else
            staged.compute_at(output, co);
        // The accumulators' lanes: g innermost (group-minor) or i innermost (natural).
        const VarOrRVar lane_inner = natural ? i : g, lane_outer = natural ? g : i;
        conv.bound(g, 0, G).bound(i, 0, og_v).compute_at(output, xo);
        if (natural) conv.reorder_storage(i, g, b, x, y, n);
        conv.reorder(lane_inner, lane_outer, b, x, y, n)
            .vectorize(lane_inner)
            .vectorize(lane_outer)
            .unroll(b)
            .unroll(x)
            .unroll(y);
        const bool rows_outer = reduction == ReductionOrder::Auto
                                    ? grouped_default_kernel_rows_outer(ig)
                                    : reduction == ReductionOrder::RowsOuter;
        if (rows_outer)
            conv.update().reorder(lane_inner, lane_outer, b, x, y, r.y, r.x, r.z, n);
        else
            conv.update().reorder(lane_inner, lane_outer, b, x, y, r.y, r.z, r.x, n);
        conv.update()
            .vectorize(lane_inner)
            .vectorize(lane_outer)
            .unroll(b)
            .unroll(x)
            .unroll(y)
            .unroll(r.y);
        // Natural: the rotations unrolled, so that each is a constant shuffle of the pixel.
        if (natural) conv.update().unroll(r.x);
    }

  private:
    // table[l] for l in [0, table.size()), as a chain of selects. Vectorized over l, every lane's
    // index is then a known constant offset from the first, so Halide lowers a load at
    // `base + lane_table(l, table)` to one dense load and one shuffle; the same permutation
    // written with % and / becomes Halide's nested-ramp forms, which LLVM lowers to long shuffle
    // sequences (for G = 4).
    static Expr lane_table(const Expr& l, const std::vector<int>& table) {
        Expr e = table.back();
        for (int k = int(table.size()) - 2; k >= 0; --k)
            e = select(l == k, table[k], e);
        return e;
    }

    Var c{"c"}, x{"x"}, y{"y"}, n{"n"}, g{"g"}, i{"i"}, j{"j"}, b{"b"}, q{"q"};
    Func conv{"conv"}, staged{"staged"};
};

}  // namespace cardinal::halide_gen

HALIDE_REGISTER_GENERATOR(cardinal::halide_gen::GroupedConv2DGenerator, cardinal_grouped_conv2d)
