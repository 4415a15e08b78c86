// Each layer pipeline, generated for this CPU, against the reference implementation on shapes
// chosen to break assumptions: channel counts that are not multiples of the vector width, odd
// spatial sizes, strides, asymmetric padding, dilation, 1xN kernels, groups of 1, 2, 3, 32 and
// 64, depthwise with and without a channel multiplier, and batches above 1.
#include <catch2/catch.hpp>

#include <algorithm>

#include "codegen/lowering.h"
#include "generated_test_util.h"

using namespace cardinal;
using namespace cardinal::test;

namespace {

// Generated output within 1e-5 relative L2 of the reference (float sums in another order).
void check_matches_reference(const Graph& g, const std::string& tag,
                             ScheduleLookup schedules = {}, LoweringOptions lowering = {}) {
    auto net = generate_and_load(g, tag, "host", std::move(schedules), lowering);
    for (uint64_t seed : {1u, 2u}) {
        const Tensor input = random_input(g.input_shape, seed);
        const Tensor want = reference::run(g, input);
        const std::vector<float> got = run_generated(*net, input);
        REQUIRE(got.size() == want.data.size());
        INFO(tag << " seed " << seed);
        CHECK(relative_l2(got, want.data) <= 1e-5);
    }
}

// The same network under several schedules of its `generator` layers, each against the
// reference. cardinal_conv2d's are checked with Winograd off (every conv direct).
void check_conv_schedules(const Graph& g, const std::string& tag,
                          const std::vector<std::map<std::string, std::string>>& schedules,
                          const std::string& generator = "cardinal_conv2d",
                          LoweringOptions lowering = {}) {
    if (generator == "cardinal_conv2d") lowering.winograd = false;
    for (size_t i = 0; i < schedules.size(); ++i) {
        const auto knobs = schedules[i];
        check_matches_reference(
            g, tag + "_" + std::to_string(i),
            [knobs, generator](const KernelSpec& spec, const std::string&) {
                return spec.generator == generator ? std::optional(knobs) : std::nullopt;
            },
            lowering);
    }
}

ConvSpec conv_spec(int out, int kh, int kw, int sh, int sw, Padding2D pad, int dil, int groups,
                   bool bias) {
    ConvSpec s;
    s.out_channels = out;
    s.kernel_h = kh;
    s.kernel_w = kw;
    s.stride_h = sh;
    s.stride_w = sw;
    s.pad = pad;
    s.dilation_h = s.dilation_w = dil;
    s.groups = groups;
    s.bias = bias;
    return s;
}

}  // namespace

TEST_CASE("generated dense conv: 5->7 channels 3x3 odd 9x11 image batch 2 with bias") {
    GraphBuilder b("conv_dense", Shape{2, 5, 9, 11}, 1);
    auto y = b.conv("conv", b.input(), conv_spec(7, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, true));
    check_matches_reference(std::move(b).finish(y), "conv_dense");
}

TEST_CASE("generated conv: stride 2 asymmetric padding 1x3 and 3x1 kernels") {
    GraphBuilder b("conv_strided", Shape{1, 6, 13, 10}, 2);
    auto y = b.conv("a", b.input(), conv_spec(19, 1, 3, 2, 2, {0, 1, 2, 0}, 1, 1, false));
    y = b.conv("b", y, conv_spec(17, 3, 1, 1, 2, {2, 0, 1, 0}, 1, 1, true));
    check_matches_reference(std::move(b).finish(y), "conv_strided");
}

TEST_CASE("generated conv: dilation 2 and a 7x7 stride-2 stem on 3 channels") {
    GraphBuilder b("conv_dilated", Shape{1, 3, 23, 21}, 3);
    auto y = b.conv("stem", b.input(), conv_spec(16, 7, 7, 2, 2, {3, 3, 3, 3}, 1, 1, false));
    y = b.conv("dil", y, conv_spec(20, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 1, true));
    check_matches_reference(std::move(b).finish(y), "conv_dilated");
}

