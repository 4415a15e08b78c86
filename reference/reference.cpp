// Running nodes and whole networks with the reference ops (ops.cpp).
#include "reference/reference.h"

#include <map>
#include <stdexcept>

#include "ir/error.h"

namespace cardinal::reference {

namespace {

template <class... Fs>
struct Overloaded : Fs... {
    using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

}  // namespace

Tensor run_node(const Node& node, const std::vector<const Tensor*>& inputs) {
    // The IR's shape inference checks the node (operand count, ranks, weight shapes) and names
    // the layer in its error; the op's output must then have exactly the shape it predicts.
    std::vector<Shape> shapes;
    for (const Tensor* t : inputs)
        shapes.push_back(t->shape);
    const Shape expected = infer_node_shape(node, shapes);

    Tensor y;
    const Tensor& x = *inputs.at(0);
    std::visit(Overloaded{
                   [&](const Conv2D& op) { conv2d(op, x, y); },
                   [&](const BatchNorm& op) { batch_norm(op, x, y); },
                   [&](const Relu&) { relu(x, y); },
                   [&](const Clip& op) { clip(op, x, y); },
                   [&](const Add&) { add(x, *inputs.at(1), y); },
                   [&](const MaxPool& op) { max_pool(op, x, y); },
                   [&](const AveragePool& op) { average_pool(op, x, y); },
                   [&](const Pad& op) { pad(op, x, y); },
                   [&](const GlobalAveragePool&) { global_average_pool(x, y); },
                   [&](const Flatten&) { flatten(x, y); },
                   [&](const Dense& op) { dense(op, x, y); },
                   [&](const Concat&) { concat(inputs, y); },
                   [&](const Softmax&) { softmax(x, y); },
               },
               node.op);
    if (y.shape != expected)  // the reference and the IR disagree: a bug in one of them
        throw std::logic_error("reference " + op_name(node.op) + " '" + node.name +
                               "' produced shape " + y.shape.str() + ", shape inference says " +
                               expected.str());
    return y;
}

Tensor run(const Graph& graph, const Tensor& input, const LayerCallback& on_layer) {
    if (input.shape != graph.input_shape)
        throw Error("network '" + graph.name + "' expects an input of shape " +
                    graph.input_shape.str() + ", got " + input.shape.str());
    if (static_cast<int64_t>(input.data.size()) != input.numel())
        throw Error("the input tensor of shape " + input.shape.str() + " holds " +
                    std::to_string(input.data.size()) + " values");

    // Index of the last node reading each tensor, so intermediates can be freed right after.
    std::map<std::string, size_t> last_use;
    for (size_t i = 0; i < graph.nodes.size(); ++i)
        for (const std::string& t : graph.nodes[i].inputs)
            last_use[t] = i;

    std::map<std::string, Tensor> live;  // computed tensors still needed
    auto lookup = [&](const Node& node, const std::string& name) -> const Tensor* {
        if (name == graph.input) return &input;
        auto it = live.find(name);
        if (it == live.end())
            throw Error("layer '" + node.name + "' reads tensor '" + name +
                        "', which no earlier layer defines");
        return &it->second;
    };

    for (size_t i = 0; i < graph.nodes.size(); ++i) {
        const Node& node = graph.nodes[i];
        std::vector<const Tensor*> inputs;
        for (const std::string& t : node.inputs)
            inputs.push_back(lookup(node, t));
        Tensor y = run_node(node, inputs);
        if (on_layer) on_layer(node, y);
        live[node.output] = std::move(y);
        // Free what no later node reads (never the network's output).
        for (const std::string& t : node.inputs)
            if (last_use.at(t) == i && t != graph.output) live.erase(t);
        if (!last_use.count(node.output) && node.output != graph.output) live.erase(node.output);
    }

    if (graph.output == graph.input) return input;
    auto it = live.find(graph.output);
    if (it == live.end())
        throw Error("network '" + graph.name + "': the output tensor '" + graph.output +
                    "' is never defined");
    return std::move(it->second);
}

}  // namespace cardinal::reference
