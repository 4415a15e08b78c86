// What the grouped 3x3 kernel's inner loop costs depending on how it builds its input vectors
// (see grouped_conv2d_generator.cpp): the loop of ResNeXt-50's 4-per-group conv as the tuned
// schedule compiles it (2 blocks of 16 output channels x 8 pixels, the 3 kx taps of one (ky, j)
// step: 6 weight vectors, 10 input vectors X_j per block, 48 FMAs), in L1, with the X_j made
// five ways:
//   bcast128  vbroadcastf32x4 from memory: 4 floats to all four 128-bit lanes (4 per group)
//   bcast64   vbroadcastsd from memory (8 per group)
//   bcast32   vbroadcastss from memory (16 and more per group)
//   load      a plain 64-byte load (an upper bound: no broadcast at all)
//   vpermilps a 64-byte load and an in-lane shuffle (vpermilps zmm, m512, imm)
// and the FMAs alone (16 accumulators, no loads) as the bar. Prints ns per step and the share of
// the FMA-only rate. On the Zen 5 host of 2026-12-04 every form but bcast128 ran at the FMA-only
// rate; bcast128 at 86-87 % of it, the ceiling of the 4-per-group kernel's inner loop.
//
//   cmake --build build --target cardinal_broadcast_probe && build/bench/cardinal_broadcast_probe
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

// GCC's intrinsics headers start some shuffles from an "undefined" vector and then warn about it.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace {

enum class Form { Bcast128, Bcast64, Bcast32, Load, Vpermilps };

alignas(64) float g_input[8 * 64 + 640];  // staged input rows (8 rotating offsets)
alignas(64) float g_weights[512];         // 2 blocks x 3 taps x 16 lanes (+ padding)
alignas(64) float g_sink[256];            // keeps the accumulators alive

template <Form F>
__attribute__((target("avx512f"), noinline)) void kernel_steps(long steps) {
    __m512 acc[16];
#pragma GCC unroll 16
    for (int a = 0; a < 16; ++a)
        acc[a] = _mm512_setzero_ps();
    for (long s = 0; s < steps; ++s) {
        const float* in = g_input + (s & 7) * 64;
#pragma GCC unroll 2
        for (int b = 0; b < 2; ++b) {
            const float* w = g_weights + b * 256;
            const __m512 w0 = _mm512_load_ps(w), w1 = _mm512_load_ps(w + 16),
                         w2 = _mm512_load_ps(w + 32);
            __m512 x[10];
#pragma GCC unroll 10
            for (int q = 0; q < 10; ++q) {
                const float* p = in + q * 32 + b * 16;
                if constexpr (F == Form::Bcast128)
                    x[q] = _mm512_broadcast_f32x4(_mm_load_ps(p));
                else if constexpr (F == Form::Bcast64)
                    x[q] = _mm512_castpd_ps(_mm512_set1_pd(*reinterpret_cast<const double*>(p)));
                else if constexpr (F == Form::Bcast32)
                    x[q] = _mm512_set1_ps(*p);
                else if constexpr (F == Form::Load)
                    x[q] = _mm512_load_ps(p);
                else
                    x[q] = _mm512_permute_ps(_mm512_load_ps(p), 0x55);
                asm volatile("" : "+v"(x[q]));  // one load (+ shuffle) per X_j, not hoisted
            }
#pragma GCC unroll 8
            for (int q = 0; q < 8; ++q) {
                acc[b * 8 + q] = _mm512_fmadd_ps(w0, x[q], acc[b * 8 + q]);
                acc[b * 8 + q] = _mm512_fmadd_ps(w1, x[q + 1], acc[b * 8 + q]);
                acc[b * 8 + q] = _mm512_fmadd_ps(w2, x[q + 2], acc[b * 8 + q]);
            }
        }
    }
#pragma GCC unroll 16
    for (int a = 0; a < 16; ++a)
        _mm512_store_ps(g_sink + 16 * a, acc[a]);
}

// The bar: the same 48 FMAs per step on the same 16 accumulators, operands in registers.
__attribute__((target("avx512f"), noinline)) void fma_steps(long steps) {
    __m512 acc[16];
    __m512 a = _mm512_set1_ps(1.0001f), b = _mm512_set1_ps(0.9999f);
#pragma GCC unroll 16
    for (int k = 0; k < 16; ++k) {
        acc[k] = _mm512_setzero_ps();
        asm volatile("" : "+v"(acc[k]));  // 16 distinct chains, not one the compiler merges
    }
    for (long s = 0; s < steps; ++s) {
#pragma GCC unroll 3
        for (int t = 0; t < 3; ++t)
#pragma GCC unroll 16
            for (int k = 0; k < 16; ++k)
                acc[k] = _mm512_fmadd_ps(a, b, acc[k]);
        asm volatile("" : "+v"(a));
    }
#pragma GCC unroll 16
    for (int k = 0; k < 16; ++k)
        _mm512_store_ps(g_sink + 16 * k, acc[k]);
}

// Nanoseconds per step, the best of 5 timings of `steps` steps.
double ns_per_step(void (*steps_fn)(long)) {
    constexpr long kSteps = 10'000'000;
    steps_fn(100'000);  // warm up: caches, clock
    double best = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        steps_fn(kSteps);
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::min(best, s / kSteps * 1e9);
    }
    return best;
}

}  // namespace

int main() {
    if (!__builtin_cpu_supports("avx512f")) {
        std::printf("cardinal_broadcast_probe: this CPU has no AVX-512F; nothing to measure\n");
        return 0;
    }
    const double bar = ns_per_step(fma_steps);
    std::printf("%-10s %8s %8s\n", "X_j", "ns/step", "of FMA");
    std::printf("%-10s %8.3f %7.1f%%\n", "FMA only", bar, 100.0);
    const struct {
        const char* name;
        void (*fn)(long);
    } forms[] = {{"bcast128", kernel_steps<Form::Bcast128>},
                 {"bcast64", kernel_steps<Form::Bcast64>},
                 {"bcast32", kernel_steps<Form::Bcast32>},
                 {"load", kernel_steps<Form::Load>},
                 {"vpermilps", kernel_steps<Form::Vpermilps>}};
    for (const auto& f : forms) {
        const double t = ns_per_step(f.fn);
        std::printf("%-10s %8.3f %7.1f%%\n", f.name, t, 100.0 * bar / t);
    }
    return 0;
}
