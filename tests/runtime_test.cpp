// The runtime around generated code: the layout conversions at the network's edges, the
// weights file's checks, the activation arena, running one loaded network from several threads,
// the CPU feature check, and generation that fails without leaving anything behind.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>
#include <vector>

#include "cardinal_runtime.h"
#include "codegen/lowering.h"
#include "generated_test_util.h"
#include "ir/error.h"
#include "zoo/zoo.h"

using namespace cardinal;
using namespace cardinal::test;
namespace fs = std::filesystem;

namespace {

Graph small_net(const std::string& name, int channels) {
    GraphBuilder b(name, Shape{1, 3, 12, 12}, 21);
    auto x = b.conv("c1", b.input(), ConvSpec::square(channels, 3, 1, 1));
    x = b.batch_norm("bn", x);
    x = b.relu("r", x);
    x = b.global_average_pool("gap", x);
    x = b.flatten("flat", x);
    x = b.dense("fc", x, 10);
    return std::move(b).finish(x);
}

// A copy of a generated folder whose weights file `edit` changes.
std::string copy_with_weights(const std::string& from, const std::string& tag,
                              const std::function<void(const std::string&)>& edit) {
    const std::string to = test_dir(tag);
    fs::remove_all(to);
    fs::copy(from, to, fs::copy_options::recursive);
    edit(to + "/wnet.weights");
    return to;
}

}  // namespace

TEST_CASE("the edge conversions NCHW <-> NHWC move every value to its place, padding with zeros") {
    // 3 channels (the interleaving fast path) at widths below, at and off its 4 pixels per step;
    // other channel counts and padded channel strides take the general loop. 2 x 3 x 150 x 151
    // is above the size split over the thread pool.
    struct Case {
        int n, c, h, w, stride;
    };
    for (const Case& t : {Case{1, 3, 5, 1, 3}, Case{1, 3, 3, 3, 3}, Case{2, 3, 7, 4, 3},
                          Case{1, 3, 9, 13, 3}, Case{2, 3, 150, 151, 3}, Case{1, 3, 4, 6, 16},
                          Case{2, 1, 5, 7, 1}, Case{1, 5, 6, 9, 8}}) {
        CAPTURE(t.n, t.c, t.h, t.w, t.stride);
        const int64_t pixels = int64_t(t.n) * t.h * t.w;
        std::vector<float> nchw(size_t(pixels * t.c));
        for (size_t i = 0; i < nchw.size(); ++i)
            nchw[i] = float(i) + 0.5f;
        std::vector<float> nhwc(size_t(pixels * t.stride), -1.0f);
        rt::nchw_to_nhwc(nchw.data(), nhwc.data(), t.n, t.c, t.h, t.w, t.stride);
        int wrong = 0;
        for (int b = 0; b < t.n; ++b)
            for (int y = 0; y < t.h; ++y)
                for (int x = 0; x < t.w; ++x)
                    for (int ch = 0; ch < t.stride; ++ch) {
                        const float want =
                            ch < t.c ? nchw[size_t(((b * t.c + ch) * t.h + y) * t.w + x)] : 0.0f;
                        wrong += nhwc[size_t(((b * t.h + y) * t.w + x) * t.stride + ch)] != want;
                    }
        CHECK(wrong == 0);
        std::vector<float> back(nchw.size(), -1.0f);
        rt::nhwc_to_nchw(nhwc.data(), back.data(), t.n, t.c, t.h, t.w, t.stride);
        CHECK(back == nchw);
    }
}

