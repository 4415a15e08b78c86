// The autotuner's mechanics (schedules/): the schedule space's filters, the JIT running a kernel
// exactly as the generated library does, the search's correctness checks (defaults against the
// reference, candidates against the default), resuming from the
// database, the database's refusals, and `cardinal tune` feeding `cardinal generate`. Budgets
// and layers are small: these test the machinery, not the speedups.
#include <sys/wait.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "cardinal_runtime.h"
#include "codegen/kernel_compiler.h"
#include "generated_test_util.h"
#include "halide/conv_blocking.h"
#include "ir/error.h"
#include "passes/fold_batch_norm.h"
#include "schedules/jit_runner.h"
#include "schedules/reference_check.h"
#include "schedules/schedule_database.h"
#include "schedules/schedule_space.h"
#include "schedules/tuner.h"
#include "zoo/zoo.h"

using namespace cardinal;
using namespace cardinal::test;
namespace fs = std::filesystem;
using Catch::Contains;

namespace {

std::string fresh_dir(const std::string& tag) {
    const std::string d = test_dir(tag);
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

// A conv network small enough to tune in seconds: two 3x3 convs of the same cost (32->48 and
// 48->32 channels), so each layer's budget class is about half the budget. (With a 1x1 conv
// beside a 3x3 one, the 1x1's class was a tenth of the budget, and the noise in its microsecond
// default time moved that class by more than the factor 1.5 a rerun tolerates.)
Graph two_conv_graph() {
    GraphBuilder b("two_convs", Shape{1, 32, 12, 12}, 5);
    auto x = b.conv("c3a", b.input(), ConvSpec::square(48, 3, 1, 1));
    x = b.relu("relu", x);
    x = b.conv("c3b", x, ConvSpec::square(32, 3, 1, 1));
    return std::move(b).finish(x);
}

// A one-layer network: the conv, then a ReLU.
Graph conv_relu_graph(const std::string& name, const Shape& input, const ConvSpec& conv) {
    GraphBuilder b(name, input, 4);
    auto x = b.conv("conv", b.input(), conv);
    x = b.relu("relu", x);
    return std::move(b).finish(x);
}

// A database entry with every field set, for the database's own tests.
tune::ScheduleEntry sample_entry(const std::string& generator, const std::string& layer,
                                 const std::string& target) {
    tune::ScheduleEntry e;
    e.layer = layer;
    e.generator = generator;
    e.target = target;
    e.knobs = {{"tile_x", "4"}};
    e.time_ms = 1;
    e.default_ms = 2;
    e.cpu = "cpu";
    e.halide_version = "14";
    e.cardinal_version = kGeneratorVersion;
    e.date = "2024-01-01T00:00:00Z";
    return e;
}

tune::TuneOptions tune_options(const std::string& db, double budget) {
    tune::TuneOptions o;
    o.target = host_preset().halide;
    o.budget_seconds = budget;
    o.db_path = db;
    o.seed = 3;
    o.jobs = 2;
    o.cache_dir = CARDINAL_TEST_CACHE_DIR;
    o.quiet = !std::getenv("TUNE_VERBOSE");  // TUNE_VERBOSE=1: the tuner's progress on stderr
    return o;
}

// A halide_buffer_t over `host` with a kernel argument's dims.
struct Buf {
    halide_buffer_t b{};
    halide_dimension_t d[5]{};
    Buf(float* host, const std::vector<BufferDim>& dims) {
        for (size_t i = 0; i < dims.size(); ++i)
            d[i] = {0, int32_t(dims[i].extent), int32_t(dims[i].stride), 0};
        b.host = reinterpret_cast<uint8_t*>(host);
        b.type = halide_type_t(halide_type_float, 32, 1);
        b.dimensions = int(dims.size());
        b.dim = d;
    }
};

int64_t span_of(const std::vector<BufferDim>& dims) {
    int64_t s = 1;
    for (const BufferDim& d : dims)
        s += (d.extent - 1) * d.stride;
    return s;
}

struct CliResult {
    int code = -1;
    std::string out, err;
};

CliResult run_cli(const std::string& args, const std::string& dir) {
    const std::string out = dir + "/stdout.txt", err = dir + "/stderr.txt";
    const std::string command =
        "'" CARDINAL_CLI_PATH "' " + args + " >'" + out + "' 2>'" + err + "'";
    const int status = std::system(command.c_str());
    CliResult r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    auto slurp = [](const std::string& p) {
        std::ifstream f(p, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(f), {});
    };
    r.out = slurp(out);
    r.err = slurp(err);
    UNSCOPED_INFO("cardinal " << args << "\nexit " << r.code << "\nstdout: " << r.out
                              << "\nstderr: " << r.err);
    return r;
}

}  // namespace

TEST_CASE("the conv schedule space keeps accumulators within the register file", "[tuner]") {
    KernelSpec conv{"cardinal_conv2d",
                    {{"batch", "1"},
                     {"in_channels", "64"},
                     {"in_channel_stride", "64"},
                     {"in_height", "14"},
                     {"in_width", "14"},
                     {"out_channels", "128"},
                     {"out_channel_stride", "128"},
                     {"out_height", "14"},
                     {"out_width", "14"},
                     {"kernel_h", "3"},
                     {"kernel_w", "3"},
                     {"stride_h", "1"},
                     {"stride_w", "1"},
                     {"pad_top", "1"},
                     {"pad_left", "1"},
                     {"dilation_h", "1"},
                     {"dilation_w", "1"},
                     {"groups", "1"},
                     {"activation", "relu"}}};
    for (const std::string preset : {"x86-64-avx512", "x86-64-avx2"}) {
        const std::string target = resolve_target(preset);
        const tune::ScheduleSpace space(conv, target);
        REQUIRE_FALSE(space.empty());
        const int vec = space.natural_vector_width(), regs = space.vector_registers();
        CHECK(vec == (preset == "x86-64-avx512" ? 16 : 8));
        CHECK(regs == (preset == "x86-64-avx512" ? 32 : 16));
        SeededRandom rng(1);
        std::set<std::string> seen, stagings;
        for (int i = 0; i < 300; ++i) {
            tune::Knobs k = i % 2 ? space.random(rng) : space.mutate(space.resolve({}), rng);
            REQUIRE_FALSE(k.empty());
            seen.insert(tune::knobs_str(k));
            const int vectors = std::stoi(k.at("oc_block")) / vec;
            const int acc = vectors * std::stoi(k.at("tile_x")) * std::stoi(k.at("tile_y"));
            INFO(tune::knobs_str(k));
            CHECK(acc + vectors + (regs == 32 ? 0 : 1) <= regs);
            CHECK(128 % std::stoi(k.at("oc_block")) == 0);
            CHECK(64 % std::stoi(k.at("ci_unroll")) == 0);
            CHECK_FALSE((k.at("parallel") == "blocks" && k.at("order") == "pixel_outer"));
            stagings.insert(k.at("stage_input"));  // a padded conv: the knob is searched
        }
        CHECK(stagings == std::set<std::string>{"false", "true"});
        CHECK(space.resolve({}).at("stage_input") == "true");
        CHECK(seen.size() > 50);  // a real space, not a handful of points
        // The same seed gives the same candidates.
        SeededRandom a(9), b(9);
        for (int i = 0; i < 20; ++i)
            CHECK(space.random(a) == space.random(b));
    }
    // Reduction chunks of a 1x1 conv divide its input channels, also when 16 does not
    // (Xception's 728 = 8 x 7 x 13), and apply only to channel-block splits in co_outer order.
    KernelSpec pointwise = conv;
    const std::vector<std::pair<std::string, std::string>> pointwise_shape = {
        {"in_channels", "728"},  {"in_channel_stride", "736"},
        {"out_channels", "728"}, {"out_channel_stride", "736"},
        {"in_height", "19"},     {"in_width", "19"},
        {"out_height", "19"},    {"out_width", "19"},
        {"kernel_h", "1"},       {"kernel_w", "1"},
        {"pad_top", "0"},        {"pad_left", "0"}};
    for (const auto& [k, v] : pointwise_shape)
        pointwise.params[k] = v;
    const tune::ScheduleSpace pspace(pointwise, resolve_target("x86-64-avx512"));
    std::set<int> chunks;
    SeededRandom prng(3);
    for (int i = 0; i < 400; ++i) {
        const tune::Knobs k = pspace.random(prng);
        REQUIRE_FALSE(k.empty());
        INFO(tune::knobs_str(k));
        CHECK_FALSE(k.count("stage_input"));  // no padding: nothing to stage
        const int chunk = std::stoi(k.at("ci_block"));
        if (chunk == 0) continue;
        chunks.insert(chunk);
        CHECK(728 % chunk == 0);
        CHECK(chunk < 728);
        // Chunks with threads over channel blocks in co_outer order, or over rows in
        // pixel_outer order; channel blocks are then not split into row tasks.
        if (k.at("parallel") == "blocks") {
            CHECK(k.at("order") == "co_outer");
            CHECK(k.at("rows_per_task") == "0");
        } else {
            CHECK(k.at("parallel") == "rows");
            CHECK(k.at("order") == "pixel_outer");
        }
    }
    CHECK(chunks.size() >= 4);
    // Channel blocks split into tasks of rows: at least a tile row, fewer than the image's,
    // and no reduction chunks.
    auto blocks_rows = [&](const std::string& chunk, const std::string& tile_y,
                           const std::string& rows) {
        return pspace
            .canonical({{"parallel", "blocks"},
                        {"order", "co_outer"},
                        {"ci_block", chunk},
                        {"tile_y", tile_y},
                        {"rows_per_task", rows}})
            .at("rows_per_task");
    };
    CHECK(blocks_rows("0", "1", "8") == "8");
    CHECK(blocks_rows("0", "2", "20") == "0");
    CHECK(blocks_rows("52", "1", "8") == "0");
    CHECK(pspace.canonical({{"parallel", "rows"}, {"order", "co_outer"}, {"ci_block", "52"}})
              .at("ci_block") == "0");
    // Its weights (2.1 MB) outweigh its input (1 MB), and 736 channels are 23 register tiles of
    // 32: by default threads split channel blocks, not rows (each would read every weight).
    CHECK(pspace.resolve({}).at("parallel") == "blocks");
    KernelSpec wide_image = pointwise;
    for (const char* k : {"in_height", "in_width", "out_height", "out_width"})
        wide_image.params[k] = "37";
    const tune::Knobs wide_defaults =
        tune::ScheduleSpace(wide_image, resolve_target("x86-64-avx512")).resolve({});
    CHECK(wide_defaults.at("parallel") == "rows");
    // Loop order: threads over channel blocks sweep the image per block (co_outer); threads over
    // rows of an input larger than 1 MiB (37x37x736 floats: 3.8 MiB) run every channel block on
    // a row while its inputs are in cache (pixel_outer), unless the schedule says otherwise.
    CHECK(pspace.resolve({}).at("order") == "co_outer");
    CHECK(wide_defaults.at("order") == "pixel_outer");
    CHECK(tune::ScheduleSpace(wide_image, resolve_target("x86-64-avx512"))
              .resolve({{"order", "co_outer"}})
              .at("order") == "co_outer");
    KernelSpec small_image = pointwise;  // 64 channels at 56x56: 0.77 MiB of input
    for (const char* k : {"in_height", "in_width", "out_height", "out_width"})
        small_image.params[k] = "56";
    for (const char* k : {"in_channels", "in_channel_stride", "out_channels", "out_channel_stride"})
        small_image.params[k] = "64";
    const tune::Knobs small_defaults =
        tune::ScheduleSpace(small_image, resolve_target("x86-64-avx2")).resolve({});
    CHECK(small_defaults.at("parallel") == "rows");
    CHECK(small_defaults.at("order") == "co_outer");
    // The grouped conv: accumulators + one row of input vectors within 31 zmm.
    KernelSpec grouped{"cardinal_grouped_conv2d",
                       {{"batch", "1"},
                        {"in_channels", "256"},
                        {"in_channel_stride", "256"},
                        {"in_height", "28"},
                        {"in_width", "28"},
                        {"out_channels", "256"},
                        {"out_channel_stride", "256"},
                        {"out_height", "28"},
                        {"out_width", "28"},
                        {"kernel_h", "3"},
                        {"kernel_w", "3"},
                        {"stride_h", "1"},
                        {"stride_w", "1"},
                        {"pad_top", "1"},
                        {"pad_left", "1"},
                        {"dilation_h", "1"},
                        {"dilation_w", "1"},
                        {"groups", "32"},
                        {"activation", "relu"}}};
    const tune::ScheduleSpace gspace(grouped, resolve_target("x86-64-avx512"));
    SeededRandom rng(2);
    for (int i = 0; i < 200; ++i) {
        const tune::Knobs k = gspace.random(rng);
        REQUIRE_FALSE(k.empty());
        INFO(tune::knobs_str(k));
        const int tx = std::stoi(k.at("tile_x")), ty = std::stoi(k.at("tile_y"));
        CHECK(std::stoi(k.at("oc_block")) / 16 * tx * ty + (tx - 1) + 3 <= 31);
        CHECK(std::stoi(k.at("rows_per_task")) % ty == 0);
    }
    // Staging per task is a choice only where the input exceeds an L2 (here 0.8 MB: not; at
    // 56x56, 3.2 MB: yes), and the default for strided convs there; per block or by row always.
    auto has_stage = [](const tune::ScheduleSpace& s, const std::string& value) {
        for (const auto& d : s.knobs())
            if (d.name == "stage")
                return std::find(d.values.begin(), d.values.end(), value) != d.values.end();
        return false;
    };
    CHECK_FALSE(has_stage(gspace, "task"));
    CHECK(has_stage(gspace, "row"));
    CHECK(gspace.resolve({}).at("stage") == "block");
    KernelSpec wide = grouped;
    wide.params["in_height"] = wide.params["in_width"] = "56";
    wide.params["stride_h"] = wide.params["stride_w"] = "2";
    const tune::ScheduleSpace strided_space(wide, resolve_target("x86-64-avx512"));
    CHECK(has_stage(strided_space, "task"));
    CHECK(strided_space.resolve({}).at("stage") == "task");
    CHECK(strided_space.resolve({}).at("rows_per_task") == "1");
    // Threads split rows by default, but channel blocks for stride-1 convs under 16 rows (a
    // row task would be one row reading all the weights), whose tasks then stage whole images
    // when they fit half of L1 (14 rows of 16 padded pixels x 16 channels here).
    CHECK(gspace.resolve({}).at("parallel") == "rows");
    KernelSpec small = grouped;
    for (const char* p : {"in_height", "in_width", "out_height", "out_width"})
        small.params[p] = "14";
    small.params["in_channels"] = small.params["in_channel_stride"] = "512";
    small.params["out_channels"] = small.params["out_channel_stride"] = "512";
    const tune::ScheduleSpace small_space(small, resolve_target("x86-64-avx512"));
    CHECK(small_space.resolve({}).at("parallel") == "blocks");
    CHECK(small_space.resolve({}).at("rows_per_task") == "14");
    CHECK(small_space.resolve({{"parallel", "rows"}}).at("rows_per_task") == "1");
    KernelSpec small_strided = small;
    small_strided.params["in_height"] = small_strided.params["in_width"] = "28";
    small_strided.params["stride_h"] = small_strided.params["stride_w"] = "2";
    const tune::ScheduleSpace small_strided_space(small_strided, resolve_target("x86-64-avx512"));
    CHECK(small_strided_space.resolve({}).at("parallel") == "rows");
    // Strided with over 1 MiB of weights (1024 channels in 32 groups: 1.2 MB): channel blocks,
    // each over the whole image, so that the weights are read once.
    KernelSpec heavy_strided = small_strided;
    heavy_strided.params["in_channels"] = heavy_strided.params["in_channel_stride"] = "1024";
    heavy_strided.params["out_channels"] = heavy_strided.params["out_channel_stride"] = "1024";
    const tune::ScheduleSpace heavy_strided_space(heavy_strided, resolve_target("x86-64-avx512"));
    CHECK(heavy_strided_space.resolve({}).at("parallel") == "blocks");
    CHECK(heavy_strided_space.resolve({}).at("rows_per_task") == "14");
    CHECK_FALSE(grouped_default_splits_blocks(2, 14, 32, 0.6 * 1024 * 1024));
    CHECK(grouped_default_splits_blocks(2, 14, 32, 1.2 * 1024 * 1024));
    CHECK_FALSE(grouped_default_splits_blocks(2, 14, 4, 1.2 * 1024 * 1024));
    // Default row chunks compute the fewest rows: the last chunk of an image shifts inwards and
    // recomputes its overlap. 32 channels per group at 14x14 (ResNeXt-101 32x8d): 10 rows fit
    // half of L1, but chunks of 10 compute 20 rows, of 7 14. Over rows at 28x28: at most 28/8 = 3
    // rows, but 3 compute 30, 2 compute 28.
    KernelSpec wide_groups = small;
    wide_groups.params["in_channels"] = wide_groups.params["in_channel_stride"] = "1024";
    wide_groups.params["out_channels"] = wide_groups.params["out_channel_stride"] = "1024";
    const tune::ScheduleSpace wide_groups_space(wide_groups, resolve_target("x86-64-avx512"));
    CHECK(wide_groups_space.resolve({}).at("parallel") == "blocks");
    CHECK(wide_groups_space.resolve({}).at("rows_per_task") == "7");
    CHECK(grouped_default_rows_per_task(14, 1, 32, 3, 1, 1, 14, 1, true) == 7);
    CHECK(gspace.resolve({}).at("rows_per_task") == "2");
    CHECK(grouped_default_rows_per_task(28, 1, 16, 3, 1, 1, 28, 1, false) == 2);
    CHECK(grouped_default_rows_per_task(28, 1, 16, 3, 1, 1, 28, 2, false) == 2);
    // The depthwise conv: accumulators + one kernel row of inputs per vector (+ the 9 weight
    // vectors of a one-vector block) within 31 zmm; threads over channel blocks ignore
    // rows_per_task.
    KernelSpec dw{"cardinal_depthwise_conv2d",
                  {{"batch", "1"},
                   {"channels", "728"},
                   {"channel_stride", "736"},
                   {"in_height", "19"},
                   {"in_width", "19"},
                   {"out_height", "19"},
                   {"out_width", "19"},
                   {"kernel_h", "3"},
                   {"kernel_w", "3"},
                   {"stride_h", "1"},
                   {"stride_w", "1"},
                   {"pad_top", "1"},
                   {"pad_left", "1"},
                   {"dilation_h", "1"},
                   {"dilation_w", "1"},
                   {"activation", "none"}}};
    const tune::ScheduleSpace dspace(dw, resolve_target("x86-64-avx512"));
    for (int i = 0; i < 200; ++i) {
        const tune::Knobs k = dspace.random(rng);
        REQUIRE_FALSE(k.empty());
        INFO(tune::knobs_str(k));
        const int vec = std::stoi(k.at("vector_width")), cb = std::stoi(k.at("c_block"));
        const int tx = std::stoi(k.at("tile_x"));
        CHECK(cb % vec == 0);
        CHECK(736 % cb == 0);
        CHECK((tx == 1 || (cb == vec ? 9 : 0) + cb / vec * (tx + tx + 2) <= 31));
        if (k.at("order") == "channels_parallel") CHECK(k.at("rows_per_task") == "1");
    }
    // Default row tasks balance two threads: 19 rows in 5s (10 rows on the busier thread; 8s
    // leave it 11), 28 in 7s, 112 in 8s, 7 in 4s, 2 rows in 1s.
    CHECK(dspace.resolve({}).at("rows_per_task") == "5");
    CHECK(depthwise_default_rows_per_task(19) == 5);
    CHECK(depthwise_default_rows_per_task(28) == 7);
    CHECK(depthwise_default_rows_per_task(112) == 8);
    CHECK(depthwise_default_rows_per_task(7) == 4);
    CHECK(depthwise_default_rows_per_task(2) == 1);
    // The Winograd conv: accumulators + one row of U vectors within 32 zmm; by default threads
    // split channel blocks on ResNet's 256 -> 256 at 14x14 (4 rows of tiles, 4 blocks), rows
    // of tiles at 56x56, register tiles of 4 of the image's 16 tiles, 7 of a row's 14.
    KernelSpec winograd{"cardinal_winograd_conv2d",
                        {{"batch", "1"},
                         {"in_channels", "256"},
                         {"in_channel_stride", "256"},
                         {"in_height", "14"},
                         {"in_width", "14"},
                         {"out_channels", "256"},
                         {"out_channel_stride", "256"},
                         {"out_height", "14"},
                         {"out_width", "14"},
                         {"pad_top", "1"},
                         {"pad_left", "1"},
                         {"tile", "4"},
                         {"activation", "relu"}}};
    const tune::ScheduleSpace wspace(winograd, resolve_target("x86-64-avx512"));
    for (int i = 0; i < 200; ++i) {
        const tune::Knobs k = i % 2 ? wspace.random(rng) : wspace.mutate(wspace.resolve({}), rng);
        REQUIRE_FALSE(k.empty());
        INFO(tune::knobs_str(k));
        const int vectors = std::stoi(wspace.resolve(k).at("oc_block")) / 16;
        CHECK(vectors * std::stoi(wspace.resolve(k).at("tiles")) + vectors <= 32);
    }
    CHECK(wspace.resolve({}).at("parallel") == "blocks");
    CHECK(wspace.resolve({}).at("tiles") == "4");
    KernelSpec winograd56 = winograd;
    for (const char* k : {"in_channels", "in_channel_stride", "out_channels", "out_channel_stride"})
        winograd56.params[k] = "64";
    for (const char* k : {"in_height", "in_width", "out_height", "out_width"})
        winograd56.params[k] = "56";
    const tune::Knobs w56 =
        tune::ScheduleSpace(winograd56, resolve_target("x86-64-avx512")).resolve({});
    CHECK(w56.at("parallel") == "rows");
    CHECK(w56.at("tiles") == "7");
    // Softmax has no knobs worth searching.
    CHECK(tune::ScheduleSpace({"cardinal_softmax", {{"channels", "10"}}},
                              resolve_target("x86-64-avx2"))
              .empty());
}

TEST_CASE("with a thread count, the schedule space leaves out row tasks that unbalance threads",
          "[tuner]") {
    // ResNeXt-50's layer2 1x1 conv: 28 rows.
    KernelSpec conv{"cardinal_conv2d",
                    {{"batch", "1"},
                     {"in_channels", "256"},
                     {"in_channel_stride", "256"},
                     {"in_height", "28"},
                     {"in_width", "28"},
                     {"out_channels", "512"},
                     {"out_channel_stride", "512"},
                     {"out_height", "28"},
                     {"out_width", "28"},
                     {"kernel_h", "1"},
                     {"kernel_w", "1"},
                     {"stride_h", "1"},
                     {"stride_w", "1"},
                     {"pad_top", "0"},
                     {"pad_left", "0"},
                     {"dilation_h", "1"},
                     {"dilation_w", "1"},
                     {"groups", "1"},
                     {"activation", "relu"}}};
    const std::string target = resolve_target("x86-64-avx512");
    const tune::Knobs base{{"oc_block", "64"}, {"tile_x", "7"},      {"tile_y", "1"},
                           {"ci_unroll", "1"}, {"parallel", "rows"}, {"order", "pixel_outer"},
                           {"ci_block", "0"}};
    auto with_rows = [&](int rows, int tile_y = 1) {
        tune::Knobs k = base;
        k["rows_per_task"] = std::to_string(rows);
        k["tile_y"] = std::to_string(tile_y);
        if (tile_y > 1) k["tile_x"] = "3";  // 4 vectors x 3 x 2 accumulators fit 32 registers
        return k;
    };
    const tune::ScheduleSpace unknown(conv, target), two(conv, target, 2), three(conv, target, 3);
    // Thread count unknown: every task size is a candidate.
    CHECK(unknown.valid(with_rows(16)));
    // 2 threads: tasks of 16 rows leave 16 against 12 (the finest split gives 14 each); tasks of
    // 4 rows are 7 tasks (16 against 12 again); 2 and 14 rows split evenly.
    CHECK_FALSE(two.valid(with_rows(16)));
    CHECK_FALSE(two.valid(with_rows(4)));
    CHECK_FALSE(two.valid(with_rows(8)));
    CHECK(two.valid(with_rows(2)));
    CHECK(two.valid(with_rows(0)));
    // Tile rows of 2: 14 of them, 7 per thread when each is a task; tasks of 2 tile rows are 7
    // tasks, 4 | 3 of them.
    CHECK(two.valid(with_rows(0, 2)));
    CHECK_FALSE(two.valid(with_rows(4, 2)));
    // 3 threads: 28 rows are 10 | 9 | 9 at best; tasks of 2 as well (5 | 5 | 4 tasks); tasks of 8
    // give 12 | 8 | 8.
    CHECK(three.valid(with_rows(0)));
    CHECK(three.valid(with_rows(2)));
    CHECK_FALSE(three.valid(with_rows(8)));
    // Threads over channel blocks split no rows.
    tune::Knobs blocks = with_rows(16);
    blocks["parallel"] = "blocks";
    blocks["order"] = "co_outer";
    CHECK(two.valid(blocks));
    // What the search proposes for 2 threads never unbalances them.
    SeededRandom rng(4);
    int row_splits = 0;
    for (int i = 0; i < 300; ++i) {
        const tune::Knobs k = i % 2 ? two.random(rng) : two.mutate(two.resolve({}), rng);
        REQUIRE_FALSE(k.empty());
        INFO(tune::knobs_str(k));
        if (k.at("parallel") != "rows" || k.at("tile_y") != "1") continue;
        ++row_splits;
        CHECK((k.at("rows_per_task") == "0" || k.at("rows_per_task") == "2"));
    }
    CHECK(row_splits > 0);

    // Grouped 3x3 at 14x14: tasks of 4 rows (the last shifted inwards) are 4 tasks of 4 rows,
    // 8 rows against the 7 of one row per task.
    KernelSpec grouped{"cardinal_grouped_conv2d",
                       {{"batch", "1"},
                        {"in_channels", "512"},
                        {"in_channel_stride", "512"},
                        {"in_height", "14"},
                        {"in_width", "14"},
                        {"out_channels", "512"},
                        {"out_channel_stride", "512"},
                        {"out_height", "14"},
                        {"out_width", "14"},
                        {"kernel_h", "3"},
                        {"kernel_w", "3"},
                        {"stride_h", "1"},
                        {"stride_w", "1"},
                        {"pad_top", "1"},
                        {"pad_left", "1"},
                        {"dilation_h", "1"},
                        {"dilation_w", "1"},
                        {"groups", "32"},
                        {"activation", "relu"}}};
    const tune::ScheduleSpace gtwo(grouped, target, 2);
    CHECK_FALSE(gtwo.valid({{"rows_per_task", "4"}, {"tile_y", "1"}}));
    CHECK(gtwo.valid({{"rows_per_task", "7"}, {"tile_y", "1"}}));
    CHECK(gtwo.valid({{"rows_per_task", "1"}, {"tile_y", "1"}}));
}

TEST_CASE("a kernel run through the JIT gives the AOT network's output bit for bit", "[tuner]") {
    GraphBuilder b("jit_vs_aot", Shape{1, 24, 10, 9}, 7);
    auto x = b.conv("conv", b.input(), ConvSpec::square(40, 3, 1, 1));
    x = b.relu("relu", x);
    const Graph g = std::move(b).finish(x);
    const tune::Knobs knobs{{"oc_block", "48"},      {"tile_x", "3"},      {"tile_y", "2"},
                            {"ci_unroll", "4"},      {"parallel", "rows"}, {"rows_per_task", "4"},
                            {"order", "pixel_outer"}};

    GenerateOptions o;
    o.out_dir = fresh_dir("jit_vs_aot/generated");
    o.targets = {host_preset().halide};
    o.cache_dir = CARDINAL_TEST_CACHE_DIR;
    o.quiet = true;
    o.schedules = [&](const KernelSpec& base, const std::string&) -> std::optional<tune::Knobs> {
        if (base.generator == "cardinal_conv2d") return knobs;
        return std::nullopt;
    };
    const GenerateResult r = generate_network(g, o);
    REQUIRE(r.database_schedules == 1);
    LoadedNetwork net(o.out_dir, r.name);
    const Tensor input = random_input(g.input_shape, 11);
    const std::vector<float> aot = run_generated(net, input);
    CHECK(relative_l2(aot, reference::run(g, input).data) < 1e-5);

    // The same kernel, compiled here and loaded through the JIT, on the same input and weights.
    const NetworkPlan& plan = r.plan;
    const PlannedStep* step = nullptr;
    for (const PlannedStep& s : plan.steps)
        if (s.kind == StepKind::Kernel) step = &s;
    REQUIRE(step);
    const CompiledKernel& ck = plan.variant_kernels[0][size_t(step->kernel_slot)];
    CHECK(ck.spec.params.at("tile_x") == "3");
    const std::string dir = fresh_dir("jit_vs_aot/jit");
    compile_kernel_object(ck.spec, plan.targets[0], ck.function_name, dir + "/kernel.o");
    compile_runtime_object(plan.targets[0], dir + "/runtime.o");

    const PlannedTensor& in_t = plan.tensors[size_t(plan.input_tensor)];
    const PlannedTensor& out_t = plan.tensors[size_t(plan.output_tensor)];
    std::vector<float> in_nhwc(size_t(in_t.stored_elements()));
    rt::nchw_to_nhwc(input.ptr(), in_nhwc.data(), in_t.n, in_t.c, in_t.h, in_t.w,
                     in_t.channel_stride);
    std::vector<std::vector<float>> memory;
    std::vector<std::unique_ptr<Buf>> bufs;
    for (const KernelArg& a : step->args) {
        if (a.kind == KernelArg::Kind::Weights)
            memory.push_back(plan.blobs[size_t(a.index)].data);
        else if (a.index == plan.input_tensor)
            memory.push_back(in_nhwc);
        else
            memory.push_back(std::vector<float>(size_t(span_of(a.dims)), std::nanf("")));
        bufs.push_back(std::make_unique<Buf>(memory.back().data(), a.dims));
    }
    std::vector<float> jit(aot.size());
    {
        tune::JitSession session(dir + "/runtime.o");
        session.set_num_threads(2);
        auto kernel = session.load(dir + "/kernel.o", ck.function_name);
        std::vector<halide_buffer_t*> args;
        for (auto& bf : bufs)
            args.push_back(&bf->b);
        REQUIRE(kernel->call(args) == 0);
        REQUIRE(kernel->call(args) == 0);  // and again, on the warm thread pool
        // A second kernel object in the same session, then gone again.
        CHECK_THAT(error_of([&] { session.load(dir + "/runtime.o", "no_such_kernel"); }),
                   Contains("no_such_kernel"));
    }
    rt::nhwc_to_nchw(memory.back().data(), jit.data(), out_t.n, out_t.c, out_t.h, out_t.w,
                     out_t.channel_stride);
    CHECK(jit == aot);
}

TEST_CASE("a candidate computing something else is rejected", "[tuner]") {
    GraphBuilder b("wrong_candidate", Shape{1, 16, 8, 8}, 3);
    const std::string y = b.conv("conv", b.input(), ConvSpec::square(32, 3, 1, 1));
    const Graph g = std::move(b).finish(y);
    const std::string dir = fresh_dir("wrong_candidate");
    // The budget covers compiling and measuring the default too (slow under ASan, on a loaded
    // machine): 5 s once left the layer a share below the 1 s a search needs.
    tune::TuneOptions o = tune_options(dir + "/db.json", 15);
    // Every candidate but the default gets a ReLU the layer does not have.
    o.candidate_hook = [](KernelSpec& spec) { spec.params["activation"] = "relu"; };
    const tune::TuneResult r = tune_network(g, o);
    REQUIRE(r.layers.size() == 1);
    const tune::LayerResult& l = r.layers[0];
    CHECK(l.trials > 0);
    CHECK(l.rejected == l.trials - l.failed);
    CHECK(l.rejected > 0);
    CHECK(l.knobs.empty());
    CHECK(l.status == "default best");
    REQUIRE_FALSE(r.log.empty());
    CHECK_THAT(r.log[0], Contains("rejected") && Contains("differ from the default"));
    // The database records the default as the layer's schedule.
    const auto db = tune::ScheduleDatabase::load(o.db_path, o.target);
    REQUIRE(db.entries().size() == 1);
    CHECK(db.entries().begin()->second.knobs.empty());
    CHECK(db.entries().begin()->second.rejected == l.rejected);
}

TEST_CASE("a step's output is checked against the reference implementation", "[tuner]") {
    // conv (BatchNorm folded) + residual add + ReLU in one step, with 20 channels stored as 32.
    GraphBuilder b("reference_check", Shape{1, 20, 7, 6}, 9);
    auto x = b.conv("conv", b.input(), ConvSpec::square(20, 3, 1, 1));
    x = b.batch_norm("bn", x);
    x = b.add("add", x, b.input());
    x = b.relu("relu", x);
    const Graph g = std::move(b).finish(x);
    GenerateOptions o;
    o.targets = {host_preset().halide};
    o.quiet = true;
    const NetworkPlan plan = generate_sources(g, o).plan;
    const PlannedStep* step = nullptr;
    for (const PlannedStep& s : plan.steps)
        if (s.kind == StepKind::Kernel) step = &s;
    REQUIRE(step);
    REQUIRE(step->layers == "conv+add+relu");

    // The step's arguments: the input (twice: conv operand and residual), weights, bias, output.
    const PlannedTensor& in_t = plan.tensors[size_t(plan.input_tensor)];
    const PlannedTensor& out_t = plan.tensors[size_t(step->output)];
    const Tensor input = random_input(g.input_shape, 5);
    std::vector<float> stored_in(size_t(in_t.stored_elements()));
    rt::nchw_to_nhwc(input.ptr(), stored_in.data(), in_t.n, in_t.c, in_t.h, in_t.w,
                     in_t.channel_stride);
    std::vector<float> stored_out(size_t(out_t.stored_elements()));
    const Tensor want = reference::run(g, input);
    rt::nchw_to_nhwc(want.ptr(), stored_out.data(), out_t.n, out_t.c, out_t.h, out_t.w,
                     out_t.channel_stride);
    std::vector<const float*> args;
    for (const KernelArg& a : step->args)
        args.push_back(a.kind == KernelArg::Kind::Weights ? plan.blobs[size_t(a.index)].data.data()
                       : a.index == step->output          ? stored_out.data()
                                                          : stored_in.data());
    const Graph folded = fold_batch_norm(g);

    const tune::ReferenceCheck same = tune::check_step_against_reference(folded, plan, *step, args);
    CHECK(same.checked);
    CHECK(same.difference.empty());

    stored_out[size_t(out_t.channel_stride) * 3 + 2] += 0.5f;  // pixel 3, channel 2
    const tune::ReferenceCheck off = tune::check_step_against_reference(folded, plan, *step, args);
    CHECK(off.checked);
    CHECK_THAT(off.difference, Contains("1 of 840 outputs differ from the reference"));

    // Padded channels are not outputs of the layer: what they hold does not matter.
    stored_out[size_t(out_t.channel_stride) * 3 + 2] -= 0.5f;
    stored_out[size_t(out_t.channel_stride) - 1] = 1e9f;
    CHECK(tune::check_step_against_reference(folded, plan, *step, args).difference.empty());
}

TEST_CASE("tuning again continues from the database", "[tuner]") {
    const Graph g = two_conv_graph();
    const std::string dir = fresh_dir("resume");
    const std::string db_path = dir + "/db.json";
    // The budget covers measuring both layers' defaults (each repeat with its inputs flushed from
    // the caches) before any search: under ASan on a loaded 2-core machine, 6 s once left no layer
    // the 1 s share a search needs.
    const tune::TuneResult first = tune_network(g, tune_options(db_path, 15));
    std::string statuses;
    for (const tune::LayerResult& l : first.layers) {
        CHECK(l.reference_check == "matches");
        statuses += l.base.str() + ": " + l.status + ", " + std::to_string(l.trials) + " trials\n";
    }
    INFO(statuses);
    const auto db1 = tune::ScheduleDatabase::load(db_path);
    REQUIRE_FALSE(db1.entries().empty());
    for (const auto& [layer, e] : db1.entries()) {
        CHECK(e.trials > 0);
        CHECK(e.budget_s > 0);
        CHECK(e.time_ms > 0);
        CHECK(e.cardinal_version == kGeneratorVersion);
        CHECK(e.cpu == tune::cpu_model());
        CHECK(e.date.size() == 20);
    }

    // The same budget: every tuned layer is kept as it is, unsearched. (On a loaded machine a
    // tuned schedule of these microsecond kernels can time over 5 % slower than the default on
    // the rerun: it is then replaced by the default, still without a search.)
    const tune::TuneResult again = tune_network(g, tune_options(db_path, 15));
    const auto db2 = tune::ScheduleDatabase::load(db_path);
    for (const tune::LayerResult& l : again.layers)
        if (db1.find(l.base)) {
            INFO(l.base.str());
            CHECK(l.trials == 0);
            CHECK(db2.find(l.base)->trials == db1.find(l.base)->trials);
            if (l.status == "stale: default kept") {
                CHECK(db2.find(l.base)->knobs.empty());
            } else {
                CHECK(l.status == "already tuned");
                CHECK(db2.find(l.base)->knobs == db1.find(l.base)->knobs);
            }
        }

    // A larger budget refines them: more trials on top of the recorded ones.
    // 30 s is a budget class twice the recorded one (the same class is within a factor 1.5).
    const tune::TuneResult more = tune_network(g, tune_options(db_path, 30));
    const auto db3 = tune::ScheduleDatabase::load(db_path);
    int refined = 0;
    for (const tune::LayerResult& l : more.layers) {
        const tune::ScheduleEntry* before = db1.find(l.base);
        const tune::ScheduleEntry* after = db3.find(l.base);
        if (!before || !after || l.trials == 0) continue;
        ++refined;
        CHECK(after->trials == before->trials + l.trials);
        CHECK(after->budget_s > before->budget_s);
        CHECK(after->time_ms <= after->default_ms);
    }
    CHECK(refined > 0);
}

TEST_CASE("a recorded schedule the default now beats is replaced by the default", "[tuner]") {
    // One 1x1 conv large enough (6.4 M multiply-adds) that its time is the FMAs', not the
    // calls' overheads.
    GraphBuilder b("stale", Shape{1, 64, 28, 28}, 6);
    const Graph g = std::move(b).finish(b.conv("pw", b.input(), ConvSpec::square(128, 1)));
    const std::string dir = fresh_dir("stale");
    const std::string db_path = dir + "/db.json";
    const std::string target = host_preset().halide;
    GenerateOptions o;
    o.targets = {target};
    KernelSpec pw;
    for (const KernelSpec& k : generate_sources(g, o).plan.kernels)
        if (k.generator == "cardinal_conv2d" && k.params.at("kernel_h") == "1") pw = k;
    REQUIRE_FALSE(pw.generator.empty());

    // As if tuned long ago with a large budget (so a rerun would keep it as "already tuned"):
    // one accumulator and one thread, bound by the FMA latency, several times slower than the
    // default.
    tune::ScheduleDatabase db(target, tune::kStrategySearch);
    tune::ScheduleEntry e;
    e.layer = pw.str();
    e.generator = pw.generator;
    e.target = target;
    e.knobs = {{"parallel", "none"},
               {"oc_block", "16"},
               {"tile_x", "1"},
               {"tile_y", "1"},
               {"ci_unroll", "1"}};
    e.top = {{e.knobs, 0.001}};
    e.time_ms = 0.001;
    e.default_ms = 0.002;
    e.trials = 7;
    e.budget_s = 1000;
    db.put(e);
    db.save(db_path);

    const tune::TuneResult r = tune_network(g, tune_options(db_path, 5));
    const tune::LayerResult* result = nullptr;
    for (const tune::LayerResult& l : r.layers)
        if (l.base == pw) result = &l;
    REQUIRE(result);
    CHECK(result->status == "stale: default kept");
    CHECK(result->knobs.empty());
    CHECK(result->tuned_ms == result->default_ms);
    const auto after = tune::ScheduleDatabase::load(db_path);
    const tune::ScheduleEntry* replaced = after.find(pw);
    REQUIRE(replaced);
    CHECK(replaced->knobs.empty());
    CHECK(replaced->time_ms == replaced->default_ms);
    CHECK(replaced->time_ms > 0);
    // What the search found stays: its candidates seed a later refinement.
    CHECK(replaced->trials == 7);
    CHECK(replaced->budget_s == 1000);
    REQUIRE(replaced->top.size() == 1);
    CHECK(replaced->top[0].first == e.knobs);

    // The default, now recorded, is simply kept by the next run.
    const tune::TuneResult again = tune_network(g, tune_options(db_path, 5));
    for (const tune::LayerResult& l : again.layers)
        if (l.base == pw) CHECK(l.status == "already tuned");
}

TEST_CASE("a corrupt schedule database is refused with a clear error", "[tuner]") {
    const std::string dir = fresh_dir("corrupt");
    const std::string target = host_preset().halide;
    auto write = [&](const std::string& name, const std::string& text) {
        std::ofstream(dir + "/" + name) << text;
        return dir + "/" + name;
    };
    CHECK_THAT(error_of([&] { tune::ScheduleDatabase::load(write("garbage.json", "{\"form")); }),
               Contains("garbage.json") && Contains("corrupt") && Contains("not valid JSON"));
    CHECK_THAT(error_of([&] { tune::ScheduleDatabase::load(write("other.json", "[1, 2]")); }),
               Contains("not usable") && Contains("not a JSON object"));
    CHECK_THAT(error_of([&] {
                   tune::ScheduleDatabase::load(write("foreign.json", "{\"format\": \"x\"}"));
               }),
               Contains("not a cardinal schedule database"));
    CHECK_THAT(error_of([&] { tune::ScheduleDatabase::load(dir + "/missing.json"); }),
               Contains("cannot read schedule database"));

    // A valid database with one entry, then damaged in several ways.
    tune::ScheduleDatabase db(target, tune::kStrategySearch);
    tune::ScheduleEntry e = sample_entry("cardinal_conv2d", "cardinal_conv2d(batch=1)", target);
    db.put(e);
    db.save(dir + "/good.json");
    CHECK(tune::ScheduleDatabase::load(dir + "/good.json", target).entries().size() == 1);
    nlohmann::json j = nlohmann::json::parse(std::ifstream(dir + "/good.json"));
    auto damaged = [&](const std::function<void(nlohmann::json&)>& damage) {
        nlohmann::json c = j;
        damage(c);
        const std::string p = write("damaged.json", c.dump());
        return error_of([&] { tune::ScheduleDatabase::load(p, target); });
    };
    CHECK_THAT(damaged([](auto& c) { c.erase("target"); }), Contains("lacks \"target\""));
    CHECK_THAT(damaged([](auto& c) { c["format_version"] = 7; }),
               Contains("format_version 7 is not supported"));
    CHECK_THAT(damaged([](auto& c) { c["layers"]["cardinal_conv2d(batch=1)"]["knobs"] = 3; }),
               Contains("knobs is not an object"));
    CHECK_THAT(damaged([](auto& c) { c["layers"]["cardinal_conv2d(batch=1)"].erase("time_ms"); }),
               Contains("lacks \"time_ms\""));
    CHECK_THAT(damaged([](auto& c) { c["layers"]["cardinal_conv2d(batch=1)"]["target"] = "x"; }),
               Contains("is for target x"));
    // Truncated mid-file.
    const std::string text = j.dump(2);
    CHECK_THAT(error_of([&] {
                   tune::ScheduleDatabase::load(write("cut.json", text.substr(0, text.size() / 2)));
               }),
               Contains("corrupt"));

    // Through the command line: exit code 1 and one sentence naming the file.
    const CliResult r =
        run_cli("generate --model mobilenet_v2 --resolution 32 --sources-only --out " + dir +
                    "/out --schedules " + dir + "/cut.json",
                dir);
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Contains("cut.json") && Contains("corrupt"));
}

