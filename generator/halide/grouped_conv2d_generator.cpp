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
// Applicability: grouped_conv_applies() in conv_blocking.h (og divides 16 or 16 divides og, and
// every block's input channels lie inside the stored input channels).
//
// Schedule knobs (0: derived from the shape and the target):
//   tile_x, tile_y  output pixels per register tile of one 16-channel block. For one (ky, j) step
//                   of the reduction a row of tile_x outputs reads (tile_x-1)*stride_w +
//                   (kw-1)*dilation_w + 1 vectors X_j, each loaded once and reused by up to kw
//                   taps, so registers hold tile_x*tile_y accumulators + that row of X_j; the kw
//                   weight vectors can stay memory operands of the FMAs. Default tile_y = 1 and
//                   the tile_x <= the register budget (31 of 32 zmm) that wastes the fewest
//                   columns on the image width: 14 for a 3x3 stride-1 conv on 56 or 28 columns
//                   (14 accumulators + 16 X_j), 7 for stride 2 on 28 columns.
//   rows_per_task   output rows per parallel task. A task stages the block's input rows once
//                   (rows*stride + kh - 1 rows), so more rows stage (and permute) each input row
//                   fewer times. Default: the most rows whose staging fits half of L1 (24 KB),
//                   keeping >= 8 tasks per image so that threads stay balanced.
// Loop order per task: block (its weights, ig*kh*kw*64 B, and its staged rows stay in L1), then
// rows, then tiles along x.
#include <algorithm>

#include "halide/common.h"
#include "halide/conv_blocking.h"

namespace cardinal::halide_gen {

using namespace Halide;

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
    // --- Schedule knobs ---
    GeneratorParam<int> tile_x{"tile_x", 0};
    GeneratorParam<int> tile_y{"tile_y", 1};
    GeneratorParam<int> rows_per_task{"rows_per_task", 0};

    Input<Buffer<float>> input{"input", 4};      // (c, x, y, n)
    Input<Buffer<float>> weights{"weights", 5};  // (lane, j, kx, ky, block)
    Input<Buffer<float>> bias{"bias", 1};        // (c), zero-padded
    GeneratorInput<Buffer<float>>* residual_input = nullptr;
    Output<Buffer<float>> output{"output", 4};  // (c, x, y, n)

    void configure() {
        if (residual) residual_input = add_input<Buffer<float>>("residual", 4);
    }

