// `cardinal tune`: autotunes the schedules of a network's layer kernels on this machine and
// records them in a schedule database (see schedules/tuner.h).
#include <charconv>
#include <iostream>

#include "cardinal_runtime.h"
#include "cli/commands.h"
#include "codegen/targets.h"
#include "ir/error.h"
#include "schedules/tuner.h"

namespace cardinal::cli {

int tune_command(const Args& args) {
    po::options_description options("Options");
    ModelOptions m;
    std::string target = "host", db, strategy = tune::kStrategySearch, seed_text = "0";
    double budget = 0;
    int threads = 0, jobs = 0;
    bool thread_knobs = false;
    add_model_options(options, m, /*with_seed=*/false);
    options.add_options()  //
        ("target", po::value(&target)->value_name("T")->default_value("host"),
         "Target preset (see 'cardinal targets'), Halide target string, or host")  //
        ("budget", po::value(&budget)->value_name("SECONDS")->required(),
         "Wall time for the whole network, default measurements included (adams2019: "
         "every layer is scheduled once whatever the budget)")  //
        ("db", po::value(&db)->value_name("FILE")->required(),
         "Schedule database to continue from and write (e.g. schedules/x86-64-zen4.json)")  //
        ("seed", po::value(&seed_text)->value_name("S")->default_value("0"),
         "Seed of the search (and of the random layer inputs)")  //
        ("threads", po::value(&threads)->value_name("N")->default_value(0),
         "Threads the timed kernels use (0: all cores)")  //
        ("thread-knobs", po::bool_switch(&thread_knobs),
         "Search knobs for --threads N alone: a layer's winner becomes its entry's knobs for N "
         "threads (the generated code calls that kernel when run with N threads) when it beats "
         "the entry's own knobs at N threads; the entry's knobs stay, layers without an entry "
         "are left alone")  //
        ("strategy", po::value(&strategy)->value_name("S")->default_value("search"),
         "search: cardinal's schedule knobs, searched; adams2019: Halide's Adams2019 "
         "autoscheduler, as a baseline (write it to another database)")  //
        (",j", po::value(&jobs)->value_name("N")->default_value(0),
         "Candidates compiled in parallel (0: all cores); timing is always serial");
    po::variables_map vm;
    if (!parse_options({"tune", "(--model NAME | --onnx FILE) --budget SECONDS --db FILE [options]",
                        "Searches the schedule knobs of every unique layer kernel on this "
                        "machine: each candidate is compiled by Halide, loaded through LLVM's "
                        "ORC JIT, checked against the default schedule's output (itself checked "
                        "against the reference implementation) and timed. Time "
                        "goes to layers in proportion to their share of the network's run time. "
                        "The database is saved after every layer; rerunning continues from it. "
                        "generate, run and bench use it with --schedules FILE."},
                       options, args, vm))
        return 0;
    check_model_options(m);
    if (!(budget > 0)) throw UsageError("--budget must be a positive number of seconds");
    if (threads < 0 || jobs < 0) throw UsageError("--threads and -j must be 0 or more");
    if (thread_knobs && threads < 1)
        throw UsageError("--thread-knobs needs the thread count to tune for: --threads N");
    if (thread_knobs && strategy != tune::kStrategySearch)
        throw UsageError("--thread-knobs works with --strategy search only");
    if (strategy != tune::kStrategySearch && strategy != tune::kStrategyAdams2019)
        throw UsageError("--strategy must be one of: search, adams2019; got '" + strategy + "'");
    uint64_t seed = 0;
    {
        const char* end = seed_text.data() + seed_text.size();
        auto [ptr, ec] = std::from_chars(seed_text.data(), end, seed);
        if (seed_text.empty() || ec != std::errc() || ptr != end)
            throw UsageError("--seed must be an integer from 0 to 18446744073709551615, got '" +
                             seed_text + "'");
    }

    tune::TuneOptions o;
    const std::vector<std::string> targets = resolve_targets(target);
    if (targets.size() != 1) throw UsageError("tune one target at a time");
    o.target = targets[0];
    if (!rt::missing_cpu_features(o.target).empty())
        throw Error("cannot tune for " + target + " on this machine: the CPU lacks " +
                    rt::missing_cpu_features(o.target)[0]);
    o.budget_seconds = budget;
    o.db_path = db;
    o.seed = seed;
    o.threads = threads;
    o.thread_knobs = thread_knobs;
    o.jobs = jobs;
    o.strategy = strategy;

    const Graph g = build_model(m);
    const tune::TuneResult r = tune::tune_network(g, o);
    std::cout << "\n"
              << g.name << " on " << tune::cpu_model() << ", target " << o.target << ", "
              << strategy << ", " << fixed(r.seconds, 0) << " s\n\n"
              << tune::format_tune_result(r);
    if (!r.log.empty())
        std::cout << "\n" << r.log.size() << " candidate(s) rejected or not compiled (see above)\n";
    std::cout << "\nwrote " << db << "\n";
    return 0;
}

}  // namespace cardinal::cli
