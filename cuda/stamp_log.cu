#include "cuda/stamp_log.hpp"

#include <algorithm>

#include "cuda/cuda_check.hpp"

namespace fresco::cuda {
namespace {

// One thread: the stream's order is the only synchronization the counter needs.
__global__ void stamp_kernel(unsigned long long* slots, unsigned int* counter, int phases, int phase,
                             unsigned int capacity) {
  unsigned long long now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  unsigned int round;
  if (phase == 0) {
    round = *counter;
    *counter = round + 1;
  } else {
    round = *counter - 1;
  }
  if (round < capacity) slots[size_t(round) * phases + phase] = now;
}

}  // namespace

StampLog::StampLog(int64_t rounds, int phases)
    : capacity_(rounds),
      phases_(phases),
      slots_(size_t(capacity_) * size_t(phases_) * sizeof(unsigned long long), "a stamp log"),
      counter_(sizeof(unsigned int), "a stamp log's counter") {
  FRESCO_CUDA_CHECK(cudaMemset(slots_.get(), 0, slots_.size()));
  FRESCO_CUDA_CHECK(cudaMemset(counter_.get(), 0, counter_.size()));
  FRESCO_CUDA_CHECK(cudaDeviceSynchronize());
}

void StampLog::stamp(cudaStream_t stream, int phase) {
  stamp_kernel<<<1, 1, 0, stream>>>(slots_.as<unsigned long long>(), counter_.as<unsigned int>(), phases_, phase,
                                    static_cast<unsigned int>(capacity_));
  FRESCO_CUDA_CHECK(cudaGetLastError());
}

std::vector<std::vector<uint64_t>> StampLog::rounds(int64_t* dropped) const {
  FRESCO_CUDA_CHECK(cudaDeviceSynchronize());
  unsigned int opened = 0;
  FRESCO_CUDA_CHECK(cudaMemcpy(&opened, counter_.get(), sizeof opened, cudaMemcpyDeviceToHost));
  const int64_t kept = std::min<int64_t>(opened, capacity_);
  std::vector<unsigned long long> flat(size_t(kept) * size_t(phases_));
  if (kept)
    FRESCO_CUDA_CHECK(cudaMemcpy(flat.data(), slots_.get(), flat.size() * sizeof(unsigned long long), cudaMemcpyDeviceToHost));
  if (dropped) *dropped = int64_t(opened) - kept;
  std::vector<std::vector<uint64_t>> out(static_cast<size_t>(kept));
  for (int64_t r = 0; r < kept; ++r)
    out[size_t(r)].assign(flat.begin() + r * phases_, flat.begin() + (r + 1) * phases_);
  return out;
}

}  // namespace fresco::cuda
