#include "cli/schedules.h"

#include "ir/error.h"

namespace cardinal::cli {

ScheduleLookup schedule_lookup(const std::string& schedules) {
    if (schedules.empty() || schedules == "none") return {};  // no database committed yet
    throw Error("schedule databases are not supported yet ('" + schedules +
                "'); use --schedules none");
}

}  // namespace cardinal::cli
