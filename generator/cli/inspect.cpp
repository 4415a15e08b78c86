// `cardinal inspect`: a network layer by layer (shapes, groups, parameters, MACs) and its totals,
// as a table or as JSON for scripts.
#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"

namespace cardinal::cli {

namespace {

// Keys stay in insertion order so the output reads model, totals, then layers.
using json = nlohmann::ordered_json;

template <class... Fs>
struct Overloaded : Fs... {
    using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

std::string size2(int h, int w) {
    return h == w ? std::to_string(h) : std::to_string(h) + "x" + std::to_string(w);
}

// "3x3/2" (kernel/stride) for convolutions and pools, "" for other ops.
std::string window_text(const Op& op) {
    auto text = [](int kh, int kw, int sh, int sw, int dh, int dw) {
        std::string s = std::to_string(kh) + "x" + std::to_string(kw);
        // Appends in steps: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string.
        if (sh != 1 || sw != 1) s.append("/").append(size2(sh, sw));
        if (dh != 1 || dw != 1) s.append(" d").append(size2(dh, dw));
        return s;
    };
    auto pool = [&](const PoolWindow& w) {
        return text(w.kernel_h, w.kernel_w, w.stride_h, w.stride_w, 1, 1);
    };
    return std::visit(Overloaded{
                          [&](const Conv2D& c) {
                              return text(c.kernel_h, c.kernel_w, c.stride_h, c.stride_w,
                                          c.dilation_h, c.dilation_w);
                          },
                          [&](const MaxPool& p) { return pool(p.window); },
                          [&](const AveragePool& p) { return pool(p.window); },
                          [](const auto&) { return std::string(); },
                      },
                      op);
}

// A float as the double with the same shortest decimal form (1e-05, not 9.99999974e-06).
double shortest(float f) {
    char buf[32];
    const auto end = std::to_chars(buf, buf + sizeof(buf), f).ptr;
    return std::strtod(std::string(buf, end).c_str(), nullptr);
}

json pad_json(const Padding2D& p) {
    return {p.top, p.left, p.bottom, p.right};
}

// Op attributes worth seeing in JSON; weights are left out.
void add_attributes(json& j, const Op& op) {
    auto window = [&](const PoolWindow& w) {
        j["kernel"] = {w.kernel_h, w.kernel_w};
        j["stride"] = {w.stride_h, w.stride_w};
        j["pad"] = pad_json(w.pad);
        j["ceil_mode"] = w.ceil_mode;
    };
    std::visit(Overloaded{
                   [&](const Conv2D& c) {
                       j["out_channels"] = c.out_channels;
                       j["groups"] = c.groups;
                       j["kernel"] = {c.kernel_h, c.kernel_w};
                       j["stride"] = {c.stride_h, c.stride_w};
                       j["dilation"] = {c.dilation_h, c.dilation_w};
                       j["pad"] = pad_json(c.pad);
                       j["bias"] = c.bias.has_value();
                   },
                   [&](const BatchNorm& b) { j["epsilon"] = shortest(b.epsilon); },
                   [&](const Clip& c) {
                       j["min"] = shortest(c.min);
                       j["max"] = shortest(c.max);
                   },
                   [&](const MaxPool& p) { window(p.window); },
                   [&](const AveragePool& p) {
                       window(p.window);
                       j["count_include_pad"] = p.count_include_pad;
                   },
                   [&](const Pad& p) {
                       j["pad"] = pad_json(p.pad);
                       j["value"] = shortest(p.value);
                   },
                   [&](const Dense& d) {
                       j["out_features"] = d.out_features;
                       j["bias"] = d.bias.has_value();
                   },
                   [](const auto&) {},
               },
               op);
}

void print_json(const Graph& g, int batch, int resolution) {
    json layers = json::array();
    for (const Node& n : g.nodes) {
        json shapes = json::array();
        for (const std::string& in : n.inputs)
            shapes.push_back(g.shape_of(in).dims);
        json layer = {
            {"name", n.name},
            {"op", op_name(n.op)},
            {"inputs", n.inputs},
            {"input_shapes", shapes},
            {"output", n.output},
            {"output_shape", g.shape_of(n.output).dims},
            {"params", count_node_params(n)},
            {"macs", count_node_macs(g, n)},
        };
        add_attributes(layer, n.op);
        layers.push_back(std::move(layer));
    }
    const int64_t macs = count_macs(g);
    const json top = {
        {"model", g.name},
        {"batch", batch},
        {"resolution", resolution},
        {"input_shape", g.input_shape.dims},
        {"output_shape", g.shape_of(g.output).dims},
        {"params", count_params(g)},
        {"bn_statistics", count_bn_statistics(g)},
        {"macs", macs},
        {"gflops", 2.0 * double(macs) / 1e9},
    };
    // One line per field and per layer: greppable and diffable, unlike dump(2), which puts every
    // shape dimension on its own line.
    std::cout << "{\n";
    for (const auto& [key, value] : top.items())
        std::cout << "  " << json(key).dump() << ": " << value.dump() << ",\n";
    std::cout << "  \"layers\": [";
    for (size_t i = 0; i < layers.size(); ++i)
        std::cout << (i ? ",\n    " : "\n    ") << layers[i].dump();
    std::cout << "\n  ]\n}\n";
}

void print_table(const Graph& g) {
    Table table({"layer", "op", "window", "groups", "input -> output", "params", "MACs"},
                {false, false, false, true, false, true, true});
    for (const Node& n : g.nodes) {
        std::string shapes;
        for (const std::string& in : n.inputs)
            shapes += (shapes.empty() ? "" : " + ") + g.shape_of(in).str();
        shapes += " -> " + g.shape_of(n.output).str();
        const auto* conv = std::get_if<Conv2D>(&n.op);
        const int64_t params = count_node_params(n), macs = count_node_macs(g, n);
        table.add({n.name, op_name(n.op), window_text(n.op),
                   conv ? std::to_string(conv->groups) : "", shapes,
                   params ? with_commas(params) : "", macs ? with_commas(macs) : ""});
    }
    const int64_t params = count_params(g), bn = count_bn_statistics(g), macs = count_macs(g);
    std::cout << g.name << ": input " << g.input_shape.str() << " -> output "
              << g.shape_of(g.output).str() << ", " << g.nodes.size() << " layers\n\n"
              << table.str() << "\n";
    const std::vector<std::array<std::string, 3>> totals = {
        {"params", with_commas(params), "trainable"},
        {"BN statistics", with_commas(bn), "running means and variances"},
        {"params + BN statistics", with_commas(params + bn), "what Keras reports"},
        {"MACs", with_commas(macs), "multiply-accumulates"},
        {"GFLOPs", fixed(2.0 * double(macs) / 1e9, 3), "2 x MACs"},
    };
    size_t label_width = 0, value_width = 0;
    for (const auto& t : totals) {
        label_width = std::max(label_width, t[0].size());
        value_width = std::max(value_width, t[1].size());
    }
    for (const auto& t : totals)
        std::cout << t[0] << std::string(label_width - t[0].size() + 2, ' ')
                  << std::string(value_width - t[1].size(), ' ') << t[1] << "  (" << t[2] << ")\n";
}

}  // namespace

int inspect_command(const Args& args) {
    po::options_description options("Options");
    ModelOptions m;
    add_model_options(options, m, /*with_seed=*/false);
    options.add_options()("json", "Print one JSON object instead of tables");
    po::variables_map vm;
    if (!parse_options({"inspect", "--model NAME [options]",
                        "Shows every layer of a network with its input and output shapes, "
                        "groups, parameters and multiply-accumulates (MACs), then the totals."},
                       options, args, vm))
        return 0;
    const Graph g = build_model(m);
    if (vm.count("json"))
        print_json(g, m.batch, static_cast<int>(g.input_shape[2]));
    else
        print_table(g);
    return 0;
}

}  // namespace cardinal::cli
