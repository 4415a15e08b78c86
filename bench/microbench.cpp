// Layer microbenchmarks: one convolution (+ folded BatchNorm + ReLU, as in the networks) as
// generated code and as a oneDNN primitive, on the layers that make ResNeXt and Xception hard:
// grouped 3x3 at 4, 8, 16 and 32 channels per group (ResNeXt-50's four stages) and strided (the
// first block of a stage), depthwise 3x3 and pointwise 1x1 (Xception's middle flow), and the
// 7x7 stem.
//
// Each benchmark times the convolution step alone (manual time: generated code's per-step timer
// and oneDNN's per-primitive timer, both around one synchronous call), not the NCHW conversions
// at the network's edges. Counters: GFLOP/s and % of this machine's FMA peak at that thread
// count. Threads: 1 and 2 by default, or $CARDINAL_MICROBENCH_THREADS ("1,2,4").
//
//   cmake --build build --target cardinal_microbench
//   build/bench/cardinal_microbench [--benchmark_filter=grouped] [--benchmark_min_time=0.5]
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cardinal_runtime.h"
#include "codegen/generate.h"
#include "codegen/targets.h"
#include "ir/builder.h"
#include "loader.h"
#include "peak/peak.h"
#include "peers/onednn_engine.h"

using namespace cardinal;

