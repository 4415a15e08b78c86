// cardinal_conv2d: dense and grouped convolution with a fused epilogue
//     output = act(conv(input, weights) + bias [+ residual])
// for any kernel, stride, padding and dilation. Depthwise convs with multiplier 1 have their own
// generator (depthwise_conv2d_generator.cpp); every other grouping comes here.
//
// Algorithm: direct convolution over NHWC, vectorized over output channels. For each output
// pixel and each block of `oc_block` output channels, the reduction runs over the block's input
// channels (see conv_blocking.h) and the kernel taps; the input value is broadcast and multiplied
// by a vector of packed weights. Weights are packed at generation time in blocks of kWeightBlock
// (16) output channels,
//     weights[block][ky][kx][ci_local][co_local]     (Halide dims: co_local, ci_local, kx, ky, block)
// so the reduction streams through them contiguously. The packing depends on neither schedule
// nor target: a register tile of oc_block channels reads oc_block/16 blocks, and one weights file
// serves every target of a fat binary.
//
// Schedule knobs (GeneratorParams, searched by the tuner):
//   vector_width   lanes per vector (0: the target's natural width for float)
//   oc_block       output channels per register tile: a multiple of 16 dividing
//                  out_channel_stride (0: up to 4 vectors on AVX-512, 2 on AVX2)
//   tile_x, tile_y output pixels per register tile. Accumulators = oc_block/vector_width *
//                  tile_x * tile_y must fit the register file: 32 zmm on AVX-512 (up to 28
//                  accumulators, the rest for weight vectors and a broadcast), 16 ymm on AVX2
//                  (12). (tile_x 0: the width within that budget that wastes the least work on
//                  the image width, see default_tile_x: 7 for 4 vectors on ResNet widths;
//                  tile_y default 1)
//   ci_unroll      unroll factor of the input-channel loop (must divide the block's channels)
//   parallel       "rows": threads split output rows (x batch); "blocks": threads split output
//                  channel blocks (better when the image is 7x7 but channels are many); "auto"
//                  (see conv_default_splits_blocks in conv_blocking.h).
//   rows_per_task  output rows per parallel task (0: tile_y); with "blocks", rows per task of
//                  one channel block (0: the whole image)
//   order          "co_outer": each channel block sweeps the whole image (its weights stay in
//                  cache); "pixel_outer": each row runs all channel blocks (its inputs stay in
//                  cache) "auto" (default): see conv_default_pixel_outer in
//                  conv_blocking.h.
//   stage_input    zero-padded convs only (true by default): copy the input rows a task reads,
//                  zero border included, into a buffer first (the whole padded image when
//                  threads split channel blocks), so the reduction reads it with no bounds
//                  test. Read in place, every tap of a tile that touches the border selects
//                  between the input and zero, and on 14- and 7-wide images every tile does:
//                  ResNet-50's 3x3 stride-2 convs ran 1.5-1.7x faster staged (one thread),
//                  the 14x14 stride-1 ones 1.2x; the copy is 1/(9 * out_channels) of the
//                  FMAs. Fewer input channels than a vector (the RGB stems) are staged with
//                  vectors along x.
#include <algorithm>

#include "halide/common.h"
#include "halide/conv_blocking.h"

