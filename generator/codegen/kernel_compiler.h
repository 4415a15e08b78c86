// Compiles one layer pipeline (a registered cardinal Halide generator plus its GeneratorParams)
// ahead of time into an object file, with Halide in-process.
#pragma once

#include <map>
#include <tuple>
#include <vector>
#include <string>

namespace cardinal {

// A layer pipeline instance: which generator, and every GeneratorParam it is given (shape,
// epilogue and schedule knobs), as strings the way Halide's generator command line takes them.
struct KernelSpec {
    std::string generator;                      // e.g. "cardinal_conv2d"
    std::map<std::string, std::string> params;  // e.g. {"kernel_h", "3"}, {"tile_x", "6"}

    bool operator==(const KernelSpec&) const = default;
    bool operator<(const KernelSpec& o) const {
        return std::tie(generator, params) < std::tie(o.generator, o.params);
    }
    std::string str() const;  // "cardinal_conv2d(kernel_h=3,...)" for messages and comments
};

// Compiles `spec` for `target` (a Halide target string; `no_runtime` is added) into an object
// file defining `extern "C" int function_name(halide_buffer_t*...)`. Throws cardinal::Error.
void compile_kernel_object(const KernelSpec& spec, const std::string& target,
                           const std::string& function_name, const std::string& object_path);

// Compiles the Halide runtime (thread pool, allocator, error reporting) for `target` once per
// generated library.
void compile_runtime_object(const std::string& target, const std::string& object_path);

// Names of the registered cardinal generators.
std::vector<std::string> kernel_generator_names();

}  // namespace cardinal
