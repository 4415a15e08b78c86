// Emits the generated C++ that stitches a network's compiled layers: NAME.h (a class with the
// network's shapes, arena size and offsets as constants, load(), run()) and NAME.cpp (one block
// per step naming its layer, shape, kernel, schedule and target), plus a plain C entry point.
// With several targets, NAME.cpp holds one kernel table per target and load() picks the first
// the CPU supports (or the one CARDINAL_VARIANT names).
#pragma once

#include <string>

#include "codegen/plan.h"

namespace cardinal {

struct EmitOptions {
    std::string name;         // identifier-safe network name, e.g. "resnext50_32x4d"
    std::string generator_version;
};

// C++ identifier for a model name: letters, digits, '_' ("resnet-50" -> "resnet_50").
std::string identifier_for(const std::string& model);

std::string emit_header(const NetworkPlan& plan, const EmitOptions& options,
                        uint64_t fingerprint);
std::string emit_source(const NetworkPlan& plan, const EmitOptions& options,
                        uint64_t fingerprint);

}  // namespace cardinal
