#include "codegen/generate.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "Halide.h"
#include "cardinal_generator_hash.h"
#include "cardinal_runtime_hash.h"
#include "codegen/emit_cpp.h"
#include "codegen/kernel_compiler.h"
#include "ir/error.h"
#include "cardinal_runtime.h"

#ifndef CARDINAL_RUNTIME_DIR
#error "CARDINAL_RUNTIME_DIR must point at the runtime sources"
#endif

namespace fs = std::filesystem;

namespace cardinal {

const char* const kGeneratorVersion = "0.1.0";

std::string generator_sources_digest() {
    return std::string(CARDINAL_GENERATOR_SOURCES_SHA256).substr(0, 16);
}

std::string runtime_sources_digest() {
    return std::string(CARDINAL_RUNTIME_SOURCES_SHA256).substr(0, 16);
}

namespace {

uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

std::string hex16(uint64_t v) {
    char b[24];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
    return b;
}

// Content key of a compiled object: everything that determines its machine code.
std::string object_key(const KernelSpec& spec, const std::string& target) {
    const std::string identity = spec.str() + "|" + target + "|cardinal " + kGeneratorVersion +
                                 "|halide 14";
    return hex16(fnv1a(identity));
}

std::string read_file(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream f(p, std::ios::binary);
    f << text;
    if (!f) throw Error("cannot write '" + p.string() + "'");
}

int run_command(const std::string& cmd) { return std::system(cmd.c_str()); }

std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

struct CompileJob {
    KernelSpec spec;
    std::string function_name;
    fs::path object;  // in the cache
};

// Compiles jobs in child processes, `jobs` at a time: Halide's compiler is not documented as
// thread-safe, and processes also isolate a crash in LLVM to the layer that caused it.
void compile_in_parallel(const std::vector<CompileJob>& work, const std::string& target, int jobs,
                         const fs::path& log_dir, bool quiet) {
    std::map<pid_t, size_t> running;
    size_t next = 0, done = 0;
    std::string failures;
    auto reap = [&]() {
        int status = 0;
        const pid_t pid = ::wait(&status);
        if (pid <= 0) return;
        const size_t i = running.at(pid);
        running.erase(pid);
        ++done;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            const std::string msg = read_file(log_dir / (std::to_string(i) + ".err"));
            failures += (msg.empty() ? "compiling " + work[i].spec.str() + " crashed" : msg) + "\n";
        }
        // A live counter on a terminal; one line at the end otherwise (logs stay readable).
        if (!quiet && (::isatty(2) || done == work.size()))
            std::fprintf(stderr, "\r  compiled %zu/%zu layer kernels", done, work.size());
    };
    while (next < work.size() || !running.empty()) {
        while (next < work.size() && int(running.size()) < jobs) {
            std::fflush(nullptr);
            const pid_t pid = ::fork();
            if (pid < 0) throw Error("cannot start a compile process");
            if (pid == 0) {
                const CompileJob& job = work[next];
                int code = 0;
                try {
                    const fs::path tmp = job.object.string() + ".tmp" + std::to_string(::getpid());
                    compile_kernel_object(job.spec, target, job.function_name, tmp.string());
                    fs::rename(tmp, job.object);
                } catch (const std::exception& e) {
                    std::ofstream(log_dir / (std::to_string(next) + ".err")) << e.what();
                    code = 1;
                }
                std::fflush(nullptr);
                ::_exit(code);
            }
            running[pid] = next++;
        }
        reap();
    }
    if (!quiet && !work.empty()) std::fprintf(stderr, "\n");
    if (!failures.empty()) throw Error(failures.substr(0, failures.size() - 1));
}

}  // namespace

std::string kernel_function_name(const KernelSpec& spec, const std::string& target) {
    return "cardinal_k" + object_key(spec, target);
}

std::string default_cache_dir() {
    if (const char* d = std::getenv("CARDINAL_CACHE_DIR"); d && *d) return d;
    if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d)
        return std::string(d) + "/cardinal";
    if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/cardinal";
    return "/tmp/cardinal-cache";
}

