// `cardinal generate` as a library call: lower a graph, compile its unique layer kernels (in
// parallel, through a content-addressed object cache), and write the generated network into a
// folder atomically.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "codegen/lowering.h"
#include "ir/graph.h"

namespace cardinal {

extern const char* const kGeneratorVersion;
// First 16 hex digits of the SHA-256 of the Halide generators' sources (generator/halide/*,
// hashed at build time by cmake/HashSources.cmake): it changes whenever the machine code a
// kernel spec compiles to may change, and names cached objects and networks with it.
std::string generator_sources_digest();
// The same for the runtime files copied next to every generated network (runtime/
// cardinal_runtime.{h,cpp}, cardinal_network_api.h): it keys the networks `run` and `bench` build.
std::string runtime_sources_digest();

// The name of the compiled function (and of its object in the cache) of a kernel for a target:
// "cardinal_k" + a content hash of everything that determines its machine code. The tuner names
// its candidates the same way so that `generate` finds tuned kernels in the object cache.
std::string kernel_function_name(const KernelSpec& spec, const std::string& target);

// The schedule knobs of one layer kernel on one target: `knobs` for every thread count, and for
// a thread count whose own measurements found other knobs faster, those (the generated network
// then holds both kernels and calls the one for the thread count it runs with).
struct ScheduleChoice {
    std::map<std::string, std::string> knobs;
    std::map<int, std::map<std::string, std::string>> by_threads;  // threads (>= 1) -> knobs

    ScheduleChoice() = default;
    ScheduleChoice(std::map<std::string, std::string> k) : knobs(std::move(k)) {}  // NOLINT
};

// Given a layer kernel (generator + shape/epilogue params) and a target, returns the schedule
// to use, or nullopt for the generator's built-in, target-derived defaults.
using ScheduleLookup =
    std::function<std::optional<ScheduleChoice>(const KernelSpec&, const std::string& target)>;

struct GenerateOptions {
    std::string out_dir;          // created if missing
    // Halide target strings (resolved from presets), best first. Several targets of one
    // architecture make a fat library that picks the best the CPU supports at load time; the
    // last is the fallback.
    std::vector<std::string> targets;
    std::string name;             // file/identifier name; empty: derived from the model name
    int jobs = 0;                 // parallel compiles; 0: all cores
    std::string cache_dir;        // empty: $CARDINAL_CACHE_DIR, else ~/.cache/cardinal
    ScheduleLookup schedules;     // empty: defaults everywhere
    bool quiet = false;           // no progress on stderr
    LoweringOptions lowering;     // algorithm choices (Winograd for dense 3x3 convs)
};

struct GenerateResult {
    NetworkPlan plan;
    std::string name;             // identifier used for files and symbols
    int unique_kernels = 0;
    int compiled = 0;             // objects compiled now
    int cached = 0;               // objects found in the cache
    int database_schedules = 0;   // kernel steps whose schedule came from the database
    int default_schedules = 0;
    double seconds = 0;
};

// Writes into out_dir: NAME.h, NAME.cpp, libNAME.a (one object per unique kernel + the Halide
// runtime), NAME.weights, and the runtime files the generated code includes
// (cardinal_runtime.h/.cpp, cardinal_network_api.h, HalideRuntime.h). Everything is built in a
// temporary folder first and moved into place only when all of it succeeded.
GenerateResult generate_network(const Graph& graph, const GenerateOptions& options);

// The generated C++ alone (NAME.h, NAME.cpp), without compiling or writing anything: what
// `generate --sources-only` writes and what the committed generated/ folder holds.
struct GeneratedSources {
    std::string name, header, source;
    NetworkPlan plan;
};
GeneratedSources generate_sources(const Graph& graph, const GenerateOptions& options);

// The default object cache folder.
std::string default_cache_dir();

}  // namespace cardinal
