#include "src/model/noise.hpp"

#include "src/backend/random.hpp"

namespace fresco {
float counter_normal(uint64_t seed, RandomStream stream, uint32_t substream, uint64_t index) {
  return counter_normal_value(seed, uint32_t(stream), substream, index);
}

void fill_normal(const Tensor& out, uint64_t seed, RandomStream stream, uint32_t substream,
                 uint64_t first_index) {
  float* p = out.f32();
  const int64_t n = out.numel();
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) p[i] = counter_normal(seed, stream, substream, first_index + uint64_t(i));
}

}  // namespace fresco
