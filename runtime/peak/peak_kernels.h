// The inner loops of the peak measurements (internal to peak.cpp). The x86 kernels are compiled
// with function target attributes, so they may only be called after cpu_supports() said yes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cardinal::peak_kernels {

// FMA throughput: `iterations` rounds of independent chains acc = acc * a + b, one per
// accumulator register; returns the sum of the accumulators (to be consumed by the caller).
// Flops per round = chains x lanes x 2.
#if defined(__x86_64__) || defined(__i386__)
constexpr int kSseChains = 12, kAvx2Chains = 12, kAvx512Chains = 16;
constexpr double kSseFlopsPerIteration = kSseChains * 4 * 2;  // mulps then a dependent addps
constexpr double kAvx2FlopsPerIteration = kAvx2Chains * 8 * 2;
constexpr double kAvx512FlopsPerIteration = kAvx512Chains * 16 * 2;
float sse_mul_add(int64_t iterations, float a, float b);
float avx2_fma(int64_t iterations, float a, float b);    // AVX2 + FMA3 only
float avx512_fma(int64_t iterations, float a, float b);  // AVX-512F only
#endif
#if defined(__aarch64__)
constexpr int kNeonChains = 16;
constexpr double kNeonFlopsPerIteration = kNeonChains * 4 * 2;
float neon_fma(int64_t iterations, float a, float b);
#endif

// Memory kernels over `n` floats, n a multiple of 64 and every pointer 64-byte aligned.
// read: returns the sum; copy: dst = src; triad: a = b + s * c.
float generic_read(const float* p, size_t n);
void generic_copy(float* dst, const float* src, size_t n);
void generic_triad(float* a, const float* b, const float* c, float s, size_t n);
#if defined(__x86_64__) || defined(__i386__)
float avx2_read(const float* p, size_t n);  // AVX2 only
void avx2_copy(float* dst, const float* src, size_t n);
void avx2_triad(float* a, const float* b, const float* c, float s, size_t n);
float avx512_read(const float* p, size_t n);  // AVX-512F only
void avx512_copy(float* dst, const float* src, size_t n);
void avx512_triad(float* a, const float* b, const float* c, float s, size_t n);
#endif

}  // namespace cardinal::peak_kernels
