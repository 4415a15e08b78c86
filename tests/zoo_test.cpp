// The model zoo: exact parameter and MAC counts (against torchvision / Keras), shapes, the batch
// and resolution parameters, errors and seeded weights.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "ir/error.h"
#include "zoo/zoo.h"

using namespace cardinal;

namespace {

void check_counts(const std::string& name, int64_t params, int64_t macs) {
    const Graph g = build_zoo_model(name);
    CHECK(g.name == name);
    CHECK(count_params(g) == params);
    CHECK(count_macs(g) == macs);
    CHECK(g.shape_of(g.output) == Shape{1, 1000});
}

const Conv2D& conv_named(const Graph& g, const std::string& name) {
    for (const Node& n : g.nodes)
        if (n.name == name) return std::get<Conv2D>(n.op);
    FAIL("no layer " << name);
    throw;
}

}  // namespace

TEST_CASE("zoo resnet50 has torchvision's params and MACs", "[zoo]") {
    check_counts("resnet50", 25'557'032, 4'089'184'256);
}

TEST_CASE("zoo resnet101 has torchvision's params and MACs", "[zoo]") {
    check_counts("resnet101", 44'549'160, 7'801'405'440);
}

TEST_CASE("zoo resnext50_32x4d has torchvision's params and MACs", "[zoo]") {
    check_counts("resnext50_32x4d", 25'028'904, 4'230'479'872);
}

TEST_CASE("zoo resnext101_32x4d has the expected params and MACs", "[zoo]") {
    check_counts("resnext101_32x4d", 44'177'704, 7'969'996'800);
}

TEST_CASE("zoo resnext101_64x4d has torchvision's params and MACs", "[zoo]") {
    check_counts("resnext101_64x4d", 83'455'272, 15'460'270'080);
}

TEST_CASE("zoo resnext101_32x8d has torchvision's params and MACs", "[zoo]") {
    check_counts("resnext101_32x8d", 88'791'336, 16'414'015'488);
}

TEST_CASE("zoo xception has Keras's params (with BN statistics) and MACs", "[zoo]") {
    const Graph g = build_zoo_model("xception");
    CHECK(g.input_shape == Shape{1, 3, 299, 299});
    CHECK(count_params(g) == 22'855'952);
    CHECK(count_params(g) + count_bn_statistics(g) == 22'910'480);
    CHECK(count_macs(g) == 8'357'403'496);
    CHECK(g.shape_of(g.output) == Shape{1, 1000});
    CHECK(std::holds_alternative<Softmax>(g.producer(g.output)->op));
}

TEST_CASE("zoo xception uses TF 'same' padding asymmetric when the total is odd", "[zoo]") {
    const Graph g = build_zoo_model("xception");
    // block3_pool sees 74x74: out 37 needs 1 pad in total, all of it bottom/right.
    const Node* pool = g.producer("block3_pool");
    REQUIRE(pool);
    CHECK(std::get<MaxPool>(pool->op).window.pad == Padding2D{0, 0, 1, 1});
    CHECK(g.shape_of("block3_pool") == Shape{1, 256, 37, 37});
    CHECK(conv_named(g, "block2_sepconv1_dw").pad == Padding2D{1, 1, 1, 1});
    CHECK(conv_named(g, "block2_sepconv1_dw").groups == 64);
    CHECK(g.shape_of("block14_sepconv2_act") == Shape{1, 2048, 10, 10});
}

TEST_CASE("zoo mobilenet_v2 has torchvision's params and MACs", "[zoo]") {
    check_counts("mobilenet_v2", 3'504'872, 300'774'272);
}

TEST_CASE("zoo layer names follow torchvision and are unique", "[zoo]") {
    for (const ZooModel& m : zoo_models()) {
        const Graph g = build_zoo_model(m.name);
        std::set<std::string> names;
        for (const Node& n : g.nodes)
            CHECK(names.insert(n.name).second);
    }
    const Graph r = build_zoo_model("resnext50_32x4d");
    CHECK(conv_named(r, "layer1.0.downsample.0").out_channels == 256);
    CHECK(conv_named(r, "layer2.0.conv2").stride_h == 2);  // v1.5: stride on the 3x3
    CHECK(conv_named(r, "layer2.0.conv2").groups == 32);
    CHECK(conv_named(r, "layer2.0.conv1").stride_h == 1);
    CHECK(r.producer("layer4.2.relu3"));
    const Graph m = build_zoo_model("mobilenet_v2");
    CHECK(conv_named(m, "features.1.conv.0.0").groups == 32);  // t == 1: no expansion
    CHECK(conv_named(m, "features.2.conv.1.0").groups == 96);
    CHECK(conv_named(m, "features.18.0").out_channels == 1280);
    CHECK(m.producer("classifier.1"));
}

TEST_CASE("zoo batch and resolution parameters scale shapes and MACs", "[zoo]") {
    const Graph base = build_zoo_model("resnext50_32x4d");
    const Graph g = build_zoo_model("resnext50_32x4d", 2, 160);
    CHECK(g.input_shape == Shape{2, 3, 160, 160});
    CHECK(g.shape_of(g.output) == Shape{2, 1000});
    CHECK(count_params(g) == count_params(base));
    // Every feature map shrinks by 5/7 per side (112->80 ... 7->5), so conv MACs scale by
    // 25/49; the fc layer's 2048x1000 does not; the batch doubles everything.
    const int64_t fc = 2048 * 1000;
    const int64_t conv224 = count_macs(base) - fc;
    REQUIRE(conv224 % 49 == 0);
    CHECK(count_macs(g) == 2 * (conv224 / 49 * 25 + fc));

    CHECK(build_zoo_model("xception", 1, 0).input_shape == Shape{1, 3, 299, 299});
    CHECK(build_zoo_model("mobilenet_v2", 3, 96).shape_of("classifier.1") == Shape{3, 1000});
}

TEST_CASE("zoo rejects a too-small resolution and bad batch/resolution", "[zoo]") {
    // Xception's two 'valid' 3x3 convs need at least 7 pixels.
    CHECK_THROWS_AS(build_zoo_model("xception", 1, 5), Error);
    CHECK_NOTHROW(build_zoo_model("xception", 1, 7));
    CHECK_THROWS_AS(build_zoo_model("resnet50", 0, 224), Error);
    CHECK_THROWS_AS(build_zoo_model("resnet50", 1, -1), Error);
}

TEST_CASE("zoo unknown model name error lists the available models", "[zoo]") {
    try {
        build_zoo_model("resnet18");
        FAIL("no error");
    } catch (const Error& e) {
        const std::string msg = e.what();
        CHECK(msg.find("resnet18") != std::string::npos);
        for (const ZooModel& m : zoo_models())
            CHECK(msg.find(m.name) != std::string::npos);
    }
    REQUIRE(zoo_models().size() == 8);
}

TEST_CASE("zoo weights are deterministic per seed", "[zoo]") {
    const Graph a = build_zoo_model("mobilenet_v2", 1, 0, 7);
    const Graph b = build_zoo_model("mobilenet_v2", 1, 0, 7);
    const Graph c = build_zoo_model("mobilenet_v2", 1, 0, 8);
    CHECK(conv_named(a, "features.3.conv.1.0").weight.data ==
          conv_named(b, "features.3.conv.1.0").weight.data);
    CHECK(std::get<Dense>(a.producer("classifier.1")->op).weight.data ==
          std::get<Dense>(b.producer("classifier.1")->op).weight.data);
    CHECK(conv_named(a, "features.3.conv.1.0").weight.data !=
          conv_named(c, "features.3.conv.1.0").weight.data);
    CHECK(std::get<BatchNorm>(a.producer("features.0.1")->op).gamma.data !=
          std::get<BatchNorm>(c.producer("features.0.1")->op).gamma.data);
}