TEST_CASE("generated padded conv: input staged per task or per image, or read in place") {
    // Zero-padded dense convs stage their input rows (zero border included) by default; the
    // schedule decides where: per row task (threads split rows, tasks of 1 or more tile rows),
    // once (threads split channel blocks), or not at all (stage_input=false).
    // 3 input channels (staged with vectors along x), 20 (a vector and a tail), stride 2 with
    // asymmetric padding, a 5x5 kernel; batch 2.
    GraphBuilder b("conv_staged", Shape{2, 3, 11, 13}, 8);
    auto y = b.conv("rgb", b.input(), conv_spec(20, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, true));
    y = b.conv("s2", y, conv_spec(48, 3, 3, 2, 2, {1, 0, 1, 1}, 1, 1, false));
    y = b.conv("k5", y, conv_spec(16, 5, 5, 1, 1, {2, 2, 2, 2}, 1, 1, true));
    const Graph g = std::move(b).finish(y);
    const std::vector<std::map<std::string, std::string>> schedules = {
        {{"stage_input", "false"}},
        {{"parallel", "rows"}, {"tile_y", "2"}, {"tile_x", "3"}, {"rows_per_task", "4"}},
        {{"parallel", "rows"}, {"order", "pixel_outer"}},
        {{"parallel", "blocks"}, {"oc_block", "16"}}};
    check_conv_schedules(g, "conv_staged", schedules);
}

TEST_CASE("generated 1x1 conv: reduction in chunks, and channel blocks split into row tasks") {
    // Reduction chunks (ci_block) keep a register tile's partial sum per chunk and add it to
    // accumulators held per channel block (threads over blocks) or per tile row (threads over
    // rows); channel-block threads may also split each block into tasks of rows_per_task rows.
    // 48 and 40 input channels (chunks of 8 and 16, and 16 not dividing 40: no chunks there),
    // 9x11 images (tail tiles in x and y), a fused residual add + ReLU, a padded 3x3 conv
    // (staged input, row tasks per block); batch 2.
    GraphBuilder b("conv_chunks", Shape{2, 48, 9, 11}, 9);
    auto x = b.conv("a", b.input(), conv_spec(40, 1, 1, 1, 1, {}, 1, 1, true));
    auto y = b.conv("b", x, conv_spec(40, 1, 1, 1, 1, {}, 1, 1, true));
    y = b.add("add", y, x);
    y = b.relu("relu", y);
    auto z = b.conv("c", y, conv_spec(24, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, false));
    const Graph g = std::move(b).finish(z);
    const std::vector<std::map<std::string, std::string>> schedules = {
        {{"parallel", "rows"}, {"order", "pixel_outer"}, {"ci_block", "8"}, {"ci_unroll", "4"},
         {"oc_block", "16"}, {"tile_x", "4"}, {"tile_y", "2"}},
        {{"parallel", "rows"}, {"order", "pixel_outer"}, {"ci_block", "16"}, {"oc_block", "16"},
         {"tile_x", "3"}, {"rows_per_task", "4"}},
        {{"parallel", "blocks"}, {"order", "co_outer"}, {"ci_block", "8"}, {"ci_unroll", "2"},
         {"oc_block", "16"}, {"tile_x", "5"}, {"tile_y", "2"}},
        {{"parallel", "blocks"}, {"order", "co_outer"}, {"rows_per_task", "2"},
         {"oc_block", "16"}, {"tile_x", "3"}},
        {{"parallel", "blocks"}, {"order", "co_outer"}, {"rows_per_task", "4"}, {"tile_y", "2"},
         {"oc_block", "16"}, {"tile_x", "6"}},
        {{"parallel", "blocks"}, {"order", "co_outer"}, {"rows_per_task", "4"}, {"ci_block", "8"},
         {"oc_block", "16"}}};
    check_conv_schedules(g, "conv_chunks", schedules);
}

