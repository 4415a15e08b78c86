// The reference implementation (the oracle for everything else) and the BatchNorm folding pass:
// convolutions against independent formulations, hand-computed cases for every op, whole-graph
// execution, and folding checked numerically.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "ir/builder.h"
#include "ir/error.h"
#include "passes/fold_batch_norm.h"
#include "reference/reference.h"
#include "zoo/zoo.h"

using namespace cardinal;
namespace ref = cardinal::reference;

namespace {

Tensor random_tensor(Shape shape, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
    SeededRandom rng(seed);
    Tensor t(std::move(shape));
    for (float& v : t.data)
        v = rng.uniform(lo, hi);
    return t;
}

// ||a - b|| / ||b||, the measure the tests compare implementations with.
double relative_l2(const Tensor& a, const Tensor& b) {
    REQUIRE(a.shape == b.shape);
    double diff = 0.0, norm = 0.0;
    for (size_t i = 0; i < a.data.size(); ++i) {
        const double d = double(a.data[i]) - double(b.data[i]);
        diff += d * d;
        norm += double(b.data[i]) * double(b.data[i]);
    }
    return std::sqrt(diff) / std::sqrt(norm);
}

void require_values(const Tensor& t, const Shape& shape, const std::vector<float>& want) {
    REQUIRE(t.shape == shape);
    REQUIRE(t.data.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) {
        INFO("element " << i);
        CHECK(t.data[i] == Approx(want[i]).margin(1e-6));
    }
}

struct ConvConfig {
    int64_t batch, in_channels, height, width;
    int out_channels, kernel_h, kernel_w, stride_h, stride_w;
    Padding2D pad;
    int dilation_h, dilation_w, groups;
    bool bias;
};

Conv2D make_conv(const ConvConfig& c, uint64_t seed) {
    Conv2D op;
    op.out_channels = c.out_channels;
    op.kernel_h = c.kernel_h;
    op.kernel_w = c.kernel_w;
    op.stride_h = c.stride_h;
    op.stride_w = c.stride_w;
    op.pad = c.pad;
    op.dilation_h = c.dilation_h;
    op.dilation_w = c.dilation_w;
    op.groups = c.groups;
    op.weight = random_tensor(
        Shape{c.out_channels, c.in_channels / c.groups, c.kernel_h, c.kernel_w}, seed);
    if (c.bias) op.bias = random_tensor(Shape{c.out_channels}, seed + 1);
    return op;
}

// The convolution formula of ops.h evaluated literally, one output at a time, in double.
Tensor direct_conv(const Conv2D& op, const Tensor& x) {
    const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
    const int64_t O = op.out_channels, Cg = C / op.groups, Og = O / op.groups;
    const int64_t OH =
        (H + op.pad.top + op.pad.bottom - op.dilation_h * (op.kernel_h - 1) - 1) / op.stride_h + 1;
    const int64_t OW =
        (W + op.pad.left + op.pad.right - op.dilation_w * (op.kernel_w - 1) - 1) / op.stride_w + 1;
    Tensor y(Shape{N, O, OH, OW});
    for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < O; ++o)
            for (int64_t oh = 0; oh < OH; ++oh)
                for (int64_t ow = 0; ow < OW; ++ow) {
                    double sum = op.bias ? op.bias->data[o] : 0.0;
                    for (int64_t i = 0; i < Cg; ++i)
                        for (int64_t kh = 0; kh < op.kernel_h; ++kh)
                            for (int64_t kw = 0; kw < op.kernel_w; ++kw) {
                                const int64_t ih =
                                    oh * op.stride_h - op.pad.top + kh * op.dilation_h;
                                const int64_t iw =
                                    ow * op.stride_w - op.pad.left + kw * op.dilation_w;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                const int64_t c = (o / Og) * Cg + i;  // group of o, then i
                                const float xv = x.data[((n * C + c) * H + ih) * W + iw];
                                const int64_t tap = (o * Cg + i) * op.kernel_h * op.kernel_w +
                                                    kh * op.kernel_w + kw;
                                const float wv = op.weight.data[tap];
                                sum += double(xv) * wv;
                            }
                    y.data[((n * O + o) * OH + oh) * OW + ow] = static_cast<float>(sum);
                }
    return y;
}

