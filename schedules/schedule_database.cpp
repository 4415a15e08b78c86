#include "schedules/schedule_database.h"

#include <unistd.h>

#include <charconv>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "Halide.h"
#include "ir/error.h"

#ifndef CARDINAL_ADAMS2019_PLUGIN
#define CARDINAL_ADAMS2019_PLUGIN "/usr/lib/x86_64-linux-gnu/halide14/libautoschedule_adams2019.so"
#endif
#ifndef CARDINAL_HALIDE_VERSION
#define CARDINAL_HALIDE_VERSION "14"
#endif

namespace fs = std::filesystem;
using nlohmann::json;

namespace cardinal::tune {

namespace {

constexpr const char* kFormat = "cardinal-schedule-database";
constexpr int kFormatVersion = 1;

// Field access with errors that name the file and the field.
class Reader {
  public:
    explicit Reader(std::string path) : path_(std::move(path)) {}

    [[noreturn]] void fail(const std::string& what) const {
        throw Error("schedule database '" + path_ + "' is not usable: " + what);
    }
    const json& field(const json& obj, const std::string& key, const std::string& where) const {
        if (!obj.is_object()) fail(where + " is not a JSON object");
        auto it = obj.find(key);
        if (it == obj.end()) fail(where + " lacks \"" + key + "\"");
        return *it;
    }
    std::string str(const json& obj, const std::string& key, const std::string& where) const {
        const json& v = field(obj, key, where);
        if (!v.is_string()) fail(where + "." + key + " is not a string");
        return v.get<std::string>();
    }
    std::string opt_str(const json& obj, const std::string& key, const std::string& where) const {
        return obj.contains(key) ? str(obj, key, where) : std::string();
    }
    double num(const json& obj, const std::string& key, const std::string& where) const {
        const json& v = field(obj, key, where);
        if (!v.is_number()) fail(where + "." + key + " is not a number");
        return v.get<double>();
    }
    Knobs knobs(const json& v, const std::string& where) const {
        if (!v.is_object()) fail(where + " is not an object of knob values");
        Knobs k;
        for (const auto& [name, value] : v.items()) {
            if (!value.is_string()) fail(where + "." + name + " is not a string");
            k[name] = value.get<std::string>();
        }
        return k;
    }

  private:
    std::string path_;
};

// "threads": {"<count>": {"knobs": {...}, "time_ms": t, "base_ms": b, "date": d}, ...}
std::map<int, ThreadSchedule> read_thread_schedules(const Reader& r, const json& v,
                                                    const std::string& where) {
    if (!v.is_object()) r.fail(where + ".threads is not a JSON object");
    std::map<int, ThreadSchedule> by_threads;
    for (const auto& [count, j] : v.items()) {
        const std::string at = where + ".threads." + count;
        int threads = 0;
        const auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), threads);
        if (ec != std::errc() || end != count.data() + count.size() || threads < 1 ||
            threads > 4096)
            r.fail(where + ".threads has the key \"" + count + "\", not a thread count");
        ThreadSchedule t;
        t.knobs = r.knobs(r.field(j, "knobs", at), at + ".knobs");
        t.time_ms = r.num(j, "time_ms", at);
        t.base_ms = r.num(j, "base_ms", at);
        t.measured = r.opt_str(j, "measured", at);
        t.date = r.str(j, "date", at);
        if (!(t.time_ms > 0) || !(t.base_ms > 0)) r.fail(at + " has a non-positive time");
        by_threads[threads] = std::move(t);
    }
    return by_threads;
}

json knobs_json(const Knobs& k) {
    json j = json::object();
    for (const auto& [name, value] : k)
        j[name] = value;
    return j;
}

}  // namespace

Knobs ScheduleEntry::generator_params() const {
    if (!autoscheduler.empty())
        return {{"auto_schedule", "true"}, {"machine_params", machine_params}};
    return knobs;
}

ScheduleDatabase::ScheduleDatabase(std::string target, std::string strategy)
    : target_(std::move(target)), strategy_(std::move(strategy)), cpu_(cpu_model()) {}

