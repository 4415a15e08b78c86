// The inner loops of the peak measurements. Each x86 kernel is a static function with a target
// attribute (so this file needs no -m flags) behind a plain wrapper, which keeps the header free
// of attributes (in C++ differing target attributes would declare function versions).
#include "peak/peak_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace cardinal::peak_kernels {

namespace {

// The accumulators are named variables, not an array, so they live in registers at any
// optimization level that allocates registers at all.
#define CARDINAL_REP12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define CARDINAL_REP16(X) CARDINAL_REP12(X) X(12) X(13) X(14) X(15)

#if defined(__x86_64__) || defined(__i386__)

// SSE has no FMA: a multiply and a dependent add, the way SSE4.1 code computes acc += w * x.
// The empty asm keeps the two apart, so that a build with FMA enabled cannot contract them.
float sse_mul_add_impl(int64_t iterations, float a, float b) {
    const __m128 va = _mm_set1_ps(a), vb = _mm_set1_ps(b);
#define CARDINAL_INIT(i) __m128 c##i = _mm_set1_ps(0.0625f * float(i));
    CARDINAL_REP12(CARDINAL_INIT)
#undef CARDINAL_INIT
    for (int64_t k = 0; k < iterations; ++k) {
#define CARDINAL_STEP(i)                 \
    {                                    \
        __m128 t = _mm_mul_ps(c##i, va); \
        __asm__("" : "+x"(t));           \
        c##i = _mm_add_ps(t, vb);        \
    }
        CARDINAL_REP12(CARDINAL_STEP)
#undef CARDINAL_STEP
    }
    const __m128 s = _mm_add_ps(_mm_add_ps(_mm_add_ps(_mm_add_ps(c0, c1), _mm_add_ps(c2, c3)),
                                           _mm_add_ps(_mm_add_ps(c4, c5), _mm_add_ps(c6, c7))),
                                _mm_add_ps(_mm_add_ps(c8, c9), _mm_add_ps(c10, c11)));
    float lanes[4];
    _mm_storeu_ps(lanes, s);
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

__attribute__((target("avx2,fma"))) float avx2_fma_impl(int64_t iterations, float a, float b) {
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
#define CARDINAL_INIT(i) __m256 c##i = _mm256_set1_ps(0.0625f * float(i));
    CARDINAL_REP12(CARDINAL_INIT)
#undef CARDINAL_INIT
    for (int64_t k = 0; k < iterations; ++k) {
#define CARDINAL_STEP(i) c##i = _mm256_fmadd_ps(c##i, va, vb);
        CARDINAL_REP12(CARDINAL_STEP)
#undef CARDINAL_STEP
    }
    const __m256 s =
        _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                                    _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7))),
                      _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    float sum = 0;
    for (const float x : lanes)
        sum += x;
    return sum;
}

__attribute__((target("avx512f"))) float avx512_fma_impl(int64_t iterations, float a, float b) {
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
#define CARDINAL_INIT(i) __m512 c##i = _mm512_set1_ps(0.0625f * float(i));
    CARDINAL_REP16(CARDINAL_INIT)
#undef CARDINAL_INIT
    for (int64_t k = 0; k < iterations; ++k) {
#define CARDINAL_STEP(i) c##i = _mm512_fmadd_ps(c##i, va, vb);
        CARDINAL_REP16(CARDINAL_STEP)
#undef CARDINAL_STEP
    }
    const __m512 s = _mm512_add_ps(
        _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                      _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7))),
        _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)),
                      _mm512_add_ps(_mm512_add_ps(c12, c13), _mm512_add_ps(c14, c15))));
    // Not _mm512_reduce_add_ps: g++ 12 warns about an uninitialized value inside it.
    float lanes[16];
    _mm512_storeu_ps(lanes, s);
    float sum = 0;
    for (const float x : lanes)
        sum += x;
    return sum;
}

#endif  // x86

#if defined(__aarch64__)
float neon_fma_impl(int64_t iterations, float a, float b) {
    const float32x4_t va = vdupq_n_f32(a), vb = vdupq_n_f32(b);
#define CARDINAL_INIT(i) float32x4_t c##i = vdupq_n_f32(0.0625f * float(i));
    CARDINAL_REP16(CARDINAL_INIT)
#undef CARDINAL_INIT
    for (int64_t k = 0; k < iterations; ++k) {
#define CARDINAL_STEP(i) c##i = vfmaq_f32(vb, c##i, va);  // b + c * a
        CARDINAL_REP16(CARDINAL_STEP)
#undef CARDINAL_STEP
    }
    const float32x4_t s = vaddq_f32(vaddq_f32(vaddq_f32(vaddq_f32(c0, c1), vaddq_f32(c2, c3)),
                                              vaddq_f32(vaddq_f32(c4, c5), vaddq_f32(c6, c7))),
                                    vaddq_f32(vaddq_f32(vaddq_f32(c8, c9), vaddq_f32(c10, c11)),
                                              vaddq_f32(vaddq_f32(c12, c13), vaddq_f32(c14, c15))));
    return vaddvq_f32(s);
}
#endif

