// ONNX import: reads an ONNX model (opsets 7-17, tested 11-17) into cardinal's IR.
//
// The model is parsed with Debian's libonnx/protobuf, checked with onnx::checker::check_model and
// onnx::shape_inference::InferShapes, and converted node by node:
//   - layers: Conv, BatchNormalization, Relu, Clip, Add, MaxPool, AveragePool, Pad (constant,
//     spatial), GlobalAveragePool, Flatten, Reshape (to batch x features), Gemm, MatMul (constant
//     2-D weight), Concat (channels), Softmax (over the features of an N x C tensor);
//   - aliases: Identity, Dropout (inference), and Flatten/Reshape that keep the shape;
//   - constants: initializers and Constant nodes become weights; subgraphs computing on constants
//     only (torch's shape arithmetic: Shape, Gather, Unsqueeze, Concat, Slice, Cast, ...) are
//     evaluated at import time.
// The network has one float NCHW input; a symbolic batch dimension takes `batch`.
//
// Layer names come from the ONNX node names. PyTorch exports name nodes after the module scope
// ("/layer1/layer1.0/conv1/Conv"): these become the module's name ("layer1.0.conv1"), so an
// imported torchvision network has torchvision's (and the zoo's) layer names; operations inside a
// module's forward() get the module's name plus the op ("layer1.0.add", "layer1.0.relu_1").
//
// Anything else throws cardinal::Error with a one-line message: an unsupported op (naming the op
// types, the nodes and the supported list), a malformed, truncated or empty file, a weight that
// contradicts its layer's attributes, a missing initializer, an input that is not NCHW.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"

namespace cardinal {

// Imports the model in `path`; the graph is named after the file's stem.
Graph import_onnx(const std::string& path, int batch);

// Imports a model from its serialized bytes (what import_onnx does after reading the file).
Graph import_onnx_bytes(const std::string& bytes, int batch, const std::string& name);

// The ONNX op types that become layers (or aliases), as listed in error messages.
const std::vector<std::string>& onnx_layer_ops();
// The ONNX op types folded at import time when all their inputs are constants.
const std::vector<std::string>& onnx_constant_ops();

}  // namespace cardinal
