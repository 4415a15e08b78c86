// Fat libraries: one generated folder holding a variant per x86 target and a dispatcher that
// picks, at load time, the best variant this CPU supports. CARDINAL_VARIANT forces each variant;
// every one must match the reference.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>

#include "block_graphs.h"
#include "cardinal_runtime.h"
#include "codegen/emit_cpp.h"
#include "generated_test_util.h"
#include "ir/error.h"
#include "zoo/zoo.h"

using namespace cardinal;
using namespace cardinal::test;

namespace {

const char* const kFatTargets = "x86-64-zen4,x86-64-avx2,x86-64-baseline";

// Forces variant `v` (or none with -1) for loads made while it lives.
struct ForcedVariant {
    explicit ForcedVariant(int v) {
        if (v >= 0)
            ::setenv("CARDINAL_VARIANT", std::to_string(v).c_str(), 1);
        else
            ::unsetenv("CARDINAL_VARIANT");
    }
    ~ForcedVariant() { ::unsetenv("CARDINAL_VARIANT"); }
};

void check_every_variant(const Graph& g, const std::string& tag) {
    generate_and_load(g, tag, kFatTargets);  // generates the folder
    const std::string dir = test_dir(tag);
    const Tensor input = random_input(g.input_shape, 7);
    const Tensor want = reference::run(g, input);
    const std::vector<std::string> targets = resolve_targets(kFatTargets);
    for (int v = 0; v < int(targets.size()); ++v) {
        ForcedVariant force(v);
        INFO(tag << " variant " << v << " " << targets[v]);
        if (const auto missing = rt::missing_cpu_features(targets[v]); !missing.empty()) {
            // A variant this CPU cannot run is refused at load with what it lacks, never run.
            WARN("variant " << v << " (" << targets[v] << ") not run: this CPU lacks "
                            << missing[0]);
            CHECK_THAT(error_of([&] { LoadedNetwork(dir, identifier_for(g.name)); }),
                       Catch::Contains("this CPU lacks"));
            continue;
        }
        LoadedNetwork net(dir, identifier_for(g.name));
        REQUIRE(net.api().num_variants == 3);
        CHECK(net.api().selected_variant(net.network()) == v);
        CHECK(std::string(net.api().variant_targets[v]) == targets[v]);
        CHECK(relative_l2(run_generated(net, input), want.data) <= 1e-5);
    }
    // Without forcing, the best variant this CPU supports is chosen.
    ForcedVariant none(-1);
    LoadedNetwork net(dir, identifier_for(g.name));
    int best = 0;
    while (!rt::missing_cpu_features(targets[best]).empty()) ++best;
    CHECK(net.api().selected_variant(net.network()) == best);
}

}  // namespace

TEST_CASE("dispatch: every variant of a fat library matches the reference on odd shapes") {
    check_every_variant(odd_shapes_graph(), "dispatch_odd");
}

TEST_CASE("dispatch: every variant of a ResNeXt bottleneck block matches the reference") {
    check_every_variant(resnext_block_graph(), "dispatch_resnext_block");
}

TEST_CASE("dispatch: forcing a variant that does not exist is refused with the list") {
    generate_and_load(odd_shapes_graph(), "dispatch_odd_bad", kFatTargets);
    ForcedVariant force(9);
    try {
        LoadedNetwork net(test_dir("dispatch_odd_bad"), "odd_shapes");
        FAIL("loading with CARDINAL_VARIANT=9 succeeded");
    } catch (const Error& e) {
        CHECK_THAT(e.what(), Catch::Contains("names none of"));
        CHECK_THAT(e.what(), Catch::Contains("x86-64-linux-sse41"));
    }
}

TEST_CASE("dispatch: a network built only for features this CPU lacks fails at load with a message") {
    // Sapphire Rapids' AVX-VNNI and AVX-512 BF16 (which Zen 4 lacks in part), or failing that,
    // the full AVX-512 Cannon Lake set: whichever this CPU cannot run.
    std::string target;
    for (const char* t : {"x86-64-linux-avx-avx2-avx512-avx512_skylake-avx512_cannonlake-"
                          "avx512_sapphirerapids-f16c-fma-sse41",
                          "x86-64-linux-avx-avx2-avx512-avx512_skylake-avx512_cannonlake-f16c-"
                          "fma-sse41"})
        if (target.empty() && !rt::missing_cpu_features(t).empty()) target = t;
    const Graph g = odd_shapes_graph();
    if (target.empty()) {
        // This CPU has every feature Halide 14 knows: loading must then simply work.
        auto net = generate_and_load(g, "dispatch_lacking",
                                     "x86-64-linux-avx-avx2-avx512-avx512_skylake-"
                                     "avx512_cannonlake-avx512_sapphirerapids-f16c-fma-sse41");
        CHECK(net->api().selected_variant(net->network()) == 0);
        return;
    }
    const std::vector<std::string> missing = rt::missing_cpu_features(target);
    try {
        generate_and_load(g, "dispatch_lacking", target);
        FAIL("a network for " << target << " loaded on a CPU lacking " << missing[0]);
    } catch (const Error& e) {
        CHECK_THAT(e.what(), Catch::Contains("this CPU lacks"));
        CHECK_THAT(e.what(), Catch::Contains(missing[0]));
    }
}

TEST_CASE("dispatch: targets of two architectures are generated into one folder each") {
    namespace fs = std::filesystem;
    const std::string dir = test_dir("dispatch_two_arch");
    fs::remove_all(dir);
    const std::string cmd = std::string(CARDINAL_CLI_PATH) +
                            " generate --model mobilenet_v2 --resolution 32 --target "
                            "x86-64-avx2,x86-64-baseline,arm64 --out '" + dir + "' > '" + dir +
                            ".log' 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
    for (const char* sub : {"x86-64-avx2", "arm64"})
        for (const char* file : {"mobilenet_v2.h", "mobilenet_v2.cpp", "libmobilenet_v2.a",
                                 "mobilenet_v2.weights", "cardinal_runtime.cpp"})
            CHECK(fs::exists(fs::path(dir) / sub / file));
    // The x86 folder is a fat library of both x86 targets and runs here.
    LoadedNetwork net(dir + "/x86-64-avx2", "mobilenet_v2");
    CHECK(net.api().num_variants == 2);
    const Graph g = build_zoo_model("mobilenet_v2", 1, 32);
    const Tensor input = random_input(g.input_shape, 3);
    CHECK(relative_l2(run_generated(net, input), reference::run(g, input).data) <= 1e-5);
}