TEST_CASE("generated Winograd conv: F(4x4) and F(2x2), odd shapes, both parallel splits") {
    // Dense 3x3 stride-1 convs with >= 16 channels and >= 16 tiles run Winograd. 24 and 40
    // channels (not multiples of 16; 40 stored as 48), 13x11 images (partial tiles in x and y),
    // asymmetric and no padding, a fused residual add + ReLU, batch 2. Schedules: the defaults,
    // threads over rows of tiles with register tiles of 2 tiles (not dividing a row's 3) and 3,
    // threads over channel blocks with 5 tiles (not dividing the image's 24). The tile 2 variant
    // is lowered with its own weights.
    GraphBuilder b("winograd", Shape{2, 24, 13, 11}, 12);
    auto x = b.conv("a", b.input(), conv_spec(40, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, true));
    auto y = b.conv("b", x, conv_spec(20, 3, 3, 1, 1, {2, 0, 0, 2}, 1, 1, false));
    y = b.conv("c", y, conv_spec(40, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, true));
    y = b.add("add", y, x);
    y = b.relu("relu", y);
    auto z = b.conv("d", y, conv_spec(16, 3, 3, 1, 1, {0, 0, 0, 0}, 1, 1, true));
    const Graph g = std::move(b).finish(z);
    const NetworkPlan plan = lower_graph(g);
    int winograd_steps = 0;
    for (const PlannedStep& st : plan.steps)
        winograd_steps += st.kernel.generator == "cardinal_winograd_conv2d";
    CHECK(winograd_steps == 4);
    const std::vector<std::map<std::string, std::string>> schedules = {
        {},
        {{"parallel", "rows"}, {"tiles", "2"}, {"oc_block", "16"}},
        {{"parallel", "rows"}, {"tiles", "3"}},
        {{"parallel", "blocks"}, {"tiles", "5"}, {"oc_block", "16"}}};
    check_conv_schedules(g, "winograd", schedules, "cardinal_winograd_conv2d");
    LoweringOptions tile2;
    tile2.winograd_tile = 2;
    check_conv_schedules(g, "winograd_m2", {{}, {{"parallel", "blocks"}}},
                         "cardinal_winograd_conv2d", tile2);
}

TEST_CASE("generated grouped conv: groups 2 and 3 with odd channels per group") {
    GraphBuilder b("conv_groups_small", Shape{2, 6, 7, 9}, 4);
    auto y = b.conv("g2", b.input(), conv_spec(10, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 2, true));
    y = b.conv("g3", y, conv_spec(9, 3, 3, 2, 2, {1, 0, 1, 1}, 1, 1, false));
    y = b.conv("g3b", y, conv_spec(15, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 3, true));
    check_matches_reference(std::move(b).finish(y), "conv_groups_small");
}

TEST_CASE("generated grouped conv: groups 32 (ResNeXt 4 per group) and 64 (2 per group)") {
    GraphBuilder b("conv_groups_large", Shape{1, 128, 9, 7}, 5);
    auto y = b.conv("g32", b.input(), conv_spec(128, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 32, false));
    y = b.conv("g64", y, conv_spec(128, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 64, true));
    y = b.conv("g32_8", y, conv_spec(256, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 32, false));
    check_matches_reference(std::move(b).finish(y), "conv_groups_large");
}

// cardinal_grouped_conv2d (several whole groups per vector, group-minor lanes): 4, 8, 16 and 32
// channels per group, input and output channels per group that differ, odd sizes, stride 2,
// batch 2, a fused residual, padded channels (24 and 40 channels), a 1x1 and a dilated kernel,
// channel multipliers.
TEST_CASE("generated grouped conv: 4 and 8 channels per group, odd sizes, stride 2, batch 2") {
    GraphBuilder b("conv_groups_packed", Shape{2, 64, 13, 11}, 13);
    auto x = b.conv("g4", b.input(), conv_spec(64, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 16, true));
    x = b.relu("r1", x);
    auto y = b.conv("g8_s2", x, conv_spec(64, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 8, false));
    auto z = b.conv("g8_res", y, conv_spec(64, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 8, true));
    z = b.add("add", z, y);
    z = b.relu("r2", z);
    z = b.conv("g4_in8_out4", z, conv_spec(32, 3, 3, 1, 1, {1, 0, 1, 2}, 1, 8, false));
    z = b.conv("g16_dil", z, conv_spec(32, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 2, true));
    z = b.conv("g_1x1", z, conv_spec(64, 1, 1, 1, 1, {}, 1, 8, false));
    z = b.conv("g32_s2", z, conv_spec(64, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 2, true));
    check_matches_reference(std::move(b).finish(z), "conv_groups_packed");
}

