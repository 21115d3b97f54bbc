// How far one tensor is from a reference: the figures of `fresco compare` and of the tests.
#pragma once

#include "src/core/tensor.hpp"

namespace fresco {

struct Difference {
  double squared_error = 0;  // sum of (test - reference)^2
  double max_abs = 0;        // max |test - reference|
  double relative_l2 = 0;    // |test - reference| / |reference| (|test - reference| if the reference is 0)
  double psnr_db = 0;        // 10 log10(range^2 / MSE), range = max - min of the reference; inf if equal
};

// f32 CPU tensors of the same element count.
Difference difference(const Tensor& test, const Tensor& reference);

}  // namespace fresco
