// Small networks the target tests run: shapes no zoo model has, one full ResNeXt bottleneck
// block, and one Xception middle-flow block.
#pragma once

#include "ir/builder.h"

namespace cardinal::test {

// Odd channel counts, groups of 3, a depthwise stride-2 conv, asymmetric pooling, a residual add,
// ReLU6, a dense head: batch 2.
inline Graph odd_shapes_graph() {
    GraphBuilder b("odd_shapes", Shape{2, 5, 13, 11}, 31);
    auto x = b.conv("c1", b.input(), ConvSpec::square(24, 3, 1, 1));
    x = b.batch_norm("bn1", x);
    x = b.relu("r1", x);
    auto y = b.conv("c2", x, ConvSpec::square(24, 3, 1, 1, 3));
    y = b.batch_norm("bn2", y);
    x = b.add("add", x, y);
    x = b.clip("relu6", x, 0.0f, 6.0f);
    x = b.conv("dw", x, ConvSpec::square(24, 3, 2, 1, 24));
    x = b.max_pool("pool", x, PoolWindow{2, 2, 1, 1, {0, 0, 1, 1}, false});
    x = b.global_average_pool("gap", x);
    x = b.flatten("flatten", x);
    x = b.dense("fc", x, 10);
    return std::move(b).finish(x);
}

// ResNeXt-50's layer3 bottleneck (1024 -> 512 -> grouped 3x3, 32 groups of 16 -> 1024, identity
// residual) at 14x14.
inline Graph resnext_block_graph() {
    GraphBuilder b("resnext_block", Shape{1, 1024, 14, 14}, 32);
    auto y = b.conv("conv1", b.input(), ConvSpec::square(512, 1));
    y = b.batch_norm("bn1", y);
    y = b.relu("relu1", y);
    y = b.conv("conv2", y, ConvSpec::square(512, 3, 1, 1, 32));
    y = b.batch_norm("bn2", y);
    y = b.relu("relu2", y);
    y = b.conv("conv3", y, ConvSpec::square(1024, 1));
    y = b.batch_norm("bn3", y);
    y = b.add("add", y, b.input());
    y = b.relu("relu3", y);
    return std::move(b).finish(y);
}

// Xception's middle-flow block: three (ReLU, depthwise 3x3, pointwise 1x1, BN) on 728 channels
// at 19x19, plus the identity.
inline Graph xception_middle_block_graph() {
    GraphBuilder b("xception_block", Shape{1, 728, 19, 19}, 33);
    std::string x = b.input();
    for (int j = 1; j <= 3; ++j) {
        const std::string s = "sepconv" + std::to_string(j);
        x = b.relu(s + "_act", x);
        x = b.conv(s + "_dw", x, ConvSpec::square(728, 3, 1, 1, 728));
        x = b.conv(s + "_pw", x, ConvSpec::square(728, 1));
        x = b.batch_norm(s + "_bn", x, 1e-3f);
    }
    x = b.add("add", x, b.input());
    return std::move(b).finish(x);
}

}  // namespace cardinal::test
