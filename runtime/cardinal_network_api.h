/* A plain C description of a generated network, so generic drivers (cardinal's own `run` and
 * `bench`, or a user's plugin loader) can load any generated network without knowing its name.
 * Each generated network NAME defines `const struct cardinal_network_api* cardinal_NAME_api()`. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define CARDINAL_NETWORK_API_VERSION 1

#ifdef __cplusplus
extern "C" {
#endif

struct cardinal_network_api {
    int version; /* CARDINAL_NETWORK_API_VERSION */
    const char* model;
    int num_variants;                   /* code variants (one per target), best first */
    const char* const* variant_targets; /* their Halide target strings */
    int64_t input_shape[4]; /* NCHW */
    int output_rank;
    int64_t output_shape[4]; /* first output_rank entries are meaningful */
    size_t arena_bytes;
    int64_t macs;
    int num_steps;
    void* (*create)(const char* weights_path, char* error, size_t error_size);
    int (*run)(void* network, const float* input_nchw, float* output, void* arena,
               double* step_seconds);
    void (*destroy)(void* network);
    void (*set_num_threads)(int threads);
    int (*selected_variant)(void* network); /* the variant create() picked */
    const char* (*step_layers)(int step);
    const char* (*step_description)(int step);
    const char* (*step_schedule)(int step);
    int64_t (*step_macs)(int step);
};

#ifdef __cplusplus
}
#endif
