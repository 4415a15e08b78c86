// cardinal_softmax: numerically stable softmax over the first `channels` entries of each row of a
// (c, n) buffer whose rows are stored padded to `channel_stride`; padded entries are set to 0.
#include "halide/common.h"

namespace cardinal::halide_gen {

using namespace Halide;

class SoftmaxGenerator : public Generator<SoftmaxGenerator> {
public:
    GeneratorParam<int> batch{"batch", 1};
    GeneratorParam<int> channels{"channels", 10};
    GeneratorParam<int> channel_stride{"channel_stride", 16};

    Input<Buffer<float>> input{"input", 2};
    Output<Buffer<float>> output{"output", 2};

    void generate() {
        Var c("c"), n("n");
        RDom r(0, int(channels), "r");
        Func row_max("row_max"), row_sum("row_sum"), e("e");
        row_max(n) = maximum(input(r, n));
        e(c, n) = exp(input(c, n) - row_max(n));
        row_sum(n) = sum(e(r, n));
        output(c, n) = select(c < int(channels), e(c, n) / row_sum(n), 0.0f);

        set_dense_layout(input, {int(channel_stride), int(batch)});
        set_dense_layout(output, {int(channel_stride), int(batch)});
        if (auto_schedule) return;  // an autoscheduler schedules it (see common.h)
        row_max.compute_at(output, n);
        row_sum.compute_at(output, n);
        e.compute_at(output, n);
    }
};

}  // namespace cardinal::halide_gen

HALIDE_REGISTER_GENERATOR(cardinal::halide_gen::SoftmaxGenerator, cardinal_softmax)
