// The committed generated/ folder holds the generated C++ of every zoo network for one fixed
// x86-64 AVX2 target. The generator is deterministic: regenerating must reproduce every byte.
// Refresh with scripts/regenerate-generated.sh after an intended change.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "codegen/generate.h"
#include "codegen/targets.h"
#include "zoo/zoo.h"

using namespace cardinal;

namespace {

std::string read(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    REQUIRE(f.good());
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

}  // namespace

TEST_CASE("generated/ matches what the generator emits today byte for byte") {
    GenerateOptions o;
    o.targets = {resolve_target("x86-64-avx2")};
    for (const ZooModel& m : zoo_models()) {
        const GeneratedSources g = generate_sources(build_zoo_model(m.name), o);
        const std::filesystem::path dir =
            std::filesystem::path(CARDINAL_SOURCE_DIR) / "generated" / g.name;
        INFO("model " << m.name << " (run scripts/regenerate-generated.sh if the change is meant)");
        CHECK(read(dir / (g.name + ".h")) == g.header);
        CHECK(read(dir / (g.name + ".cpp")) == g.source);
    }
}

TEST_CASE("generating the same network twice gives identical sources") {
    GenerateOptions o;
    o.targets = {resolve_target("x86-64-avx512")};
    const GeneratedSources a = generate_sources(build_zoo_model("mobilenet_v2", 2, 96), o);
    const GeneratedSources b = generate_sources(build_zoo_model("mobilenet_v2", 2, 96), o);
    CHECK(a.header == b.header);
    CHECK(a.source == b.source);
}
