#include "mpi/comm/ipc_communicator.hpp"

#include <cuda.h>

#include <algorithm>
#include <cstring>

#include "mpi/comm/device_exchange.hpp"
#include "mpi/comm/gpu_watchdog.hpp"
#include "mpi/comm/mpi_context.hpp"
#include "mpi/comm/transfer_plan.hpp"

namespace fresco {
namespace {

constexpr int kChannels = 512;  // exchanges alive at once between one pair, one direction

// The driver's stream memory operations, looked up through the runtime (the binary does not
// link libcuda, so it still starts on machines without a GPU driver).
using WaitValue32 = CUresult (*)(CUstream, CUdeviceptr, cuuint32_t, unsigned int);
using WriteValue32 = CUresult (*)(CUstream, CUdeviceptr, cuuint32_t, unsigned int);

struct StreamMemoryOps {
  WaitValue32 wait = nullptr;
  WriteValue32 write = nullptr;
};

const StreamMemoryOps& memory_ops() {
  static const StreamMemoryOps ops = [] {
    StreamMemoryOps o;
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    FRESCO_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuStreamWaitValue32", &fn, 12000, cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || !fn)
      throw ApiError("the CUDA driver lacks cuStreamWaitValue32, which the IPC transport needs; use --transport mpi");
    o.wait = reinterpret_cast<WaitValue32>(fn);
    FRESCO_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuStreamWriteValue32", &fn, 12000, cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || !fn)
      throw ApiError("the CUDA driver lacks cuStreamWriteValue32, which the IPC transport needs; use --transport mpi");
    o.write = reinterpret_cast<WriteValue32>(fn);
    return o;
  }();
  return ops;
}

void check_driver(CUresult rc, const char* call) {
  if (rc != CUDA_SUCCESS)
    throw ApiError(std::string("CUDA driver call failed: ") + call + " returned " + std::to_string(int(rc)) +
                   " (stream memory operations; use --transport mpi where the driver cannot do them)");
}

void write_word(cudaStream_t s, uint32_t* word, uint32_t value) {
  check_driver(memory_ops().write(CUstream(s), CUdeviceptr(word), value, CU_STREAM_WRITE_VALUE_DEFAULT),
               "cuStreamWriteValue32");
}

// `flush`: the work queued after the wait also sees the remote writes that reached this device
// before the word did (ipc_communicator.hpp says when that is needed and possible).
void wait_word(cudaStream_t s, uint32_t* word, uint32_t value, bool flush = false) {
  const unsigned flags = CU_STREAM_WAIT_VALUE_EQ | (flush ? unsigned(CU_STREAM_WAIT_VALUE_FLUSH) : 0u);
  check_driver(memory_ops().wait(CUstream(s), CUdeviceptr(word), value, flags), "cuStreamWaitValue32");
}

// What a receiver tells a sender about one exchange: where the sender's part goes.
struct PutTarget {
  cudaIpcMemHandle_t handle;  // the receive buffer's allocation
  uint64_t offset;            // where the part starts in that allocation
  uint64_t bytes;             // the part's size (the sender checks its own)
  int32_t channel;            // the receiver's k of channel (sender -> receiver, k)
  int32_t pad;
};

constexpr int kPutTargetTag = 201;  // point-to-point set-up messages of this transport

// The start of the allocation that holds `pointer` (small cudaMalloc blocks share one; IPC
// exports and maps whole allocations).
char* allocation_of(const void* pointer) {
  using AddressRange = CUresult (*)(CUdeviceptr*, size_t*, CUdeviceptr);
  static const AddressRange range = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    FRESCO_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &fn, 12000, cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || !fn) throw ApiError("the CUDA driver lacks cuMemGetAddressRange");
    return reinterpret_cast<AddressRange>(fn);
  }();
  CUdeviceptr base = 0;
  size_t size = 0;
  check_driver(range(&base, &size, CUdeviceptr(pointer)), "cuMemGetAddressRange");
  return reinterpret_cast<char*>(base);
}

}  // namespace

