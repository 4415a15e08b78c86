// The PyTorch peer: PyTorch 1.13 (Debian's python3-torch) running the same network with the same
// weights in its fastest CPU mode, driven from cardinal in lock-step with the other engines.
//
// cardinal writes the network (export_graph: graph.json + weights.bin, below) and the input
// (input.npy) into a private temporary folder and starts
//     /usr/bin/python3 bench/peers/pytorch_bench.py --graph DIR/graph.json --input DIR/input.npy
//                      --threads N --source zoo|graph
// which builds the model — the torchvision network for a zoo model (resnet50/101, resnext*,
// mobilenet_v2), a faithful PyTorch Xception for xception, or a module built node by node from
// graph.json for any other graph (an ONNX import) — loads cardinal's exact weights by layer name,
// compiles it with torch.jit.freeze + torch.jit.optimize_for_inference, sets
// torch.set_num_threads(N), warms up, and answers one command per line on stdin:
//     run          -> "t SECONDS"   one forward pass, timed inside Python (no pipe overhead)
//     output PATH  -> "ok"          writes the last output as .npy
//     quit
// Startup ends with "ready DESCRIPTION", or "missing REASON" when torch, torchvision or an
// equivalent of the network is not available; errors are "error MESSAGE". The interpreter is
// $CARDINAL_PYTHON or /usr/bin/python3 (Debian's, which sees python3-torch), the script
// $CARDINAL_PYTORCH_SCRIPT or the one in the source tree. With $CARDINAL_PYTORCH_KEEP set, the
// folder (graph, weights, input, the driver's stderr) is kept for debugging.
#pragma once

#include <sys/types.h>
#include <cstdio>
#include <filesystem>
#include <string>

#include "ir/graph.h"

namespace cardinal::peers {

// Writes `graph` for other frameworks: DIR/graph.json describes every node (op, attributes,
// inputs, output, and where each of its weight tensors lies in weights.bin: offset in floats,
// shape) and DIR/weights.bin holds all weights as little-endian float32, unfolded (BatchNorm keeps
// gamma, beta, mean, var). Layer names are the IR's: torchvision module names for ResNe(X)t and
// MobileNetV2, Keras names for Xception.
void export_graph(const Graph& graph, const std::filesystem::path& dir);

class PytorchPeer {
  public:
    // Starts the Python driver on `graph` and `input` with `threads` threads. `zoo`: the graph is
    // the zoo model of that name (use the torchvision / Xception module); otherwise the module is
    // built from the graph. Throws PeerUnavailable when Python, torch or an equivalent model is
    // missing, cardinal::Error when the driver fails.
    PytorchPeer(const Graph& graph, bool zoo, int threads, const Tensor& input);
    ~PytorchPeer();
    PytorchPeer(const PytorchPeer&) = delete;
    PytorchPeer& operator=(const PytorchPeer&) = delete;

    // One forward pass; returns its time in seconds as measured inside Python.
    double run();
    // The output of the last run, in the graph's output shape.
    Tensor output();
    // "torch 1.13.0, torchvision resnext50_32x4d, jit.freeze + optimize_for_inference, 2 threads"
    const std::string& description() const { return description_; }

  private:
    std::string request(const std::string& line);     // sends a line, returns the reply line
    [[noreturn]] void fail(const std::string& what);  // stops the process, throws Error
    void shutdown();                                  // quit, reap, remove the folder

    std::filesystem::path dir_;
    Shape output_shape_;
    pid_t pid_ = -1;
    FILE* to_ = nullptr;    // its stdin
    FILE* from_ = nullptr;  // its stdout
    std::string description_;
};

}  // namespace cardinal::peers
