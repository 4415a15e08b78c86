#include "loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ir/error.h"

namespace fs = std::filesystem;

namespace cardinal {

namespace {

std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

bool newer_than(const fs::path& a, const fs::path& b) {
    return fs::exists(a) && fs::last_write_time(a) >= fs::last_write_time(b);
}

}  // namespace

LoadedNetwork::LoadedNetwork(const std::string& dir_text, const std::string& name) {
    const fs::path dir = fs::absolute(dir_text);
    const fs::path src = dir / (name + ".cpp"), lib = dir / ("lib" + name + ".a");
    const fs::path weights = dir / (name + ".weights");
    for (const fs::path& p : {src, lib, weights})
        if (!fs::exists(p))
            throw Error("'" + dir.string() + "' is not a generated network folder for '" + name +
                        "': " + p.filename().string() + " is missing");
    const fs::path so = dir / (".lib" + name + ".so");
    if (!newer_than(so, src) || !newer_than(so, lib)) {
        const char* cxx = std::getenv("CXX");
        const std::string tmp = so.string() + ".tmp";
        const std::string cmd =
            std::string(cxx && *cxx ? cxx : "c++") + " -std=c++17 -O2 -shared -fPIC -o " +
            shell_quote(tmp) + " " + shell_quote(src.string()) + " " +
            shell_quote((dir / "cardinal_runtime.cpp").string()) + " -Wl,--whole-archive " +
            shell_quote(lib.string()) + " -Wl,--no-whole-archive -lpthread -ldl 2> " +
            shell_quote(so.string() + ".log");
        if (std::system(cmd.c_str()) != 0) {
            std::ifstream log(so.string() + ".log");
            std::stringstream ss;
            ss << log.rdbuf();
            throw Error("building the generated network '" + name + "' failed:\n" + ss.str());
        }
        fs::rename(tmp, so);
        fs::remove(so.string() + ".log");
    }
    // RTLD_LOCAL: several generated networks (each with its own Halide runtime) can be loaded.
    library_ = ::dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!library_) throw Error(std::string("cannot load the generated network: ") + ::dlerror());
    using ApiFn = const cardinal_network_api* (*)();
    auto fn = reinterpret_cast<ApiFn>(::dlsym(library_, ("cardinal_" + name + "_api").c_str()));
    if (!fn) throw Error("the generated library has no cardinal_" + name + "_api()");
    api_ = fn();
    if (api_->version != CARDINAL_NETWORK_API_VERSION)
        throw Error("the generated network uses API version " + std::to_string(api_->version) +
                    ", this cardinal reads " + std::to_string(CARDINAL_NETWORK_API_VERSION));
    char error[1024] = {};
    network_ = api_->create(weights.c_str(), error, sizeof error);
    if (!network_) throw Error(error);
}

LoadedNetwork::~LoadedNetwork() {
    if (network_) api_->destroy(network_);
    // The library stays mapped: Halide's thread pool threads live in it until process exit.
}

void LoadedNetwork::run(const float* input, float* output, void* arena,
                        double* step_seconds) const {
    if (api_->run(network_, input, output, arena, step_seconds) != 0)
        throw Error("running the generated network '" + std::string(api_->model) + "' failed");
}

}  // namespace cardinal
