// cardinal_depthwise_conv2d: depthwise convolution (groups == channels, one output channel per
// input channel) with the fused epilogue output = act(conv + bias [+ residual]), and optionally
// a ReLU applied to the input as it is loaded (input_activation=relu: Xception's ReLU before
// each separable conv, whose only reader is the depthwise conv, then costs one max per loaded
// vector instead of a pass over the tensor; zero padding stays zero).
//
// Algorithm: NHWC lets the channel dimension be the vector: each output vector is a sum over the
// kernel taps of an input vector times a weight vector, with no broadcasts and no reduction
// across lanes. Weights are packed at generation time as weights[ky][kx][c] (Halide dims:
// c, kx, ky), zero in padded channels. The layer does ~2*kh*kw flops per loaded input value, so
// it is memory-bound: the schedule's job is to keep the input rows it reuses in L1/L2.
//
// Schedule knobs:
//   vector_width   lanes per vector (0: natural width)
//   c_block        channels per register tile (multiple of vector_width dividing the channel
//                  stride; 0: one vector when there are more than 8 vectors of channels, whose
//                  weights then stay in registers; else up to 4 vectors)
//   tile_x         output columns per register tile (0: for one vector, the widest that fits
//                  the registers with its weights and one kernel row of inputs, wasting the least
//                  work on the image width, 10 for 3x3 stride 1; for wider blocks, 24
//                  accumulators)
//   rows_per_task  output rows per parallel task (0: depthwise_default_rows_per_task() in
//                  conv_blocking.h, 4 to 8 balanced over two threads). Each task
//                  reads kh - stride input rows more than it writes and takes them from
//                  whichever core wrote them: in MobileNetV2 (2 threads, the network's own
//                  input path) tasks of 8 rows ran the depthwise convs in 1.03 ms against 1.35
//                  ms with tasks of 1 row.
//   order          "block_outer": tasks split rows, and a row runs one channel block at a time
//                  across x (its kh input rows stay in L1 across x tiles); "x_outer": per x
//                  tile, all channel blocks (each pixel's channels read in one go);
//                  "channels_parallel": tasks split channel blocks, each sweeping the whole
//                  image; "auto" (default): block_outer with many channels, x_outer with few
//                  (see the schedule).
#include <algorithm>

#include "halide/common.h"
#include "halide/conv_blocking.h"

namespace cardinal::halide_gen {

using namespace Halide;

enum class DepthwiseOrder { Auto, ChannelsParallel, BlockOuter, XOuter };

class DepthwiseConv2DGenerator : public Generator<DepthwiseConv2DGenerator> {
public:
    GeneratorParam<int> batch{"batch", 1};
    GeneratorParam<int> channels{"channels", 16};
    GeneratorParam<int> channel_stride{"channel_stride", 16};
    GeneratorParam<int> in_height{"in_height", 8};
    GeneratorParam<int> in_width{"in_width", 8};
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
    GeneratorParam<Activation> activation{"activation", Activation::None, activation_names()};
    GeneratorParam<float> clip_min{"clip_min", 0.0f};
    GeneratorParam<float> clip_max{"clip_max", 6.0f};
    GeneratorParam<bool> residual{"residual", false};
    GeneratorParam<Activation> input_activation{"input_activation", Activation::None,
                                                activation_names()};
    // Schedule knobs
    GeneratorParam<int> vector_width{"vector_width", 0};
    GeneratorParam<int> c_block{"c_block", 0};
    GeneratorParam<int> tile_x{"tile_x", 0};
    GeneratorParam<int> rows_per_task{"rows_per_task", 0};
    GeneratorParam<DepthwiseOrder> order{"order",
                                         DepthwiseOrder::Auto,
                                         {{"auto", DepthwiseOrder::Auto},
                                          {"channels_parallel", DepthwiseOrder::ChannelsParallel},
                                          {"block_outer", DepthwiseOrder::BlockOuter},
                                          {"x_outer", DepthwiseOrder::XOuter}}};

    Input<Buffer<float>> input{"input", 4};      // (c, x, y, n)
    Input<Buffer<float>> weights{"weights", 3};  // (c, kx, ky)
    Input<Buffer<float>> bias{"bias", 1};        // (c)
    GeneratorInput<Buffer<float>>* residual_input = nullptr;
    Output<Buffer<float>> output{"output", 4};

    void configure() {
        if (residual) residual_input = add_input<Buffer<float>>("residual", 4);
    }

