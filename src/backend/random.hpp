// The counter-based normal numbers every random value of Fresco comes from (initial noise,
// random weights, random prompts): Random123's Philox4x32-10 keyed by the seed, Box-Muller on
// one block. Any element can be drawn alone, so the result never depends on how the work is
// split. The CUDA backend's fill_random (cuda/random.cu) draws the same Philox bits on the
// device; its Box-Muller uses the device's logf/sincosf, a few ulps from the host's.
#pragma once

#include <cstdint>

namespace fresco {

// Standard normal value number `index` of (seed, stream, substream): Philox4x32-10 on counter
// (index low, index high, substream, stream) and key (seed low, seed high); the block's first
// two words through r123::boxmuller (x = sin(pi u0') sqrt(-2 log u1'), u0' in (-1, 1) and u1'
// in (0, 1) by Random123's uneg11 and u01).
float counter_normal_value(uint64_t seed, uint32_t stream, uint32_t substream, uint64_t index);

}  // namespace fresco