ScheduleDatabase ScheduleDatabase::load(const std::string& path,
                                        const std::string& expected_target) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error("cannot read schedule database '" + path + "'");
    std::stringstream ss;
    ss << f.rdbuf();
    json doc;
    try {
        doc = json::parse(ss.str());
    } catch (const json::exception& e) {
        throw Error("schedule database '" + path + "' is corrupt (not valid JSON: " + e.what() +
                    ")");
    }
    const Reader r(path);
    if (!doc.is_object()) r.fail("the top level is not a JSON object");
    if (!doc.contains("format") || !doc["format"].is_string() || doc["format"] != kFormat)
        r.fail("it is not a cardinal schedule database (\"format\" is not \"" +
               std::string(kFormat) + "\")");
    const double version = r.num(doc, "format_version", "the file");
    if (version != kFormatVersion)
        r.fail("format_version " + std::to_string(int(version)) + " is not supported (this " +
               "cardinal reads version " + std::to_string(kFormatVersion) + ")");
    ScheduleDatabase db(r.str(doc, "target", "the file"), r.str(doc, "strategy", "the file"));
    db.cpu_ = r.str(doc, "cpu", "the file");
    if (db.strategy_ != kStrategySearch && db.strategy_ != kStrategyAdams2019)
        r.fail("unknown strategy '" + db.strategy_ + "'");
    if (!expected_target.empty() && db.target_ != expected_target)
        throw Error("schedule database '" + path + "' was tuned for target " + db.target_ +
                    ", not for " + expected_target +
                    "; tune this target with 'cardinal tune --target ...' or pass "
                    "--schedules none");
    const json& layers = r.field(doc, "layers", "the file");
    if (!layers.is_object()) r.fail("\"layers\" is not a JSON object");
    for (const auto& [signature, j] : layers.items()) {
        const std::string where = "layer \"" + signature + "\"";
        ScheduleEntry e;
        e.layer = signature;
        e.generator = r.str(j, "generator", where);
        if (signature.rfind(e.generator + "(", 0) != 0)
            r.fail(where + " does not belong to generator " + e.generator);
        e.target = r.str(j, "target", where);
        if (e.target != db.target_)
            r.fail(where + " is for target " + e.target + ", the file for " + db.target_);
        e.knobs = r.knobs(r.field(j, "knobs", where), where + ".knobs");
        e.autoscheduler = r.opt_str(j, "autoscheduler", where);
        e.machine_params = r.opt_str(j, "machine_params", where);
        if (!e.autoscheduler.empty() && e.autoscheduler != "Adams2019")
            r.fail(where + " names the unknown autoscheduler '" + e.autoscheduler + "'");
        if (!e.autoscheduler.empty() && e.machine_params.empty())
            r.fail(where + " is autoscheduled but lacks \"machine_params\"");
        e.time_ms = r.num(j, "time_ms", where);
        e.default_ms = r.num(j, "default_ms", where);
        e.trials = int(r.num(j, "trials", where));
        e.rejected = j.contains("rejected") ? int(r.num(j, "rejected", where)) : 0;
        e.budget_s = r.num(j, "budget_s", where);
        e.seconds = j.contains("seconds") ? r.num(j, "seconds", where) : 0;
        if (j.contains("top")) {
            const json& top = j["top"];
            if (!top.is_array()) r.fail(where + ".top is not an array");
            for (const json& t : top)
                e.top.push_back({r.knobs(r.field(t, "knobs", where + ".top[]"), where + ".top[]"),
                                 r.num(t, "time_ms", where + ".top[]")});
        }
        e.cpu = r.str(j, "cpu", where);
        e.halide_version = r.str(j, "halide_version", where);
        e.cardinal_version = r.str(j, "cardinal_version", where);
        e.date = r.str(j, "date", where);
        if (!(e.time_ms > 0) || !(e.default_ms > 0)) r.fail(where + " has a non-positive time");
        if (j.contains("threads")) e.by_threads = read_thread_schedules(r, j["threads"], where);
        if (!e.by_threads.empty() && !e.autoscheduler.empty())
            r.fail(where + " is autoscheduled and cannot have knobs per thread count");
        db.entries_[signature] = std::move(e);
    }
    if (db.strategy_ == kStrategyAdams2019) ensure_adams2019_loaded();
    return db;
}

ScheduleDatabase ScheduleDatabase::open_or_create(const std::string& path,
                                                  const std::string& target,
                                                  const std::string& strategy) {
    if (!fs::exists(path)) return ScheduleDatabase(target, strategy);
    ScheduleDatabase db = load(path, target);
    if (db.strategy_ != strategy)
        throw Error("schedule database '" + path + "' holds " + db.strategy_ +
                    " schedules; tune --strategy " + strategy + " into another file");
    return db;
}

