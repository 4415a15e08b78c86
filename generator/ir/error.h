// The one exception type cardinal throws for bad input: its message is a complete sentence
// that the CLI prints as-is (exit code 1).
#pragma once

#include <stdexcept>
#include <string>

namespace cardinal {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace cardinal