TEST_CASE("a schedule database for another target is refused", "[tuner]") {
    const std::string dir = fresh_dir("other_target");
    const std::string avx2 = resolve_target("x86-64-avx2");
    tune::ScheduleDatabase(avx2, tune::kStrategySearch).save(dir + "/avx2.json");
    CHECK_THAT(error_of([&] {
                   tune::ScheduleDatabase::load(dir + "/avx2.json",
                                                resolve_target("x86-64-avx512"));
               }),
               Contains("avx2.json") && Contains("was tuned for target " + avx2));
    // tune refuses to continue it for another target, or with another strategy.
    CHECK_THAT(error_of([&] {
                   tune::ScheduleDatabase::open_or_create(
                       dir + "/avx2.json", resolve_target("x86-64-avx512"), tune::kStrategySearch);
               }),
               Contains("was tuned for target"));
    CHECK_THAT(error_of([&] {
                   tune::ScheduleDatabase::open_or_create(dir + "/avx2.json", avx2,
                                                          tune::kStrategyAdams2019);
               }),
               Contains("holds search schedules"));
    const CliResult r = run_cli(
        "generate --model mobilenet_v2 --resolution 32 --sources-only "
        "--target x86-64-avx512 --out " +
            dir + "/out --schedules " + dir + "/avx2.json",
        dir);
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Contains("was tuned for target " + avx2 + ", not for"));
    // A fat library with that target among others takes it for its avx2 variant.
    const CliResult fat = run_cli(
        "generate --model mobilenet_v2 --resolution 32 --sources-only "
        "--target x86-64-avx512,x86-64-avx2 --out " +
            dir + "/fat --schedules " + dir + "/avx2.json",
        dir);
    CHECK(fat.code == 0);
}

