#include "ir/tensor.h"

#include "ir/error.h"

namespace cardinal {

std::string Shape::str() const {
    std::string s;
    for (size_t i = 0; i < dims.size(); ++i) {
        if (i) s += "x";
        s += std::to_string(dims[i]);
    }
    return s.empty() ? "scalar" : s;
}

Tensor::Tensor(Shape s, std::vector<float> values) : shape(std::move(s)), data(std::move(values)) {
    if (static_cast<int64_t>(data.size()) != shape.numel())
        throw Error("tensor of shape " + shape.str() + " given " + std::to_string(data.size()) +
                    " values");
}

}  // namespace cardinal
