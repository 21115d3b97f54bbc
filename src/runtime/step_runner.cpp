#include "src/runtime/step_runner.hpp"

#include <algorithm>

#include "src/runtime/validation.hpp"

namespace fresco {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

StepRunner::StepRunner(Backend& backend, const ParallelLayout& layout, Denoiser& model, bool graphs, bool capturable)
    : backend_(backend), layout_(layout), model_(model), graphs_(graphs), capturable_(capturable) {}

const StepRunner::Buffers& StepRunner::buffers(int64_t rows) {
  if (rows == rows_) return buffers_;
  const int64_t C = model_.spec().token_channels;
  buffers_.tokens = backend_.alloc({rows, C}, DType::f32);
  buffers_.velocity = backend_.alloc({rows, C}, DType::f32);
  buffers_.scalars = backend_.alloc({3}, DType::f32);
  buffers_.host_scalars = Tensor({3});
  rows_ = rows;
  ++buffers_epoch_;  // graphs on the old buffers are stale
  return buffers_;
}

StepRunner::Epochs StepRunner::current() const {
  return {buffers_epoch_, model_.buffers_epoch(), model_.attention().plan_epoch(), backend_.allocation_epoch()};
}

void StepRunner::agree_on_graphs() {
  if (!graphs_ || !capturable_) return;  // no rank holds a graph
  const Epochs now = current();
  bool stale = false;
  for (const auto& [kind, captured] : graphs_by_kind_) stale = stale || !(captured.epochs == now);
  // Every rank drops its graphs together: a rank that replayed an old program while its peers
  // ran a new plan would post transfers of another size (a hang, or wrong data).
  if (group_any(layout_.group(), stale)) graphs_by_kind_.clear();
}

void StepRunner::begin_image() {
  steps_run_ = 0;
  replayed_bytes_ = 0;
  step_info_.clear();
  agree_on_graphs();
}

void denoising_step(Denoiser& model, Backend& backend, const Tensor& tokens, const Tensor& velocity,
                    const Tensor& scalars) {
  model.forward(tokens, scalars.rows(0, 2), velocity);
  backend.axpy(scalars.rows(2, 1), velocity, tokens);  // Euler: tokens += dt * velocity
}

void StepRunner::run(int step, int steps, float t, float guidance, float dt) {
  FRESCO_ASSERT(rows_ >= 0, "StepRunner::run before buffers()");
  const Buffers& b = buffers_;
  // The step's scalars reach the device by one copy outside any graph, so a replay reads the
  // new values; the host waits first until the previous step has read the staging values.
  backend_.synchronize();
  float* staged = b.host_scalars.f32();
  staged[0] = t;
  staged[1] = guidance;
  staged[2] = dt;
  backend_.copy(b.host_scalars, b.scalars);
  while (marks_.size() < size_t(2 * (steps_run_ + 1))) marks_.push_back(backend_.new_timing_event());
  marks_[size_t(2 * steps_run_)]->record(backend_.stream());

  const int kind = model_.attention().graph_kind(step);
  bool eager = false;
  if (const auto found = graphs_by_kind_.find(kind); found != graphs_by_kind_.end()) {
    found->second.graph->replay();
    layout_.watch(backend_.stream());  // a hung peer ends the job, not this rank's GPU
    replayed_bytes_ += found->second.bytes_sent;
  } else {
    eager = true;
    model_.set_step(step);  // replays before it ran no host code
    const double sent_before = layout_.stats().bytes_sent;
    denoising_step(model_, backend_, b.tokens, b.velocity, b.scalars);
    const double sent = layout_.stats().bytes_sent - sent_before;
    // The eager step may have planned or grown what other kinds' graphs point at.
    agree_on_graphs();
    // Captured for the following steps of the same kind (recorded for step + 1, not run).
    if (graphs_ && capturable_ && step + 1 < steps && model_.attention().graph_kind(step + 1) == kind) {
      model_.set_step(step + 1);
      CapturedStep captured{backend_.capture([&] { denoising_step(model_, backend_, b.tokens, b.velocity, b.scalars); }), current(), sent};
      if (captured.graph) {
        graphs_by_kind_[kind] = std::move(captured);
        ++captures_;
      } else {
        graphs_ = false;  // this backend cannot capture
      }
      layout_.reset_stats();  // the capture's exchanges sent nothing; count the eager step again
      replayed_bytes_ += sent;
    }
  }
  marks_[size_t(2 * steps_run_ + 1)]->record(backend_.stream());
  StepTime info;
  info.eager = eager;
  info.kind = kind;
  info.first_of_kind = std::none_of(step_info_.begin(), step_info_.end(), [&](const StepTime& s) { return s.kind == kind; });
  step_info_.push_back(info);
  ++steps_run_;
}

std::vector<StepRunner::StepTime> StepRunner::times() const {
  backend_.synchronize();
  std::vector<StepTime> t = step_info_;
  // From a step's start to the next one's: what the step costs in a sequence of steps, the
  // host's hand-over between them (staging the scalars, the stop check) included; the last
  // step to its end.
  for (int i = 0; i < steps_run_; ++i) {
    const Event& end = i + 1 < steps_run_ ? *marks_[size_t(2 * i + 2)] : *marks_[size_t(2 * i + 1)];
    t[size_t(i)].ms = end.elapsed_ms(*marks_[size_t(2 * i)]);
  }
  return t;
}

}  // namespace fresco