TEST_CASE("a committed database for this CPU comes before its preset's", "[tuner][cli]") {
    // Zen 4 and Zen 5 share the x86-64-zen4 preset but not their best schedules: the committed
    // schedules/<preset>.<cpu>.json answers first on that CPU, <preset>.json the layers it lacks.
    const std::string dir = fresh_dir("cpu_database");
    const TargetPreset& preset = host_preset();
    GenerateOptions o;
    o.targets = {preset.halide};
    const std::vector<KernelSpec> kernels =
        generate_sources(build_zoo_model("mobilenet_v2", 1, 32), o).plan.kernels;
    REQUIRE(kernels.size() >= 2);
    const tune::ScheduleSpace space0(kernels[0], preset.halide), space1(kernels[1], preset.halide);
    REQUIRE_FALSE(space0.empty());
    REQUIRE_FALSE(space1.empty());
    SeededRandom rng(7);
    const tune::Knobs cpu_knobs = space0.random(rng), second_knobs = space1.random(rng);
    tune::Knobs preset_knobs = space0.random(rng);
    for (int i = 0; i < 100 && preset_knobs == cpu_knobs; ++i)
        preset_knobs = space0.random(rng);
    REQUIRE(preset_knobs != cpu_knobs);
    auto entry = [&](const KernelSpec& k, const tune::Knobs& knobs) {
        tune::ScheduleEntry e;
        e.layer = k.str();
        e.generator = k.generator;
        e.target = preset.halide;
        e.knobs = knobs;
        e.time_ms = e.default_ms = 1;
        return e;
    };
    tune::ScheduleDatabase cpu_db(preset.halide, tune::kStrategySearch);
    cpu_db.put(entry(kernels[0], cpu_knobs));
    cpu_db.save(dir + "/" + preset.name + ".testcpu.json");
    tune::ScheduleDatabase preset_db(preset.halide, tune::kStrategySearch);
    preset_db.put(entry(kernels[0], preset_knobs));
    preset_db.put(entry(kernels[1], second_knobs));
    preset_db.save(dir + "/" + preset.name + ".json");

    // The knobs as the generated source names a layer's schedule ("database (a=1 b=2)").
    auto named = [](const tune::Knobs& knobs) {
        std::string s;
        for (const auto& [key, value] : knobs)
            s += (s.empty() ? "" : " ") + key + "=" + value;
        return "database (" + s + ")";
    };
    auto generate = [&](const std::string& cpu, const std::string& out) {
        ::setenv("CARDINAL_SCHEDULES_DIR", dir.c_str(), 1);
        ::setenv("CARDINAL_CPU", cpu.c_str(), 1);
        const CliResult r = run_cli(
            "generate --model mobilenet_v2 --resolution 32 --sources-only "
            "--target host --out " +
                dir + "/" + out,
            dir);
        ::unsetenv("CARDINAL_SCHEDULES_DIR");
        ::unsetenv("CARDINAL_CPU");
        REQUIRE(r.code == 0);
        std::ifstream f(dir + "/" + out + "/mobilenet_v2.cpp");
        return std::string(std::istreambuf_iterator<char>(f), {});
    };
    const std::string on_cpu = generate("testcpu", "on_cpu");
    CHECK_THAT(on_cpu, Contains(named(cpu_knobs)) && Contains(named(second_knobs)) &&
                           !Contains(named(preset_knobs)));
    // Another CPU of the preset (or CARDINAL_CPU=none): the preset's database alone.
    const std::string other = generate("none", "other");
    CHECK_THAT(other, Contains(named(preset_knobs)) && Contains(named(second_knobs)) &&
                          !Contains(named(cpu_knobs)));
}

