#include "schedules/jit_runner.h"

#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/Support/Error.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>

#include <atomic>
#include <mutex>
#include <type_traits>

#include "ir/error.h"

namespace cardinal::tune {

namespace {

std::string message_of(llvm::Error e) {
    return llvm::toString(std::move(e));
}

template <class T>
T unwrap(llvm::Expected<T> v, const std::string& what) {
    if (!v) throw Error(what + ": " + message_of(v.takeError()));
    if constexpr (std::is_reference_v<T>)
        return *v;
    else
        return std::move(*v);
}

void check(llvm::Error e, const std::string& what) {
    if (e) throw Error(what + ": " + message_of(std::move(e)));
}

void initialize_llvm_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        llvm::InitializeNativeTarget();
        llvm::InitializeNativeTargetAsmPrinter();
    });
}

}  // namespace

struct JitSession::Impl {
    std::unique_ptr<llvm::orc::LLJIT> jit;
    llvm::orc::JITDylib* runtime = nullptr;  // the Halide runtime + process symbols
    int (*set_num_threads)(int) = nullptr;
    void (*shutdown_thread_pool)() = nullptr;
    std::atomic<unsigned> next_dylib{0};
    bool runtime_used = false;
};

JitSession::JitSession(const std::string& runtime_object) : impl_(std::make_unique<Impl>()) {
    initialize_llvm_once();
    impl_->jit = unwrap(llvm::orc::LLJITBuilder().create(), "cannot create the LLVM ORC JIT");
    llvm::orc::LLJIT& jit = *impl_->jit;
    impl_->runtime = &jit.getMainJITDylib();
    // libc, libm, pthread and dl symbols the Halide runtime and kernels call.
    impl_->runtime->addGenerator(
        unwrap(llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
                   jit.getDataLayout().getGlobalPrefix()),
               "cannot expose this process's symbols to the JIT"));
    auto buffer = llvm::MemoryBuffer::getFile(runtime_object);
    if (!buffer)
        throw Error("cannot read the Halide runtime object '" + runtime_object +
                    "': " + buffer.getError().message());
    check(jit.addObjectFile(*impl_->runtime, std::move(*buffer)),
          "cannot load the Halide runtime object '" + runtime_object + "'");
    auto address = [&](const char* name) {
        return unwrap(jit.lookup(*impl_->runtime, name),
                      std::string("the Halide runtime object lacks ") + name)
            .getAddress();
    };
    impl_->set_num_threads = reinterpret_cast<int (*)(int)>(address("halide_set_num_threads"));
    impl_->shutdown_thread_pool =
        reinterpret_cast<void (*)()>(address("halide_shutdown_thread_pool"));
}

JitSession::~JitSession() {
    // The runtime's worker threads run JIT'd code: stop them before that code is unmapped.
    if (impl_->shutdown_thread_pool) impl_->shutdown_thread_pool();
    impl_->jit.reset();
}

void JitSession::set_num_threads(int threads) {
    if (impl_->set_num_threads(threads < 0 ? 0 : threads) < 0)
        throw Error("halide_set_num_threads(" + std::to_string(threads) + ") failed");
}

std::unique_ptr<JitKernel> JitSession::load(const std::string& object_path,
                                            const std::string& function_name) {
    llvm::orc::LLJIT& jit = *impl_->jit;
    const std::string dylib_name =
        "kernel" + std::to_string(impl_->next_dylib++) + "_" + function_name;
    llvm::orc::JITDylib& jd = unwrap(jit.createJITDylib(dylib_name), "cannot create a JITDylib");
    jd.addToLinkOrder(*impl_->runtime);
    auto drop = [&]() { llvm::consumeError(jit.getExecutionSession().removeJITDylib(jd)); };
    try {
        auto buffer = llvm::MemoryBuffer::getFile(object_path);
        if (!buffer)
            throw Error("cannot read kernel object '" + object_path +
                        "': " + buffer.getError().message());
        check(jit.addObjectFile(jd, std::move(*buffer)),
              "cannot load kernel object '" + object_path + "'");
        // ExternalPlusMetadata linkage gives `<name>_argv(void** args)` next to the function:
        // one call signature for every kernel, whatever its number of buffers.
        const auto sym = unwrap(
            jit.lookup(jd, function_name + "_argv"),
            "kernel object '" + object_path + "' does not define " + function_name + "_argv");
        auto kernel = std::unique_ptr<JitKernel>(new JitKernel());
        kernel->session_ = this;
        kernel->dylib_ = &jd;
        kernel->argv_fn_ = reinterpret_cast<int (*)(void**)>(sym.getAddress());
        kernel->name_ = function_name;
        return kernel;
    } catch (...) {
        drop();
        throw;
    }
}

JitKernel::~JitKernel() {
    if (session_ && dylib_) {
        auto& jd = *static_cast<llvm::orc::JITDylib*>(dylib_);
        llvm::consumeError(session_->impl_->jit->getExecutionSession().removeJITDylib(jd));
    }
}

int JitKernel::call(const std::vector<halide_buffer_t*>& args) const {
    std::vector<void*> argv(args.begin(), args.end());
    return argv_fn_(argv.data());
}

}  // namespace cardinal::tune
