#include "cardinal_runtime.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

// Defined by the Halide runtime linked into every generated library; weak so that tools that
// only write weights files link without it.
extern "C" __attribute__((weak)) int halide_set_num_threads(int n);
extern "C" __attribute__((weak)) halide_do_par_for_t halide_set_custom_do_par_for(
    halide_do_par_for_t do_par_for);

namespace cardinal::rt {

uint64_t checksum(const void* data, size_t bytes) {
    // FNV-1a over 64-bit words: fast enough to verify a 350 MB file in a fraction of a second,
    // and any flipped or truncated byte changes it.
    const unsigned char* p = static_cast<const unsigned char*>(data);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        h = (h ^ w) * 1099511628211ull;
    }
    return h;
}

namespace {

struct Header {
    char magic[8];
    uint32_t version;
    uint32_t header_bytes;
    uint64_t fingerprint;
    uint64_t payload_bytes;
    uint64_t payload_checksum;
    char model[64];
    char reserved[24];
};
static_assert(sizeof(Header) == kWeightsHeaderBytes);
constexpr char kMagic[8] = {'C', 'A', 'R', 'D', 'W', 'T', 'S', '1'};

std::string hex(uint64_t v) {
    char b[24];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
    return b;
}

}  // namespace

void write_weights_file(const std::string& path, const std::string& model, uint64_t fingerprint,
                        const std::vector<std::pair<int64_t, std::vector<float>>>& blobs,
                        int64_t payload_bytes) {
    std::vector<char> payload(static_cast<size_t>(payload_bytes), 0);
    for (const auto& [offset, data] : blobs) {
        if (offset < 0 || offset + int64_t(data.size() * sizeof(float)) > payload_bytes)
            throw Error("weights blob at offset " + std::to_string(offset) +
                        " does not fit the payload");
        std::memcpy(payload.data() + offset, data.data(), data.size() * sizeof(float));
    }
    Header h{};
    std::memcpy(h.magic, kMagic, 8);
    h.version = kWeightsVersion;
    h.header_bytes = kWeightsHeaderBytes;
    h.fingerprint = fingerprint;
    h.payload_bytes = static_cast<uint64_t>(payload_bytes);
    h.payload_checksum = checksum(payload.data(), payload.size());
    std::strncpy(h.model, model.c_str(), sizeof h.model - 1);

    const std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw Error("cannot write weights file '" + tmp + "': " + std::strerror(errno));
    const bool ok = std::fwrite(&h, sizeof h, 1, f) == 1 &&
                    (payload.empty() || std::fwrite(payload.data(), payload.size(), 1, f) == 1);
    if (std::fclose(f) != 0 || !ok) {
        std::remove(tmp.c_str());
        throw Error("cannot write weights file '" + path + "'");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw Error("cannot move weights file into place at '" + path + "'");
    }
}

Weights::Weights(const std::string& path, const std::string& model, uint64_t fingerprint,
                 uint64_t payload_bytes) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) throw Error("cannot open weights file '" + path + "': " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        ::close(fd);
        throw Error("cannot stat weights file '" + path + "'");
    }
    const size_t size = static_cast<size_t>(st.st_size);
    if (size < kWeightsHeaderBytes) {
        ::close(fd);
        throw Error("weights file '" + path + "' is truncated: " + std::to_string(size) +
                    " bytes, shorter than its header");
    }
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) throw Error("cannot map weights file '" + path + "'");
    map_ = map;
    map_bytes_ = size;
    Header h;
    std::memcpy(&h, map, sizeof h);
    auto fail = [&](const std::string& why) {
        ::munmap(map_, map_bytes_);
        map_ = nullptr;
        throw Error("weights file '" + path + "' " + why);
    };
    if (std::memcmp(h.magic, kMagic, 8) != 0) fail("is not a cardinal weights file");
    if (h.version != kWeightsVersion)
        fail("has format version " + std::to_string(h.version) + ", this runtime reads " +
             std::to_string(kWeightsVersion));
    char file_model[65] = {};
    std::memcpy(file_model, h.model, 64);
    if (h.fingerprint != fingerprint)
        fail("was made for another network or weight layout (model '" + std::string(file_model) +
             "', fingerprint " + hex(h.fingerprint) + "; expected model '" + model +
             "', fingerprint " + hex(fingerprint) + ")");
    if (h.payload_bytes != payload_bytes)
        fail("holds " + std::to_string(h.payload_bytes) + " bytes of weights, expected " +
             std::to_string(payload_bytes));
    if (size < kWeightsHeaderBytes + payload_bytes)
        fail("is truncated: " + std::to_string(size) + " bytes, expected " +
             std::to_string(kWeightsHeaderBytes + payload_bytes));
    payload_ = static_cast<const char*>(map) + kWeightsHeaderBytes;
    if (checksum(payload_, payload_bytes) != h.payload_checksum)
        fail("is corrupt: its checksum does not match its contents");
}

