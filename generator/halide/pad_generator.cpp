// cardinal_pad: constant padding of the spatial dimensions of an NHWC tensor.
#include "halide/common.h"

namespace cardinal::halide_gen {

using namespace Halide;

class PadGenerator : public Generator<PadGenerator> {
public:
    GeneratorParam<int> batch{"batch", 1};
    GeneratorParam<int> channels{"channels", 16};
    GeneratorParam<int> channel_stride{"channel_stride", 16};
    GeneratorParam<int> in_height{"in_height", 8};
    GeneratorParam<int> in_width{"in_width", 8};
    GeneratorParam<int> pad_top{"pad_top", 0};
    GeneratorParam<int> pad_left{"pad_left", 0};
    GeneratorParam<int> pad_bottom{"pad_bottom", 0};
    GeneratorParam<int> pad_right{"pad_right", 0};
    GeneratorParam<float> value{"value", 0.0f};
    GeneratorParam<int> vector_width{"vector_width", 0};  // schedule knob (0: natural)

    Input<Buffer<float>> input{"input", 4};
    Output<Buffer<float>> output{"output", 4};

    void generate() {
        Var c("c"), x("x"), y("y"), n("n");
        Func in = BoundaryConditions::constant_exterior(
            input, float(value),
            {{Expr(), Expr()}, {0, int(in_width)}, {0, int(in_height)}, {Expr(), Expr()}});
        // Padded channels stay zero whatever the pad value: the layout's invariant.
        output(c, x, y, n) = select(c < int(channels), in(c, x - int(pad_left), y - int(pad_top), n), 0.0f);
        set_nhwc_layout(input, channel_stride, in_width, in_height, batch);
        set_nhwc_layout(output, channel_stride, int(in_width) + pad_left + pad_right,
                        int(in_height) + pad_top + pad_bottom, batch);
        if (auto_schedule) return;  // an autoscheduler schedules it (see common.h)
        const int vec = vector_width > 0 ? int(vector_width) : natural_vector_size<float>();
        Var task("task");
        output.vectorize(c, vec).fuse(y, n, task).parallel(task);
    }
};

}  // namespace cardinal::halide_gen

HALIDE_REGISTER_GENERATOR(cardinal::halide_gen::PadGenerator, cardinal_pad)
