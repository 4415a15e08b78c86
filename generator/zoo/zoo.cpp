// The zoo registry: model names, default resolutions, and dispatch to the builders.
#include "zoo/zoo.h"

#include "ir/error.h"

namespace cardinal {

// Defined in resnet.cpp, xception.cpp and mobilenet_v2.cpp.
namespace zoo_detail {
Graph build_resnet_family(const std::string& name, int batch, int resolution, uint64_t seed);
Graph build_xception(int batch, int resolution, uint64_t seed);
Graph build_mobilenet_v2(int batch, int resolution, uint64_t seed);
}  // namespace zoo_detail

const std::vector<ZooModel>& zoo_models() {
    static const std::vector<ZooModel> models = {
        {"resnet50", 224, "ResNet-50 (torchvision, v1.5: stride on the 3x3 conv)"},
        {"resnet101", 224, "ResNet-101 (torchvision, v1.5)"},
        {"resnext50_32x4d", 224, "ResNeXt-50, cardinality 32, bottleneck width 4 (torchvision)"},
        {"resnext101_32x4d", 224,
         "ResNeXt-101, cardinality 32, bottleneck width 4 (torchvision's ResNet builder)"},
        {"resnext101_64x4d", 224, "ResNeXt-101, cardinality 64, bottleneck width 4 (torchvision)"},
        {"resnext101_32x8d", 224, "ResNeXt-101, cardinality 32, bottleneck width 8 (torchvision)"},
        {"xception", 299, "Xception (Keras application), depthwise separable convolutions"},
        {"mobilenet_v2", 224, "MobileNetV2 (torchvision), inverted residuals"},
    };
    return models;
}

Graph build_zoo_model(const std::string& name, int batch, int resolution, uint64_t seed) {
    const ZooModel* model = nullptr;
    for (const ZooModel& m : zoo_models())
        if (m.name == name) model = &m;
    if (!model) {
        std::string names;
        for (const ZooModel& m : zoo_models())
            names += (names.empty() ? "" : ", ") + m.name;
        throw Error("unknown model '" + name + "'; available models: " + names + ".");
    }
    if (batch < 1)
        throw Error("model '" + name + "': batch must be at least 1, got " + std::to_string(batch) +
                    ".");
    if (resolution < 0)
        throw Error("model '" + name + "': resolution must be positive (or 0 for the default " +
                    std::to_string(model->default_resolution) + "), got " +
                    std::to_string(resolution) + ".");
    if (resolution == 0) resolution = model->default_resolution;

    if (name == "xception") return zoo_detail::build_xception(batch, resolution, seed);
    if (name == "mobilenet_v2") return zoo_detail::build_mobilenet_v2(batch, resolution, seed);
    return zoo_detail::build_resnet_family(name, batch, resolution, seed);
}

}  // namespace cardinal
