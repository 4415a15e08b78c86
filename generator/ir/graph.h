// A network: named tensors connected by ops, in topological order, with one input and one output.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/ops.h"

namespace cardinal {

struct Node {
    std::string name;                 // unique layer name, e.g. "layer1.0.conv2"
    Op op;
    std::vector<std::string> inputs;  // activation tensor names, in the op's operand order
    std::string output;               // the tensor this node defines
};

struct Graph {
    std::string name;           // model name, e.g. "resnext50_32x4d"
    std::string input;          // name of the input tensor
    Shape input_shape;          // NCHW
    std::vector<Node> nodes;    // topological order
    std::string output;         // name of the output tensor
    std::map<std::string, Shape> shapes;  // every tensor's shape; filled by infer_shapes()

    const Shape& shape_of(const std::string& tensor) const;
    const Node* producer(const std::string& tensor) const;  // nullptr for the graph input
};

// Computes the shape of every tensor and checks the graph: names defined before use and once,
// operand counts, ranks, channels divisible by groups, kernels that fit the padded input,
// matching Add/Concat operands, weight shapes. Throws cardinal::Error naming the layer.
void infer_shapes(Graph& graph);

// The shape one node produces from its operands' shapes (also checks the node).
Shape infer_node_shape(const Node& node, const std::vector<Shape>& input_shapes);

// Trainable parameters: conv/dense weights and biases, BatchNorm gamma and beta.
int64_t count_params(const Graph& graph);
// BatchNorm running means and variances (not trainable; Keras counts them as parameters).
int64_t count_bn_statistics(const Graph& graph);
// Multiply-accumulates of conv and dense layers: output elements x (in/groups) x kh x kw (padding
// taps included) plus in x out (times batch) for dense. Needs infer_shapes() first.
int64_t count_node_macs(const Graph& graph, const Node& node);
int64_t count_macs(const Graph& graph);
int64_t count_node_params(const Node& node);

}  // namespace cardinal