void ScheduleDatabase::save(const std::string& path) const {
    json doc = {{"format", kFormat}, {"format_version", kFormatVersion},
                {"target", target_}, {"strategy", strategy_},
                {"cpu", cpu_},       {"layers", json::object()}};
    for (const auto& [signature, e] : entries_) {
        json j = {{"generator", e.generator},
                  {"target", e.target},
                  {"knobs", knobs_json(e.knobs)},
                  {"time_ms", e.time_ms},
                  {"default_ms", e.default_ms},
                  {"trials", e.trials},
                  {"rejected", e.rejected},
                  {"budget_s", e.budget_s},
                  {"seconds", e.seconds},
                  {"cpu", e.cpu},
                  {"halide_version", e.halide_version},
                  {"cardinal_version", e.cardinal_version},
                  {"date", e.date}};
        if (!e.autoscheduler.empty()) {
            j["autoscheduler"] = e.autoscheduler;
            j["machine_params"] = e.machine_params;
        }
        if (!e.by_threads.empty()) {
            json threads = json::object();
            for (const auto& [count, t] : e.by_threads) {
                json jt = {{"knobs", knobs_json(t.knobs)},
                           {"time_ms", t.time_ms},
                           {"base_ms", t.base_ms},
                           {"date", t.date}};
                if (!t.measured.empty()) jt["measured"] = t.measured;
                threads[std::to_string(count)] = std::move(jt);
            }
            j["threads"] = std::move(threads);
        }
        json top = json::array();
        for (const auto& [k, ms] : e.top)
            top.push_back({{"knobs", knobs_json(k)}, {"time_ms", ms}});
        j["top"] = std::move(top);
        doc["layers"][signature] = std::move(j);
    }
    const fs::path p(path);
    if (p.has_parent_path()) fs::create_directories(p.parent_path());
    const std::string tmp = path + ".tmp" + std::to_string(::getpid());
    {
        std::ofstream f(tmp, std::ios::binary);
        f << doc.dump(2) << "\n";
        if (!f) throw Error("cannot write schedule database '" + tmp + "'");
    }
    fs::rename(tmp, p);
}

const ScheduleEntry* ScheduleDatabase::find(const KernelSpec& base) const {
    auto it = entries_.find(base.str());
    return it == entries_.end() ? nullptr : &it->second;
}

void ScheduleDatabase::put(ScheduleEntry entry) {
    std::string key = entry.layer;
    entries_[key] = std::move(entry);
}

std::optional<ScheduleChoice> ScheduleDatabase::lookup(const KernelSpec& base,
                                                       const std::string& target) const {
    if (target != target_) return std::nullopt;
    const ScheduleEntry* e = find(base);
    if (!e) return std::nullopt;
    ScheduleChoice choice(e->generator_params());
    for (const auto& [threads, t] : e->by_threads)
        choice.by_threads[threads] = t.knobs;
    return choice;
}

ScheduleLookup make_schedule_lookup(std::vector<std::shared_ptr<const ScheduleDatabase>> dbs) {
    for (const auto& db : dbs)
        if (db->strategy() == kStrategyAdams2019) ensure_adams2019_loaded();
    return [dbs = std::move(dbs)](const KernelSpec& base,
                                  const std::string& target) -> std::optional<ScheduleChoice> {
        for (const auto& db : dbs)
            if (db->target() == target)
                if (std::optional<ScheduleChoice> choice = db->lookup(base, target)) return choice;
        return std::nullopt;
    };
}

std::string cpu_model() {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("model name", 0) != 0) continue;
        const size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string v = line.substr(colon + 1);
        while (!v.empty() && v.front() == ' ')
            v.erase(v.begin());
        while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
            v.pop_back();
        if (!v.empty()) return v;
    }
    return "unknown";
}

std::string utc_now_iso8601() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string halide_version() {
    return CARDINAL_HALIDE_VERSION;
}

void ensure_adams2019_loaded() {
    static std::once_flag once;
    static std::string failure;
    std::call_once(once, [] {
        try {
            Halide::load_plugin(CARDINAL_ADAMS2019_PLUGIN);
            Halide::Pipeline::set_default_autoscheduler_name("Adams2019");
        } catch (const std::exception& e) {
            failure = e.what();
        }
    });
    if (!failure.empty())
        throw Error(std::string("cannot load Halide's Adams2019 autoscheduler (") +
                    CARDINAL_ADAMS2019_PLUGIN + "): " + failure);
}

std::string adams2019_machine_params(int threads) {
    if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
    return std::to_string(threads) + ",33554432,40";
}

}  // namespace cardinal::tune