#undef CARDINAL_REP16
#undef CARDINAL_REP12

// Memory kernels, written once with 64-byte GCC vectors and instantiated per target by inlining
// into functions with target attributes (narrower targets split each vector into registers).
typedef float V16 __attribute__((vector_size(64), may_alias));

[[gnu::always_inline]] inline float read_body(const float* p, size_t n) {
    const V16* v = reinterpret_cast<const V16*>(p);
    V16 s0 = {}, s1 = {}, s2 = {}, s3 = {};
    for (size_t i = 0; i < n / 16; i += 4) {
        s0 += v[i];
        s1 += v[i + 1];
        s2 += v[i + 2];
        s3 += v[i + 3];
    }
    const V16 s = (s0 + s1) + (s2 + s3);
    float sum = 0;
    for (int j = 0; j < 16; ++j)
        sum += s[j];
    return sum;
}

[[gnu::always_inline]] inline void copy_body(float* dst, const float* src, size_t n) {
    V16* d = reinterpret_cast<V16*>(dst);
    const V16* s = reinterpret_cast<const V16*>(src);
    for (size_t i = 0; i < n / 16; ++i)
        d[i] = s[i];
}

[[gnu::always_inline]] inline void triad_body(float* a, const float* b, const float* c, float s,
                                              size_t n) {
    V16* va = reinterpret_cast<V16*>(a);
    const V16* vb = reinterpret_cast<const V16*>(b);
    const V16* vc = reinterpret_cast<const V16*>(c);
    for (size_t i = 0; i < n / 16; ++i)
        va[i] = vb[i] + s * vc[i];
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2"))) float avx2_read_impl(const float* p, size_t n) {
    return read_body(p, n);
}
__attribute__((target("avx2"))) void avx2_copy_impl(float* dst, const float* src, size_t n) {
    copy_body(dst, src, n);
}
__attribute__((target("avx2"))) void avx2_triad_impl(float* a, const float* b, const float* c,
                                                     float s, size_t n) {
    triad_body(a, b, c, s, n);
}
__attribute__((target("avx512f"))) float avx512_read_impl(const float* p, size_t n) {
    return read_body(p, n);
}
__attribute__((target("avx512f"))) void avx512_copy_impl(float* dst, const float* src, size_t n) {
    copy_body(dst, src, n);
}
__attribute__((target("avx512f"))) void avx512_triad_impl(float* a, const float* b, const float* c,
                                                          float s, size_t n) {
    triad_body(a, b, c, s, n);
}
#endif

}  // namespace

#if defined(__x86_64__) || defined(__i386__)
float sse_mul_add(int64_t iterations, float a, float b) {
    return sse_mul_add_impl(iterations, a, b);
}
float avx2_fma(int64_t iterations, float a, float b) {
    return avx2_fma_impl(iterations, a, b);
}
float avx512_fma(int64_t iterations, float a, float b) {
    return avx512_fma_impl(iterations, a, b);
}
float avx2_read(const float* p, size_t n) {
    return avx2_read_impl(p, n);
}
void avx2_copy(float* dst, const float* src, size_t n) {
    avx2_copy_impl(dst, src, n);
}
void avx2_triad(float* a, const float* b, const float* c, float s, size_t n) {
    avx2_triad_impl(a, b, c, s, n);
}
float avx512_read(const float* p, size_t n) {
    return avx512_read_impl(p, n);
}
void avx512_copy(float* dst, const float* src, size_t n) {
    avx512_copy_impl(dst, src, n);
}
void avx512_triad(float* a, const float* b, const float* c, float s, size_t n) {
    avx512_triad_impl(a, b, c, s, n);
}
#endif
#if defined(__aarch64__)
float neon_fma(int64_t iterations, float a, float b) {
    return neon_fma_impl(iterations, a, b);
}
#endif

float generic_read(const float* p, size_t n) {
    return read_body(p, n);
}
void generic_copy(float* dst, const float* src, size_t n) {
    copy_body(dst, src, n);
}
void generic_triad(float* a, const float* b, const float* c, float s, size_t n) {
    triad_body(a, b, c, s, n);
}

}  // namespace cardinal::peak_kernels
