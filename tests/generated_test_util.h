// Helpers for tests that generate a network, load the generated code and compare it with the
// reference implementation.
#pragma once

#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "codegen/generate.h"
#include "codegen/targets.h"
#include "ir/builder.h"
#include "loader.h"
#include "reference/reference.h"

namespace cardinal::test {

inline std::string test_dir(const std::string& tag) {
    const std::filesystem::path p = std::filesystem::path(CARDINAL_TEST_TMPDIR) / tag;
    std::filesystem::create_directories(p.parent_path());
    return p.string();
}

// Generates `graph` for this CPU (or `target`) into a fresh folder and loads it; `schedules`
// empty: every kernel with its generator's defaults.
inline std::unique_ptr<LoadedNetwork> generate_and_load(const Graph& graph, const std::string& tag,
                                                        const std::string& target = "host",
                                                        ScheduleLookup schedules = {},
                                                        LoweringOptions lowering = {}) {
    GenerateOptions o;
    o.lowering = lowering;
    o.schedules = std::move(schedules);
    o.out_dir = test_dir(tag);
    std::filesystem::remove_all(o.out_dir);
    o.targets = resolve_targets(target);
    o.cache_dir = CARDINAL_TEST_CACHE_DIR;
    o.quiet = true;
    const GenerateResult r = generate_network(graph, o);
    return std::make_unique<LoadedNetwork>(o.out_dir, r.name);
}

// The message of the exception `f` throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

inline Tensor random_input(const Shape& shape, uint64_t seed) {
    Tensor t(shape);
    SeededRandom rng(seed);
    for (float& v : t.data)
        v = rng.uniform(-1.0f, 1.0f);
    return t;
}

inline double relative_l2(const std::vector<float>& got, const std::vector<float>& want) {
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        const double d = double(got[i]) - double(want[i]);
        num += d * d;
        den += double(want[i]) * double(want[i]);
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Index of the largest value of each of `rows` equal rows.
inline std::vector<size_t> top1(const std::vector<float>& v, size_t rows) {
    std::vector<size_t> best(rows, 0);
    const size_t cols = v.size() / rows;
    for (size_t r = 0; r < rows; ++r)
        for (size_t c = 1; c < cols; ++c)
            if (v[r * cols + c] > v[r * cols + best[r]]) best[r] = c;
    return best;
}

// Runs the generated network on `input`.
inline std::vector<float> run_generated(const LoadedNetwork& net, const Tensor& input) {
    int64_t n = 1;
    for (int i = 0; i < net.api().output_rank; ++i)
        n *= net.api().output_shape[i];
    std::vector<float> out(static_cast<size_t>(n), std::nanf(""));
    net.run(input.ptr(), out.data());
    return out;
}

// The graph with a final Softmax removed: logits compare more strictly than saturated
// probabilities.
inline Graph without_final_softmax(Graph g) {
    if (!g.nodes.empty() && std::holds_alternative<Softmax>(g.nodes.back().op) &&
        g.nodes.back().output == g.output) {
        g.output = g.nodes.back().inputs[0];
        g.nodes.pop_back();
        infer_shapes(g);
    }
    return g;
}

}  // namespace cardinal::test
