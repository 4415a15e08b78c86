// The reference ops: plain loops over NCHW float32, one function per op, written to be obviously
// correct first and reasonably fast second (full networks must run in seconds, so loop orders
// are cache-friendly, but there are no threads, intrinsics or clever algorithms).
//
// Precision. Conv2D and Dense accumulate in float, the way a straightforward implementation (and
// the generated code they are compared with) does, in one fixed order: each output starts at its
// bias and adds input channel by input channel, kernel row by kernel row, kernel column by kernel
// column. A K-term float sum has a typical relative error of about sqrt(K) * 2^-24 (K <= 4608 in
// the zoo: ~4e-6), far below the 1e-4 relative L2 the tests allow; double accumulation would
// halve the inner loop's vector width for no test that needs it. Everything else is cheap, so
// it computes in double and rounds once: BatchNorm, the pools' sums, Softmax.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "ir/error.h"
#include "reference/reference.h"

namespace cardinal::reference {

namespace {

void require(bool ok, const char* op, const std::string& what) {
    if (!ok) throw Error(std::string("reference ") + op + ": " + what);
}

void require_rank(const char* op, const Tensor& x, size_t rank) {
    require(x.shape.rank() == rank, op,
            "expects a rank-" + std::to_string(rank) + " input, got shape " + x.shape.str());
    require(static_cast<int64_t>(x.data.size()) == x.numel(), op,
            "the input of shape " + x.shape.str() + " holds " + std::to_string(x.data.size()) +
                " values");
}

void require_shape(const char* op, const char* what, const Tensor& t, const Shape& want) {
    require(t.shape == want && static_cast<int64_t>(t.data.size()) == want.numel(), op,
            std::string(what) + " has shape " + t.shape.str() + ", expected " + want.str());
}

// Output extent of a sliding window, exactly as the IR's shape inference defines it.
int64_t window_extent(const char* op, int64_t in, int kernel, int stride, int pad_before,
                      int pad_after, int dilation, bool ceil_mode) {
    require(kernel >= 1 && stride >= 1 && dilation >= 1, op,
            "kernel, stride and dilation must be positive");
    require(pad_before >= 0 && pad_after >= 0, op, "negative padding");
    const int64_t padded = in + pad_before + pad_after;
    const int64_t span = int64_t(dilation) * (kernel - 1) + 1;
    require(span <= padded, op, "the kernel is larger than the padded input");
    if (!ceil_mode) return (padded - span) / stride + 1;
    int64_t out = (padded - span + stride - 1) / stride + 1;
    if ((out - 1) * stride >= in + pad_before) --out;  // last window must start in input or pad
    return out;
}

// The outputs o in [0, out) whose tap o * stride + offset lands inside [0, in), as [lo, hi).
// Computing this range once lets the conv's inner loop run branch-free over contiguous columns.
struct Range {
    int64_t lo, hi;
};
Range valid_outputs(int64_t out, int64_t in, int64_t stride, int64_t offset) {
    const int64_t lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    const int64_t hi = in - offset <= 0 ? 0 : std::min(out, (in - 1 - offset) / stride + 1);
    return {lo, std::max(lo, hi)};
}

}  // namespace

void conv2d(const Conv2D& op, const Tensor& x, Tensor& y) {
    require_rank("Conv2D", x, 4);
    const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
    const int64_t O = op.out_channels, G = op.groups;
    require(G >= 1 && O >= 1 && C % G == 0 && O % G == 0, "Conv2D",
            "channels " + std::to_string(C) + " -> " + std::to_string(O) +
                " are not divisible by groups " + std::to_string(G));
    const int64_t C_per_group = C / G, O_per_group = O / G;
    const int64_t KH = op.kernel_h, KW = op.kernel_w;
    require_shape("Conv2D", "weight", op.weight, Shape{O, C_per_group, KH, KW});
    if (op.bias) require_shape("Conv2D", "bias", *op.bias, Shape{O});
    const int64_t OH = window_extent("Conv2D", H, op.kernel_h, op.stride_h, op.pad.top,
                                     op.pad.bottom, op.dilation_h, false);
    const int64_t OW = window_extent("Conv2D", W, op.kernel_w, op.stride_w, op.pad.left,
                                     op.pad.right, op.dilation_w, false);
    const int64_t SH = op.stride_h, SW = op.stride_w, DH = op.dilation_h, DW = op.dilation_w;

    y = Tensor(Shape{N, O, OH, OW});
    // Loop order: per output plane, per input channel of its group, per kernel tap, then a sweep
    // over the output plane whose inner loop walks contiguous output columns. The output plane
    // stays in cache while the input planes stream through.
    for (int64_t n = 0; n < N; ++n) {
        for (int64_t o = 0; o < O; ++o) {
            float* yp = y.ptr() + (n * O + o) * OH * OW;
            std::fill(yp, yp + OH * OW, op.bias ? op.bias->data[o] : 0.0f);
            const int64_t group = o / O_per_group;
            for (int64_t ci = 0; ci < C_per_group; ++ci) {
                const float* xp = x.ptr() + (n * C + group * C_per_group + ci) * H * W;
                const float* wp = op.weight.ptr() + (o * C_per_group + ci) * KH * KW;
                for (int64_t kh = 0; kh < KH; ++kh) {
                    for (int64_t kw = 0; kw < KW; ++kw) {
                        const float w = wp[kh * KW + kw];
                        // Input column of output column ow is ow * SW + col_offset.
                        const int64_t col_offset = kw * DW - op.pad.left;
                        const Range cols = valid_outputs(OW, W, SW, col_offset);
                        for (int64_t oh = 0; oh < OH; ++oh) {
                            const int64_t ih = oh * SH - op.pad.top + kh * DH;
                            if (ih < 0 || ih >= H) continue;  // a padding row adds zeros
                            const float* xr = xp + ih * W;
                            float* yr = yp + oh * OW;
                            if (SW == 1) {  // the common case, kept separate so it vectorizes
                                for (int64_t ow = cols.lo; ow < cols.hi; ++ow)
                                    yr[ow] += w * xr[ow + col_offset];
                            } else {
                                for (int64_t ow = cols.lo; ow < cols.hi; ++ow)
                                    yr[ow] += w * xr[ow * SW + col_offset];
                            }
                        }
                    }
                }
            }
        }
    }
}

void batch_norm(const BatchNorm& op, const Tensor& x, Tensor& y) {
    require(x.shape.rank() == 4 || x.shape.rank() == 2, "BatchNorm",
            "expects an NCHW or NC input, got shape " + x.shape.str());
    require_rank("BatchNorm", x, x.shape.rank());
    const int64_t N = x.shape[0], C = x.shape[1], HW = x.numel() / (N * C);
    for (const Tensor* t : {&op.gamma, &op.beta, &op.mean, &op.var})
        require_shape("BatchNorm", "a parameter", *t, Shape{C});
    y = Tensor(x.shape);
    for (int64_t c = 0; c < C; ++c) {
        const double scale =
            double(op.gamma.data[c]) / std::sqrt(double(op.var.data[c]) + double(op.epsilon));
        const double mean = op.mean.data[c], beta = op.beta.data[c];
        for (int64_t n = 0; n < N; ++n) {
            const float* xp = x.ptr() + (n * C + c) * HW;
            float* yp = y.ptr() + (n * C + c) * HW;
            for (int64_t i = 0; i < HW; ++i)
                yp[i] = static_cast<float>((double(xp[i]) - mean) * scale + beta);
        }
    }
}

void relu(const Tensor& x, Tensor& y) {
    y = Tensor(x.shape);
    // Written so that NaN propagates (as in PyTorch) instead of turning into 0.
    for (size_t i = 0; i < x.data.size(); ++i)
        y.data[i] = x.data[i] < 0.0f ? 0.0f : x.data[i];
}

void clip(const Clip& op, const Tensor& x, Tensor& y) {
    require(op.min <= op.max, "Clip", "min is greater than max");
    y = Tensor(x.shape);
    for (size_t i = 0; i < x.data.size(); ++i)
        y.data[i] = std::min(std::max(x.data[i], op.min), op.max);
}

void add(const Tensor& a, const Tensor& b, Tensor& y) {
    require(a.shape == b.shape && a.data.size() == b.data.size(), "Add",
            "operands have different shapes " + a.shape.str() + " and " + b.shape.str());
    y = Tensor(a.shape);
    for (size_t i = 0; i < a.data.size(); ++i)
        y.data[i] = a.data[i] + b.data[i];
}

void max_pool(const MaxPool& op, const Tensor& x, Tensor& y) {
    require_rank("MaxPool", x, 4);
    const PoolWindow& w = op.window;
    const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
    const int64_t OH = window_extent("MaxPool", H, w.kernel_h, w.stride_h, w.pad.top, w.pad.bottom,
                                     1, w.ceil_mode);
    const int64_t OW = window_extent("MaxPool", W, w.kernel_w, w.stride_w, w.pad.left, w.pad.right,
                                     1, w.ceil_mode);
    y = Tensor(Shape{N, C, OH, OW});
    for (int64_t nc = 0; nc < N * C; ++nc) {
        const float* xp = x.ptr() + nc * H * W;
        float* yp = y.ptr() + nc * OH * OW;
        for (int64_t oh = 0; oh < OH; ++oh) {
            for (int64_t ow = 0; ow < OW; ++ow) {
                // Only taps inside the input compete: padding acts as -infinity. A NaN tap wins,
                // as in PyTorch, so bad values are never hidden.
                float m = -std::numeric_limits<float>::infinity();
                for (int64_t kh = 0; kh < w.kernel_h; ++kh) {
                    const int64_t ih = oh * w.stride_h - w.pad.top + kh;
                    if (ih < 0 || ih >= H) continue;
                    for (int64_t kw = 0; kw < w.kernel_w; ++kw) {
                        const int64_t iw = ow * w.stride_w - w.pad.left + kw;
                        if (iw < 0 || iw >= W) continue;
                        const float v = xp[ih * W + iw];
                        if (v > m || std::isnan(v)) m = v;
                    }
                }
                yp[oh * OW + ow] = m;
            }
        }
    }
}

void average_pool(const AveragePool& op, const Tensor& x, Tensor& y) {
    require_rank("AveragePool", x, 4);
    const PoolWindow& w = op.window;
    const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
    const int64_t OH = window_extent("AveragePool", H, w.kernel_h, w.stride_h, w.pad.top,
                                     w.pad.bottom, 1, w.ceil_mode);
    const int64_t OW = window_extent("AveragePool", W, w.kernel_w, w.stride_w, w.pad.left,
                                     w.pad.right, 1, w.ceil_mode);
    y = Tensor(Shape{N, C, OH, OW});
    for (int64_t nc = 0; nc < N * C; ++nc) {
        const float* xp = x.ptr() + nc * H * W;
        float* yp = y.ptr() + nc * OH * OW;
        for (int64_t oh = 0; oh < OH; ++oh) {
            for (int64_t ow = 0; ow < OW; ++ow) {
                // The window in input coordinates, cut off where the padded input ends: the part
                // that ceil_mode adds past the padding never counts (PyTorch semantics).
                const int64_t h0 = oh * w.stride_h - w.pad.top;
                const int64_t w0 = ow * w.stride_w - w.pad.left;
                const int64_t h1 = std::min<int64_t>(h0 + w.kernel_h, H + w.pad.bottom);
                const int64_t w1 = std::min<int64_t>(w0 + w.kernel_w, W + w.pad.right);
                const int64_t padded_taps = (h1 - h0) * (w1 - w0);
                double sum = 0.0;
                int64_t input_taps = 0;
                for (int64_t ih = std::max<int64_t>(h0, 0); ih < std::min(h1, H); ++ih) {
                    for (int64_t iw = std::max<int64_t>(w0, 0); iw < std::min(w1, W); ++iw) {
                        sum += xp[ih * W + iw];
                        ++input_taps;
                    }
                }
                const int64_t divisor = op.count_include_pad ? padded_taps : input_taps;
                // A window entirely in padding (only possible with padding >= kernel, which
                // PyTorch forbids) has nothing to average: define it as 0 rather than NaN.
                yp[oh * OW + ow] = divisor > 0 ? static_cast<float>(sum / divisor) : 0.0f;
            }
        }
    }
}

void pad(const Pad& op, const Tensor& x, Tensor& y) {
    require_rank("Pad", x, 4);
    const Padding2D& p = op.pad;
    require(p.top >= 0 && p.left >= 0 && p.bottom >= 0 && p.right >= 0, "Pad", "negative padding");
    const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
    const int64_t OH = H + p.top + p.bottom, OW = W + p.left + p.right;
    y = Tensor(Shape{N, C, OH, OW}, op.value);
    for (int64_t nc = 0; nc < N * C; ++nc)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t w = 0; w < W; ++w)
                y.data[(nc * OH + h + p.top) * OW + w + p.left] = x.data[(nc * H + h) * W + w];
}

