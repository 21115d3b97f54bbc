#include "mpi/comm/ucx_runtime.hpp"

#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <utility>

namespace fresco {

void ucx_fail(ucs_status_t status, const char* call, const char* file, int line) {
  throw ApiError(std::string("UCX call failed: ") + ucs_status_string(status) + " [" + call + " at " +
                 source_location(file, line) + "]");
}

UcxMemory::UcxMemory(ucp_context_h context, void* address, size_t bytes) : context_(context) {
  ucp_mem_map_params_t params{};
  params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
  params.address = address;
  params.length = bytes;
  FRESCO_UCX_CHECK(ucp_mem_map(context, &params, &memory_));
}

UcxMemory& UcxMemory::operator=(UcxMemory&& other) noexcept {
  if (this != &other) {
    release();
    context_ = std::exchange(other.context_, nullptr);
    memory_ = std::exchange(other.memory_, nullptr);
  }
  return *this;
}

void UcxMemory::release() noexcept {
  if (memory_) ucp_mem_unmap(context_, memory_);
  memory_ = nullptr;
}

std::vector<char> UcxMemory::packed_rkey() const {
  void* buffer = nullptr;
  size_t bytes = 0;
  FRESCO_UCX_CHECK(ucp_rkey_pack(context_, memory_, &buffer, &bytes));
  const UcxPackedRkey owner(buffer);
  const char* begin = static_cast<const char*>(buffer);
  return std::vector<char>(begin, begin + bytes);
}


std::vector<std::vector<char>> ucx_gather_blobs(MpiCommunicator& base, const std::vector<char>& mine) {
  const size_t size = size_t(base.size());
  const uint64_t my_bytes = mine.size();
  std::vector<uint64_t> bytes(size);
  base.host_all_gather(&my_bytes, bytes.data(), Displacements::packed(std::vector<size_t>(size, sizeof(uint64_t))));
  std::vector<size_t> counts(bytes.begin(), bytes.end());
  const Displacements d = Displacements::packed(counts);
  std::vector<char> all(d.total());
  base.host_all_gather(mine.data(), all.data(), d);
  std::vector<std::vector<char>> blobs;
  for (size_t r = 0; r < size; ++r)
    blobs.emplace_back(all.begin() + ptrdiff_t(d.offsets[r]), all.begin() + ptrdiff_t(d.offsets[r] + d.counts[r]));
  return blobs;
}

UcxControlBlock& UcxRuntime::new_control_block(size_t count) {
  auto block = std::make_unique<UcxControlBlock>();
  block->counters.reset(new uint64_t[count]());
  block->memory = UcxMemory(context.get(), block->counters.get(), count * sizeof(uint64_t));
  control_blocks.push_back(std::move(block));
  return *control_blocks.back();
}

void UcxRuntime::start_progress_thread() {
  progress_thread = std::thread([this] {
    while (!stopping.load(std::memory_order_relaxed)) {
      {
        const std::lock_guard<std::mutex> guard(mutex);
        while (ucp_worker_progress(worker.get()) != 0) {
        }
        std::erase_if(pending, [](UcxPending* exchange) { return exchange->issue(); });
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));  // a poll, not a busy core
    }
  });
}

void UcxRuntime::stop_progress_thread() {
  stopping = true;
  if (progress_thread.joinable()) progress_thread.join();
}

}  // namespace fresco
