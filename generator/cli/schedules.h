// Where layer schedules come from: --schedules FILE|none, or the database committed for this
// CPU. Turns that choice into the lowering's schedule lookup.
#pragma once

#include <string>

#include "codegen/lowering.h"

namespace cardinal::cli {

// "" = the database committed under schedules/ for `target` if there is one, else defaults;
// "none" = built-in defaults; anything else: a database file (cardinal::Error if unreadable).
LoweringOptions schedule_lowering_options(const std::string& schedules, const std::string& target);

}  // namespace cardinal::cli