void global_average_pool(const Tensor& x, Tensor& y) {
    require_rank("GlobalAveragePool", x, 4);
    const int64_t N = x.shape[0], C = x.shape[1], HW = x.shape[2] * x.shape[3];
    y = Tensor(Shape{N, C, 1, 1});
    for (int64_t nc = 0; nc < N * C; ++nc) {
        double sum = 0.0;
        for (int64_t i = 0; i < HW; ++i)
            sum += x.data[nc * HW + i];
        y.data[nc] = static_cast<float>(sum / HW);
    }
}

void flatten(const Tensor& x, Tensor& y) {
    require(x.shape.rank() >= 2, "Flatten", "expects rank >= 2, got " + x.shape.str());
    require_rank("Flatten", x, x.shape.rank());
    // NCHW is row-major, so flattening keeps the data in place and only renames the shape.
    y = Tensor(Shape{x.shape[0], x.numel() / x.shape[0]}, x.data);
}

void dense(const Dense& op, const Tensor& x, Tensor& y) {
    require_rank("Dense", x, 2);
    const int64_t N = x.shape[0], I = x.shape[1], O = op.out_features;
    require(O >= 1, "Dense", "out_features must be positive");
    require_shape("Dense", "weight", op.weight, Shape{O, I});
    if (op.bias) require_shape("Dense", "bias", *op.bias, Shape{O});
    y = Tensor(Shape{N, O});
    for (int64_t n = 0; n < N; ++n) {
        const float* xr = x.ptr() + n * I;
        for (int64_t o = 0; o < O; ++o) {
            const float* wr = op.weight.ptr() + o * I;  // weight rows are contiguous: a dot product
            float acc = op.bias ? op.bias->data[o] : 0.0f;
            for (int64_t i = 0; i < I; ++i)
                acc += xr[i] * wr[i];
            y.data[n * O + o] = acc;
        }
    }
}

