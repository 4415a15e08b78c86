#include <unistd.h>
// The machine-peak library: CPU feature checks, the FMA peak for every supported ISA and the memory
// bandwidth give positive, finite, physically possible numbers (no speed thresholds: machines are
// noisy), bad arguments are refused, and `cardinal peak` reports in text and JSON.
#include <sys/wait.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "peak/peak.h"

using namespace cardinal;
namespace fs = std::filesystem;

namespace {

// The widest ISA this CPU supports.
Isa best_isa() {
    Isa best = Isa::Sse;
    for (const Isa isa : build_isas())
        if (cpu_supports(isa)) best = isa;
    return best;
}

struct Result {
    int code = -1;
    std::string out, err;
};

std::string slurp(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// Runs `cardinal <args>` (shell words without spaces or quotes).
Result run_cli(const std::string& args) {
    const fs::path dir = fs::path(CARDINAL_TEST_TMPDIR) / "peak";
    fs::create_directories(dir);
    const std::string id = std::to_string(getpid());  // ctest runs test cases at once
    const std::string out = (dir / ("stdout-" + id + ".txt")).string(),
                      err = (dir / ("stderr-" + id + ".txt")).string();
    const std::string command =
        "'" CARDINAL_CLI_PATH "' " + args + " >'" + out + "' 2>'" + err + "'";
    const int status = std::system(command.c_str());
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    UNSCOPED_INFO("cardinal " << args << "\nexit " << r.code << "\nstdout: " << r.out
                              << "\nstderr: " << r.err);
    return r;
}

}  // namespace

TEST_CASE("cpu_supports: SSE on every x86-64 CPU, NEON only on aarch64, names round-trip") {
#if defined(__x86_64__)
    CHECK(cpu_supports(Isa::Sse));
    CHECK_FALSE(cpu_supports(Isa::Neon));
    // Every AVX-512 CPU has AVX2 and FMA.
    if (cpu_supports(Isa::Avx512)) CHECK(cpu_supports(Isa::Avx2));
    CHECK(build_isas() == std::vector<Isa>{Isa::Sse, Isa::Avx2, Isa::Avx512});
#elif defined(__aarch64__)
    CHECK(cpu_supports(Isa::Neon));
    CHECK_FALSE(cpu_supports(Isa::Avx2));
#endif
    CHECK(isa_name(Isa::Sse) == "sse");
    CHECK(isa_name(Isa::Avx2) == "avx2");
    CHECK(isa_name(Isa::Avx512) == "avx512");
    CHECK(isa_name(Isa::Neon) == "neon");
    for (const Isa isa : {Isa::Sse, Isa::Avx2, Isa::Avx512, Isa::Neon})
        CHECK(isa_from_name(isa_name(isa)) == isa);
    CHECK_FALSE(isa_from_name("avx").has_value());
    CHECK(logical_cpu_count() >= physical_core_count());
    CHECK(physical_core_count() >= 1);
}

TEST_CASE("measure_fma_peak: the best ISA on one thread gives a positive, finite, possible rate") {
    const Isa isa = best_isa();
    const PeakResult r = measure_fma_peak(isa, 1, 0.05);
    INFO(isa_name(isa) << ": " << r.gflops << " GFLOP/s");
    CHECK(r.isa == isa);
    CHECK(r.threads == 1);
    CHECK(std::isfinite(r.gflops));
    CHECK(r.gflops > 0);
    CHECK(r.gflops < 10000);  // one core: far above any CPU's FMA throughput
}

TEST_CASE("measure_fma_peak: every supported ISA, on one thread and on all cores") {
    const int cores = physical_core_count();
    for (const Isa isa : build_isas()) {
        if (!cpu_supports(isa)) continue;
        for (const int threads : {1, cores}) {
            const PeakResult r = measure_fma_peak(isa, threads, 0.02);
            INFO(isa_name(isa) << ", " << threads << " threads: " << r.gflops << " GFLOP/s");
            CHECK(r.threads == threads);
            CHECK(std::isfinite(r.gflops));
            CHECK(r.gflops > 0);
            CHECK(r.gflops < 10000.0 * threads);
        }
    }
    // Threads 0 means one per physical core.
    CHECK(measure_fma_peak(best_isa(), 0, 0.02).threads == cores);
}

TEST_CASE("measure_fma_peak: unsupported ISAs and bad arguments are refused, never run") {
#if defined(__x86_64__)
    CHECK_THROWS_AS(measure_fma_peak(Isa::Neon, 1, 0.01), std::invalid_argument);
#elif defined(__aarch64__)
    CHECK_THROWS_AS(measure_fma_peak(Isa::Avx512, 1, 0.01), std::invalid_argument);
#endif
    CHECK_THROWS_AS(measure_fma_peak(best_isa(), -1, 0.01), std::invalid_argument);
    CHECK_THROWS_AS(measure_fma_peak(best_isa(), 1, 0.0), std::invalid_argument);
    CHECK_THROWS_AS(measure_fma_peak(best_isa(), 1, -1.0), std::invalid_argument);
    CHECK_THROWS_AS(measure_fma_peak(best_isa(), 1, std::nan("")), std::invalid_argument);
    CHECK_THROWS_AS(measure_memory(-1, 0.01), std::invalid_argument);
    CHECK_THROWS_AS(measure_memory_bandwidth(1, 0.0), std::invalid_argument);
}

TEST_CASE("measure_memory_bandwidth: positive and finite over the default buffer") {
    CHECK(default_bandwidth_bytes() >= (size_t(256) << 20));
    const double gbs = measure_memory_bandwidth(1, 0.05);
    INFO(gbs << " GB/s");
    CHECK(std::isfinite(gbs));
    CHECK(gbs > 0);
    CHECK(gbs < 100000);
}

TEST_CASE("measure_memory: read, copy and triad on all cores over a small buffer") {
    const int cores = physical_core_count();
    const BandwidthResult r = measure_memory(cores, 0.04, size_t(64) << 20);
    INFO("read " << r.read_gbs << ", copy " << r.copy_gbs << ", triad " << r.triad_gbs);
    CHECK(r.threads == cores);
    CHECK(r.buffer_bytes == (size_t(64) << 20));
    for (const double gbs : {r.read_gbs, r.copy_gbs, r.triad_gbs}) {
        CHECK(std::isfinite(gbs));
        CHECK(gbs > 0);
        CHECK(gbs < 100000);
    }
}

TEST_CASE("cardinal peak: table, JSON, unsupported ISAs and usage errors") {
    const std::string isa = isa_name(best_isa());
    {
        const Result r = run_cli("peak --isa " + isa + " --threads 1 --seconds 0.02 --no-memory");
        REQUIRE(r.code == 0);
        CHECK_THAT(r.out, Catch::Contains("GFLOP/s"));
        CHECK_THAT(r.out, Catch::Contains(isa));
        CHECK(r.err.empty());
    }
    {
        const Result r = run_cli("peak --threads 1 --seconds 0.02 --no-memory --json");
        REQUIRE(r.code == 0);
        const nlohmann::json j = nlohmann::json::parse(r.out);
        REQUIRE(j["fma"].size() == build_isas().size());
        for (const auto& entry : j["fma"]) {
            const std::optional<Isa> which = isa_from_name(entry["isa"].get<std::string>());
            REQUIRE(which);
            CHECK(entry["supported"].get<bool>() == cpu_supports(*which));
            CHECK(entry["results"].size() == (cpu_supports(*which) ? 1u : 0u));
            for (const auto& result : entry["results"])
                CHECK(result["gflops"].get<double>() > 0);
        }
        CHECK_FALSE(j.contains("memory"));
    }
#if defined(__x86_64__)
    {
        const Result r = run_cli("peak --isa neon");
        CHECK(r.code == 1);
        CHECK(r.err == "cardinal: neon is not supported by this CPU.\n");
        CHECK(r.out.empty());
    }
#endif
    for (const std::string bad : {"--isa avx", "--threads -1", "--seconds 0", "--bogus"}) {
        const Result r = run_cli("peak " + bad);
        CHECK(r.code == 2);
        CHECK_THAT(r.err, Catch::StartsWith("cardinal: "));
    }
}
