// Peak measurements: the CPU checks, the thread harness (pinning, warm-up, timing) and the
// memory kernels. The per-ISA FMA kernels are compiled with function target attributes in
// peak_kernels.cpp, so the project's compile flags stay baseline.
#include "peak/peak.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <memory>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "peak/peak_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace cardinal {

namespace {

// --- CPU features ------------------------------------------------------------------------------

#if defined(__x86_64__) || defined(__i386__)
struct X86Features {
    bool sse = false, avx2_fma = false, avx512f = false;
    std::string brand;

    X86Features() {
        unsigned a = 0, b = 0, c = 0, d = 0;
        unsigned l1c = 0, l1d = 0, l7b = 0;
        if (__get_cpuid(1, &a, &b, &c, &d)) {
            l1c = c;
            l1d = d;
        }
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) l7b = b;
        // The OS must save the wider registers on context switches (XCR0), not only the CPU
        // have them: XCR0 bits 1-2 are SSE and AVX (ymm) state, bits 5-7 the AVX-512 state.
        bool os_ymm = false, os_zmm = false;
        if ((l1c >> 27) & 1u) {  // OSXSAVE: xgetbv is available
            unsigned lo = 0, hi = 0;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            os_ymm = (lo & 0x6u) == 0x6u;
            os_zmm = os_ymm && (lo & 0xe0u) == 0xe0u;
        }
        const auto bit = [](unsigned v, int i) { return ((v >> i) & 1u) != 0; };
#if defined(__x86_64__)
        sse = true;  // SSE and SSE2 are part of x86-64
#else
        sse = bit(l1d, 25);
#endif
        (void)l1d;
        // AVX (ecx 28), FMA3 (ecx 12), AVX2 (leaf 7 ebx 5).
        avx2_fma = os_ymm && bit(l1c, 28) && bit(l1c, 12) && bit(l7b, 5);
        avx512f = os_zmm && bit(l7b, 16);

        if (__get_cpuid(0x80000000u, &a, &b, &c, &d) && a >= 0x80000004u) {
            char text[49] = {};
            for (unsigned leaf = 0; leaf < 3; ++leaf) {
                unsigned r[4] = {};
                __get_cpuid(0x80000002u + leaf, &r[0], &r[1], &r[2], &r[3]);
                std::memcpy(text + 16 * leaf, r, 16);
            }
            brand = text;
        }
    }
};

const X86Features& x86() {
    static const X86Features features;
    return features;
}
#endif

std::string trim(std::string s) {
    const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (!s.empty() && space(s.back()))
        s.pop_back();
    size_t i = 0;
    while (i < s.size() && space(s[i]))
        ++i;
    return s.substr(i);
}

std::string read_line(const std::string& path) {
    std::ifstream f(path);
    std::string line;
    if (f) std::getline(f, line);
    return trim(line);
}

// --- Topology ----------------------------------------------------------------------------------

// The CPUs this process may run on, one per physical core first (lowest CPU number of each core,
// in CPU order), then the remaining SMT siblings: thread i is pinned to order[i % size].
struct Topology {
    std::vector<int> order;
    int cores = 1;

    Topology() {
        std::vector<int> allowed;
#if defined(__linux__)
        cpu_set_t set;
        CPU_ZERO(&set);
        if (sched_getaffinity(0, sizeof(set), &set) == 0)
            for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
                if (CPU_ISSET(cpu, &set)) allowed.push_back(cpu);
#endif
        if (allowed.empty()) {
            // No affinity information: number the CPUs and do not pin (order stays empty).
            cores = std::max(1, int(std::thread::hardware_concurrency()));
            return;
        }
        std::vector<int> firsts, siblings;
        std::set<std::pair<std::string, std::string>> seen;  // (package, core)
        for (const int cpu : allowed) {
            const std::string dir =
                "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
            const std::string package = read_line(dir + "physical_package_id");
            const std::string core = read_line(dir + "core_id");
            // Without topology information every CPU counts as a core of its own.
            const bool known = !core.empty();
            if (!known || seen.insert({package, core}).second)
                firsts.push_back(cpu);
            else
                siblings.push_back(cpu);
        }
        cores = int(firsts.size());
        order = firsts;
        order.insert(order.end(), siblings.begin(), siblings.end());
    }
};

const Topology& topology() {
    static const Topology t;
    return t;
}

