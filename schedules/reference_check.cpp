#include "schedules/reference_check.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <sstream>

#include "reference/reference.h"

namespace cardinal::tune {

namespace {

// The dims a kernel argument has when it views the whole stored tensor: NHWC (c, x, y, n) for
// 4-D tensors, (c, n) for N x C ones, or all of it as one flat dimension (elementwise kernels).
bool views_stored_layout(const KernelArg& arg, const PlannedTensor& t) {
    const int64_t cs = t.channel_stride;
    if (arg.dims.size() == 1)
        return arg.dims[0].extent == t.stored_elements() && arg.dims[0].stride == 1 &&
               (t.logical.rank() == 4 || t.flat_c == 0);
    if (t.logical.rank() == 4 && arg.dims.size() == 4)
        return arg.dims[0].extent == cs && arg.dims[0].stride == 1 && arg.dims[1].extent == t.w &&
               arg.dims[1].stride == cs && arg.dims[2].extent == t.h &&
               arg.dims[2].stride == cs * t.w && arg.dims[3].extent == t.n &&
               arg.dims[3].stride == cs * t.w * t.h;
    if (t.logical.rank() == 2 && t.flat_c == 0 && arg.dims.size() == 2)
        return arg.dims[0].extent == cs && arg.dims[0].stride == 1 && arg.dims[1].extent == t.n &&
               arg.dims[1].stride == cs;
    return false;
}

// Element (n, c, y, x) of a stored tensor is at ((n*h + y)*w + x)*channel_stride + c.
Tensor to_nchw(const PlannedTensor& t, const float* stored) {
    Tensor out(t.logical);
    const int64_t cs = t.channel_stride;
    float* o = out.ptr();
    for (int n = 0; n < t.n; ++n)
        for (int c = 0; c < t.c; ++c)
            for (int y = 0; y < t.h; ++y)
                for (int x = 0; x < t.w; ++x)
                    *o++ = stored[((int64_t(n) * t.h + y) * t.w + x) * cs + c];
    return out;
}

std::string compare(const Tensor& got, const Tensor& want) {
    double scale = 0;
    for (float v : want.data)
        scale = std::max(scale, double(std::fabs(v)));
    const double tolerance = 1e-4 * std::max(scale, 1e-3);
    size_t bad = 0, first = 0;
    double worst = 0;
    for (size_t i = 0; i < want.data.size(); ++i) {
        const double d = std::fabs(double(got.data[i]) - double(want.data[i]));
        if (!(d <= tolerance)) {  // NaN counts as a difference
            if (!bad) first = i;
            ++bad;
            worst = std::max(worst, std::isnan(d) ? INFINITY : d);
        }
    }
    if (!bad) return "";
    std::ostringstream s;
    s << bad << " of " << want.data.size() << " outputs differ from the reference implementation"
      << " (first at NCHW index " << first << ": " << got.data[first] << " vs " << want.data[first]
      << "; largest difference " << worst << ", tolerance " << tolerance << ")";
    return s.str();
}

std::vector<std::string> split_layers(const std::string& s) {
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t plus; (plus = s.find('+', start)) != std::string::npos; start = plus + 1)
        out.push_back(s.substr(start, plus - start));
    out.push_back(s.substr(start));
    return out;
}

}  // namespace

ReferenceCheck check_step_against_reference(const Graph& folded_graph, const NetworkPlan& plan,
                                            const PlannedStep& step,
                                            const std::vector<const float*>& args) {
    ReferenceCheck r;
    auto unchecked = [&r](const std::string& why) {
        r.detail = why;
        return r;
    };
    if (step.kind != StepKind::Kernel || args.size() != step.args.size() || args.empty())
        return unchecked("not a kernel step with its arguments");

    // The step's inputs, as the reference sees them.
    std::map<std::string, Tensor> env;
    for (size_t a = 0; a + 1 < step.args.size(); ++a) {
        const KernelArg& arg = step.args[a];
        if (arg.kind != KernelArg::Kind::Tensor) continue;
        const PlannedTensor& t = plan.tensors.at(size_t(arg.index));
        if (!views_stored_layout(arg, t))
            return unchecked("input '" + t.name + "' is viewed in a layout the check can't read");
        env[t.name] = to_nchw(t, args[a]);
    }
    const KernelArg& out_arg = step.args.back();
    const PlannedTensor& out = plan.tensors.at(size_t(step.output));
    if (out_arg.kind != KernelArg::Kind::Tensor || !views_stored_layout(out_arg, out))
        return unchecked("the output is viewed in a layout the check can't read");

    // Its nodes, in order (weights and folded biases come from the graph).
    for (const std::string& name : split_layers(step.layers)) {
        const auto node = std::find_if(folded_graph.nodes.begin(), folded_graph.nodes.end(),
                                       [&](const Node& n) { return n.name == name; });
        if (node == folded_graph.nodes.end())
            return unchecked("layer '" + name + "' is not in the graph");
        std::vector<const Tensor*> operands;
        for (const std::string& in : node->inputs) {
            const auto it = env.find(in);
            if (it == env.end())
                return unchecked("operand '" + in + "' of layer '" + name +
                                 "' is not an input of the step");
            operands.push_back(&it->second);
        }
        env[node->output] = reference::run_node(*node, operands);
    }
    const auto want = env.find(out.name);
    if (want == env.end())
        return unchecked("the step's output '" + out.name + "' was not computed");
    r.checked = true;
    r.difference = compare(to_nchw(out, args.back()), want->second);
    return r;
}

}  // namespace cardinal::tune
