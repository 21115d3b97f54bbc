// One denoising step of an image, the same for every command that runs one (generate, bench):
// the step is the denoiser's forward plus the Euler update on device buffers owned here; a
// step of each kind (AttentionStrategy::graph_kind) runs eagerly once, which sizes every
// scratch buffer and plans every product and exchange, and is then captured as a graph and
// replayed for the following steps of that kind (the capture policy, written once).
//
// Graphs that know when they are stale: a captured step bakes in addresses and transfer
// plans owned elsewhere: the step buffers (here), the model's activation arena, the attention
// strategy's plan and exchanges, the backend's scratch and library workspaces. Each owner has an
// epoch that changes when it lays out anew; a graph records them when captured, and at every
// point where they can change (a new image, after an eager step) the ranks of the group agree
// (one host collective) to drop every graph when any rank's epochs differ, so that all of them
// capture again together and no rank replays a program its peers no longer run.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "mpi/plans/parallel_layout.hpp"
#include "src/backend/backend.hpp"
#include "src/model/denoiser.hpp"

namespace fresco {

// The median of timings (0 for none).
double median(std::vector<double> values);

// One denoising step on `backend`: the model's velocity of `tokens` [rows, C] f32 for the step
// scalars [3] f32 (t, guidance, dt) on the device, then the Euler update tokens += dt * velocity.
// What StepRunner runs and captures, and what `bench --profile` times op by op.
void denoising_step(Denoiser& model, Backend& backend, const Tensor& tokens, const Tensor& velocity,
                    const Tensor& scalars);

class StepRunner {
 public:
  // `graphs`: capture where the backend can and the group's transfers can be captured
  // (`capturable`: one rank, or device transports for a method whose exchanges complete
  // within their step).
  StepRunner(Backend& backend, const ParallelLayout& layout, Denoiser& model, bool graphs, bool capturable);

  // The sampler's state of an image of `rows` of this rank's tokens (token_channels wide);
  // reallocated only when `rows` changes, so graphs of the previous shape stay valid.
  struct Buffers {
    Tensor tokens;        // [rows, C] f32  the sampler's state (this rank's image tokens)
    Tensor velocity;      // [rows, C] f32
    Tensor scalars;       // [3] f32 on the device: t, guidance, dt of the current step
    Tensor host_scalars;  // [3] f32 host staging of `scalars`
  };
  const Buffers& buffers(int64_t rows);

  // After the denoiser's set_condition for a new image: drops the step graphs on every rank of
  // the group when anything they bake in changed on any rank (collective over the group).
  void begin_image();
  // Step `step` of `steps` with scalars (t, guidance, dt): replays the graph of its kind, or
  // runs it eagerly and captures it for the following steps of the same kind. Enqueued on the
  // backend's compute stream, timed by device events (times()).
  void run(int step, int steps, float t, float guidance, float dt);

  // Time of each step run since begin_image() (ms, device events from the step's start to the
  // next step's, so the host's hand-over between steps counts; call after the work is done)
  // and whether it ran eagerly (the first of its kind: planning, sizing, capturing).
  struct StepTime {
    double ms = 0;
    bool eager = false;
    int kind = 0;                 // AttentionStrategy::graph_kind of the step
    bool first_of_kind = false;   // the image's first step of its kind: warm-up, wherever it runs
  };
  std::vector<StepTime> times() const;
  // Bytes this rank's captured exchanges sent during the replays since begin_image() (a replay
  // runs no host code, so the transports count nothing for it).
  double replayed_bytes() const { return replayed_bytes_; }
  // How many times a graph was captured since construction (tests, reports).
  int captures() const { return captures_; }

 private:
  // What a captured step bakes in, by owner.
  struct Epochs {
    uint64_t buffers = 0, model = 0, plan = 0, allocation = 0;
    bool operator==(const Epochs&) const = default;
  };
  Epochs current() const;
  // Drops every graph on all ranks of the group if any rank holds one that is stale.
  void agree_on_graphs();

  Backend& backend_;
  const ParallelLayout& layout_;
  Denoiser& model_;
  bool graphs_;
  const bool capturable_;
  Buffers buffers_;
  int64_t rows_ = -1;
  uint64_t buffers_epoch_ = 0;
  struct CapturedStep {
    std::unique_ptr<StepGraph> graph;
    Epochs epochs;          // of the owners when captured
    double bytes_sent = 0;  // what its exchanges send per replay
  };
  std::map<int, CapturedStep> graphs_by_kind_;
  // Device events around the steps of the current image (reused across images).
  std::vector<std::unique_ptr<Event>> marks_;
  std::vector<StepTime> step_info_;  // eager, kind, first_of_kind of each step (ms filled by times())
  int steps_run_ = 0;
  double replayed_bytes_ = 0;
  int captures_ = 0;
};

}  // namespace fresco