// One bound exchange: puts into the peers' windows and the signals around them.
class IpcExchange final : public DeviceExchange {
 public:
  struct Put {
    int peer, channel;
    DeviceCopy copy;
  };
  struct Source {
    int peer, channel;
  };
  IpcExchange(IpcCommunicator& comm, std::string what, std::vector<Tensor> buffers, std::vector<Put> puts,
              std::vector<Source> sources, std::vector<DeviceCopy> local, double bytes)
      : DeviceExchange(comm.stream_.get(), comm, std::move(what), bytes),
        comm_(comm),
        buffers_(std::move(buffers)),
        puts_(std::move(puts)),
        sources_(std::move(sources)),
        local_(std::move(local)) {}
  ~IpcExchange() override {
    // A released round that never started leaves its permission standing in the sources'
    // signal blocks: withdraw it, or the channel's next exchange would see it as its own.
    // The release's own write is queued on a compute stream: let it land first. Unchecked: a
    // destructor reports nothing (a dead peer is the watchdog's).
    if (released_) {
      cudaDeviceSynchronize();
      for (const Source& src : sources_)
        memory_ops().write(CUstream(comm_.stream_.get()), CUdeviceptr(comm_.ready_word(src.peer, comm_.rank(), src.channel)),
                           0, CU_STREAM_WRITE_VALUE_DEFAULT);
    }
    cudaStreamSynchronize(comm_.stream_.get());  // queued signals still use the channels
    for (const Put& p : puts_) comm_.send_channels_[size_t(p.peer)][size_t(p.channel)] = 0;
    for (const Source& s : sources_) comm_.recv_channels_[size_t(s.peer)][size_t(s.channel)] = 0;
  }

 private:
  // The consumer is done with this round's data once `after`'s queued work is: the sources may
  // put the next round's now, before this rank reaches the next start() (one-sided: a sender
  // that is ahead no longer waits for the receiver to catch up).
  // The permission is written on `after` itself: no fork to the communicator's stream, so a
  // captured step has nothing left to join.
  void release(Stream& after) override {
    allow_puts(cuda::native_stream(after));
    released_ = true;
  }

  // Tells every source that this rank's window may be written (its reads are queued before).
  void allow_puts(cudaStream_t s) {
    for (const Source& src : sources_) write_word(s, comm_.ready_word(src.peer, comm_.rank(), src.channel), 1);
  }

  void enqueue(cudaStream_t s) override {
    const int me = comm_.rank();
    // 1. Permission to write here, unless release() gave it already after the last round. The
    //    same holds for every replay of a captured step, which records both calls.
    if (!released_) allow_puts(s);
    released_ = false;
    // 2. Each put waits for its receiver's permission, then copies and signals arrival.
    bool first = true;
    for (const Put& put : puts_) {
      uint32_t* ready = comm_.ready_word(me, put.peer, put.channel);
      wait_word(s, ready, 1);
      write_word(s, ready, 0);
      if (first) stamp(s, ExchangeTrace::permission);
      first = false;
      FRESCO_CUDA_CHECK(cudaMemcpyAsync(put.copy.dst, put.copy.src, put.copy.bytes, cudaMemcpyDeviceToDevice, s));
      write_word(s, comm_.arrived_word(me, put.peer, put.channel), 1);
    }
    copy_all(local_, s);
    stamp(s, ExchangeTrace::puts_done);
    // 3. Every source's data has landed here.
    for (const Source& src : sources_) {
      uint32_t* arrived = comm_.arrived_word(src.peer, me, src.channel);
      wait_word(s, arrived, 1, comm_.flush_remote_writes_);
      write_word(s, arrived, 0);
    }
  }

  IpcCommunicator& comm_;
  bool released_ = false;        // release() has let the sources put the next round
  std::vector<Tensor> buffers_;  // keeps the bound memory alive
  std::vector<Put> puts_;
  std::vector<Source> sources_;
  std::vector<DeviceCopy> local_;
};

