// The engines that execute a network from the CLI: the reference implementation, and generated
// code — the network generated for a target (into a cache folder keyed by everything that
// determines it), built into a shared library and loaded, exactly as a user links it.
#pragma once

#include <memory>
#include <string>

#include "cli/cli.h"
#include "codegen/lowering.h"
#include "ir/graph.h"
#include "loader.h"

namespace cardinal::cli {

// Options shared by commands that generate code: --target, --schedules, -j.
struct CodegenOptions {
    std::string target = "host";
    std::string schedules;  // "" (default database if any), "none", or a file
    int jobs = 0;
    std::string winograd = "on";  // --winograd on|off
};
void add_codegen_options(po::options_description& options, CodegenOptions& c);
// The lowering choices these options ask for; throws UsageError for a bad --winograd value.
LoweringOptions lowering_options(const CodegenOptions& c);

// Generates (or reuses) the network for these options and loads it. Progress goes to stderr.
std::unique_ptr<LoadedNetwork> load_generated(const Graph& graph, const CodegenOptions& options);

}  // namespace cardinal::cli
