// GraphBuilder: builds a Graph layer by layer, inferring shapes as it goes and giving every
// parametric layer deterministic, seeded weights (the zoo's networks and the tests use it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace cardinal {

// The hyper-parameters of a convolution; weights are made by the builder.
struct ConvSpec {
    int out_channels = 0;
    int kernel_h = 1, kernel_w = 1;
    int stride_h = 1, stride_w = 1;
    Padding2D pad;
    int dilation_h = 1, dilation_w = 1;
    int groups = 1;
    bool bias = false;

    // A square kernel with symmetric padding: the common case.
    static ConvSpec square(int out_channels, int kernel, int stride = 1, int pad = 0,
                           int groups = 1, bool bias = false) {
        ConvSpec s;
        s.out_channels = out_channels;
        s.kernel_h = s.kernel_w = kernel;
        s.stride_h = s.stride_w = stride;
        s.pad = {pad, pad, pad, pad};
        s.groups = groups;
        s.bias = bias;
        return s;
    }
};

// A small deterministic generator (SplitMix64): the same seed gives the same weights on every
// platform and standard library, unlike std::normal_distribution.
class SeededRandom {
public:
    explicit SeededRandom(uint64_t seed) : state_(seed) {}
    uint64_t next_u64();
    float uniform(float lo, float hi);  // [lo, hi)

private:
    uint64_t state_;
};

uint64_t hash_string(const std::string& s, uint64_t seed = 0);

class GraphBuilder {
public:
    // input_shape is NCHW. Each layer's weights are seeded by (seed, layer name), so they do not
    // depend on the order layers are added in.
    GraphBuilder(std::string model_name, Shape input_shape, uint64_t seed = 0);

    const std::string& input() const { return graph_.input; }
    const Shape& shape(const std::string& tensor) const { return graph_.shape_of(tensor); }
    int64_t channels(const std::string& tensor) const { return shape(tensor)[1]; }

    // Each adds one layer named `name` whose output tensor is also called `name`.
    // He-uniform weights (fan_in = in/groups*kh*kw), small uniform bias.
    std::string conv(const std::string& name, const std::string& x, const ConvSpec& spec);
    // gamma in [0.5, 1.5), beta and mean in [-0.2, 0.2), var in [0.5, 1.5): non-trivial so BN
    // folding is really exercised.
    std::string batch_norm(const std::string& name, const std::string& x, float epsilon = 1e-5f);
    std::string relu(const std::string& name, const std::string& x);
    std::string clip(const std::string& name, const std::string& x, float lo, float hi);
    std::string add(const std::string& name, const std::string& a, const std::string& b);
    std::string max_pool(const std::string& name, const std::string& x, const PoolWindow& w);
    std::string average_pool(const std::string& name, const std::string& x, const PoolWindow& w,
                             bool count_include_pad);
    std::string pad(const std::string& name, const std::string& x, Padding2D p, float value = 0);
    std::string global_average_pool(const std::string& name, const std::string& x);
    std::string flatten(const std::string& name, const std::string& x);
    std::string dense(const std::string& name, const std::string& x, int out_features,
                      bool bias = true);
    std::string concat(const std::string& name, const std::vector<std::string>& xs);
    std::string softmax(const std::string& name, const std::string& x);

    // Adds a node built elsewhere (weights included); returns its output tensor.
    std::string add_node(Node node);

    // Finishes the graph with `output` as its result (re-checks all shapes).
    Graph finish(const std::string& output) &&;

private:
    Tensor random_tensor(const std::string& layer, const char* what, Shape shape, float lo,
                         float hi) const;

    Graph graph_;
    uint64_t seed_;
};

}  // namespace cardinal