TEST_CASE("generated grouped conv: input rows staged per block, once per task or by row") {
    // The default stages per task only for strided convs with over 1 MiB of input; forced here
    // on small odd shapes: 4, 8 and 32 channels per group, stride 2 with asymmetric padding,
    // dilation 2, a fused residual, batch 2, tasks of 1, 3 and 4 rows (tails). Row staging (a
    // sliding window over a ring of rows) with row tasks and with block tasks, two-row tiles.
    GraphBuilder b("conv_groups_staged", Shape{2, 64, 13, 11}, 15);
    auto x = b.conv("g4", b.input(), conv_spec(64, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 16, true));
    auto y = b.conv("g8_s2", x, conv_spec(64, 3, 3, 2, 2, {1, 0, 1, 1}, 1, 8, false));
    auto z = b.conv("g32_dil", y, conv_spec(64, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 2, true));
    z = b.add("add", z, y);
    const Graph g = std::move(b).finish(b.relu("r", z));
    const std::vector<std::map<std::string, std::string>> schedules = {
        {{"stage", "task"}},
        {{"stage", "task"}, {"rows_per_task", "3"}, {"tile_x", "3"}},
        {{"stage", "task"}, {"rows_per_task", "4"}, {"tile_y", "2"}, {"tile_x", "2"}},
        {{"stage", "block"}, {"rows_per_task", "3"}},
        {{"stage", "row"}, {"rows_per_task", "4"}, {"tile_x", "3"}},
        {{"stage", "row"}, {"rows_per_task", "5"}, {"tile_y", "2"}, {"tile_x", "2"}},
        {{"stage", "row"}, {"parallel", "blocks"}, {"rows_per_task", "3"}, {"oc_block", "32"}}};
    check_conv_schedules(g, "conv_groups_staged", schedules, "cardinal_grouped_conv2d");
}

TEST_CASE("generated grouped conv: threads split channel blocks") {
    // Tasks of one register tile of channel blocks over a chunk of rows: 4, 8, 16 and 32
    // channels per group, stride 2 with asymmetric padding, dilation 2, a fused residual,
    // batch 2, whole-image chunks and chunks of 1, 3 and 4 rows (tails), two-block tiles.
    GraphBuilder b("conv_groups_split_blocks", Shape{2, 64, 13, 11}, 16);
    auto x = b.conv("g4", b.input(), conv_spec(64, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 16, true));
    auto y = b.conv("g8_s2", x, conv_spec(64, 3, 3, 2, 2, {1, 0, 1, 1}, 1, 8, false));
    auto w = b.conv("g16", y, conv_spec(64, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 4, true));
    auto z = b.conv("g32_dil", w, conv_spec(64, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 2, true));
    z = b.add("add", z, y);
    const Graph g = std::move(b).finish(b.relu("r", z));
    const std::vector<std::map<std::string, std::string>> schedules = {
        {{"parallel", "blocks"}},
        {{"parallel", "blocks"}, {"rows_per_task", "1"}, {"oc_block", "32"}},
        {{"parallel", "blocks"}, {"rows_per_task", "3"}, {"tile_x", "3"}},
        {{"parallel", "blocks"}, {"rows_per_task", "4"}, {"tile_y", "2"}, {"tile_x", "2"}}};
    check_conv_schedules(g, "conv_groups_split_blocks", schedules, "cardinal_grouped_conv2d");
}

