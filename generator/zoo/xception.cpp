// Xception as the Keras application builds it (keras.applications.Xception, include_top=True).
// Layer names are Keras's; its unnamed residual layers get the names Keras gives them in a fresh
// session (conv2d, conv2d_1, ..., batch_normalization, ..., add, add_1, ...).
#include <algorithm>
#include <string>

#include "ir/builder.h"

namespace cardinal::zoo_detail {

namespace {

constexpr float kKerasBnEpsilon = 1e-3f;  // Keras's BatchNormalization default

// TF 'same' padding along one axis: output = ceil(in / stride) and the odd leftover pad goes to
// the bottom/right, unlike PyTorch's symmetric padding.
void same_padding(int64_t in, int kernel, int stride, int& before, int& after) {
    const int64_t out = (in + stride - 1) / stride;
    const int64_t total = std::max<int64_t>((out - 1) * stride + kernel - in, 0);
    before = static_cast<int>(total / 2);
    after = static_cast<int>(total - total / 2);
}

Padding2D same_padding(const GraphBuilder& b, const std::string& x, int kernel, int stride) {
    Padding2D p;
    same_padding(b.shape(x)[2], kernel, stride, p.top, p.bottom);
    same_padding(b.shape(x)[3], kernel, stride, p.left, p.right);
    return p;
}

ConvSpec same_conv(const GraphBuilder& b, const std::string& x, int out_channels, int kernel,
                   int stride, int groups) {
    ConvSpec s = ConvSpec::square(out_channels, kernel, stride, 0, groups);
    s.pad = same_padding(b, x, kernel, stride);
    return s;
}

// SeparableConv2D(out, 3x3, padding='same', use_bias=False): a depthwise 3x3 (multiplier 1)
// then a pointwise 1x1, neither with bias and with nothing in between.
std::string sep_conv(GraphBuilder& b, const std::string& name, const std::string& x, int out) {
    const int cin = static_cast<int>(b.channels(x));
    std::string y = b.conv(name + "_dw", x, same_conv(b, x, cin, 3, 1, cin));
    return b.conv(name + "_pw", y, ConvSpec::square(out, 1));
}

std::string sep_conv_bn(GraphBuilder& b, const std::string& name, const std::string& x, int out) {
    return b.batch_norm(name + "_bn", sep_conv(b, name, x, out), kKerasBnEpsilon);
}

std::string max_pool_same(GraphBuilder& b, const std::string& name, const std::string& x) {
    PoolWindow w;
    w.kernel_h = w.kernel_w = 3;
    w.stride_h = w.stride_w = 2;
    w.pad = same_padding(b, x, 3, 2);  // padded taps never win, as in TF
    return b.max_pool(name, x, w);
}

// Keras's auto-generated names: "conv2d", "conv2d_1", ...
std::string keras_auto_name(const std::string& base, int& counter) {
    const int i = counter++;
    return i == 0 ? base : base + "_" + std::to_string(i);
}

}  // namespace

Graph build_xception(int batch, int resolution, uint64_t seed) {
    GraphBuilder b("xception", Shape{batch, 3, resolution, resolution}, seed);
    int conv_count = 0, bn_count = 0, add_count = 0;

    // Residual shortcut of a downsampling block: Conv2D(out, 1x1, strides=2, padding='same').
    auto shortcut = [&](const std::string& x, int out) {
        std::string r =
            b.conv(keras_auto_name("conv2d", conv_count), x, same_conv(b, x, out, 1, 2, 1));
        return b.batch_norm(keras_auto_name("batch_normalization", bn_count), r, kKerasBnEpsilon);
    };
    auto add = [&](const std::string& x, const std::string& y) {
        return b.add(keras_auto_name("add", add_count), x, y);
    };

    // Entry flow. The first two convs are 'valid'.
    std::string x = b.conv("block1_conv1", b.input(), ConvSpec::square(32, 3, 2));
    x = b.batch_norm("block1_conv1_bn", x, kKerasBnEpsilon);
    x = b.relu("block1_conv1_act", x);
    x = b.conv("block1_conv2", x, ConvSpec::square(64, 3));
    x = b.batch_norm("block1_conv2_bn", x, kKerasBnEpsilon);
    x = b.relu("block1_conv2_act", x);

    // block2 starts without a ReLU: its input has just been through block1_conv2_act.
    std::string residual = shortcut(x, 128);
    x = sep_conv_bn(b, "block2_sepconv1", x, 128);
    x = b.relu("block2_sepconv2_act", x);
    x = sep_conv_bn(b, "block2_sepconv2", x, 128);
    x = max_pool_same(b, "block2_pool", x);
    x = add(x, residual);

    // block3, block4: the ReLU comes first, so the shortcut taps the pre-activation sum.
    const int entry_channels[] = {256, 728};
    for (int i = 0; i < 2; ++i) {
        const std::string p = "block" + std::to_string(i + 3);
        residual = shortcut(x, entry_channels[i]);
        x = b.relu(p + "_sepconv1_act", x);
        x = sep_conv_bn(b, p + "_sepconv1", x, entry_channels[i]);
        x = b.relu(p + "_sepconv2_act", x);
        x = sep_conv_bn(b, p + "_sepconv2", x, entry_channels[i]);
        x = max_pool_same(b, p + "_pool", x);
        x = add(x, residual);
    }

    // Middle flow: 8 identity blocks of three (ReLU, SeparableConv 728, BN).
    for (int i = 0; i < 8; ++i) {
        const std::string p = "block" + std::to_string(i + 5);
        residual = x;
        for (int j = 1; j <= 3; ++j) {
            const std::string s = p + "_sepconv" + std::to_string(j);
            x = b.relu(s + "_act", x);
            x = sep_conv_bn(b, s, x, 728);
        }
        x = add(x, residual);
    }

    // Exit flow.
    residual = shortcut(x, 1024);
    x = b.relu("block13_sepconv1_act", x);
    x = sep_conv_bn(b, "block13_sepconv1", x, 728);
    x = b.relu("block13_sepconv2_act", x);
    x = sep_conv_bn(b, "block13_sepconv2", x, 1024);
    x = max_pool_same(b, "block13_pool", x);
    x = add(x, residual);

    // block14 puts the ReLU after the BN.
    x = sep_conv_bn(b, "block14_sepconv1", x, 1536);
    x = b.relu("block14_sepconv1_act", x);
    x = sep_conv_bn(b, "block14_sepconv2", x, 2048);
    x = b.relu("block14_sepconv2_act", x);

    // Keras's GlobalAveragePooling2D yields N x C directly; the IR needs an explicit Flatten.
    x = b.global_average_pool("avg_pool", x);
    x = b.flatten("avg_pool_flatten", x);
    // Dense(1000, activation='softmax'): the activation is its own node here.
    x = b.dense("predictions", x, 1000, true);
    x = b.softmax("predictions_softmax", x);
    return std::move(b).finish(x);
}

}  // namespace cardinal::zoo_detail
