#include "src/model/noise.hpp"

#include <Random123/boxmuller.hpp>
#include <Random123/philox.h>

namespace fresco {
float counter_normal(uint64_t seed, RandomStream stream, uint32_t substream, uint64_t index) {
  using Philox = r123::Philox4x32;
  const Philox::ctr_type ctr = {{uint32_t(index), uint32_t(index >> 32), substream, uint32_t(stream)}};
  const Philox::key_type key = {{uint32_t(seed), uint32_t(seed >> 32)}};
  const Philox::ctr_type r = Philox()(ctr, key);
  return r123::boxmuller(r[0], r[1]).x;
}

void fill_normal(const Tensor& out, uint64_t seed, RandomStream stream, uint32_t substream,
                 uint64_t first_index) {
  float* p = out.f32();
  const int64_t n = out.numel();
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) p[i] = counter_normal(seed, stream, substream, first_index + uint64_t(i));
}

}  // namespace fresco