TEST_CASE("an Adams2019 database entry makes the generator autoschedule the layer", "[tuner]") {
    const Graph g =
        conv_relu_graph("adams_entry", Shape{1, 16, 9, 9}, ConvSpec::square(32, 3, 1, 1));
    const std::string target = host_preset().halide;
    GenerateOptions o;
    o.targets = {target};
    const KernelSpec base = generate_sources(g, o).plan.kernels.at(0);

    auto db = std::make_shared<tune::ScheduleDatabase>(target, tune::kStrategyAdams2019);
    tune::ScheduleEntry e;
    e.layer = base.str();
    e.generator = base.generator;
    e.target = target;
    e.autoscheduler = "Adams2019";
    e.machine_params = "2,33554432,40";
    e.time_ms = e.default_ms = 1;
    db->put(e);
    const auto choice = db->lookup(base, target);
    REQUIRE(choice);
    CHECK(choice->knobs ==
          tune::Knobs{{"auto_schedule", "true"}, {"machine_params", "2,33554432,40"}});
    // An entry is for its target alone.
    const std::string other = resolve_target(
        target == resolve_target("x86-64-avx2") ? "x86-64-baseline" : "x86-64-avx2");
    CHECK_FALSE(db->lookup(base, other));

    // A greedy search (beam 1) keeps the test quick; the schedule still comes from Adams2019.
    ::setenv("HL_BEAM_SIZE", "1", 1);
    o.schedules = tune::make_schedule_lookup({db});
    o.out_dir = fresh_dir("adams_entry");
    o.cache_dir = CARDINAL_TEST_CACHE_DIR;
    o.quiet = true;
    const GenerateResult r = generate_network(g, o);
    CHECK(r.database_schedules == 1);
    LoadedNetwork net(o.out_dir, r.name);
    const Tensor input = random_input(g.input_shape, 5);
    CHECK(relative_l2(run_generated(net, input), reference::run(g, input).data) < 1e-5);
}