// Channels [begin, begin + count) of an NCHW tensor (or of an OIHW weight's first axis).
Tensor slice_axis(const Tensor& t, int axis, int64_t begin, int64_t count) {
    Shape s = t.shape;
    const int64_t outer = axis == 0 ? 1 : s[0];
    const int64_t inner = t.numel() / (outer * s[axis]);
    const int64_t channels = s[axis];
    s[axis] = count;
    Tensor out(s);
    for (int64_t n = 0; n < outer; ++n)
        for (int64_t c = 0; c < count; ++c)
            for (int64_t i = 0; i < inner; ++i)
                out.data[(n * count + c) * inner + i] =
                    t.data[(n * channels + begin + c) * inner + i];
    return out;
}

Tensor run_conv(const Conv2D& op, const Tensor& x) {
    Tensor y;
    ref::conv2d(op, x, y);
    return y;
}

// One channel of a 2-D convolution, written out separately from the Conv2D code paths.
std::vector<float> conv_plane(const float* x, int64_t H, int64_t W, const float* k, int KH, int KW,
                              int stride, Padding2D pad, int dilation, int64_t OH, int64_t OW) {
    std::vector<float> y(OH * OW, 0.0f);
    for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
            double sum = 0.0;
            for (int a = 0; a < KH; ++a)
                for (int b = 0; b < KW; ++b) {
                    const int64_t r = oh * stride - pad.top + a * dilation;
                    const int64_t c = ow * stride - pad.left + b * dilation;
                    if (r >= 0 && r < H && c >= 0 && c < W)
                        sum += double(x[r * W + c]) * k[a * KW + b];
                }
            y[oh * OW + ow] = static_cast<float>(sum);
        }
    return y;
}

const Node& node_named(const Graph& g, const std::string& name) {
    for (const Node& n : g.nodes)
        if (n.name == name) return n;
    FAIL("no layer named " << name);
    throw;
}

bool has_node(const Graph& g, const std::string& name) {
    for (const Node& n : g.nodes)
        if (n.name == name) return true;
    return false;
}

}  // namespace

// --- Convolution against independent formulations ---

TEST_CASE("conv2d equals the convolution formula evaluated directly", "[reference][conv]") {
    const std::vector<ConvConfig> configs = {
        // batch, C, H, W, O, kh, kw, sh, sw, pad{t,l,b,r}, dh, dw, groups, bias
        {2, 3, 7, 9, 4, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1, true},
        {1, 5, 8, 6, 7, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1, false},
        {1, 4, 11, 10, 6, 5, 3, 2, 3, {2, 0, 1, 3}, 1, 1, 2, true},
        {2, 6, 9, 13, 6, 3, 3, 1, 2, {2, 2, 2, 2}, 2, 3, 3, false},
        {1, 2, 12, 12, 4, 7, 7, 2, 2, {3, 3, 3, 3}, 1, 1, 1, true},
        {1, 4, 6, 5, 8, 3, 3, 3, 1, {0, 4, 3, 0}, 1, 2, 4, true},
        {1, 3, 5, 5, 2, 5, 5, 1, 1, {0, 0, 0, 0}, 1, 1, 1, true},  // a single output pixel
    };
    uint64_t seed = 100;
    for (const ConvConfig& c : configs) {
        INFO("config with groups " << c.groups << ", kernel " << c.kernel_h << "x" << c.kernel_w);
        const Conv2D op = make_conv(c, seed++);
        const Tensor x = random_tensor(Shape{c.batch, c.in_channels, c.height, c.width}, seed++);
        const Tensor y = run_conv(op, x);
        CHECK(relative_l2(y, direct_conv(op, x)) <= 1e-6);
    }
}

