// The autotuner behind `cardinal tune`: searches the schedule knobs of every unique layer kernel
// of a network on this machine and records the winners in a schedule database.
//
// How a candidate is measured: its kernel is compiled in-process by Halide into a no_runtime
// object (child processes compile `jobs` candidates at a time, through the same content-addressed
// object cache `generate` uses, so tuned kernels are not compiled twice), loaded through LLVM
// ORC next to one shared Halide runtime (jit_runner.h), run once on a random input with the
// layer's real packed weights and compared with the default schedule's output on the very same
// buffers (a candidate that differs is rejected and logged), then timed: the median of
// repeats, each with the kernel's inputs and weights flushed from the caches first (as a network
// run finds them), with nothing else of the tuner running. The default schedule's output is first
// checked against the reference implementation, run on the same inputs (reference_check.h); a
// default that differs stops the tuner with an error.
//
// Search (strategy "search"): the default schedule of every layer is measured first; each layer
// then gets a share of the remaining budget proportional to its share of the network's time
// (steps using the kernel x the default's time). Within a layer: random valid samples of the
// space first, then mostly mutations of the best candidates so far (a small evolutionary
// search), until its share is spent or its space is exhausted. The best three are re-timed
// against the default, interleaved, and the fastest is kept only if it beats the default.
// Candidates depend only on --seed, the layer and what was measured. The database is saved after
// every layer; a rerun skips layers recorded with about the budget class they would get now (their
// share of the whole budget), and refines those recorded with a smaller one, starting from the best
// candidates recorded.
//
// Strategy "adams2019": every layer is scheduled by Halide's Adams2019 autoscheduler instead
// (checked and timed the same way) and recorded in its own database as an autoscheduled entry.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "codegen/kernel_compiler.h"
#include "ir/graph.h"
#include "schedules/schedule_database.h"

namespace cardinal::tune {

struct TuneOptions {
    std::string target;          // Halide target string (resolved, e.g. from a preset)
    double budget_seconds = 60;  // wall time for the whole network, defaults included
    std::string db_path;         // read (resume) and written after every layer
    uint64_t seed = 0;
    int threads = 0;                         // threads of the timed kernels (0: one per core)
    // Search knobs for `threads` threads only: each layer with an entry gets the winner as that
    // entry's knobs for this thread count (its "threads" field) when it beats the entry's own
    // knobs at this count; the entry's knobs stay. Layers without an entry are left alone.
    bool thread_knobs = false;
    int jobs = 0;                            // parallel compile processes (0: one per core)
    std::string strategy = kStrategySearch;  // or kStrategyAdams2019
    std::string cache_dir;                   // object cache; empty: default_cache_dir()
    bool quiet = false;                      // no progress on stderr
    // A candidate compiling longer is abandoned (0: 300 s; 3600 s for adams2019).
    double compile_timeout_s = 0;

    // Test hook: called on the spec compiled for every non-default candidate (after its knobs
    // were applied); may change it, e.g. to make a deliberately wrong kernel.
    std::function<void(KernelSpec&)> candidate_hook;
};

struct LayerResult {
    KernelSpec base;          // the layer kernel without schedule knobs
    std::string layers;       // the IR layers of the first step using it
    std::string description;  // that step's description
    int steps = 0;            // steps of the network using this kernel
    double default_ms = 0;    // measured this run
    double tuned_ms = 0;      // of the recorded schedule (== default_ms when it won)
    Knobs knobs;              // the recorded schedule (or generator params for adams2019)
    int trials = 0, rejected = 0, failed = 0;  // this run
    std::string status;                        // "tuned", "default best", "skipped: ...", ...
    std::string reference_check;  // of the default schedule: "matches" or "not checked: why"
};

struct TuneResult {
    std::vector<LayerResult> layers;  // by decreasing share of the network's default time
    double network_default_ms = 0;    // sum over layers of steps x default_ms
    double network_tuned_ms = 0;      // sum over layers of steps x tuned_ms
    double seconds = 0;
    std::vector<std::string> log;  // rejected and failed candidates, one line each
};

// Tunes `graph` for options.target and writes options.db_path. Throws cardinal::Error.
TuneResult tune_network(const Graph& graph, const TuneOptions& options);

// The table printed at the end of `cardinal tune`.
std::string format_tune_result(const TuneResult& result);

}  // namespace cardinal::tune