TEST_CASE("knobs for one thread count give the network a kernel it calls at that count",
          "[tuner]") {
    // A grouped conv (4 channels per group, odd sizes, batch 2) whose entry stages input rows
    // per channel block, and per output row at 1 thread: two kernels of one layer.
    const Graph g = conv_relu_graph("thread_kernels", Shape{2, 48, 13, 11},
                                    ConvSpec::square(48, 3, 1, 1, 12, true));
    const std::string target = host_preset().halide;
    GenerateOptions o;
    o.targets = {target};
    const KernelSpec base = generate_sources(g, o).plan.kernels.at(0);
    REQUIRE(base.generator == "cardinal_grouped_conv2d");

    const std::string dir = fresh_dir("thread_kernels");
    tune::ScheduleDatabase db(target, tune::kStrategySearch);
    tune::ScheduleEntry e = sample_entry(base.generator, base.str(), target);
    e.knobs = {{"stage", "block"}, {"parallel", "rows"}};
    e.by_threads[1] = {{{"stage", "row"}, {"parallel", "rows"}}, 0.9, 1.0, "by hand", e.date};
    // The same knobs as the entry's at 3 threads: nothing to switch, no third kernel.
    e.by_threads[3] = {e.knobs, 1.0, 1.0, "", e.date};
    db.put(e);
    db.save(dir + "/db.json");
    auto loaded = std::make_shared<const tune::ScheduleDatabase>(
        tune::ScheduleDatabase::load(dir + "/db.json"));
    const tune::ScheduleEntry& back = loaded->entries().at(base.str());
    REQUIRE(back.by_threads.size() == 2);
    CHECK(back.by_threads.at(1).knobs.at("stage") == "row");
    CHECK(back.by_threads.at(1).time_ms == 0.9);
    CHECK(back.by_threads.at(1).measured == "by hand");

    o.schedules = tune::make_schedule_lookup({loaded});
    const GeneratedSources src = generate_sources(g, o);
    const CompiledKernel& ck = src.plan.variant_kernels.at(0).at(0);
    REQUIRE(ck.by_threads.size() == 1);
    CHECK(ck.by_threads[0].threads == 1);
    CHECK(ck.by_threads[0].function_name != ck.function_name);
    CHECK_THAT(src.source, Contains("threads == 1 ? k.k0_t1 : k.k0") &&
                               Contains("cardinal::rt::num_threads()") &&
                               Contains("at 1 thread (parallel=rows stage=row)"));

    o.out_dir = dir + "/net";
    o.cache_dir = CARDINAL_TEST_CACHE_DIR;
    o.quiet = true;
    const GenerateResult r = generate_network(g, o);
    CHECK(r.unique_kernels == 2);
    LoadedNetwork net(o.out_dir, r.name);
    const Tensor input = random_input(g.input_shape, 8);
    const std::vector<float> want = reference::run(g, input).data;
    for (int threads : {1, 2, 3, 0}) {
        INFO("threads " << threads);
        net.api().set_num_threads(threads);
        CHECK(relative_l2(run_generated(net, input), want) < 1e-5);
    }
    net.api().set_num_threads(0);
}