IpcCommunicator::IpcCommunicator(std::unique_ptr<MpiCommunicator> base) : LayeredCommunicator(std::move(base)) {
  memory_ops();  // fails early (and on every rank) where the driver lacks them
  const int n = size();
  // At least the driver's 2 MiB granule: small cudaMalloc blocks share a granule, and a process
  // can map a granule from a peer only once.
  const size_t bytes = std::max(size_t(2) << 20, 2 * size_t(n) * size_t(kChannels) * sizeof(uint32_t));
  send_channels_.assign(size_t(n), std::vector<int>(size_t(kChannels), 0));
  recv_channels_.assign(size_t(n), std::vector<int>(size_t(kChannels), 0));
  int device = 0, can_flush = 0;
  FRESCO_CUDA_CHECK(cudaGetDevice(&device));
  FRESCO_CUDA_CHECK(cudaDeviceGetAttribute(&can_flush, cudaDevAttrCanFlushRemoteWrites, device));
  flush_remote_writes_ = can_flush != 0;
  signals_ = cuda::DeviceAllocation(bytes, "the CUDA IPC signal words");
  FRESCO_CUDA_CHECK(cudaMemset(signals_.get(), 0, bytes));
  FRESCO_CUDA_CHECK(cudaDeviceSynchronize());  // zeros in place before any peer signals
  // The block may share an allocation with other small buffers: export that allocation.
  struct Exported {
    cudaIpcMemHandle_t handle;
    uint64_t offset;
  } mine{};
  char* allocation = allocation_of(signals_.get());
  FRESCO_CUDA_CHECK(cudaIpcGetMemHandle(&mine.handle, allocation));
  mine.offset = uint64_t(signals_.as<char>() - allocation);
  std::vector<Exported> all(static_cast<size_t>(n));
  base_->host_all_gather(&mine, all.data(), Displacements::packed(std::vector<size_t>(size_t(n), sizeof mine)));
  peer_signals_.assign(size_t(n), nullptr);
  for (int p = 0; p < n; ++p)
    peer_signals_[size_t(p)] =
        p == rank() ? signals_.as<uint32_t>()
                    : reinterpret_cast<uint32_t*>(static_cast<char*>(map_peer_memory(all[size_t(p)].handle)) +
                                                  all[size_t(p)].offset);
  base_->barrier();  // every peer has mapped every block before any exchange signals into it
}

IpcCommunicator::~IpcCommunicator() {
  cudaStreamSynchronize(stream_.get());  // queued signals and puts still use the memory below
}

IpcCommunicator::PeerMapping::~PeerMapping() {
  if (base_) cudaIpcCloseMemHandle(base_);  // unchecked: a destructor reports nothing
}

void IpcCommunicator::watch(Stream& stream) {
  GpuWatchdog::instance().expect(cuda::native_stream(stream), deadline(), "a step's transfers on " + describe());
}

uint32_t* IpcCommunicator::ready_word(int sender, int receiver, int k) const {
  return peer_signals_[size_t(sender)] + size_t(receiver) * kChannels + size_t(k);
}

uint32_t* IpcCommunicator::arrived_word(int sender, int receiver, int k) const {
  return peer_signals_[size_t(receiver)] + (size_t(size()) + size_t(sender)) * kChannels + size_t(k);
}

void* IpcCommunicator::map_peer_memory(const cudaIpcMemHandle_t& handle) {
  const std::string key(reinterpret_cast<const char*>(&handle), sizeof handle);
  auto found = mapped_.find(key);
  if (found != mapped_.end()) return found->second.get();
  void* pointer = nullptr;
  const cudaError_t rc = cudaIpcOpenMemHandle(&pointer, handle, cudaIpcMemLazyEnablePeerAccess);
  if (rc != cudaSuccess) {
    cudaGetLastError();
    if (rc == cudaErrorAlreadyMapped)
      throw ApiError("CUDA IPC cannot map a peer's buffer on " + describe() +
                     ": its 2 MiB granule is already mapped through another buffer (IPC windows must be "
                     "allocations of their own of at least 2 MiB, as the plans' arenas are)");
    throw ApiError(std::string("CUDA IPC cannot map a peer's memory: ") + cudaGetErrorString(rc) + " (" +
                   describe() + "; the ranks must share a node and their GPUs peer access; use --transport nccl or mpi)");
  }
  mapped_.emplace(key, PeerMapping(pointer));  // owned at once: a failed insertion closes it again
  return pointer;
}

int IpcCommunicator::take_channel(std::vector<std::vector<int>>& used, int peer) {
  std::vector<int>& flags = used[size_t(peer)];
  for (size_t k = 0; k < flags.size(); ++k)
    if (!flags[k]) {
      flags[k] = 1;
      return int(k);
    }
  throw ApiError("CUDA IPC: more than " + std::to_string(kChannels) + " exchanges alive between ranks " +
                 std::to_string(rank()) + " and " + std::to_string(peer) + " of " + describe());
}

