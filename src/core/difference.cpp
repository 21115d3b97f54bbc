#include "src/core/difference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "src/core/error.hpp"

namespace fresco {

Difference difference(const Tensor& test, const Tensor& reference) {
  FRESCO_ASSERT(test.numel() == reference.numel(), "difference: element counts differ");
  const float *a = test.f32(), *b = reference.f32();
  double ref_sq = 0, lo = std::numeric_limits<double>::infinity(), hi = -lo;
  Difference d;
  for (int64_t i = 0; i < test.numel(); ++i) {
    const double e = double(a[i]) - b[i];
    d.squared_error += e * e;
    d.max_abs = std::max(d.max_abs, std::fabs(e));
    ref_sq += double(b[i]) * b[i];
    lo = std::min(lo, double(b[i]));
    hi = std::max(hi, double(b[i]));
  }
  d.relative_l2 = std::sqrt(ref_sq > 0 ? d.squared_error / ref_sq : d.squared_error);
  const double mse = d.squared_error / double(std::max<int64_t>(test.numel(), 1));
  d.psnr_db = mse > 0 ? 10.0 * std::log10((hi - lo) * (hi - lo) / mse)
                      : std::numeric_limits<double>::infinity();
  return d;
}

}  // namespace fresco