    void generate() {
        Var c("c"), x("x"), y("y"), n("n");
        const int reach_h = (out_height - 1) * stride_h + (kernel_h - 1) * dilation_h - pad_top;
        const int reach_w = (out_width - 1) * stride_w + (kernel_w - 1) * dilation_w - pad_left;
        const bool needs_boundary =
            pad_top > 0 || pad_left > 0 || reach_h >= in_height || reach_w >= in_width;
        if (input_activation == Activation::Clip)
            throw std::invalid_argument("input_activation: only none and relu");
        Func source("source");
        source(c, x, y, n) = input_activation == Activation::Relu ? max(input(c, x, y, n), 0.0f)
                                                                  : input(c, x, y, n);
        Func in = needs_boundary ? BoundaryConditions::constant_exterior(
                                       source, 0.0f,
                                       {{Expr(), Expr()},
                                        {0, int(in_width)},
                                        {0, int(in_height)},
                                        {Expr(), Expr()}})
                                 : source;

        Func conv("conv");
        RDom r(0, int(kernel_w), 0, int(kernel_h), "r");
        conv(c, x, y, n) = bias(c);
        conv(c, x, y, n) += weights(c, r.x, r.y) *
                            in(c, x * int(stride_w) + r.x * int(dilation_w) - int(pad_left),
                               y * int(stride_h) + r.y * int(dilation_h) - int(pad_top), n);
        Expr value = conv(c, x, y, n);
        if (residual_input) value += (*residual_input)(c, x, y, n);
        output(c, x, y, n) = apply_activation(value, activation, clip_min, clip_max);

        set_nhwc_layout(input, channel_stride, in_width, in_height, batch);
        set_nhwc_layout(output, channel_stride, out_width, out_height, batch);
        if (residual_input)
            set_nhwc_layout(*residual_input, channel_stride, out_width, out_height, batch);
        set_dense_layout(weights, {int(channel_stride), int(kernel_w), int(kernel_h)});
        set_dense_layout(bias, {int(channel_stride)});

        // Schedule
        if (auto_schedule) return;  // an autoscheduler schedules it (see common.h)
        const int vec = vector_width > 0 ? int(vector_width) : natural_vector_size<float>();
        // Two regimes, measured on Xception and MobileNetV2:
        // - many channels (> 8 vectors; small images): one vector of channels per register tile
        //   (block_outer). Its kh*kw weight vectors stay in registers and within one kernel row
        //   each of the (tile_x-1)*stride + kw input vectors is loaded once and reused by up to
        //   kw taps: kh*kw + tile_x + (tile_x-1)*stride_w + kw registers (31 of 32 zmm for a
        //   3x3 stride-1 conv with tile_x = 10), about 0.4 loads per FMA instead of 2; 2-3x
        //   faster at 14x14 and 19x19.
        // - few channels (large images, memory-bound): up to 4 vectors per tile, all blocks of
        //   an x tile together (x_outer), so each pixel's channels (<= 512 B) are read in one
        //   go; the weights stay FMA memory operands and the tile fills 24 accumulators. A
        //   block-at-a-time sweep would re-read every input row from L2 once per block.
        const bool few_channels = int(channel_stride) <= 8 * vec;
        int cb = c_block;
        if (cb <= 0) {
            cb = vec;
            if (few_channels)
                for (int v = 4; v >= 1; --v)
                    if (channel_stride % (v * vec) == 0) {
                        cb = v * vec;
                        break;
                    }
        }
        if (cb % vec || channel_stride % cb)
            throw std::invalid_argument("c_block must be a multiple of the vector width and "
                                        "divide the channel stride");
        const int regs = accumulator_registers(get_target()) >= 24 ? 31 : 15;
        int tx = tile_x;
        if (tx <= 0 && cb > vec) {
            tx = std::max(1, accumulator_registers(get_target()) / (cb / vec));
        } else if (tx <= 0) {
            const int taps = int(kernel_h) * int(kernel_w);
            const int w = out_width;
            int best_cost = 0;
            tx = 1;
            for (int t = 1; t <= w; ++t) {
                const int inputs = (t - 1) * int(stride_w) + (int(kernel_w) - 1) * dilation_w + 1;
                if (t > 1 && taps + t + inputs > regs) break;
                const int cost = (w + t - 1) / t * (t + 1);  // +1: each tile's fixed cost
                if (best_cost == 0 || cost <= best_cost) {
                    best_cost = cost;
                    tx = t;
                }
            }
        }
        tx = std::clamp(tx, 1, int(out_width));

        DepthwiseOrder ord = order;
        if (ord == DepthwiseOrder::Auto)
            ord = few_channels ? DepthwiseOrder::XOuter : DepthwiseOrder::BlockOuter;
        Var co("co"), ci("ci"), xo("xo"), xi("xi"), task("task"), to("to"), ti("ti");
        output.split(c, co, ci, cb)
            .split(x, xo, xi, tx, TailStrategy::ShiftInwards)
            .vectorize(ci, vec)
            .unroll(ci)
            .unroll(xi);
        if (ord == DepthwiseOrder::ChannelsParallel) {
            // Each task sweeps the whole image for one block of channels: the kh input rows it
            // reads stay in L1 across consecutive output rows, so the input comes from L2 or
            // memory once.
            output.reorder(ci, xi, xo, y, n, co).parallel(co);
        } else {
            // Tasks split rows; within a row, one block of channels at a time (its input rows,
            // kh * width * cb floats, stay in L1 across the x tiles) or, for x_outer, all blocks
            // per x tile.
            if (ord == DepthwiseOrder::BlockOuter)
                output.reorder(ci, xi, xo, co, y, n);
            else
                output.reorder(ci, xi, co, xo, y, n);
            output.fuse(y, n, task);
            const int per_task =
                rows_per_task > 0 ? int(rows_per_task)
                                  : depthwise_default_rows_per_task(int(out_height) * int(batch));
            if (per_task > 1)
                output.split(task, to, ti, per_task, TailStrategy::GuardWithIf).parallel(to);
            else
                output.parallel(task);
        }
        conv.compute_at(output, ord == DepthwiseOrder::XOuter ? co : xo)
            .vectorize(c, vec)
            .unroll(c)
            .unroll(x);
        conv.update()
            .reorder(c, x, r.x, r.y, y, n)
            .vectorize(c, vec)
            .unroll(c)
            .unroll(x)
            .unroll(r.x)
            .unroll(r.y);
    }
};

}  // namespace cardinal::halide_gen

HALIDE_REGISTER_GENERATOR(cardinal::halide_gen::DepthwiseConv2DGenerator,
                          cardinal_depthwise_conv2d)