TEST_CASE("grouped conv2d equals the concatenation of per-group dense convs", "[reference][conv]") {
    const std::vector<ConvConfig> configs = {
        {2, 6, 11, 9, 10, 3, 3, 2, 2, {1, 0, 2, 1}, 2, 1, 2, true},
        {1, 9, 13, 7, 6, 3, 2, 2, 1, {0, 2, 1, 0}, 1, 2, 3, false},
        {1, 64, 9, 11, 96, 3, 3, 2, 2, {1, 1, 0, 2}, 2, 2, 32, true},
    };
    uint64_t seed = 200;
    for (const ConvConfig& c : configs) {
        INFO("groups " << c.groups);
        const Conv2D grouped = make_conv(c, seed++);
        const Tensor x = random_tensor(Shape{c.batch, c.in_channels, c.height, c.width}, seed++);
        const int64_t Cg = c.in_channels / c.groups, Og = c.out_channels / c.groups;

        std::vector<Tensor> parts;
        for (int g = 0; g < c.groups; ++g) {
            Conv2D dense = grouped;
            dense.groups = 1;
            dense.out_channels = static_cast<int>(Og);
            dense.weight = slice_axis(grouped.weight, 0, g * Og, Og);
            if (grouped.bias) dense.bias = slice_axis(*grouped.bias, 0, g * Og, Og);
            parts.push_back(run_conv(dense, slice_axis(x, 1, g * Cg, Cg)));
        }
        std::vector<const Tensor*> ptrs;
        for (const Tensor& p : parts)
            ptrs.push_back(&p);
        Tensor expected;
        ref::concat(ptrs, expected);

        CHECK(relative_l2(run_conv(grouped, x), expected) <= 1e-6);
    }
}

TEST_CASE("depthwise conv2d equals a per-channel 2-D convolution also with multiplier 2",
          "[reference][conv]") {
    const int64_t C = 5, H = 10, W = 9;
    const Padding2D pad{1, 2, 2, 1};
    const int stride = 2, dilation = 2, K = 3;
    const Tensor x = random_tensor(Shape{2, C, H, W}, 300);
    for (int multiplier : {1, 2}) {
        INFO("channel multiplier " << multiplier);
        const ConvConfig c{2,
                           C,
                           H,
                           W,
                           static_cast<int>(C) * multiplier,
                           K,
                           K,
                           stride,
                           stride,
                           pad,
                           dilation,
                           dilation,
                           static_cast<int>(C),
                           false};
        const Conv2D op = make_conv(c, 301 + multiplier);
        const Tensor y = run_conv(op, x);
        const int64_t OH = y.shape[2], OW = y.shape[3];
        CHECK(OH == (H + 3 - 5) / 2 + 1);
        CHECK(OW == (W + 3 - 5) / 2 + 1);
        for (int64_t n = 0; n < 2; ++n)
            for (int64_t o = 0; o < C * multiplier; ++o) {
                // Output channel o reads input channel o / multiplier only.
                const float* plane = x.ptr() + (n * C + o / multiplier) * H * W;
                const std::vector<float> want = conv_plane(plane, H, W, op.weight.ptr() + o * K * K,
                                                           K, K, stride, pad, dilation, OH, OW);
                const float* got = y.ptr() + (n * C * multiplier + o) * OH * OW;
                for (int64_t i = 0; i < OH * OW; ++i)
                    CHECK(got[i] == Approx(want[i]).margin(1e-5));
            }
    }
}

// --- BatchNorm folding ---

TEST_CASE("a conv folded with its BatchNorm equals conv then BatchNorm", "[reference][fold]") {
    for (bool bias : {false, true}) {
        INFO("conv bias " << bias);
        GraphBuilder b("single", Shape{2, 4, 9, 8}, 7);
        ConvSpec spec = ConvSpec::square(6, 3, 2, 1, 2, bias);
        spec.pad = {0, 1, 2, 1};
        const std::string conv = b.conv("conv", b.input(), spec);
        const std::string bn = b.batch_norm("bn", conv, 1e-3f);
        const Graph graph = std::move(b).finish(bn);
        const Graph folded = fold_batch_norm(graph);

        REQUIRE(folded.nodes.size() == 1);
        const Node& n = folded.nodes[0];
        CHECK(n.name == "conv");
        CHECK(n.output == "bn");
        CHECK(folded.output == "bn");
        REQUIRE(std::holds_alternative<Conv2D>(n.op));
        CHECK(std::get<Conv2D>(n.op).bias.has_value());

        const Tensor x = random_tensor(graph.input_shape, 8);
        CHECK(relative_l2(ref::run(folded, x), ref::run(graph, x)) <= 1e-5);
    }
}

