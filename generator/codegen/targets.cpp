#include "codegen/targets.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "Halide.h"
#include "cardinal_runtime.h"
#include "ir/error.h"

namespace cardinal {

const std::vector<TargetPreset>& target_presets() {
    static const std::vector<TargetPreset> presets = {
        {"x86-64-zen4", "x86-64-linux-avx-avx2-avx512-avx512_cannonlake-avx512_skylake-f16c-fma-sse41",
         "AMD Zen 4 and Intel Ice Lake or later: AVX-512 with the Cannon Lake set, without "
         "Sapphire Rapids-only features"},
        {"x86-64-avx512", "x86-64-linux-avx-avx2-avx512-avx512_skylake-f16c-fma-sse41",
         "Intel Skylake-SP/X and later, AMD Zen 4: AVX-512 F/CD/BW/DQ/VL"},
        {"x86-64-avx2", "x86-64-linux-avx-avx2-f16c-fma-sse41",
         "Intel Haswell and later, AMD Zen 1-3: AVX2 + FMA"},
        {"x86-64-baseline", "x86-64-linux-sse41", "any x86-64 CPU with SSE4.1 (2008 on)"},
        {"arm64-dotprod", "arm-64-linux-arm_dot_prod",
         "ARMv8.2+ cores with the dot-product extension (Neoverse N1, Cortex-A76, Apple M1)"},
        {"arm64", "arm-64-linux", "any AArch64 CPU: 128-bit NEON"},
    };
    return presets;
}

const TargetPreset& host_preset() {
    for (const TargetPreset& p : target_presets())
        if (rt::missing_cpu_features(p.halide).empty()) return p;
    throw Error("this CPU matches none of cardinal's target presets");
}

std::string resolve_target(const std::string& name) {
    if (name.empty() || name == "host") return host_preset().halide;
    for (const TargetPreset& p : target_presets())
        if (p.name == name) return p.halide;
    if (name.find("host") == std::string::npos && Halide::Target::validate_target_string(name))
        return name;
    std::string names;
    for (const TargetPreset& p : target_presets()) names += (names.empty() ? "" : ", ") + p.name;
    throw Error("unknown target '" + name + "': use a preset (" + names +
                ") or a Halide target string without 'host'");
}

std::vector<std::string> resolve_targets(const std::string& list) {
    std::vector<std::string> targets;
    size_t start = 0;
    while (true) {
        const size_t comma = list.find(',', start);
        const std::string item = list.substr(start, comma - start);
        if (!item.empty() || list.empty()) targets.push_back(resolve_target(item));
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return targets;
}

const TargetPreset* preset_for(const std::string& halide) {
    for (const TargetPreset& p : target_presets())
        if (p.halide == halide) return &p;
    return nullptr;
}

std::string host_microarchitecture() {
    if (const char* forced = std::getenv("CARDINAL_CPU"); forced && *forced)
        return std::strcmp(forced, "none") == 0 ? "" : forced;
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return "";
    char vendor[13] = {};
    std::memcpy(vendor, &b, 4);
    std::memcpy(vendor + 4, &d, 4);
    std::memcpy(vendor + 8, &c, 4);
    if (std::strcmp(vendor, "AuthenticAMD") != 0 || !__get_cpuid(1, &a, &b, &c, &d)) return "";
    const unsigned base_family = (a >> 8) & 0xf;
    const unsigned family = base_family == 0xf ? base_family + ((a >> 20) & 0xff) : base_family;
    if (family == 0x1a) return "zen5";
    // Family 0x19 is Zen 3 and Zen 4; of the two only Zen 4 has AVX-512.
    if (family == 0x19) return rt::missing_cpu_features("x86-64-avx512").empty() ? "zen4" : "zen3";
#endif
    return "";
}

}  // namespace cardinal
