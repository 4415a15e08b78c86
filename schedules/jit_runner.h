// Runs layer kernels compiled ahead of time by Halide (no_runtime objects, the same machine code
// a generated library links) inside this process through LLVM 14's ORC LLJIT, so the tuner can
// measure a candidate schedule milliseconds after compiling it.
//
// One JitSession holds one Halide runtime object (thread pool, allocator, error reporting) in a
// shared JITDylib that also resolves libc/pthread symbols from the process. Each kernel object
// gets its own JITDylib linked against it and is removed when its JitKernel goes away. Before the
// JIT is destroyed, Halide's thread pool is shut down through the JIT'd runtime (LLJIT does not
// run the runtime's destructors). LLVM is used for this JIT alone; its headers stay inside
// jit_runner.cpp.
#pragma once

#include <memory>
#include <string>
#include <vector>

struct halide_buffer_t;

namespace cardinal::tune {

class JitSession;

// A kernel object loaded into a session. Destroy it before its session.
class JitKernel {
  public:
    ~JitKernel();
    JitKernel(const JitKernel&) = delete;
    JitKernel& operator=(const JitKernel&) = delete;

    // Calls the kernel with one halide_buffer_t per argument in the pipeline's order (output
    // last); returns Halide's error code (0 = success).
    int call(const std::vector<halide_buffer_t*>& args) const;
    const std::string& function_name() const { return name_; }

  private:
    friend class JitSession;
    JitKernel() = default;
    JitSession* session_ = nullptr;
    void* dylib_ = nullptr;  // llvm::orc::JitDylib*
    int (*argv_fn_)(void**) = nullptr;
    std::string name_;
};

class JitSession {
  public:
    // runtime_object: a Halide runtime object file (compile_runtime_object) for the target the
    // kernels are compiled for. Throws cardinal::Error if the JIT or the runtime cannot be set up.
    explicit JitSession(const std::string& runtime_object);
    ~JitSession();
    JitSession(const JitSession&) = delete;
    JitSession& operator=(const JitSession&) = delete;

    // Loads object_path (a no_runtime Halide object) and finds function_name in it (through the
    // `<name>_argv` entry point Halide emits next to it). Throws cardinal::Error.
    std::unique_ptr<JitKernel> load(const std::string& object_path,
                                    const std::string& function_name);

    // Threads of the JIT'd runtime's pool (halide_set_num_threads; 0: one per core).
    void set_num_threads(int threads);

  private:
    friend class JitKernel;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace cardinal::tune
