// This machine's peak: sustained fp32 FMA throughput per ISA and thread count, and memory
// bandwidth, so benchmarks can report "% of peak" and place layers on a roofline.
//
// Everything here is measured, not looked up: each thread runs independent FMA chains (enough of
// them to cover FMA latency x throughput) pinned one per physical core where possible, and the
// bandwidth figures stream over a buffer several times larger than the last-level cache. An ISA
// is only ever run after cpu_supports() said yes (cpuid and xgetbv: the CPU has it and the OS
// saves its registers), so nothing here can raise SIGILL.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace cardinal {

// The ISAs cardinal targets. Sse is 128-bit SSE without FMA (the x86-64 baseline preset): its
// "FMA" is a multiply and a dependent add, the code an SSE4.1 target can run. Avx2 means AVX2 with
// FMA3 (256-bit), Avx512 means AVX-512F (512-bit FMA). Neon is only supported on aarch64 builds.
enum class Isa { Sse, Avx2, Avx512, Neon };

// True if this CPU and OS can run `isa` (x86: cpuid feature bits and, for AVX, the ymm/zmm state
// the OS enables in XCR0). Never executes an instruction of `isa` itself.
bool cpu_supports(Isa isa);

// "sse", "avx2", "avx512", "neon".
std::string isa_name(Isa isa);
// The inverse of isa_name(); nullopt for any other string.
std::optional<Isa> isa_from_name(const std::string& name);

// The ISAs of this build's architecture, narrowest first: Sse, Avx2, Avx512 on x86-64, Neon on
// aarch64 (whether this CPU supports them or not). What `cardinal peak --isa all` lists.
std::vector<Isa> build_isas();

// The processor's name (x86: the cpuid brand string), "" if unknown.
std::string cpu_name();
// CPUs this process may run on (its affinity mask), at least 1.
int logical_cpu_count();
// Distinct physical cores among those CPUs (SMT siblings counted once), at least 1.
int physical_core_count();

struct PeakResult {
    Isa isa;
    int threads;
    double gflops;  // total over all threads
};

// Sustained fp32 FMA throughput with `isa` on `threads` threads (0: one per physical core), each
// pinned to its own core while there are cores left, measured for about `seconds` after a short
// warm-up. The measurement is split into slices of at least 20 ms (up to 5) and the best slice
// counts, so that another process briefly taking a core does not lower the figure. Counts 2 flops
// per lane per FMA (for Sse, 1 per lane per multiply and per add). Throws std::invalid_argument
// if the CPU lacks `isa`, threads is outside 0..4096 or seconds is outside (0, 3600].
PeakResult measure_fma_peak(Isa isa, int threads, double seconds = 0.2);

struct BandwidthResult {
    int threads = 0;
    size_t buffer_bytes = 0;  // the whole working set, split evenly between the threads
    double read_gbs = 0;      // sum of the buffer with vector loads
    double copy_gbs = 0;      // dst = src, counted as read + written bytes (as STREAM does)
    double triad_gbs = 0;     // a = b + s * c, counted as 2 read + 1 written arrays (as STREAM)
};

// The buffer size measure_memory() uses by default: twice the last-level cache (so that a sweep
// never finds its data still cached), at least 256 MiB, at most 1 GiB and an eighth of physical
// memory.
size_t default_bandwidth_bytes();

// Sustained memory bandwidth in GB/s (1e9 bytes/s) on `threads` threads (0: one per physical
// core) over `buffer_bytes` (0: default_bandwidth_bytes(); at least 64 MiB are used), each thread
// streaming through its own share. Read is timed for about `seconds`, copy and triad for half of
// that each, best slice as for measure_fma_peak. The buffer is mapped and first-touched before
// timing (about 0.1-0.5 s per GiB) and unmapped after. Throws std::invalid_argument for bad
// threads or seconds (as measure_fma_peak), std::bad_alloc if even 64 MiB cannot be mapped.
BandwidthResult measure_memory(int threads, double seconds = 0.3, size_t buffer_bytes = 0);

// measure_memory(threads, seconds).read_gbs: sustained read bandwidth in GB/s.
double measure_memory_bandwidth(int threads, double seconds = 0.3);

}  // namespace cardinal