void pin_current_thread(int index) {
#if defined(__linux__)
    const std::vector<int>& order = topology().order;
    if (order.empty()) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(order[size_t(index) % order.size()], &set);
    // Best effort: a failure (e.g. a restricted container) only costs accuracy.
    (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
#else
    (void)index;
#endif
}

// --- Thread harness ----------------------------------------------------------------------------

using Clock = std::chrono::steady_clock;

// The harness's phases. Measurement is split into slices: phase kFirstSlice + k is slice k.
constexpr int kStarting = 0, kWarmup = 1, kFirstSlice = 2, kStop = 1 << 30;

// A piece of work for one thread: does one short chunk (microseconds to a few hundred) and
// returns the units (flops, bytes) it did.
using Chunk = std::function<double()>;

// Slices of at least 20 ms, at most 5: the result is the best slice, so that a few milliseconds
// lost to another process do not lower a peak, while every slice is still long compared with a
// chunk and with the clock's resolution.
int slices_for(double seconds) {
    return std::clamp(int(seconds / 0.02), 1, 5);
}

// Runs `threads` threads, each pinned (pin_current_thread) and then given its chunk function by
// make(index), so per-thread setup such as first-touching memory happens on the right core and
// is not timed. All threads run chunks through a warm-up of `warmup` seconds and a measurement of
// `seconds` in slices_for(seconds) slices; each thread times its own part of every slice, at
// chunk boundaries. Returns the best slice's total rate (the sum of the threads' rates, units per
// second). Exceptions from make() or a chunk are rethrown here after all threads have ended.
double run_timed(int threads, double warmup, double seconds,
                 const std::function<Chunk(int)>& make) {
    const int slices = slices_for(seconds);
    const size_t n = static_cast<size_t>(threads);
    std::atomic<int> phase{kStarting};
    std::atomic<int> ready{0};
    // rates[thread][slice]; a thread that slept through a slice boundary leaves it at 0.
    std::vector<std::vector<double>> rates(n, std::vector<double>(size_t(slices), 0.0));
    std::vector<double> whole_run(n, 0.0);
    std::vector<char> saw_slice(n, 0);  // not vector<bool>: threads write neighbours
    std::vector<std::exception_ptr> errors(n);
    std::atomic<bool> failed{false};

    auto body = [&](int index) {
        const size_t i = static_cast<size_t>(index);
        Chunk chunk;
        try {
            pin_current_thread(index);
            chunk = make(index);
        } catch (...) {
            errors[i] = std::current_exception();
            failed.store(true);
        }
        ready.fetch_add(1);
        if (!chunk) return;
        while (phase.load(std::memory_order_acquire) == kStarting)
            std::this_thread::yield();
        try {
            double units = 0, slice_units = 0;
            const Clock::time_point start = Clock::now();
            Clock::time_point slice_start = start;
            for (int last = kWarmup;;) {
                const int p = phase.load(std::memory_order_relaxed);
                if (p != last) {
                    const Clock::time_point now = Clock::now();
                    // The slice this thread was in just ended (possibly along with later ones
                    // it slept through: its rate then counts for the first of them only).
                    if (last >= kFirstSlice && last < kFirstSlice + slices) {
                        const double s = std::chrono::duration<double>(now - slice_start).count();
                        if (s > 0) rates[i][size_t(last - kFirstSlice)] = (units - slice_units) / s;
                        saw_slice[i] = 1;
                    }
                    slice_start = now;
                    slice_units = units;
                    if (p == kStop) {
                        const double s = std::chrono::duration<double>(now - start).count();
                        if (s > 0) whole_run[i] = units / s;
                        break;
                    }
                    last = p;
                }
                units += chunk();
            }
        } catch (...) {
            errors[i] = std::current_exception();
            failed.store(true);
        }
    };

    std::vector<std::thread> pool;
    pool.reserve(n);
    try {
        for (int i = 0; i < threads; ++i)
            pool.emplace_back(body, i);
    } catch (...) {
        phase.store(kStop, std::memory_order_release);
        for (std::thread& t : pool)
            t.join();
        throw;
    }
    while (ready.load() < threads)
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    if (!failed.load()) {
        const auto sleep = [](double s) {
            std::this_thread::sleep_for(std::chrono::duration<double>(s));
        };
        phase.store(kWarmup, std::memory_order_release);
        sleep(warmup);
        for (int k = 0; k < slices; ++k) {
            phase.store(kFirstSlice + k, std::memory_order_release);
            sleep(seconds / slices);
        }
    }
    phase.store(kStop, std::memory_order_release);
    for (std::thread& t : pool)
        t.join();
    for (const std::exception_ptr& e : errors)
        if (e) std::rethrow_exception(e);

    double best = 0;
    for (int k = 0; k < slices; ++k) {
        double total = 0;
        for (size_t i = 0; i < n; ++i)
            // A thread that never saw a slice (descheduled throughout) counts with its whole run.
            total += saw_slice[i] ? rates[i][size_t(k)] : whole_run[i];
        best = std::max(best, total);
    }
    return best;
}

double warmup_for(double seconds) {
    return std::clamp(0.25 * seconds, 0.005, 0.05);
}

int check_threads(int threads, const char* what) {
    if (threads < 0 || threads > 4096)
        throw std::invalid_argument(std::string(what) + ": threads must be from 0 to 4096, got " +
                                    std::to_string(threads));
    return threads == 0 ? physical_core_count() : threads;
}

void check_seconds(double seconds, const char* what) {
    if (!(seconds > 0) || !std::isfinite(seconds) || seconds > 3600)
        throw std::invalid_argument(std::string(what) +
                                    ": seconds must be positive and at most 3600");
}

// --- FMA peak ----------------------------------------------------------------------------------

// The multiplier and addend of the FMA chains, read through volatiles so that the compiler can
// neither specialize the kernels on them nor precompute anything. acc = acc * a + b converges
// to b / (1 - a) = 1: every value stays normal and finite, however long the loop runs.
volatile float g_fma_a = 0.5f;
volatile float g_fma_b = 0.5f;
// Where the threads' results end up, so that no accumulator is dead code.
std::atomic<double> g_sink{0.0};

// Iterations per chunk: 1024 x 16 zmm FMAs is ~8k cycles (a few microseconds).
constexpr int64_t kFmaIterations = 1024;

Chunk fma_chunk(Isa isa) {
    const float a = g_fma_a, b = g_fma_b;
    switch (isa) {
#if defined(__x86_64__) || defined(__i386__)
        case Isa::Sse:
            return [a, b]() {
                g_sink.store(peak_kernels::sse_mul_add(kFmaIterations, a, b),
                             std::memory_order_relaxed);
                return double(kFmaIterations) * peak_kernels::kSseFlopsPerIteration;
            };
        case Isa::Avx2:
            return [a, b]() {
                g_sink.store(peak_kernels::avx2_fma(kFmaIterations, a, b),
                             std::memory_order_relaxed);
                return double(kFmaIterations) * peak_kernels::kAvx2FlopsPerIteration;
            };
        case Isa::Avx512:
            return [a, b]() {
                g_sink.store(peak_kernels::avx512_fma(kFmaIterations, a, b),
                             std::memory_order_relaxed);
                return double(kFmaIterations) * peak_kernels::kAvx512FlopsPerIteration;
            };
#endif
#if defined(__aarch64__)
        case Isa::Neon:
            return [a, b]() {
                g_sink.store(peak_kernels::neon_fma(kFmaIterations, a, b),
                             std::memory_order_relaxed);
                return double(kFmaIterations) * peak_kernels::kNeonFlopsPerIteration;
            };
#endif
        default:
            break;
    }
    throw std::invalid_argument("measure_fma_peak: " + isa_name(isa) +
                                " is not supported by this build");
}

// --- Memory bandwidth --------------------------------------------------------------------------

constexpr size_t kMiB = size_t(1) << 20;
constexpr size_t kBlock = 4096;                // partition granularity (bytes)
constexpr size_t kChunkBytes = kMiB;           // bytes read per chunk and thread
constexpr size_t kMinBufferBytes = 64 * kMiB;  // smallest buffer measure_memory accepts
constexpr size_t kFloatsPerBlock = kBlock / sizeof(float);

// An anonymous mapping (page aligned, asking for transparent huge pages); never touched here.
class Mapping {
  public:
    explicit Mapping(size_t bytes) : bytes_(bytes) {
#if defined(__linux__)
        void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
#if defined(MADV_HUGEPAGE)
        (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
        data_ = static_cast<float*>(p);
#else
        data_ = static_cast<float*>(::operator new(bytes, std::align_val_t(kBlock)));
#endif
    }
    ~Mapping() {
#if defined(__linux__)
        munmap(data_, bytes_);
#else
        ::operator delete(data_, std::align_val_t(kBlock));
#endif
    }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    float* data() const {
        return data_;
    }

  private:
    float* data_ = nullptr;
    size_t bytes_ = 0;
};

// Maps `bytes` (rounded down to whole blocks), halving down to kMinBufferBytes if the system
// refuses; throws std::bad_alloc below that.
std::pair<std::unique_ptr<Mapping>, size_t> map_buffer(size_t bytes) {
    bytes = std::max(bytes, kMinBufferBytes) / kBlock * kBlock;
    for (;;) {
        try {
            return {std::make_unique<Mapping>(bytes), bytes};
        } catch (const std::bad_alloc&) {
            if (bytes / 2 < kMinBufferBytes) throw;
            bytes = bytes / 2 / kBlock * kBlock;
        }
    }
}

// Blocks [begin, end) of `blocks` that thread `index` of `threads` owns.
std::pair<size_t, size_t> share(size_t blocks, int index, int threads) {
    return {blocks * size_t(index) / size_t(threads), blocks * size_t(index + 1) / size_t(threads)};
}

// The widest memory kernels this CPU runs.
struct MemoryKernels {
    float (*read)(const float*, size_t);
    void (*copy)(float*, const float*, size_t);
    void (*triad)(float*, const float*, const float*, float, size_t);
};

MemoryKernels memory_kernels() {
#if defined(__x86_64__) || defined(__i386__)
    if (cpu_supports(Isa::Avx512))
        return {peak_kernels::avx512_read, peak_kernels::avx512_copy, peak_kernels::avx512_triad};
    if (cpu_supports(Isa::Avx2))
        return {peak_kernels::avx2_read, peak_kernels::avx2_copy, peak_kernels::avx2_triad};
#endif
    return {peak_kernels::generic_read, peak_kernels::generic_copy, peak_kernels::generic_triad};
}

// Cycles a thread's cursor through its range [begin, end) of blocks in steps of at most
// kChunkBytes; calls f(first block, block count) and returns the bytes it stepped over.
struct Cursor {
    size_t begin = 0, end = 0, at = 0;
    template <class F>
    size_t step(F&& f) {
        if (at >= end) at = begin;
        const size_t n = std::min(end - at, kChunkBytes / kBlock);
        f(at, n);
        at += n;
        return n * kBlock;
    }
};

size_t last_level_cache_bytes() {
    size_t best = 0;
    int best_level = 0;
    for (int i = 0; i < 16; ++i) {
        const std::string dir =
            "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
        const std::string level = read_line(dir + "level"), size = read_line(dir + "size");
        if (level.empty() || size.empty()) continue;
        size_t value = 0, k = 0;
        while (k < size.size() && size[k] >= '0' && size[k] <= '9')
            value = value * 10 + size_t(size[k++] - '0');
        if (k < size.size() && (size[k] == 'K' || size[k] == 'k')) value <<= 10;
        if (k < size.size() && size[k] == 'M') value <<= 20;
        if (k < size.size() && size[k] == 'G') value <<= 30;
        const int lvl = std::atoi(level.c_str());
        if (lvl > best_level || (lvl == best_level && value > best)) {
            best_level = lvl;
            best = value;
        }
    }
#if defined(_SC_LEVEL3_CACHE_SIZE)
    if (best == 0) {
        const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
        if (l3 > 0) best = size_t(l3);
    }
#endif
    return best;
}

size_t physical_memory_bytes() {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) return size_t(pages) * size_t(page);
#endif
    return 0;
}

BandwidthResult measure_memory_impl(int threads, double seconds, size_t buffer_bytes,
                                    bool copy_and_triad) {
    threads = check_threads(threads, "measure_memory");
    check_seconds(seconds, "measure_memory");
    if (buffer_bytes == 0) buffer_bytes = default_bandwidth_bytes();
    auto [mapping, bytes] = map_buffer(buffer_bytes);
    float* const data = mapping->data();
    const size_t blocks = bytes / kBlock;
    const MemoryKernels k = memory_kernels();
    const double warmup = warmup_for(seconds);

    BandwidthResult r;
    r.threads = threads;
    r.buffer_bytes = bytes;

    // Read: every thread sums its own share, which it first-touches (writes) itself: pages of an
    // untouched mapping would all read the one zero page, from cache.
    r.read_gbs = 1e-9 * run_timed(threads, warmup, seconds, [&](int index) -> Chunk {
                     const auto [begin, end] = share(blocks, index, threads);
                     float* const p = data + begin * kFloatsPerBlock;
                     // memset, fast at any optimization level: every float is 0x3e3e3e3e,
                     // about 0.19, so sums stay normal and finite.
                     std::memset(p, 0x3e, (end - begin) * kBlock);
                     return [c = Cursor{begin, end, begin}, data, k]() mutable {
                         return double(c.step([&](size_t at, size_t n) {
                             g_sink.store(k.read(data + at * kFloatsPerBlock, n * kFloatsPerBlock),
                                          std::memory_order_relaxed);
                         }));
                     };
                 });
    if (!copy_and_triad) return r;

    // Copy: the first half into the second; counted as bytes read plus bytes written.
    const size_t half = blocks / 2;
    r.copy_gbs = 1e-9 * run_timed(threads, warmup, seconds / 2, [&](int index) -> Chunk {
                     const auto [begin, end] = share(half, index, threads);
                     return [c = Cursor{begin, end, begin}, data, half, k]() mutable {
                         return 2.0 * double(c.step([&](size_t at, size_t n) {
                                    k.copy(data + (half + at) * kFloatsPerBlock,
                                           data + at * kFloatsPerBlock, n * kFloatsPerBlock);
                                }));
                     };
                 });

    // Triad: a = b + s * c over the three thirds; counted as two arrays read and one written.
    const size_t third = blocks / 3;
    r.triad_gbs =
        1e-9 * run_timed(threads, warmup, seconds / 2, [&](int index) -> Chunk {
            const auto [begin, end] = share(third, index, threads);
            return [c = Cursor{begin, end, begin}, data, third, k]() mutable {
                return 3.0 * double(c.step([&](size_t at, size_t n) {
                           float* const a = data + at * kFloatsPerBlock;
                           k.triad(a, a + third * kFloatsPerBlock, a + 2 * third * kFloatsPerBlock,
                                   0.5f, n * kFloatsPerBlock);
                       }));
            };
        });
    return r;
}

}  // namespace

