// cardinal_dense: fully connected layer y = act(W x + b) on (features, n) buffers.
//
// At batch 1 this is a matrix-vector product: every weight is used once, so it is bound by
// memory bandwidth, and the weights (5-8 MB in the zoo's classifiers) come from DRAM. They are
// packed at generation time in blocks of 16 outputs, weights[o / 16][i][o % 16] (Halide dims:
// lane, i, block), zero in padded rows and columns: a register tile of blocks streams each
// block's weights contiguously, 64 bytes per input feature. Each input value is broadcast and
// multiplied by a vector of 16 consecutive outputs' weights. (Packed [i][o], a tile read 192
// bytes then jumped a 4 KB row: nearly every read touched a new page, which the hardware
// prefetchers do not cross, and MobileNetV2's 1280 -> 1000 layer moved 10 GB/s.)
//
// Schedule knobs: vector_width (0: natural), o_block (outputs per register tile: a multiple of
// 16 dividing out_stride; 0: up to 4 blocks), parallel_blocks (split output tiles across
// threads).
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
    Input<Buffer<float>> weights{"weights", 3};  // (lane, i, block)
    Input<Buffer<float>> bias{"bias", 1};        // (o)
    Output<Buffer<float>> output{"output", 2};   // (o, n)

    void generate() {
        if (int(out_stride) % kWeightBlock)
            throw std::invalid_argument("cardinal_dense: out_stride " +
                                        std::to_string(int(out_stride)) + " is not a multiple of " +
                                        std::to_string(kWeightBlock));
        const int blocks = int(out_stride) / kWeightBlock;
        // acc(l, b, n): output 16b + l.
        Var o("o"), n("n"), l("l"), b("b");
        RDom r(0, int(in_stride), "r");
        Func acc("acc");
        acc(l, b, n) = bias(b * kWeightBlock + l);
        acc(l, b, n) += weights(l, r, b) * input(r, n);
        output(o, n) = apply_activation(acc(o % kWeightBlock, o / kWeightBlock, n), activation,
                                        clip_min, clip_max);

        set_dense_layout(input, {int(in_stride), int(batch)});
        set_dense_layout(weights, {kWeightBlock, int(in_stride), blocks});
        set_dense_layout(bias, {int(out_stride)});
        set_dense_layout(output, {int(out_stride), int(batch)});

        if (auto_schedule) return;  // an autoscheduler schedules it (see common.h)
        const int vec = vector_width > 0 ? int(vector_width) : natural_vector_size<float>();
        int ob = o_block > 0 ? int(o_block) : kWeightBlock;
        if (o_block <= 0)
            for (int v = 4; v >= 1; --v)
                if (blocks % v == 0) {
                    ob = v * kWeightBlock;
                    break;
                }
        if (ob % kWeightBlock || int(out_stride) % ob || kWeightBlock % vec)
            throw std::invalid_argument("cardinal_dense: o_block " + std::to_string(ob) +
                                        " must be a multiple of 16 dividing out_stride " +
                                        std::to_string(int(out_stride)) + " (vector width " +
                                        std::to_string(vec) + ")");
        Var oo("oo"), oi("oi");
        output.split(o, oo, oi, ob).reorder(oi, n, oo).vectorize(oi, vec).unroll(oi);
        if (parallel_blocks) output.parallel(oo);
        // The tile's blocks: ob/16 accumulators of 16 lanes (16/vec registers each), one
        // contiguous weight stream per block.
        acc.compute_at(output, n).bound(l, 0, kWeightBlock).vectorize(l, vec).unroll(l).unroll(b);
        acc.update().reorder(l, b, r, n).vectorize(l, vec).unroll(l).unroll(b);
    }
};

}  // namespace cardinal::halide_gen

HALIDE_REGISTER_GENERATOR(cardinal::halide_gen::DenseGenerator, cardinal_dense)