void concat(const std::vector<const Tensor*>& xs, Tensor& y) {
    require(!xs.empty(), "Concat", "needs at least one input");
    for (const Tensor* x : xs)
        require_rank("Concat", *x, 4);
    Shape out = xs[0]->shape;
    for (size_t i = 1; i < xs.size(); ++i) {
        const Shape& s = xs[i]->shape;
        require(s[0] == out[0] && s[2] == out[2] && s[3] == out[3], "Concat",
                "operand shapes " + xs[0]->shape.str() + " and " + s.str() +
                    " differ outside the channel axis");
        out[1] += s[1];
    }
    y = Tensor(out);
    // For each image, the operands' C x H x W blocks follow one another.
    float* dst = y.ptr();
    for (int64_t n = 0; n < out[0]; ++n) {
        for (const Tensor* x : xs) {
            const int64_t block = x->numel() / out[0];
            std::memcpy(dst, x->ptr() + n * block, sizeof(float) * block);
            dst += block;
        }
    }
}

void softmax(const Tensor& x, Tensor& y) {
    require_rank("Softmax", x, 2);
    const int64_t N = x.shape[0], C = x.shape[1];
    y = Tensor(x.shape);
    for (int64_t n = 0; n < N; ++n) {
        const float* xr = x.ptr() + n * C;
        float* yr = y.ptr() + n * C;
        // Subtracting the row maximum keeps exp() from overflowing; it cancels in the ratio.
        const double m = *std::max_element(xr, xr + C);
        double sum = 0.0;
        for (int64_t c = 0; c < C; ++c)
            sum += std::exp(double(xr[c]) - m);
        for (int64_t c = 0; c < C; ++c)
            yr[c] = static_cast<float>(std::exp(double(xr[c]) - m) / sum);
    }
}

}  // namespace cardinal::reference
