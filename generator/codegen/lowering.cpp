#include "codegen/lowering.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "codegen/weight_packing.h"
#include "halide/conv_blocking.h"
#include "halide/winograd.h"
#include "ir/error.h"
#include "passes/fold_batch_norm.h"

namespace cardinal {

namespace {

constexpr int kChannelAlign = 16;  // == halide_gen::kChannelAlign

std::string float_param(float v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}

class Lowering {
public:
    Lowering(const Graph& graph, const LoweringOptions& options)
        : g_(fold_batch_norm(graph)), options_(options) {}

    NetworkPlan run() {
        plan_.model = g_.name;
        plan_.input_shape = g_.input_shape;
        for (size_t i = 0; i < g_.nodes.size(); ++i)
            for (const std::string& t : g_.nodes[i].inputs) consumers_[t].push_back(i);

        plan_.input_tensor = make_tensor(g_.input, input_channel_stride());
        PlannedStep in_step;
        in_step.kind = StepKind::InputToNHWC;
        in_step.layers = "input";
        in_step.description = "NCHW " + g_.input_shape.str() + " -> NHWC";
        in_step.output = plan_.input_tensor;
        positioned_.push_back({-1, std::move(in_step)});

        for (size_t i = 0; i < g_.nodes.size(); ++i)
            if (!absorbed_.count(i)) lower_node(i);

        std::stable_sort(positioned_.begin(), positioned_.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        for (auto& [pos, step] : positioned_) plan_.steps.push_back(std::move(step));

        plan_.output_tensor = tensor_index(g_.output);
        plan_.output_shape = g_.shape_of(g_.output);
        PlannedStep out_step;
        out_step.kind = StepKind::OutputToNCHW;
        out_step.layers = "output";
        out_step.description = "NHWC -> " + std::string(plan_.output_shape.rank() == 4 ? "NCHW " : "NC ") +
                               plan_.output_shape.str();
        out_step.inputs = {plan_.output_tensor};
        plan_.steps.push_back(std::move(out_step));

        int64_t offset = 0;
        for (WeightBlob& b : plan_.blobs) {
            b.offset = offset;
            offset += (int64_t(b.data.size()) * 4 + 63) / 64 * 64;
        }
        plan_.weights_bytes = offset;
        plan_.total_macs = count_macs(g_);
        plan_arena(plan_);
        return std::move(plan_);
    }

private:
    // --- tensors -------------------------------------------------------------------------
    int make_tensor(const std::string& name, int channel_stride, int alias_of = -1) {
        const Shape& s = g_.shape_of(name);
        PlannedTensor t;
        t.name = name;
        t.logical = s;
        t.n = int(s[0]);
        t.c = int(s[1]);
        if (s.rank() == 4) {
            t.h = int(s[2]);
            t.w = int(s[3]);
        }
        t.channel_stride = channel_stride;
        t.alias_of = alias_of;
        tensor_ids_[name] = int(plan_.tensors.size());
        plan_.tensors.push_back(t);
        return int(plan_.tensors.size()) - 1;
    }
    int make_padded_tensor(const std::string& name) {
        return make_tensor(name, round_up(int(g_.shape_of(name)[1]), kChannelAlign));
    }
    int tensor_index(const std::string& name) const { return tensor_ids_.at(name); }
    const PlannedTensor& tensor(int i) const { return plan_.tensors[i]; }

    // The input is stored unpadded (3 channels for an image) when only dense/grouped convs read
    // it: they broadcast input channels, so padding would only add multiplies by zero.
    int input_channel_stride() const {
        const int c = int(g_.input_shape[1]);
        auto it = consumers_.find(g_.input);
        if (it != consumers_.end())
            for (size_t i : it->second) {
                const auto* conv = std::get_if<Conv2D>(&g_.nodes[i].op);
                if (!conv || is_depthwise(*conv, c)) return round_up(c, kChannelAlign);
            }
        return c;
    }

    static bool is_depthwise(const Conv2D& conv, int64_t in_channels) {
        return conv.groups == in_channels && conv.out_channels == in_channels && conv.groups > 1;
    }

    // --- views of tensors as kernel arguments ---------------------------------------------
    KernelArg nhwc_arg(int t) const {
        const PlannedTensor& s = tensor(plan_.storage_of(t));
        const int64_t cs = s.channel_stride;
        return {KernelArg::Kind::Tensor,
                t,
                {{cs, 1}, {s.w, cs}, {s.h, cs * s.w}, {s.n, cs * s.w * s.h}}};
    }
    KernelArg features_arg(int t) const {  // (stored features, n)
        const PlannedTensor& s = tensor(plan_.storage_of(t));
        const int64_t f = int64_t(s.channel_stride) * s.h * s.w;
        return {KernelArg::Kind::Tensor, t, {{f, 1}, {s.n, f}}};
    }
    KernelArg flat_arg(int t) const {
        const PlannedTensor& s = tensor(plan_.storage_of(t));
        return {KernelArg::Kind::Tensor, t, {{s.stored_elements(), 1}}};
    }
    KernelArg blob_arg(std::string name, std::vector<float> data, std::vector<int64_t> extents) {
        WeightBlob b;
        b.name = std::move(name);
        b.data = std::move(data);
        plan_.blobs.push_back(std::move(b));
        KernelArg a{KernelArg::Kind::Weights, int(plan_.blobs.size()) - 1, {}};
        int64_t stride = 1;
        for (int64_t e : extents) {
            a.dims.push_back({e, stride});
            stride *= e;
        }
        return a;
    }

    // --- fusion ---------------------------------------------------------------------------
    // The single node reading `tensor`, if exactly one node does and it is not the output.
    std::optional<size_t> sole_consumer(const std::string& t) const {
        if (t == g_.output) return std::nullopt;
        auto it = consumers_.find(t);
        if (it == consumers_.end() || it->second.size() != 1) return std::nullopt;
        return it->second[0];
    }

    struct Epilogue {
        std::string activation = "none";
        float lo = 0, hi = 0;
        std::string residual;            // IR tensor added before the activation
        std::string output;              // IR tensor the fused step defines
        std::vector<size_t> nodes;       // fused nodes after the first
        std::string names;               // "+add+relu"
        std::string prologue;            // "relu+": a node fused before the first (its input op)
    };

    // Follows `t` through an optional Add (when allow_add) and an optional Relu/Clip that are
    // its sole consumers, marking them absorbed.
    Epilogue fuse_epilogue(const std::string& t, bool allow_add) {
        Epilogue e;
        e.output = t;
        if (auto j = sole_consumer(e.output); j && allow_add &&
                                               std::holds_alternative<Add>(g_.nodes[*j].op)) {
            const Node& add = g_.nodes[*j];
            const std::string& other = add.inputs[0] == e.output ? add.inputs[1] : add.inputs[0];
            // The other operand must already be computed; otherwise its producer (lowered
            // later) claims this Add instead.
            if (add.inputs[0] != add.inputs[1] && tensor_ids_.count(other)) {
                e.residual = other;
                take(e, *j);
            }
        }
        if (auto k = sole_consumer(e.output)) {
            const Node& n = g_.nodes[*k];
            if (std::holds_alternative<Relu>(n.op)) {
                e.activation = "relu";
                take(e, *k);
            } else if (const auto* c = std::get_if<Clip>(&n.op)) {
                e.activation = "clip";
                e.lo = c->min;
                e.hi = c->max;
                take(e, *k);
            }
        }
        return e;
    }
    void take(Epilogue& e, size_t node) {
        absorbed_.insert(node);
        e.nodes.push_back(node);
        e.output = g_.nodes[node].output;
        e.names += "+" + g_.nodes[node].name;
    }
    static void add_epilogue_params(KernelSpec& k, const Epilogue& e) {
        k.params["activation"] = e.activation;
        if (e.activation == "clip") {
            k.params["clip_min"] = float_param(e.lo);
            k.params["clip_max"] = float_param(e.hi);
        }
        if (!e.residual.empty()) k.params["residual"] = "true";
    }
    static std::string epilogue_text(const Epilogue& e) {
        std::string s;
        if (!e.residual.empty()) s += " + residual";
        if (e.activation == "relu") s += ", relu";
        if (e.activation == "clip") s += ", clip[" + float_param(e.lo) + "," + float_param(e.hi) + "]";
        return s;
    }

    // Emits a kernel step at the position of the last IR node it computes.
    void emit(size_t first_node, const Epilogue& e, PlannedStep step) {
        size_t position = first_node;
        for (size_t n : e.nodes) position = std::max(position, n);
        step.layers = e.prologue + g_.nodes[first_node].name + e.names;
        step.macs = count_node_macs(g_, g_.nodes[first_node]);
        positioned_.push_back({long(position), std::move(step)});
    }

    // --- per op ---------------------------------------------------------------------------
    void lower_node(size_t i) {
        const Node& node = g_.nodes[i];
        std::visit([&](const auto& op) { lower(i, node, op); }, node.op);
    }

    void lower(size_t i, const Node& node, const Conv2D& conv) {
        // A ReLU this depthwise conv absorbed (see lower(Relu)): read the ReLU's input instead.
        const auto prologue = relu_prologues_.find(i);
        const std::string& input_name = prologue == relu_prologues_.end()
                                            ? node.inputs[0]
                                            : g_.nodes[prologue->second].inputs[0];
        const int in = tensor_index(input_name);
        const PlannedTensor x = tensor(plan_.storage_of(in));
        if (x.h * x.w == 0 || tensor(in).logical.rank() != 4) unsupported(node, "a non-NCHW input");
        Epilogue e = fuse_epilogue(node.output, true);
        if (prologue != relu_prologues_.end()) {
            e.prologue = g_.nodes[prologue->second].name + "+";
            e.nodes.push_back(prologue->second);
        }
        const int out = make_padded_tensor(e.output);
        const PlannedTensor y = tensor(out);
        const bool depthwise = is_depthwise(conv, tensor(in).c) && x.channel_stride == y.channel_stride;

        bool winograd = false;
        PlannedStep step;
        step.output = out;
        step.inputs = {in};
        KernelSpec& k = step.kernel;
        k.params = {{"batch", std::to_string(y.n)},
                    {"in_height", std::to_string(x.h)},
                    {"in_width", std::to_string(x.w)},
                    {"out_height", std::to_string(y.h)},
                    {"out_width", std::to_string(y.w)},
                    {"kernel_h", std::to_string(conv.kernel_h)},
                    {"kernel_w", std::to_string(conv.kernel_w)},
                    {"stride_h", std::to_string(conv.stride_h)},
                    {"stride_w", std::to_string(conv.stride_w)},
                    {"pad_top", std::to_string(conv.pad.top)},
                    {"pad_left", std::to_string(conv.pad.left)},
                    {"dilation_h", std::to_string(conv.dilation_h)},
                    {"dilation_w", std::to_string(conv.dilation_w)}};
        add_epilogue_params(k, e);
        step.args.push_back(nhwc_arg(in));
        if (prologue != relu_prologues_.end()) {
            if (!depthwise) throw Error("internal: a ReLU fused into a conv that is not depthwise");
            k.params["input_activation"] = "relu";
        }
        if (depthwise) {
            k.generator = "cardinal_depthwise_conv2d";
            k.params["channels"] = std::to_string(y.c);
            k.params["channel_stride"] = std::to_string(y.channel_stride);
            step.args.push_back(blob_arg(node.name + ".weights",
                                         pack_depthwise_weights(conv, y.channel_stride),
                                         {y.channel_stride, conv.kernel_w, conv.kernel_h}));
        } else if (grouped_conv_applies(tensor(in).c, x.channel_stride, y.c, y.channel_stride,
                                        conv.groups)) {
            // Grouped convs (ResNeXt, depthwise with a channel multiplier): only useful FMAs,
            // several whole groups per vector when groups are narrower than one.
            k.generator = "cardinal_grouped_conv2d";
            const bool natural_lanes =
                options_.grouped_natural_lanes.value_or(false) &&
                grouped_natural_lane_order(int(tensor(in).c / conv.groups),
                                           int(y.c / conv.groups));
            k.params["lane_order"] = natural_lanes ? "natural" : "group_minor";  // the packing
            k.params["in_channels"] = std::to_string(tensor(in).c);
            k.params["in_channel_stride"] = std::to_string(x.channel_stride);
            k.params["out_channels"] = std::to_string(y.c);
            k.params["out_channel_stride"] = std::to_string(y.channel_stride);
            k.params["groups"] = std::to_string(conv.groups);
            const int64_t ig = tensor(in).c / conv.groups;
            step.args.push_back(
                blob_arg(node.name + ".weights",
                         pack_grouped_conv_weights(conv, tensor(in).c, y.channel_stride,
                                                   natural_lanes),
                         {16, ig, conv.kernel_w, conv.kernel_h, y.channel_stride / 16}));
        } else if (options_.winograd &&
                   winograd_conv_applies(conv.kernel_h, conv.kernel_w, conv.stride_h,
                                         conv.stride_w, conv.dilation_h, conv.dilation_w,
                                         conv.groups, tensor(in).c, y.c, y.h, y.w, y.n)) {
            // Dense 3x3 stride-1 convs (ResNet's, Xception's second): Winograd F(4x4, 3x3),
            // 4x fewer multiply-adds (see winograd.h and the generator's header).
            winograd = true;
            k.generator = "cardinal_winograd_conv2d";
            for (const char* p : {"kernel_h", "kernel_w", "stride_h", "stride_w", "dilation_h",
                                  "dilation_w"})
                k.params.erase(p);
            const int m = options_.winograd_tile;
            k.params["tile"] = std::to_string(m);
            k.params["in_channels"] = std::to_string(tensor(in).c);
            k.params["in_channel_stride"] = std::to_string(x.channel_stride);
            k.params["out_channels"] = std::to_string(y.c);
            k.params["out_channel_stride"] = std::to_string(y.channel_stride);
            const int a = m + 2;
            step.args.push_back(blob_arg(
                node.name + ".weights",
                pack_winograd_weights(conv, tensor(in).c, y.channel_stride, m),
                {16, tensor(in).c, a, a, y.channel_stride / 16}));
        } else {
            k.generator = "cardinal_conv2d";
            k.params["in_channels"] = std::to_string(tensor(in).c);
            k.params["in_channel_stride"] = std::to_string(x.channel_stride);
            k.params["out_channels"] = std::to_string(y.c);
            k.params["out_channel_stride"] = std::to_string(y.channel_stride);
            k.params["groups"] = std::to_string(conv.groups);
            std::vector<float> w =
                pack_conv_weights(conv, tensor(in).c, x.channel_stride, y.channel_stride);
            const int64_t blocks = y.channel_stride / 16;
            const int64_t cib = int64_t(w.size()) / (blocks * conv.kernel_h * conv.kernel_w * 16);
            step.args.push_back(blob_arg(node.name + ".weights", std::move(w),
                                         {16, cib, conv.kernel_w, conv.kernel_h, blocks}));
        }
        step.args.push_back(blob_arg(node.name + ".bias", pack_bias(conv.bias, y.channel_stride),
                                     {y.channel_stride}));
        if (!e.residual.empty()) {
            const int r = tensor_index(e.residual);
            check_same_storage_shape(node, r, out);
            step.args.push_back(nhwc_arg(r));
            step.inputs.push_back(r);
        }
        step.args.push_back(nhwc_arg(out));
        char desc[256];
        std::snprintf(desc, sizeof desc, "%s %dx%d/%d%s%s%s, %s -> %s%s",
                      depthwise ? "DepthwiseConv2D" : "Conv2D", conv.kernel_h, conv.kernel_w,
                      conv.stride_h, winograd ? " winograd" : "", conv.groups > 1 && !depthwise
                          ? (" groups " + std::to_string(conv.groups)).c_str()
                          : "",
                      conv.dilation_h > 1 ? (" dilation " + std::to_string(conv.dilation_h)).c_str() : "",
                      (prologue == relu_prologues_.end() ? tensor(in).logical.str()
                                                         : "relu(" + tensor(in).logical.str() + ")")
                          .c_str(),
                      y.logical.str().c_str(),
                      epilogue_text(e).c_str());
        step.description = desc;
        emit(i, e, std::move(step));
    }

    // BatchNorm that could not be folded, and standalone Relu/Clip: a 1x1 depthwise conv with
    // per-channel scale and shift (identity for an activation alone).
    void lower_channel_affine(size_t i, const Node& node, std::vector<float> scale,
                              std::vector<float> shift, Epilogue e) {
        const int in = tensor_index(node.inputs[0]);
        const PlannedTensor x = tensor(plan_.storage_of(in));
        const int out = make_tensor(e.output, x.channel_stride);
        const PlannedTensor y = tensor(out);
        PlannedStep step;
        step.output = out;
        step.inputs = {in};
        KernelSpec& k = step.kernel;
        k.generator = "cardinal_depthwise_conv2d";
        k.params = {{"batch", std::to_string(y.n)},          {"channels", std::to_string(y.c)},
                    {"channel_stride", std::to_string(y.channel_stride)},
                    {"in_height", std::to_string(x.h)},      {"in_width", std::to_string(x.w)},
                    {"out_height", std::to_string(x.h)},     {"out_width", std::to_string(x.w)},
                    {"kernel_h", "1"},                       {"kernel_w", "1"},
                    {"pad_top", "0"},                        {"pad_left", "0"}};
        add_epilogue_params(k, e);
        scale.resize(y.channel_stride, 0.0f);
        shift.resize(y.channel_stride, 0.0f);
        step.args = {nhwc_arg(in),
                     blob_arg(node.name + ".scale", std::move(scale), {y.channel_stride, 1, 1}),
                     blob_arg(node.name + ".shift", std::move(shift), {y.channel_stride})};
        if (!e.residual.empty()) {
            const int r = tensor_index(e.residual);
            step.args.push_back(nhwc_arg(r));
            step.inputs.push_back(r);
        }
        step.args.push_back(nhwc_arg(out));
        step.description = op_name(node.op) + " " + y.logical.str() + epilogue_text(e);
        emit(i, e, std::move(step));
    }

    void lower(size_t i, const Node& node, const BatchNorm& bn) {
        const size_t c = bn.gamma.data.size();
        std::vector<float> scale(c), shift(c);
        for (size_t j = 0; j < c; ++j) {
            scale[j] = bn.gamma.data[j] / std::sqrt(bn.var.data[j] + bn.epsilon);
            shift[j] = bn.beta.data[j] - bn.mean.data[j] * scale[j];
        }
        lower_channel_affine(i, node, std::move(scale), std::move(shift),
                             fuse_epilogue(node.output, false));
    }

    void lower_activation(size_t i, const Node& node, std::string activation, float lo, float hi) {
        const int c = int(g_.shape_of(node.inputs[0])[1]);
        Epilogue e;
        e.activation = std::move(activation);
        e.lo = lo;
        e.hi = hi;
        e.output = node.output;
        lower_channel_affine(i, node, std::vector<float>(c, 1.0f), std::vector<float>(c, 0.0f), e);
    }
    // A ReLU whose only reader is a depthwise conv (Xception's ReLU before each separable conv)
    // becomes that conv's input_activation: no step and no tensor of its own, one max per
    // loaded vector instead of a pass over the tensor.
    void lower(size_t i, const Node& node, const Relu&) {
        if (const auto j = sole_consumer(node.output)) {
            const auto* conv = std::get_if<Conv2D>(&g_.nodes[*j].op);
            const int in = tensor_index(node.inputs[0]);
            const int c = tensor(in).c;
            if (conv && g_.nodes[*j].inputs[0] == node.output && is_depthwise(*conv, c) &&
                tensor(in).logical.rank() == 4 &&
                tensor(plan_.storage_of(in)).channel_stride == round_up(c, kChannelAlign)) {
                relu_prologues_[*j] = i;
                absorbed_.insert(i);
                return;
            }
        }
        lower_activation(i, node, "relu", 0, 0);
    }
    void lower(size_t i, const Node& node, const Clip& c) {
        lower_activation(i, node, "clip", c.min, c.max);
    }

    void lower(size_t i, const Node& node, const Add&) {
        const int a = tensor_index(node.inputs[0]), b = tensor_index(node.inputs[1]);
        check_same_storage_shape(node, a, b);
        Epilogue e = fuse_epilogue(node.output, false);
        const int out = make_tensor(e.output, tensor(plan_.storage_of(a)).channel_stride);
        PlannedStep step;
        step.output = out;
        step.inputs = {a, b};
        step.kernel.generator = "cardinal_add";
        step.kernel.params = {{"size", std::to_string(tensor(out).stored_elements())}};
        add_epilogue_params(step.kernel, e);
        step.args = {flat_arg(a), flat_arg(b), flat_arg(out)};
        step.description = "Add " + tensor(out).logical.str() + epilogue_text(e);
        emit(i, e, std::move(step));
    }

    void lower_pool(size_t i, const Node& node, const PoolWindow& w, bool is_max,
                    bool count_include_pad) {
        const int in = tensor_index(node.inputs[0]);
        const PlannedTensor x = tensor(plan_.storage_of(in));
        const int out = make_tensor(node.output, x.channel_stride);
        const PlannedTensor y = tensor(out);
        PlannedStep step;
        step.output = out;
        step.inputs = {in};
        step.kernel.generator = "cardinal_pool2d";
        step.kernel.params = {{"kind", is_max ? "max" : "average"},
                              {"batch", std::to_string(y.n)},
                              {"channel_stride", std::to_string(y.channel_stride)},
                              {"in_height", std::to_string(x.h)},
                              {"in_width", std::to_string(x.w)},
                              {"out_height", std::to_string(y.h)},
                              {"out_width", std::to_string(y.w)},
                              {"kernel_h", std::to_string(w.kernel_h)},
                              {"kernel_w", std::to_string(w.kernel_w)},
                              {"stride_h", std::to_string(w.stride_h)},
                              {"stride_w", std::to_string(w.stride_w)},
                              {"pad_top", std::to_string(w.pad.top)},
                              {"pad_left", std::to_string(w.pad.left)},
                              // Declared padding only: windows that ceil_mode extends past it
                              // read -inf/0 and never count (the generator's boundary).
                              {"pad_bottom", std::to_string(w.pad.bottom)},
                              {"pad_right", std::to_string(w.pad.right)},
                              {"count_include_pad", count_include_pad ? "true" : "false"}};
        step.args = {nhwc_arg(in), nhwc_arg(out)};
        step.description = std::string(is_max ? "MaxPool " : "AveragePool ") +
                           std::to_string(w.kernel_h) + "x" + std::to_string(w.kernel_w) + "/" +
                           std::to_string(w.stride_h) + ", " + tensor(in).logical.str() + " -> " +
                           y.logical.str();
        emit(i, Epilogue{}, std::move(step));
    }
    void lower(size_t i, const Node& node, const MaxPool& p) {
        lower_pool(i, node, p.window, true, false);
    }
    void lower(size_t i, const Node& node, const AveragePool& p) {
        lower_pool(i, node, p.window, false, p.count_include_pad);
    }

    void lower(size_t i, const Node& node, const Pad& p) {
        const int in = tensor_index(node.inputs[0]);
        const PlannedTensor x = tensor(plan_.storage_of(in));
        const int out = make_tensor(node.output, x.channel_stride);
        PlannedStep step;
        step.output = out;
        step.inputs = {in};
        step.kernel.generator = "cardinal_pad";
        step.kernel.params = {{"batch", std::to_string(x.n)},
                              {"channels", std::to_string(tensor(in).c)},
                              {"channel_stride", std::to_string(x.channel_stride)},
                              {"in_height", std::to_string(x.h)},
                              {"in_width", std::to_string(x.w)},
                              {"pad_top", std::to_string(p.pad.top)},
                              {"pad_left", std::to_string(p.pad.left)},
                              {"pad_bottom", std::to_string(p.pad.bottom)},
                              {"pad_right", std::to_string(p.pad.right)},
                              {"value", float_param(p.value)}};
        step.args = {nhwc_arg(in), nhwc_arg(out)};
        step.description = "Pad " + tensor(in).logical.str() + " -> " + tensor(out).logical.str();
        emit(i, Epilogue{}, std::move(step));
    }

    void lower(size_t i, const Node& node, const GlobalAveragePool&) {
        const int in = tensor_index(node.inputs[0]);
        const PlannedTensor x = tensor(plan_.storage_of(in));
        const int out = make_tensor(node.output, x.channel_stride);
        PlannedStep step;
        step.output = out;
        step.inputs = {in};
        step.kernel.generator = "cardinal_global_average_pool";
        step.kernel.params = {{"batch", std::to_string(x.n)},
                              {"channel_stride", std::to_string(x.channel_stride)},
                              {"in_height", std::to_string(x.h)},
                              {"in_width", std::to_string(x.w)}};
        step.args = {nhwc_arg(in), nhwc_arg(out)};
        step.description = "GlobalAveragePool " + tensor(in).logical.str() + " -> " +
                           tensor(out).logical.str();
        emit(i, Epilogue{}, std::move(step));
    }

    // Flatten is free: the flattened tensor aliases its input's storage. When the input has a
    // spatial extent, the stored feature order is (h, w, c) rather than the IR's (c, h, w); Dense
    // weights are permuted to match and the output conversion reorders.
    void lower(size_t, const Node& node, const Flatten&) {
        const int in = tensor_index(node.inputs[0]);
        const int root = plan_.storage_of(in);
        const PlannedTensor x = tensor(root);
        const int out = make_tensor(node.output, x.channel_stride, root);
        PlannedTensor& y = plan_.tensors[out];
        if (tensor(in).logical.rank() == 4 && x.h * x.w > 1) {
            y.flat_c = x.c;
            y.flat_h = x.h;
            y.flat_w = x.w;
        } else if (tensor(in).flat_c) {
            y.flat_c = tensor(in).flat_c;
            y.flat_h = tensor(in).flat_h;
            y.flat_w = tensor(in).flat_w;
        }
    }

    void lower(size_t i, const Node& node, const Dense& dense) {
        const int in = tensor_index(node.inputs[0]);
        const PlannedTensor xin = tensor(in);
        const PlannedTensor x = tensor(plan_.storage_of(in));
        const int in_stride = x.channel_stride * x.h * x.w;
        Epilogue e = fuse_epilogue(node.output, false);
        const int out = make_padded_tensor(e.output);
        const PlannedTensor y = tensor(out);
        PlannedStep step;
        step.output = out;
        step.inputs = {in};
        step.kernel.generator = "cardinal_dense";
        step.kernel.params = {{"batch", std::to_string(y.n)},
                              {"in_stride", std::to_string(in_stride)},
                              {"out_stride", std::to_string(y.channel_stride)}};
        add_epilogue_params(step.kernel, e);
        const bool permuted = xin.flat_c > 0;
        step.args = {features_arg(in),
                     blob_arg(node.name + ".weights",
                              pack_dense_weights(dense, in_stride, y.channel_stride,
                                                 permuted ? xin.flat_h : 1,
                                                 permuted ? xin.flat_w : 1, x.channel_stride),
                              {16, in_stride, y.channel_stride / 16}),
                     blob_arg(node.name + ".bias", pack_bias(dense.bias, y.channel_stride),
                              {y.channel_stride}),
                     features_arg(out)};
        step.description = "Dense " + xin.logical.str() + " -> " + y.logical.str() + epilogue_text(e);
        emit(i, e, std::move(step));
    }

    void lower(size_t i, const Node& node, const Concat&) {
        const int out = make_padded_tensor(node.output);
        PlannedStep step;
        step.kind = StepKind::Concat;
        step.output = out;
        for (const std::string& t : node.inputs) {
            const int s = tensor_index(t);
            if (tensor(s).logical.rank() != 4) unsupported(node, "rank-2 operands");
            step.inputs.push_back(s);
        }
        step.description = "Concat -> " + tensor(out).logical.str();
        emit(i, Epilogue{}, std::move(step));
    }

    void lower(size_t i, const Node& node, const Softmax&) {
        const int in = tensor_index(node.inputs[0]);
        const PlannedTensor x = tensor(plan_.storage_of(in));
        if (x.h * x.w != 1 || tensor(in).flat_c)
            unsupported(node, "a Softmax over a flattened spatial tensor");
        const int out = make_tensor(node.output, x.channel_stride);
        PlannedStep step;
        step.output = out;
        step.inputs = {in};
        step.kernel.generator = "cardinal_softmax";
        step.kernel.params = {{"batch", std::to_string(x.n)},
                              {"channels", std::to_string(tensor(in).c)},
                              {"channel_stride", std::to_string(x.channel_stride)}};
        step.args = {features_arg(in), features_arg(out)};
        step.description = "Softmax " + tensor(out).logical.str();
        emit(i, Epilogue{}, std::move(step));
    }

    void check_same_storage_shape(const Node& node, int a, int b) const {
        const PlannedTensor &x = tensor(plan_.storage_of(a)), &y = tensor(plan_.storage_of(b));
        if (x.n != y.n || x.h != y.h || x.w != y.w || x.channel_stride != y.channel_stride ||
            tensor(a).flat_c != tensor(b).flat_c)
            unsupported(node, "operands stored with different layouts");
    }

    [[noreturn]] static void unsupported(const Node& node, const std::string& what) {
        throw Error("layer '" + node.name + "' (" + op_name(node.op) +
                    "): code generation does not support " + what);
    }

    Graph g_;
    LoweringOptions options_;
    NetworkPlan plan_;
    std::map<std::string, int> tensor_ids_;
    std::map<std::string, std::vector<size_t>> consumers_;
    std::set<size_t> absorbed_;
    std::map<size_t, size_t> relu_prologues_;  // depthwise conv node -> the ReLU it absorbs
    std::vector<std::pair<long, PlannedStep>> positioned_;
};

}  // namespace

int round_up(int v, int multiple) { return (v + multiple - 1) / multiple * multiple; }

NetworkPlan lower_graph(const Graph& graph, const LoweringOptions& options) {
    return Lowering(graph, options).run();
}

int64_t total_activation_bytes(const NetworkPlan& plan) {
    int64_t total = 0;
    for (const PlannedTensor& t : plan.tensors)
        if (t.alias_of < 0) total += t.stored_bytes();
    return total;
}

uint64_t weights_fingerprint(const NetworkPlan& plan) {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&](const std::string& s) {
        for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull;
    };
    mix("cardinal-weights-layout-1");
    mix(plan.model);
    mix(plan.input_shape.str());
    for (const WeightBlob& b : plan.blobs) {
        mix(b.name);
        mix(std::to_string(b.data.size()));
        mix(std::to_string(b.offset));
    }
    return h;
}

}  // namespace cardinal