Weights::~Weights() {
    if (map_) ::munmap(map_, map_bytes_);
}

Arena::Arena(size_t bytes) {
    const size_t rounded = (bytes + 63) / 64 * 64;
    data_ = static_cast<char*>(std::aligned_alloc(64, rounded ? rounded : 64));
    if (!data_) throw Error("cannot allocate an activation arena of " + std::to_string(bytes) +
                            " bytes");
}

Arena::~Arena() { std::free(data_); }

BufferArg::BufferArg(const void* host,
                     std::initializer_list<std::pair<int64_t, int64_t>> extent_stride) {
    int d = 0;
    for (const auto& [extent, stride] : extent_stride) {
        if (d == 5) break;
        dims[d].min = 0;
        dims[d].extent = static_cast<int32_t>(extent);
        dims[d].stride = static_cast<int32_t>(stride);
        dims[d].flags = 0;
        ++d;
    }
    buffer.host = static_cast<uint8_t*>(const_cast<void*>(host));
    buffer.type = halide_type_t(halide_type_float, 32, 1);
    buffer.dimensions = d;
    buffer.dim = dims;
}

namespace {
// Runs body(i) for every i in [0, count) on the layers' thread pool (below), or serially when
// there is no pool or the work (in floats moved) is too small to pay for waking a worker.
void for_each_index(int count, int64_t floats, const std::function<void(int)>& body);
}  // namespace

// The conversions split image rows over the layers' threads: at 2 threads the network's input
// conversion (0.13 ms at 224x224, 0.26 ms at 299x299) halves, and the pool's worker is awake
// when the first layer starts instead of asleep after a serial stretch longer than its spin.
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define CARDINAL_HAS_SHUFFLEVECTOR 1
namespace {
// One image row of three planes interleaved into dense 3-channel pixels (RGB), four pixels per
// step: three loads, five two-input shuffles, three stores (SSE2 or NEON). The per-pixel loop
// gathers from three planes one float at a time and took 6x as long (224x224: 115 against 19
// us at -O2, one thread).
void interleave_3_channels(const float* s0, const float* s1, const float* s2, float* d, int w) {
    typedef float f4 __attribute__((vector_size(16)));
    auto load = [](const float* p) {
        f4 v;
        std::memcpy(&v, p, sizeof v);
        return v;
    };
    auto store = [](float* p, f4 v) { std::memcpy(p, &v, sizeof v); };
    int x = 0;
    for (; x + 4 <= w; x += 4) {
        const f4 a = load(s0 + x), b = load(s1 + x), c = load(s2 + x);
        const f4 ab_lo = __builtin_shufflevector(a, b, 0, 4, 1, 5);            // a0 b0 a1 b1
        const f4 ab_hi = __builtin_shufflevector(a, b, 2, 6, 3, 7);            // a2 b2 a3 b3
        const f4 bc = __builtin_shufflevector(ab_lo, c, 3, 5, 3, 5);           // b1 c1 b1 c1
        store(d + 3 * x, __builtin_shufflevector(ab_lo, c, 0, 1, 4, 2));       // a0 b0 c0 a1
        store(d + 3 * x + 4, __builtin_shufflevector(bc, ab_hi, 0, 1, 4, 5));  // b1 c1 a2 b2
        store(d + 3 * x + 8, __builtin_shufflevector(ab_hi, c, 6, 2, 3, 7));   // c2 a3 b3 c3
    }
    for (; x < w; ++x) {
        d[3 * x] = s0[x];
        d[3 * x + 1] = s1[x];
        d[3 * x + 2] = s2[x];
    }
}
}  // namespace
#endif

