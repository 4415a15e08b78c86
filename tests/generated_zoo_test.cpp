// Every zoo network, generated for this CPU, against the reference implementation: relative L2
// error <= 1e-4 on the logits and the same top-1 class, on several random inputs, at batch 1
// and batch 2. Sanitizer builds run the reference ~4x slower, so they check at a reduced
// resolution (the generated code is the same kind either way).
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "generated_test_util.h"
#include "zoo/zoo.h"

using namespace cardinal;
using namespace cardinal::test;

namespace {

#ifdef CARDINAL_SANITIZE
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

void check_zoo_model(const std::string& model, int batch, int resolution, int inputs) {
    const Graph full = build_zoo_model(model, batch, resolution);
    // Compare logits: xception ends in a Softmax that saturates with random weights.
    const Graph logits = without_final_softmax(full);
    const std::string tag = model + "_b" + std::to_string(batch);
    {
        auto net = generate_and_load(logits, tag);
        for (int i = 0; i < inputs; ++i) {
            const Tensor input = random_input(full.input_shape, 100 + i);
            const Tensor want = reference::run(logits, input);
            const std::vector<float> got = run_generated(*net, input);
            REQUIRE(got.size() == want.data.size());
            INFO(model << " batch " << batch << " input " << i);
            CHECK(relative_l2(got, want.data) <= 1e-4);
            CHECK(top1(got, batch) == top1(want.data, batch));
        }
    }
    // A folder holds up to 340 MB of packed weights: removed once checked (kept when a REQUIRE
    // stops the test), so the suite needs the disk of the networks being tested at the moment,
    // not of the whole zoo at two batches in each of two builds (6.6 GB).
    std::filesystem::remove_all(test_dir(tag));
}

void check_zoo_model(const std::string& model) {
    const int res = kSanitized ? 64 : 0;
    check_zoo_model(model, 1, res, kSanitized ? 1 : 2);
    // Batch 2 at a smaller resolution keeps CI time sane; it exercises the batch dimension of
    // every pipeline all the same.
    check_zoo_model(model, 2, kSanitized ? 64 : (model == "xception" ? 199 : 160), 1);
}

}  // namespace

TEST_CASE("generated resnet50 matches the reference") { check_zoo_model("resnet50"); }
TEST_CASE("generated resnet101 matches the reference") { check_zoo_model("resnet101"); }
TEST_CASE("generated resnext50_32x4d matches the reference") {
    check_zoo_model("resnext50_32x4d");
}
TEST_CASE("generated resnext101_32x4d matches the reference") {
    check_zoo_model("resnext101_32x4d");
}
TEST_CASE("generated resnext101_64x4d matches the reference") {
    check_zoo_model("resnext101_64x4d");
}
TEST_CASE("generated resnext101_32x8d matches the reference") {
    check_zoo_model("resnext101_32x8d");
}
TEST_CASE("generated xception matches the reference") { check_zoo_model("xception"); }
TEST_CASE("generated mobilenet_v2 matches the reference") { check_zoo_model("mobilenet_v2"); }
