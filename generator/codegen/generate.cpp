#include "codegen/generate.h"

#include <sys/wait.h>
#include <unistd.h>

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

std::string default_cache_dir() {
    if (const char* d = std::getenv("CARDINAL_CACHE_DIR"); d && *d) return d;
    if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d)
        return std::string(d) + "/cardinal";
    if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/cardinal";
    return "/tmp/cardinal-cache";
}

namespace {

void check_target(const std::string& target) {
    if (!Halide::Target::validate_target_string(target))
        throw Error("'" + target + "' is not a valid Halide target string");
}

// Lowers the graph and names every kernel step's compiled function after its content key.
NetworkPlan plan_network(const Graph& graph, const GenerateOptions& options) {
    check_target(options.target);
    NetworkPlan plan = lower_graph(graph, options.lowering);
    for (PlannedStep& st : plan.steps)
        if (st.kind == StepKind::Kernel)
            st.function_name = "cardinal_k" + object_key(st.kernel, options.target);
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
    const EmitOptions eo{g.name, options.target, kGeneratorVersion};
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

    // Unique kernels and their cached objects.
    const fs::path cache = fs::path(options.cache_dir.empty() ? default_cache_dir()
                                                              : options.cache_dir) / "objects";
    fs::create_directories(cache);
    std::map<std::string, CompileJob> unique;  // key -> job
    for (PlannedStep& st : plan.steps) {
        if (st.kind != StepKind::Kernel) continue;
        (st.schedule_source == "database" ? result.database_schedules
                                          : result.default_schedules)++;
        const std::string key = st.function_name.substr(std::string("cardinal_k").size());
        if (!unique.count(key))
            unique[key] = {st.kernel, st.function_name, cache / (key + ".o")};
    }
    result.unique_kernels = int(unique.size());
    std::vector<CompileJob> work;
    for (const auto& [key, job] : unique) {
        if (fs::exists(job.object))
            ++result.cached;
        else
            work.push_back(job);
    }
    result.compiled = int(work.size());

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
        compile_in_parallel(work, options.target, jobs, tmp, options.quiet);

        const fs::path runtime_obj = cache / ("halide_runtime_" + hex16(fnv1a(options.target)) + ".o");
        if (!fs::exists(runtime_obj)) {
            const fs::path t = runtime_obj.string() + ".tmp" + std::to_string(::getpid());
            compile_runtime_object(options.target, t.string());
            fs::rename(t, runtime_obj);
        }

        // Static library: kernels + Halide runtime.
        std::string members;
        for (const auto& [key, job] : unique) {
            fs::copy_file(job.object, tmp / (job.function_name + ".o"));
            members += " " + shell_quote((tmp / (job.function_name + ".o")).string());
        }
        fs::copy_file(runtime_obj, tmp / "halide_runtime.o");
        members += " " + shell_quote((tmp / "halide_runtime.o").string());
        const fs::path lib = tmp / ("lib" + result.name + ".a");
        if (run_command("ar rcs " + shell_quote(lib.string()) + members) != 0)
            throw Error("'ar' failed to build " + lib.string());
        for (const auto& [key, job] : unique) fs::remove(tmp / (job.function_name + ".o"));
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
        EmitOptions eo{result.name, options.target, kGeneratorVersion};
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
