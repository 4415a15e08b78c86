// What the peers of `cardinal bench` (oneDNN, PyTorch) have in common.
#pragma once

#include <stdexcept>
#include <string>

namespace cardinal::peers {

// A peer that cannot run here: not installed (no oneDNN in this build, no Python or torch), or
// unable to express this network. `cardinal bench` reports it as missing with this reason (one
// sentence) instead of skipping it silently.
class PeerUnavailable : public std::runtime_error {
  public:
    explicit PeerUnavailable(const std::string& reason) : std::runtime_error(reason) {}
};

}  // namespace cardinal::peers
