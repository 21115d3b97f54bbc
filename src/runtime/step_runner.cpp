#include "src/runtime/step_runner.hpp"

#include <algorithm>
#include <chrono>

#include "src/runtime/validation.hpp"

namespace fresco {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

StepRunner::StepRunner(Backend& backend, const ParallelLayout& layout, Denoiser& model, bool graphs, bool capturable,
                       const StepCacheOptions& cache)
    : backend_(backend), layout_(layout), model_(model), graphs_(graphs), capturable_(capturable) {
  if (cache.enabled()) cache_ = std::make_unique<StepCachePolicy>(cache);
}

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
  for (const auto& [key, captured] : captured_) stale = stale || !(captured.epochs == now);
  // Every rank drops its graphs together: a rank that replayed an old program while its peers
  // ran a new plan would post transfers of another size (a hang, or wrong data).
  if (group_any(layout_.group(), stale)) captured_.clear();
}

void StepRunner::begin_image(int steps) {
  steps_run_ = 0;
  replayed_bytes_ = 0;
  step_info_.clear();
  if (cache_) cache_->begin_image(steps);
  agree_on_graphs();
}

void denoising_step(Denoiser& model, Backend& backend, const Tensor& tokens, const Tensor& velocity,
                    const Tensor& scalars) {
  model.forward(tokens, scalars.rows(0, 2), velocity);
  backend.axpy(scalars.rows(2, 1), velocity, tokens);  // Euler: tokens += dt * velocity
}

void StepRunner::enqueue(Part part) {
  const Buffers& b = buffers_;
  switch (part) {
    case Part::whole:
      denoising_step(model_, backend_, b.tokens, b.velocity, b.scalars);
      break;
    case Part::head:
      model_.forward_head(b.tokens, b.scalars.rows(0, 2));
      break;
    case Part::computed_tail:
    case Part::cached_tail:
      model_.forward_tail(b.velocity, part == Part::cached_tail);
      backend_.axpy(b.scalars.rows(2, 1), b.velocity, b.tokens);  // Euler: tokens += dt * velocity
      break;
  }
}

bool StepRunner::replay(const GraphKey& key) {
  const auto found = captured_.find(key);
  if (found == captured_.end()) return false;
  found->second.graph->replay();
  layout_.watch(backend_.stream());  // a hung peer ends the job, not this rank's GPU
  replayed_bytes_ += found->second.bytes_sent;
  return true;
}

int StepRunner::step_kind(int step, int steps) const {
  const int n = model_.fp8_linears() ? bf16_edge_steps_ : 0;
  const bool bf16_step = step < n || step >= steps - n;
  return 2 * model_.attention().graph_kind(step) + (bf16_step ? 1 : 0);
}

void StepRunner::set_precision(int kind) {
  if (model_.fp8_linears()) model_.set_fp8_active(kind % 2 == 0);
}

void StepRunner::run_eagerly(int step, int kind, Part part) {
  model_.set_step(step);  // replays before it ran no host code
  set_precision(kind);
  const double sent_before = layout_.stats().bytes_sent;
  enqueue(part);
  part_bytes_[{kind, part}] = layout_.stats().bytes_sent - sent_before;
}

void StepRunner::capture_for_next(int step, int steps, int kind, const std::vector<Part>& parts) {
  // The eager step may have planned or grown what other kinds' graphs point at.
  agree_on_graphs();
  if (!graphs_ || !capturable_ || step + 1 >= steps || step_kind(step + 1, steps) != kind) return;
  const double counted = layout_.stats().bytes_sent;
  model_.set_step(step + 1);  // recorded for step + 1, not run
  set_precision(kind);
  for (Part part : parts) {
    const GraphKey key{kind, part};
    CapturedStep captured{backend_.capture([&] { enqueue(part); }), current(), part_bytes_[key]};
    if (!captured.graph) {  // this backend cannot capture
      graphs_ = false;
      captured_.clear();
      break;
    }
    captured_[key] = std::move(captured);
    ++captures_;
  }
  // The captures' exchanges sent nothing: what the transports counted so far (the eager steps)
  // stays counted, the captures' counts are dropped.
  layout_.reset_stats();
  replayed_bytes_ += counted;
}

bool StepRunner::run_whole(int step, int steps, int kind) {
  if (replay({kind, Part::whole})) return false;
  run_eagerly(step, kind, Part::whole);
  capture_for_next(step, steps, kind, {Part::whole});
  return true;
}

bool StepRunner::agree_on_cache(int step, double& ms) {
  // One small read and one host collective: the image's sums, added in rank order, the same
  // numbers on every rank of the group and so the same decision.
  backend_.synchronize();  // the head (timed apart from the decision)
  const auto start = std::chrono::steady_clock::now();
  const Tensor mine = backend_.download(model_.cache_sums());  // [2] f64
  const size_t ranks = size_t(layout_.group_size());
  std::vector<double> all(2 * ranks);
  layout_.group().host_all_gather(mine.data<double>(), all.data(),
                                  Displacements::packed(std::vector<size_t>(ranks, 2 * sizeof(double))));
  double change = 0, reference = 0;
  for (size_t r = 0; r < ranks; ++r) {
    change += all[2 * r];
    reference += all[2 * r + 1];
  }
  const bool cached = cache_->use_cache(step, change, reference);
  ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return cached;
}

bool StepRunner::run_cached(int step, int steps, int kind, StepTime& info) {
  const bool head_replayed = replay({kind, Part::head});
  if (!head_replayed) run_eagerly(step, kind, Part::head);
  info.cached = agree_on_cache(step, info.decision_ms);
  const Part tail = info.cached ? Part::cached_tail : Part::computed_tail;
  // A tail graph exists only beside a head graph (they are captured together).
  if (head_replayed && replay({kind, tail})) return false;
  run_eagerly(step, kind, tail);  // the tail rebuilds the plan's state of the head (resume_forward)
  capture_for_next(step, steps, kind, {Part::head, tail});
  return true;
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

  StepTime info;
  const int kind = step_kind(step, steps);
  info.kind = kind / 2;
  info.bf16 = kind % 2 == 1 && model_.fp8_linears();
  info.eager = cache_ ? run_cached(step, steps, kind, info) : run_whole(step, steps, kind);
  marks_[size_t(2 * steps_run_ + 1)]->record(backend_.stream());
  info.first_of_kind = std::none_of(step_info_.begin(), step_info_.end(), [&](const StepTime& s) {
    return s.kind == info.kind && s.cached == info.cached && s.bf16 == info.bf16;
  });
  step_info_.push_back(info);
  ++steps_run_;
}

double StepRunner::median_ms(const std::vector<StepTime>& times, bool cached) {
  std::vector<double> steady, all;
  for (const auto& s : times) {
    if (s.cached != cached) continue;
    all.push_back(s.ms);
    if (!s.first_of_kind) steady.push_back(s.ms);
  }
  return median(steady.empty() ? all : steady);
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
