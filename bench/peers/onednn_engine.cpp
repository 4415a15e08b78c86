#include "peers/onednn_engine.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "ir/error.h"
#include "passes/fold_batch_norm.h"
#include "peers/peer.h"

#ifdef CARDINAL_HAVE_DNNL
#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace cardinal::peers {

#ifndef CARDINAL_HAVE_DNNL

bool OnednnEngine::available() {
    return false;
}
std::string OnednnEngine::version() {
    return "oneDNN is not linked into this build (libdnnl-dev was not found when cardinal was "
           "configured)";
}
struct OnednnEngine::Impl {};
OnednnEngine::OnednnEngine(const Graph&, int) {
    throw PeerUnavailable(
        "oneDNN is not installed: cardinal was configured without "
        "libdnnl-dev (apt-get install libdnnl-dev, then reconfigure)");
}
OnednnEngine::~OnednnEngine() = default;
void OnednnEngine::set_num_threads(int) {}
void OnednnEngine::run(const float*, float*, double*) {}
int OnednnEngine::num_steps() const {
    return 0;
}
const OnednnStep& OnednnEngine::step(int) const {
    throw Error("oneDNN is not linked into this build.");
}
size_t OnednnEngine::activation_bytes() const {
    return 0;
}

#else

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
constexpr auto kF32 = memory::data_type::f32;

memory::dims dims_of(const Shape& s) {
    return memory::dims(s.dims.begin(), s.dims.end());
}

Tag plain_tag(size_t rank) {
    switch (rank) {
        case 1:
            return Tag::a;
        case 2:
            return Tag::ab;
        case 3:
            return Tag::abc;
        case 4:
            return Tag::abcd;
        case 5:
            return Tag::abcde;
    }
    throw Error("oneDNN peer: tensors of rank " + std::to_string(rank) + " are not supported.");
}

memory::desc plain_md(const Shape& s) {
    return memory::desc(dims_of(s), kF32, plain_tag(s.rank()));
}

// "nChw16c"-style name of a layout, for descriptions.
std::string layout_name(const memory::desc& md) {
    const dnnl_memory_desc_t& d = md.data;
    if (d.format_kind != dnnl_blocked) return "other";
    const auto& b = d.format_desc.blocking;
    // Dimensions outermost first by stride; inner blocks appended.
    std::vector<int> order(d.ndims);
    for (int i = 0; i < d.ndims; ++i)
        order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](int x, int y) { return b.strides[x] > b.strides[y]; });
    const char* letters = "abcdef";
    std::string s;
    for (int i : order) {
        bool blocked = false;
        for (int k = 0; k < b.inner_nblks; ++k)
            if (b.inner_idxs[k] == i) blocked = true;
        s += blocked ? char(std::toupper(letters[i])) : letters[i];
    }
    for (int k = 0; k < b.inner_nblks; ++k)
        s += std::to_string(b.inner_blks[k]) + letters[b.inner_idxs[k]];
    return s;
}

std::string activation_name(const Node& n) {
    if (std::holds_alternative<Relu>(n.op)) return "relu";
    const Clip& c = std::get<Clip>(n.op);
    char buf[64];
    std::snprintf(buf, sizeof buf, "clip(%g,%g)", c.min, c.max);
    return buf;
}

void append_activation(dnnl::post_ops& po, const Node& n) {
    if (std::holds_alternative<Relu>(n.op))
        po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    else {
        const Clip& c = std::get<Clip>(n.op);
        po.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, c.min, c.max);
    }
}

bool is_activation(const Node& n) {
    return std::holds_alternative<Relu>(n.op) || std::holds_alternative<Clip>(n.op);
}

// One planned primitive: a main IR node plus what it absorbs.
struct Plan {
    size_t main = 0;                      // index of the main node
    std::vector<size_t> nodes;            // all absorbed nodes, main first
    std::vector<std::string> inputs;      // tensors read (after pad/flatten absorption)
    std::optional<std::string> residual;  // sum post-op operand
    std::optional<size_t> activation;     // node index of a fused ReLU/Clip
    std::string output;                   // tensor produced
    Padding2D extra_pad;                  // an absorbed zero Pad in front of a conv
    bool flattened_src = false;           // a Dense reading a 4-D tensor through a Flatten
    size_t position = 0;                  // index of the last absorbed node
};

struct Binding {
    memory mem;
    int buffer;  // index into buffers; kScratch for the scratchpad
};

constexpr int kScratch = -2;

void* aligned(size_t bytes) {
    void* p = std::aligned_alloc(4096, std::max<size_t>(4096, (bytes + 4095) / 4096 * 4096));
    if (!p) throw std::bad_alloc();
    return p;
}

struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
};

}  // namespace

struct OnednnEngine::Impl {
    dnnl::engine eng{dnnl::engine::kind::cpu, 0};
    dnnl::stream strm{eng};
    int threads = 0;

