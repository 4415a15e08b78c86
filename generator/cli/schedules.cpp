#include "cli/schedules.h"

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>

#include "codegen/targets.h"
#include "ir/error.h"
#include "schedules/schedule_database.h"

#ifndef CARDINAL_SCHEDULES_DIR
#define CARDINAL_SCHEDULES_DIR "schedules"
#endif

namespace cardinal::cli {

namespace fs = std::filesystem;

std::string schedules_dir() {
    if (const char* d = std::getenv("CARDINAL_SCHEDULES_DIR"); d && *d) return d;
    return CARDINAL_SCHEDULES_DIR;
}

ScheduleLookup schedule_lookup(const std::string& schedules,
                               const std::vector<std::string>& targets, std::string* used) {
    if (used) used->clear();
    if (schedules == "none") return {};
    std::vector<std::shared_ptr<const tune::ScheduleDatabase>> dbs;
    auto note = [&](const std::string& path) {
        if (used) *used += (used->empty() ? "" : ", ") + path;
    };
    if (!schedules.empty()) {
        auto db =
            std::make_shared<const tune::ScheduleDatabase>(tune::ScheduleDatabase::load(schedules));
        bool matches = false;
        for (const std::string& t : targets)
            matches |= t == db->target();
        if (!matches) {
            std::string list;
            for (const std::string& t : targets)
                list += (list.empty() ? "" : ", ") + t;
            throw Error("schedule database '" + schedules + "' was tuned for target " +
                        db->target() + ", not for " + list +
                        "; tune this target with 'cardinal tune' or pass --schedules none");
        }
        dbs.push_back(std::move(db));
        note(schedules);
    } else {
        // A database tuned on this machine's microarchitecture (schedules/<preset>.<cpu>.json)
        // comes first for the host's preset; the preset's own database answers the layers it
        // lacks.
        const std::string host = host_preset().halide;
        const std::string cpu = host_microarchitecture();
        for (const std::string& t : targets) {
            const TargetPreset* preset = preset_for(t);
            if (!preset) continue;
            std::vector<std::string> names;
            if (t == host && !cpu.empty()) names.push_back(preset->name + "." + cpu + ".json");
            names.push_back(preset->name + ".json");
            for (const std::string& name : names) {
                const fs::path path = fs::path(schedules_dir()) / name;
                if (!fs::exists(path)) continue;
                auto db = std::make_shared<const tune::ScheduleDatabase>(
                    tune::ScheduleDatabase::load(path.string()));
                if (db->target() != t) {
                    std::cerr << "cardinal: warning: ignoring " << path.string()
                              << ": it was tuned for target " << db->target() << ", not " << t
                              << "\n";
                    continue;
                }
                dbs.push_back(std::move(db));
                note(path.string());
            }
        }
        if (dbs.empty()) return {};
    }
    return tune::make_schedule_lookup(std::move(dbs));
}

}  // namespace cardinal::cli
