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
//
// With a step cache (docs/step-cache.md) a step is two parts: the head (embeddings, the first
// blocks, the metric's sums), then the host's decision (the sums added over the group in rank
// order, one small device-to-host read and one host collective), then the computed or the
// cached tail. Each part of each kind is a graph of its own; a head and a tail are captured
// together, in the order they run, so that the host state a plan keeps between them matches.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "mpi/plans/parallel_layout.hpp"
#include "src/backend/backend.hpp"
#include "src/model/denoiser.hpp"
#include "src/runtime/step_cache.hpp"

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
  // `cache`: the step cache (none by default); the model's set_step_cache must match it.
  StepRunner(Backend& backend, const ParallelLayout& layout, Denoiser& model, bool graphs, bool capturable,
             const StepCacheOptions& cache = {});
  // FP8's hybrid schedule (--fp8-bf16-steps N): with a model whose linears are FP8, the first N
  // and the last N steps of an image run its bf16 weights instead (each precision its own graphs).
  void set_bf16_edge_steps(int n) { bf16_edge_steps_ = n; }

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
  void begin_image(int steps);
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
    bool bf16 = false;            // a bf16 step of an FP8 model's hybrid schedule
    bool first_of_kind = false;   // the image's first step of its kind, precision and cache decision
    bool cached = false;          // the step reused the cached residual
    double decision_ms = 0;       // with a cache: the host's decision after the head had finished
                                  // (the 16-byte read, the group's gather, the policy)
  };
  std::vector<StepTime> times() const;
  // The median ms of `times` that were cached (or computed), over the steady state where it has
  // any (all but the first step of each kind and decision: it plans, sizes and captures); 0 for none.
  static double median_ms(const std::vector<StepTime>& times, bool cached);
  // Bytes this rank's captured exchanges sent during the replays since begin_image() (a replay
  // runs no host code, so the transports count nothing for it).
  double replayed_bytes() const { return replayed_bytes_; }
  // How many times a graph was captured since construction (tests, reports).
  int captures() const { return captures_; }
  // The step cache's decisions since begin_image() ('1' computed, '0' cached; "" without a cache).
  std::string cache_decisions() const { return cache_ ? cache_->decisions() : std::string(); }
  const StepCachePolicy* cache() const { return cache_.get(); }

 private:
  // What a captured step bakes in, by owner.
  struct Epochs {
    uint64_t buffers = 0, model = 0, plan = 0, allocation = 0;
    bool operator==(const Epochs&) const = default;
  };
  Epochs current() const;
  // Drops every graph on all ranks of the group if any rank holds one that is stale.
  void agree_on_graphs();
  // A step's kind: AttentionStrategy::graph_kind times 2, plus 1 for a bf16 step of an FP8 model's
  // hybrid schedule. Steps of one kind replay one graph.
  int step_kind(int step, int steps) const;
  // The model's precision for a step of `kind` (Denoiser::set_fp8_active), before it runs or is captured.
  void set_precision(int kind);
  // A step graph's key: the step's kind and the part of the step.
  enum class Part { whole, head, computed_tail, cached_tail };
  using GraphKey = std::pair<int, Part>;
  // Runs a step without a cache; returns whether it ran eagerly.
  bool run_whole(int step, int steps, int kind);
  // Runs a step with the cache; returns whether it ran eagerly and sets `cached`.
  bool run_cached(int step, int steps, int kind, StepTime& info);
  // The image's decision for `step` from this rank's sums (host collective over the group);
  // `ms`: its host time once the head has finished.
  bool agree_on_cache(int step, double& ms);
  // After an eager step: captures the graphs of `parts` (in order) for step + 1 where the
  // backend and the group allow and step + 1 is of the same kind.
  void capture_for_next(int step, int steps, int kind, const std::vector<Part>& parts);
  // Replays the graph of `key` if there is one.
  bool replay(const GraphKey& key);
  // Runs `part` eagerly for `step`, counting what its exchanges send.
  void run_eagerly(int step, int kind, Part part);
  void enqueue(Part part);

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
  std::map<GraphKey, CapturedStep> captured_;
  std::map<GraphKey, double> part_bytes_;  // what each part's exchanges sent when it last ran eagerly
  std::unique_ptr<StepCachePolicy> cache_;  // null without a cache
  int bf16_edge_steps_ = 0;                  // set_bf16_edge_steps
  // Device events around the steps of the current image (reused across images).
  std::vector<std::unique_ptr<Event>> marks_;
  std::vector<StepTime> step_info_;  // eager, kind, first_of_kind of each step (ms filled by times())
  int steps_run_ = 0;
  double replayed_bytes_ = 0;
  int captures_ = 0;
};

}  // namespace fresco
