// Shapes and float32 tensors: the values that flow through the IR and the weights ops hold.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cardinal {

// Dimensions outermost first. Activations are NCHW (rank 4) or NC (rank 2) at the network's
// boundary; conv weights are OIHW ([out, in/groups, kh, kw]); dense weights are [out, in].
struct Shape {
    std::vector<int64_t> dims;

    Shape() = default;
    Shape(std::initializer_list<int64_t> d) : dims(d) {}
    explicit Shape(std::vector<int64_t> d) : dims(std::move(d)) {}

    size_t rank() const { return dims.size(); }
    int64_t operator[](size_t i) const { return dims.at(i); }
    int64_t& operator[](size_t i) { return dims.at(i); }
    int64_t numel() const {
        int64_t n = 1;
        for (int64_t d : dims) n *= d;
        return n;
    }
    bool operator==(const Shape&) const = default;
    std::string str() const;  // "1x64x56x56"
};

struct Tensor {
    Shape shape;
    std::vector<float> data;

    Tensor() = default;
    explicit Tensor(Shape s, float fill = 0.0f)
        : shape(std::move(s)), data(static_cast<size_t>(shape.numel()), fill) {}
    Tensor(Shape s, std::vector<float> values);

    int64_t numel() const { return shape.numel(); }
    float* ptr() { return data.data(); }
    const float* ptr() const { return data.data(); }
};

}  // namespace cardinal