void nchw_to_nhwc(const float* src, float* dst, int n, int c, int h, int w, int channel_stride) {
    for_each_index(n * h, int64_t(n) * h * w * channel_stride, [&](int row) {
        const int b = row / h, y = row % h;
#ifdef CARDINAL_HAS_SHUFFLEVECTOR
        if (c == 3 && channel_stride == 3) {  // an RGB image: the common network input
            const int64_t plane = int64_t(h) * w;
            const float* s = src + int64_t(b) * 3 * plane + int64_t(y) * w;
            interleave_3_channels(s, s + plane, s + 2 * plane, dst + (int64_t(b) * h + y) * w * 3,
                                  w);
            return;
        }
#endif
        for (int x = 0; x < w; ++x) {
            float* px = dst + ((int64_t(b) * h + y) * w + x) * channel_stride;
            for (int ch = 0; ch < c; ++ch)
                px[ch] = src[((int64_t(b) * c + ch) * h + y) * w + x];
            for (int ch = c; ch < channel_stride; ++ch)
                px[ch] = 0.0f;
        }
    });
}

void nhwc_to_nchw(const float* src, float* dst, int n, int c, int h, int w, int channel_stride) {
    for_each_index(n * h, int64_t(n) * h * w * channel_stride, [&](int row) {
        const int b = row / h, y = row % h;
        for (int ch = 0; ch < c; ++ch)
            for (int x = 0; x < w; ++x)
                dst[((int64_t(b) * c + ch) * h + y) * w + x] =
                    src[((int64_t(b) * h + y) * w + x) * channel_stride + ch];
    });
}

void copy_channels(const float* src, int c, int src_stride, float* dst, int dst_offset,
                   int dst_stride, int64_t pixels) {
    for (int64_t p = 0; p < pixels; ++p)
        std::memcpy(dst + p * dst_stride + dst_offset, src + p * src_stride, sizeof(float) * c);
}

void zero_channels(float* dst, int from, int dst_stride, int64_t pixels) {
    if (from >= dst_stride) return;
    for (int64_t p = 0; p < pixels; ++p)
        std::memset(dst + p * dst_stride + from, 0, sizeof(float) * (dst_stride - from));
}

