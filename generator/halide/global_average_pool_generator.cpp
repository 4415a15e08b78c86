// cardinal_global_average_pool: NHWC (c, x, y, n) -> (c, 1, 1, n) mean over x and y, vectorized
// over channels. Reads the input once: memory-bound and small.
#include "halide/common.h"

namespace cardinal::halide_gen {

using namespace Halide;

class GlobalAveragePoolGenerator : public Generator<GlobalAveragePoolGenerator> {
public:
    GeneratorParam<int> batch{"batch", 1};
    GeneratorParam<int> channel_stride{"channel_stride", 16};
    GeneratorParam<int> in_height{"in_height", 7};
    GeneratorParam<int> in_width{"in_width", 7};
    GeneratorParam<int> vector_width{"vector_width", 0};  // schedule knob (0: natural)

    Input<Buffer<float>> input{"input", 4};
    Output<Buffer<float>> output{"output", 4};

    void generate() {
        Var c("c"), x("x"), y("y"), n("n");
        RDom r(0, int(in_width), 0, int(in_height), "r");
        Func total("total");
        total(c, n) = 0.0f;
        total(c, n) += input(c, r.x, r.y, n);
        output(c, x, y, n) = total(c, n) * (1.0f / float(int(in_width) * int(in_height)));

        set_nhwc_layout(input, channel_stride, in_width, in_height, batch);
        set_nhwc_layout(output, channel_stride, 1, 1, batch);

        if (auto_schedule) return;  // an autoscheduler schedules it (see common.h)
        const int vec = vector_width > 0 ? int(vector_width) : natural_vector_size<float>();
        output.vectorize(c, vec);
        total.compute_at(output, n).vectorize(c, vec);
        total.update().reorder(c, r.x, r.y).vectorize(c, vec);
    }
};

}  // namespace cardinal::halide_gen

HALIDE_REGISTER_GENERATOR(cardinal::halide_gen::GlobalAveragePoolGenerator,
                          cardinal_global_average_pool)
