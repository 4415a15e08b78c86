// `cardinal bench`: latency of generated code against the reference implementation and the peers
// a user would pick instead (oneDNN, PyTorch), all on the same network, weights and input.
//
// Engines run interleaved in rounds (A A A B B B C C C A A A ...) so that drift of a shared
// machine hits all of them alike. A round of an engine starts with untimed runs (one, and 20 ms
// of them for short networks) that absorb what the engine before it left behind: its worker
// threads still spinning (OpenMP spins a few ms after a parallel region; PyTorch's, in their own
// process, stole a core from whichever engine came next and doubled MobileNetV2's median at 2
// threads), the caches full of its data, and idle vCPUs. --runs-per-round 1 alternates single
// runs (A B C A B C ...). Reported per engine: median/min/max over the timed runs after warm-up,
// GFLOP/s (2 x MACs / time), the fraction of this machine's FMA peak (widest ISA, same thread
// count) measured in the same run, the speedup over the reference and the time ratio
// generated/peer. Every engine's output is compared with every other's (relative L2), so a
// benchmark also proves equivalence. A peer that is not installed (or cannot express the
// network) is reported as missing, never skipped silently. --layers times every step of generated
// code and every oneDNN primitive and places each on the roofline (measured FMA peak and memory
// bandwidth); --plot draws it all.
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "cardinal_runtime.h"
#include "cli/commands.h"
#include "cli/engines.h"
#include "cli/schedules.h"
#include "codegen/targets.h"
#include "ir/builder.h"
#include "ir/error.h"
#include "passes/fold_batch_norm.h"
#include "peak/peak.h"
#include "peers/onednn_engine.h"
#include "peers/peer.h"
#include "peers/pytorch_peer.h"
#include "reference/reference.h"

extern char** environ;

namespace cardinal::cli {

namespace {

// The engines, in the order tables list them.
const std::vector<std::string> kEngines = {"generated", "reference", "onednn", "pytorch"};

// Pause between runs of two different engines.
constexpr auto kSettle = std::chrono::milliseconds(10);
// Untimed runs at the start of each round: at least one, and at least this long. After the
// pause, a VM's vCPUs wake up slowly (on the 2-vCPU Zen 5 host a 0.35 ms one-layer network at
// 2 threads then ran 0.7 ms, with 2.5-5 ms outliers, for a whole round of 5 runs after one
// lead-in run, while the same network run back to back took 0.3 ms): a network much shorter
// than the pause needs more than one run to get its threads running again.
constexpr auto kLeadIn = std::chrono::milliseconds(20);

// Runs `run` untimed: once, then again until kLeadIn has passed.
template <typename Run>
void lead_in(Run&& run) {
    const auto until = std::chrono::steady_clock::now() + kLeadIn;
    do
        run();
    while (std::chrono::steady_clock::now() < until);
}

struct Stats {
    double median = 0, min = 0, max = 0;  // seconds
};

Stats stats_of(std::vector<double> t) {
    std::sort(t.begin(), t.end());
    const size_t n = t.size();
    return {n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]), t.front(), t.back()};
}

// The order engines take in round `round`: each round starts one engine further on, so that no
// engine always runs right after the same other one (what the engine before leaves behind,
// spinning threads and a cache full of its data, then hits every engine alike).
std::vector<size_t> round_order(size_t engines, int round) {
    std::vector<size_t> order(engines);
    for (size_t i = 0; i < engines; ++i)
        order[i] = (i + size_t(round)) % engines;
    return order;
}

// Two builds of one step compared: the ratio of their medians over all runs, and the ratio of
// their medians within each round, where they ran back to back under the same state of the host
// (on a noisy host the rounds say whether a difference is consistent or one lucky phase).
struct StepComparison {
    double ratio = 0;                // median of a / median of b
    double lowest = 0, highest = 0;  // of the per-round ratios
    int rounds = 0, rounds_a_faster = 0;
};

StepComparison compare_runs(const std::vector<double>& a, const std::vector<double>& b,
                            const std::vector<int>& round_sizes) {
    StepComparison c;
    c.ratio = stats_of(b).median > 0 ? stats_of(a).median / stats_of(b).median : 0;
    size_t first = 0;
    for (int size : round_sizes) {
        if (first + size_t(size) > a.size() || first + size_t(size) > b.size()) break;
        const auto slice = [&](const std::vector<double>& t) {
            return std::vector<double>(t.begin() + long(first), t.begin() + long(first) + size);
        };
        const double ma = stats_of(slice(a)).median, mb = stats_of(slice(b)).median;
        first += size_t(size);
        if (mb <= 0) continue;
        const double r = ma / mb;
        c.lowest = c.rounds ? std::min(c.lowest, r) : r;
        c.highest = c.rounds ? std::max(c.highest, r) : r;
        ++c.rounds;
        if (r < 1) ++c.rounds_a_faster;
    }
    return c;
}

