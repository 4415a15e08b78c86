// cardinal_dense: fully connected layer y = act(W x + b) on (features, n) buffers.
//
// At batch 1 this is a matrix-vector product: every weight is used once, so it is bound by
// memory bandwidth. Weights are packed at generation time as weights[i][o] (Halide dims: o, i),
// zero in padded rows and columns, so the kernel streams them contiguously: each input value is
// broadcast and multiplied by a vector of consecutive outputs' weights.
//
// Schedule knobs: vector_width (0: natural), o_block (outputs per register tile: a multiple of
// vector_width dividing out_stride; 0: up to 4 vectors), parallel_blocks (split output blocks
// across threads).
#include "halide/common.h"

namespace cardinal::halide_gen {

using namespace Halide;

class DenseGenerator : public Generator<DenseGenerator> {
public:
    GeneratorParam<int> batch{"batch", 1};
    GeneratorParam<int> in_stride{"in_stride", 16};   // stored input features (with padding)
    GeneratorParam<int> out_stride{"out_stride", 16};  // stored outputs (with padding)
    GeneratorParam<Activation> activation{"activation", Activation::None, activation_names()};
    GeneratorParam<float> clip_min{"clip_min", 0.0f};
    GeneratorParam<float> clip_max{"clip_max", 6.0f};
    // Schedule knobs
    GeneratorParam<int> vector_width{"vector_width", 0};
    GeneratorParam<int> o_block{"o_block", 0};
    GeneratorParam<bool> parallel_blocks{"parallel_blocks", true};

    Input<Buffer<float>> input{"input", 2};      // (i, n)
    Input<Buffer<float>> weights{"weights", 2};  // (o, i)
    Input<Buffer<float>> bias{"bias", 1};        // (o)
    Output<Buffer<float>> output{"output", 2};   // (o, n)

    void generate() {
        Var o("o"), n("n");
        RDom r(0, int(in_stride), "r");
        Func acc("acc");
        acc(o, n) = bias(o);
        acc(o, n) += weights(o, r) * input(r, n);
        output(o, n) = apply_activation(acc(o, n), activation, clip_min, clip_max);

        set_dense_layout(input, {int(in_stride), int(batch)});
        set_dense_layout(weights, {int(out_stride), int(in_stride)});
        set_dense_layout(bias, {int(out_stride)});
        set_dense_layout(output, {int(out_stride), int(batch)});

        if (auto_schedule) return;  // an autoscheduler schedules it (see common.h)
        const int vec = vector_width > 0 ? int(vector_width) : natural_vector_size<float>();
        int ob = o_block > 0 ? int(o_block) : vec;
        if (o_block <= 0)
            for (int v = 4; v >= 1; --v)
                if (out_stride % (v * vec) == 0) {
                    ob = v * vec;
                    break;
                }
        Var oo("oo"), oi("oi");
        output.split(o, oo, oi, ob).reorder(oi, n, oo).vectorize(oi, vec).unroll(oi);
        if (parallel_blocks) output.parallel(oo);
        acc.compute_at(output, n).vectorize(o, vec).unroll(o);
        acc.update().reorder(o, r, n).vectorize(o, vec).unroll(o);
    }
};

}  // namespace cardinal::halide_gen

HALIDE_REGISTER_GENERATOR(cardinal::halide_gen::DenseGenerator, cardinal_dense)