namespace {

struct CpuFeature {
    const char* halide_name;  // feature in a Halide target string
    const char* readable;
    bool (*present)();
};

#if defined(__x86_64__) || defined(__i386__)
struct X86 {
    unsigned l1c = 0, l1d = 0, l7b = 0, l7c = 0, l7a1 = 0;
    bool os_ymm = false, os_zmm = false;
    X86() {
        unsigned a, b, c, d;
        if (__get_cpuid(1, &a, &b, &c, &d)) {
            l1c = c;
            l1d = d;
        }
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
            l7b = b;
            l7c = c;
        }
        if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) l7a1 = a;
        if (l1c & (1u << 27)) {  // OSXSAVE: ask the OS which register states it saves
            unsigned lo, hi;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            os_ymm = (lo & 0x6) == 0x6;
            os_zmm = os_ymm && (lo & 0xe0) == 0xe0;
        }
    }
};
const X86& x86() {
    static const X86 info;
    return info;
}
bool bit(unsigned v, int b) { return (v >> b) & 1u; }
const CpuFeature kFeatures[] = {
    {"sse41", "SSE4.1", [] { return bit(x86().l1c, 19); }},
    {"avx", "AVX", [] { return bit(x86().l1c, 28) && x86().os_ymm; }},
    {"f16c", "F16C", [] { return bit(x86().l1c, 29); }},
    {"fma", "FMA", [] { return bit(x86().l1c, 12) && x86().os_ymm; }},
    {"avx2", "AVX2", [] { return bit(x86().l7b, 5) && x86().os_ymm; }},
    {"avx512", "AVX-512 (F, CD)",
     [] { return bit(x86().l7b, 16) && bit(x86().l7b, 28) && x86().os_zmm; }},
    {"avx512_skylake", "AVX-512 (F, CD, BW, DQ, VL)",
     [] {
         const unsigned b = x86().l7b;
         return bit(b, 16) && bit(b, 28) && bit(b, 30) && bit(b, 17) && bit(b, 31) &&
                x86().os_zmm;
     }},
    {"avx512_cannonlake", "AVX-512 IFMA and VBMI",
     [] { return bit(x86().l7b, 21) && bit(x86().l7c, 1) && x86().os_zmm; }},
    {"avx512_sapphirerapids", "AVX-VNNI and AVX-512 BF16 (Sapphire Rapids)",
     [] { return bit(x86().l7a1, 4) && bit(x86().l7a1, 5) && x86().os_zmm; }},
    {"avxvnni", "AVX-VNNI", [] { return bit(x86().l7a1, 4); }},
};
#else
const CpuFeature kFeatures[] = {
#if defined(__aarch64__) && defined(__linux__)
    {"arm_dot_prod", "ARMv8.2 dot product", [] { return (getauxval(AT_HWCAP) & (1ul << 20)) != 0; }},
#endif
    {"", "", [] { return true; }},
};
#endif

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> parts;
    std::stringstream ss(s);
    std::string p;
    while (std::getline(ss, p, sep)) parts.push_back(p);
    return parts;
}

}  // namespace

std::vector<std::string> missing_cpu_features(const std::string& halide_target) {
    const std::vector<std::string> parts = split(halide_target, '-');
    std::vector<std::string> missing;
    if (!parts.empty()) {
        const std::string arch = parts[0] == "arm" ? "ARM" : parts[0] == "x86" ? "x86" : parts[0];
#if defined(__x86_64__)
        if (parts[0] != "x86") return {"the " + arch + " architecture (this CPU is x86-64)"};
#elif defined(__aarch64__)
        if (parts[0] != "arm") return {"the " + arch + " architecture (this CPU is AArch64)"};
#endif
    }
    for (const std::string& p : parts)
        for (const CpuFeature& f : kFeatures)
            if (p == f.halide_name && !f.present()) missing.push_back(f.readable);
    return missing;
}

void require_cpu_features(const std::string& halide_target, const std::string& what) {
    const std::vector<std::string> missing = missing_cpu_features(halide_target);
    if (missing.empty()) return;
    std::string list;
    for (size_t i = 0; i < missing.size(); ++i) list += (i ? ", " : "") + missing[i];
    throw Error(what + " was compiled for " + halide_target +
                ", but this CPU lacks: " + list);
}

int select_variant(const char* const* targets, int count, const std::string& what) {
    if (const char* forced = std::getenv("CARDINAL_VARIANT"); forced && *forced) {
        int chosen = -1;
        char* end = nullptr;
        const long index = std::strtol(forced, &end, 10);
        if (end && *end == 0 && index >= 0 && index < count) chosen = int(index);
        for (int i = 0; i < count && chosen < 0; ++i)
            if (std::string(targets[i]) == forced) chosen = i;
        if (chosen < 0) {
            std::string list;
            for (int i = 0; i < count; ++i)
                list += (i ? ", " : "") + std::to_string(i) + " = " + targets[i];
            throw Error("CARDINAL_VARIANT='" + std::string(forced) + "' names none of " + what +
                        "'s variants (" + list + ")");
        }
        require_cpu_features(targets[chosen], what + " (variant " + std::to_string(chosen) + ")");
        return chosen;
    }
    for (int i = 0; i < count; ++i)
        if (missing_cpu_features(targets[i]).empty()) return i;
    // None runs here: name what the fallback (last) variant needs.
    require_cpu_features(targets[count - 1], what);
    throw Error(what + " has no code variant for this CPU");
}