TEST_CASE("tuning for one thread count records knobs beside the entry's", "[tuner]") {
    const Graph g = two_conv_graph();
    const std::string dir = fresh_dir("thread_knobs_tune");
    const std::string db = dir + "/db.json";
    auto entries = [&]() -> std::map<std::string, tune::ScheduleEntry> {
        return tune::ScheduleDatabase::load(db).entries();  // a copy
    };

    // Without entries there is nothing to add knobs to: every layer is left alone.
    tune::TuneOptions o = tune_options(db, 15);
    o.threads = 1;
    o.thread_knobs = true;
    for (const tune::LayerResult& l : tune::tune_network(g, o).layers)
        CHECK(l.status == "no usable entry");
    CHECK(entries().empty());

    // Entries as a tune at all cores leaves them (the defaults won, a small budget class), then
    // knobs for 1 thread beside them. (Budgets as in "tuning again continues from the database":
    // the defaults are measured first, out of the same budget.)
    {
        tune::ScheduleDatabase d(host_preset().halide, tune::kStrategySearch);
        GenerateOptions go;
        go.targets = {host_preset().halide};
        for (const KernelSpec& base : generate_sources(g, go).plan.kernels) {
            tune::ScheduleEntry e = sample_entry(base.generator, base.str(), host_preset().halide);
            e.knobs.clear();
            e.budget_s = 0.5;
            d.put(e);
        }
        d.save(db);
    }
    const auto before = entries();
    const tune::TuneResult r = tune::tune_network(g, o);
    const auto after = entries();
    REQUIRE(after.size() == 2);
    int searched = 0;
    for (const tune::LayerResult& l : r.layers) {
        INFO(l.layers << ": " << l.status << ", " << l.trials << " trials");
        const tune::ScheduleEntry& e = after.at(l.base.str());
        CHECK(e.knobs == before.at(l.base.str()).knobs);  // the entry's own knobs stay
        CHECK(e.date == before.at(l.base.str()).date);
        CHECK(e.trials == before.at(l.base.str()).trials);
        searched += l.trials > 0;
        if (l.status.rfind("knobs for 1 thread(s)", 0) == 0) {
            REQUIRE(e.by_threads.count(1));
            CHECK(e.by_threads.at(1).knobs == l.knobs);
            CHECK(e.by_threads.at(1).time_ms < 0.99 * e.by_threads.at(1).base_ms);
        } else {
            // The entry's knobs won, or the layer's share was too small to search ("recorded").
            CHECK((l.status.rfind("entry's knobs best", 0) == 0 || l.status == "recorded"));
            CHECK(e.by_threads.empty());
        }
    }
    CHECK(searched > 0);

    // A retune at all cores keeps them: give each entry 1-thread knobs, then tune with a budget
    // class above the recorded one (each layer is searched and recorded again).
    {
        tune::ScheduleDatabase d = tune::ScheduleDatabase::load(db);
        for (auto [k, e] : d.entries()) {
            e.by_threads[1] = {{{"tile_x", "1"}}, 0.5, 0.6, "test", e.date};
            d.put(e);
        }
        d.save(db);
    }
    int refined = 0;
    for (const tune::LayerResult& l : tune::tune_network(g, tune_options(db, 15)).layers)
        refined += l.trials > 0;
    CHECK(refined > 0);
    for (const auto& [k, e] : entries()) {
        REQUIRE(e.by_threads.count(1));
        CHECK(e.by_threads.at(1).knobs == tune::Knobs{{"tile_x", "1"}});
    }

    const CliResult cli =
        run_cli("tune --model mobilenet_v2 --budget 1 --db " + db + " --thread-knobs", dir);
    CHECK(cli.code != 0);
    CHECK_THAT(cli.err, Contains("--thread-knobs needs the thread count"));
}