TEST_CASE("fold_batch_norm folds conv-BN pairs in a network and leaves shared convs alone",
          "[reference][fold]") {
    GraphBuilder b("zoo_like", Shape{2, 3, 12, 12}, 11);
    // conv -> bn -> relu
    std::string x = b.conv("c1", b.input(), ConvSpec::square(8, 3, 1, 1));
    x = b.batch_norm("b1", x);
    const std::string r1 = b.relu("r1", x);
    // conv -> bn feeding a residual add
    x = b.conv("c2", r1, ConvSpec::square(8, 3, 1, 1, 2, true));
    x = b.batch_norm("b2", x);
    const std::string sum = b.add("add", x, r1);
    // c3 is also read by the concat: folding b3 would change what the concat sees.
    const std::string c3 = b.conv("c3", sum, ConvSpec::square(8, 1));
    const std::string b3 = b.batch_norm("b3", c3);
    x = b.concat("cat", {b3, c3});
    // A BatchNorm after a non-conv op stays.
    x = b.batch_norm("b4", x);
    x = b.relu("r4", x);
    x = b.global_average_pool("gap", x);
    x = b.flatten("flat", x);
    x = b.dense("fc", x, 5);
    x = b.softmax("prob", x);
    const Graph graph = std::move(b).finish(x);
    const Graph folded = fold_batch_norm(graph);

    CHECK(folded.nodes.size() == graph.nodes.size() - 2);
    CHECK_FALSE(has_node(folded, "b1"));
    CHECK_FALSE(has_node(folded, "b2"));
    CHECK(has_node(folded, "b3"));
    CHECK(has_node(folded, "b4"));
    CHECK(node_named(folded, "c1").output == "b1");
    CHECK(node_named(folded, "c2").output == "b2");
    CHECK(node_named(folded, "c3").output == "c3");
    // The shared conv keeps its weights exactly.
    CHECK(std::get<Conv2D>(node_named(folded, "c3").op).weight.data ==
          std::get<Conv2D>(node_named(graph, "c3").op).weight.data);
    // The input graph is untouched.
    CHECK(has_node(graph, "b1"));
    for (const auto& [tensor, shape] : folded.shapes)
        CHECK(graph.shape_of(tensor) == shape);

    const Tensor input = random_tensor(graph.input_shape, 12);
    // Compare before the softmax too: its output is close to uniform and hides differences.
    Tensor logits_graph, logits_folded;
    ref::run(graph, input, [&](const Node& n, const Tensor& t) {
        if (n.name == "fc") logits_graph = t;
    });
    const Tensor out_folded = ref::run(folded, input, [&](const Node& n, const Tensor& t) {
        if (n.name == "fc") logits_folded = t;
    });
    CHECK(relative_l2(logits_folded, logits_graph) <= 1e-5);
    CHECK(relative_l2(out_folded, ref::run(graph, input)) <= 1e-5);
}

TEST_CASE("fold_batch_norm leaves a conv alone when it is the network's output",
          "[reference][fold]") {
    GraphBuilder b("conv_out", Shape{1, 2, 5, 5}, 3);
    const std::string c = b.conv("c", b.input(), ConvSpec::square(3, 3));
    b.batch_norm("bn", c);  // a dead branch, but folding it would rename the output
    const Graph graph = std::move(b).finish(c);
    const Graph folded = fold_batch_norm(graph);
    CHECK(folded.nodes.size() == 2);
    CHECK(folded.output == "c");
    const Tensor x = random_tensor(graph.input_shape, 4);
    CHECK(ref::run(folded, x).data == ref::run(graph, x).data);
}

// --- Hand-computed cases, one per op ---

