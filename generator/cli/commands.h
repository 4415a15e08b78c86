// The registry of `cardinal` subcommands. Adding one: write generator/cli/<name>.cpp defining
// `int <name>_command(const Args&)` and add one X(...) line below; main.cpp builds its dispatch
// table and the `cardinal --help` listing from this list.
#pragma once

#include "cli/cli.h"

// X(name, one-line summary), in the order `cardinal --help` lists them.
#define CARDINAL_CLI_COMMANDS(X)                                                  \
    X(models, "List the model zoo with parameter and MAC counts")                 \
    X(inspect, "Show a network layer by layer: shapes, groups, parameters, MACs") \
    X(run, "Run a network on a float32 .npy input and write the output .npy")          \
    X(generate, "Generate specialized C++ and compiled layer kernels for a network")  \
    X(bench, "Benchmark generated code against the reference implementation")         \
    X(tune, "Autotune a network's layer schedules on this machine into a database")    \
    X(targets, "List the target presets and the one this CPU resolves to")          \
    X(peak, "Measure this machine's fp32 FMA peak and memory bandwidth")

namespace cardinal::cli {

#define CARDINAL_CLI_DECLARE(name, summary) int name##_command(const Args& args);
CARDINAL_CLI_COMMANDS(CARDINAL_CLI_DECLARE)
#undef CARDINAL_CLI_DECLARE

}  // namespace cardinal::cli
