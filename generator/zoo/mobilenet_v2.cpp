// MobileNetV2 exactly as torchvision 0.14 builds it (width_mult 1.0). Layer names are
// torchvision's module names (features.N..., classifier.1).
#include <string>

#include "ir/builder.h"

namespace cardinal::zoo_detail {

namespace {

// Conv2dNormActivation(kernel, stride, groups) with BatchNorm and ReLU6: `p`.0, `p`.1, `p`.2.
std::string conv_bn_relu6(GraphBuilder& b, const std::string& p, const std::string& x, int out,
                          int kernel, int stride, int groups = 1) {
    std::string y =
        b.conv(p + ".0", x, ConvSpec::square(out, kernel, stride, (kernel - 1) / 2, groups));
    y = b.batch_norm(p + ".1", y);
    return b.clip(p + ".2", y, 0.0f, 6.0f);
}

// InvertedResidual: optional 1x1 expansion, depthwise 3x3, linear 1x1 projection + BN. The
// Sequential's indices shift by one when there is no expansion (t == 1).
std::string inverted_residual(GraphBuilder& b, const std::string& p, const std::string& x, int out,
                              int stride, int expand_ratio) {
    const int in = static_cast<int>(b.channels(x));
    const int hidden = in * expand_ratio;
    const std::string c = p + ".conv.";
    int index = 0;
    std::string y = x;
    if (expand_ratio != 1) y = conv_bn_relu6(b, c + std::to_string(index++), y, hidden, 1, 1);
    y = conv_bn_relu6(b, c + std::to_string(index++), y, hidden, 3, stride, hidden);
    y = b.conv(c + std::to_string(index++), y, ConvSpec::square(out, 1));
    y = b.batch_norm(c + std::to_string(index++), y);
    if (stride == 1 && in == out) y = b.add(p + ".add", x, y);
    return y;
}

}  // namespace

Graph build_mobilenet_v2(int batch, int resolution, uint64_t seed) {
    GraphBuilder b("mobilenet_v2", Shape{batch, 3, resolution, resolution}, seed);

    struct Stage {
        int t, c, n, s;  // expand ratio, output channels, repeats, first stride
    };
    const Stage stages[] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                            {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};

    std::string x = conv_bn_relu6(b, "features.0", b.input(), 32, 3, 2);
    int feature = 1;
    for (const Stage& st : stages)
        for (int i = 0; i < st.n; ++i)
            x = inverted_residual(b, "features." + std::to_string(feature++), x, st.c,
                                  i == 0 ? st.s : 1, st.t);
    x = conv_bn_relu6(b, "features." + std::to_string(feature), x, 1280, 1, 1);

    // torchvision pools and flattens functionally in forward(); classifier.0 is the Dropout,
    // which inference omits.
    x = b.global_average_pool("avgpool", x);
    x = b.flatten("flatten", x);
    x = b.dense("classifier.1", x, 1000, true);
    return std::move(b).finish(x);
}

}  // namespace cardinal::zoo_detail
