// The model zoo: the networks of the ResNeXt and Xception papers and their baselines, built with
// the IR and deterministic seeded weights. Names and layer names follow torchvision (ResNe(X)t,
// MobileNetV2) and Keras (Xception).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace cardinal {

struct ZooModel {
    std::string name;            // "resnext50_32x4d"
    int default_resolution;      // 224, or 299 for xception
    std::string description;     // one line for `cardinal models`
};

// All zoo models, in a stable order.
const std::vector<ZooModel>& zoo_models();

// Builds `name` for input batch x 3 x resolution x resolution (resolution 0 = the model's
// default), with weights seeded by `seed`. Unknown name: throws cardinal::Error listing the
// available names. A resolution too small for the network: throws the shape-inference error.
Graph build_zoo_model(const std::string& name, int batch = 1, int resolution = 0,
                      uint64_t seed = 0);

}  // namespace cardinal
