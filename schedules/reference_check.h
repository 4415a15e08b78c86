// Checks one kernel step of a network plan against the reference implementation: the IR nodes
// the step computes are run by reference/ on the step's own input buffers (read back from the
// stored NHWC layout into NCHW) and the result is compared with the kernel's output. The tuner
// uses it on every layer's default schedule; candidates are then compared with that checked
// output on the very same buffers.
#pragma once

#include <string>
#include <vector>

#include "codegen/plan.h"
#include "ir/graph.h"

namespace cardinal::tune {

struct ReferenceCheck {
    bool checked = false;    // false: the step could not be run by the reference (see `detail`)
    std::string difference;  // when checked: "" if the outputs match, else what differs
    std::string detail;      // when not checked: why
};

// folded_graph: the graph the plan was lowered from, after fold_batch_norm() (the steps name its
// nodes). args: host memory of the step's kernel arguments in order, the output last, each laid
// out as the argument's dims say. Outputs match when every real (unpadded) element is within
// 1e-4 of the reference output's largest magnitude.
ReferenceCheck check_step_against_reference(const Graph& folded_graph, const NetworkPlan& plan,
                                            const PlannedStep& step,
                                            const std::vector<const float*>& args);

}  // namespace cardinal::tune