    void generate() {
        if (!grouped_conv_applies(in_channels, in_channel_stride, out_channels,
                                  out_channel_stride, groups))
            throw std::invalid_argument("cardinal_grouped_conv2d does not apply to in " +
                                        std::to_string(int(in_channels)) + ", out " +
                                        std::to_string(int(out_channels)) + ", groups " +
                                        std::to_string(int(groups)));
        const int ig = int(in_channels) / int(groups), og = int(out_channels) / int(groups);
        const int og_v = std::min(og, kWeightBlock);  // channels of a group within a block
        const int G = kWeightBlock / og_v;            // groups within a block
        const int blocks = int(out_channel_stride) / kWeightBlock;

        // --- Algorithm ---
        const int reach_h = (out_height - 1) * stride_h + (kernel_h - 1) * dilation_h - pad_top;
        const int reach_w = (out_width - 1) * stride_w + (kernel_w - 1) * dilation_w - pad_left;
        const bool needs_boundary =
            pad_top > 0 || pad_left > 0 || reach_h >= in_height || reach_w >= in_width;
        Func in = needs_boundary ? BoundaryConditions::constant_exterior(
                                       input, 0.0f,
                                       {{Expr(), Expr()},
                                        {0, int(in_width)},
                                        {0, int(in_height)},
                                        {Expr(), Expr()}})
                                 : Func(input);

        // The block's input channels, group-minor: staged(g, j, b) holds input channel
        // in_base(b) + g*ig + j at position j*G + g.
        staged(g, j, b, x, y, n) = in((b * kWeightBlock / og) * ig + g * ig + j, x, y, n);

        // conv(g, i, b): the accumulator of output channel 16b + g*og_v + i, in lane i*G + g.
        RDom r(0, ig, 0, int(kernel_w), 0, int(kernel_h), "r");
        const Expr ix = x * int(stride_w) + r.y * int(dilation_w) - int(pad_left);
        const Expr iy = y * int(stride_h) + r.z * int(dilation_h) - int(pad_top);
        conv(g, i, b, x, y, n) = 0.0f;
        conv(g, i, b, x, y, n) +=
            weights(i * G + g, r.x, r.y, r.z, b) * staged(g, r.x, b, ix, iy, n);

        // Back to natural order: output lane l of a block reads accumulator lane
        // perm[l] = (l % og_v)*G + l/og_v.
        std::vector<int> perm(kWeightBlock);
        for (int l = 0; l < kWeightBlock; ++l) perm[l] = (l % og_v) * G + l / og_v;
        const Expr p = lane_table(c % kWeightBlock, perm);
        Expr value = conv(p % G, p / G, c / kWeightBlock, x, y, n) + bias(c);
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
        const int ty = std::clamp(int(tile_y), 1, int(out_height));
        int tx = tile_x;
        if (tx <= 0) {
            // The largest budget: tx*ty accumulators + one row of X_j in 31 registers (16 on
            // AVX2: 15). Among the tiles within it, the one wasting fewest columns (the last
            // tile of a row is shifted inwards and recomputes overlap), then the widest.
            const int regs = accumulator_registers(get_target()) >= 24 ? 31 : 15;
            auto row_inputs = [&](int t) {
                return (t - 1) * int(stride_w) + (int(kernel_w) - 1) * int(dilation_w) + 1;
            };
            int best_cols = 0;
            tx = 1;
            for (int t = 1; t <= int(out_width); ++t) {
                if (t * ty + row_inputs(t) > regs) break;
                const int cols = (int(out_width) + t - 1) / t * t;
                if (best_cols == 0 || cols <= best_cols) {
                    best_cols = cols;
                    tx = t;
                }
            }
        }
        tx = std::clamp(tx, 1, int(out_width));

        int rows = rows_per_task;
        if (rows <= 0) {
            const int in_row_bytes =
                (int(in_width) + 2 * int(pad_left)) * G * ig * int(sizeof(float));
            const int l1_rows = (24 * 1024) / std::max(1, in_row_bytes);
            rows = (l1_rows - (int(kernel_h) - 1) * int(dilation_h)) / int(stride_h);
            rows = std::min(rows, int(out_height) / 8);
        }
        rows = std::clamp(rows, ty, std::max(ty, int(out_height))) / ty * ty;

        Var co("co"), ci("ci"), xo("xo"), xi("xi"), yt("yt"), yr("yr"), yo("yo"), yi("yi"),
            task("task");
        output.split(c, co, ci, kWeightBlock)
            .split(x, xo, xi, tx, TailStrategy::ShiftInwards)
            .split(y, yt, yr, rows, TailStrategy::ShiftInwards)
            .split(yr, yo, yi, ty, TailStrategy::ShiftInwards)
            .vectorize(ci)
            .unroll(xi)
            .unroll(yi)
            .reorder(ci, xi, yi, xo, yo, co, yt, n)
            .fuse(yt, n, task)
            .parallel(task);
        // Nested vectorization over (g, i) makes X_j a broadcast of a G-float load and the
        // staging of a pixel a dense load + one shuffle.
        staged.compute_at(output, co)
            .bound(g, 0, G)
            .bound(j, 0, ig)
            .reorder(g, j, b, x, y, n)
            .vectorize(g)
            .vectorize(j);
        conv.bound(g, 0, G)
            .bound(i, 0, og_v)
            .compute_at(output, xo)
            .vectorize(g)
            .vectorize(i)
            .unroll(x)
            .unroll(y);
        conv.update()
            .reorder(g, i, x, y, r.y, r.z, r.x, b, n)
            .vectorize(g)
            .vectorize(i)
            .unroll(x)
            .unroll(y)
            .unroll(r.y);
    }

private:
    // table[l] for l in [0, table.size()), as a chain of selects. Vectorized over l, every lane's
    // index is then a known constant offset from the first, so Halide lowers a load at
    // `base + lane_table(l, table)` to one dense load and one shuffle; the same permutation
    // written with % and / becomes Halide's nested-ramp forms, which LLVM lowers to long shuffle
    // sequences (for G = 4).
    static Expr lane_table(const Expr& l, const std::vector<int>& table) {
        Expr e = table.back();
        for (int k = int(table.size()) - 2; k >= 0; --k) e = select(l == k, table[k], e);
        return e;
    }

    Var c{"c"}, x{"x"}, y{"y"}, n{"n"}, g{"g"}, i{"i"}, j{"j"}, b{"b"};
    Func conv{"conv"}, staged{"staged"};
};

}  // namespace cardinal::halide_gen

HALIDE_REGISTER_GENERATOR(cardinal::halide_gen::GroupedConv2DGenerator, cardinal_grouped_conv2d)
