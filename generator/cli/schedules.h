// Where layer schedules come from: --schedules FILE|none, or the database committed for this
// CPU. Turns that choice into the generator's schedule lookup.
#pragma once

#include <string>

#include "codegen/generate.h"

namespace cardinal::cli {

// "" = the database committed under schedules/ for the target if there is one, else defaults;
// "none" = built-in defaults; anything else: a database file (cardinal::Error if unreadable).
ScheduleLookup schedule_lookup(const std::string& schedules);

}  // namespace cardinal::cli
