#include "passes/fold_batch_norm.h"

#include <cmath>
#include <map>

#include "ir/error.h"

namespace cardinal {

namespace {

// conv followed by bn as one conv: w' = w * s, b' = beta + (b - mean) * s with
// s = gamma / sqrt(var + eps) per output channel. Computed in double and rounded once, so the
// folded weights are as close to the exact product as float allows.
Conv2D folded_conv(const Node& conv_node, const Node& bn_node) {
    Conv2D conv = std::get<Conv2D>(conv_node.op);
    const BatchNorm& bn = std::get<BatchNorm>(bn_node.op);
    const int64_t O = conv.out_channels;
    for (const Tensor* t : {&bn.gamma, &bn.beta, &bn.mean, &bn.var})
        if (t->numel() != O || static_cast<int64_t>(t->data.size()) != O)
            throw Error("layer '" + bn_node.name + "' (BatchNorm): has " +
                        std::to_string(t->data.size()) + " values per parameter, but its input '" +
                        conv_node.name + "' has " + std::to_string(O) + " channels");
    if (conv.weight.numel() % O != 0 ||
        static_cast<int64_t>(conv.weight.data.size()) != conv.weight.numel())
        throw Error("layer '" + conv_node.name + "' (Conv2D): weight has shape " +
                    conv.weight.shape.str() + " for " + std::to_string(O) + " output channels");

    const int64_t per_channel = conv.weight.numel() / O;  // OIHW: each channel's weights in a row
    Tensor bias(Shape{O});
    for (int64_t o = 0; o < O; ++o) {
        const double scale =
            double(bn.gamma.data[o]) / std::sqrt(double(bn.var.data[o]) + double(bn.epsilon));
        float* w = conv.weight.ptr() + o * per_channel;
        for (int64_t i = 0; i < per_channel; ++i)
            w[i] = static_cast<float>(w[i] * scale);
        const double b = conv.bias ? conv.bias->data[o] : 0.0;
        bias.data[o] = static_cast<float>(bn.beta.data[o] + (b - bn.mean.data[o]) * scale);
    }
    conv.bias = std::move(bias);
    return conv;
}

}  // namespace

Graph fold_batch_norm(const Graph& graph) {
    // How many times each tensor is read; the network's output counts as read by the caller.
    std::map<std::string, int> readers;
    for (const Node& node : graph.nodes)
        for (const std::string& t : node.inputs)
            ++readers[t];
    ++readers[graph.output];

    std::map<std::string, size_t> producer;  // tensor -> index of the node defining it
    for (size_t i = 0; i < graph.nodes.size(); ++i)
        producer[graph.nodes[i].output] = i;

    // folds_into[conv index] = index of the BatchNorm absorbed by that conv.
    std::map<size_t, size_t> folds_into;
    std::vector<bool> removed(graph.nodes.size(), false);
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
        const Node& node = graph.nodes[i];
        if (!std::holds_alternative<BatchNorm>(node.op) || node.inputs.size() != 1) continue;
        auto p = producer.find(node.inputs[0]);
        if (p == producer.end() || p->second >= i) continue;  // the graph input, or malformed
        const Node& src = graph.nodes[p->second];
        // Folding changes what the conv outputs, so only a conv read by this BN alone qualifies.
        if (!std::holds_alternative<Conv2D>(src.op) || readers[src.output] != 1) continue;
        folds_into[p->second] = i;
        removed[i] = true;
    }

    Graph out;
    out.name = graph.name;
    out.input = graph.input;
    out.input_shape = graph.input_shape;
    out.output = graph.output;
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
        if (removed[i]) continue;
        auto f = folds_into.find(i);
        if (f == folds_into.end()) {
            out.nodes.push_back(graph.nodes[i]);
            continue;
        }
        // The conv keeps its layer name and takes over the BatchNorm's output tensor. Nothing
        // between the two can read that tensor (topological order), so moving it up is safe.
        const Node& conv_node = graph.nodes[i];
        const Node& bn_node = graph.nodes[f->second];
        out.nodes.push_back(Node{conv_node.name, folded_conv(conv_node, bn_node), conv_node.inputs,
                                 bn_node.output});
    }
    infer_shapes(out);
    return out;
}

}  // namespace cardinal
