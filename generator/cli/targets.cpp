// `cardinal targets`: the named target presets, their exact Halide target strings, the CPUs they
// suit, and which one `host` resolves to on this machine.
#include <iostream>

#include "cardinal_runtime.h"
#include "cli/commands.h"
#include "codegen/targets.h"

namespace cardinal::cli {

int targets_command(const Args& args) {
    po::options_description options("Options");
    po::variables_map vm;
    if (!parse_options({"targets", "",
                        "Lists the target presets --target accepts. A raw Halide target string "
                        "is accepted too; 'host' (the default) is the best preset this CPU "
                        "runs, detected from CPUID rather than by Halide, which labels AMD Zen 4 "
                        "as Sapphire Rapids."},
                       options, args, vm))
        return 0;
    Table table({"preset", "runs here", "Halide target", "suits"}, {false, false, false, false});
    for (const TargetPreset& p : target_presets())
        table.add({p.name, rt::missing_cpu_features(p.halide).empty() ? "yes" : "no", p.halide,
                   p.suits});
    std::cout << table.str() << "\nhost = " << host_preset().name << "\n";
    // The CPU's own schedule database, if committed, comes before the preset's (schedules.h).
    if (const std::string cpu = host_microarchitecture(); !cpu.empty())
        std::cout << "microarchitecture = " << cpu << " (schedules/" << host_preset().name << "."
                  << cpu << ".json is read first where present)\n";
    return 0;
}

}  // namespace cardinal::cli
