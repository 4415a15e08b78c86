#include "cli/schedules.h"

#include "ir/error.h"

namespace cardinal::cli {

LoweringOptions schedule_lowering_options(const std::string& schedules, const std::string&) {
    if (schedules.empty() || schedules == "none") return {};  // no database committed yet
    throw Error("schedule databases are not supported yet ('" + schedules +
                "'); use --schedules none");
}

}  // namespace cardinal::cli
