#include "cli/engines.h"

#include <filesystem>
#include <iostream>

#include "cli/cli.h"
#include "cli/schedules.h"
#include "codegen/generate.h"
#include "codegen/targets.h"

namespace cardinal::cli {

void add_codegen_options(po::options_description& options, CodegenOptions& c) {
    options.add_options()                                                               //
        ("target", po::value(&c.target)->value_name("T")->default_value("host"),
         "Target preset (see 'cardinal targets'), Halide target string, or host: the best "
         "preset this CPU runs")                                                        //
        ("schedules", po::value(&c.schedules)->value_name("FILE|none"),
         "Schedule database; none = built-in defaults (default: the database committed for "
         "this CPU, if any)")                                                           //
        (",j", po::value(&c.jobs)->value_name("N")->default_value(0),
         "Layer kernels compiled in parallel (0: all cores)")  //
        ("winograd", po::value(&c.winograd)->value_name("on|off")->default_value("on"),
         "Winograd F(4x4,3x3) for dense 3x3 stride-1 convs with enough channels and tiles; "
         "off: every conv direct");
}

LoweringOptions lowering_options(const CodegenOptions& c) {
    if (c.winograd != "on" && c.winograd != "off")
        throw UsageError("--winograd must be on or off, got '" + c.winograd + "'");
    LoweringOptions l;
    l.winograd = c.winograd == "on";
    return l;
}

std::unique_ptr<LoadedNetwork> load_generated(const Graph& graph, const CodegenOptions& c) {
    GenerateOptions o;
    o.targets = resolve_targets(c.target);
    o.jobs = c.jobs;
    o.lowering = lowering_options(c);
    o.schedules = schedule_lookup(c.schedules, o.targets);
    // One folder per distinct network + target + schedules (the sources name all of them) +
    // generators' sources (which decide the kernels' machine code) + the runtime copied in.
    const GeneratedSources sources = generate_sources(graph, o);
    uint64_t h = 1469598103934665603ull;
    for (unsigned char ch : sources.header + sources.source + generator_sources_digest() +
                                runtime_sources_digest())
        h = (h ^ ch) * 1099511628211ull;
    char key[24];
    std::snprintf(key, sizeof key, "%016llx", static_cast<unsigned long long>(h));
    o.out_dir = (std::filesystem::path(default_cache_dir()) / "networks" /
                 (sources.name + "-" + key))
                    .string();
    if (!std::filesystem::exists(std::filesystem::path(o.out_dir) / (sources.name + ".weights"))) {
        std::cerr << "cardinal: generating " << graph.name << " for " << c.target << "\n";
        generate_network(graph, o);
    }
    return std::make_unique<LoadedNetwork>(o.out_dir, sources.name);
}

}  // namespace cardinal::cli