TEST_CASE("generated grouped conv: reduction with kernel rows or input channels outermost") {
    // Both loop orders of the reduction on 4, 32 and 64 input channels per group (the default
    // puts kernel rows outermost from 64 on), stride 2 with asymmetric padding, dilation 2, a
    // fused residual, batch 2, threads over rows and over channel blocks.
    GraphBuilder b("conv_groups_reduction", Shape{2, 128, 11, 9}, 17);
    auto x = b.conv("g4", b.input(), conv_spec(128, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 32, true));
    auto y = b.conv("g64_s2", x, conv_spec(128, 3, 3, 2, 2, {1, 0, 1, 1}, 1, 2, false));
    auto z = b.conv("g32_dil", y, conv_spec(128, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 4, true));
    z = b.add("add", z, y);
    const Graph g = std::move(b).finish(b.relu("r", z));
    const std::vector<std::map<std::string, std::string>> schedules = {
        {{"reduction", "rows_outer"}},
        {{"reduction", "channels_outer"}},
        {{"reduction", "rows_outer"}, {"parallel", "blocks"}, {"oc_block", "32"}},
        {{"reduction", "rows_outer"}, {"parallel", "rows"}, {"tile_x", "3"}, {"tile_y", "2"}}};
    check_conv_schedules(g, "conv_groups_reduction", schedules, "cardinal_grouped_conv2d");
}

TEST_CASE("generated grouped conv: 4 per group in natural and group-minor lane order") {
    // Natural lanes (rotations of the staged pixel, chosen when every target has AVX-512) and
    // group-minor lanes (128-bit broadcasts), each forced whatever this host has: odd sizes,
    // stride 2 with asymmetric padding, dilation 2, a fused residual, batch 2, 24 channels (6
    // groups: the second block half padding), threads over rows and over channel blocks, the
    // input staged per block, per task and by row, both reduction orders.
    GraphBuilder b("conv_groups_lanes", Shape{2, 64, 13, 11}, 18);
    auto x = b.conv("g4", b.input(), conv_spec(64, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 16, true));
    auto y = b.conv("g4_s2", x, conv_spec(64, 3, 3, 2, 2, {1, 0, 1, 1}, 1, 16, false));
    auto z = b.conv("g4_dil_res", y, conv_spec(64, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 16, true));
    z = b.add("add", z, y);
    z = b.relu("r", z);
    z = b.conv("to24", z, conv_spec(24, 1, 1, 1, 1, {}, 1, 1, true));
    z = b.conv("g4_24", z, conv_spec(24, 3, 3, 1, 1, {0, 1, 1, 0}, 1, 6, false));
    const Graph g = std::move(b).finish(z);
    const std::vector<std::map<std::string, std::string>> schedules = {
        {},
        {{"parallel", "blocks"}, {"oc_block", "32"}, {"tile_x", "3"}},
        {{"stage", "task"}, {"rows_per_task", "3"}, {"tile_y", "2"}, {"tile_x", "2"}},
        {{"reduction", "rows_outer"}, {"rows_per_task", "4"}},
        {{"stage", "row"}, {"oc_block", "32"}, {"rows_per_task", "5"}}};
    for (const bool natural : {true, false}) {
        LoweringOptions lowering;
        lowering.grouped_natural_lanes = natural;
        int natural_kernels = 0, grouped_kernels = 0;
        for (const PlannedStep& st : lower_graph(g, lowering).steps)
            if (st.kernel.generator == "cardinal_grouped_conv2d") {
                ++grouped_kernels;
                natural_kernels += st.kernel.params.at("lane_order") == "natural";
            }
        CHECK(grouped_kernels == 4);
        CHECK(natural_kernels == (natural ? 4 : 0));
        check_conv_schedules(g, natural ? "conv_groups_natural" : "conv_groups_group_minor",
                             schedules, "cardinal_grouped_conv2d", lowering);
    }
}