// --- Public API --------------------------------------------------------------------------------

bool cpu_supports(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
    switch (isa) {
        case Isa::Sse:
            return x86().sse;
        case Isa::Avx2:
            return x86().avx2_fma;
        case Isa::Avx512:
            return x86().avx512f;
        case Isa::Neon:
            return false;
    }
    return false;
#elif defined(__aarch64__)
    return isa == Isa::Neon;  // Advanced SIMD is mandatory in AArch64
#else
    (void)isa;
    return false;
#endif
}

std::string isa_name(Isa isa) {
    switch (isa) {
        case Isa::Sse:
            return "sse";
        case Isa::Avx2:
            return "avx2";
        case Isa::Avx512:
            return "avx512";
        case Isa::Neon:
            return "neon";
    }
    return "unknown";
}

std::optional<Isa> isa_from_name(const std::string& name) {
    for (const Isa isa : {Isa::Sse, Isa::Avx2, Isa::Avx512, Isa::Neon})
        if (name == isa_name(isa)) return isa;
    return std::nullopt;
}

std::vector<Isa> build_isas() {
#if defined(__x86_64__) || defined(__i386__)
    return {Isa::Sse, Isa::Avx2, Isa::Avx512};
#elif defined(__aarch64__)
    return {Isa::Neon};
#else
    return {};
#endif
}

