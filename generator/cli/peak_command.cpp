// `cardinal peak`: this machine's measured fp32 FMA peak per ISA and thread count, and its memory
// bandwidth: the denominators of "% of peak" and the two roofs of a roofline. ISAs the CPU lacks
// are listed as such and never run.
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "ir/error.h"
#include "peak/peak.h"

namespace cardinal::cli {

namespace {

using json = nlohmann::ordered_json;

constexpr const char* kNotSupported = "not supported by this CPU";

std::string isa_choices() {
    std::string names;
    for (const Isa isa : build_isas())
        names += isa_name(isa) + ", ";
    return names + "all";
}

}  // namespace

int peak_command(const Args& args) {
    po::options_description options("Options");
    std::string isa_option;
    int threads = 0;
    double seconds = 0.2;
    bool no_memory = false;
    options.add_options()  //
        ("isa", po::value(&isa_option)->value_name("ISA")->default_value("all"),
         ("ISA to measure: " + isa_choices() + " (every ISA of this build's architecture)")
             .c_str())  //
        ("threads", po::value(&threads)->value_name("N")->default_value(0),
         "Measure with 1, 2, ..., N threads (0: one per physical core)")  //
        ("seconds", po::value(&seconds)->value_name("S")->default_value(0.2, "0.2"),
         "Time of each FMA and each memory measurement, in seconds")                         //
        ("no-memory", po::bool_switch(&no_memory), "Skip the memory bandwidth measurement")  //
        ("json", "Print one JSON object instead of tables");
    po::variables_map vm;
    if (!parse_options({"peak", "[options]",
                        "Measures this machine's sustained fp32 FMA throughput (GFLOP/s) for each "
                        "ISA the CPU supports and each thread count from 1 to N, with one thread "
                        "pinned per core, and its memory bandwidth (read, copy and triad, GB/s) "
                        "over a buffer twice the size of the last-level cache. The SSE figure is "
                        "a multiply and an add (SSE has no FMA). Numbers vary with load: run it "
                        "on an otherwise idle machine."},
                       options, args, vm))
        return 0;

    std::vector<Isa> isas;
    if (isa_option == "all") {
        isas = build_isas();
    } else if (const std::optional<Isa> isa = isa_from_name(isa_option)) {
        isas = {*isa};
    } else {
        throw UsageError("--isa must be one of: " + isa_choices() + "; got '" + isa_option + "'");
    }
    if (threads < 0 || threads > 4096)
        throw UsageError("--threads must be from 0 to 4096, got " + std::to_string(threads));
    if (!(seconds >= 0.001 && seconds <= 60))
        throw UsageError("--seconds must be from 0.001 to 60, got " + fixed(seconds, 3));
    // An ISA asked for by name that the CPU lacks is an error; `all` lists it instead.
    if (isa_option != "all" && !cpu_supports(isas.front()))
        throw Error(isa_option + " is " + kNotSupported + ".");
    const int max_threads = threads > 0 ? threads : physical_core_count();

    json out = {{"cpu", cpu_name()},
                {"logical_cpus", logical_cpu_count()},
                {"physical_cores", physical_core_count()},
                {"seconds", seconds}};
    json fma = json::array();
    Table fma_table({"ISA", "threads", "GFLOP/s", "GFLOP/s per thread"}, {false, true, true, true});
    std::vector<std::string> unsupported;
    for (const Isa isa : isas) {
        json entry = {{"isa", isa_name(isa)}, {"supported", cpu_supports(isa)}};
        json results = json::array();
        if (!cpu_supports(isa)) {
            unsupported.push_back(isa_name(isa));
            entry["results"] = results;
            fma.push_back(entry);
            continue;
        }
        for (int t = 1; t <= max_threads; ++t) {
            const PeakResult r = measure_fma_peak(isa, t, seconds);
            fma_table.add(
                {isa_name(isa), std::to_string(t), fixed(r.gflops, 1), fixed(r.gflops / t, 1)});
            results.push_back({{"threads", t}, {"gflops", r.gflops}});
        }
        entry["results"] = results;
        fma.push_back(entry);
    }
    out["fma"] = fma;

    Table memory_table({"threads", "read GB/s", "copy GB/s", "triad GB/s"},
                       {true, true, true, true});
    size_t buffer_bytes = 0;
    if (!no_memory) {
        json memory = json::array();
        for (int t = 1; t <= max_threads; ++t) {
            const BandwidthResult r = measure_memory(t, seconds);
            buffer_bytes = r.buffer_bytes;
            memory_table.add({std::to_string(t), fixed(r.read_gbs, 1), fixed(r.copy_gbs, 1),
                              fixed(r.triad_gbs, 1)});
            memory.push_back({{"threads", t},
                              {"read_gbs", r.read_gbs},
                              {"copy_gbs", r.copy_gbs},
                              {"triad_gbs", r.triad_gbs}});
        }
        out["memory"] = {{"buffer_bytes", buffer_bytes}, {"results", memory}};
    }

    if (vm.count("json")) {
        std::cout << out.dump(2) << "\n";
        return 0;
    }
    const std::string cpu = cpu_name();
    std::cout << (cpu.empty() ? "unknown CPU" : cpu) << ": " << logical_cpu_count()
              << " logical CPUs, " << physical_core_count() << " physical cores\n\n"
              << "fp32 FMA peak, GFLOP/s (2 flops per lane per FMA; best slice of "
              << fixed(seconds, 2) << " s per measurement):\n";
    if (unsupported.size() < isas.size()) std::cout << fma_table.str();
    for (const std::string& name : unsupported)
        std::cout << name << ": " << kNotSupported << "\n";
    if (!no_memory)
        std::cout << "\nMemory bandwidth over a " << (buffer_bytes >> 20)
                  << " MiB buffer, GB/s (1e9 bytes/s; copy and triad count bytes read and "
                     "written, as STREAM does):\n"
                  << memory_table.str();
    return 0;
}

}  // namespace cardinal::cli
