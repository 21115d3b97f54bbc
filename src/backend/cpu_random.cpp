// The CPU reference of fill_random and the counter-based normal numbers (src/backend/random.hpp).
#include <Random123/boxmuller.hpp>
#include <Random123/philox.h>

#include "src/backend/cpu_backend.hpp"
#include "src/backend/random.hpp"
#include "src/core/error.hpp"

namespace fresco {

float counter_normal_value(uint64_t seed, uint32_t stream, uint32_t substream, uint64_t index) {
  using Philox = r123::Philox4x32;
  const Philox::ctr_type ctr = {{uint32_t(index), uint32_t(index >> 32), substream, stream}};
  const Philox::key_type key = {{uint32_t(seed), uint32_t(seed >> 32)}};
  const Philox::ctr_type r = Philox()(ctr, key);
  return r123::boxmuller(r[0], r[1]).x;
}

void CpuBackend::fill_random(uint64_t seed, uint32_t stream, uint32_t substream, float mean, float std,
                             const Tensor& y) {
  // y: any shape, dense; element i = mean + std * counter_normal_value(seed, stream, substream, i),
  // in f32, rounded once when stored in y's dtype.
  FRESCO_ASSERT(y.defined() && y.device() == Device::cpu && y.contiguous(),
                "fill_random: expected a dense host tensor, got " + (y.defined() ? y.describe() : std::string("none")));
  const int64_t n = y.numel();
  if (n == 0) return;
  const cpu::Rows staged = cpu::write(y, scratch_, cpu::kOut);  // dense: element i at data[i]
  float* p = staged.data;
  if (std == 0.0f) {
    for (int64_t i = 0; i < n; ++i) p[i] = mean;
  } else {
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) {
      const float v = std * counter_normal_value(seed, stream, substream, uint64_t(i));
      p[i] = mean + v;
    }
  }
  cpu::store(staged, y);
}

}  // namespace fresco