namespace cardinal::halide_gen {

using namespace Halide;

enum class ParallelSplit { Auto, Rows, Blocks, None };
enum class LoopOrder { Auto, CoOuter, PixelOuter };

class Conv2DGenerator : public Generator<Conv2DGenerator> {
public:
    // --- The layer (fixed): NHWC shapes, channel counts real and stored (padded) ---
    GeneratorParam<int> batch{"batch", 1};
    GeneratorParam<int> in_channels{"in_channels", 16};
    GeneratorParam<int> in_channel_stride{"in_channel_stride", 16};
    GeneratorParam<int> in_height{"in_height", 8};
    GeneratorParam<int> in_width{"in_width", 8};
    GeneratorParam<int> out_channels{"out_channels", 16};
    GeneratorParam<int> out_channel_stride{"out_channel_stride", 16};
    GeneratorParam<int> out_height{"out_height", 8};
    GeneratorParam<int> out_width{"out_width", 8};
    GeneratorParam<int> kernel_h{"kernel_h", 1};
    GeneratorParam<int> kernel_w{"kernel_w", 1};
    GeneratorParam<int> stride_h{"stride_h", 1};
    GeneratorParam<int> stride_w{"stride_w", 1};
    GeneratorParam<int> pad_top{"pad_top", 0};
    GeneratorParam<int> pad_left{"pad_left", 0};
    GeneratorParam<int> dilation_h{"dilation_h", 1};
    GeneratorParam<int> dilation_w{"dilation_w", 1};
    GeneratorParam<int> groups{"groups", 1};
    // --- The fused epilogue ---
    GeneratorParam<Activation> activation{"activation", Activation::None, activation_names()};
    GeneratorParam<float> clip_min{"clip_min", 0.0f};
    GeneratorParam<float> clip_max{"clip_max", 6.0f};
    GeneratorParam<bool> residual{"residual", false};
    // --- Schedule knobs ---
    GeneratorParam<int> vector_width{"vector_width", 0};
    GeneratorParam<int> oc_block{"oc_block", 0};
    GeneratorParam<int> tile_x{"tile_x", 0};
    GeneratorParam<int> tile_y{"tile_y", 1};
    GeneratorParam<int> ci_unroll{"ci_unroll", 1};
    GeneratorParam<int> ci_block{"ci_block", 0};
    GeneratorParam<ParallelSplit> parallel{
        "parallel",
        ParallelSplit::Auto,
        {{"auto", ParallelSplit::Auto},
         {"rows", ParallelSplit::Rows},
         {"blocks", ParallelSplit::Blocks},
         {"none", ParallelSplit::None}}};
    GeneratorParam<int> rows_per_task{"rows_per_task", 0};
    GeneratorParam<bool> stage_input{"stage_input", true};
    GeneratorParam<LoopOrder> order{
        "order",
        LoopOrder::Auto,
        {{"auto", LoopOrder::Auto},
         {"co_outer", LoopOrder::CoOuter},
         {"pixel_outer", LoopOrder::PixelOuter}}};

    Input<Buffer<float>> input{"input", 4};      // (c, x, y, n)
    Input<Buffer<float>> weights{"weights", 5};  // (co_local, ci_local, kx, ky, block)
    Input<Buffer<float>> bias{"bias", 1};        // (c), zero-padded
    GeneratorInput<Buffer<float>>* residual_input = nullptr;  // (c, x, y, n), when residual
    Output<Buffer<float>> output{"output", 4};   // (c, x, y, n)

    void configure() {
        if (residual) residual_input = add_input<Buffer<float>>("residual", 4);
    }

