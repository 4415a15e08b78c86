// `cardinal bench`: latency of generated code against the reference implementation on the same
// network and input: median/min/max over timed runs after warm-up, GFLOP/s (2 x MACs / time),
// the fraction of this machine's FMA peak measured in the same run, the speedup over the
// reference, and with --layers the time of every step.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cardinal_runtime.h"
#include "cli/commands.h"
#include "cli/engines.h"
#include "codegen/targets.h"
#include "ir/builder.h"
#include "ir/error.h"
#include "peak/peak.h"
#include "reference/reference.h"

namespace cardinal::cli {

namespace {

struct Stats {
    double median = 0, min = 0, max = 0;  // seconds
};

Stats stats_of(std::vector<double> t) {
    std::sort(t.begin(), t.end());
    const size_t n = t.size();
    return {n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]), t.front(), t.back()};
}

// The widest ISA a Halide target string uses, for the matching FMA peak.
Isa isa_of(const std::string& target) {
    if (target.rfind("arm", 0) == 0) return Isa::Neon;
    if (target.find("avx512") != std::string::npos) return Isa::Avx512;
    if (target.find("avx2") != std::string::npos) return Isa::Avx2;
    return Isa::Sse;
}

struct EngineResult {
    std::string engine;
    Stats stats;
    int runs = 0;
};

}  // namespace

