// Device-side timestamps for waits only the GPU sees (a stream waiting on a peer's signal word):
// a one-thread kernel reads the GPU's global nanosecond timer (%globaltimer) where it runs in
// its stream's order and stores it. Rounds of several phases: phase 0 opens the next round
// (a counter in device memory, so a captured graph's replays fill new rounds too), the later
// phases write into the round opened last. Phases of one round may be stamped from different
// streams as long as the streams are ordered between them (event joins).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "cuda/device_buffer.hpp"

namespace fresco::cuda {

class StampLog {
 public:
  // Room for `rounds` rounds of `phases` stamps (device memory, zeroed; later rounds are
  // dropped and counted).
  StampLog(int64_t rounds, int phases);

  // Queues the stamp of `phase` on `stream` (0: a new round).
  void stamp(cudaStream_t stream, int phase);
  // The rounds stamped so far, each `phases` nanosecond readings (0: a phase never stamped);
  // synchronizes the device. `dropped`: rounds past the capacity.
  std::vector<std::vector<uint64_t>> rounds(int64_t* dropped = nullptr) const;
  int phases() const { return phases_; }

 private:
  int64_t capacity_;
  int phases_;
  DeviceAllocation slots_;    // unsigned long long [capacity, phases]
  DeviceAllocation counter_;  // unsigned int: rounds opened
};

}  // namespace fresco::cuda