    void generate() {
        const int vec = vector_width > 0 ? int(vector_width) : natural_vector_size<float>();
        const int ob = choose_oc_block(oc_block, out_channel_stride, vec, get_target());
        const ConvBlocking blocking =
            compute_conv_blocking(in_channels, in_channel_stride, out_channels,
                                  out_channel_stride, groups, kWeightBlock);
        const int cib = blocking.ci_per_block;

        // --- Algorithm ---
        const bool needs_boundary = needs_zero_padding();
        Func in = needs_boundary ? BoundaryConditions::constant_exterior(
                                       input, 0.0f,
                                       {{Expr(), Expr()},
                                        {0, int(in_width)},
                                        {0, int(in_height)},
                                        {Expr(), Expr()}})
                                 : Func(input);
        Func ci_start("ci_start");
        const int start_step = blocking.num_blocks > 1 ? blocking.ci_start[1] : 0;
        bool linear_start = true;
        for (int i = 0; i < blocking.num_blocks; ++i)
            linear_start &= blocking.ci_start[i] == i * start_step;
        if (linear_start) {
            // Dense convs (step 0) and groups that tile blocks evenly: an affine start lets
            // Halide prove loads in bounds and simplify addressing.
            ci_start(b) = b * start_step;
        } else {
            // Irregular groupings (e.g. 3 channels per group against 16-lane blocks): a table
            // compiled into the object, clamped so bounds inference sees a finite range.
            Buffer<int> table(blocking.num_blocks, "ci_start_table");
            for (int i = 0; i < blocking.num_blocks; ++i) table(i) = blocking.ci_start[i];
            ci_start(b) = clamp(table(clamp(b, 0, blocking.num_blocks - 1)), 0,
                                int(in_channel_stride) - cib);
        }

        RDom r(0, cib, 0, int(kernel_w), 0, int(kernel_h), "r");
        const Expr block = c / kWeightBlock, co_local = c % kWeightBlock;
        const Expr ix = x * int(stride_w) + r.y * int(dilation_w) - int(pad_left);
        const Expr iy = y * int(stride_h) + r.z * int(dilation_h) - int(pad_top);
        conv(c, x, y, n) = bias(c);
        conv(c, x, y, n) +=
            weights(co_local, r.x, r.y, r.z, block) * in(ci_start(block) + r.x, ix, iy, n);
        Expr value = conv(c, x, y, n);
        if (residual_input) value += (*residual_input)(c, x, y, n);
        output(c, x, y, n) = apply_activation(value, activation, clip_min, clip_max);

        // --- Buffer contract: constant shapes and strides ---
        set_nhwc_layout(input, in_channel_stride, in_width, in_height, batch);
        set_nhwc_layout(output, out_channel_stride, out_width, out_height, batch);
        if (residual_input)
            set_nhwc_layout(*residual_input, out_channel_stride, out_width, out_height, batch);
        set_dense_layout(weights,
                         {kWeightBlock, cib, int(kernel_w), int(kernel_h), blocking.num_blocks});
        set_dense_layout(bias, {int(out_channel_stride)});

        // --- Schedule ---
        if (auto_schedule) return;  // an autoscheduler schedules it (see common.h)
        const int vectors = ob / vec;
        const int ty = std::clamp(int(tile_y), 1, int(out_height));
        int tx = tile_x > 0 ? int(tile_x) : default_tile_x(vectors, ty);
        tx = std::clamp(tx, 1, int(out_width));

        Var co("co"), ci("ci"), xo("xo"), xi("xi"), yo("yo"), yi("yi"), task("task");
        output.split(c, co, ci, ob)
            .split(x, xo, xi, tx, TailStrategy::ShiftInwards)
            .split(y, yo, yi, ty, TailStrategy::ShiftInwards)
            .vectorize(ci, vec)
            .unroll(ci)
            .unroll(xi)
            .unroll(yi);

        const int row_tasks = int(batch) * ((int(out_height) + ty - 1) / ty);
        const double input_bytes =
            4.0 * int(in_width) * int(in_height) * int(in_channel_stride) * int(batch);
        const bool dense_pointwise = kernel_h == 1 && kernel_w == 1 && groups == 1;
        ParallelSplit split = parallel;
        if (split == ParallelSplit::Auto) {
            const double weight_bytes = 4.0 * cib * int(out_channel_stride);
            split = conv_default_splits_blocks(row_tasks, blocking.num_blocks,
                                               int(out_channel_stride) / ob, dense_pointwise,
                                               weight_bytes, input_bytes)
                        ? ParallelSplit::Blocks
                        : ParallelSplit::Rows;
        }
        LoopOrder loop_order = order;
        if (loop_order == LoopOrder::Auto)
            loop_order = conv_default_pixel_outer(dense_pointwise, split == ParallelSplit::Blocks,
                                                  input_bytes)
                             ? LoopOrder::PixelOuter
                             : LoopOrder::CoOuter;
        if (split == ParallelSplit::Blocks && loop_order == LoopOrder::PixelOuter)
            split = ParallelSplit::Rows;  // blocks are inner loops in this order
        if (loop_order == LoopOrder::CoOuter) {
            output.reorder(ci, xi, yi, xo, yo, n, co);
        } else {
            output.reorder(ci, xi, yi, co, xo, yo, n);
        }

        // Reduction in chunks of ci_block input channels (1x1 convs; see below).
        const bool ci_chunks = ci_block > 0 && int(ci_block) < cib && cib % int(ci_block) == 0 &&
                               kernel_h == 1 && kernel_w == 1;
        Var rows_level = yo;  // the innermost loop over output rows (tiles of ty)
        Var blocks_level = co;  // the loop over channel blocks (or block x row-chunk tasks)
        if (split == ParallelSplit::Rows) {
            const int per_task = std::max(1, int(rows_per_task) > 0 ? int(rows_per_task) / ty : 1);
            output.fuse(yo, n, task);
            if (per_task > 1) {
                Var to("to"), ti("ti");
                output.split(task, to, ti, per_task, TailStrategy::GuardWithIf).parallel(to);
                rows_level = ti;
            } else {
                output.parallel(task);
                rows_level = task;
            }
        } else if (split == ParallelSplit::Blocks) {
            const int row_tiles = (int(out_height) + ty - 1) / ty;
            const int per_task = int(rows_per_task) / ty;
            if (per_task >= 1 && per_task < row_tiles && !ci_chunks) {
                // Tasks of one channel block x per_task tile rows: more tasks than blocks, so
                // an odd block count (Xception's 736 channels = 23 blocks of 32) still splits
                // evenly between threads. The block's weights are read once per task. (Not
                // with reduction chunks: their accumulators span the task's rows, and the last
                // task's guarded rows would widen them past the image.)
                Var yoo("yoo"), yoi("yoi");
                output.split(yo, yoo, yoi, per_task, TailStrategy::GuardWithIf)
                    .reorder(ci, xi, yi, xo, yoi, n, yoo, co)
                    .fuse(yoo, co, task)
                    .parallel(task);
                blocks_level = task;
            } else {
                output.parallel(co);
            }
        }

        // Reduction cache blocking (1x1 convs): accumulators live in a buffer and the
        // reduction runs in chunks of ci_block input channels, so a chunk's weights stay in
        // cache across many pixel tiles instead of streaming from L2 or L3 once per tile.
        //  - threads split channel blocks (co_outer; small images, large weights): one block's
        //    accumulators for the whole image; the chunk's weights (ci_block * oc_block * 4
        //    bytes) stay in L1 across all tiles.
        //  - threads split rows (pixel_outer; images whose weights and activations together
        //    overflow L2, e.g. Xception's 728->728 at 37x37: 2.1 MB of weights, 4 MB of input):
        //    a tile row's accumulators (tile_y rows) for all channels, each chunk sweeping the
        //    channel blocks, each block the row's tiles: a block's chunk of weights stays in L1
        //    across the row's tiles, and the row's chunk of input (out_width * tile_y *
        //    ci_block * 4 bytes) in L1 across the blocks. On that layer (2 threads, ci_block 104)
        //    7.3 and 7.1 ms against 8.3 and 8.1 unchunked, in two interleaved network runs.
        const bool blocks_chunked =
            ci_chunks && split == ParallelSplit::Blocks && loop_order == LoopOrder::CoOuter;
        const bool rows_chunked =
            ci_chunks && split == ParallelSplit::Rows && loop_order == LoopOrder::PixelOuter;
        if (rows_chunked || blocks_chunked) {
            // rfactor splits the sum into per-chunk partial sums: a register tile sums one
            // chunk in registers, as the unchunked schedule does, then adds it to the
            // accumulators, chunk after chunk. (Accumulating straight into the buffer made
            // every reduction step load and store it: 20 % slower than no chunks.)
            Var cxo("cxo"), cxi("cxi"), cyo("cyo"), cyi("cyi"), cco("cco"), cci("cci"),
                chunk("chunk");
            RVar rxo("rxo"), rxi("rxi");
            conv.update().split(r.x, rxo, rxi, ci_block);
            Func partial = conv.update().rfactor(rxo, chunk);
            conv.compute_at(output, blocks_chunked ? blocks_level : rows_level).vectorize(c, vec);
            conv.update()
                .split(c, cco, cci, ob, TailStrategy::GuardWithIf)
                .split(x, cxo, cxi, tx, TailStrategy::GuardWithIf)
                .split(y, cyo, cyi, ty, TailStrategy::GuardWithIf)
                .reorder(cci, cxi, cyi, cxo, cyo, n, cco, rxo)
                .vectorize(cci, vec)
                .unroll(cci)
                .unroll(cxi)
                .unroll(cyi);
            const std::vector<Var> pv = partial.args();  // c, x, y, n, chunk
            partial.compute_at(conv, cxo).vectorize(pv[0], vec).unroll(pv[0]).unroll(pv[1]).unroll(
                pv[2]);
            Stage partial_update = partial.update();
            partial_update.reorder(pv[0], pv[1], pv[2], rxi, pv[3], pv[4])
                .vectorize(pv[0], vec)
                .unroll(pv[0])
                .unroll(pv[1])
                .unroll(pv[2]);
            if (ci_unroll > 1 && int(ci_block) % int(ci_unroll) == 0) {
                RVar rxii("rxii"), rxiu("rxiu");
                partial_update.split(rxi, rxii, rxiu, ci_unroll).unroll(rxiu);
            }
            return;
        }
        if (needs_boundary && stage_input) {
            // Per task (rows split), or once (channel blocks split: small images).
            if (split == ParallelSplit::Blocks)
                in.compute_root();
            else
                in.compute_at(output, rows_level);
            const Var c_in = in.args()[0], x_in = in.args()[1];
            if (cib >= vec)
                in.vectorize(c_in, vec, TailStrategy::GuardWithIf);
            else
                in.unroll(c_in, cib, TailStrategy::GuardWithIf)
                    .vectorize(x_in, vec, TailStrategy::GuardWithIf);
        }
        conv.compute_at(output, loop_order == LoopOrder::CoOuter ? xo : co)
            .vectorize(c, vec)
            .unroll(c)
            .unroll(x)
            .unroll(y);
        conv.update().reorder(c, x, y, r.x, r.y, r.z, n).vectorize(c, vec).unroll(c).unroll(x).unroll(
            y);
        if (ci_unroll > 1 && cib % int(ci_unroll) == 0) {
            RVar rxo("rxo"), rxi("rxi");
            conv.update().split(r.x, rxo, rxi, ci_unroll).unroll(rxi);
        }
    }

private:
    Var c{"c"}, x{"x"}, y{"y"}, n{"n"}, b{"b"};
    Func conv{"conv"};

