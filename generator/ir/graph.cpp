#include "ir/graph.h"

#include <set>

#include "ir/error.h"

namespace cardinal {

namespace {

template <class... Fs>
struct Overloaded : Fs... {
    using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

[[noreturn]] void fail(const Node& node, const std::string& what) {
    throw Error("layer '" + node.name + "' (" + op_name(node.op) + "): " + what);
}

void expect_inputs(const Node& node, const std::vector<Shape>& in, size_t count) {
    if (in.size() != count)
        fail(node, "expects " + std::to_string(count) + " input(s), got " +
                       std::to_string(in.size()));
}

void expect_rank(const Node& node, const Shape& s, size_t rank) {
    if (s.rank() != rank)
        fail(node, "expects a rank-" + std::to_string(rank) + " input, got shape " + s.str() +
                       " (rank " + std::to_string(s.rank()) + ")");
}

void expect_weight(const Node& node, const char* what, const Tensor& t, const Shape& want) {
    if (t.shape != want)
        fail(node, std::string(what) + " has shape " + t.shape.str() + ", expected " + want.str());
    if (static_cast<int64_t>(t.data.size()) != want.numel())
        fail(node, std::string(what) + " holds " + std::to_string(t.data.size()) +
                       " values, expected " + std::to_string(want.numel()));
}

// Output extent of a sliding window; checks that the window fits the padded input.
int64_t window_extent(const Node& node, const char* axis, int64_t in, int kernel, int stride,
                      int pad_before, int pad_after, int dilation, bool ceil_mode) {
    if (kernel < 1 || stride < 1 || dilation < 1)
        fail(node, std::string("kernel, stride and dilation must be positive along ") + axis);
    if (pad_before < 0 || pad_after < 0) fail(node, std::string("negative padding along ") + axis);
    const int64_t padded = in + pad_before + pad_after;
    const int64_t span = int64_t(dilation) * (kernel - 1) + 1;
    if (span > padded)
        fail(node, "kernel " + std::string(axis) + " extent " + std::to_string(span) +
                       " is larger than the padded input (" + std::to_string(in) + " + " +
                       std::to_string(pad_before) + " + " + std::to_string(pad_after) + ")");
    int64_t out = (padded - span) / stride + 1;
    if (ceil_mode) {
        out = (padded - span + stride - 1) / stride + 1;
        // The last window must start inside the input or its leading padding (PyTorch/ONNX).
        if ((out - 1) * stride >= in + pad_before) --out;
    }
    return out;
}

}  // namespace

std::string op_name(const Op& op) {
    return std::visit(Overloaded{
                          [](const Conv2D&) { return "Conv2D"; },
                          [](const BatchNorm&) { return "BatchNorm"; },
                          [](const Relu&) { return "Relu"; },
                          [](const Clip&) { return "Clip"; },
                          [](const Add&) { return "Add"; },
                          [](const MaxPool&) { return "MaxPool"; },
                          [](const AveragePool&) { return "AveragePool"; },
                          [](const Pad&) { return "Pad"; },
                          [](const GlobalAveragePool&) { return "GlobalAveragePool"; },
                          [](const Flatten&) { return "Flatten"; },
                          [](const Dense&) { return "Dense"; },
                          [](const Concat&) { return "Concat"; },
                          [](const Softmax&) { return "Softmax"; },
                      },
                      op);
}

const Shape& Graph::shape_of(const std::string& tensor) const {
    auto it = shapes.find(tensor);
    if (it == shapes.end())
        throw Error("network '" + name + "' has no tensor named '" + tensor +
                    "' (or shapes were not inferred)");
    return it->second;
}

const Node* Graph::producer(const std::string& tensor) const {
    for (const Node& n : nodes)
        if (n.output == tensor) return &n;
    return nullptr;
}

Shape infer_node_shape(const Node& node, const std::vector<Shape>& in) {
    auto pool_shape = [&](const PoolWindow& w) {
        expect_inputs(node, in, 1);
        expect_rank(node, in[0], 4);
        const Shape& x = in[0];
        return Shape{x[0], x[1],
                     window_extent(node, "height", x[2], w.kernel_h, w.stride_h, w.pad.top,
                                   w.pad.bottom, 1, w.ceil_mode),
                     window_extent(node, "width", x[3], w.kernel_w, w.stride_w, w.pad.left,
                                   w.pad.right, 1, w.ceil_mode)};
    };
    auto same_shape = [&]() {
        expect_inputs(node, in, 1);
        return in[0];
    };
    return std::visit(
        Overloaded{
            [&](const Conv2D& c) {
                expect_inputs(node, in, 1);
                expect_rank(node, in[0], 4);
                const Shape& x = in[0];
                const int64_t cin = x[1];
                if (c.groups < 1) fail(node, "groups must be positive");
                if (c.out_channels < 1) fail(node, "out_channels must be positive");
                if (cin % c.groups != 0)
                    fail(node, "input channels " + std::to_string(cin) +
                                   " are not divisible by groups " + std::to_string(c.groups));
                if (c.out_channels % c.groups != 0)
                    fail(node, "output channels " + std::to_string(c.out_channels) +
                                   " are not divisible by groups " + std::to_string(c.groups));
                expect_weight(node, "weight", c.weight,
                              Shape{c.out_channels, cin / c.groups, c.kernel_h, c.kernel_w});
                if (c.bias) expect_weight(node, "bias", *c.bias, Shape{c.out_channels});
                return Shape{x[0], c.out_channels,
                             window_extent(node, "height", x[2], c.kernel_h, c.stride_h,
                                           c.pad.top, c.pad.bottom, c.dilation_h, false),
                             window_extent(node, "width", x[3], c.kernel_w, c.stride_w,
                                           c.pad.left, c.pad.right, c.dilation_w, false)};
            },
            [&](const BatchNorm& b) {
                expect_inputs(node, in, 1);
                if (in[0].rank() != 4 && in[0].rank() != 2)
                    fail(node, "expects an NCHW or NC input, got shape " + in[0].str());
                const Shape ch{in[0][1]};
                expect_weight(node, "gamma", b.gamma, ch);
                expect_weight(node, "beta", b.beta, ch);
                expect_weight(node, "mean", b.mean, ch);
                expect_weight(node, "var", b.var, ch);
                return in[0];
            },
            [&](const Relu&) { return same_shape(); },
            [&](const Clip& c) {
                if (!(c.min <= c.max)) fail(node, "min is greater than max");
                return same_shape();
            },
            [&](const Add&) {
                expect_inputs(node, in, 2);
                if (in[0] != in[1])
                    fail(node, "operands have different shapes " + in[0].str() + " and " +
                                   in[1].str());
                return in[0];
            },
            [&](const MaxPool& p) { return pool_shape(p.window); },
            [&](const AveragePool& p) { return pool_shape(p.window); },
            [&](const Pad& p) {
                expect_inputs(node, in, 1);
                expect_rank(node, in[0], 4);
                if (p.pad.top < 0 || p.pad.left < 0 || p.pad.bottom < 0 || p.pad.right < 0)
                    fail(node, "negative padding");
                const Shape& x = in[0];
                return Shape{x[0], x[1], x[2] + p.pad.top + p.pad.bottom,
                             x[3] + p.pad.left + p.pad.right};
            },
            [&](const GlobalAveragePool&) {
                expect_inputs(node, in, 1);
                expect_rank(node, in[0], 4);
                return Shape{in[0][0], in[0][1], 1, 1};
            },
            [&](const Flatten&) {
                expect_inputs(node, in, 1);
                if (in[0].rank() < 2) fail(node, "expects rank >= 2, got " + in[0].str());
                return Shape{in[0][0], in[0].numel() / in[0][0]};
            },
            [&](const Dense& d) {
                expect_inputs(node, in, 1);
                expect_rank(node, in[0], 2);
                if (d.out_features < 1) fail(node, "out_features must be positive");
                expect_weight(node, "weight", d.weight, Shape{d.out_features, in[0][1]});
                if (d.bias) expect_weight(node, "bias", *d.bias, Shape{d.out_features});
                return Shape{in[0][0], d.out_features};
            },
            [&](const Concat&) {
                if (in.empty()) fail(node, "needs at least one input");
                Shape out = in[0];
                expect_rank(node, out, 4);
                for (size_t i = 1; i < in.size(); ++i) {
                    expect_rank(node, in[i], 4);
                    if (in[i][0] != out[0] || in[i][2] != out[2] || in[i][3] != out[3])
                        fail(node, "operand " + std::to_string(i) + " has shape " + in[i].str() +
                                       ", which does not match " + in[0].str() +
                                       " outside the channel axis");
                    out[1] += in[i][1];
                }
                return out;
            },
            [&](const Softmax&) {
                expect_inputs(node, in, 1);
                expect_rank(node, in[0], 2);
                return in[0];
            },
        },
        node.op);
}

void infer_shapes(Graph& graph) {
    graph.shapes.clear();
    if (graph.input_shape.rank() != 4)
        throw Error("network '" + graph.name + "': the input '" + graph.input +
                    "' must be NCHW (rank 4), got shape " + graph.input_shape.str());
    for (int64_t d : graph.input_shape.dims)
        if (d < 1)
            throw Error("network '" + graph.name + "': the input shape " +
                        graph.input_shape.str() + " has a non-positive dimension");
    graph.shapes[graph.input] = graph.input_shape;
    std::set<std::string> layer_names;
    for (const Node& node : graph.nodes) {
        if (!layer_names.insert(node.name).second)
            throw Error("network '" + graph.name + "': two layers are named '" + node.name + "'");
        std::vector<Shape> in;
        for (const std::string& t : node.inputs) {
            auto it = graph.shapes.find(t);
            if (it == graph.shapes.end())
                fail(node, "input tensor '" + t + "' is not defined before this layer");
            in.push_back(it->second);
        }
        if (graph.shapes.count(node.output))
            fail(node, "output tensor '" + node.output + "' is already defined");
        graph.shapes[node.output] = infer_node_shape(node, in);
    }
    if (!graph.shapes.count(graph.output))
        throw Error("network '" + graph.name + "': the output tensor '" + graph.output +
                    "' is never defined");
}

int64_t count_node_params(const Node& node) {
    auto opt = [](const std::optional<Tensor>& t) { return t ? t->numel() : 0; };
    if (auto* c = std::get_if<Conv2D>(&node.op)) return c->weight.numel() + opt(c->bias);
    if (auto* d = std::get_if<Dense>(&node.op)) return d->weight.numel() + opt(d->bias);
    if (auto* b = std::get_if<BatchNorm>(&node.op)) return b->gamma.numel() + b->beta.numel();
    return 0;
}

int64_t count_params(const Graph& graph) {
    int64_t n = 0;
    for (const Node& node : graph.nodes) n += count_node_params(node);
    return n;
}

int64_t count_bn_statistics(const Graph& graph) {
    int64_t n = 0;
    for (const Node& node : graph.nodes)
        if (auto* b = std::get_if<BatchNorm>(&node.op)) n += b->mean.numel() + b->var.numel();
    return n;
}

int64_t count_node_macs(const Graph& graph, const Node& node) {
    if (auto* c = std::get_if<Conv2D>(&node.op)) {
        const Shape& x = graph.shape_of(node.inputs.at(0));
        return graph.shape_of(node.output).numel() * (x[1] / c->groups) * c->kernel_h *
               c->kernel_w;
    }
    if (auto* d = std::get_if<Dense>(&node.op)) {
        const Shape& x = graph.shape_of(node.inputs.at(0));
        return x[0] * x[1] * d->out_features;
    }
    return 0;
}

int64_t count_macs(const Graph& graph) {
    int64_t n = 0;
    for (const Node& node : graph.nodes) n += count_node_macs(graph, node);
    return n;
}

}  // namespace cardinal
