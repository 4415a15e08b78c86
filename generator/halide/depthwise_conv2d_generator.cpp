// cardinal_depthwise_conv2d: depthwise convolution (groups == channels, one output channel per
// input channel) with the fused epilogue output = act(conv + bias [+ residual]).
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
//                  stride; 0: up to 4 vectors)
//   tile_x         output columns per register tile (0: fill the accumulator budget)
//   rows_per_task  output rows per parallel task
#include <algorithm>

#include "halide/common.h"

namespace cardinal::halide_gen {

using namespace Halide;

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
    // Schedule knobs
    GeneratorParam<int> vector_width{"vector_width", 0};
    GeneratorParam<int> c_block{"c_block", 0};
    GeneratorParam<int> tile_x{"tile_x", 0};
    GeneratorParam<int> rows_per_task{"rows_per_task", 1};

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
        Func in = needs_boundary ? BoundaryConditions::constant_exterior(
                                       input, 0.0f,
                                       {{Expr(), Expr()},
                                        {0, int(in_width)},
                                        {0, int(in_height)},
                                        {Expr(), Expr()}})
                                 : Func(input);

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
        int cb = c_block;
        if (cb <= 0) {
            cb = vec;
            for (int v = 4; v >= 1; --v)
                if (channel_stride % (v * vec) == 0) {
                    cb = v * vec;
                    break;
                }
        }
        if (cb % vec || channel_stride % cb)
            throw std::invalid_argument("c_block must be a multiple of the vector width and "
                                        "divide the channel stride");
        const int accumulators = accumulator_registers(get_target());
        int tx = tile_x > 0 ? int(tile_x) : std::max(1, accumulators / (cb / vec));
        tx = std::clamp(tx, 1, int(out_width));

        Var co("co"), ci("ci"), xo("xo"), xi("xi"), task("task"), to("to"), ti("ti");
        output.split(c, co, ci, cb)
            .split(x, xo, xi, tx, TailStrategy::ShiftInwards)
            .reorder(ci, xi, co, xo, y, n)
            .vectorize(ci, vec)
            .unroll(ci)
            .unroll(xi)
            .fuse(y, n, task);
        const int per_task = std::max(1, int(rows_per_task));
        if (per_task > 1)
            output.split(task, to, ti, per_task, TailStrategy::GuardWithIf).parallel(to);
        else
            output.parallel(task);
        conv.compute_at(output, co).vectorize(c, vec).unroll(c).unroll(x);
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