    // tile_x when unset. The last tile of a row is shifted inwards and recomputes its overlap
    // (6-wide tiles compute 12 columns of a 7-wide image, 18 of 14), so the width is chosen for
    // the least estimated work, tiles * (tile_x + 1): the +1 stands for each tile's fixed cost
    // (epilogue, loop setup, lower reuse of the weight vectors), which favours wide tiles. The
    // accumulator budget is 28 of the 32 zmm registers on AVX-512 (the <= 4 weight vectors and
    // a broadcast take the rest; at 4 x 7 LLVM spills one accumulator per reduction step, which
    // measured cheaper than the waste of 6-wide tiles on 56, 28, 14 and 7 columns), 12 of the 16
    // ymm on AVX2. At least 8 accumulators hide the 4-cycle FMA latency on two FMA ports.
    // Exception, measured: zero-padded convs with fewer than 4 vectors keep 24 (2 x 14 tiles on
    // MobileNetV2's 112-wide first conv lost Halide's loop partitioning, so every tap kept its
    // padding select, and ran 1.5x slower than 2 x 12).
    int default_tile_x(int vectors, int ty) const {
        int budget = accumulator_registers(get_target()) >= 24 ? 28 : 12;
        if (budget == 28 && vectors < 4 && needs_zero_padding()) budget = 24;
        const int w = out_width;
        const int max_t = std::max(1, std::min(w, budget / (vectors * ty)));
        const int min_t = std::min(max_t, (8 + vectors * ty - 1) / (vectors * ty));
        int best = max_t, best_cost = (w + max_t - 1) / max_t * (max_t + 1);
        for (int t = max_t - 1; t >= min_t; --t) {
            const int cost = (w + t - 1) / t * (t + 1);
            if (cost < best_cost) {
                best = t;
                best_cost = cost;
            }
        }
        return best;
    }

    // True when some output pixel's window reaches outside the stored input.
    bool needs_zero_padding() const {
        const int reach_h = (out_height - 1) * stride_h + (kernel_h - 1) * dilation_h - pad_top;
        const int reach_w = (out_width - 1) * stride_w + (kernel_w - 1) * dilation_w - pad_left;
        return pad_top > 0 || pad_left > 0 || reach_h >= in_height || reach_w >= in_width;
    }
};

}  // namespace cardinal::halide_gen

HALIDE_REGISTER_GENERATOR(cardinal::halide_gen::Conv2DGenerator, cardinal_conv2d)
