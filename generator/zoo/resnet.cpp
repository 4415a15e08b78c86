// ResNet and ResNeXt exactly as torchvision 0.14 builds them (ResNet v1.5: the stride sits on the
// 3x3 conv of the bottleneck). Layer names are torchvision's module names, so an importer can
// match parameters by prefix.
#include <array>
#include <string>

#include "ir/builder.h"
#include "ir/error.h"

namespace cardinal::zoo_detail {

namespace {

struct ResNetConfig {
    std::array<int, 4> blocks;  // bottlenecks per stage (layer1..layer4)
    int groups;
    int width_per_group;
};

constexpr int kExpansion = 4;  // bottleneck output channels = planes * 4

// torchvision's Bottleneck. Its single `relu` module is applied three times; the graph needs a
// distinct node per application, hence relu1..relu3.
std::string bottleneck(GraphBuilder& b, const std::string& p, const std::string& x, int planes,
                       int stride, const ResNetConfig& cfg) {
    // int(planes * (base_width / 64.0)) * groups, in integer arithmetic.
    const int width = planes * cfg.width_per_group / 64 * cfg.groups;
    const int out_channels = planes * kExpansion;

    std::string y = b.conv(p + ".conv1", x, ConvSpec::square(width, 1));
    y = b.batch_norm(p + ".bn1", y);
    y = b.relu(p + ".relu1", y);
    y = b.conv(p + ".conv2", y, ConvSpec::square(width, 3, stride, 1, cfg.groups));
    y = b.batch_norm(p + ".bn2", y);
    y = b.relu(p + ".relu2", y);
    y = b.conv(p + ".conv3", y, ConvSpec::square(out_channels, 1));
    y = b.batch_norm(p + ".bn3", y);

    std::string identity = x;
    if (stride != 1 || b.channels(x) != out_channels) {
        identity = b.conv(p + ".downsample.0", x, ConvSpec::square(out_channels, 1, stride));
        identity = b.batch_norm(p + ".downsample.1", identity);
    }
    y = b.add(p + ".add", y, identity);
    return b.relu(p + ".relu3", y);
}

Graph build_resnet(const std::string& name, const ResNetConfig& cfg, int batch, int resolution,
                   uint64_t seed) {
    GraphBuilder b(name, Shape{batch, 3, resolution, resolution}, seed);
    std::string x = b.conv("conv1", b.input(), ConvSpec::square(64, 7, 2, 3));
    x = b.batch_norm("bn1", x);
    x = b.relu("relu", x);
    PoolWindow pool;
    pool.kernel_h = pool.kernel_w = 3;
    pool.stride_h = pool.stride_w = 2;
    pool.pad = {1, 1, 1, 1};
    x = b.max_pool("maxpool", x, pool);

    const std::array<int, 4> planes = {64, 128, 256, 512};
    for (int stage = 0; stage < 4; ++stage) {
        const std::string layer = "layer" + std::to_string(stage + 1);
        for (int i = 0; i < cfg.blocks[stage]; ++i) {
            // Only the first block of a stage downsamples (layer1 keeps 56x56).
            const int stride = (i == 0 && stage > 0) ? 2 : 1;
            x = bottleneck(b, layer + "." + std::to_string(i), x, planes[stage], stride, cfg);
        }
    }

    x = b.global_average_pool("avgpool", x);
    x = b.flatten("flatten", x);
    x = b.dense("fc", x, 1000, true);
    return std::move(b).finish(x);
}

}  // namespace

Graph build_resnet_family(const std::string& name, int batch, int resolution, uint64_t seed) {
    ResNetConfig cfg;
    if (name == "resnet50")
        cfg = {{3, 4, 6, 3}, 1, 64};
    else if (name == "resnet101")
        cfg = {{3, 4, 23, 3}, 1, 64};
    else if (name == "resnext50_32x4d")
        cfg = {{3, 4, 6, 3}, 32, 4};
    else if (name == "resnext101_32x4d")
        cfg = {{3, 4, 23, 3}, 32, 4};
    else if (name == "resnext101_64x4d")
        cfg = {{3, 4, 23, 3}, 64, 4};
    else if (name == "resnext101_32x8d")
        cfg = {{3, 4, 23, 3}, 32, 8};
    else
        throw Error("'" + name + "' is not a ResNet/ResNeXt model");
    return build_resnet(name, cfg, batch, resolution, seed);
}

}  // namespace cardinal::zoo_detail