TEST_CASE("knobs per thread count are checked when a database is read", "[tuner]") {
    const std::string dir = fresh_dir("thread_knobs_corrupt");
    const std::string target = host_preset().halide;
    tune::ScheduleDatabase db(target, tune::kStrategySearch);
    tune::ScheduleEntry e = sample_entry("cardinal_conv2d", "cardinal_conv2d(batch=1)", target);
    e.by_threads[1] = {{{"tile_x", "2"}}, 0.5, 0.6, "", e.date};
    db.put(e);
    db.save(dir + "/good.json");
    CHECK(tune::ScheduleDatabase::load(dir + "/good.json")
              .find(KernelSpec{"cardinal_conv2d", {{"batch", "1"}}})
              ->by_threads.at(1)
              .knobs.at("tile_x") == "2");
    const nlohmann::json j = nlohmann::json::parse(std::ifstream(dir + "/good.json"));
    auto damaged = [&](const std::function<void(nlohmann::json&)>& damage) {
        nlohmann::json c = j;
        damage(c["layers"]["cardinal_conv2d(batch=1)"]["threads"]);
        std::ofstream(dir + "/damaged.json") << c.dump();
        return error_of([&] { tune::ScheduleDatabase::load(dir + "/damaged.json"); });
    };
    CHECK_THAT(damaged([](auto& t) { t = 1; }), Contains(".threads is not a JSON object"));
    CHECK_THAT(damaged([](auto& t) { t["0"] = t["1"]; }), Contains("\"0\", not a thread count"));
    CHECK_THAT(damaged([](auto& t) { t["two"] = t["1"]; }),
               Contains("\"two\", not a thread count"));
    CHECK_THAT(damaged([](auto& t) { t["1"].erase("knobs"); }), Contains("lacks \"knobs\""));
    CHECK_THAT(damaged([](auto& t) { t["1"]["base_ms"] = -1; }),
               Contains("threads.1 has a non-positive time"));
}