// The widest ISA this machine runs: "peak" means the machine's peak for every engine.
Isa widest_isa() {
    Isa best = Isa::Sse;
    for (Isa isa : build_isas())
        if (cpu_supports(isa)) best = isa;
    return best;
}

// One engine under test.
struct Engine {
    std::string name;
    std::string description;
    std::string missing;                         // non-empty: not available, and why
    int runs = 0;                                // timed runs wanted
    bool warm = true;                            // gets the warm-up rounds
    std::function<double()> run;                 // one run, returns its seconds
    std::function<std::vector<float>()> output;  // output of the last run
    std::vector<double> times;
    Stats stats;
};

double relative_l2(const std::vector<float>& got, const std::vector<float>& want) {
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
        const double d = double(got[i]) - double(want[i]);
        num += d * d;
        den += double(want[i]) * double(want[i]);
    }
    if (got.size() != want.size()) return INFINITY;
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::string cur;
    std::istringstream in(s);
    while (std::getline(in, cur, sep))
        if (!cur.empty()) out.push_back(cur);
    return out;
}

// How a --schedules value reads in a table: "none", the file's name, or the committed database
// for `target` (a --target value) that the engine uses, if there is one.
std::string schedules_label(const std::string& schedules, const std::string& target) {
    if (schedules == "none") return "none";
    if (!schedules.empty()) return std::filesystem::path(schedules).filename().string();
    std::string used;
    schedule_lookup("", resolve_targets(target), &used);
    if (used.empty()) return "none (no committed database for this target)";
    std::string label = "committed";
    for (const std::string& path : split(used, ','))  // "a.json, b.json" with several targets
        label +=
            " " +
            std::filesystem::path(path.substr(path.find_first_not_of(' '))).filename().string();
    return label;
}

std::string scientific(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2e", x);
    return buf;
}

// The roofline: attainable GFLOP/s at an arithmetic intensity (flop per byte).
struct Roofline {
    double peak_gflops = 0, bandwidth_gbs = 0;
    double ridge() const { return bandwidth_gbs > 0 ? peak_gflops / bandwidth_gbs : 0; }
    std::string bound(int64_t macs, int64_t bytes) const {
        if (macs == 0 || bytes == 0 || bandwidth_gbs <= 0) return "-";
        return 2.0 * double(macs) / double(bytes) >= ridge() ? "compute" : "memory";
    }
};

// Bytes a generated step moves, from the IR: the tensors it reads from outside the step, its
// weights and its output (float32). 0 when the step covers no IR node (edge conversions).
int64_t step_bytes(const Graph& folded, const std::map<std::string, size_t>& index,
                   const std::string& layers) {
    std::vector<size_t> nodes;
    for (const std::string& name : split(layers, '+'))
        if (auto it = index.find(name); it != index.end()) nodes.push_back(it->second);
    if (nodes.empty()) return 0;
    std::sort(nodes.begin(), nodes.end());
    std::set<std::string> produced, read;
    int64_t elems = 0;
    for (size_t i : nodes) {
        const Node& n = folded.nodes[i];
        for (const std::string& t : n.inputs)
            if (!produced.count(t) && read.insert(t).second) elems += folded.shape_of(t).numel();
        produced.insert(n.output);
        if (const Conv2D* c = std::get_if<Conv2D>(&n.op))
            elems += c->weight.numel() + (c->bias ? c->bias->numel() : 0);
        if (const Dense* d = std::get_if<Dense>(&n.op))
            elems += d->weight.numel() + (d->bias ? d->bias->numel() : 0);
    }
    elems += folded.shape_of(folded.nodes[nodes.back()].output).numel();
    return 4 * elems;
}