TEST_CASE("generated grouped conv: padded channels and channel multipliers 2, 4, 8") {
    GraphBuilder b("conv_groups_padded", Shape{1, 24, 9, 10}, 14);
    auto x = b.conv("g6x4", b.input(), conv_spec(24, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 6, true));
    x = b.conv("g5x8", x, conv_spec(40, 3, 3, 2, 1, {1, 1, 1, 1}, 1, 1, false));
    x = b.conv("g5x8b", x, conv_spec(40, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 5, true));
    auto m2 = b.conv("mult2", x, conv_spec(80, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 40, false));
    auto m4 = b.conv("mult4", m2, conv_spec(320, 3, 3, 1, 2, {1, 1, 1, 1}, 1, 80, true));
    auto m8 = b.conv("mult8", x, conv_spec(320, 1, 1, 1, 1, {}, 1, 40, false));
    m8 = b.conv("dw_1x3", m8, conv_spec(320, 1, 3, 1, 2, {0, 1, 0, 1}, 1, 320, false));
    auto sum = b.add("sum", m4, m8);
    check_matches_reference(std::move(b).finish(sum), "conv_groups_padded");
}

TEST_CASE("generated depthwise conv: 24 channels stride 2 and channel multiplier 2") {
    GraphBuilder b("depthwise", Shape{2, 24, 11, 9}, 6);
    auto y = b.conv("dw", b.input(), conv_spec(24, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 24, true));
    y = b.conv("dw_mult2", y, conv_spec(48, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 24, false));
    y = b.conv("dw_dil", y, conv_spec(48, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 48, false));
    check_matches_reference(std::move(b).finish(y), "depthwise");
}

TEST_CASE("generated depthwise conv: a ReLU read only by it runs on its input loads") {
    // Xception's block: x -> ReLU -> depthwise 3x3 -> pointwise -> + x. The ReLU has no step of
    // its own. A ReLU that something else reads too (here the residual add after the second
    // depthwise conv) keeps its step.
    GraphBuilder b("relu_depthwise", Shape{2, 20, 9, 11}, 9);
    auto x = b.conv("c0", b.input(), conv_spec(20, 1, 1, 1, 1, {}, 1, 1, true));
    auto d = b.conv("dw", b.relu("r", x), conv_spec(20, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 20, false));
    auto s = b.add("sum", b.conv("pw", d, conv_spec(20, 1, 1, 1, 1, {}, 1, 1, true)), x);
    auto r2 = b.relu("r2", s);
    auto t = b.add("t", b.conv("dw2", r2, conv_spec(20, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 20, true)),
                   r2);
    const Graph g = std::move(b).finish(b.add("out", t, s));

    const NetworkPlan plan = lower_graph(g);
    std::vector<std::string> layers;
    for (const PlannedStep& step : plan.steps)
        layers.push_back(step.layers);
    CHECK(std::count(layers.begin(), layers.end(), "r+dw") == 1);
    CHECK(std::count(layers.begin(), layers.end(), "r") == 0);
    CHECK(std::count(layers.begin(), layers.end(), "r2") == 1);
    for (const PlannedStep& step : plan.steps)
        if (step.layers == "r+dw") CHECK(step.kernel.params.at("input_activation") == "relu");
    check_matches_reference(g, "relu_depthwise");
}

TEST_CASE("generated fused epilogues: BN folding residual add ReLU and ReLU6") {
    GraphBuilder b("epilogues", Shape{1, 8, 10, 10}, 7);
    auto x = b.conv("c1", b.input(), conv_spec(20, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, false));
    x = b.batch_norm("bn1", x);
    x = b.relu("r1", x);
    auto y = b.conv("c2", x, conv_spec(20, 1, 1, 1, 1, {}, 1, 1, false));
    y = b.batch_norm("bn2", y);
    x = b.add("add", y, x);
    x = b.relu("r2", x);
    auto z = b.conv("c3", x, conv_spec(20, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 20, true));
    z = b.batch_norm("bn3", z);
    z = b.clip("r6", z, 0.0f, 6.0f);
    check_matches_reference(std::move(b).finish(z), "epilogues");
}

