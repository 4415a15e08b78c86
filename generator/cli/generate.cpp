// `cardinal generate`: writes a network's generated C++, compiled layer kernels, weights and
// runtime into a folder (see codegen/generate.h).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "cli/engines.h"
#include "cli/schedules.h"
#include "codegen/emit_cpp.h"
#include "codegen/generate.h"
#include "codegen/targets.h"
#include "ir/error.h"

namespace cardinal::cli {

namespace {

void write_text(const std::filesystem::path& p, const std::string& text) {
    const std::filesystem::path tmp = p.string() + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary);
        f << text;
        if (!f) throw Error("cannot write '" + p.string() + "'");
    }
    std::filesystem::rename(tmp, p);
}

}  // namespace

int generate_command(const Args& args) {
    po::options_description options("Options");
    ModelOptions m;
    CodegenOptions c;
    std::string out, name;
    bool sources_only = false;
    add_model_options(options, m, /*with_seed=*/true);
    add_codegen_options(options, c);
    options.add_options()                                                              //
        ("out", po::value(&out)->value_name("DIR"),
         "Output folder (default: ./NAME); created if missing")                       //
        ("name", po::value(&name)->value_name("NAME"),
         "Name of the files, class and C symbols (default: the model's name)")        //
        ("sources-only", po::bool_switch(&sources_only),
         "Write only NAME.h and NAME.cpp (no compiling, no weights): what generated/ holds");
    po::variables_map vm;
    if (!parse_options({"generate", "(--model NAME | --onnx FILE) [options]",
                        "Generates specialized C++ for a network: NAME.h and NAME.cpp stitch "
                        "the layers, libNAME.a holds one ahead-of-time compiled Halide object "
                        "per unique layer kernel plus the Halide runtime, NAME.weights holds "
                        "the packed weights. Nothing is left in the folder if generation "
                        "fails."},
                       options, args, vm))
        return 0;
    check_model_options(m);
    if (c.jobs < 0) throw UsageError("-j must be 0 or more, got " + std::to_string(c.jobs));

    const Graph g = build_model(m);
    GenerateOptions o;
    o.jobs = c.jobs;
    o.lowering = lowering_options(c);
    o.name = name;
    const std::string dir = out.empty() ? identifier_for(name.empty() ? g.name : name) : out;

    // Targets of one architecture share a folder (a fat library for several x86 targets);
    // several architectures get one sub-folder each, named after the first preset of each.
    std::vector<std::pair<std::string, std::vector<std::string>>> groups;  // folder, targets
    for (const std::string& t : resolve_targets(c.target)) {
        const std::string arch = t.substr(0, t.find('-'));
        auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& grp) {
            return grp.second[0].substr(0, grp.second[0].find('-')) == arch;
        });
        if (it == groups.end()) {
            const TargetPreset* preset = preset_for(t);
            groups.push_back({preset ? preset->name : (arch == "arm" ? "arm64" : arch), {t}});
        } else {
            it->second.push_back(t);
        }
    }

    // One lookup serves every folder: it answers per target.
    std::string schedule_files;
    o.schedules = schedule_lookup(c.schedules, resolve_targets(c.target), &schedule_files);

    for (const auto& [folder, targets] : groups) {
        o.targets = targets;
        o.out_dir = groups.size() == 1 ? dir : (std::filesystem::path(dir) / folder).string();
        if (sources_only) {
            const GeneratedSources s = generate_sources(g, o);
            std::filesystem::create_directories(o.out_dir);
            write_text(std::filesystem::path(o.out_dir) / (s.name + ".h"), s.header);
            write_text(std::filesystem::path(o.out_dir) / (s.name + ".cpp"), s.source);
            std::cout << "wrote " << s.name << ".h and " << s.name << ".cpp to " << o.out_dir
                      << "\n";
            continue;
        }
        const GenerateResult r = generate_network(g, o);
        int kernel_steps = 0;
        for (const PlannedStep& st : r.plan.steps) kernel_steps += st.kind == StepKind::Kernel;
        std::cout << "Generated " << g.name << " (" << r.name << ") in " << fixed(r.seconds, 1)
                  << " s\n"
                  << "  folder:          " << std::filesystem::absolute(o.out_dir).string() << "\n";
        for (size_t v = 0; v < targets.size(); ++v)
            std::cout << "  variant " << v << ":       " << targets[v]
                      << (v + 1 == targets.size() && v ? " (fallback)" : "") << "\n";
        std::cout << "  steps:           " << r.plan.steps.size() << " (" << kernel_steps
                  << " layer kernels; " << r.unique_kernels << " unique objects: " << r.compiled
                  << " compiled, " << r.cached << " from the object cache)\n"
                  << "  schedules:       " << r.database_schedules << " from the database, "
                  << r.default_schedules << " defaults"
                  << (schedule_files.empty() ? "" : " (" + schedule_files + ")") << "\n"
                  << "  MACs:            " << with_commas(r.plan.total_macs) << "\n"
                  << "  arena:           " << with_commas(r.plan.arena_bytes) << " bytes (all "
                  << "activations: " << with_commas(total_activation_bytes(r.plan)) << ")\n"
                  << "  weights:         " << with_commas(r.plan.weights_bytes) << " bytes\n";
    }
    return 0;
}

}  // namespace cardinal::cli
