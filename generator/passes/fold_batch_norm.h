// Graph pass: folds each inference BatchNorm into the convolution that feeds it.
#pragma once

#include "ir/graph.h"

namespace cardinal {

// For every BatchNorm whose input is produced by a Conv2D whose output nothing else reads,
// scales the conv's weights by gamma / sqrt(var + eps) per output channel and sets its bias to
// beta + (bias - mean) * scale; the BatchNorm node disappears and the conv takes over its output
// tensor name. Other BatchNorms are left in place. Returns the new graph (shapes inferred).
Graph fold_batch_norm(const Graph& graph);

}  // namespace cardinal
