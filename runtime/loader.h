// Loads a generated network folder into this process: builds NAME.cpp, the runtime and libNAME.a
// into a shared library with the system C++ compiler (once; cached in the folder), dlopens it and
// returns its cardinal_network_api. This is how `cardinal run` and `cardinal bench` execute the
// very code and objects a user links.
#pragma once

#include <memory>
#include <string>

#include "cardinal_network_api.h"

namespace cardinal {

class LoadedNetwork {
public:
    // dir: a `cardinal generate` output folder; name: the network's file name (NAME.h, ...).
    LoadedNetwork(const std::string& dir, const std::string& name);
    ~LoadedNetwork();
    LoadedNetwork(const LoadedNetwork&) = delete;
    LoadedNetwork& operator=(const LoadedNetwork&) = delete;

    const cardinal_network_api& api() const { return *api_; }
    void* network() const { return network_; }
    // Runs once; arena may be null. Throws cardinal::Error on failure.
    void run(const float* input, float* output, void* arena = nullptr,
             double* step_seconds = nullptr) const;

private:
    void* library_ = nullptr;
    const cardinal_network_api* api_ = nullptr;
    void* network_ = nullptr;
};

}  // namespace cardinal