namespace {

std::string architecture_of(const std::string& target) {
    return target.substr(0, target.find('-'));
}

// Lowers the graph, then for every target gives every unique layer kernel its schedule knobs
// and names its compiled function after its content key.
NetworkPlan plan_network(const Graph& graph, const GenerateOptions& options) {
    if (options.targets.empty()) throw Error("no target given");
    for (const std::string& t : options.targets) {
        if (!Halide::Target::validate_target_string(t) || t.find(',') != std::string::npos)
            throw Error("'" + t + "' is not a valid Halide target string");
        if (architecture_of(t) != architecture_of(options.targets[0]))
            throw Error("one generated library holds one architecture; '" + t + "' and '" +
                        options.targets[0] + "' differ (generate them into separate folders)");
    }
    LoweringOptions lowering = options.lowering;
    if (!lowering.grouped_natural_lanes)
        lowering.grouped_natural_lanes =
            std::all_of(options.targets.begin(), options.targets.end(), [](const std::string& t) {
                return Halide::Target(t).has_feature(Halide::Target::AVX512);
            });
    NetworkPlan plan = lower_graph(graph, lowering);
    plan.targets = options.targets;
    std::map<KernelSpec, int> slots;
    for (PlannedStep& st : plan.steps) {
        if (st.kind != StepKind::Kernel) continue;
        auto [it, inserted] = slots.emplace(st.kernel, int(plan.kernels.size()));
        if (inserted) plan.kernels.push_back(st.kernel);
        st.kernel_slot = it->second;
    }
    for (const std::string& target : plan.targets) {
        std::vector<CompiledKernel> compiled;
        for (const KernelSpec& base : plan.kernels) {
            CompiledKernel k{base, "", "default", {}};
            std::optional<ScheduleChoice> choice;
            if (options.schedules) choice = options.schedules(base, target);
            if (choice) {
                for (const auto& [key, value] : choice->knobs)
                    k.spec.params[key] = value;
                k.schedule_source = "database";
            }
            k.function_name = "cardinal_k" + object_key(k.spec, target);
            if (choice)
                for (const auto& [threads, knobs] : choice->by_threads) {
                    ThreadKernel tk{threads, base, ""};
                    for (const auto& [key, value] : knobs)
                        tk.spec.params[key] = value;
                    if (tk.spec == k.spec) continue;  // the same kernel: nothing to switch
                    tk.function_name = "cardinal_k" + object_key(tk.spec, target);
                    k.by_threads.push_back(std::move(tk));
                }
            compiled.push_back(std::move(k));
        }
        plan.variant_kernels.push_back(std::move(compiled));
    }
    return plan;
}

std::string network_name(const Graph& graph, const GenerateOptions& options) {
    return options.name.empty() ? identifier_for(graph.name) : identifier_for(options.name);
}

}  // namespace

GeneratedSources generate_sources(const Graph& graph, const GenerateOptions& options) {
    GeneratedSources g;
    g.name = network_name(graph, options);
    g.plan = plan_network(graph, options);
    const uint64_t fingerprint = weights_fingerprint(g.plan);
    const EmitOptions eo{g.name, kGeneratorVersion};
    g.header = emit_header(g.plan, eo, fingerprint);
    g.source = emit_source(g.plan, eo, fingerprint);
    return g;
}

