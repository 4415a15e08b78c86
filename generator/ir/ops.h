// The operations of cardinal's network IR. Each op is a plain struct holding its attributes and,
// for ops with parameters, its float32 weights. Dense, grouped and depthwise convolutions are one
// op (Conv2D) told apart by `groups`.
#pragma once

#include <optional>
#include <string>
#include <variant>

#include "ir/tensor.h"

namespace cardinal {

// Zero-padding added around the spatial dimensions, per side.
struct Padding2D {
    int top = 0, left = 0, bottom = 0, right = 0;
    bool operator==(const Padding2D&) const = default;
    bool any() const { return top || left || bottom || right; }
};

// y[n, o, h, w] = bias[o] + sum_{i in group(o), kh, kw} x[n, i, h*s - pad + kh*d, ...] * w[o, i', kh, kw]
// weight: [out_channels, in_channels / groups, kernel_h, kernel_w]; bias: [out_channels].
// groups == in_channels is depthwise; out_channels = k * in_channels is depthwise with
// channel multiplier k.
struct Conv2D {
    int out_channels = 0;
    int kernel_h = 1, kernel_w = 1;
    int stride_h = 1, stride_w = 1;
    Padding2D pad;
    int dilation_h = 1, dilation_w = 1;
    int groups = 1;
    Tensor weight;
    std::optional<Tensor> bias;
};

// Inference BatchNorm over channels: y = gamma * (x - mean) / sqrt(var + epsilon) + beta.
struct BatchNorm {
    Tensor gamma, beta, mean, var;  // each [channels]
    float epsilon = 1e-5f;
};

struct Relu {};

// y = min(max(x, min), max). ReLU6 is Clip{0, 6}.
struct Clip {
    float min = 0.0f, max = 6.0f;
};

// Elementwise sum of two tensors of the same shape (residual connections).
struct Add {};

// A pooling window over H and W. Output size = floor_or_ceil((in + pads - kernel) / stride) + 1;
// with ceil_mode the last window must still start inside the input or its left padding.
struct PoolWindow {
    int kernel_h = 1, kernel_w = 1;
    int stride_h = 1, stride_w = 1;
    Padding2D pad;
    bool ceil_mode = false;
};

struct MaxPool {
    PoolWindow window;  // padding never wins: it acts as -infinity
};

struct AveragePool {
    PoolWindow window;
    // true: divide by kernel_h*kernel_w (padding counts as zeros); false: divide by the number
    // of taps inside the input. Taps past the input added by ceil_mode never count.
    bool count_include_pad = false;
};

// Constant padding of the spatial dimensions (NCHW only).
struct Pad {
    Padding2D pad;
    float value = 0.0f;
};

// NCHW -> NC11 mean over H and W.
struct GlobalAveragePool {};

// N x C x H x W -> N x (C*H*W); a no-op on rank 2.
struct Flatten {};

// Fully connected: y[n, o] = bias[o] + sum_i x[n, i] * weight[o, i]. weight: [out, in].
struct Dense {
    int out_features = 0;
    Tensor weight;
    std::optional<Tensor> bias;
};

// Concatenation along channels (axis 1) of NCHW tensors with equal N, H, W.
struct Concat {};

// Softmax over axis 1 of an N x C tensor.
struct Softmax {};

using Op = std::variant<Conv2D, BatchNorm, Relu, Clip, Add, MaxPool, AveragePool, Pad,
                        GlobalAveragePool, Flatten, Dense, Concat, Softmax>;

// "Conv2D", "BatchNorm", ... as used in messages and tables.
std::string op_name(const Op& op);

}  // namespace cardinal
