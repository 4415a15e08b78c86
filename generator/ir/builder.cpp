#include "ir/builder.h"

#include <algorithm>
#include <cmath>

#include "ir/error.h"

namespace cardinal {

uint64_t SeededRandom::next_u64() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float SeededRandom::uniform(float lo, float hi) {
    // 24 random bits: exactly representable in float, so the result is platform-independent.
    const float u = static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f);
    return lo + (hi - lo) * u;
}

uint64_t hash_string(const std::string& s, uint64_t seed) {
    uint64_t h = 1469598103934665603ull ^ seed;  // FNV-1a
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

GraphBuilder::GraphBuilder(std::string model_name, Shape input_shape, uint64_t seed)
    : seed_(seed) {
    graph_.name = std::move(model_name);
    graph_.input = "input";
    graph_.input_shape = std::move(input_shape);
    graph_.output = graph_.input;
    infer_shapes(graph_);
}

Tensor GraphBuilder::random_tensor(const std::string& layer, const char* what, Shape shape,
                                   float lo, float hi) const {
    SeededRandom rng(hash_string(layer + "/" + what, seed_));
    Tensor t(std::move(shape));
    for (float& v : t.data) v = rng.uniform(lo, hi);
    return t;
}

std::string GraphBuilder::add_node(Node node) {
    std::vector<Shape> in;
    for (const std::string& t : node.inputs) in.push_back(graph_.shape_of(t));
    if (graph_.shapes.count(node.output))
        throw Error("layer '" + node.name + "': tensor '" + node.output + "' is already defined");
    Shape out = infer_node_shape(node, in);
    graph_.shapes[node.output] = out;
    graph_.nodes.push_back(std::move(node));
    return graph_.nodes.back().output;
}

std::string GraphBuilder::conv(const std::string& name, const std::string& x,
                               const ConvSpec& s) {
    const int64_t cin = channels(x);
    Conv2D c;
    c.out_channels = s.out_channels;
    c.kernel_h = s.kernel_h;
    c.kernel_w = s.kernel_w;
    c.stride_h = s.stride_h;
    c.stride_w = s.stride_w;
    c.pad = s.pad;
    c.dilation_h = s.dilation_h;
    c.dilation_w = s.dilation_w;
    c.groups = s.groups;
    const int64_t in_per_group = s.groups > 0 ? cin / s.groups : cin;
    const float fan_in = static_cast<float>(std::max<int64_t>(1, in_per_group) * s.kernel_h *
                                            s.kernel_w);
    const float bound = std::sqrt(6.0f / fan_in);
    c.weight = random_tensor(name, "weight",
                             Shape{s.out_channels, in_per_group, s.kernel_h, s.kernel_w}, -bound,
                             bound);
    if (s.bias) c.bias = random_tensor(name, "bias", Shape{s.out_channels}, -0.1f, 0.1f);
    return add_node(Node{name, std::move(c), {x}, name});
}

std::string GraphBuilder::batch_norm(const std::string& name, const std::string& x,
                                     float epsilon) {
    const int64_t ch = channels(x);
    BatchNorm b;
    b.gamma = random_tensor(name, "gamma", Shape{ch}, 0.5f, 1.5f);
    b.beta = random_tensor(name, "beta", Shape{ch}, -0.2f, 0.2f);
    b.mean = random_tensor(name, "mean", Shape{ch}, -0.2f, 0.2f);
    b.var = random_tensor(name, "var", Shape{ch}, 0.5f, 1.5f);
    b.epsilon = epsilon;
    return add_node(Node{name, std::move(b), {x}, name});
}

std::string GraphBuilder::relu(const std::string& name, const std::string& x) {
    return add_node(Node{name, Relu{}, {x}, name});
}

std::string GraphBuilder::clip(const std::string& name, const std::string& x, float lo,
                               float hi) {
    return add_node(Node{name, Clip{lo, hi}, {x}, name});
}

std::string GraphBuilder::add(const std::string& name, const std::string& a,
                              const std::string& b) {
    return add_node(Node{name, Add{}, {a, b}, name});
}

std::string GraphBuilder::max_pool(const std::string& name, const std::string& x,
                                   const PoolWindow& w) {
    return add_node(Node{name, MaxPool{w}, {x}, name});
}

std::string GraphBuilder::average_pool(const std::string& name, const std::string& x,
                                       const PoolWindow& w, bool count_include_pad) {
    return add_node(Node{name, AveragePool{w, count_include_pad}, {x}, name});
}

std::string GraphBuilder::pad(const std::string& name, const std::string& x, Padding2D p,
                              float value) {
    return add_node(Node{name, Pad{p, value}, {x}, name});
}

std::string GraphBuilder::global_average_pool(const std::string& name, const std::string& x) {
    return add_node(Node{name, GlobalAveragePool{}, {x}, name});
}

std::string GraphBuilder::flatten(const std::string& name, const std::string& x) {
    return add_node(Node{name, Flatten{}, {x}, name});
}

std::string GraphBuilder::dense(const std::string& name, const std::string& x, int out_features,
                                bool bias) {
    const int64_t in = shape(x).rank() == 2 ? shape(x)[1] : 0;
    Dense d;
    d.out_features = out_features;
    const float bound = std::sqrt(6.0f / static_cast<float>(std::max<int64_t>(1, in)));
    d.weight = random_tensor(name, "weight", Shape{out_features, in}, -bound, bound);
    if (bias) d.bias = random_tensor(name, "bias", Shape{out_features}, -0.1f, 0.1f);
    return add_node(Node{name, std::move(d), {x}, name});
}

std::string GraphBuilder::concat(const std::string& name, const std::vector<std::string>& xs) {
    return add_node(Node{name, Concat{}, xs, name});
}

std::string GraphBuilder::softmax(const std::string& name, const std::string& x) {
    return add_node(Node{name, Softmax{}, {x}, name});
}

Graph GraphBuilder::finish(const std::string& output) && {
    graph_.output = output;
    infer_shapes(graph_);
    return std::move(graph_);
}

}  // namespace cardinal
