// The watchdog of the device transports (NCCL, CUDA IPC): their transfers wait on peers inside
// the device's queues, where no host call can time out, so a peer that is hung or dead would
// stall this rank's GPU, and then its host at the next synchronization, forever.
//
// After queueing a transfer, a communicator records an event behind it (expect()); a host
// thread polls the oldest outstanding events every 50 ms. One that is still pending after the
// communicator's deadline (--comm-timeout), or an asynchronous error a communicator reports
// (NCCL's ncclCommGetAsyncError), ends the process: the registered abort hooks run (they abort
// the NCCL communicators, so that no kernel keeps waiting), the reason is printed once, and the
// process exits with status 6, which makes mpiexec or srun end the other ranks. Work captured
// in a CUDA graph is watched by an event recorded after each replay (Communicator::watch).
#pragma once

#include <cuda_runtime_api.h>

#include <functional>
#include <string>

namespace fresco {

class GpuWatchdog {
 public:
  // The process's watchdog; its thread starts at the first expect() or add_check().
  static GpuWatchdog& instance();

  // Work queued on `stream` so far must complete within `deadline_s` seconds (<= 0: not
  // watched). `what` names the transfer and communicator for the report. A stream that is
  // being captured into a graph is not watched (its work runs at replay).
  void expect(cudaStream_t stream, double deadline_s, const std::string& what);

  // A periodic check: returns a non-empty reason when the job must end (an asynchronous error).
  // `abort` runs before the process exits (aborting the communicator it belongs to).
  // Returns an id for remove().
  int add(std::function<std::string()> check, std::function<void()> abort);
  void remove(int id);

 private:
  GpuWatchdog() = default;
  struct State;
  State& state();
};

}  // namespace fresco
