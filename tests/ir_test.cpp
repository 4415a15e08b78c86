// The IR's shape inference: correct shapes for every op and clear errors that name the layer.
#include <catch2/catch.hpp>

#include <functional>

#include "ir/builder.h"
#include "ir/error.h"

using namespace cardinal;
using Catch::Contains;

namespace {

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("shape inference: every op's output shape") {
    GraphBuilder b("shapes", Shape{2, 6, 15, 11}, 1);
    ConvSpec s = ConvSpec::square(9, 3, 2, 1, 3);
    s.dilation_h = 2;
    s.pad = {1, 0, 2, 1};
    auto c = b.conv("conv", b.input(), s);
    CHECK(b.shape(c) == Shape{2, 9, 7, 5});  // (15+3-5)/2+1, (11+1-3)/2+1
    auto mp = b.max_pool("mp", c, PoolWindow{3, 3, 2, 2, {0, 0, 0, 0}, true});
    CHECK(b.shape(mp) == Shape{2, 9, 3, 2});  // ceil((7-3)/2)+1 = 3; (5-3)/2+1 = 2
    auto ap = b.average_pool("ap", c, PoolWindow{2, 2, 2, 2, {1, 1, 1, 1}, true}, false);
    // ceil((9-2)/2)+1 = 5, but the 5th window would start in the bottom padding: 4.
    CHECK(b.shape(ap) == Shape{2, 9, 4, 3});
    auto p = b.pad("pad", c, {1, 2, 3, 4});
    CHECK(b.shape(p) == Shape{2, 9, 11, 11});
    auto g = b.global_average_pool("gap", p);
    CHECK(b.shape(g) == Shape{2, 9, 1, 1});
    auto cat = b.concat("cat", {c, c});
    CHECK(b.shape(cat) == Shape{2, 18, 7, 5});
    auto f = b.flatten("flat", cat);
    CHECK(b.shape(f) == Shape{2, 18 * 7 * 5});
    auto d = b.dense("fc", f, 7);
    CHECK(b.shape(d) == Shape{2, 7});
    CHECK(b.shape(b.softmax("sm", d)) == Shape{2, 7});
}

TEST_CASE("shape inference: channels not divisible by groups names the layer") {
    GraphBuilder b("bad", Shape{1, 6, 8, 8}, 1);
    CHECK_THAT(error_of([&] { b.conv("grouped", b.input(), ConvSpec::square(8, 3, 1, 1, 4)); }),
               Contains("grouped") && Contains("not divisible by groups 4"));
}

TEST_CASE("shape inference: a kernel larger than the padded input names the layer") {
    GraphBuilder b("bad", Shape{1, 3, 4, 4}, 1);
    CHECK_THAT(error_of([&] { b.conv("big", b.input(), ConvSpec::square(8, 7, 1, 1)); }),
               Contains("big") && Contains("larger than the padded input"));
    CHECK_THAT(error_of([&] {
                   b.max_pool("pool", b.input(), PoolWindow{5, 5, 1, 1, {0, 0, 0, 0}, false});
               }),
               Contains("pool") && Contains("larger than the padded input"));
}

TEST_CASE("shape inference: mismatched Add operands name the layer and both shapes") {
    GraphBuilder b("bad", Shape{1, 3, 8, 8}, 1);
    auto x = b.conv("a", b.input(), ConvSpec::square(4, 1));
    auto y = b.conv("b", b.input(), ConvSpec::square(5, 1));
    CHECK_THAT(error_of([&] { b.add("sum", x, y); }),
               Contains("sum") && Contains("1x4x8x8") && Contains("1x5x8x8"));
}

TEST_CASE("shape inference: wrong input rank names the layer") {
    GraphBuilder b("bad", Shape{1, 3, 8, 8}, 1);
    auto f = b.flatten("flat", b.input());
    CHECK_THAT(error_of([&] { b.conv("conv_on_2d", f, ConvSpec::square(4, 1)); }),
               Contains("conv_on_2d") && Contains("rank-4"));
    CHECK_THAT(error_of([&] { b.dense("fc_on_4d", b.input(), 3); }),
               Contains("fc_on_4d") && Contains("rank-2"));
    Graph g;
    g.name = "rank3";
    g.input = "x";
    g.input_shape = Shape{3, 8, 8};
    CHECK_THAT(error_of([&] { infer_shapes(g); }), Contains("must be NCHW"));
}

TEST_CASE("shape inference: undefined tensors duplicate names and wrong weight shapes") {
    GraphBuilder b("g", Shape{1, 3, 8, 8}, 1);
    auto x = b.conv("conv", b.input(), ConvSpec::square(4, 3, 1, 1));
    Graph g = std::move(b).finish(x);
    Graph undefined = g;
    undefined.nodes[0].inputs = {"nowhere"};
    CHECK_THAT(error_of([&] { infer_shapes(undefined); }),
               Contains("conv") && Contains("'nowhere' is not defined"));
    Graph duplicate = g;
    duplicate.nodes.push_back(duplicate.nodes[0]);
    duplicate.nodes.back().output = "other";
    CHECK_THAT(error_of([&] { infer_shapes(duplicate); }), Contains("two layers are named"));
    Graph wrong_weights = g;
    std::get<Conv2D>(wrong_weights.nodes[0].op).weight = Tensor(Shape{4, 3, 3, 2});
    CHECK_THAT(error_of([&] { infer_shapes(wrong_weights); }),
               Contains("conv") && Contains("weight has shape 4x3x3x2, expected 4x3x3x3"));
    Graph no_output = g;
    no_output.output = "missing";
    CHECK_THAT(error_of([&] { infer_shapes(no_output); }), Contains("never defined"));
}

TEST_CASE("counts: params and MACs of a small network by hand") {
    GraphBuilder b("count", Shape{1, 4, 6, 6}, 1);
    auto x = b.conv("conv", b.input(), ConvSpec::square(8, 3, 1, 1, 2, true));
    x = b.batch_norm("bn", x);
    x = b.global_average_pool("gap", x);
    x = b.flatten("flat", x);
    x = b.dense("fc", x, 5);
    const Graph g = std::move(b).finish(x);
    CHECK(count_params(g) == 8 * 2 * 9 + 8 + 8 * 2 + 8 * 5 + 5);
    CHECK(count_bn_statistics(g) == 16);
    CHECK(count_macs(g) == 8 * 6 * 6 * 2 * 9 + 8 * 5);
}
