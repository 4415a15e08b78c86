#include "schedules/tuner.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "HalideRuntime.h"
#include "codegen/generate.h"
#include "codegen/kernel_compiler.h"
#include "ir/builder.h"
#include "ir/error.h"
#include "passes/fold_batch_norm.h"
#include "schedules/jit_runner.h"
#include "schedules/reference_check.h"
#include "schedules/schedule_space.h"

namespace fs = std::filesystem;

namespace cardinal::tune {

namespace {

using Clock = std::chrono::steady_clock;

// Recorded budget classes within this factor of the current one count as the same (default
// times, hence shares, vary a little from run to run).
constexpr double kSameBudgetClass = 0.67;
// A layer whose time share is below this is not worth a batch of candidates.
constexpr double kMinLayerSeconds = 1.0;
// The search's best candidates re-timed against the default at the end of a layer: at most this
// many, each within this factor of the best search-time measurement.
constexpr size_t kFinalists = 3;
constexpr double kFinalistWithin = 1.15;
// A recorded schedule slower than the current default by more than this factor, re-timed in
// interleaved rounds, is stale (the generator's defaults improved since it was tuned, or it was
// tuned on another CPU of the same target): it is replaced by the default. The margin is above the
// run-to-run noise of those rounds, so an entry about as fast as the default is kept rather than
// flapping between runs.
constexpr double kStaleAbove = 1.05;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

uint64_t fnv1a(const std::string& s) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s)
        h = (h ^ c) * 1099511628211ull;
    return h;
}

std::string hex16(uint64_t v) {
    char b[24];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
    return b;
}