    struct Step {
        dnnl::primitive prim;
        std::unordered_map<int, memory> args;
    };
    std::vector<Step> steps;
    std::vector<OnednnStep> info;

    // Activation buffers: sizes while planning, then storage.
    std::vector<size_t> buffer_size;
    std::vector<bool> buffer_free;
    std::vector<bool> buffer_dedicated;  // never returned to the pool (Pad outputs)
    std::vector<float> buffer_fill;      // initial value of a dedicated buffer
    std::vector<std::unique_ptr<void, FreeDeleter> > storage;
    size_t scratch_bytes = 0;
    std::unique_ptr<void, FreeDeleter> scratch;
    std::vector<Binding> bindings;
    std::vector<memory> owned;  // weights, biases, statistics in oneDNN's layouts

    memory input_mem, output_mem;

    // Per tensor while building.
    struct TensorState {
        memory::desc md;
        int buffer = -1;                                    // -1: the user's input
        std::vector<std::pair<memory::desc, int> > copies;  // reordered copies and their buffers
    };
    std::map<std::string, TensorState> tensors;
    std::map<std::string, size_t> last_use;  // tensor -> index of the last plan reading it

    int acquire(size_t bytes) {
        int best = -1;
        for (size_t i = 0; i < buffer_size.size(); ++i) {
            if (!buffer_free[i] || buffer_dedicated[i]) continue;
            if (buffer_size[i] >= bytes) {
                if (best < 0 || buffer_size[best] < bytes || buffer_size[i] < buffer_size[best])
                    best = int(i);
            } else if (best < 0 ||
                       (buffer_size[best] < bytes && buffer_size[i] > buffer_size[best])) {
                best = int(i);
            }
        }
        if (best < 0) {
            buffer_size.push_back(bytes);
            buffer_free.push_back(false);
            buffer_dedicated.push_back(false);
            buffer_fill.push_back(0.f);
            return int(buffer_size.size() - 1);
        }
        buffer_size[best] = std::max(buffer_size[best], bytes);
        buffer_free[best] = false;
        return best;
    }

    int dedicated(size_t bytes, float fill) {
        buffer_size.push_back(bytes);
        buffer_free.push_back(false);
        buffer_dedicated.push_back(true);
        buffer_fill.push_back(fill);
        return int(buffer_size.size() - 1);
    }

    memory bind(const memory::desc& md, int buffer) {
        if (buffer == -1) return input_mem;
        memory m(md, eng, DNNL_MEMORY_NONE);
        bindings.push_back({m, buffer});
        return m;
    }

    void add_step(dnnl::primitive prim, std::unordered_map<int, memory> args, OnednnStep i) {
        steps.push_back({std::move(prim), std::move(args)});
        info.push_back(std::move(i));
    }

    void add_reorder(const memory& from, const memory& to, const std::string& what) {
        OnednnStep i;
        i.description =
            what + ": " + layout_name(from.get_desc()) + " -> " + layout_name(to.get_desc());
        dnnl::reorder::primitive_desc pd(from, to, reorder_attr());
        note_scratch(pd);
        i.impl = pd.impl_info_str();
        i.bytes = int64_t(from.get_desc().get_size() + to.get_desc().get_size());
        std::unordered_map<int, memory> args = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        add_scratch_arg(args, pd);
        add_step(dnnl::reorder(pd), std::move(args), std::move(i));
    }

    static dnnl::primitive_attr reorder_attr() {
        dnnl::primitive_attr a;
        a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        return a;
    }

    void note_scratch(const dnnl::primitive_desc_base& pd) {
        scratch_bytes = std::max(scratch_bytes, pd.scratchpad_desc().get_size());
    }
    void add_scratch_arg(std::unordered_map<int, memory>& args,
                         const dnnl::primitive_desc_base& pd) {
        if (pd.scratchpad_desc().get_size() == 0) return;
        memory m(pd.scratchpad_desc(), eng, DNNL_MEMORY_NONE);
        bindings.push_back({m, kScratch});
        args[DNNL_ARG_SCRATCHPAD] = m;
    }

    // The tensor in layout `md`: itself, or a reordered copy (made once, kept as long as the
    // tensor lives).
    memory get(const std::string& tensor, const memory::desc& md) {
        TensorState& t = tensors.at(tensor);
        if (t.md == md) return bind(t.md, t.buffer);
        for (const auto& [cmd, buf] : t.copies)
            if (cmd == md) return bind(cmd, buf);
        const int buf = acquire(md.get_size());
        memory to = bind(md, buf);
        add_reorder(bind(t.md, t.buffer), to, "reorder " + tensor);
        t.copies.push_back({md, buf});
        return to;
    }

    // Owned constant memory in `md`, filled from plain data `values` of layout `user`.
    memory constant(const memory::desc& user, const float* values, const memory::desc& md) {
        memory src(user, eng, const_cast<float*>(values));
        memory dst(md, eng);
        if (user == md) {
            std::memcpy(dst.get_data_handle(), values, user.get_size());
        } else {
            dnnl::reorder(src, dst).execute(strm, src, dst);
            strm.wait();
        }
        owned.push_back(dst);
        return dst;
    }

