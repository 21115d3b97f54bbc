// Initial noise from a counter-based RNG (Random123's Philox4x32-10), keyed by the image's
// seed and indexed by the element, so any rank can produce any element and the result never
// depends on how many ranks run or how the work is split.
#pragma once

#include <cstdint>

#include "src/core/tensor.hpp"

namespace fresco {

// Independent streams drawn from one seed.
enum class RandomStream : uint32_t { initial_noise = 0, weights = 1, prompts = 2 };

// Standard normal value number `index` of (seed, stream, substream) (Box-Muller on one Philox
// block: counter = (index low, index high, substream, stream), key = (seed low, seed high)).
float counter_normal(uint64_t seed, RandomStream stream, uint32_t substream, uint64_t index);

// Fills an f32 CPU tensor: element i = counter_normal(seed, stream, substream, first_index + i).
void fill_normal(const Tensor& out, uint64_t seed, RandomStream stream, uint32_t substream = 0,
                 uint64_t first_index = 0);

}  // namespace fresco
