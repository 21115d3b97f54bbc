#include "src/core/digest.hpp"

#include <cmath>

namespace fresco {

int64_t count_nonfinite_host(const Tensor& t) {
  if (t.numel() == 0) return 0;
  const Tensor dense = t.contiguous() ? t : t.clone();
  const int64_t n = dense.numel();
  int64_t bad = 0;
  switch (dense.dtype()) {
    case DType::f32: {
      const float* p = dense.data<float>();
#pragma omp parallel for reduction(+ : bad) schedule(static)
      for (int64_t i = 0; i < n; ++i) bad += !std::isfinite(p[i]);
      break;
    }
    case DType::bf16:
    case DType::f16: {
      const uint16_t mask = dense.dtype() == DType::bf16 ? 0x7F80 : 0x7C00;  // exponent all ones
      const auto* p = dense.data<uint16_t>();
#pragma omp parallel for reduction(+ : bad) schedule(static)
      for (int64_t i = 0; i < n; ++i) bad += (p[i] & mask) == mask;
      break;
    }
    case DType::f64: {
      const double* p = dense.data<double>();
      for (int64_t i = 0; i < n; ++i) bad += !std::isfinite(p[i]);
      break;
    }
    case DType::e4m3: {
      const auto* p = dense.data<uint8_t>();
      for (int64_t i = 0; i < n; ++i) bad += (p[i] & 0x7F) == 0x7F;  // the only non-finite code
      break;
    }
    case DType::i64: break;
  }
  return bad;
}

}  // namespace fresco
