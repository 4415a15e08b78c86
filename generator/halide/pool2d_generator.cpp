// cardinal_pool2d: max or average pooling over NHWC, vectorized over channels.
//
// Padding: for max pooling padded taps are -infinity (they never win); for average pooling they
// are zeros and the divisor counts the taps inside the input (count_include_pad=false) or inside
// the padded input (true). Taps that ceil_mode adds past the padded input never count.
//
// Schedule knobs: vector_width (0: natural), c_block (channels per inner tile, 0: up to 4
// vectors), rows_per_task (output rows per parallel task).
#include <algorithm>
#include <limits>

#include "halide/common.h"

namespace cardinal::halide_gen {

using namespace Halide;

enum class PoolKind { Max, Average };

class Pool2DGenerator : public Generator<Pool2DGenerator> {
public:
    GeneratorParam<PoolKind> kind{
        "kind", PoolKind::Max, {{"max", PoolKind::Max}, {"average", PoolKind::Average}}};
    GeneratorParam<int> batch{"batch", 1};
    GeneratorParam<int> channel_stride{"channel_stride", 16};
    GeneratorParam<int> in_height{"in_height", 8};
    GeneratorParam<int> in_width{"in_width", 8};
    GeneratorParam<int> out_height{"out_height", 4};
    GeneratorParam<int> out_width{"out_width", 4};
    GeneratorParam<int> kernel_h{"kernel_h", 2};
    GeneratorParam<int> kernel_w{"kernel_w", 2};
    GeneratorParam<int> stride_h{"stride_h", 2};
    GeneratorParam<int> stride_w{"stride_w", 2};
    GeneratorParam<int> pad_top{"pad_top", 0};
    GeneratorParam<int> pad_left{"pad_left", 0};
    GeneratorParam<int> pad_bottom{"pad_bottom", 0};
    GeneratorParam<int> pad_right{"pad_right", 0};
    GeneratorParam<bool> count_include_pad{"count_include_pad", false};
    // Schedule knobs
    GeneratorParam<int> vector_width{"vector_width", 0};
    GeneratorParam<int> c_block{"c_block", 0};
    GeneratorParam<int> rows_per_task{"rows_per_task", 1};

    Input<Buffer<float>> input{"input", 4};
    Output<Buffer<float>> output{"output", 4};

    void generate() {
        Var c("c"), x("x"), y("y"), n("n");
        const bool is_max = kind == PoolKind::Max;
        const float outside = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
        Func in = BoundaryConditions::constant_exterior(
            input, outside,
            {{Expr(), Expr()}, {0, int(in_width)}, {0, int(in_height)}, {Expr(), Expr()}});
        RDom r(0, int(kernel_w), 0, int(kernel_h), "r");
        const Expr x0 = x * int(stride_w) - int(pad_left);
        const Expr y0 = y * int(stride_h) - int(pad_top);
        const Expr tap = in(c, x0 + r.x, y0 + r.y, n);
        if (is_max) {
            output(c, x, y, n) = maximum(tap);
        } else {
            // Window extent counted along one axis, as PyTorch and ONNX define it.
            auto counted = [&](Expr start, int k, int extent, int pad_after) {
                Expr end = min(start + k, extent + pad_after);
                if (count_include_pad) return end - start;
                return min(end, extent) - max(start, 0);
            };
            const Expr count = counted(x0, kernel_w, in_width, pad_right) *
                               counted(y0, kernel_h, in_height, pad_bottom);
            output(c, x, y, n) = sum(tap) / cast<float>(count);
        }

        set_nhwc_layout(input, channel_stride, in_width, in_height, batch);
        set_nhwc_layout(output, channel_stride, out_width, out_height, batch);

        if (auto_schedule) return;  // an autoscheduler schedules it (see common.h)
        const int vec = vector_width > 0 ? int(vector_width) : natural_vector_size<float>();
        int cb = c_block > 0 ? int(c_block) : vec;
        if (c_block <= 0)
            for (int v = 4; v >= 1; --v)
                if (channel_stride % (v * vec) == 0) {
                    cb = v * vec;
                    break;
                }
        Var co("co"), ci("ci"), task("task"), to("to"), ti("ti");
        output.split(c, co, ci, cb)
            .reorder(ci, co, x, y, n)
            .vectorize(ci, vec)
            .unroll(ci)
            .fuse(y, n, task);
        if (rows_per_task > 1)
            output.split(task, to, ti, rows_per_task, TailStrategy::GuardWithIf).parallel(to);
        else
            output.parallel(task);
    }
};

}  // namespace cardinal::halide_gen

HALIDE_REGISTER_GENERATOR(cardinal::halide_gen::Pool2DGenerator, cardinal_pool2d)