// The two builds of --compare-schedules step by step, for the steps both have (matched by the
// layers they run): medians, their ratio, and the ratio within each round. Printed and returned
// as JSON.
nlohmann::json compare_steps_table(const LoadedNetwork& a, const LoadedNetwork& b,
                                   const std::vector<std::vector<double>>& a_times,
                                   const std::vector<std::vector<double>>& b_times,
                                   const std::vector<int>& round_sizes,
                                   const std::string& b_label) {
    std::map<std::string, int> b_step;
    for (int s = 0; s < b.api().num_steps; ++s)
        b_step.emplace(b.api().step_layers(s), s);
    Table t({"step", "layers", "this ms", "other ms", "this / other", "per round", "faster in",
             "knobs"},
            {true, false, true, true, true, false, true, false});
    nlohmann::json out = nlohmann::json::array();
    std::vector<double> a_sum(a_times.empty() ? 0 : a_times[0].size()), b_sum(a_sum.size());
    auto add_row = [&](const std::string& step, const std::string& layers,
                       const std::vector<double>& at, const std::vector<double>& bt,
                       const std::string& knobs) {
        const StepComparison c = compare_runs(at, bt, round_sizes);
        const double am = stats_of(at).median, bm = stats_of(bt).median;
        t.add({step, layers.size() > 40 ? layers.substr(0, 37) + "..." : layers, fixed(am * 1e3, 3),
               fixed(bm * 1e3, 3), fixed(c.ratio, 3),
               fixed(c.lowest, 2) + "-" + fixed(c.highest, 2),
               std::to_string(c.rounds_a_faster) + "/" + std::to_string(c.rounds), knobs});
        return nlohmann::json{{"layers", layers},
                              {"median_ms", am * 1e3},
                              {"compare_median_ms", bm * 1e3},
                              {"ratio", c.ratio},
                              {"round_ratio_min", c.lowest},
                              {"round_ratio_max", c.highest},
                              {"rounds", c.rounds},
                              {"rounds_faster", c.rounds_a_faster}};
    };
    for (int s = 0; s < a.api().num_steps; ++s) {
        const std::string layers = a.api().step_layers(s);
        const auto it = b_step.find(layers);
        if (it == b_step.end()) continue;
        const auto& at = a_times[size_t(s)];
        const auto& bt = b_times[size_t(it->second)];
        for (size_t r = 0; r < at.size() && r < bt.size() && r < a_sum.size(); ++r) {
            a_sum[r] += at[r];
            b_sum[r] += bt[r];
        }
        const bool same =
            std::string(a.api().step_schedule(s)) == b.api().step_schedule(it->second);
        nlohmann::json j = add_row(std::to_string(s), layers, at, bt, same ? "same" : "differ");
        j["step"] = s;
        j["same_knobs"] = same;
        out.push_back(j);
    }
    nlohmann::json total = add_row("", "(steps matched, summed per run)", a_sum, b_sum, "");
    std::cout << "\nstep by step: this build / generated[" << b_label
              << "] (below 1: this build is faster; per round: the ratio within each round of "
                 "runs back to back; faster in: rounds where this build was):\n"
              << t.str();
    return {{"steps", out}, {"total", total}};
}

}  // namespace