std::string read_text(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string fmt(double v, int digits) {
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", digits, v);
    return b;
}

// Milliseconds with 4 significant digits (layer times span 0.001 to 100 ms).
std::string ms_text(double ms) {
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", ms >= 100 ? 1 : ms >= 10 ? 2 : ms >= 1 ? 3 : 4, ms);
    return b;
}

std::string clock_text(double seconds) {
    const long s = std::max(0L, std::lround(seconds));
    char b[32];
    if (s >= 3600)
        std::snprintf(b, sizeof b, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    else
        std::snprintf(b, sizeof b, "%ld:%02ld", s / 60, s % 60);
    return b;
}

// --- Buffers of one layer step -------------------------------------------------------------

// 64-byte aligned floats.
struct Floats {
    float* data = nullptr;
    size_t size = 0;
    explicit Floats(size_t n) : size(n) {
        const size_t bytes = ((std::max<size_t>(n, 1) * sizeof(float)) + 63) / 64 * 64;
        data = static_cast<float*>(std::aligned_alloc(64, bytes));
        if (!data) throw std::bad_alloc();
    }
    ~Floats() { std::free(data); }
    Floats(const Floats&) = delete;
    Floats& operator=(const Floats&) = delete;
};

struct Buffer {
    std::unique_ptr<Floats> memory;
    bool weights = false;  // a weight blob (else an activation or the output)
    halide_buffer_t buffer{};
    halide_dimension_t dims[5]{};
};

// The arguments of one kernel step over private memory: activations random in [-1, 1) (seeded),
// weights the step's real packed blobs, the output last.
class Harness {
  public:
    Harness(const NetworkPlan& plan, const PlannedStep& step, uint64_t seed) {
        SeededRandom rng(seed);
        for (size_t a = 0; a < step.args.size(); ++a) {
            const KernelArg& arg = step.args[a];
            auto b = std::make_unique<Buffer>();
            int64_t span = 1;
            for (const BufferDim& d : arg.dims)
                span += (d.extent - 1) * d.stride;
            if (arg.dims.size() > 5) throw Error("a kernel argument with more than 5 dimensions");
            b->memory = std::make_unique<Floats>(size_t(span));
            b->weights = arg.kind == KernelArg::Kind::Weights;
            if (b->weights) {
                const std::vector<float>& w = plan.blobs.at(size_t(arg.index)).data;
                if (int64_t(w.size()) < span)
                    throw Error("weight blob '" + plan.blobs[size_t(arg.index)].name +
                                "' is smaller than its kernel argument");
                std::copy(w.begin(), w.begin() + span, b->memory->data);
            } else {
                for (int64_t i = 0; i < span; ++i)
                    b->memory->data[i] = rng.uniform(-1.0f, 1.0f);
            }
            for (size_t d = 0; d < arg.dims.size(); ++d) {
                b->dims[d].min = 0;
                b->dims[d].extent = int32_t(arg.dims[d].extent);
                b->dims[d].stride = int32_t(arg.dims[d].stride);
                b->dims[d].flags = 0;
            }
            b->buffer.host = reinterpret_cast<uint8_t*>(b->memory->data);
            b->buffer.type = halide_type_t(halide_type_float, 32, 1);
            b->buffer.dimensions = int32_t(arg.dims.size());
            b->buffer.dim = b->dims;
            buffers_.push_back(std::move(b));
        }
        if (buffers_.empty()) throw Error("a kernel step without arguments");
    }
    std::vector<halide_buffer_t*> args() {
        std::vector<halide_buffer_t*> a;
        for (auto& b : buffers_)
            a.push_back(&b->buffer);
        return a;
    }
    float* output() { return buffers_.back()->memory->data; }
    std::vector<const float*> hosts() const {
        std::vector<const float*> h;
        for (const auto& b : buffers_)
            h.push_back(b->memory->data);
        return h;
    }
    size_t output_size() const { return buffers_.back()->memory->size; }
    void poison_output() {
        std::fill(output(), output() + output_size(), std::numeric_limits<float>::quiet_NaN());
    }
    // Leaves the caches as a network run finds them for this kernel. Its weights (and bias) out
    // of every cache: between two uses of a layer's weights the rest of the network streams
    // through the caches. Its input activations just written, as by the previous layer: in L2
    // when they fit, else their last part, the rest in L3. Timed warm, every repeat would find
    // the weights in L2, and a 1x1 conv whose threads each read all weights (rows split) would
    // look as cheap as one giving each thread half (channel blocks split). Timed with the
    // input flushed too (as until 2026-12-03), schedules that read it contiguously from memory
    // won in the tuner and lost in the network: ResNeXt-101 64x4d's grouped 3x3 at 14x14 (0.8
    // MB of input) staged per task 0.89x of the default in the tuner, 1.18-1.39x in the network.
    void prepare_caches() {
        for (size_t i = 0; i + 1 < buffers_.size(); ++i) {  // the last buffer is the output
            const auto& b = buffers_[i];
            if (!b->weights) continue;
            const char* p = reinterpret_cast<const char*>(b->memory->data);
            const size_t bytes = b->memory->size * sizeof(float);
#if defined(__x86_64__)
            for (size_t offset = 0; offset < bytes; offset += 64)
                _mm_clflush(p + offset);
            _mm_mfence();
#else
            // No user-level flush: stream a scrub buffer larger than the caches instead.
            static std::vector<char> scrub(size_t(64) << 20);
            for (size_t offset = 0; offset < scrub.size(); offset += 64)
                scrub[offset] = char(scrub[offset] + 1);
            (void)p;
            (void)bytes;
            break;
#endif
        }
        for (size_t i = 0; i + 1 < buffers_.size(); ++i) {
            const auto& b = buffers_[i];
            if (b->weights) continue;
            // Rewrite one float per cache line (its own value): the line is then modified in
            // this core's caches, as the producing layer leaves it.
            volatile float* p = b->memory->data;
            for (size_t f = 0; f < b->memory->size; f += 64 / sizeof(float))
                p[f] = p[f];
        }
    }

  private:
    std::vector<std::unique_ptr<Buffer>> buffers_;
};

// "" when `got` matches `want` (every element within 1e-4 of the largest magnitude, NaN where
// and only where `want` has NaN), else what differs.
std::string compare_outputs(const float* got, const float* want, size_t n) {
    double scale = 0;
    for (size_t i = 0; i < n; ++i)
        if (!std::isnan(want[i])) scale = std::max(scale, double(std::fabs(want[i])));
    const double tolerance = 1e-4 * std::max(scale, 1e-3);
    size_t bad = 0, first = 0;
    double worst = 0;
    for (size_t i = 0; i < n; ++i) {
        const bool nan_got = std::isnan(got[i]), nan_want = std::isnan(want[i]);
        double d = 0;
        if (nan_got != nan_want)
            d = std::numeric_limits<double>::infinity();
        else if (!nan_got)
            d = std::fabs(double(got[i]) - double(want[i]));
        if (d > tolerance) {
            if (!bad) first = i;
            ++bad;
            worst = std::max(worst, d);
        }
    }
    if (!bad) return "";
    std::ostringstream s;
    s << bad << " of " << n << " outputs differ from the default schedule's (first at " << first
      << ": " << got[first] << " vs " << want[first] << "; largest difference " << worst << ")";
    return s.str();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Median milliseconds of calls with the caches as a network leaves them: at least min_reps and
// about `seconds` of calls.
double time_kernel(const JitKernel& k, Harness& h, double seconds, int min_reps = 5,
                   int max_reps = 200) {
    auto args = h.args();
    h.prepare_caches();
    auto t0 = Clock::now();
    if (int rc = k.call(args)) throw Error("Halide error code " + std::to_string(rc));
    const double first = std::max(seconds_since(t0), 1e-6);
    const int reps = std::clamp(int(seconds / first), min_reps, max_reps);
    std::vector<double> t;
    t.reserve(size_t(reps));
    for (int i = 0; i < reps; ++i) {
        h.prepare_caches();
        t0 = Clock::now();
        if (int rc = k.call(args)) throw Error("Halide error code " + std::to_string(rc));
        t.push_back(seconds_since(t0) * 1e3);
    }
    return median(std::move(t));
}

// --- Compiling candidates ----------------------------------------------------------------

struct CompileTask {
    KernelSpec spec;       // everything the object is compiled from
    std::string function;  // cardinal_k<hash>
    fs::path object;       // in the object cache
    std::string error;     // set when it failed
};

// Compiles the tasks whose objects are not cached yet, `jobs` child processes at a time (Halide's
// compiler is not documented thread-safe, and a process keeps an LLVM crash or a runaway
// compile away from the tuner). A failed or timed-out compile sets the task's error.
void compile_tasks(std::vector<CompileTask>& tasks, const std::string& target, int jobs,
                   double timeout_s, const fs::path& log_dir) {
    std::vector<size_t> todo;
    for (size_t i = 0; i < tasks.size(); ++i) {
        tasks[i].error.clear();
        if (!fs::exists(tasks[i].object)) todo.push_back(i);
    }
    if (todo.empty()) return;
    struct Running {
        size_t task;
        Clock::time_point start;
    };
    std::map<pid_t, Running> running;
    size_t next = 0;
    while (next < todo.size() || !running.empty()) {
        while (next < todo.size() && int(running.size()) < std::max(1, jobs)) {
            const size_t i = todo[next++];
            std::fflush(nullptr);
            const pid_t pid = ::fork();
            if (pid < 0) throw Error("cannot start a compile process");
            if (pid == 0) {
                // A compile outlives no tuner: stop when the parent goes (interrupted, killed).
                ::prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (::getppid() == 1) ::_exit(1);
                int code = 0;
                try {
                    const fs::path tmp =
                        tasks[i].object.string() + ".tmp" + std::to_string(::getpid());
                    compile_kernel_object(tasks[i].spec, target, tasks[i].function, tmp.string());
                    fs::rename(tmp, tasks[i].object);
                } catch (const std::exception& e) {
                    std::ofstream(log_dir / (std::to_string(::getpid()) + ".err")) << e.what();
                    code = 1;
                }
                std::fflush(nullptr);
                ::_exit(code);
            }
            running[pid] = {i, Clock::now()};
        }
        bool reaped = false;
        for (auto it = running.begin(); it != running.end();) {
            int status = 0;
            const pid_t pid = it->first;
            const pid_t r = ::waitpid(pid, &status, WNOHANG);
            CompileTask& task = tasks[it->second.task];
            if (r == 0) {
                if (seconds_since(it->second.start) > timeout_s) {
                    ::kill(pid, SIGKILL);
                    ::waitpid(pid, &status, 0);
                    task.error = "compiling took more than " + fmt(timeout_s, 0) + " s";
                    it = running.erase(it);
                    reaped = true;
                } else {
                    ++it;
                }
                continue;
            }
            reaped = true;
            const fs::path err = log_dir / (std::to_string(pid) + ".err");
            if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                std::string msg = fs::exists(err) ? read_text(err) : "";
                task.error = msg.empty() ? "the compile process crashed" : msg;
            }
            std::error_code ec;
            fs::remove(err, ec);
            it = running.erase(it);
        }
        if (!reaped) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

// --- Progress on stderr --------------------------------------------------------------------

class Progress {
  public:
    Progress(bool quiet, double budget, Clock::time_point start)
        : quiet_(quiet), tty_(::isatty(2)), budget_(budget), start_(start) {}

    void line(const std::string& text) {
        if (quiet_) return;
        clear();
        std::fprintf(stderr, "%s\n", text.c_str());
        std::fflush(stderr);
    }

    // The live status of the layer being tuned: rewritten in place on a terminal; on other
    // streams only when `final` (one line per layer keeps logs readable).
    void layer(int index, int count, const std::string& name, double spent, double share,
               int trials, int rejected, double default_ms, double best_ms, bool final) {
        if (quiet_ || (!tty_ && !final)) return;
        const double elapsed = seconds_since(start_);
        const int width = 20;
        const int filled =
            share > 0 ? std::clamp(int(std::lround(width * spent / share)), 0, width) : width;
        std::string bar =
            "[" + std::string(size_t(filled), '#') + std::string(size_t(width - filled), '.') + "]";
        char head[48];
        std::snprintf(head, sizeof head, "[%*d/%d] ", int(std::to_string(count).size()), index + 1,
                      count);
        std::string text = std::string(head) + shorten(name, 34) + " " + bar + " " + fmt(spent, 1) +
                           "/" + fmt(share, 1) + " s  " + std::to_string(trials) + " trials";
        if (rejected) text += " (" + std::to_string(rejected) + " rejected)";
        text += "  default " + ms_text(default_ms) + " ms  best " + ms_text(best_ms) + " ms (" +
                fmt(default_ms / best_ms, 2) + "x)  elapsed " + clock_text(elapsed) +
                ", remaining " + clock_text(std::max(0.0, budget_ - elapsed));
        if (tty_) {
            std::fprintf(stderr, "\r\033[K%s%s", text.c_str(), final ? "\n" : "");
            dirty_ = !final;
        } else {
            std::fprintf(stderr, "%s\n", text.c_str());
        }
        std::fflush(stderr);
    }

  private:
    static std::string shorten(const std::string& s, size_t n) {
        if (s.size() <= n) return s + std::string(n - s.size(), ' ');
        return s.substr(0, n - 3) + "...";
    }
    void clear() {
        if (tty_ && dirty_) std::fprintf(stderr, "\r\033[K");
        dirty_ = false;
    }

    bool quiet_, tty_;
    double budget_;
    Clock::time_point start_;
    bool dirty_ = false;
};

// --- The tuner -----------------------------------------------------------------------------

struct Layer {
    int slot = 0;
    KernelSpec base;
    const PlannedStep* step = nullptr;  // the first step using the kernel
    int steps = 0;
    std::unique_ptr<Harness> harness;
    std::vector<float> default_output;  // checked against the reference implementation
    std::unique_ptr<JitKernel> default_kernel;
    double default_ms = 0;
    const ScheduleEntry* entry = nullptr;  // recorded in the database before this run
    bool entry_usable = false;
    double entry_ms = 0;
    bool entry_stale = false;  // the recorded schedule lost to the default: replaced by it
    LayerResult result;
};

class Tuner {
  public:
    Tuner(const Graph& graph, const TuneOptions& o)
        : o_(o),
          start_(Clock::now()),
          progress_(o.quiet, o.budget_seconds, start_),
          db_(ScheduleDatabase::open_or_create(o.db_path, o.target, o.strategy)) {
        if (o_.db_path.empty()) throw Error("no schedule database file given");
        if (!(o_.budget_seconds > 0)) throw Error("the tuning budget must be positive");
        if (o_.strategy != kStrategySearch && o_.strategy != kStrategyAdams2019)
            throw Error("unknown strategy '" + o_.strategy + "' (search or adams2019)");
        if (o_.thread_knobs && (o_.threads < 1 || o_.strategy != kStrategySearch))
            throw Error(
                "knobs for one thread count need a thread count (--threads N) and the "
                "search strategy");
        jobs_ = o_.jobs > 0 ? o_.jobs : int(std::max(1u, std::thread::hardware_concurrency()));
        threads_ =
            o_.threads > 0 ? o_.threads : int(std::max(1u, std::thread::hardware_concurrency()));
        cache_ = fs::path(o_.cache_dir.empty() ? default_cache_dir() : o_.cache_dir) / "objects";
        fs::create_directories(cache_);
        log_dir_ = cache_.parent_path() / ("tune-logs-" + std::to_string(::getpid()));
        fs::create_directories(log_dir_);

        GenerateOptions go;
        go.targets = {o_.target};
        go.quiet = true;
        sources_ = generate_sources(graph, go);
        folded_graph_ = fold_batch_norm(graph);
        model_ = graph.name;
    }

    ~Tuner() {
        std::error_code ec;
        fs::remove_all(log_dir_, ec);
    }

    TuneResult run() {
        const NetworkPlan& plan = sources_.plan;
        for (size_t s = 0; s < plan.kernels.size(); ++s) {
            Layer l;
            l.slot = int(s);
            l.base = plan.kernels[s];
            layers_.push_back(std::move(l));
        }
        for (const PlannedStep& st : plan.steps) {
            if (st.kind != StepKind::Kernel) continue;
            Layer& l = layers_[size_t(st.kernel_slot)];
            if (!l.step) l.step = &st;
            ++l.steps;
        }
        progress_.line("cardinal tune: " + model_ + ", " + std::to_string(layers_.size()) +
                       " unique layer kernels, target " + o_.target + ", strategy " + o_.strategy +
                       ", budget " + fmt(o_.budget_seconds, 0) + " s, " + std::to_string(jobs_) +
                       " compile job(s)");
        if (o_.strategy == kStrategyAdams2019) ensure_adams2019_loaded();

        // The JIT and its Halide runtime.
        const fs::path runtime =
            cache_ /
            ("jit_runtime_" + hex16(fnv1a(o_.target + "|halide " + halide_version())) + ".o");
        if (!fs::exists(runtime)) {
            const fs::path tmp = runtime.string() + ".tmp" + std::to_string(::getpid());
            compile_runtime_object(o_.target, tmp.string());
            fs::rename(tmp, runtime);
        }
        session_ = std::make_unique<JitSession>(runtime.string());
        session_->set_num_threads(o_.threads);

        measure_defaults();
        if (o_.strategy == kStrategyAdams2019)
            autoschedule_all();
        else
            search_all();
        return finish();
    }

  private:
    // Compiles (through the cache) the spec `base` + `knobs`, with the test hook applied to
    // non-default candidates.
    CompileTask task_for(const KernelSpec& base, const Knobs& knobs, bool hook) const {
        CompileTask t;
        t.spec = base;
        for (const auto& [k, v] : knobs)
            t.spec.params[k] = v;
        if (hook && o_.candidate_hook) o_.candidate_hook(t.spec);
        t.function = kernel_function_name(t.spec, o_.target);
        // Named like generate's cached objects: the function name depends on the spec and
        // target alone, the machine code also on the generators' sources.
        t.object = cache_ / (t.function.substr(std::string("cardinal_k").size()) + "-" +
                             generator_sources_digest() + ".o");
        return t;
    }

    void compile(std::vector<CompileTask>& tasks) {
        // Adams2019's beam search takes minutes on a large layer.
        const double timeout = o_.compile_timeout_s > 0            ? o_.compile_timeout_s
                               : o_.strategy == kStrategyAdams2019 ? 3600
                                                                   : 300;
        compile_tasks(tasks, o_.target, jobs_, timeout, log_dir_);
    }

    void log(const std::string& line) {
        log_.push_back(line);
        progress_.line("  " + line);
    }

    // Phase 1: every layer's default schedule (and what the database recorded for it).
    void measure_defaults() {
        std::vector<CompileTask> tasks;
        std::vector<std::pair<size_t, bool>> owner;  // layer, is the recorded schedule
        for (size_t i = 0; i < layers_.size(); ++i) {
            Layer& l = layers_[i];
            tasks.push_back(task_for(l.base, {}, false));
            owner.push_back({i, false});
            l.entry = db_.find(l.base);
            if (l.entry) {
                tasks.push_back(task_for(l.base, l.entry->generator_params(), false));
                owner.push_back({i, true});
            }
        }
        progress_.line("measuring the default schedules of " + std::to_string(layers_.size()) +
                       " layer kernels (compiling " + std::to_string(count_uncached(tasks)) +
                       ")...");
        compile(tasks);
        for (size_t t = 0; t < tasks.size(); ++t) {
            if (owner[t].second || tasks[t].error.empty()) continue;
            throw Error("the default schedule of " + tasks[t].spec.str() +
                        " does not compile: " + tasks[t].error);
        }
        for (size_t t = 0; t < tasks.size(); ++t) {
            Layer& l = layers_[owner[t].first];
            if (!owner[t].second) {
                l.harness = std::make_unique<Harness>(sources_.plan, *l.step,
                                                      fnv1a(l.base.str()) ^ o_.seed);
                l.default_kernel = session_->load(tasks[t].object.string(), tasks[t].function);
                l.harness->poison_output();
                auto args = l.harness->args();
                if (int rc = l.default_kernel->call(args))
                    throw Error("the default schedule of " + l.base.str() +
                                " failed with Halide error code " + std::to_string(rc));
                l.default_output.assign(l.harness->output(),
                                        l.harness->output() + l.harness->output_size());
                check_default_against_reference(l);
                l.default_ms = time_kernel(*l.default_kernel, *l.harness, 0.1);
                l.result.base = l.base;
                l.result.layers = l.step->layers;
                l.result.description = l.step->description;
                l.result.steps = l.steps;
                l.result.default_ms = l.result.tuned_ms = l.default_ms;
                l.result.status = "default";
            } else {
                // The recorded schedule is checked and re-timed like any candidate.
                const std::string what = "recorded schedule " +
                                         knobs_str(l.entry->generator_params()) + " of " +
                                         l.step->layers;
                if (!tasks[t].error.empty()) {
                    log(what + " does not compile any more: " + first_line(tasks[t].error));
                    continue;
                }
                std::string why;
                const double ms = measure_candidate(l, tasks[t], 0.1, why);
                if (ms <= 0) {
                    log(what + " is ignored: " + why);
                    continue;
                }
                l.entry_usable = true;
                l.entry_ms = ms;
            }
        }
        // Timed at one thread count for that count's knobs, a recorded entry (measured at all
        // cores) is not judged stale.
        if (o_.strategy == kStrategySearch && !o_.thread_knobs)
            for (size_t t = 0; t < tasks.size(); ++t)
                if (owner[t].second) replace_if_stale(layers_[owner[t].first], tasks[t]);
        for (Layer& l : layers_)
            if (l.entry_usable) {
                l.result.tuned_ms = std::min(l.default_ms, l.entry_ms);
                l.result.knobs = l.entry->generator_params();
                l.result.status = l.entry_stale ? "stale: default" : "recorded";
            }
        int matching = 0;
        for (const Layer& l : layers_)
            matching += l.result.reference_check == "matches";
        progress_.line("defaults measured in " + fmt(seconds_since(start_), 1) + " s; " +
                       std::to_string(matching) + " of " + std::to_string(layers_.size()) +
                       " match the reference implementation");
    }

    int count_uncached(const std::vector<CompileTask>& tasks) const {
        int n = 0;
        for (const CompileTask& t : tasks)
            n += !fs::exists(t.object);
        return n;
    }

    // The gist of a compile error: without the spec and target it repeats (the log line names
    // the layer and knobs already), on one line, at most 300 characters.
    std::string first_line(const std::string& s) const {
        std::string l = s;
        const std::string marker = " for " + o_.target + ": ";
        if (const size_t at = l.find(marker); at != std::string::npos)
            l = l.substr(at + marker.size());
        else if (l.rfind("invalid schedule for ", 0) == 0)
            if (const size_t end = l.find("): "); end != std::string::npos)
                l = "invalid schedule: " + l.substr(end + 3);
        for (char& c : l)
            if (c == '\n') c = ' ';
        return l.size() > 300 ? l.substr(0, 300) + "..." : l;
    }

    // The default schedule's output is the oracle every candidate of the layer is compared with;
    // here it is itself compared with the reference implementation run on the same inputs. A
    // mismatch is a bug in cardinal, not a bad candidate: tuning stops.
    void check_default_against_reference(Layer& l) {
        const ReferenceCheck c =
            check_step_against_reference(folded_graph_, sources_.plan, *l.step, l.harness->hosts());
        if (!c.checked) {
            l.result.reference_check = "not checked: " + c.detail;
            log("the default schedule of " + l.step->layers +
                " is not checked against the reference: " + c.detail);
            return;
        }
        if (!c.difference.empty())
            throw Error("the default schedule of " + l.step->layers + " (" + l.base.str() +
                        ") computes a wrong result: " + c.difference);
        l.result.reference_check = "matches";
    }

    // Loads, checks and times a compiled candidate: its median ms, or 0 with `why` set.
    double measure_candidate(Layer& l, const CompileTask& task, double seconds, std::string& why) {
        try {
            auto kernel = session_->load(task.object.string(), task.function);
            l.harness->poison_output();
            auto args = l.harness->args();
            if (int rc = kernel->call(args)) {
                why = "Halide error code " + std::to_string(rc);
                return 0;
            }
            why = compare_outputs(l.harness->output(), l.default_output.data(),
                                  l.default_output.size());
            if (!why.empty()) return 0;
            return time_kernel(*kernel, *l.harness, seconds);
        } catch (const Error& e) {
            why = e.what();
            return 0;
        }
    }

    // Times the default and `best` alternately: fair under a drifting machine load.
    // The default and each candidate re-timed in interleaved rounds (drift on a busy machine
    // hits them alike): the default's median, then each candidate's, in the order given.
    std::pair<double, std::vector<double>> confirm(Layer& l,
                                                   const std::vector<const CompileTask*>& tasks) {
        std::vector<std::unique_ptr<JitKernel>> kernels;
        for (const CompileTask* t : tasks)
            kernels.push_back(session_->load(t->object.string(), t->function));
        std::vector<double> d;
        std::vector<std::vector<double>> c(tasks.size());
        for (int round = 0; round < 3; ++round) {
            d.push_back(time_kernel(*l.default_kernel, *l.harness, 0.1));
            for (size_t i = 0; i < kernels.size(); ++i)
                c[i].push_back(time_kernel(*kernels[i], *l.harness, 0.1));
        }
        std::vector<double> medians;
        for (const auto& times : c)
            medians.push_back(median(times));
        return {median(d), medians};
    }
    std::pair<double, double> confirm(Layer& l, const CompileTask& best) {
        const auto [d, b] = confirm(l, std::vector<const CompileTask*>{&best});
        return {d, b[0]};
    }

    // A recorded schedule that the current default beats is replaced by the default in the
    // database (its best candidates stay, as seeds of a later refinement). Without this a
    // rerun would keep it as "already tuned": defaults that improve after a database was
    // tuned, or a database tuned on an Intel Xeon run on an AMD Zen 4, left ResNeXt-50's 7x7
    // layers 1.1-1.7x slower than `--schedules none`.
    //
    // Not for depthwise convs: their time is reading their input, which time_kernel used to
    // flush from the caches while in the network the previous layer has just written it. The
    // two disagreed: Xception's 728-channel depthwise entry at 19x19 timed 1.33x slower than
    // the default here and 1.12-1.37x faster in the network (`cardinal bench --layers`). The
    // input is now left as just written (Harness::prepare_caches); not rechecked since.
    void replace_if_stale(Layer& l, const CompileTask& recorded) {
        if (!l.entry_usable || l.entry->knobs.empty()) return;
        if (l.base.generator == "cardinal_depthwise_conv2d") return;
        if (l.entry_ms <= kStaleAbove * l.default_ms) return;  // one measurement: a pre-filter
        // Two independent sets of interleaved rounds must agree: on a shared machine a burst of
        // load can slow one round of a set, and a rerun then dropped a good entry (seen with
        // ResNeXt-50's 512->1024 1x1 at 14x14: 1.06x faster than the default in one run, "stale"
        // at 1.065x slower in the next).
        double d = 0, r = 0;
        std::string times;
        for (int set = 0; set < 2; ++set) {
            std::tie(d, r) = confirm(l, recorded);
            if (r <= kStaleAbove * d) return;
            times += (set ? ", then " : "") + fmt(r, 3) + " ms against the default's " + fmt(d, 3);
        }
        log("recorded schedule " + knobs_str(l.entry->knobs) + " of " + l.step->layers +
            " is stale: " + times + " ms; the default replaces it");
        ScheduleEntry e = new_entry(l);
        e.knobs.clear();
        e.time_ms = e.default_ms = d;
        db_.put(e);
        save();
        l.entry_ms = l.default_ms;
        l.entry_stale = true;
    }

    // The entry to record for `l`: a copy of its recorded one (its knobs for single thread
    // counts stay with it), else a new one.
    ScheduleEntry new_entry(const Layer& l) const {
        ScheduleEntry e;
        if (l.entry) e = *l.entry;
        e.layer = l.base.str();
        e.generator = l.base.generator;
        e.target = o_.target;
        e.cpu = cpu_model();
        e.halide_version = halide_version();
        e.cardinal_version = kGeneratorVersion;
        e.date = utc_now_iso8601();
        return e;
    }

    void save() { db_.save(o_.db_path); }

    // --- strategy "search" -------------------------------------------------------------------

    void search_all() {
        // Weight of a layer: its share of the network's default time.
        std::vector<size_t> order(layers_.size());
        for (size_t i = 0; i < order.size(); ++i)
            order[i] = i;
        auto weight = [&](size_t i) { return layers_[i].steps * layers_[i].default_ms; };
        std::stable_sort(order.begin(), order.end(),
                         [&](size_t a, size_t b) { return weight(a) > weight(b); });
        double total_weight = 0;
        for (size_t i : order)
            total_weight += weight(i);
        const double remaining = std::max(0.0, o_.budget_seconds - seconds_since(start_));
        // A layer's budget class is its share of the whole budget: what it is recorded as
        // tuned with, independent of how long this run's default measurements took. What it
        // gets now is its share of the remaining time; time a layer leaves unused (space
        // exhausted, already tuned) goes to the layers after it, by weight, and time it overran
        // (its last batch) is taken back from them the same way.
        std::vector<double> share(layers_.size()), budget_class(layers_.size());
        for (size_t i : order) {
            share[i] = total_weight > 0 ? remaining * weight(i) / total_weight : 0;
            budget_class[i] = total_weight > 0 ? o_.budget_seconds * weight(i) / total_weight : 0;
        }
        double pool = 0, weight_left = total_weight;
        for (size_t n = 0; n < order.size(); ++n) {
            const size_t i = order[n];
            Layer& l = layers_[i];
            const double extra = weight_left > 0 ? pool * weight(i) / weight_left : 0;
            pool -= extra;
            weight_left -= weight(i);
            const double deadline_left = o_.budget_seconds - seconds_since(start_);
            const double budget =
                std::max(0.0, std::min(share[i] + extra, std::max(0.0, deadline_left)));
            const double used = search_layer(int(n), l, budget_class[i], budget);
            pool += budget - used;
        }
    }

    // Tunes one layer for up to `budget` seconds; returns the seconds used. A layer recorded
    // with at least about the same budget class is kept; one recorded with a smaller class is
    // refined for the part of `budget` its recorded class does not cover.
    double search_layer(int index, Layer& l, double budget_class, double budget) {
        const auto t0 = Clock::now();
        const ScheduleSpace space(l.base, o_.target, threads_);
        const std::string name = l.step->layers;
        if (space.empty()) {
            l.result.status = "no knobs";
            return 0;
        }
        if (o_.thread_knobs && !l.entry_usable) {
            // The knobs for a thread count are the exception to an entry's: tune at all cores
            // first.
            l.result.status = "no usable entry";
            return 0;
        }
        if (!o_.thread_knobs && l.entry_usable &&
            l.entry->budget_s >= kSameBudgetClass * budget_class) {
            l.result.status = l.entry_stale ? "stale: default kept" : "already tuned";
            progress_.line("[" + std::to_string(index + 1) + "/" + std::to_string(layers_.size()) +
                           "] " + name + ": already tuned with a " + fmt(l.entry->budget_s, 1) +
                           " s budget (this run's share " + fmt(budget_class, 1) + " s): kept");
            return 0;
        }
        const double need = l.entry_usable && !o_.thread_knobs
                                ? budget * (1 - l.entry->budget_s / budget_class)
                                : budget;
        if (need < kMinLayerSeconds) {
            if (!l.entry_usable) l.result.status = "share too small";
            return 0;
        }
        budget = need;
        // What this layer is recorded as tuned with: its class, or more if time other layers
        // left unused came its way. A small layer's class moves with the measured default times
        // (its share of the network), and recording only the class let a same-budget rerun
        // search it again when its share came out higher.
        const double granted = (l.entry_usable ? l.entry->budget_s : 0) + budget;

        SeededRandom rng(hash_string(l.base.str(), o_.seed));
        std::set<std::string> tried;
        // Measured candidates, fastest first: (knobs, ms). The default is the empty set.
        std::vector<std::pair<Knobs, double>> results{{Knobs{}, l.default_ms}};
        tried.insert(knobs_str({}));
        tried.insert(knobs_str(space.canonical(space.resolve({}))));
        // Refining: the recorded schedule (checked and timed this run) is a result; the other
        // best candidates recorded are measured again first.
        std::vector<Knobs> seeds;
        if (l.entry_usable) {
            if (tried.insert(knobs_str(l.entry->knobs)).second)
                results.push_back({l.entry->knobs, l.entry_ms});
            for (auto it = l.entry->top.rbegin(); it != l.entry->top.rend(); ++it)
                seeds.push_back(it->first);
            if (o_.thread_knobs)
                if (auto own = l.entry->by_threads.find(threads_); own != l.entry->by_threads.end())
                    seeds.push_back(own->second.knobs);  // measured first
        }
        // What a winner must beat: the default, or for one thread count's knobs the entry's
        // own (which the network runs at every other count).
        const Knobs reference = o_.thread_knobs ? l.entry->knobs : Knobs{};
        auto by_time = [](const auto& a, const auto& b) { return a.second < b.second; };
        std::stable_sort(results.begin(), results.end(), by_time);

        const int batch = std::max(2, jobs_) * 2;
        const int random_first = l.entry_usable ? 2 : std::max(8, 2 * batch);
        int sampled = 0, trials = 0, rejected = 0, failed = 0;
        double batch_cost = 0;
        bool exhausted = false;
        auto best_ms = [&]() { return results.front().second; };
        while (!exhausted) {
            const double spent = seconds_since(t0);
            if (spent + 0.5 * batch_cost > budget) break;
            if (seconds_since(start_) + 0.5 * batch_cost > o_.budget_seconds) break;
            // Propose a batch: random samples first, then mostly mutations of the best.
            std::vector<Knobs> proposals;
            for (int p = 0; p < batch; ++p) {
                Knobs k;
                while (k.empty() && !seeds.empty()) {
                    if (tried.insert(knobs_str(seeds.back())).second) k = seeds.back();
                    seeds.pop_back();
                }
                for (int attempt = 0; attempt < 64 && k.empty(); ++attempt) {
                    const bool explore = sampled < random_first || rng.next_u64() % 4 == 0;
                    Knobs c;
                    if (explore) {
                        c = space.random(rng);
                    } else {
                        // Tournament among the three best.
                        const size_t top = std::min<size_t>(3, results.size());
                        const size_t a = rng.next_u64() % top, b = rng.next_u64() % top;
                        c = space.mutate(results[std::min(a, b)].first, rng);
                    }
                    if (!c.empty() && tried.insert(knobs_str(c)).second) k = c;
                }
                if (k.empty()) continue;
                ++sampled;
                proposals.push_back(k);
            }
            if (proposals.empty()) {
                exhausted = true;
                break;
            }
            const auto b0 = Clock::now();
            std::vector<CompileTask> tasks;
            for (const Knobs& k : proposals)
                tasks.push_back(task_for(l.base, k, true));
            compile(tasks);
            for (size_t p = 0; p < tasks.size(); ++p) {
                ++trials;
                if (!tasks[p].error.empty()) {
                    ++failed;
                    log("rejected " + knobs_str(proposals[p]) + " for " + name +
                        ": does not compile: " + first_line(tasks[p].error));
                    continue;
                }
                std::string why;
                const double ms = measure_candidate(l, tasks[p], 0.05, why);
                if (ms <= 0) {
                    ++rejected;
                    log("rejected " + knobs_str(proposals[p]) + " for " + name + ": " + why);
                    continue;
                }
                results.push_back({proposals[p], ms});
                std::stable_sort(results.begin(), results.end(), by_time);
                progress_.layer(index, int(layers_.size()), name, seconds_since(t0), budget, trials,
                                rejected + failed, l.default_ms, best_ms(), false);
            }
            batch_cost = seconds_since(b0);
        }

        // The best few, re-timed against the default; the fastest is kept only if faster than
        // the default. A single search-time measurement on a busy machine can be lucky, so the
        // first-ranked alone would favour whichever candidate the noise flattered most.
        // For one thread count's knobs the reference (the entry's knobs) is re-timed first,
        // and the default is a finalist like any other.
        std::optional<Knobs> winner;
        double default_ms = l.default_ms;
        double reference_ms = reference.empty() ? l.default_ms : l.entry_ms;
        double winner_ms = reference_ms;
        std::vector<Knobs> finalist_knobs;
        std::vector<CompileTask> finalists;
        if (!reference.empty()) {
            finalist_knobs.push_back(reference);
            finalists.push_back(task_for(l.base, reference, false));
        }
        for (const auto& [k, ms] : results) {
            if (finalists.size() == kFinalists + (reference.empty() ? 0 : 1)) break;
            if (k == reference || ms >= kFinalistWithin * results.front().second) continue;
            finalist_knobs.push_back(k);
            finalists.push_back(task_for(l.base, k, true));
        }
        compile(finalists);
        std::vector<const CompileTask*> compiled;
        std::vector<const Knobs*> compiled_knobs;
        for (size_t i = 0; i < finalists.size(); ++i)
            if (finalists[i].error.empty()) {
                compiled.push_back(&finalists[i]);
                compiled_knobs.push_back(&finalist_knobs[i]);
            }
        if (!compiled.empty() && (reference.empty() || compiled_knobs[0] == &finalist_knobs[0])) {
            const auto [d, times] = confirm(l, compiled);
            default_ms = d;
            const size_t first = reference.empty() ? 0 : 1;
            reference_ms = winner_ms = reference.empty() ? d : times[0];
            if (!reference.empty() && d < 0.99 * reference_ms) {
                winner = Knobs{};  // the default, faster than the entry's knobs at this count
                winner_ms = d;
            }
            for (size_t i = first; i < compiled.size(); ++i)
                if (times[i] < 0.99 * reference_ms && times[i] < winner_ms) {
                    winner = *compiled_knobs[i];
                    winner_ms = times[i];
                }
        }
        const double used = seconds_since(t0);
        progress_.layer(index, int(layers_.size()), name, used, budget, trials, rejected + failed,
                        reference_ms, winner_ms, true);
        l.result.trials = trials;
        l.result.rejected = rejected;
        l.result.failed = failed;
        if (o_.thread_knobs) {
            record_thread_knobs(l, winner, winner_ms, reference_ms);
            if (exhausted) l.result.status += " (space exhausted)";
            return used;
        }

        ScheduleEntry e = new_entry(l);
        e.knobs = winner.value_or(Knobs{});
        e.autoscheduler.clear();
        e.machine_params.clear();
        e.time_ms = winner_ms;
        e.default_ms = default_ms;
        e.trials += trials;
        e.rejected += rejected;
        e.budget_s = std::max({e.budget_s, budget_class, granted});
        e.seconds += used;
        e.top.clear();
        for (const auto& [k, ms] : results) {
            if (k.empty()) continue;
            e.top.push_back({k, ms});
            if (e.top.size() == 5) break;
        }
        db_.put(e);
        save();

        l.result.default_ms = default_ms;
        l.result.tuned_ms = winner_ms;
        l.result.knobs = e.knobs;
        l.result.status = e.knobs.empty() ? "default best" : "tuned";
        if (exhausted) l.result.status += " (space exhausted)";
        return used;
    }

    // Records (or, with no winner, removes) the entry's knobs for this run's thread count;
    // the entry itself is left as it was.
    void record_thread_knobs(Layer& l, const std::optional<Knobs>& winner, double winner_ms,
                             double reference_ms) {
        ScheduleEntry e = *l.entry;
        if (winner)
            e.by_threads[threads_] = {*winner, winner_ms, reference_ms,
                                      "cardinal tune --threads " + std::to_string(threads_) +
                                          " --thread-knobs (layer alone, JIT)",
                                      utc_now_iso8601()};
        else
            e.by_threads.erase(threads_);
        db_.put(e);
        save();
        // The table's columns: the entry's knobs at this count, then the recorded ones.
        l.result.default_ms = reference_ms;
        l.result.tuned_ms = winner ? winner_ms : reference_ms;
        l.result.knobs = winner.value_or(l.entry->knobs);
        l.result.status =
            winner ? "knobs for " + std::to_string(threads_) + " thread(s)" : "entry's knobs best";
    }

    // --- strategy "adams2019" ----------------------------------------------------------------

    void autoschedule_all() {
        const std::string machine_params = adams2019_machine_params(o_.threads);
        const Knobs knobs{{"auto_schedule", "true"}, {"machine_params", machine_params}};
        std::vector<CompileTask> tasks;
        std::vector<size_t> owner;
        for (size_t i = 0; i < layers_.size(); ++i) {
            Layer& l = layers_[i];
            if (l.entry_usable) {
                l.result.status = "already scheduled";
                continue;
            }
            tasks.push_back(task_for(l.base, knobs, true));
            owner.push_back(i);
        }
        progress_.line("scheduling " + std::to_string(tasks.size()) +
                       " layer kernels with Adams2019 (machine_params " + machine_params +
                       ", compiling " + std::to_string(count_uncached(tasks)) + ")...");
        compile(tasks);
        for (size_t t = 0; t < tasks.size(); ++t) {
            Layer& l = layers_[owner[t]];
            const std::string name = l.step->layers;
            ++l.result.trials;
            if (!tasks[t].error.empty()) {
                ++l.result.failed;
                l.result.status = "Adams2019 failed";
                log("Adams2019 schedule of " + name +
                    " does not compile: " + first_line(tasks[t].error));
                continue;
            }
            std::string why;
            const auto t0 = Clock::now();
            if (measure_candidate(l, tasks[t], 0.05, why) <= 0) {
                ++l.result.rejected;
                l.result.status = "Adams2019 rejected";
                log("rejected the Adams2019 schedule of " + name + ": " + why);
                continue;
            }
            const auto [d, b] = confirm(l, tasks[t]);
            ScheduleEntry e = new_entry(l);
            e.knobs.clear();
            e.autoscheduler = "Adams2019";
            e.machine_params = machine_params;
            e.time_ms = b;
            e.default_ms = d;
            e.trials += 1;
            e.budget_s = 0;
            e.seconds += seconds_since(t0);
            e.top.clear();
            db_.put(e);
            save();
            l.result.default_ms = d;
            l.result.tuned_ms = b;
            l.result.knobs = knobs;
            l.result.status = "Adams2019";
            progress_.line("[" + std::to_string(t + 1) + "/" + std::to_string(tasks.size()) + "] " +
                           name + ": default " + ms_text(d) + " ms, Adams2019 " + ms_text(b) +
                           " ms (" + fmt(d / b, 2) + "x)");
        }
    }

    TuneResult finish() {
        TuneResult r;
        for (Layer& l : layers_)
            r.layers.push_back(l.result);
        std::stable_sort(r.layers.begin(), r.layers.end(), [](const auto& a, const auto& b) {
            return a.steps * a.default_ms > b.steps * b.default_ms;
        });
        for (const LayerResult& l : r.layers) {
            r.network_default_ms += l.steps * l.default_ms;
            r.network_tuned_ms += l.steps * l.tuned_ms;
        }
        r.seconds = seconds_since(start_);
        r.log = log_;
        save();
        return r;
    }

    TuneOptions o_;
    Clock::time_point start_;
    Progress progress_;
    ScheduleDatabase db_;
    int jobs_ = 1;
    int threads_ = 1;  // threads the timed kernels run with
    fs::path cache_, log_dir_;
    GeneratedSources sources_;
    Graph folded_graph_;  // what the plan's steps name (BatchNorm folded), for the reference
    std::string model_;
    std::unique_ptr<JitSession> session_;
    std::vector<Layer> layers_;  // by slot; destroyed (kernels unloaded) before session_
    std::vector<std::string> log_;

  public:
    // Kernels must go before the JIT session that holds their code.
    void release() {
        layers_.clear();
        session_.reset();
    }
};

}  // namespace

TuneResult tune_network(const Graph& graph, const TuneOptions& options) {
    Tuner tuner(graph, options);
    struct Release {
        Tuner& t;
        ~Release() { t.release(); }
    } release{tuner};
    return tuner.run();
}

std::string format_tune_result(const TuneResult& r) {
    std::vector<std::vector<std::string>> rows;
    rows.push_back(
        {"layer", "kernel", "steps", "default ms", "tuned ms", "speedup", "trials", "result"});
    for (const LayerResult& l : r.layers) {
        std::string kernel = l.base.generator;
        if (kernel.rfind("cardinal_", 0) == 0) kernel = kernel.substr(9);
        std::string layers = l.layers;
        if (layers.size() > 40) layers = layers.substr(0, 37) + "...";
        rows.push_back({layers, kernel, std::to_string(l.steps), ms_text(l.default_ms),
                        ms_text(l.tuned_ms),
                        l.tuned_ms > 0 ? fmt(l.default_ms / l.tuned_ms, 2) + "x" : "-",
                        std::to_string(l.trials), l.status});
    }
    rows.push_back(
        {"network (steps x time)", "", "", ms_text(r.network_default_ms),
         ms_text(r.network_tuned_ms),
         r.network_tuned_ms > 0 ? fmt(r.network_default_ms / r.network_tuned_ms, 2) + "x" : "-", "",
         ""});
    std::vector<size_t> width(rows[0].size(), 0);
    for (const auto& row : rows)
        for (size_t c = 0; c < row.size(); ++c)
            width[c] = std::max(width[c], row[c].size());
    const std::vector<bool> right{false, false, true, true, true, true, true, false};
    std::ostringstream out;
    auto line = [&](const std::vector<std::string>& row) {
        std::string s;
        for (size_t c = 0; c < row.size(); ++c) {
            if (c) s += "  ";
            const std::string pad(width[c] - row[c].size(), ' ');
            s += right[c] ? pad + row[c] : row[c] + pad;
        }
        while (!s.empty() && s.back() == ' ')
            s.pop_back();
        out << s << "\n";
    };
    for (size_t i = 0; i < rows.size(); ++i) {
        if (i == 1 || i + 1 == rows.size()) {
            std::vector<std::string> rule;
            for (size_t w : width)
                rule.push_back(std::string(w, '-'));
            line(rule);
        }
        line(rows[i]);
    }
    return out.str();
}

}  // namespace cardinal::tune
