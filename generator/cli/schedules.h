// Where layer schedules come from: --schedules FILE|none, or the database committed for this
// CPU. Turns that choice into the generator's schedule lookup.
#pragma once

#include <string>
#include <vector>

#include "codegen/generate.h"

namespace cardinal::cli {

// For code generated for `targets` (Halide target strings):
//   "none": the generators' built-in defaults;
//   ""    : the databases committed under schedules/ for the targets' presets
//           (schedules/<preset>.json, e.g. schedules/x86-64-zen4.json) where present, else
//           defaults (a committed file made for another target is skipped with a warning); for
//           the host's preset, schedules/<preset>.<cpu>.json (cpu = host_microarchitecture(),
//           e.g. x86-64-zen4.zen5.json) first where present, the preset's file for the rest;
//   FILE  : that schedule database; cardinal::Error if it is unreadable or corrupt, or tuned for
//           none of the targets (with several targets, the others use defaults).
// `used`, if given, receives the database files used ("" when none).
ScheduleLookup schedule_lookup(const std::string& schedules,
                               const std::vector<std::string>& targets,
                               std::string* used = nullptr);

// The folder of committed databases: $CARDINAL_SCHEDULES_DIR, else the source tree's schedules/.
std::string schedules_dir();

}  // namespace cardinal::cli