std::unique_ptr<Exchange> IpcCommunicator::bind(const TransferPlan& plan, const std::string& what,
                                                std::vector<Tensor> buffers) {
  const int me = rank();
  // Receivers tell senders where their parts go (point to point: only the peers of this
  // exchange take part, in the order they plan their exchanges).
  std::vector<PutTarget> targets_out(plan.receives.size()), targets_in(plan.sends.size());
  std::vector<IpcExchange::Source> sources;
  if (!plan.receives.empty()) {
    char* base = allocation_of(plan.window.raw());
    cudaIpcMemHandle_t handle{};
    FRESCO_CUDA_CHECK(cudaIpcGetMemHandle(&handle, base));
    const char* window = static_cast<const char*>(plan.window.raw());
    for (size_t i = 0; i < plan.receives.size(); ++i) {
      const PeerTransfer& r = plan.receives[i];
      const int k = take_channel(recv_channels_, r.peer);
      sources.push_back({r.peer, k});
      targets_out[i] = {handle, uint64_t(window - base) + r.offset, r.bytes, k, 0};
    }
  }
  std::vector<MPI_Request> requests(plan.receives.size() + plan.sends.size(), MPI_REQUEST_NULL);
  for (size_t i = 0; i < plan.receives.size(); ++i)
    FRESCO_MPI_CHECK(MPI_Isend(&targets_out[i], sizeof(PutTarget), MPI_BYTE, plan.receives[i].peer, kPutTargetTag,
                               base_->comm(), &requests[i]));
  for (size_t i = 0; i < plan.sends.size(); ++i)
    FRESCO_MPI_CHECK(MPI_Irecv(&targets_in[i], sizeof(PutTarget), MPI_BYTE, plan.sends[i].peer, kPutTargetTag,
                               base_->comm(), &requests[plan.receives.size() + i]));
  if (!requests.empty())
    FRESCO_MPI_CHECK(MPI_Waitall(int(requests.size()), requests.data(), MPI_STATUSES_IGNORE));

  std::vector<IpcExchange::Put> puts;
  for (size_t i = 0; i < plan.sends.size(); ++i) {
    const PeerTransfer& s = plan.sends[i];
    const PutTarget& t = targets_in[i];
    const int k = take_channel(send_channels_, s.peer);
    FRESCO_ASSERT(t.bytes == s.bytes && t.channel == k,
                  "CUDA IPC " + what + ": rank " + std::to_string(me) + " sends " + std::to_string(s.bytes) +
                      " bytes on channel " + std::to_string(k) + " to rank " + std::to_string(s.peer) +
                      ", which expects " + std::to_string(t.bytes) + " on channel " + std::to_string(t.channel) +
                      " (the two ranks planned their exchanges in different orders)");
    char* base = static_cast<char*>(map_peer_memory(t.handle));
    puts.push_back({s.peer, k, {base + t.offset, s.buffer, s.bytes}});
  }
  return std::make_unique<IpcExchange>(*this, what, std::move(buffers), std::move(puts), std::move(sources),
                                       plan.local, plan.bytes_sent());
}

std::unique_ptr<Exchange> IpcCommunicator::all_to_all(const Tensor& send, const Displacements& send_d,
                                                      const Tensor& recv, const Displacements& recv_d) {
  return bind(plan_all_to_all(rank(), size(), send, send_d, recv, recv_d), "all-to-all", {send, recv});
}

std::unique_ptr<Exchange> IpcCommunicator::send_recv(const Tensor& send, int dest, const Tensor& recv, int source) {
  return bind(plan_send_recv(rank(), size(), send, dest, recv, source), "send/recv", {send, recv});
}

std::unique_ptr<Exchange> IpcCommunicator::all_gather_in_place(const Tensor& all, const Displacements& all_d) {
  return bind(plan_all_gather(rank(), size(), all, all_d), "all-gather", {all});
}

void IpcCommunicator::all_reduce_sum(const Tensor& x, Stream& stream) { reduce_.sum(*base_, x, stream); }

}  // namespace fresco
