// The reference implementation: plain C++ loops over NCHW float32, one function per op, written
// to be obviously correct. It is the oracle every test and benchmark compares generated code with.
#pragma once

#include <functional>
#include <vector>

#include "ir/graph.h"

namespace cardinal::reference {

// One function per op. Inputs are NCHW (or NC for Dense/Softmax); `y` is resized to the output
// shape the IR's shape inference gives.
void conv2d(const Conv2D& op, const Tensor& x, Tensor& y);
void batch_norm(const BatchNorm& op, const Tensor& x, Tensor& y);
void relu(const Tensor& x, Tensor& y);
void clip(const Clip& op, const Tensor& x, Tensor& y);
void add(const Tensor& a, const Tensor& b, Tensor& y);
void max_pool(const MaxPool& op, const Tensor& x, Tensor& y);
void average_pool(const AveragePool& op, const Tensor& x, Tensor& y);
void pad(const Pad& op, const Tensor& x, Tensor& y);
void global_average_pool(const Tensor& x, Tensor& y);
void flatten(const Tensor& x, Tensor& y);
void dense(const Dense& op, const Tensor& x, Tensor& y);
void concat(const std::vector<const Tensor*>& xs, Tensor& y);
void softmax(const Tensor& x, Tensor& y);

// Runs one node on its operands.
Tensor run_node(const Node& node, const std::vector<const Tensor*>& inputs);

// Runs the whole network (shapes must have been inferred) on `input` (the graph's input shape)
// and returns the output tensor. Intermediate tensors are freed after their last use.
// `on_layer`, if set, is called after each node with the node and its output.
using LayerCallback = std::function<void(const Node&, const Tensor&)>;
Tensor run(const Graph& graph, const Tensor& input, const LayerCallback& on_layer = {});

}  // namespace cardinal::reference
