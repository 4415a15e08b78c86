// The schedule database: what `cardinal tune` measured on one machine, one JSON file per target
// CPU (committed under schedules/, e.g. schedules/x86-64-zen4.json for the preset and
// schedules/x86-64-zen4.zen5.json for a Zen 5's own), read by generate, run and bench through a
// ScheduleLookup.
//
// File layout (format_version 1):
//   {
//     "format": "cardinal-schedule-database", "format_version": 1,
//     "target": "<Halide target string>",         every entry is for this target
//     "strategy": "search" | "adams2019",          how the schedules were found
//     "cpu": "<model name from /proc/cpuinfo>",    where they were measured
//     "layers": {
//       "<layer signature: KernelSpec::str() of the kernel without schedule knobs>": {
//         "generator": "cardinal_conv2d", "target": "<same as above>",
//         "knobs": {"oc_block": "32", ...},        {} = the generator's defaults won
//         "autoscheduler": "Adams2019", "machine_params": "2,33554432,40",   adams2019 only
//         "time_ms": 0.81, "default_ms": 1.02,     medians, same process, same buffers
//         "trials": 57, "rejected": 1, "budget_s": 31.5, "seconds": 30.9,
//         "top": [{"knobs": {...}, "time_ms": 0.81}, ...],   best few, seeds for refinement
//         "cpu": "...", "halide_version": "14.0.0", "cardinal_version": "0.1.0",
//         "date": "2024-05-01T12:00:00Z",
//         "threads": {                             optional: knobs for one thread count
//           "1": {"knobs": {...}, "time_ms": 0.17, "base_ms": 0.18,   medians at that count:
//                 "measured": "<how>", "date": "..."}                  these knobs, "knobs" above
//         }
//       }, ...
//     }
//   }
// Loading is strict: a file that is not valid JSON, lacks a field or has one of the wrong type,
// or (when a target is expected) was made for another target, is refused with a
// cardinal::Error naming the file and the problem; nothing falls back silently.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "codegen/generate.h"
#include "schedules/schedule_space.h"

namespace cardinal::tune {

constexpr const char* kStrategySearch = "search";
constexpr const char* kStrategyAdams2019 = "adams2019";

// Knobs that beat an entry's own at one thread count (the entry's are measured at all cores). The
// generated network holds both kernels and calls this one when it runs with that many threads.
struct ThreadSchedule {
    Knobs knobs;
    double time_ms = 0;    // median at that thread count with these knobs
    double base_ms = 0;    // median at that thread count with the entry's knobs, same run
    std::string measured;  // how: the command that measured the two
    std::string date;
};

struct ScheduleEntry {
    std::string layer;  // signature: KernelSpec::str() of the base spec
    std::string generator;
    std::string target;
    Knobs knobs;                 // the winning schedule knobs ({} = defaults)
    std::string autoscheduler;   // "Adams2019" for an autoscheduled entry, else ""
    std::string machine_params;  // the autoscheduler's machine_params
    double time_ms = 0;          // median time of the recorded schedule
    double default_ms = 0;       // median time of the default schedule, measured alongside
    int trials = 0;              // candidates measured (cumulative over runs)
    int rejected = 0;            // candidates whose output differed from the default's
    // Budget class: the layer's share of the whole --budget when it was last tuned (a rerun
    // whose share is about the same keeps the entry; a larger one refines it).
    double budget_s = 0;
    double seconds = 0;                         // tuning time spent on it (cumulative)
    std::vector<std::pair<Knobs, double>> top;  // best candidates seen, fastest first
    std::string cpu, halide_version, cardinal_version, date;
    std::map<int, ThreadSchedule> by_threads;  // thread count (>= 1) -> its own knobs

    // The GeneratorParams this entry adds to the layer's spec: its knobs, or for an
    // autoscheduled entry auto_schedule=true and machine_params.
    Knobs generator_params() const;
};

class ScheduleDatabase {
  public:
    ScheduleDatabase(std::string target, std::string strategy);

    // Reads and validates `path`. expected_target non-empty: refuses a file for another target.
    static ScheduleDatabase load(const std::string& path, const std::string& expected_target = "");
    // For `tune`: loads `path` if it exists (it must be for `target` and `strategy`), else an
    // empty database.
    static ScheduleDatabase open_or_create(const std::string& path, const std::string& target,
                                           const std::string& strategy);
    // Writes atomically (temporary file + rename); entries sorted by signature.
    void save(const std::string& path) const;

    const std::string& target() const { return target_; }
    const std::string& strategy() const { return strategy_; }
    const std::string& cpu() const { return cpu_; }
    const std::map<std::string, ScheduleEntry>& entries() const { return entries_; }

    const ScheduleEntry* find(const KernelSpec& base) const;
    void put(ScheduleEntry entry);  // replaces the entry of the same layer

    // The generator params for `base` on `target`, and its knobs per thread count: nullopt when
    // the target is not this database's or the layer is not in it (the generator's defaults
    // then apply).
    std::optional<ScheduleChoice> lookup(const KernelSpec& base, const std::string& target) const;

  private:
    std::string target_, strategy_, cpu_;
    std::map<std::string, ScheduleEntry> entries_;
};

// A generator schedule lookup over databases: asks those whose target matches, in order, and
// takes the first that holds the layer (a CPU's own database before its preset's). Loads Halide's
// Adams2019 plugin when one of them holds autoscheduled entries.
ScheduleLookup make_schedule_lookup(std::vector<std::shared_ptr<const ScheduleDatabase>> dbs);

// This machine's CPU as /proc/cpuinfo names it ("model name"), or "unknown".
std::string cpu_model();
// "2024-05-01T12:00:00Z".
std::string utc_now_iso8601();
// The Halide version cardinal is built with, "14.0.0".
std::string halide_version();

// Loads Halide's Adams2019 autoscheduler plugin into this process once and makes it the default
// autoscheduler (child compile processes forked later inherit it). Throws cardinal::Error if the
// plugin cannot be loaded.
void ensure_adams2019_loaded();
// machine_params for Adams2019 on this machine: "<cores>,33554432,40".
std::string adams2019_machine_params(int threads);

}  // namespace cardinal::tune