TEST_CASE("conv2d hand-computed: stride padding dilation bias", "[reference][ops]") {
    const Tensor x(Shape{1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
    Conv2D op;
    op.out_channels = 1;
    op.kernel_h = op.kernel_w = 2;
    op.weight = Tensor(Shape{1, 1, 2, 2}, {1, 2, 3, 4});
    Tensor y;

    SECTION("valid") {
        // 1*x00 + 2*x01 + 3*x10 + 4*x11 = 1 + 4 + 12 + 20 = 37, and each step right adds 10,
        // each step down adds 30; plus bias 0.5.
        op.bias = Tensor(Shape{1}, {0.5f});
        ref::conv2d(op, x, y);
        require_values(y, Shape{1, 1, 2, 2}, {37.5f, 47.5f, 67.5f, 77.5f});
    }
    SECTION("stride 2, padding 1") {
        // Windows start at rows/cols -1 and 1:
        // (0,0): 4*x00 = 4; (0,1): 3*x01 + 4*x02 = 18; (1,0): 2*x10 + 4*x20 = 36;
        // (1,1): 1*5 + 2*6 + 3*8 + 4*9 = 77.
        op.stride_h = op.stride_w = 2;
        op.pad = {1, 1, 1, 1};
        ref::conv2d(op, x, y);
        require_values(y, Shape{1, 1, 2, 2}, {4, 18, 36, 77});
    }
    SECTION("dilation 2") {
        // The four corners: 1*1 + 2*3 + 3*7 + 4*9 = 64.
        op.dilation_h = op.dilation_w = 2;
        ref::conv2d(op, x, y);
        require_values(y, Shape{1, 1, 1, 1}, {64});
    }
    SECTION("asymmetric padding") {
        // Padding only on the right: the last column's window sees x02, x12 and zeros.
        op.pad = {0, 0, 0, 1};
        ref::conv2d(op, x, y);
        require_values(y, Shape{1, 1, 2, 3}, {37, 47, 1 * 3 + 3 * 6, 67, 77, 1 * 6 + 3 * 9});
    }
}

TEST_CASE("batch_norm hand-computed", "[reference][ops]") {
    BatchNorm op;
    op.gamma = Tensor(Shape{2}, {2, 1});
    op.beta = Tensor(Shape{2}, {1, 0});
    op.mean = Tensor(Shape{2}, {1, -1});
    op.var = Tensor(Shape{2}, {3, 0});
    op.epsilon = 1;
    // Channel 0: 2 * (x - 1) / 2 + 1 = x; channel 1: (x + 1) / 1.
    const Tensor x(Shape{1, 2, 1, 2}, {2, -4, 3, 0.5f});
    Tensor y;
    ref::batch_norm(op, x, y);
    require_values(y, Shape{1, 2, 1, 2}, {2, -4, 4, 1.5f});
    // NC inputs (after a Dense) work too.
    ref::batch_norm(op, Tensor(Shape{2, 2}, {2, 3, 5, -1}), y);
    require_values(y, Shape{2, 2}, {2, 4, 5, 0});
}

TEST_CASE("relu clip and add hand-computed", "[reference][ops]") {
    const Tensor x(Shape{1, 1, 1, 4}, {-1.5f, 0, 0.5f, 7});
    Tensor y;
    ref::relu(x, y);
    require_values(y, x.shape, {0, 0, 0.5f, 7});
    ref::clip(Clip{0, 6}, x, y);
    require_values(y, x.shape, {0, 0, 0.5f, 6});
    ref::clip(Clip{-1, 0.25f}, x, y);
    require_values(y, x.shape, {-1, 0, 0.25f, 0.25f});
    ref::add(x, Tensor(Shape{1, 1, 1, 4}, {1, 2, 3, 4}), y);
    require_values(y, x.shape, {-0.5f, 2, 3.5f, 11});
    CHECK_THROWS_AS(ref::add(x, Tensor(Shape{1, 1, 4, 1}), y), Error);
}

TEST_CASE("max_pool hand-computed: padding never wins ceil_mode", "[reference][ops]") {
    // All values negative, so a padding tap counted as 0 would show.
    const Tensor x(Shape{1, 1, 3, 3}, {-1, -2, -3, -4, -5, -6, -7, -8, -9});
    Tensor y;
    SECTION("kernel 2 stride 2, floor mode drops the last row and column") {
        ref::max_pool(MaxPool{PoolWindow{2, 2, 2, 2, {}, false}}, x, y);
        require_values(y, Shape{1, 1, 1, 1}, {-1});
    }
    SECTION("kernel 2 stride 2, ceil mode adds partial windows") {
        ref::max_pool(MaxPool{PoolWindow{2, 2, 2, 2, {}, true}}, x, y);
        require_values(y, Shape{1, 1, 2, 2}, {-1, -3, -7, -9});
    }
    SECTION("kernel 3 stride 2 padding 1") {
        // Windows cover rows/cols {0,1} and {1,2}.
        ref::max_pool(MaxPool{PoolWindow{3, 3, 2, 2, {1, 1, 1, 1}, false}}, x, y);
        require_values(y, Shape{1, 1, 2, 2}, {-1, -2, -4, -5});
    }
    SECTION("ceil mode never starts a window in the trailing padding") {
        // Padded extent 5, kernel 2, stride 2: ceil gives 3 windows, but the third would start
        // at padded index 4 (past the input), so there are 2.
        ref::max_pool(MaxPool{PoolWindow{2, 2, 2, 2, {1, 1, 1, 1}, true}}, x, y);
        require_values(y, Shape{1, 1, 2, 2}, {-1, -2, -4, -5});
    }
}

TEST_CASE("average_pool hand-computed: ceil_mode with count_include_pad both ways",
          "[reference][ops]") {
    // Along H: x = 1, 2, 3, 4; kernel 3, stride 2, padding 1, ceil mode -> 3 windows starting
    // at -1, 1, 3. The last one is cut at the padded end (index 5): it covers x[3] and one
    // padding tap; the tap at index 5 that ceil_mode adds never counts.
    const Tensor column(Shape{1, 1, 4, 1}, {1, 2, 3, 4});
    const PoolWindow along_h{3, 1, 2, 1, {1, 0, 1, 0}, true};
    Tensor y;
    SECTION("count_include_pad: divide by the taps inside the padded input") {
        // (0+1+2)/3, (2+3+4)/3, (4+0)/2
        ref::average_pool(AveragePool{along_h, true}, column, y);
        require_values(y, Shape{1, 1, 3, 1}, {1, 3, 2});
    }
    SECTION("not count_include_pad: divide by the taps inside the input") {
        // (1+2)/2, (2+3+4)/3, 4/1
        ref::average_pool(AveragePool{along_h, false}, column, y);
        require_values(y, Shape{1, 1, 3, 1}, {1.5f, 3, 4});
    }
    SECTION("the same along W") {
        const Tensor row(Shape{1, 1, 1, 4}, {1, 2, 3, 4});
        const PoolWindow along_w{1, 3, 1, 2, {0, 1, 0, 1}, true};
        ref::average_pool(AveragePool{along_w, true}, row, y);
        require_values(y, Shape{1, 1, 1, 3}, {1, 3, 2});
        ref::average_pool(AveragePool{along_w, false}, row, y);
        require_values(y, Shape{1, 1, 1, 3}, {1.5f, 3, 4});
    }
    SECTION("ceil mode without padding: partial windows average what they cover") {
        const Tensor x(Shape{1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
        for (bool include_pad : {false, true}) {
            ref::average_pool(AveragePool{PoolWindow{2, 2, 2, 2, {}, true}, include_pad}, x, y);
            require_values(y, Shape{1, 1, 2, 2}, {3, 4.5f, 7.5f, 9});
        }
    }
    SECTION("2-D padding, floor mode") {
        // 2x2 input, kernel 2, stride 1, padding 1 -> 3x3 windows; corners cover one input tap.
        const Tensor x(Shape{1, 1, 2, 2}, {4, 8, 12, 16});
        const PoolWindow w{2, 2, 1, 1, {1, 1, 1, 1}, false};
        ref::average_pool(AveragePool{w, true}, x, y);
        require_values(y, Shape{1, 1, 3, 3}, {1, 3, 2, 4, 10, 6, 3, 7, 4});
        ref::average_pool(AveragePool{w, false}, x, y);
        require_values(y, Shape{1, 1, 3, 3}, {4, 6, 8, 8, 10, 12, 12, 14, 16});
    }
}

TEST_CASE("pad hand-computed with a constant value", "[reference][ops]") {
    const Tensor x(Shape{1, 1, 2, 2}, {1, 2, 3, 4});
    Tensor y;
    ref::pad(Pad{{1, 0, 0, 2}, 9}, x, y);
    require_values(y, Shape{1, 1, 3, 4}, {9, 9, 9, 9, 1, 2, 9, 9, 3, 4, 9, 9});
}

TEST_CASE("global_average_pool hand-computed", "[reference][ops]") {
    const Tensor x(Shape{2, 2, 1, 3}, {1, 2, 3, -3, 0, 6, 10, 10, 10, 0, 0, 1.5f});
    Tensor y;
    ref::global_average_pool(x, y);
    require_values(y, Shape{2, 2, 1, 1}, {2, 1, 10, 0.5f});
}

TEST_CASE("flatten keeps NCHW order and leaves NC alone", "[reference][ops]") {
    const Tensor x(Shape{2, 2, 1, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
    Tensor y;
    ref::flatten(x, y);
    require_values(y, Shape{2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
    ref::flatten(Tensor(Shape{2, 3}, {1, 2, 3, 4, 5, 6}), y);
    require_values(y, Shape{2, 3}, {1, 2, 3, 4, 5, 6});
}

TEST_CASE("dense hand-computed with and without bias", "[reference][ops]") {
    Dense op;
    op.out_features = 3;
    op.weight = Tensor(Shape{3, 2}, {1, 0, 0, 1, 1, -2});
    const Tensor x(Shape{2, 2}, {1, 2, -3, 0.5f});
    Tensor y;
    ref::dense(op, x, y);
    require_values(y, Shape{2, 3}, {1, 2, -3, -3, 0.5f, -4});
    op.bias = Tensor(Shape{3}, {0.5f, 0, -1});
    ref::dense(op, x, y);
    require_values(y, Shape{2, 3}, {1.5f, 2, -4, -2.5f, 0.5f, -5});
}

TEST_CASE("concat joins channels image by image", "[reference][ops]") {
    const Tensor a(Shape{2, 1, 1, 2}, {1, 2, 3, 4});
    const Tensor b(Shape{2, 2, 1, 2}, {10, 20, 30, 40, 50, 60, 70, 80});
    Tensor y;
    ref::concat({&a, &b}, y);
    require_values(y, Shape{2, 3, 1, 2}, {1, 2, 10, 20, 30, 40, 3, 4, 50, 60, 70, 80});
    const Tensor taller(Shape{2, 1, 2, 1});
    Tensor z;
    CHECK_THROWS_AS(ref::concat({&a, &taller}, z), Error);
}

TEST_CASE("softmax hand-computed rows sum to 1 large logits stay finite", "[reference][ops]") {
    const Tensor x(Shape{3, 3}, {1, 2, 3, 1000, 1000, 1000, -50, 0, 50});
    Tensor y;
    ref::softmax(x, y);
    // exp(-2), exp(-1), 1 over their sum 1.5032147.
    CHECK(y.data[0] == Approx(0.09003057).epsilon(1e-6));
    CHECK(y.data[1] == Approx(0.24472847).epsilon(1e-6));
    CHECK(y.data[2] == Approx(0.66524096).epsilon(1e-6));
    for (int c = 3; c < 6; ++c)
        CHECK(y.data[c] == Approx(1.0 / 3).epsilon(1e-6));
    CHECK(y.data[8] == Approx(1.0).epsilon(1e-6));
    CHECK(y.data[6] >= 0.0f);
    for (int n = 0; n < 3; ++n) {
        double sum = 0;
        for (int c = 0; c < 3; ++c) {
            CHECK(std::isfinite(y.data[n * 3 + c]));
            sum += y.data[n * 3 + c];
        }
        CHECK(sum == Approx(1.0).epsilon(1e-6));
    }
}

// --- Whole graphs ---

TEST_CASE("run executes a residual graph like the per-op functions layer by layer",
          "[reference][run]") {
    GraphBuilder b("residual", Shape{1, 4, 6, 6}, 21);
    const std::string c1 = b.conv("c1", b.input(), ConvSpec::square(4, 3, 1, 1, 1, true));
    const std::string r1 = b.relu("r1", c1);
    const std::string c2 = b.conv("c2", r1, ConvSpec::square(4, 1));
    const std::string sum = b.add("sum", c2, b.input());  // reads the input again, late
    const std::string out = b.max_pool("pool", sum, PoolWindow{2, 2, 2, 2, {}, false});
    const Graph graph = std::move(b).finish(out);
    const Tensor x = random_tensor(graph.input_shape, 22);

    // The same computation op by op.
    Tensor t1, t2, t3, t4, t5;
    ref::conv2d(std::get<Conv2D>(graph.nodes[0].op), x, t1);
    ref::relu(t1, t2);
    ref::conv2d(std::get<Conv2D>(graph.nodes[2].op), t2, t3);
    ref::add(t3, x, t4);
    ref::max_pool(std::get<MaxPool>(graph.nodes[4].op), t4, t5);

    std::vector<std::string> seen;
    const Tensor y = ref::run(graph, x, [&](const Node& n, const Tensor& t) {
        seen.push_back(n.name);
        CHECK(t.shape == graph.shape_of(n.output));
        if (n.name == "sum") CHECK(t.data == t4.data);
    });
    CHECK(seen == std::vector<std::string>{"c1", "r1", "c2", "sum", "pool"});
    CHECK(y.shape == Shape{1, 4, 3, 3});
    CHECK(y.data == t5.data);
    CHECK(ref::run(graph, x).data == t5.data);  // no callback
}

TEST_CASE("run rejects an input whose shape differs from the network's", "[reference][run]") {
    GraphBuilder b("small", Shape{1, 3, 8, 8}, 1);
    const std::string r = b.relu("r", b.input());
    const Graph graph = std::move(b).finish(r);
    CHECK_THROWS_AS(ref::run(graph, Tensor(Shape{1, 3, 8, 9})), Error);
    CHECK_THROWS_AS(ref::run(graph, Tensor(Shape{2, 3, 8, 8})), Error);
    CHECK_THROWS_AS(ref::run(graph, Tensor(Shape{3, 8, 8})), Error);
    CHECK_THROWS_WITH(ref::run(graph, Tensor(Shape{1, 3, 8, 9})),
                      Catch::Contains("1x3x8x8") && Catch::Contains("1x3x8x9"));
    CHECK_NOTHROW(ref::run(graph, Tensor(Shape{1, 3, 8, 8})));
}

TEST_CASE("run executes resnext50_32x4d end to end at 64x64 batch 2", "[reference][zoo]") {
    const Graph graph = build_zoo_model("resnext50_32x4d", 2, 64, 0);
    const Tensor x = random_tensor(graph.input_shape, 5);
    const Tensor y = ref::run(graph, x);
    REQUIRE(y.shape == Shape{2, 1000});
    for (float v : y.data)
        REQUIRE(std::isfinite(v));
    // The two images differ, so their logits must too.
    CHECK(std::vector<float>(y.data.begin(), y.data.begin() + 1000) !=
          std::vector<float>(y.data.begin() + 1000, y.data.end()));
}

TEST_CASE("BatchNorm folding keeps mobilenet_v2's output", "[reference][zoo][fold]") {
    const Graph graph = build_zoo_model("mobilenet_v2", 1, 64, 0);
    const Graph folded = fold_batch_norm(graph);
    int batch_norms = 0;
    for (const Node& n : folded.nodes)
        batch_norms += std::holds_alternative<BatchNorm>(n.op);
    CHECK(batch_norms == 0);  // every BatchNorm there follows a conv
    const Tensor x = random_tensor(graph.input_shape, 6);
    CHECK(relative_l2(ref::run(folded, x), ref::run(graph, x)) <= 1e-4);
}