TEST_CASE("weights file: truncated corrupt foreign and missing files are refused") {
    generate_and_load(small_net("wnet", 24), "weights_good");
    const std::string good = test_dir("weights_good");
    const auto size = fs::file_size(good + "/wnet.weights");

    const std::string truncated = copy_with_weights(good, "weights_truncated", [&](auto p) {
        fs::resize_file(p, size - 100);
    });
    CHECK_THAT(error_of([&] { LoadedNetwork(truncated, "wnet"); }),
               Catch::Contains("truncated"));

    const std::string header_only = copy_with_weights(good, "weights_header_cut", [&](auto p) {
        fs::resize_file(p, 40);
    });
    CHECK_THAT(error_of([&] { LoadedNetwork(header_only, "wnet"); }),
               Catch::Contains("truncated"));

    const std::string corrupt = copy_with_weights(good, "weights_corrupt", [&](auto p) {
        std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(size - 64));
        f.put('\x7f');
    });
    CHECK_THAT(error_of([&] { LoadedNetwork(corrupt, "wnet"); }), Catch::Contains("corrupt"));

    // Another network's weights (same name, other layer sizes) under this network's name.
    generate_and_load(small_net("wnet", 40), "weights_other");
    const std::string foreign = copy_with_weights(good, "weights_foreign", [&](auto p) {
        fs::copy_file(test_dir("weights_other") + "/wnet.weights", p,
                      fs::copy_options::overwrite_existing);
    });
    CHECK_THAT(error_of([&] { LoadedNetwork(foreign, "wnet"); }),
               Catch::Contains("another network or weight layout"));

    const std::string missing = copy_with_weights(good, "weights_missing", [&](auto p) {
        fs::remove(p);
    });
    CHECK_THAT(error_of([&] { LoadedNetwork(missing, "wnet"); }), Catch::Contains("missing"));

    // The untouched folder still loads and runs.
    LoadedNetwork ok(good, "wnet");
    const Tensor input = random_input(Shape{1, 3, 12, 12}, 3);
    std::vector<float> out(10);
    ok.run(input.ptr(), out.data());
    CHECK(relative_l2(out, reference::run(small_net("wnet", 24), input).data) < 1e-5);
}

namespace {

// The first and last step that touches each tensor's storage (-1: none).
std::pair<std::vector<int>, std::vector<int>> lifetimes(const NetworkPlan& plan) {
    std::vector<int> first(plan.tensors.size(), -1), last(plan.tensors.size(), -1);
    for (int s = 0; s < int(plan.steps.size()); ++s) {
        std::vector<int> used = plan.steps[s].inputs;
        if (plan.steps[s].output >= 0) used.push_back(plan.steps[s].output);
        for (int t : used) {
            const int r = plan.storage_of(t);
            if (first[r] < 0) first[r] = s;
            last[r] = s;
        }
    }
    return {first, last};
}

bool overlap(const PlannedTensor& x, const PlannedTensor& y) {
    return x.arena_offset < y.arena_offset + y.stored_bytes() &&
           y.arena_offset < x.arena_offset + x.stored_bytes();
}

}  // namespace

TEST_CASE("the arena planner reuses memory and never overlaps tensors alive together") {
    for (const char* model : {"resnext50_32x4d", "xception", "mobilenet_v2"}) {
        const NetworkPlan plan = lower_graph(build_zoo_model(model, 1, 0));
        INFO(model << ": arena " << plan.arena_bytes << " bytes, activations "
                   << total_activation_bytes(plan));
        CHECK(plan.arena_bytes > 0);
        CHECK(plan.arena_bytes * 4 < total_activation_bytes(plan));
        const auto [first, last] = lifetimes(plan);
        for (size_t a = 0; a < plan.tensors.size(); ++a)
            for (size_t b = a + 1; b < plan.tensors.size(); ++b) {
                if (first[a] < 0 || first[b] < 0) continue;
                const bool live_together = !(last[a] < first[b] || last[b] < first[a]);
                INFO(plan.tensors[a].name << " and " << plan.tensors[b].name);
                CHECK(!(live_together && overlap(plan.tensors[a], plan.tensors[b])));
            }
    }
}

TEST_CASE("the arena planner puts Xception's depthwise outputs where no 1x1 read last") {
    // At 19x19 the 1x1s' threads split output channels, so each reads its whole input and both
    // cores' caches keep a copy of it: a depthwise conv writing there first invalidates the
    // other core's copy of every line (0.080 against 0.043 ms a step at 2 threads).
    const NetworkPlan plan = lower_graph(build_zoo_model("xception", 1, 0));
    const auto [first, last] = lifetimes(plan);
    int depthwise_19x19 = 0;
    for (int s = 0; s < int(plan.steps.size()); ++s) {
        const PlannedStep& step = plan.steps[s];
        if (step.kernel.generator != "cardinal_depthwise_conv2d" ||
            step.kernel.params.at("out_height") != "19")
            continue;
        ++depthwise_19x19;
        const PlannedTensor& out = plan.tensors[plan.storage_of(step.output)];
        // The step that last touched this memory before, and how.
        int latest = -1, latest_tensor = -1;
        for (size_t t = 0; t < plan.tensors.size(); ++t)
            if (plan.tensors[t].alias_of < 0 && first[t] >= 0 && last[t] < s && last[t] > latest &&
                overlap(plan.tensors[t], out)) {
                latest = last[t];
                latest_tensor = int(t);
            }
        if (latest < 0) continue;  // new memory
        const PlannedStep& before = plan.steps[latest];
        const bool read_by_a_1x1 = before.kernel.generator == "cardinal_conv2d" &&
                                   before.kernel.params.at("kernel_h") == "1" &&
                                   !before.inputs.empty() &&
                                   plan.storage_of(before.inputs[0]) == latest_tensor;
        INFO(step.layers << " writes where " << before.layers << " last read");
        CHECK_FALSE(read_by_a_1x1);
    }
    CHECK(depthwise_19x19 == 26);
}

