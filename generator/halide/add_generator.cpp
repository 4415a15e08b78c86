// cardinal_add: elementwise y = act(a + b) over two equally laid out tensors, seen as flat arrays
// (a residual Add that could not be fused into the conv producing one of its operands).
#include "halide/common.h"

namespace cardinal::halide_gen {

using namespace Halide;

class AddGenerator : public Generator<AddGenerator> {
public:
    GeneratorParam<int> size{"size", 16};  // stored elements (with channel padding)
    GeneratorParam<Activation> activation{"activation", Activation::None, activation_names()};
    GeneratorParam<float> clip_min{"clip_min", 0.0f};
    GeneratorParam<float> clip_max{"clip_max", 6.0f};
    GeneratorParam<int> vector_width{"vector_width", 0};    // schedule knob (0: natural)
    GeneratorParam<int> chunk{"chunk", 16384};               // elements per parallel task

    Input<Buffer<float>> a{"a", 1};
    Input<Buffer<float>> b{"b", 1};
    Output<Buffer<float>> output{"output", 1};

    void generate() {
        Var i("i"), io("io"), ii("ii");
        output(i) = apply_activation(a(i) + b(i), activation, clip_min, clip_max);
        set_dense_layout(a, {int(size)});
        set_dense_layout(b, {int(size)});
        set_dense_layout(output, {int(size)});
        if (auto_schedule) return;  // an autoscheduler schedules it (see common.h)
        const int vec = vector_width > 0 ? int(vector_width) : natural_vector_size<float>();
        output.split(i, io, ii, std::max(int(chunk), vec), TailStrategy::GuardWithIf)
            .parallel(io)
            .vectorize(ii, vec, TailStrategy::GuardWithIf);
    }
};

}  // namespace cardinal::halide_gen

HALIDE_REGISTER_GENERATOR(cardinal::halide_gen::AddGenerator, cardinal_add)