int bench_command(const Args& args) {
    po::options_description options("Options");
    ModelOptions m;
    CodegenOptions c;
    std::string engine = "generated", json_path;
    int threads = 0, runs = 20, warmup = 3, reference_runs = 2;
    bool layers = false;
    add_model_options(options, m, /*with_seed=*/true);
    add_codegen_options(options, c);
    options.add_options()                                                                 //
        ("engine", po::value(&engine)->value_name("E")->default_value("generated"),
         "Engine to benchmark: generated or reference")                                  //
        ("threads", po::value(&threads)->value_name("N")->default_value(0),
         "Threads for generated code (0: all cores); the reference is single-threaded")   //
        ("runs", po::value(&runs)->value_name("N")->default_value(20), "Timed runs")      //
        ("warmup", po::value(&warmup)->value_name("N")->default_value(3),
         "Untimed runs before timing")                                                    //
        ("reference-runs", po::value(&reference_runs)->value_name("N")->default_value(2),
         "Timed runs of the (slow) reference for the speedup; 0 skips it")              //
        ("layers", po::bool_switch(&layers), "Also time every step of the generated code") //
        ("json", po::value(&json_path)->value_name("FILE"), "Write the results as JSON");
    po::variables_map vm;
    if (!parse_options({"bench", "--model NAME [options]",
                        "Benchmarks generated code and the reference implementation on the "
                        "same network and random input."},
                       options, args, vm))
        return 0;
    check_model_options(m);
    if (engine != "generated" && engine != "reference")
        throw UsageError("--engine must be one of: generated, reference; got '" + engine + "'");
    if (runs < 1 || warmup < 0 || reference_runs < 0 || threads < 0)
        throw UsageError("--runs must be at least 1 and --warmup, --reference-runs, --threads "
                         "at least 0");
    if (threads == 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));

    const Graph g = build_model(m);
    const int64_t macs = count_macs(g);
    Tensor input(g.input_shape);
    SeededRandom rng(42);
    for (float& v : input.data) v = rng.uniform(-1.0f, 1.0f);

    std::vector<EngineResult> results;
    std::vector<float> generated_output;
    std::unique_ptr<LoadedNetwork> net;
    std::string target;
    if (engine == "generated") {
        net = load_generated(g, c);
        target = net->api().variant_targets[net->api().selected_variant(net->network())];
        net->api().set_num_threads(threads);
        int64_t out_elems = 1;
        for (int i = 0; i < net->api().output_rank; ++i) out_elems *= net->api().output_shape[i];
        generated_output.resize(out_elems);
        rt::Arena arena(net->api().arena_bytes);
        for (int i = 0; i < warmup; ++i) net->run(input.ptr(), generated_output.data(), arena.data());
        std::vector<double> t;
        for (int i = 0; i < runs; ++i) {
            const double t0 = rt::now_seconds();
            net->run(input.ptr(), generated_output.data(), arena.data());
            t.push_back(rt::now_seconds() - t0);
        }
        results.push_back({"generated", stats_of(t), runs});
    }
    Tensor reference_output;
    const int ref_runs = engine == "reference" ? runs : reference_runs;
    if (ref_runs > 0) {
        std::vector<double> t;
        for (int i = 0; i < ref_runs; ++i) {
            const double t0 = rt::now_seconds();
            reference_output = reference::run(g, input);
            t.push_back(rt::now_seconds() - t0);
        }
        results.push_back({"reference", stats_of(t), ref_runs});
    }

    // The peak this machine reaches with the generated code's ISA and thread count.
    const Isa isa = isa_of(target.empty() ? resolve_target(c.target) : target);
    double peak_gflops = 0;
    if (cpu_supports(isa)) peak_gflops = measure_fma_peak(isa, threads, 0.3).gflops;

    const double gflop = 2.0 * double(macs) * 1e-9;
    std::cout << g.name << ", batch " << m.batch << ", input " << g.input_shape.str() << ", "
              << fixed(gflop, 2) << " GFLOP per run\n";
    if (!target.empty()) std::cout << "target " << target << ", " << threads << " thread(s)\n";
    std::cout << "measured FMA peak (" << isa_name(isa) << ", " << threads
              << " thread(s)): " << fixed(peak_gflops, 1) << " GFLOP/s\n\n";
    Table table({"engine", "runs", "median ms", "min ms", "max ms", "GFLOP/s", "% of peak",
                 "speedup vs reference"},
                {false, true, true, true, true, true, true, true});
    const EngineResult* ref = nullptr;
    for (const EngineResult& r : results)
        if (r.engine == "reference") ref = &r;
    nlohmann::json json = {{"model", g.name},      {"threads", threads},
                           {"batch", m.batch},     {"resolution", g.input_shape[2]},
                           {"target", target},     {"macs", macs},
                           {"peak_gflops", peak_gflops}, {"results", nlohmann::json::array()}};
    for (const EngineResult& r : results) {
        const double gflops = gflop / r.stats.median;
        const double fraction = peak_gflops > 0 ? gflops / peak_gflops : 0;
        const std::string speedup =
            ref ? fixed(ref->stats.median / r.stats.median, 1) + "x" : std::string("-");
        table.add({r.engine, std::to_string(r.runs), fixed(r.stats.median * 1e3, 2),
                   fixed(r.stats.min * 1e3, 2), fixed(r.stats.max * 1e3, 2), fixed(gflops, 1),
                   fixed(100 * fraction, 1), speedup});
        json["results"].push_back({{"engine", r.engine},
                                   {"runs", r.runs},
                                   {"median_ms", r.stats.median * 1e3},
                                   {"min_ms", r.stats.min * 1e3},
                                   {"max_ms", r.stats.max * 1e3},
                                   {"gflops", gflops},
                                   {"peak_fraction", fraction}});
    }
    std::cout << table.str();
    if (net && ref_runs > 0) {
        std::vector<float> ref_flat(reference_output.data.begin(), reference_output.data.end());
        double num = 0, den = 0;
        for (size_t i = 0; i < ref_flat.size(); ++i) {
            num += std::pow(double(generated_output[i]) - ref_flat[i], 2);
            den += double(ref_flat[i]) * ref_flat[i];
        }
        const double rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
        std::cout << "\ngenerated vs reference output: relative L2 error " << rel << "\n";
        json["relative_l2_vs_reference"] = rel;
    }

    if (layers && net) {
        const int steps = net->api().num_steps;
        std::vector<std::vector<double>> per_step(steps);
        std::vector<double> seconds(steps);
        rt::Arena arena(net->api().arena_bytes);
        for (int i = 0; i < runs; ++i) {
            net->run(input.ptr(), generated_output.data(), arena.data(), seconds.data());
            for (int s = 0; s < steps; ++s) per_step[s].push_back(seconds[s]);
        }
        Table lt({"step", "layers", "what", "median ms", "GFLOP/s", "% of time"},
                 {true, false, false, true, true, true});
        double total = 0;
        std::vector<double> med(steps);
        for (int s = 0; s < steps; ++s) total += med[s] = stats_of(per_step[s]).median;
        json["layers"] = nlohmann::json::array();
        for (int s = 0; s < steps; ++s) {
            const int64_t step_macs = net->api().step_macs(s);
            const double gf = med[s] > 0 ? 2e-9 * double(step_macs) / med[s] : 0;
            lt.add({std::to_string(s), net->api().step_layers(s), net->api().step_description(s),
                    fixed(med[s] * 1e3, 3), step_macs ? fixed(gf, 1) : "-",
                    fixed(100 * med[s] / total, 1)});
            json["layers"].push_back({{"step", s},
                                      {"layers", net->api().step_layers(s)},
                                      {"description", net->api().step_description(s)},
                                      {"schedule", net->api().step_schedule(s)},
                                      {"median_ms", med[s] * 1e3},
                                      {"macs", step_macs},
                                      {"gflops", gf}});
        }
        std::cout << "\nPer step (median of " << runs << " runs):\n" << lt.str();
    }
    if (!json_path.empty()) {
        std::ofstream f(json_path);
        f << json.dump(2) << "\n";
        if (!f) throw Error("cannot write '" + json_path + "'");
    }
    return 0;
}

}  // namespace cardinal::cli
