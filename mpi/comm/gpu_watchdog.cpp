#include "mpi/comm/gpu_watchdog.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace fresco {

using Clock = std::chrono::steady_clock;

struct Marker {
  cudaEvent_t event = nullptr;
  Clock::time_point queued;
  double deadline_s = 0;
  std::string what;
};

struct GpuWatchdog::State {
  std::mutex mutex;
  std::deque<Marker> outstanding;      // in queueing order (one device, in-order per stream)
  std::vector<cudaEvent_t> free_events;  // recycled markers
  std::map<int, std::pair<std::function<std::string()>, std::function<void()>>> checks;
  int next_id = 1;
  int device = 0;
  std::thread thread;

  void start_locked() {
    if (thread.joinable()) return;
    cudaGetDevice(&device);
    // Detached: it lives as long as the process and never blocks its exit.
    thread = std::thread([this] { run(); });
    thread.detach();
  }

  [[noreturn]] void end_job(const std::string& reason) {
    std::vector<std::function<void()>> aborts;
    for (auto& [id, hooks] : checks) aborts.push_back(hooks.second);
    for (auto& abort : aborts)
      if (abort) abort();
    std::fprintf(stderr, "fresco: error: %s\n", reason.c_str());
    std::fflush(stderr);
    std::fflush(stdout);
    std::_Exit(6);  // the launcher ends the other ranks (their peer is gone)
  }

  void run() {
    cudaSetDevice(device);
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::unique_lock<std::mutex> lock(mutex);
      // Completed markers leave from the front; the first pending one is checked for age.
      while (!outstanding.empty()) {
        Marker& m = outstanding.front();
        const cudaError_t rc = cudaEventQuery(m.event);
        if (rc == cudaErrorNotReady) {
          const double waited = std::chrono::duration<double>(Clock::now() - m.queued).count();
          if (m.deadline_s > 0 && waited > m.deadline_s) {
            char text[64];
            std::snprintf(text, sizeof text, "%.0f", waited);
            end_job("device transfer (" + m.what + ") pending for " + text +
                    " s: a peer is hung or dead (--comm-timeout); ending the job");
          }
          break;
        }
        if (rc != cudaSuccess)
          end_job("device transfer (" + m.what + ") failed: " + cudaGetErrorString(rc));
        free_events.push_back(m.event);
        outstanding.pop_front();
      }
      for (auto& [id, hooks] : checks) {
        const std::string reason = hooks.first ? hooks.first() : std::string();
        if (!reason.empty()) end_job(reason);
      }
    }
  }
};

GpuWatchdog& GpuWatchdog::instance() {
  static GpuWatchdog watchdog;
  return watchdog;
}

GpuWatchdog::State& GpuWatchdog::state() {
  static State* s = new State;  // never destroyed: the detached thread may still use it at exit
  return *s;
}

void GpuWatchdog::expect(cudaStream_t stream, double deadline_s, const std::string& what) {
  if (deadline_s <= 0) return;
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capturing) != cudaSuccess || capturing != cudaStreamCaptureStatusNone) return;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  cudaEvent_t event = nullptr;
  if (!s.free_events.empty()) {
    event = s.free_events.back();
    s.free_events.pop_back();
  } else if (cudaEventCreateWithFlags(&event, cudaEventDisableTiming) != cudaSuccess) {
    return;  // out of resources: this transfer goes unwatched (the next one is)
  }
  if (cudaEventRecord(event, stream) != cudaSuccess) {
    s.free_events.push_back(event);
    return;
  }
  s.outstanding.push_back({event, Clock::now(), deadline_s, what});
  s.start_locked();
}

int GpuWatchdog::add(std::function<std::string()> check, std::function<void()> abort) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  const int id = s.next_id++;
  s.checks[id] = {std::move(check), std::move(abort)};
  s.start_locked();
  return id;
}

void GpuWatchdog::remove(int id) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.checks.erase(id);
}

}  // namespace fresco