namespace {

struct LayerCase {
    std::string name;
    int in_channels, out_channels, resolution, kernel, stride, groups;
};

const std::vector<LayerCase> kCases = {
    {"grouped3x3_4cpg_128c_56", 128, 128, 56, 3, 1, 32},     // ResNeXt-50 layer1
    {"grouped3x3_8cpg_256c_28", 256, 256, 28, 3, 1, 32},     // layer2
    {"grouped3x3_16cpg_512c_14", 512, 512, 14, 3, 1, 32},    // layer3
    {"grouped3x3_32cpg_1024c_7", 1024, 1024, 7, 3, 1, 32},   // layer4
    {"grouped3x3s2_8cpg_256c_56", 256, 256, 56, 3, 2, 32},   // layer2's first block
    {"grouped3x3s2_16cpg_512c_28", 512, 512, 28, 3, 2, 32},  // layer3's first block
    {"depthwise3x3_728c_19", 728, 728, 19, 3, 1, 728},       // Xception middle flow
    {"pointwise1x1_728c_19", 728, 728, 19, 1, 1, 1},
    {"stem7x7s2_3to64_224", 3, 64, 224, 7, 2, 1},  // ResNe(X)t conv1
};

Graph layer_graph(const LayerCase& c) {
    GraphBuilder b(c.name, Shape{1, c.in_channels, c.resolution, c.resolution}, 7);
    std::string x =
        b.conv("conv", b.input(),
               ConvSpec::square(c.out_channels, c.kernel, c.stride, c.kernel / 2, c.groups));
    x = b.batch_norm("bn", x);
    x = b.relu("relu", x);
    return std::move(b).finish(x);
}

struct Prepared {
    Graph graph;
    std::unique_ptr<LoadedNetwork> net;
    int64_t macs = 0;
    Tensor input;
    std::vector<float> output;
};

std::map<std::string, Prepared>& prepared() {
    static std::map<std::string, Prepared> p;
    return p;
}

std::map<int, double>& peaks() {
    static std::map<int, double> p;
    return p;
}

int step_with_macs(int steps, const std::function<int64_t(int)>& macs) {
    for (int s = 0; s < steps; ++s)
        if (macs(s) > 0) return s;
    return 0;
}

void finish(benchmark::State& state, int64_t macs, double seconds, int threads) {
    const double gflops = 2e-9 * double(macs) * double(state.iterations()) / seconds;
    state.counters["GFLOP/s"] = gflops;
    if (peaks()[threads] > 0) state.counters["peak_%"] = 100 * gflops / peaks()[threads];
}

void bench_generated(benchmark::State& state, const std::string& name) {
    Prepared& p = prepared().at(name);
    const int threads = int(state.range(0));
    p.net->api().set_num_threads(threads);
    rt::Arena arena(p.net->api().arena_bytes);
    std::vector<double> sec(size_t(p.net->api().num_steps));
    const int conv =
        step_with_macs(p.net->api().num_steps, [&](int s) { return p.net->api().step_macs(s); });
    for (int i = 0; i < 2; ++i)
        p.net->run(p.input.ptr(), p.output.data(), arena.data());
    double total = 0;
    for (auto _ : state) {
        p.net->run(p.input.ptr(), p.output.data(), arena.data(), sec.data());
        state.SetIterationTime(sec[size_t(conv)]);
        total += sec[size_t(conv)];
    }
    finish(state, p.macs, total, threads);
}

void bench_onednn(benchmark::State& state, const std::string& name) {
    Prepared& p = prepared().at(name);
    const int threads = int(state.range(0));
    std::unique_ptr<peers::OnednnEngine> e;
    try {
        e = std::make_unique<peers::OnednnEngine>(p.graph, threads);
    } catch (const std::exception& x) {
        state.SkipWithError(x.what());
        return;
    }
    peers::OnednnEngine& engine = *e;
    std::vector<double> sec(size_t(engine.num_steps()));
    const int conv = step_with_macs(engine.num_steps(), [&](int s) { return engine.step(s).macs; });
    state.SetLabel(engine.step(conv).impl);
    for (int i = 0; i < 2; ++i)
        engine.run(p.input.ptr(), p.output.data());
    double total = 0;
    for (auto _ : state) {
        engine.run(p.input.ptr(), p.output.data(), sec.data());
        state.SetIterationTime(sec[size_t(conv)]);
        total += sec[size_t(conv)];
    }
    finish(state, p.macs, total, threads);
}

std::vector<int> thread_counts() {
    const char* env = std::getenv("CARDINAL_MICROBENCH_THREADS");
    std::vector<int> out;
    std::stringstream in(env && *env ? env : "1,2");
    std::string tok;
    while (std::getline(in, tok, ','))
        if (!tok.empty() && std::atoi(tok.c_str()) > 0) out.push_back(std::atoi(tok.c_str()));
    return out.empty() ? std::vector<int>{1} : out;
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    // Generate every layer first (kernel compiles fork; cached by content across runs).
    for (const LayerCase& c : kCases) {
        Prepared p;
        p.graph = layer_graph(c);
        p.macs = count_macs(p.graph);
        GenerateOptions o;
        o.out_dir = (std::filesystem::path(CARDINAL_MICROBENCH_DIR) / c.name).string();
        o.targets = resolve_targets("host");
        o.quiet = true;
        std::cerr << "generating " << c.name << "\n";
        const GenerateResult r = generate_network(p.graph, o);
        p.net = std::make_unique<LoadedNetwork>(o.out_dir, r.name);
        p.input = Tensor(p.graph.input_shape);
        SeededRandom rng(1);
        for (float& v : p.input.data)
            v = rng.uniform(-1.f, 1.f);
        p.output.resize(size_t(p.graph.shape_of(p.graph.output).numel()));
        prepared()[c.name] = std::move(p);
    }
    Isa widest = Isa::Sse;
    for (Isa isa : build_isas())
        if (cpu_supports(isa)) widest = isa;
    const std::vector<int> threads = thread_counts();
    for (int t : threads)
        peaks()[t] = measure_fma_peak(widest, t, 0.3).gflops;

    for (const LayerCase& c : kCases) {
        auto* g = benchmark::RegisterBenchmark(
            (c.name + "/generated").c_str(),
            [n = c.name](benchmark::State& s) { bench_generated(s, n); });
        auto* d =
            benchmark::RegisterBenchmark((c.name + "/onednn").c_str(),
                                         [n = c.name](benchmark::State& s) { bench_onednn(s, n); });
        for (auto* b : {g, d}) {
            b->UseManualTime()->Unit(benchmark::kMicrosecond)->ArgName("threads");
            for (int t : threads)
                b->Arg(t);
        }
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