GenerateResult generate_network(const Graph& graph, const GenerateOptions& options) {
    const auto t0 = std::chrono::steady_clock::now();
    if (options.out_dir.empty()) throw Error("no output folder given");

    GenerateResult result;
    result.name = network_name(graph, options);
    result.plan = plan_network(graph, options);
    NetworkPlan& plan = result.plan;

    // Unique compiled kernels (per target) and their cached objects.
    const fs::path cache = fs::path(options.cache_dir.empty() ? default_cache_dir()
                                                              : options.cache_dir) / "objects";
    fs::create_directories(cache);
    for (const PlannedStep& st : plan.steps)
        if (st.kind == StepKind::Kernel)
            (plan.variant_kernels[0][st.kernel_slot].schedule_source == "database"
                 ? result.database_schedules
                 : result.default_schedules)++;
    std::vector<std::vector<CompileJob>> work(plan.targets.size());
    std::vector<CompileJob> all;
    for (size_t t = 0; t < plan.targets.size(); ++t)
        for (const CompiledKernel& k : plan.variant_kernels[t]) {
            // The function name (in the generated C++) depends on the spec and target alone;
            // the cached object also on the generators' sources, which decide its machine code.
            auto add = [&](const KernelSpec& spec, const std::string& function_name) {
                const std::string key = function_name.substr(std::string("cardinal_k").size());
                CompileJob job{spec, function_name,
                               cache / (key + "-" + generator_sources_digest() + ".o")};
                all.push_back(job);
                if (fs::exists(job.object))
                    ++result.cached;
                else
                    work[t].push_back(job);
            };
            add(k.spec, k.function_name);
            for (const ThreadKernel& tk : k.by_threads)
                add(tk.spec, tk.function_name);
        }
    result.unique_kernels = int(all.size());
    for (const auto& w : work) result.compiled += int(w.size());

    // Build everything in a temporary sibling folder, then move it into place.
    const fs::path out = fs::absolute(options.out_dir);
    const bool out_existed = fs::exists(out);
    fs::create_directories(out);
    const fs::path tmp = out / (".cardinal-tmp-" + std::to_string(::getpid()));
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    try {
        const int jobs = options.jobs > 0 ? options.jobs
                                          : int(std::max(1u, std::thread::hardware_concurrency()));
        for (size_t t = 0; t < plan.targets.size(); ++t)
            compile_in_parallel(work[t], plan.targets[t], jobs, tmp, options.quiet);

        // One Halide runtime for the whole library, built for the fallback (last) target so it
        // runs on every CPU any variant is chosen on.
        const std::string& base_target = plan.targets.back();
        const fs::path runtime_obj =
            cache / ("halide_runtime_" + hex16(fnv1a(base_target + "|halide 14")) + ".o");
        if (!fs::exists(runtime_obj)) {
            const fs::path t = runtime_obj.string() + ".tmp" + std::to_string(::getpid());
            compile_runtime_object(base_target, t.string());
            fs::rename(t, runtime_obj);
        }

        // Static library: kernels + Halide runtime.
        std::string members;
        std::set<std::string> added;
        for (const CompileJob& job : all) {
            if (!added.insert(job.function_name).second) continue;
            fs::copy_file(job.object, tmp / (job.function_name + ".o"));
            members += " " + shell_quote((tmp / (job.function_name + ".o")).string());
        }
        fs::copy_file(runtime_obj, tmp / "halide_runtime.o");
        members += " " + shell_quote((tmp / "halide_runtime.o").string());
        const fs::path lib = tmp / ("lib" + result.name + ".a");
        if (run_command("ar rcs " + shell_quote(lib.string()) + members) != 0)
            throw Error("'ar' failed to build " + lib.string());
        for (const std::string& f : added) fs::remove(tmp / (f + ".o"));
        fs::remove(tmp / "halide_runtime.o");
        for (const auto& e : fs::directory_iterator(tmp))
            if (e.path().extension() == ".err") fs::remove(e.path());
        // Weights.
        const uint64_t fingerprint = weights_fingerprint(plan);
        std::vector<std::pair<int64_t, std::vector<float>>> blobs;
        for (const WeightBlob& b : plan.blobs) blobs.push_back({b.offset, b.data});
        rt::write_weights_file((tmp / (result.name + ".weights")).string(), plan.model,
                               fingerprint, blobs, plan.weights_bytes);

        // Generated C++ and the runtime it includes.
        const EmitOptions eo{result.name, kGeneratorVersion};
        write_file(tmp / (result.name + ".h"), emit_header(plan, eo, fingerprint));
        write_file(tmp / (result.name + ".cpp"), emit_source(plan, eo, fingerprint));
        const fs::path rt_dir = CARDINAL_RUNTIME_DIR;
        for (const char* f : {"cardinal_runtime.h", "cardinal_runtime.cpp", "cardinal_network_api.h"})
            fs::copy_file(rt_dir / f, tmp / f);
        fs::copy_file(fs::path(CARDINAL_HALIDE_INCLUDE_DIR) / "HalideRuntime.h",
                      tmp / "HalideRuntime.h");

        // Move into place.
        for (const auto& e : fs::directory_iterator(tmp)) {
            const fs::path dst = out / e.path().filename();
            fs::rename(e.path(), dst);
        }
        fs::remove_all(tmp);
    } catch (...) {
        std::error_code ec;
        fs::remove_all(tmp, ec);
        if (!out_existed) fs::remove_all(out, ec);  // leave no trace of a failed generation
        throw;
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return result;
}

}  // namespace cardinal
