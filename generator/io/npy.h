// NumPy .npy files (format versions 1.0-3.0): float32 C-order arrays in and out.
#pragma once

#include <string>

#include "ir/tensor.h"

namespace cardinal {

// Reads a little-endian float32 ('<f4'), C-order array. Throws cardinal::Error with a clear
// sentence for a file that is missing, not .npy, truncated, Fortran-order or not float32.
Tensor read_npy(const std::string& path);

// Writes `t` as a version 1.0 '<f4' C-order array. Writes to a temporary file in the same folder
// and renames it into place, so a failure never leaves a partial file at `path`.
void write_npy(const std::string& path, const Tensor& t);

}  // namespace cardinal