std::string cpu_name() {
#if defined(__x86_64__) || defined(__i386__)
    return trim(x86().brand);
#else
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line)) {
        const size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        const std::string key = trim(line.substr(0, colon));
        if (key == "model name" || key == "Model" || key == "Hardware")
            return trim(line.substr(colon + 1));
    }
    return "";
#endif
}

int logical_cpu_count() {
    const Topology& t = topology();
    return t.order.empty() ? t.cores : int(t.order.size());
}

int physical_core_count() {
    return topology().cores;
}

PeakResult measure_fma_peak(Isa isa, int threads, double seconds) {
    threads = check_threads(threads, "measure_fma_peak");
    check_seconds(seconds, "measure_fma_peak");
    if (!cpu_supports(isa))
        throw std::invalid_argument("measure_fma_peak: " + isa_name(isa) +
                                    " is not supported by this CPU");
    const double flops =
        run_timed(threads, warmup_for(seconds), seconds, [isa](int) { return fma_chunk(isa); });
    return {isa, threads, flops * 1e-9};
}

size_t default_bandwidth_bytes() {
    size_t bytes = std::max(2 * last_level_cache_bytes(), 256 * kMiB);
    bytes = std::min(bytes, 1024 * kMiB);
    const size_t physical = physical_memory_bytes();
    if (physical > 0) bytes = std::min(bytes, std::max(physical / 8, kMinBufferBytes));
    return bytes / kBlock * kBlock;
}

BandwidthResult measure_memory(int threads, double seconds, size_t buffer_bytes) {
    return measure_memory_impl(threads, seconds, buffer_bytes, /*copy_and_triad=*/true);
}

double measure_memory_bandwidth(int threads, double seconds) {
    return measure_memory_impl(threads, seconds, 0, /*copy_and_triad=*/false).read_gbs;
}

}  // namespace cardinal