    void release_after(size_t plan_index) {
        for (auto& [name, t] : tensors) {
            auto it = last_use.find(name);
            if (it == last_use.end() || it->second != plan_index) continue;
            if (t.buffer >= 0 && !buffer_dedicated[t.buffer]) buffer_free[t.buffer] = true;
            for (const auto& c : t.copies)
                buffer_free[c.second] = true;
            t.buffer = -3;  // dead
            t.copies.clear();
        }
    }
};

bool OnednnEngine::available() {
    return true;
}

std::string OnednnEngine::version() {
    const dnnl_version_t* v = dnnl_version();
    return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
           std::to_string(v->patch) + " (OpenMP)";
}

void OnednnEngine::set_num_threads(int threads) {
    if (threads > 0) omp_set_num_threads(threads);
}

OnednnEngine::OnednnEngine(const Graph& original, int threads) : impl_(std::make_unique<Impl>()) {
    Impl& I = *impl_;
    I.threads = threads;
    set_num_threads(threads);
    const Graph g = fold_batch_norm(original);
    const auto& nodes = g.nodes;

    // Readers of each tensor (the graph output counts as read by the caller).
    std::map<std::string, std::vector<size_t> > readers;
    for (size_t i = 0; i < nodes.size(); ++i)
        for (const std::string& t : nodes[i].inputs)
            readers[t].push_back(i);
    std::map<std::string, size_t> producer;
    for (size_t i = 0; i < nodes.size(); ++i)
        producer[nodes[i].output] = i;
    std::vector<bool> absorbed(nodes.size(), false);
    // The one node reading `t`, if exactly one does and it is not yet part of another plan.
    auto only_reader = [&](const std::string& t) -> std::optional<size_t> {
        if (t == g.output) return std::nullopt;
        auto it = readers.find(t);
        if (it == readers.end() || it->second.size() != 1 || absorbed[it->second[0]])
            return std::nullopt;
        return it->second[0];
    };

    // Plans: fuse activations and residual sums into convolutions, zero pads into their
    // convolution, flattens into their dense layer.
    std::vector<Plan> plans;
    for (size_t i = 0; i < nodes.size(); ++i) {
        if (absorbed[i]) continue;
        const Node& n = nodes[i];
        Plan p;
        p.main = i;
        p.nodes = {i};
        p.inputs = n.inputs;
        p.output = n.output;
        p.position = i;
        auto absorb = [&](size_t j) {
            absorbed[j] = true;
            p.nodes.push_back(j);
            p.output = nodes[j].output;
            p.position = std::max(p.position, j);
        };
        auto absorb_activation = [&] {
            if (auto r = only_reader(p.output); r && is_activation(nodes[*r])) {
                p.activation = *r;
                absorb(*r);
            }
        };
        if (std::holds_alternative<Pad>(n.op)) {
            // A zero pad whose only reader is a convolution becomes that convolution's padding.
            const Pad& pad = std::get<Pad>(n.op);
            if (auto r = only_reader(n.output);
                r && pad.value == 0.f && std::holds_alternative<Conv2D>(nodes[*r].op))
                continue;  // handled by the conv
        }
        if (std::holds_alternative<Flatten>(n.op) && g.shape_of(n.inputs[0]).rank() == 4) {
            if (auto r = only_reader(n.output); r && std::holds_alternative<Dense>(nodes[*r].op))
                continue;  // handled by the dense layer
        }
        if (std::holds_alternative<Conv2D>(n.op)) {
            // The input through an absorbed zero pad.
            if (auto pi = producer.find(n.inputs[0]); pi != producer.end()) {
                const Node& pn = nodes[pi->second];
                if (std::holds_alternative<Pad>(pn.op) && std::get<Pad>(pn.op).value == 0.f &&
                    only_reader(pn.output) == i) {
                    p.extra_pad = std::get<Pad>(pn.op).pad;
                    p.inputs = pn.inputs;
                    p.nodes.push_back(pi->second);
                }
            }
            if (auto r = only_reader(p.output); r && std::holds_alternative<Add>(nodes[*r].op) &&
                                                nodes[*r].inputs[0] != nodes[*r].inputs[1]) {
                const Node& add = nodes[*r];
                p.residual = add.inputs[0] == p.output ? add.inputs[1] : add.inputs[0];
                absorb(*r);
            }
            absorb_activation();
        } else if (std::holds_alternative<Dense>(n.op)) {
            if (auto pi = producer.find(n.inputs[0]); pi != producer.end()) {
                const Node& pn = nodes[pi->second];
                if (std::holds_alternative<Flatten>(pn.op) &&
                    g.shape_of(pn.inputs[0]).rank() == 4 && only_reader(pn.output) == i) {
                    p.flattened_src = true;
                    p.inputs = pn.inputs;
                    p.nodes.push_back(pi->second);
                }
            }
            absorb_activation();
        } else if (std::holds_alternative<Add>(n.op)) {
            absorb_activation();
        }
        plans.push_back(std::move(p));
    }
    std::stable_sort(plans.begin(), plans.end(),
                     [](const Plan& a, const Plan& b) { return a.position < b.position; });

    for (size_t pi = 0; pi < plans.size(); ++pi) {
        for (const std::string& t : plans[pi].inputs)
            I.last_use[t] = pi;
        if (plans[pi].residual) I.last_use[*plans[pi].residual] = pi;
    }
    I.last_use.erase(g.output);  // kept until the final reorder

    I.input_mem = memory(plain_md(g.input_shape), I.eng, DNNL_MEMORY_NONE);
    I.tensors[g.input] = {plain_md(g.input_shape), -1, {}};

    auto names_of = [&](const Plan& p) {
        std::vector<size_t> idx = p.nodes;
        std::sort(idx.begin(), idx.end());
        std::string s;
        for (size_t j : idx)
            s += (s.empty() ? "" : "+") + nodes[j].name;
        return s;
    };
    auto attr_for = [&](const Plan& p) {
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        dnnl::post_ops po;
        if (p.residual) po.append_sum(1.f);
        if (p.activation) append_activation(po, nodes[*p.activation]);
        attr.set_post_ops(po);
        return attr;
    };
    auto suffix_of = [&](const Plan& p) {
        std::string s;
        if (p.residual) s += ", sum";
        if (p.activation) s += ", " + activation_name(nodes[*p.activation]);
        return s;
    };
    // The layout a tensor was produced in: element-wise, pooling, binary, softmax and concat
    // primitives take it as it is (pooling and inner product fall back to format any, then a
    // reorder converts, if oneDNN has no implementation for it).
    auto src_md_for = [&](const std::string& t) { return I.tensors.at(t).md; };
    // Output buffer for a new tensor: in place of `reuse` when it dies here with the same
    // layout and is not the user's input, else from the pool.
    auto output_buffer = [&](const memory::desc& md, size_t pi,
                             const std::optional<std::string>& reuse) -> int {
        if (reuse) {
            auto& t = I.tensors.at(*reuse);
            auto lu = I.last_use.find(*reuse);
            if (t.buffer >= 0 && !I.buffer_dedicated[t.buffer] && t.md == md &&
                lu != I.last_use.end() && lu->second == pi) {
                const int b = t.buffer;
                t.buffer = -3;  // handed over: not freed again
                return b;
            }
        }
        return I.acquire(md.get_size());
    };

    for (size_t pi = 0; pi < plans.size(); ++pi) {
        const Plan& p = plans[pi];
        const Node& n = nodes[p.main];
        OnednnStep info;
        info.layers = names_of(p);
        const Shape& out_shape = g.shape_of(n.output);
        std::string what;
        try {
            if (const Conv2D* c = std::get_if<Conv2D>(&n.op)) {
                const Shape& xs = g.shape_of(p.inputs[0]);
                const int64_t G = c->groups, O = c->out_channels, C = xs[1];
                const memory::dims wdims =
                    G == 1 ? memory::dims{O, C, c->kernel_h, c->kernel_w}
                           : memory::dims{G, O / G, C / G, c->kernel_h, c->kernel_w};
                const memory::desc w_user(wdims, kF32, G == 1 ? Tag::oihw : Tag::goihw);
                const memory::desc any_src(dims_of(xs), kF32, Tag::any);
                const memory::desc any_w(wdims, kF32, Tag::any);
                const memory::desc any_dst(dims_of(out_shape), kF32, Tag::any);
                const memory::desc bias_md({O}, kF32, Tag::x);
                const Padding2D pad{c->pad.top + p.extra_pad.top, c->pad.left + p.extra_pad.left,
                                    c->pad.bottom + p.extra_pad.bottom,
                                    c->pad.right + p.extra_pad.right};
                const memory::dims strides{c->stride_h, c->stride_w};
                const memory::dims dil{c->dilation_h - 1, c->dilation_w - 1};
                const memory::dims pl{pad.top, pad.left}, pr{pad.bottom, pad.right};
                const auto prop = dnnl::prop_kind::forward_inference;
                const auto alg = dnnl::algorithm::convolution_direct;
                auto make = [&](const memory::desc& src) {
                    const auto d =
                        c->bias ? dnnl::convolution_forward::desc(prop, alg, src, any_w, bias_md,
                                                                  any_dst, strides, dil, pl, pr)
                                : dnnl::convolution_forward::desc(prop, alg, src, any_w, any_dst,
                                                                  strides, dil, pl, pr);
                    return dnnl::convolution_forward::primitive_desc(d, attr_for(p), I.eng, true);
                };
                // format any for the source too: oneDNN picks the layout its fastest kernel
                // wants (nhwc for brgemm 1x1, 4- or 8-channel blocks for ResNeXt's narrow groups)
                // and a reorder converts the producer's output where they differ. Forcing the
                // producer's layout instead was tried: fewer reorders, but AVX2 kernels for the
                // grouped convs, no faster overall.
                const dnnl::convolution_forward::primitive_desc pd = make(any_src);
                if (!pd) throw Error("no convolution implementation");
                I.note_scratch(pd);
                std::unordered_map<int, memory> args;
                args[DNNL_ARG_SRC] = I.get(p.inputs[0], pd.src_desc());
                args[DNNL_ARG_WEIGHTS] = I.constant(w_user, c->weight.ptr(), pd.weights_desc());
                if (c->bias) args[DNNL_ARG_BIAS] = I.constant(bias_md, c->bias->ptr(), bias_md);
                const memory::desc dst_md = pd.dst_desc();
                int buf = -1;
                if (p.residual) {
                    // The sum post-op accumulates into the destination: it must hold the other
                    // operand. In place when that operand dies here in the same layout, else
                    // copied (and converted) into a fresh buffer first.
                    auto& r = I.tensors.at(*p.residual);
                    auto lu = I.last_use.find(*p.residual);
                    if (*p.residual != p.inputs[0] && r.buffer >= 0 &&
                        !I.buffer_dedicated[size_t(r.buffer)] && r.md == dst_md &&
                        lu != I.last_use.end() && lu->second == pi) {
                        buf = r.buffer;
                        r.buffer = -3;  // handed over: not freed again
                    } else {
                        buf = I.acquire(dst_md.get_size());
                        I.add_reorder(I.bind(r.md, r.buffer), I.bind(dst_md, buf),
                                      "residual " + *p.residual + " into " + n.name);
                    }
                } else {
                    buf = I.acquire(dst_md.get_size());
                }
                memory dst = I.bind(dst_md, buf);
                args[DNNL_ARG_DST] = dst;
                I.add_scratch_arg(args, pd);
                const std::string kind = G == 1               ? ""
                                         : (G == C && O == C) ? " dw"
                                                              : " g" + std::to_string(G);
                const std::string buf_desc = "Conv2D " + std::to_string(c->kernel_h) + "x" +
                                             std::to_string(c->kernel_w) + "/" +
                                             std::to_string(c->stride_h) + kind + ", " + xs.str() +
                                             " -> " + out_shape.str();
                info.description = buf_desc + suffix_of(p);
                info.impl = pd.impl_info_str();
                info.macs = count_node_macs(g, n);
                info.bytes = int64_t(pd.src_desc().get_size() + pd.weights_desc().get_size() +
                                     dst_md.get_size() * (p.residual ? 2 : 1) +
                                     (c->bias ? bias_md.get_size() : 0));
                I.add_step(dnnl::convolution_forward(pd), std::move(args), info);
                I.release_after(pi);
                I.tensors[p.output] = {dst_md, buf, {}};
            } else if (const Dense* dn = std::get_if<Dense>(&n.op)) {
                const Shape& xs = g.shape_of(p.inputs[0]);
                const int64_t O = dn->out_features;
                memory::dims wdims{O, xs[1]};
                Tag wtag = Tag::oi;
                if (p.flattened_src) {
                    wdims = {O, xs[1], xs[2], xs[3]};
                    wtag = Tag::oihw;
                }
                const memory::desc w_user(wdims, kF32, wtag);
                const memory::desc any_w(wdims, kF32, Tag::any);
                const memory::desc bias_md({O}, kF32, Tag::x);
                const memory::desc dst_any({xs[0], O}, kF32, Tag::any);
                const auto prop = dnnl::prop_kind::forward_inference;
                dnnl::inner_product_forward::primitive_desc pd;
                for (const memory::desc& src :
                     {src_md_for(p.inputs[0]), memory::desc(dims_of(xs), kF32, Tag::any)}) {
                    const auto d =
                        dn->bias
                            ? dnnl::inner_product_forward::desc(prop, src, any_w, bias_md, dst_any)
                            : dnnl::inner_product_forward::desc(prop, src, any_w, dst_any);
                    pd = dnnl::inner_product_forward::primitive_desc(d, attr_for(p), I.eng, true);
                    if (pd) break;
                }
                if (!pd) throw Error("no inner product implementation");
                I.note_scratch(pd);
                std::unordered_map<int, memory> args;
                args[DNNL_ARG_SRC] = I.get(p.inputs[0], pd.src_desc());
                args[DNNL_ARG_WEIGHTS] = I.constant(w_user, dn->weight.ptr(), pd.weights_desc());
                if (dn->bias) args[DNNL_ARG_BIAS] = I.constant(bias_md, dn->bias->ptr(), bias_md);
                const int buf = I.acquire(pd.dst_desc().get_size());
                args[DNNL_ARG_DST] = I.bind(pd.dst_desc(), buf);
                I.add_scratch_arg(args, pd);
                info.description = "Dense " + xs.str() + " -> " + out_shape.str() + suffix_of(p);
                info.impl = pd.impl_info_str();
                info.macs = count_node_macs(g, n);
                info.bytes = int64_t(pd.src_desc().get_size() + pd.weights_desc().get_size() +
                                     pd.dst_desc().get_size());
                I.add_step(dnnl::inner_product_forward(pd), std::move(args), info);
                I.release_after(pi);
                I.tensors[p.output] = {pd.dst_desc(), buf, {}};
            } else if (std::holds_alternative<Add>(n.op)) {
                const memory::desc md = src_md_for(p.inputs[0]);
                dnnl::binary::desc d(dnnl::algorithm::binary_add, md, md, md);
                dnnl::binary::primitive_desc pd(d, attr_for(p), I.eng);
                I.note_scratch(pd);
                std::unordered_map<int, memory> args;
                args[DNNL_ARG_SRC_0] = I.get(p.inputs[0], md);
                args[DNNL_ARG_SRC_1] = I.get(p.inputs[1], md);
                const int buf = p.inputs[0] != p.inputs[1] ? output_buffer(md, pi, p.inputs[0])
                                                           : I.acquire(md.get_size());
                args[DNNL_ARG_DST] = I.bind(md, buf);
                I.add_scratch_arg(args, pd);
                info.description = "Add " + out_shape.str() + suffix_of(p);
                info.impl = pd.impl_info_str();
                info.bytes = int64_t(3 * md.get_size());
                I.add_step(dnnl::binary(pd), std::move(args), info);
                I.release_after(pi);
                I.tensors[p.output] = {md, buf, {}};
            } else if (is_activation(n)) {
                const memory::desc md = src_md_for(p.inputs[0]);
                const bool relu = std::holds_alternative<Relu>(n.op);
                const float lo = relu ? 0.f : std::get<Clip>(n.op).min;
                const float hi = relu ? 0.f : std::get<Clip>(n.op).max;
                dnnl::eltwise_forward::desc d(
                    dnnl::prop_kind::forward_inference,
                    relu ? dnnl::algorithm::eltwise_relu : dnnl::algorithm::eltwise_clip, md, lo,
                    hi);
                dnnl::primitive_attr attr;
                attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
                dnnl::eltwise_forward::primitive_desc pd(d, attr, I.eng);
                I.note_scratch(pd);
                std::unordered_map<int, memory> args;
                args[DNNL_ARG_SRC] = I.get(p.inputs[0], md);
                const int buf = output_buffer(md, pi, p.inputs[0]);
                args[DNNL_ARG_DST] = I.bind(md, buf);
                I.add_scratch_arg(args, pd);
                info.description = (relu ? std::string("Relu ") : "Clip ") + out_shape.str();
                info.impl = pd.impl_info_str();
                info.bytes = int64_t(2 * md.get_size());
                I.add_step(dnnl::eltwise_forward(pd), std::move(args), info);
                I.release_after(pi);
                I.tensors[p.output] = {md, buf, {}};
            } else if (std::holds_alternative<MaxPool>(n.op) ||
                       std::holds_alternative<AveragePool>(n.op) ||
                       std::holds_alternative<GlobalAveragePool>(n.op)) {
                const Shape& xs = g.shape_of(p.inputs[0]);
                PoolWindow w;
                dnnl::algorithm alg = dnnl::algorithm::pooling_max;
                if (const MaxPool* mp = std::get_if<MaxPool>(&n.op)) {
                    w = mp->window;
                    info.description = "MaxPool ";
                } else if (const AveragePool* ap = std::get_if<AveragePool>(&n.op)) {
                    w = ap->window;
                    alg = ap->count_include_pad ? dnnl::algorithm::pooling_avg_include_padding
                                                : dnnl::algorithm::pooling_avg_exclude_padding;
                    info.description = "AveragePool ";
                } else {
                    w.kernel_h = int(xs[2]);
                    w.kernel_w = int(xs[3]);
                    alg = dnnl::algorithm::pooling_avg_exclude_padding;
                    info.description = "GlobalAveragePool ";
                }
                // ceil_mode: extend the right padding until oneDNN's floor formula gives the
                // IR's output size.
                const int64_t need_b =
                    (out_shape[2] - 1) * w.stride_h + w.kernel_h - xs[2] - w.pad.top;
                const int64_t need_r =
                    (out_shape[3] - 1) * w.stride_w + w.kernel_w - xs[3] - w.pad.left;
                const int64_t pb = std::max<int64_t>(w.pad.bottom, need_b);
                const int64_t pr = std::max<int64_t>(w.pad.right, need_r);
                if (alg == dnnl::algorithm::pooling_avg_include_padding &&
                    (pb > w.pad.bottom || pr > w.pad.right))
                    throw Error(
                        "an average pool that counts padding in its divisor but not the "
                        "taps ceil_mode adds has no oneDNN equivalent");
                const memory::desc dst_any(dims_of(out_shape), kF32, Tag::any);
                dnnl::primitive_attr attr;
                attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
                dnnl::pooling_forward::primitive_desc pd;
                for (const memory::desc& src :
                     {src_md_for(p.inputs[0]), memory::desc(dims_of(xs), kF32, Tag::any)}) {
                    dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, alg, src,
                                                  dst_any, {w.stride_h, w.stride_w},
                                                  {w.kernel_h, w.kernel_w}, {w.pad.top, w.pad.left},
                                                  {pb, pr});
                    pd = dnnl::pooling_forward::primitive_desc(d, attr, I.eng, true);
                    if (pd) break;
                }
                if (!pd) throw Error("no pooling implementation");
                I.note_scratch(pd);
                std::unordered_map<int, memory> args;
                args[DNNL_ARG_SRC] = I.get(p.inputs[0], pd.src_desc());
                const int buf = I.acquire(pd.dst_desc().get_size());
                args[DNNL_ARG_DST] = I.bind(pd.dst_desc(), buf);
                I.add_scratch_arg(args, pd);
                info.description += std::to_string(w.kernel_h) + "x" + std::to_string(w.kernel_w) +
                                    "/" + std::to_string(w.stride_h) + ", " + xs.str() + " -> " +
                                    out_shape.str();
                info.impl = pd.impl_info_str();
                info.bytes = int64_t(pd.src_desc().get_size() + pd.dst_desc().get_size());
                I.add_step(dnnl::pooling_forward(pd), std::move(args), info);
                I.release_after(pi);
                I.tensors[p.output] = {pd.dst_desc(), buf, {}};
            } else if (const BatchNorm* bn = std::get_if<BatchNorm>(&n.op)) {
                const memory::desc md = src_md_for(p.inputs[0]);
                const auto flags = dnnl::normalization_flags::use_global_stats |
                                   dnnl::normalization_flags::use_scale |
                                   dnnl::normalization_flags::use_shift;
                dnnl::batch_normalization_forward::desc d(dnnl::prop_kind::forward_inference, md,
                                                          bn->epsilon, flags);
                dnnl::primitive_attr attr;
                attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
                dnnl::batch_normalization_forward::primitive_desc pd(d, attr, I.eng);
                I.note_scratch(pd);
                const int64_t C = g.shape_of(p.inputs[0])[1];
                const memory::desc cmd({C}, kF32, Tag::x);
                std::unordered_map<int, memory> args;
                args[DNNL_ARG_SRC] = I.get(p.inputs[0], md);
                args[DNNL_ARG_MEAN] = I.constant(cmd, bn->mean.ptr(), cmd);
                args[DNNL_ARG_VARIANCE] = I.constant(cmd, bn->var.ptr(), cmd);
                args[DNNL_ARG_SCALE] = I.constant(cmd, bn->gamma.ptr(), cmd);
                args[DNNL_ARG_SHIFT] = I.constant(cmd, bn->beta.ptr(), cmd);
                const int buf = I.acquire(md.get_size());
                args[DNNL_ARG_DST] = I.bind(md, buf);
                I.add_scratch_arg(args, pd);
                info.description = "BatchNorm " + out_shape.str();
                info.impl = pd.impl_info_str();
                info.bytes = int64_t(2 * md.get_size());
                I.add_step(dnnl::batch_normalization_forward(pd), std::move(args), info);
                I.release_after(pi);
                I.tensors[p.output] = {md, buf, {}};
            } else if (std::holds_alternative<Concat>(n.op)) {
                std::vector<memory::desc> srcs;
                for (const std::string& t : p.inputs)
                    srcs.push_back(src_md_for(t));
                dnnl::primitive_attr attr;
                attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
                dnnl::concat::primitive_desc pd(1, srcs, I.eng, attr);
                I.note_scratch(pd);
                std::unordered_map<int, memory> args;
                int64_t bytes = 0;
                for (size_t k = 0; k < p.inputs.size(); ++k) {
                    args[DNNL_ARG_MULTIPLE_SRC + int(k)] = I.get(p.inputs[k], srcs[k]);
                    bytes += int64_t(srcs[k].get_size());
                }
                const int buf = I.acquire(pd.dst_desc().get_size());
                args[DNNL_ARG_DST] = I.bind(pd.dst_desc(), buf);
                I.add_scratch_arg(args, pd);
                info.description = "Concat -> " + out_shape.str();
                info.impl = pd.impl_info_str();
                info.bytes = bytes + int64_t(pd.dst_desc().get_size());
                I.add_step(dnnl::concat(pd), std::move(args), info);
                I.release_after(pi);
                I.tensors[p.output] = {pd.dst_desc(), buf, {}};
            } else if (std::holds_alternative<Softmax>(n.op)) {
                const memory::desc md = src_md_for(p.inputs[0]);
                dnnl::softmax_forward::desc d(dnnl::prop_kind::forward_inference, md, 1);
                dnnl::primitive_attr attr;
                attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
                dnnl::softmax_forward::primitive_desc pd(d, attr, I.eng);
                I.note_scratch(pd);
                std::unordered_map<int, memory> args;
                args[DNNL_ARG_SRC] = I.get(p.inputs[0], md);
                const int buf = output_buffer(md, pi, p.inputs[0]);
                args[DNNL_ARG_DST] = I.bind(md, buf);
                I.add_scratch_arg(args, pd);
                info.description = "Softmax " + out_shape.str();
                info.impl = pd.impl_info_str();
                info.bytes = int64_t(2 * md.get_size());
                I.add_step(dnnl::softmax_forward(pd), std::move(args), info);
                I.release_after(pi);
                I.tensors[p.output] = {md, buf, {}};
            } else if (const Pad* pad = std::get_if<Pad>(&n.op)) {
                // Constant pad: a reorder into the interior of a plain buffer whose border
                // holds the pad value (written once; the buffer is never shared).
                const Shape& xs = g.shape_of(p.inputs[0]);
                const memory::desc out_md = plain_md(out_shape);
                const int buf = I.dedicated(out_md.get_size(), pad->value);
                memory whole = I.bind(out_md, buf);
                const memory::desc inner =
                    out_md.submemory_desc(dims_of(xs), {0, 0, pad->pad.top, pad->pad.left});
                memory view = I.bind(inner, buf);
                I.add_reorder(I.get(p.inputs[0], src_md_for(p.inputs[0])), view, "Pad " + n.name);
                I.info.back().layers = info.layers;
                I.release_after(pi);
                I.tensors[p.output] = {out_md, buf, {}};
                continue;
            } else if (std::holds_alternative<Flatten>(n.op)) {
                // To plain layout, then the same bytes seen as N x features.
                const Shape& xs = g.shape_of(p.inputs[0]);
                const memory::desc plain = plain_md(xs);
                const int buf = I.acquire(plain.get_size());
                I.add_reorder(I.get(p.inputs[0], src_md_for(p.inputs[0])), I.bind(plain, buf),
                              "Flatten " + n.name);
                I.info.back().layers = info.layers;
                I.release_after(pi);
                I.tensors[p.output] = {plain_md(out_shape), buf, {}};
                continue;
            } else {
                throw Error("op " + op_name(n.op) + " has no oneDNN mapping");
            }
        } catch (const dnnl::error& e) {
            throw Error("oneDNN peer: layer '" + n.name + "' (" + op_name(n.op) +
                        "): oneDNN refused it: " + e.what() + ".");
        } catch (const Error& e) {
            const std::string m = e.what();
            if (m.rfind("oneDNN peer:", 0) == 0) throw;
            throw Error("oneDNN peer: layer '" + n.name + "' (" + op_name(n.op) + "): " + m + ".");
        }
    }

    // The output, back to the plain layout of the IR.
    const Shape& os = g.shape_of(g.output);
    I.output_mem = memory(plain_md(os), I.eng, DNNL_MEMORY_NONE);
    {
        auto& t = I.tensors.at(g.output);
        I.add_reorder(I.bind(t.md, t.buffer), I.output_mem, "output " + g.output);
    }

    // Storage, then every memory object gets its handle.
    for (size_t b = 0; b < I.buffer_size.size(); ++b) {
        I.storage.emplace_back(aligned(I.buffer_size[b]));
        if (I.buffer_dedicated[b]) {
            float* f = static_cast<float*>(I.storage.back().get());
            std::fill(f, f + I.buffer_size[b] / sizeof(float), I.buffer_fill[b]);
        }
    }
    if (I.scratch_bytes) I.scratch.reset(aligned(I.scratch_bytes));
    for (Binding& bd : I.bindings)
        bd.mem.set_data_handle(bd.buffer == kScratch ? I.scratch.get()
                                                     : I.storage[size_t(bd.buffer)].get());
    I.tensors.clear();
}

OnednnEngine::~OnednnEngine() = default;

void OnednnEngine::run(const float* input, float* output, double* step_seconds) {
    Impl& I = *impl_;
    set_num_threads(I.threads);
    I.input_mem.set_data_handle(const_cast<float*>(input));
    I.output_mem.set_data_handle(output);
    using clock = std::chrono::steady_clock;
    for (size_t s = 0; s < I.steps.size(); ++s) {
        const auto t0 = clock::now();
        I.steps[s].prim.execute(I.strm, I.steps[s].args);
        if (step_seconds) {
            I.strm.wait();
            step_seconds[s] = std::chrono::duration<double>(clock::now() - t0).count();
        }
    }
    I.strm.wait();
}

int OnednnEngine::num_steps() const {
    return int(impl_->steps.size());
}
const OnednnStep& OnednnEngine::step(int i) const {
    return impl_->info.at(size_t(i));
}
size_t OnednnEngine::activation_bytes() const {
    size_t total = impl_->scratch_bytes;
    for (size_t b : impl_->buffer_size)
        total += b;
    return total;
}

#endif  // CARDINAL_HAVE_DNNL

}  // namespace cardinal::peers
