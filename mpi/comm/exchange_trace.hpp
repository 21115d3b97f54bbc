// FRESCO_COMM_TRACE=PREFIX: device timestamps around every round of the device transports'
// exchanges (IPC, NCCL), to tell where the exposed communication of a step goes. Each round of
// an exchange stamps the GPU's global timer (cuda/stamp_log.hpp) at the phases below, on the
// stream where that moment happens, so replays of captured step graphs are timed too. When the
// exchange is destroyed its rounds are summarized into PREFIX.rank<R>.jsonl (R: the world rank),
// one line per exchange: rounds, and per phase interval the median and the total (ms).
//
//   produced       the producer's stream reached start() (its data is written)
//   comm_begins    the communicator's stream took the round up (earlier rounds done)
//   permission     IPC: the first receiver allowed the put (its buffer was free)
//   puts_done      IPC: every put and local copy done
//   arrived        every source's data landed here
//   consumer_waits the consumer's stream reached finish()
//   consumer_runs  the consumer's stream went on (the join); minus consumer_waits: exposed
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <string>

#include "cuda/stamp_log.hpp"

namespace fresco {

class ExchangeTrace {
 public:
  enum Phase { produced, comm_begins, permission, puts_done, arrived, consumer_waits, consumer_runs, kPhases };

  // A trace for the exchange `what` where FRESCO_COMM_TRACE is set, else null.
  static std::unique_ptr<ExchangeTrace> if_requested(const std::string& what);
  ExchangeTrace(std::string what, std::string path);
  // Writes the summary (synchronizes the device; errors are reported on stderr, not thrown).
  ~ExchangeTrace();

  void stamp(cudaStream_t stream, Phase phase) { log_.stamp(stream, int(phase)); }

 private:
  std::string what_, path_;
  cuda::StampLog log_;
};

}  // namespace fresco