// --- The thread pool for the layers' parallel loops ----------------------------------------
//
// Every layer is one Halide pipeline with one parallel loop (over row tasks or channel blocks).
// Halide's own pool hands a loop's tasks out dynamically, so a layer's row r runs on whichever
// core asks first, and the next layer, split by rows too, often reads row r on the other core:
// half of every activation then crosses between the cores' L2 caches. Its workers also sleep
// after a few yields, and waking a vCPU costs tens of microseconds per layer. This pool
// partitions each loop statically instead (thread t runs the t-th contiguous share of the
// tasks, so consecutive row-split layers hand rows over within one core; a thread done early
// then takes the others' untaken tasks), and its workers spin for a while between loops before
// sleeping. One loop runs at a time: a loop started while
// another runs (a second caller thread, or a nested loop) runs serially in its caller.
// CARDINAL_HALIDE_POOL=1 keeps Halide's pool.
namespace {

class StaticPool {
  public:
    explicit StaticPool(int threads) { resize(threads); }
    ~StaticPool() { stop_workers(); }

    void resize(int threads) {
        std::lock_guard<std::mutex> loop(busy_);
        stop_workers();
        threads_ = std::max(1, threads);
        next_ = std::make_unique<Counter[]>(threads_);
    }

    int run(void* user_context, halide_task_t task, int min, int size, uint8_t* closure) {
        std::unique_lock<std::mutex> loop(busy_, std::try_to_lock);
        if (!loop.owns_lock() || threads_ == 1 || size <= 1)
            return serial(user_context, task, min, size, closure);
        if (workers_.empty()) start_workers();
        job_ = Job{task, user_context, min, size, closure};
        for (int t = 0; t < threads_; ++t)
            next_[t].value.store(share_begin(t), std::memory_order_relaxed);
        result_.store(0, std::memory_order_relaxed);
        pending_.store(threads_ - 1, std::memory_order_relaxed);
        {
            std::lock_guard<std::mutex> lock(sleep_mutex_);
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        run_share(0);
        while (pending_.load(std::memory_order_acquire) != 0)
            pause();
        return result_.load(std::memory_order_relaxed);
    }

  private:
    struct Job {
        halide_task_t task = nullptr;
        void* user_context = nullptr;
        int min = 0, size = 0;
        uint8_t* closure = nullptr;
    };

    static int serial(void* user_context, halide_task_t task, int min, int size, uint8_t* closure) {
        for (int i = min; i < min + size; ++i)
            if (int r = task(user_context, i, closure)) return r;
        return 0;
    }

    // Thread t's share: tasks [size*t/T, size*(t+1)/T) of the loop, taken in order. A thread
    // done with its share then takes the next untaken tasks of the others' shares, so a thread
    // the host preempts (or a share of slower tasks) does not hold the loop up.
    int share_begin(int t) const { return job_.min + int(int64_t(job_.size) * t / threads_); }
    void run_share(int t) {
        for (int k = 0; k < threads_; ++k) {
            const int s = (t + k) % threads_;
            const int end = share_begin(s + 1);
            for (;;) {
                const int i = next_[s].value.fetch_add(1, std::memory_order_relaxed);
                if (i >= end) break;
                if (int r = job_.task(job_.user_context, i, job_.closure)) {
                    int expected = 0;
                    result_.compare_exchange_strong(expected, r);
                    return;
                }
            }
        }
    }

    void work(int t, uint64_t seen) {
        for (;;) {
            // Spin about 50 us for the next layer's loop (layers follow each other within
            // microseconds), then sleep until woken.
            const auto spin_until =
                std::chrono::steady_clock::now() + std::chrono::microseconds(50);
            uint64_t g = generation_.load(std::memory_order_acquire);
            while (g == seen && !stop_.load(std::memory_order_relaxed) &&
                   std::chrono::steady_clock::now() < spin_until) {
                for (int i = 0; i < 64; ++i)
                    pause();
                g = generation_.load(std::memory_order_acquire);
            }
            if (g == seen) {
                std::unique_lock<std::mutex> lock(sleep_mutex_);
                wake_.wait(lock, [&] {
                    return generation_.load(std::memory_order_acquire) != seen ||
                           stop_.load(std::memory_order_relaxed);
                });
                g = generation_.load(std::memory_order_acquire);
            }
            if (stop_.load(std::memory_order_relaxed)) return;
            seen = g;
            run_share(t);
            pending_.fetch_sub(1, std::memory_order_release);
        }
    }

    // Workers start at the first parallel loop, not when a library loads: a process that only
    // loads networks (or fails to) has no threads of ours, and a thread starting up while the
    // process forks a compile child (cardinal generate) cannot leave the child's allocator
    // locked (seen under AddressSanitizer, whose allocator has no fork handlers in GCC 12).
    void start_workers() {
        stop_ = false;
        // Each worker starts from the generation current now: the loop about to start is its.
        const uint64_t now = generation_.load(std::memory_order_acquire);
        for (int t = 1; t < threads_; ++t)
            workers_.emplace_back([this, t, now] { work(t, now); });
    }

    void stop_workers() {
        {
            std::lock_guard<std::mutex> lock(sleep_mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        for (std::thread& w : workers_)
            w.join();
        workers_.clear();
    }

    static void pause() {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        asm volatile("yield");
#endif
    }

    int threads_ = 1;
    std::vector<std::thread> workers_;
    std::mutex busy_;  // held for the duration of one parallel loop
    Job job_;
    std::atomic<uint64_t> generation_{0};  // one more per loop started
    std::atomic<int> pending_{0};          // workers still running their share
    std::atomic<int> result_{0};           // the first non-zero task result
    struct alignas(64) Counter {           // one cache line each: the threads take from them
        std::atomic<int> value{0};
    };
    std::unique_ptr<Counter[]> next_;      // per share, its next untaken task
    std::atomic<bool> stop_{false};
    std::mutex sleep_mutex_;
    std::condition_variable wake_;
};

int default_threads() {
    if (const char* env = std::getenv("HL_NUM_THREADS"))
        if (int n = std::atoi(env); n > 0) return n;
    return std::max(1u, std::thread::hardware_concurrency());
}

StaticPool* the_pool() {
    static StaticPool* pool = []() -> StaticPool* {
        const char* keep = std::getenv("CARDINAL_HALIDE_POOL");
        if (!halide_set_custom_do_par_for || (keep && std::strcmp(keep, "1") == 0)) return nullptr;
        return new StaticPool(default_threads());  // lives as long as the process
    }();
    return pool;
}

int static_pool_do_par_for(void* user_context, halide_task_t task, int min, int size,
                           uint8_t* closure) {
    return the_pool()->run(user_context, task, min, size, closure);
}

void for_each_index(int count, int64_t floats, const std::function<void(int)>& body) {
    // Below 64 K floats (256 KB) the copy takes less than waking a worker.
    constexpr int64_t kParallelFloats = 64 * 1024;
    StaticPool* pool = the_pool();
    if (!pool || floats < kParallelFloats) {
        for (int i = 0; i < count; ++i)
            body(i);
        return;
    }
    auto task = [](void*, int i, uint8_t* closure) {
        (*reinterpret_cast<const std::function<void(int)>*>(closure))(i);
        return 0;
    };
    pool->run(nullptr, task, 0, count,
              reinterpret_cast<uint8_t*>(const_cast<std::function<void(int)>*>(&body)));
}

// Installed when the library is loaded, before any layer runs.
[[maybe_unused]] const bool pool_installed = [] {
    if (!the_pool()) return false;
    halide_set_custom_do_par_for(static_pool_do_par_for);
    return true;
}();

}  // namespace

namespace {
// What set_num_threads last resolved; 0 until it is called (then default_threads()).
std::atomic<int> threads_set{0};
}  // namespace

void set_num_threads(int threads) {
    const int resolved = threads > 0 ? threads : default_threads();
    if (StaticPool* pool = the_pool()) pool->resize(resolved);
    if (halide_set_num_threads) halide_set_num_threads(threads);
    threads_set.store(resolved, std::memory_order_relaxed);
}

int num_threads() {
    const int n = threads_set.load(std::memory_order_relaxed);
    return n > 0 ? n : default_threads();
}

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace cardinal::rt