int bench_command(const Args& args) {
    po::options_description options("Options");
    ModelOptions m;
    CodegenOptions c;
    std::string engine = "generated", json_path, peers_arg = "reference", plot_path,
                compare_schedules, compare_winograd;
    int threads = 0, runs = 20, warmup = 3, reference_runs = 2, runs_per_round = 5;
    bool layers = false;
    add_model_options(options, m, /*with_seed=*/true);
    add_codegen_options(options, c);
    options.add_options()  //
        ("engine", po::value(&engine)->value_name("E")->default_value("generated"),
         "Engine to benchmark: generated or reference")  //
        ("peers", po::value(&peers_arg)->value_name("LIST")->default_value("reference"),
         "Engines to compare with, comma-separated: reference, onednn, pytorch (or none)")  //
        ("compare-schedules", po::value(&compare_schedules)->value_name("FILE|none"),
         "Also run generated code built with this schedule database (none: built-in "
         "defaults), interleaved with the first: two schedule sets compared in one run")  //
        ("compare-winograd", po::value(&compare_winograd)->value_name("on|off"),
         "Also run generated code built with Winograd on or off (with --compare-schedules: "
         "and those schedules), interleaved with the first")  //
        ("threads", po::value(&threads)->value_name("N")->default_value(0),
         "Threads for generated code, oneDNN and PyTorch (0: all cores); the reference is "
         "single-threaded")                                                           //
        ("runs", po::value(&runs)->value_name("N")->default_value(20), "Timed runs")  //
        ("warmup", po::value(&warmup)->value_name("N")->default_value(3),
         "Untimed runs before timing")  //
        ("runs-per-round", po::value(&runs_per_round)->value_name("N")->default_value(5),
         "Timed runs of one engine in a row, after untimed runs (one, and at least 20 ms) "
         "that absorb the engine before (its spinning threads, its data in the caches); 1: "
         "engines alternate run by run")  //
        ("reference-runs", po::value(&reference_runs)->value_name("N")->default_value(2),
         "Timed runs of the (slow) reference; 0 skips it")  //
        ("layers", po::bool_switch(&layers),
         "Also time every step of generated code and every oneDNN primitive, with the "
         "roofline")                                                                      //
        ("json", po::value(&json_path)->value_name("FILE"), "Write the results as JSON")  //
        ("plot", po::value(&plot_path)->value_name("FILE.png"),
         "Draw the comparison (and with --layers the per-layer roofline) with matplotlib");
    po::variables_map vm;
    if (!parse_options({"bench", "(--model NAME | --onnx FILE) [options]",
                        "Benchmarks generated code against the reference implementation and "
                        "peers (oneDNN, PyTorch) on the same network, weights and random input. "
                        "Engines run interleaved; their outputs are compared with each other."},
                       options, args, vm))
        return 0;
    check_model_options(m);
    if (engine != "generated" && engine != "reference")
        throw UsageError("--engine must be one of: generated, reference; got '" + engine + "'");
    if ((!compare_schedules.empty() || !compare_winograd.empty()) && engine != "generated")
        throw UsageError(
            "--compare-schedules and --compare-winograd compare generated code: they need "
            "--engine generated");
    // The second generated engine's options (when asked for): the first's, with the other
    // schedules and/or Winograd choice.
    CodegenOptions cb = c;
    if (!compare_schedules.empty()) cb.schedules = compare_schedules;
    if (!compare_winograd.empty()) cb.winograd = compare_winograd;
    lowering_options(cb);  // a bad --compare-winograd is a usage error, before any work
    const bool compare = !compare_schedules.empty() || !compare_winograd.empty();
    if (runs < 1 || runs_per_round < 1 || warmup < 0 || reference_runs < 0 || threads < 0)
        throw UsageError(
            "--runs and --runs-per-round must be at least 1 and --warmup, --reference-runs, "
            "--threads at least 0");
    std::vector<std::string> wanted = {engine};
    if (peers_arg != "none")
        for (const std::string& p : split(peers_arg, ',')) {
            if (std::find(kEngines.begin(), kEngines.end(), p) == kEngines.end())
                throw UsageError("unknown peer '" + p +
                                 "' in --peers; choose from: reference, onednn, pytorch (or none)");
            if (std::find(wanted.begin(), wanted.end(), p) == wanted.end()) wanted.push_back(p);
        }
    if (!plot_path.empty() && std::filesystem::path(plot_path).extension() != ".png")
        throw UsageError("--plot writes a PNG: give a file name ending in .png, got '" + plot_path +
                         "'");
    if (threads == 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
    auto has = [&](const std::string& e) {
        return std::find(wanted.begin(), wanted.end(), e) != wanted.end();
    };

    const Graph g = build_model(m);
    const int64_t macs = count_macs(g);
    Tensor input(g.input_shape);
    SeededRandom rng(42);
    for (float& v : input.data)
        v = rng.uniform(-1.0f, 1.0f);
    const int64_t out_elems = g.shape_of(g.output).numel();

    // Set up every engine (generation and model building happen here, untimed).
    std::vector<Engine> engines;
    std::unique_ptr<LoadedNetwork> net, net_b;  // net_b: built with --compare-schedules
    std::unique_ptr<peers::OnednnEngine> dnnl;
    std::unique_ptr<peers::PytorchPeer> torch;
    std::string target;
    std::vector<float> generated_output(static_cast<size_t>(out_elems)),
        generated_b_output(static_cast<size_t>(out_elems)),
        onednn_output(static_cast<size_t>(out_elems));
    std::unique_ptr<rt::Arena> arena, arena_b;
    const std::string schedules_a = schedules_label(c.schedules, c.target) +
                                    (compare_winograd.empty() ? "" : ", winograd " + c.winograd),
                      schedules_b = schedules_label(cb.schedules, cb.target) +
                                    (compare_winograd.empty() ? "" : ", winograd " + cb.winograd);
    Tensor reference_output;
    for (const std::string& name : kEngines) {
        if (!has(name)) continue;
        Engine e;
        e.name = name;
        e.runs = runs;
        if (name == "generated") {
            net = load_generated(g, c);
            target = net->api().variant_targets[net->api().selected_variant(net->network())];
            net->api().set_num_threads(threads);
            arena = std::make_unique<rt::Arena>(net->api().arena_bytes);
            e.description = "cardinal, " + target + ", schedules: " + schedules_a;
            e.run = [&] {
                const double t0 = rt::now_seconds();
                net->run(input.ptr(), generated_output.data(), arena->data());
                return rt::now_seconds() - t0;
            };
            e.output = [&] { return generated_output; };
            if (compare) {
                // The same network and target with the other schedules (or Winograd choice),
                // as its own engine.
                engines.push_back(std::move(e));
                e = Engine{};
                e.name = "generated[" + schedules_b + "]";
                e.runs = runs;
                net_b = load_generated(g, cb);
                net_b->api().set_num_threads(threads);
                arena_b = std::make_unique<rt::Arena>(net_b->api().arena_bytes);
                e.description = "cardinal, " + target + ", schedules: " + schedules_b;
                e.run = [&] {
                    const double t0 = rt::now_seconds();
                    net_b->run(input.ptr(), generated_b_output.data(), arena_b->data());
                    return rt::now_seconds() - t0;
                };
                e.output = [&] { return generated_b_output; };
            }
        } else if (name == "reference") {
            e.runs = engine == "reference" ? runs : reference_runs;
            if (e.runs == 0) continue;  // --reference-runs 0 skips it
            e.warm = false;
            e.description = "plain C++ loops, 1 thread";
            e.run = [&] {
                const double t0 = rt::now_seconds();
                reference_output = reference::run(g, input);
                return rt::now_seconds() - t0;
            };
            e.output = [&] { return reference_output.data; };
        } else if (name == "onednn") {
            try {
                dnnl = std::make_unique<peers::OnednnEngine>(g, threads);
                e.description =
                    peers::OnednnEngine::version() + ", " + std::to_string(threads) + " thread(s)";
                e.run = [&] {
                    const double t0 = rt::now_seconds();
                    dnnl->run(input.ptr(), onednn_output.data());
                    return rt::now_seconds() - t0;
                };
                e.output = [&] { return onednn_output; };
            } catch (const peers::PeerUnavailable& x) {
                e.missing = x.what();
            }
        } else if (name == "pytorch") {
            try {
                std::cerr << "cardinal: starting the PyTorch peer (building, freezing and "
                             "warming up the model)\n";
                torch = std::make_unique<peers::PytorchPeer>(g, m.onnx.empty(), threads, input);
                e.description = torch->description();
                e.run = [&] { return torch->run(); };
                e.output = [&] { return torch->output().data; };
            } catch (const peers::PeerUnavailable& x) {
                e.missing = x.what();
            }
        }
        engines.push_back(std::move(e));
    }

    // Interleaved warm-up, then interleaved timed rounds.
    const Engine* previous = nullptr;
    auto one_run = [&](Engine& e) {
        if (previous && previous != &e) std::this_thread::sleep_for(kSettle);
        previous = &e;
        return e.run();
    };
    for (int i = 0; i < warmup; ++i)
        for (Engine& e : engines)
            if (e.missing.empty() && e.warm) one_run(e);
    int most_runs = 0;
    for (const Engine& e : engines)
        most_runs = std::max(most_runs, e.runs);
    for (int first = 0, round = 0; first < most_runs; first += runs_per_round, ++round)
        for (size_t i : round_order(engines.size(), round)) {
            Engine& e = engines[i];
            if (!e.missing.empty() || first >= e.runs) continue;
            // The reference (single-threaded, seconds per run) has no lead-in: the engine
            // before disturbs it by well under 1 %.
            if (runs_per_round > 1 && e.warm) lead_in([&] { one_run(e); });
            for (int i = first; i < std::min(first + runs_per_round, e.runs); ++i)
                e.times.push_back(one_run(e));
        }
    for (Engine& e : engines)
        if (e.missing.empty()) e.stats = stats_of(e.times);

    // The machine's peak for this thread count: the best of three measurements, a moment apart.
    // Each is already the best of its slices, but on a shared host one vCPU was once descheduled
    // for a whole measurement, which halved the figure (and showed 159 % of peak).
    const Isa isa = widest_isa();
    Roofline roof;
    for (int i = 0; i < 3; ++i) {
        if (i) std::this_thread::sleep_for(kSettle);
        roof.peak_gflops = std::max(roof.peak_gflops, measure_fma_peak(isa, threads, 0.2).gflops);
    }

    const double gflop = 2.0 * double(macs) * 1e-9;
    std::cout << g.name << ", batch " << m.batch << ", input " << g.input_shape.str() << ", "
              << fixed(gflop, 2) << " GFLOP per run\n";
    if (!target.empty()) std::cout << "target " << target << "\n";
    std::cout << threads << " thread(s); measured FMA peak (" << isa_name(isa) << ", " << threads
              << " thread(s)): " << fixed(roof.peak_gflops, 1) << " GFLOP/s\n";
    for (const Engine& e : engines)
        std::cout << "  " << e.name << ": "
                  << (e.missing.empty() ? e.description : "MISSING: " + e.missing) << "\n";
    std::cout << "runs interleaved (" << warmup << " warm-up round(s), then rounds of "
              << (runs_per_round > 1 ? ">= 20 ms untimed + " : "") << runs_per_round
              << " timed run(s) per engine)\n\n";

    Table table({"engine", "runs", "median ms", "min ms", "max ms", "GFLOP/s", "% of peak",
                 "speedup vs reference"},
                {false, true, true, true, true, true, true, true});
    const Engine* ref = nullptr;
    const Engine* gen = nullptr;
    for (const Engine& e : engines) {
        if (e.name == "reference" && e.missing.empty()) ref = &e;
        if (e.name == "generated" && e.missing.empty()) gen = &e;
    }
    nlohmann::json json = {{"model", g.name},
                           {"threads", threads},
                           {"batch", m.batch},
                           {"resolution", g.input_shape[2]},
                           {"target", target},
                           {"macs", macs},
                           {"peak_gflops", roof.peak_gflops},
                           {"peak_isa", isa_name(isa)},
                           {"warmup", warmup},
                           {"interleaved", true},
                           {"runs_per_round", runs_per_round},
                           {"results", nlohmann::json::array()},
                           {"missing", nlohmann::json::array()}};
    if (!m.onnx.empty()) json["onnx"] = m.onnx;
    for (const Engine& e : engines) {
        if (!e.missing.empty()) {
            table.add({e.name, "-", "missing", "", "", "", "", ""});
            json["missing"].push_back({{"engine", e.name}, {"reason", e.missing}});
            continue;
        }
        const double gflops = gflop / e.stats.median;
        const double fraction = roof.peak_gflops > 0 ? gflops / roof.peak_gflops : 0;
        const std::string speedup =
            ref ? fixed(ref->stats.median / e.stats.median, 1) + "x" : std::string("-");
        table.add({e.name, std::to_string(e.times.size()), fixed(e.stats.median * 1e3, 2),
                   fixed(e.stats.min * 1e3, 2), fixed(e.stats.max * 1e3, 2), fixed(gflops, 1),
                   fixed(100 * fraction, 1), speedup});
        json["results"].push_back({{"engine", e.name},
                                   {"description", e.description},
                                   {"runs", e.times.size()},
                                   {"median_ms", e.stats.median * 1e3},
                                   {"min_ms", e.stats.min * 1e3},
                                   {"max_ms", e.stats.max * 1e3},
                                   {"gflops", gflops},
                                   {"peak_fraction", fraction}});
        // Every run in the order measured: shows a bimodal distribution (a noisy host) that the
        // median and the extremes hide.
        nlohmann::json times = nlohmann::json::array();
        for (double t : e.times)
            times.push_back(t * 1e3);
        json["results"].back()["times_ms"] = times;
    }
    std::cout << table.str();

    // generated / peer, pair by pair.
    if (gen) {
        json["ratios"] = nlohmann::json::array();
        bool any = false;
        for (const Engine& e : engines) {
            if (&e == gen || !e.missing.empty()) continue;
            if (!any)
                std::cout << "\ngenerated / peer (time ratio; below 1: generated is faster)\n";
            any = true;
            const double r = gen->stats.median / e.stats.median;
            std::cout << "  generated / " << e.name << ": " << fixed(r, 3) << "  ("
                      << (r <= 1 ? "generated " + fixed(1 / r, 2) + "x faster"
                                 : e.name + " " + fixed(r, 2) + "x faster")
                      << ")\n";
            json["ratios"].push_back({{"peer", e.name}, {"generated_over_peer", r}});
        }
    }

    // Equivalence: every pair of outputs. The denominator is the more trusted of the two
    // (reference, then generated, then oneDNN).
    std::vector<std::pair<const Engine*, std::vector<float>>> outputs;
    for (const Engine& e : engines)
        if (e.missing.empty() && !e.times.empty()) outputs.push_back({&e, e.output()});
    if (outputs.size() > 1) {
        json["agreement"] = nlohmann::json::array();
        std::cout << "\noutputs compared (relative L2 = |a - b| / |b|):\n";
        for (size_t i = 0; i < outputs.size(); ++i)
            for (size_t j = 0; j < i; ++j) {
                const auto& [b, bo] = outputs[j];
                const auto& [a, ao] = outputs[i];
                const double rel = relative_l2(ao, bo);
                std::cout << "  " << a->name << " vs " << b->name << ": " << scientific(rel)
                          << "\n";
                json["agreement"].push_back({{"a", a->name}, {"b", b->name}, {"relative_l2", rel}});
                if (a->name == "generated" && b->name == "reference")
                    json["relative_l2_vs_reference"] = rel;
                if (b->name == "generated" && a->name == "reference")
                    json["relative_l2_vs_reference"] = rel;
            }
        // A softmax saturated by random weights (Xception's) outputs exactly 0 and 1: every
        // engine agrees exactly, which proves little. Say so rather than print a reassuring 0.
        const std::vector<float>& first = outputs.front().second;
        const bool one_hot =
            std::all_of(first.begin(), first.end(), [](float v) { return v == 0.0f || v == 1.0f; });
        json["outputs_saturated"] = one_hot;
        if (one_hot)
            std::cout << "  note: the outputs are exactly 0 or 1 (a saturated softmax), so their "
                         "agreement says little; the tests compare this network's logits\n";
    }

    if (layers && (net || dnnl)) {
        roof.bandwidth_gbs = measure_memory_bandwidth(threads, 0.3);
        std::cout << "\nroofline: peak " << fixed(roof.peak_gflops, 1) << " GFLOP/s, memory "
                  << fixed(roof.bandwidth_gbs, 1) << " GB/s (read, " << threads
                  << " thread(s)), ridge " << fixed(roof.ridge(), 1) << " flop/byte\n";
        json["roofline"] = {{"peak_gflops", roof.peak_gflops},
                            {"bandwidth_gbs", roof.bandwidth_gbs},
                            {"ridge_flop_per_byte", roof.ridge()}};
        const Graph folded = fold_batch_norm(g);
        std::map<std::string, size_t> index;
        for (size_t i = 0; i < folded.nodes.size(); ++i)
            index[folded.nodes[i].name] = i;

        // Both engines' steps, timed in interleaved rounds.
        const int gsteps = net ? net->api().num_steps : 0;
        const int bsteps = net_b ? net_b->api().num_steps : 0;
        const int dsteps = dnnl ? dnnl->num_steps() : 0;
        std::vector<std::vector<double>> gper(static_cast<size_t>(gsteps)),
            bper(static_cast<size_t>(bsteps)), dper(static_cast<size_t>(dsteps));
        std::vector<double> gsec(static_cast<size_t>(gsteps)), bsec(static_cast<size_t>(bsteps)),
            dsec(static_cast<size_t>(dsteps));
        // Rounds as above: per engine a lead-in, then up to runs_per_round timed runs.
        auto round_of = [&](int count, auto&& run_once, std::vector<std::vector<double>>& per,
                            const std::vector<double>& sec) {
            std::this_thread::sleep_for(kSettle);
            if (runs_per_round > 1) lead_in(run_once);
            for (int k = 0; k < count; ++k) {
                run_once();
                for (size_t s = 0; s < per.size(); ++s)
                    per[s].push_back(sec[s]);
            }
        };
        std::vector<std::function<void(int)>> layer_engines;  // one round of `count` runs each
        if (net)
            layer_engines.push_back([&](int count) {
                round_of(
                    count,
                    [&] {
                        net->run(input.ptr(), generated_output.data(), arena->data(), gsec.data());
                    },
                    gper, gsec);
            });
        if (net_b)
            layer_engines.push_back([&](int count) {
                round_of(
                    count,
                    [&] {
                        net_b->run(input.ptr(), generated_b_output.data(), arena_b->data(),
                                   bsec.data());
                    },
                    bper, bsec);
            });
        if (dnnl)
            layer_engines.push_back([&](int count) {
                round_of(
                    count, [&] { dnnl->run(input.ptr(), onednn_output.data(), dsec.data()); }, dper,
                    dsec);
            });
        std::vector<int> round_sizes;
        for (int first = 0, round = 0; first < runs; first += runs_per_round, ++round) {
            round_sizes.push_back(std::min(runs_per_round, runs - first));
            for (size_t i : round_order(layer_engines.size(), round))
                layer_engines[i](round_sizes.back());
        }
        auto layer_table = [&](const std::string& title, int steps, auto&& info,
                               std::vector<std::vector<double>>& per, nlohmann::json& out,
                               bool with_impl) {
            std::vector<std::string> header = {"step",    "layers", "what",  "median ms",
                                               "GFLOP/s", "flop/B", "bound", "% of time"};
            std::vector<bool> right = {true, false, false, true, true, true, false, true};
            if (with_impl) {
                header.push_back("implementation");
                right.push_back(false);
            }
            Table lt(header, right);
            double total = 0;
            std::vector<double> med(static_cast<size_t>(steps));
            for (int s = 0; s < steps; ++s)
                total += med[size_t(s)] = stats_of(per[size_t(s)]).median;
            out = nlohmann::json::array();
            for (int s = 0; s < steps; ++s) {
                const auto [names, what, impl, step_macs, bytes, schedule] = info(s);
                const double ms = med[size_t(s)];
                const double gf = ms > 0 ? 2e-9 * double(step_macs) / ms : 0;
                const double ai = bytes > 0 ? 2.0 * double(step_macs) / double(bytes) : 0;
                std::vector<std::string> row = {std::to_string(s),
                                                names,
                                                what,
                                                fixed(ms * 1e3, 3),
                                                step_macs ? fixed(gf, 1) : "-",
                                                step_macs && bytes ? fixed(ai, 1) : "-",
                                                roof.bound(step_macs, bytes),
                                                fixed(100 * ms / total, 1)};
                if (with_impl) row.push_back(impl);
                lt.add(row);
                nlohmann::json j = {{"step", s},
                                    {"layers", names},
                                    {"description", what},
                                    {"median_ms", ms * 1e3},
                                    {"macs", step_macs},
                                    {"bytes", bytes},
                                    {"gflops", gf},
                                    {"intensity", ai},
                                    {"bound", roof.bound(step_macs, bytes)}};
                if (with_impl) j["implementation"] = impl;
                if (!schedule.empty()) j["schedule"] = schedule;
                out.push_back(j);
            }
            std::cout << "\n"
                      << title << " (median of " << runs << " runs, " << fixed(total * 1e3, 2)
                      << " ms in all):\n"
                      << lt.str();
        };
        using Row =
            std::tuple<std::string, std::string, std::string, int64_t, int64_t, std::string>;
        auto generated_step = [&](const LoadedNetwork& n) {
            return [&](int s) -> Row {
                const std::string names = n.api().step_layers(s);
                return {names,
                        n.api().step_description(s),
                        "",
                        n.api().step_macs(s),
                        n.api().step_macs(s) ? step_bytes(folded, index, names) : 0,
                        n.api().step_schedule(s)};
            };
        };
        if (net) {
            nlohmann::json out;
            layer_table("generated code, per step", gsteps, generated_step(*net), gper, out, false);
            json["layers"] = out;
        }
        if (net_b) {
            nlohmann::json out;
            layer_table("generated code with schedules " + schedules_b + ", per step", bsteps,
                        generated_step(*net_b), bper, out, false);
            json["compare_layers"] = out;
            json["compare_schedules"] = compare_schedules;
            if (!compare_winograd.empty()) json["compare_winograd"] = compare_winograd;
        }
        if (net && net_b)
            json["compare_steps"] =
                compare_steps_table(*net, *net_b, gper, bper, round_sizes, schedules_b);
        if (dnnl) {
            nlohmann::json out;
            layer_table(
                "oneDNN, per primitive", dsteps,
                [&](int s) -> Row {
                    const peers::OnednnStep& st = dnnl->step(s);
                    return {st.layers.empty() ? "(reorder)" : st.layers,
                            st.description,
                            st.impl,
                            st.macs,
                            st.bytes,
                            ""};
                },
                dper, out, true);
            json["onednn_layers"] = out;
        }
    }

    std::string json_for_plot = json_path;
    if (!json_path.empty() || !plot_path.empty()) {
        if (json_path.empty()) json_for_plot = plot_path.substr(0, plot_path.size() - 4) + ".json";
        std::ofstream f(json_for_plot);
        f << json.dump(2) << "\n";
        if (!f) throw Error("cannot write '" + json_for_plot + "'");
    }
    if (!plot_path.empty()) {
        const char* py = std::getenv("CARDINAL_PYTHON");
        const std::string python = py && *py ? py : "/usr/bin/python3";
        const std::string script = std::string(CARDINAL_PEERS_DIR) + "/plot_bench.py";
        const std::vector<std::string> argv_s = {python, script, json_for_plot, plot_path};
        std::vector<char*> argv;
        for (const std::string& a : argv_s)
            argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        pid_t pid = -1;
        int status = -1;
        if (posix_spawn(&pid, python.c_str(), nullptr, nullptr, argv.data(), environ) != 0 ||
            waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            throw Error("drawing '" + plot_path + "' failed (" + python +
                        " with python3-matplotlib runs " + script + ")");
        std::cout << "\nplot written to " << plot_path
                  << (json_path.empty() ? " (data: " + json_for_plot + ")" : "") << "\n";
    }
    return 0;
}

}  // namespace cardinal::cli