TEST_CASE("cardinal tune writes a database that cardinal generate then uses", "[tuner][cli]") {
    const std::string dir = fresh_dir("cli");
    const std::string db = dir + "/db.json";
    // Measuring the defaults of MobileNetV2's dozens of kernels comes out of the budget first: 40 s
    // leaves its largest layers a search even under ASan on a loaded machine.
    const CliResult tuned = run_cli(
        "tune --model mobilenet_v2 --resolution 32 --budget 40 -j 2 --seed 1 --db " + db, dir);
    REQUIRE(tuned.code == 0);
    CHECK_THAT(tuned.out, Contains("network (steps x time)") && Contains("wrote " + db));
    CHECK_THAT(tuned.err, Contains("measuring the default schedules"));
    const auto loaded = tune::ScheduleDatabase::load(db, host_preset().halide);
    REQUIRE_FALSE(loaded.entries().empty());

    const CliResult gen = run_cli("generate --model mobilenet_v2 --resolution 32 -j 2 --out " +
                                      dir + "/out --schedules " + db,
                                  dir);
    REQUIRE(gen.code == 0);
    const std::string expect = "schedules:       " + std::to_string(0);
    CHECK_THAT(gen.out, !Contains(expect + " from the database") && Contains("(" + db + ")"));
    // --schedules none: nothing from the database.
    const CliResult none = run_cli(
        "generate --model mobilenet_v2 --resolution 32 --sources-only "
        "--out " +
            dir + "/none --schedules none",
        dir);
    CHECK(none.code == 0);

    // bench runs the tuned and the default schedules interleaved, as two engines that agree.
    const std::string json = dir + "/bench.json";
    const CliResult bench = run_cli("bench --model mobilenet_v2 --resolution 32 --schedules " + db +
                                        " --compare-schedules none --peers none --runs 4 "
                                        "--runs-per-round 1 --threads 2 --layers --json " +
                                        json,
                                    dir);
    REQUIRE(bench.code == 0);
    CHECK_THAT(bench.out, Contains("generated / generated[none]") &&
                              Contains("generated code with schedules none, per step"));
    std::ifstream jf(json);
    const nlohmann::json j = nlohmann::json::parse(jf);
    REQUIRE(j["results"].size() == 2);
    CHECK(j["results"][0]["engine"] == "generated");
    CHECK(j["results"][1]["engine"] == "generated[none]");
    CHECK_THAT(j["results"][1]["description"].get<std::string>(), Contains("schedules: none"));
    REQUIRE(j["agreement"].size() == 1);
    CHECK(j["agreement"][0]["relative_l2"].get<double>() <= 1e-5);
    CHECK(j["compare_layers"].size() == j["layers"].size());
    // Step by step: every step matched (same network), four rounds of one run each compared.
    CHECK_THAT(bench.out, Contains("step by step: this build / generated[none]"));
    const nlohmann::json& steps = j["compare_steps"]["steps"];
    CHECK(steps.size() == j["layers"].size());
    for (const nlohmann::json& s : steps) {
        CHECK(s["rounds"] == 4);
        CHECK(s["rounds_faster"].get<int>() <= 4);
        CHECK(s["ratio"].get<double>() > 0);
        CHECK(s["round_ratio_min"].get<double>() <= s["round_ratio_max"].get<double>());
        CHECK(s["median_ms"] == j["layers"][s["step"].get<size_t>()]["median_ms"]);
    }
    CHECK(j["compare_steps"]["total"]["rounds"] == 4);
    // The tuned database against the defaults: the steps say where the knobs differ.
    CHECK(std::any_of(steps.begin(), steps.end(),
                      [](const nlohmann::json& s) { return !s["same_knobs"].get<bool>(); }));
    // One database on both sides: every step has the same knobs.
    const std::string copy = dir + "/copy.json";
    std::filesystem::copy_file(db, copy);
    const std::string json2 = dir + "/bench2.json";
    REQUIRE(run_cli("bench --model mobilenet_v2 --resolution 32 --schedules " + db +
                        " --compare-schedules " + copy +
                        " --peers none --runs 2 --threads 1 --layers --json " + json2,
                    dir)
                .code == 0);
    std::ifstream jf2(json2);
    const nlohmann::json j2 = nlohmann::json::parse(jf2);
    REQUIRE(!j2["compare_steps"]["steps"].empty());
    for (const nlohmann::json& s : j2["compare_steps"]["steps"]) {
        CHECK(s["same_knobs"].get<bool>());
        CHECK(s["rounds"] == 1);
    }
    // Comparing schedules needs generated code on both sides.
    CHECK(run_cli("bench --model mobilenet_v2 --engine reference --compare-schedules none", dir)
              .code == 2);

    // Usage errors.
    CHECK(run_cli("tune --model mobilenet_v2 --db " + db, dir).code == 2);  // no --budget
    CHECK(run_cli("tune --model mobilenet_v2 --budget 5 --db " + db + " --strategy magic", dir)
              .code == 2);
}