TEST_CASE("generated standalone ops: unfused BatchNorm ReLU Add Pad Concat") {
    GraphBuilder b("standalone", Shape{2, 5, 8, 7}, 8);
    auto p1 = b.max_pool("mp", b.input(), PoolWindow{3, 3, 1, 1, {1, 1, 1, 1}, false});
    auto p2 = b.average_pool("ap", b.input(), PoolWindow{3, 3, 1, 1, {1, 1, 1, 1}, false}, true);
    auto a = b.add("add", p1, p2);
    a = b.batch_norm("bn", a);
    a = b.relu("relu", a);
    auto padded = b.pad("pad", a, {1, 2, 0, 1}, 0.0f);
    auto c = b.conv("c", padded, conv_spec(11, 2, 2, 1, 1, {}, 1, 1, true));
    auto d = b.conv("d", padded, conv_spec(6, 2, 2, 1, 1, {}, 1, 1, false));
    auto cat = b.concat("cat", {c, d, c});
    auto out = b.conv("mix", cat, conv_spec(9, 1, 1, 1, 1, {}, 1, 1, true));
    check_matches_reference(std::move(b).finish(out), "standalone");
}

TEST_CASE("generated pooling: ceil_mode count_include_pad both ways asymmetric padding") {
    GraphBuilder b("pooling", Shape{1, 18, 11, 12}, 9);
    auto m = b.max_pool("max_ceil", b.input(), PoolWindow{3, 3, 2, 2, {0, 1, 1, 0}, true});
    auto a1 = b.average_pool("avg_incl", m, PoolWindow{3, 2, 2, 1, {1, 1, 1, 1}, true}, true);
    auto a2 = b.average_pool("avg_excl", m, PoolWindow{3, 2, 2, 1, {1, 1, 1, 1}, true}, false);
    auto s = b.add("sum", a1, a2);
    check_matches_reference(std::move(b).finish(s), "pooling");
}

TEST_CASE("generated classifier head: global pool flatten dense softmax - batch 3") {
    GraphBuilder b("head", Shape{3, 40, 5, 3}, 10);
    auto g = b.global_average_pool("gap", b.input());
    g = b.flatten("flatten", g);
    g = b.dense("fc", g, 13, true);
    g = b.relu("relu", g);
    g = b.dense("fc2", g, 7, false);
    g = b.softmax("softmax", g);
    check_matches_reference(std::move(b).finish(g), "head");
}

TEST_CASE("generated dense layer: 16-output weight blocks, tiles of 1, 2 and 4 blocks") {
    // 37 -> 50 outputs: 4 weight blocks of 16 (64 stored, 14 padded), batch 2, a ReLU;
    // tiles of one, two (two tiles) and four blocks, in parallel or not.
    GraphBuilder b("dense_blocks", Shape{2, 37, 1, 1}, 17);
    auto x = b.flatten("flatten", b.input());
    x = b.dense("fc", x, 50, true);
    const Graph g = std::move(b).finish(b.relu("relu", x));
    const std::vector<std::map<std::string, std::string>> schedules = {
        {},
        {{"o_block", "16"}},
        {{"o_block", "32"}, {"parallel_blocks", "false"}},
        {{"o_block", "64"}}};
    check_conv_schedules(g, "dense_blocks", schedules, "cardinal_dense");
}

TEST_CASE("generated dense layer on a flattened spatial tensor (NCHW flatten order)") {
    GraphBuilder b("flatten_spatial", Shape{2, 5, 4, 3}, 11);
    auto x = b.conv("c", b.input(), conv_spec(6, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, true));
    x = b.flatten("flatten", x);
    x = b.dense("fc", x, 9, true);
    check_matches_reference(std::move(b).finish(x), "flatten_spatial");
}

TEST_CASE("generated network output that is a flattened spatial tensor") {
    GraphBuilder b("flatten_output", Shape{2, 3, 4, 5}, 12);
    auto x = b.conv("c", b.input(), conv_spec(7, 1, 1, 1, 1, {}, 1, 1, true));
    x = b.flatten("flatten", x);
    check_matches_reference(std::move(b).finish(x), "flatten_output");
}