TEST_CASE("one loaded network runs from several threads at once each with its own arena") {
    const Graph g = build_zoo_model("mobilenet_v2", 1, 96);
    auto net = generate_and_load(g, "threads_mobilenet");
    const Tensor input = random_input(g.input_shape, 5);
    const std::vector<float> expected = run_generated(*net, input);
    const size_t arena_bytes = net->api().arena_bytes;
    std::vector<std::vector<float>> results(4, std::vector<float>(expected.size()));
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            rt::Arena arena(arena_bytes);
            for (int rep = 0; rep < 3; ++rep)
                net->run(input.ptr(), results[t].data(), arena.data());
        });
    for (auto& t : threads) t.join();
    for (const auto& r : results) CHECK(r == expected);
}

TEST_CASE("the runtime's static thread pool gives Halide's pool's output bit for bit") {
    // Each generated library picks its pool when it is loaded: Halide's with
    // CARDINAL_HALIDE_POOL=1, else the runtime's (thread t runs the t-th share of every loop).
    // A task computes the same values on whichever thread runs it, so the outputs are equal,
    // with 2 threads, 3 (more than this machine's cores: shares of a third) and 1.
    const Graph g = build_zoo_model("mobilenet_v2", 1, 96);
    ::setenv("CARDINAL_HALIDE_POOL", "1", 1);
    auto halide_pool = generate_and_load(g, "pool_halide");
    ::unsetenv("CARDINAL_HALIDE_POOL");
    auto static_pool = generate_and_load(g, "pool_static");
    const Tensor input = random_input(g.input_shape, 6);
    halide_pool->api().set_num_threads(2);
    const std::vector<float> expected = run_generated(*halide_pool, input);
    for (int threads : {2, 3, 1}) {
        INFO(threads << " threads");
        static_pool->api().set_num_threads(threads);
        CHECK(run_generated(*static_pool, input) == expected);
    }
}

TEST_CASE("a target this CPU cannot run is refused with the missing features named") {
    const auto missing = rt::missing_cpu_features("arm-64-linux");
    REQUIRE_FALSE(missing.empty());
    CHECK_THAT(missing[0], Catch::Contains("ARM"));
    CHECK_THAT(error_of([] { rt::require_cpu_features("arm-64-linux", "network 'x'"); }),
               Catch::Contains("this CPU lacks"));
    CHECK(rt::missing_cpu_features(host_preset().halide).empty());
    CHECK(rt::missing_cpu_features("x86-64-linux-sse41").empty());
}

TEST_CASE("a failed generation leaves nothing in the output folder") {
    GraphBuilder b("bad", Shape{1, 4, 6, 6}, 1);
    auto x = b.conv("c", b.input(), ConvSpec::square(8, 3, 1, 1));
    const Graph g = std::move(b).finish(x);
    GenerateOptions o;
    o.out_dir = test_dir("failed_generation");
    fs::remove_all(o.out_dir);
    o.cache_dir = CARDINAL_TEST_CACHE_DIR;
    o.quiet = true;
    o.targets = {"x86-64-linux-sse41"};
    // A schedule knob the generator rejects makes the compile fail after lowering succeeded.
    o.schedules = [](const KernelSpec&, const std::string&) {
        std::map<std::string, std::string> knobs{{"oc_block", "24"}};
        return std::optional<std::map<std::string, std::string>>(knobs);
    };
    CHECK_THROWS_AS(generate_network(g, o), Error);
    CHECK_FALSE(fs::exists(o.out_dir));

    // An existing folder keeps what it had and gains nothing.
    fs::create_directories(o.out_dir);
    std::ofstream(o.out_dir + "/keep.txt") << "mine";
    CHECK_THROWS_AS(generate_network(g, o), Error);
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(o.out_dir)) left.push_back(e.path().filename());
    CHECK(left == std::vector<std::string>{"keep.txt"});
}
