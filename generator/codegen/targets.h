// Named target presets and safe detection of this machine's CPU. cardinal never uses Halide's
// `host` target: Halide 14 labels AMD Zen 4 as Sapphire Rapids and may then emit instructions
// Zen 4 lacks. Detection here checks CPUID feature bits against each preset instead.
#pragma once

#include <string>
#include <vector>

namespace cardinal {

struct TargetPreset {
    std::string name;         // "x86-64-avx512"
    std::string halide;       // exact Halide target string
    std::string suits;        // which CPUs it is for
};

const std::vector<TargetPreset>& target_presets();

// The best preset this CPU can run (x86-64 or AArch64 Linux).
const TargetPreset& host_preset();

// Resolves a preset name, "host" (or empty) to host_preset(), or passes a raw Halide target
// string through after validating it. Throws cardinal::Error naming the presets otherwise.
std::string resolve_target(const std::string& name_or_halide);

// Resolves a comma-separated list ("x86-64-avx512,x86-64-avx2") in order.
std::vector<std::string> resolve_targets(const std::string& comma_list);

// The preset whose Halide string is `halide`, or nullptr.
const TargetPreset* preset_for(const std::string& halide);

// This machine's CPU microarchitecture where it changes the best schedules within one preset
// ("zen3", "zen4", "zen5"; Zen 4 and Zen 5 share x86-64-zen4's instructions, but Zen 5 runs
// 512-bit FMAs on two full-width pipes and needs twice the accumulators), else "". The
// environment variable CARDINAL_CPU overrides it ("none" for ""), e.g. to compare databases.
std::string host_microarchitecture();

}  // namespace cardinal
