// `fresco bench`: the time of one denoising step (transformer forward + Euler update) of a
// preset with random weights made on the device, at one image size and prompt length.
//
// Timing: device events around every timed step (median of --steps after warm-up); with
// --cuda-graphs on the step is captured once after an eager warm-up step and replayed. FLOPs
// from src/model/step_flops.hpp (the spec's count), the floor at 750 TFLOP/s (the BRIEF's),
// and the device memory in use once the steps have run (the backend's grow-only buffers have
// reached their peak by then). --profile runs a few more steps eagerly through a backend that
// records events around every op, and reports the time per op kind (linears per shape) with the
// rate each achieved: TFLOP/s for products and attention, TB/s for the memory-bound rest.
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstdio>
#include <map>
#include <sstream>

#include "io/atomic_output.hpp"
#include "src/backend/backend.hpp"
#include "mpi/comm/transports.hpp"
#include "mpi/plans/parallel_plan.hpp"
#include "src/cli/commands.hpp"
#include "src/cli/options.hpp"
#include "src/model/denoiser.hpp"
#include "src/model/hooks.hpp"
#include "src/model/model_registry.hpp"
#include "src/model/noise.hpp"
#include "src/runtime/engine.hpp"
#include "src/runtime/memory_check.hpp"
#include "src/runtime/run_record.hpp"
#include "src/runtime/step_runner.hpp"

namespace fresco::cli {
namespace {

constexpr double kFloorTflops = 750.0;  // the BRIEF's compute floor

double tensor_bytes(const Tensor& t) { return t.defined() ? double(t.numel()) * double(dtype_size(t.dtype())) : 0.0; }

// A backend that forwards every op to another and brackets it with timing events, adding the
// time to the op's kind. Eager use only (events per call). FLOPs and bytes per call are counted
// from the operands: 2MNK for a linear, 4 Lq Lk H D for attention; bytes read + written.
class ProfilingBackend final : public Backend {
 public:
  struct Kind {
    double ms = 0, flops = 0, bytes = 0;
    int64_t calls = 0;
  };

  explicit ProfilingBackend(Backend& inner) : in_(inner) {}

  std::string name() const override { return in_.name(); }
  Device device() const override { return in_.device(); }
  bool supports(const OpDesc& op) const override { return in_.supports(op); }
  Stream& stream() override { return in_.stream(); }
  std::unique_ptr<Event> new_timing_event() override { return in_.new_timing_event(); }
  std::shared_ptr<Storage> alloc_storage(size_t bytes) override { return in_.alloc_storage(bytes); }
  int64_t device_memory_in_use() const override { return in_.device_memory_in_use(); }

  // Waits for the recorded ops and adds their times to the kinds.
  void collect() {
    in_.synchronize();
    for (size_t i = 0; i < pending_.size(); ++i) {
      const Pending& p = pending_[i];
      Kind& k = kinds_[p.kind];
      k.ms += events_[2 * i + 1]->elapsed_ms(*events_[2 * i]);
      k.flops += p.flops;
      k.bytes += p.bytes;
      ++k.calls;
    }
    pending_.clear();
  }
  const std::map<std::string, Kind>& kinds() const { return kinds_; }
  void reset() { kinds_.clear(); }

  void copy(const Tensor& src, const Tensor& dst) override {
    timed("copy", 0, tensor_bytes(src) + tensor_bytes(dst), [&] { in_.copy(src, dst); });
  }
  void linear(const Tensor& x, const Tensor& weight, const Tensor* bias, const Tensor& y,
              Epilogue epilogue = Epilogue::none, const Tensor* gate = nullptr) override {
    const int64_t M = x.rank() >= 2 ? x.dim(0) : 1, K = weight.dim(1), N = weight.dim(0);  // a vector: one row
    std::ostringstream kind;
    kind << "linear " << epilogue_name(epilogue) << " " << M << "x" << N << "x" << K;
    const double bytes = tensor_bytes(x) + tensor_bytes(weight) + tensor_bytes(y) *
                                                                      (epilogue == Epilogue::gated_residual ? 2 : 1);
    timed(kind.str(), 2.0 * double(M) * double(N) * double(K), bytes,
          [&] { in_.linear(x, weight, bias, y, epilogue, gate); });
  }
  void layer_norm(const Tensor& x, float eps, const Tensor& y) override {
    timed("layer_norm", 0, tensor_bytes(x) + tensor_bytes(y), [&] { in_.layer_norm(x, eps, y); });
  }
  void modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, const Tensor& y) override {
    timed("modulate", 0, tensor_bytes(x) + tensor_bytes(y), [&] { in_.modulate(x, shift, scale, y); });
  }
  void norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                     const Tensor& y) override {
    timed("norm_modulate", 0, tensor_bytes(x) + tensor_bytes(y), [&] { in_.norm_modulate(x, shift, scale, eps, y); });
  }
  void rms_norm_heads(const Tensor& x, const Tensor& scale, float eps, const Tensor& y) override {
    timed("rms_norm_heads", 0, tensor_bytes(x) + tensor_bytes(y), [&] { in_.rms_norm_heads(x, scale, eps, y); });
  }
  void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& y) override {
    timed("rope", 0, tensor_bytes(x) + tensor_bytes(y), [&] { in_.rope(x, cos, sin, y); });
  }
  void rms_norm_rope(const Tensor& x, const Tensor& scale, float eps, const Tensor& cos,
                     const Tensor& sin, const Tensor& y) override {
    timed("rms_norm_rope", 0, tensor_bytes(x) + tensor_bytes(y) + tensor_bytes(cos) + tensor_bytes(sin),
          [&] { in_.rms_norm_rope(x, scale, eps, cos, sin, y); });
  }
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                 const Tensor& lse) override {
    timed_attention("attention", q, k, v, o, [&] { in_.attention(q, k, v, o, lse); });
  }
  void attention_fp8(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                     const Tensor& lse) override {
    timed_attention("attention_fp8", q, k, v, o, [&] { in_.attention_fp8(q, k, v, o, lse); });
  }
  template <typename F>
  void timed_attention(const char* name, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, F run) {
    const double flops = 4.0 * double(q.dim(0)) * double(k.dim(0)) * double(q.dim(1)) * double(q.dim(2));
    std::ostringstream kind;
    kind << name << " L=" << q.dim(0) << " H=" << q.dim(1) << " D=" << q.dim(2);
    timed(kind.str(), flops, tensor_bytes(q) + tensor_bytes(k) + tensor_bytes(v) + tensor_bytes(o), run);
  }
  void attention_merge(const Tensor& o_part, const Tensor& lse_part, const Tensor& o,
                       const Tensor& lse) override {
    timed("attention_merge", 0, tensor_bytes(o_part) + 2 * tensor_bytes(o),
          [&] { in_.attention_merge(o_part, lse_part, o, lse); });
  }
  void gelu_tanh(const Tensor& x, const Tensor& y) override {
    timed("gelu_tanh", 0, tensor_bytes(x) + tensor_bytes(y), [&] { in_.gelu_tanh(x, y); });
  }
  void silu(const Tensor& x, const Tensor& y) override {
    timed("silu", 0, tensor_bytes(x) + tensor_bytes(y), [&] { in_.silu(x, y); });
  }
  void gated_residual(const Tensor& y, const Tensor& gate, const Tensor& x) override {
    timed("gated_residual", 0, tensor_bytes(y) + 2 * tensor_bytes(x), [&] { in_.gated_residual(y, gate, x); });
  }
  void add(const Tensor& a, const Tensor& b, const Tensor& y) override {
    timed("add", 0, tensor_bytes(a) + tensor_bytes(b) + tensor_bytes(y), [&] { in_.add(a, b, y); });
  }
  void subtract(const Tensor& a, const Tensor& b, const Tensor& y) override {
    timed("subtract", 0, tensor_bytes(a) + tensor_bytes(b) + tensor_bytes(y), [&] { in_.subtract(a, b, y); });
  }
  void change_sums(const Tensor& a, const Tensor& b, const Tensor& sums) override {
    timed("change_sums", 0, tensor_bytes(a) + tensor_bytes(b), [&] { in_.change_sums(a, b, sums); });
  }
  void affine(const Tensor& x, float a, float b, const Tensor& y) override {
    timed("affine", 0, tensor_bytes(x) + tensor_bytes(y), [&] { in_.affine(x, a, b, y); });
  }
  void axpy(const Tensor& alpha, const Tensor& x, const Tensor& y) override {
    timed("axpy", 0, tensor_bytes(x) + 2 * tensor_bytes(y), [&] { in_.axpy(alpha, x, y); });
  }
  void timestep_embedding(const Tensor& t, const Tensor& out) override {
    timed("timestep_embedding", 0, tensor_bytes(out), [&] { in_.timestep_embedding(t, out); });
  }
  void pack_latent(const Tensor& latent, const Tensor& tokens) override {
    timed("pack_latent", 0, 2 * tensor_bytes(tokens), [&] { in_.pack_latent(latent, tokens); });
  }
  void unpack_latent(const Tensor& tokens, const Tensor& latent) override {
    timed("unpack_latent", 0, 2 * tensor_bytes(tokens), [&] { in_.unpack_latent(tokens, latent); });
  }
  void count_nonfinite(const Tensor& x, const Tensor& count) override {
    timed("count_nonfinite", 0, tensor_bytes(x), [&] { in_.count_nonfinite(x, count); });
  }
  void conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int pad_rows, const Tensor& y) override {
    timed("conv2d", 0, tensor_bytes(x) + tensor_bytes(y), [&] { in_.conv2d(x, weight, bias, pad_rows, y); });
  }
  void group_sums(const Tensor& x, int groups, const Tensor& sums) override {
    timed("group_sums", 0, tensor_bytes(x), [&] { in_.group_sums(x, groups, sums); });
  }
  void group_norm(const Tensor& x, const Tensor& sums, double count, float eps, const Tensor& weight,
                  const Tensor& bias, const Tensor& y) override {
    timed("group_norm", 0, tensor_bytes(x) + tensor_bytes(y),
          [&] { in_.group_norm(x, sums, count, eps, weight, bias, y); });
  }
  void upsample_nearest(const Tensor& x, const Tensor& y) override {
    timed("upsample_nearest", 0, tensor_bytes(x) + tensor_bytes(y), [&] { in_.upsample_nearest(x, y); });
  }
  void quantize_rows(const Tensor& x, const Tensor& q, const Tensor& scales) override {
    timed("quantize_rows", 0, tensor_bytes(x) + tensor_bytes(q), [&] { in_.quantize_rows(x, q, scales); });
  }
  void linear_fp8(const Tensor& xq, const Tensor& x_scale, const Tensor& wq, const Tensor& w_scale,
                  const Tensor* bias, const Tensor& y, Epilogue epilogue = Epilogue::none,
                  const Tensor* gate = nullptr) override {
    const int64_t M = xq.dim(0), K = wq.dim(1), N = wq.dim(0);
    std::ostringstream kind;
    kind << "linear_fp8 " << epilogue_name(epilogue) << " " << M << "x" << N << "x" << K;
    const double bytes = tensor_bytes(xq) + tensor_bytes(wq) + tensor_bytes(y) *
                                                                   (epilogue == Epilogue::gated_residual ? 2 : 1);
    timed(kind.str(), 2.0 * double(M) * double(N) * double(K), bytes,
          [&] { in_.linear_fp8(xq, x_scale, wq, w_scale, bias, y, epilogue, gate); });
  }
  void norm_modulate_fp8(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, const Tensor& q,
                         const Tensor& scales) override {
    timed("norm_modulate_fp8", 0, tensor_bytes(x) + tensor_bytes(q),
          [&] { in_.norm_modulate_fp8(x, shift, scale, eps, q, scales); });
  }
  void dequantize_rows(const Tensor& q, const Tensor& scales, const Tensor& y) override {
    timed("dequantize_rows", 0, tensor_bytes(q) + tensor_bytes(y), [&] { in_.dequantize_rows(q, scales, y); });
  }
  void transpose(const Tensor& x, const Tensor& y) override {
    timed("transpose", 0, tensor_bytes(x) + tensor_bytes(y), [&] { in_.transpose(x, y); });
  }
  void gather_rows(const Tensor& table, const Tensor& ids, const Tensor& y) override {
    timed("gather_rows", 0, 2 * tensor_bytes(y), [&] { in_.gather_rows(table, ids, y); });
  }
  void layer_norm_affine(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                         const Tensor& y) override {
    timed("layer_norm_affine", 0, tensor_bytes(x) + tensor_bytes(y),
          [&] { in_.layer_norm_affine(x, weight, bias, eps, y); });
  }
  void multiply(const Tensor& a, const Tensor& b, const Tensor& y) override {
    timed("multiply", 0, tensor_bytes(a) + tensor_bytes(b) + tensor_bytes(y), [&] { in_.multiply(a, b, y); });
  }
  void quick_gelu(const Tensor& x, const Tensor& y) override {
    timed("quick_gelu", 0, tensor_bytes(x) + tensor_bytes(y), [&] { in_.quick_gelu(x, y); });
  }
  void gelu_erf(const Tensor& x, const Tensor& y) override {
    timed("gelu_erf", 0, tensor_bytes(x) + tensor_bytes(y), [&] { in_.gelu_erf(x, y); });
  }
  void attention_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* bias, bool causal,
                      float scale, const Tensor& o) override {
    const double flops = 4.0 * double(q.dim(0)) * double(k.dim(0)) * double(q.dim(1)) * double(q.dim(2));
    timed("attention_bias", flops, tensor_bytes(q) + tensor_bytes(k) + tensor_bytes(v) + tensor_bytes(o),
          [&] { in_.attention_bias(q, k, v, bias, causal, scale, o); });
  }
  void fill_random(uint64_t seed, uint32_t stream, uint32_t substream, float mean, float std,
                   const Tensor& y) override {
    timed("fill_random", 0, tensor_bytes(y), [&] { in_.fill_random(seed, stream, substream, mean, std, y); });
  }

 private:
  struct Pending {
    std::string kind;
    double flops, bytes;
  };
  template <typename F>
  void timed(const std::string& kind, double flops, double bytes, F&& op) {
    const size_t i = pending_.size();
    while (events_.size() < 2 * (i + 1)) events_.push_back(in_.new_timing_event());
    events_[2 * i]->record(in_.stream());
    op();
    events_[2 * i + 1]->record(in_.stream());
    pending_.push_back({kind, flops, bytes});
  }

  Backend& in_;
  std::vector<std::unique_ptr<Event>> events_;
  std::vector<Pending> pending_;
  std::map<std::string, Kind> kinds_;
};

struct BenchOptions {
  std::string model, weights, record;
  EngineChoice engine;
  int64_t width = 1024, height = 1024, txt_len = 512, steps = 10, warmup = 2, profile_steps = 3;
  bool profile = false, json = false;
  ParallelChoice parallel;  // every rank of the job computes the one image
  StepCacheOptions cache;   // --cache with a forced --cache-pattern (default 10)
  LoraOptions lora;         // --lora: merged as for generate (the load's cost, not the step's)
};


// Runs 1 + warmup + steps denoising steps of one image through the runtime's StepRunner (the
// same capture policy and step as `fresco generate`) and returns the device times of the last
// `steps`. The scalars stay fixed (t, guidance, a small dt) so the state stays in range.
std::vector<StepRunner::StepTime> time_steps(Backend& backend, const ParallelLayout& layout, Denoiser& model,
                                             bool graphs, bool capturable, const BenchOptions& o, const Tensor& img,
                                             const SequenceShard& mine, double guidance, double* bytes_per_step,
                                             bool* graphed) {
  StepRunner runner(backend, layout, model, graphs, capturable, o.cache);
  const StepRunner::Buffers& io = runner.buffers(mine.img_rows());
  backend.copy(img.rows(mine.img_begin(), mine.img_rows()), io.tokens);
  const int total = int(1 + o.warmup + o.steps);
  runner.begin_image(total);
  layout.reset_stats();
  for (int i = 0; i < total; ++i) runner.run(i, total, 0.9f, float(guidance), -0.01f);
  const auto times = runner.times();
  if (bytes_per_step) *bytes_per_step = (layout.stats().bytes_sent + runner.replayed_bytes()) / double(total);
  if (graphed) *graphed = runner.captures() > 0;
  return {times.end() - o.steps, times.end()};
}

// "fresco bench: flux-dev at 1024x1024 with 512 text tokens", for the memory check's refusal.
std::string config_label(const std::string& model, const BenchOptions& o) {
  return "fresco bench: " + model + " at " + std::to_string(o.width) + "x" + std::to_string(o.height) + " with " +
         std::to_string(o.txt_len) + " text tokens";
}

int run_bench(BenchOptions o, const MpiSession& mpi) {
  Engine e(mpi, o.engine, o.parallel, o.weights, o.model);
  e.cache = o.cache;
  e.lora = o.lora;
  resolve_cache_options(e.cache, e.spec.blocks);
  const int64_t grid_h = o.height / 16, grid_w = o.width / 16, Limg = grid_h * grid_w;
  const StepFlops flops = e.spec.step_flops(o.txt_len, Limg);

  // Every rank computes the one image: a group of the whole world, with its transports.
  e.build_layout(nullptr, 1);
  const ParallelLayout& layout = *e.layout;
  require_input(layout.groups() == 1, "fresco bench computes one image on all " + std::to_string(mpi.size()) +
                                          " ranks: give degrees whose product is the rank count");
  // Graphs: one rank, or device-queued transports; DistriFusion's gathers then complete within
  // their step (join_each_step) instead of staying in flight into the next, as in generate.
  e.parallel.plan.displaced.join_each_step = e.choice.cuda_graphs && layout.capturable();
  const std::vector<SequenceShard> shards = image_shards(layout, e.parallel.plan, o.txt_len, grid_h, grid_w);
  const SequenceShard& mine = shards[size_t(layout.position())];
  // The memory check before any weights are made (f32 FLUX.1-dev, the CPU default, needs about
  // 45 GiB a rank), reported once for the job.
  collective_setup(mpi, [&] {
    check_rank_memory(e, {{config_label(e.config.name, o), Limg, o.txt_len}}, "--width/--height (or --txt-len)");
  });
  e.load_model();

  // Inputs: a random prompt (host) and random image tokens.
  const FluxConfig& config = e.config;
  Tensor txt({o.txt_len, config.context_in_dim}), y({config.vec_in_dim}), img({Limg, config.in_channels});
  fill_normal(txt, 1, RandomStream::prompts, 0);
  fill_normal(y, 1, RandomStream::prompts, 1);
  fill_normal(img, 1, RandomStream::initial_noise, 0);
  const Conditioning prompt{txt, y};
  const bool sequence = e.parallel.plan.method == ParallelMethod::sequence;
  std::vector<StepRunner::StepTime> timed, compute_only;
  bool graphed = false;
  double bytes_per_step = 0;
  e.model->set_condition(prompt, grid_h, grid_w, shards, layout.position());
  timed = time_steps(*e.backend, layout, *e.model, e.choice.cuda_graphs, e.step_capturable(), o, img, mine,
                     config.default_guidance, &bytes_per_step, &graphed);
  int64_t memory = e.backend->device_memory_in_use();
  if (layout.group_size() > 1) {
    // The same step with every transfer skipped: the compute-only baseline.
    LayoutRequest skip = e.parallel.layout;
    skip.transport = kSkipTransfers;
    skip.ulysses = layout.ulysses();
    skip.ring = layout.ring();
    skip.choose = nullptr;
    const ParallelLayout quiet(mpi, skip, 1);
    const std::unique_ptr<Denoiser> model = make_denoiser(
        config.name, e.weights, *e.backend, make_attention(quiet, e.spec.attention, e.parallel.plan), e.choice.compute);
    apply_fp8_choice(*model, e.choice);
    model->set_step_cache(cache_layout(e.cache));
    model->set_condition(prompt, grid_h, grid_w, shards, quiet.position());
    compute_only = time_steps(*e.backend, quiet, *model, e.choice.cuda_graphs, e.step_capturable(), o, img, mine,
                                 config.default_guidance, nullptr, nullptr);
  }
  if (memory < 0) {  // the host: the process's peak resident set
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    memory = int64_t(ru.ru_maxrss) * 1024;
  }

  // Per-op breakdown: eager steps through the profiling backend (its own activations).
  std::vector<std::pair<std::string, ProfilingBackend::Kind>> profile;
  double profile_ms = 0;
  if (o.profile) {
    ProfilingBackend prof(*e.backend);
    const std::unique_ptr<Denoiser> model =
        make_denoiser(config.name, e.weights, prof, std::make_unique<LocalAttention>(), e.choice.compute);
    apply_fp8_choice(*model, e.choice);
    model->set_condition(prompt, grid_h, grid_w, {SequenceShard::whole(o.txt_len, Limg)}, 0);
    const Tensor tokens = e.backend->alloc({Limg, config.in_channels}, DType::f32);    // [Limg, 64]
    const Tensor velocity = e.backend->alloc({Limg, config.in_channels}, DType::f32);  // [Limg, 64]
    const Tensor scalars = e.backend->alloc({3}, DType::f32);                          // [3] t, guidance, dt
    const float host_scalars[3] = {0.9f, float(config.default_guidance), -0.01f};
    e.backend->copy(img, tokens);
    e.backend->copy(Tensor::from_floats({3}, std::span<const float>(host_scalars, 3)), scalars);
    e.backend->synchronize();
    const auto step = [&] { denoising_step(*model, prof, tokens, velocity, scalars); };
    step();  // warm-up (this model's own buffers), not counted
    prof.collect();
    prof.reset();
    for (int64_t i = 0; i < o.profile_steps; ++i) {
      step();
      prof.collect();
    }
    for (const auto& [name, k] : prof.kinds()) {
      ProfilingBackend::Kind per_step = k;
      const double n = double(o.profile_steps);
      per_step.ms /= n;
      per_step.flops /= n;
      per_step.bytes /= n;
      per_step.calls = int64_t(std::llround(double(k.calls) / n));
      profile.emplace_back(name, per_step);
      profile_ms += per_step.ms;
    }
    std::sort(profile.begin(), profile.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  }

  // The computed steps' figures (every step without a cache); the cached steps' median beside.
  std::vector<double> ms;
  for (const auto& t : timed)
    if (!t.cached) ms.push_back(t.ms);
  require_input(!ms.empty(), "fresco bench: --cache-pattern left no computed step among the timed ones");
  const double med = median(ms), lo = *std::min_element(ms.begin(), ms.end()),
               hi = *std::max_element(ms.begin(), ms.end());
  const double cached_med = StepRunner::median_ms(timed, true);
  // Per rank: the step, the compute-only step, bytes sent and memory (every rank's figures).
  const double mine_figures[4] = {med, compute_only.empty() ? med : StepRunner::median_ms(compute_only, false), bytes_per_step,
                                  double(memory < 0 ? 0 : memory)};
  std::vector<double> ranks(size_t(4 * layout.group_size()));
  layout.group().host_all_gather(mine_figures, ranks.data(),
                                 Displacements::packed(std::vector<size_t>(size_t(layout.group_size()), sizeof mine_figures)));
  const double tflops = flops.total() / (med * 1e-3) / 1e12;
  const double floor_ms = flops.total() / (kFloorTflops * 1e12) * 1e3;
  const std::string device = device_name(*e.backend, mpi.local_rank());
  const PlanOptions& plan = e.parallel.plan;
  const bool fp8 = plan.fp8_wire || plan.displaced.stale_dtype == DType::e4m3;
  const int head_groups =
      sequence ? UspAttention::choose_head_groups(e.spec.attention.heads, layout.ulysses(), layout.ring(), plan.head_groups)
               : 1;

  // The figures as JSON (--json, --record), the same keys either way.
  nlohmann::json j = {
      {"command", "bench"}, {"model", config.name}, {"width", o.width}, {"height", o.height},
      {"txt_len", o.txt_len}, {"img_tokens", Limg}, {"tokens", o.txt_len + Limg},
      {"backend", e.backend->name()}, {"device", device}, {"dtype", precision_name(e.choice)},
      {"cuda_graphs", graphed}, {"steps", o.steps}, {"warmup_steps", o.warmup + 1},
      {"ms_per_step", med}, {"ms_per_step_min", lo}, {"ms_per_step_max", hi},
      {"tflop_per_step", flops.total() / 1e12}, {"tflop_attention", flops.attention / 1e12}, {"tflops", tflops},
      {"floor_tflops", kFloorTflops}, {"floor_ms", floor_ms}, {"fraction_of_floor", floor_ms / med},
      {"ranks", layout.group_size()}, {"method", sequence ? "sequence" : "patch"}, {"ulysses", layout.ulysses()},
      {"ring", layout.ring()}, {"transport", layout.group().describe()},
      {"comm_dtype", fp8 ? "e4m3" : dtype_name(e.choice.compute)},
      {"inter_node", plan.inter_node == InterNodeSchedule::torus ? "torus" : "ring"}, {"head_groups", head_groups},
      {"peak_memory_bytes", memory}, {"peak_memory_gib", double(memory) / double(1ull << 30)}};
  if (!sequence) j["stale_dtype"] = dtype_name(plan.displaced.stale_dtype);
  if (e.cache.enabled()) {
    j["cache"] = describe_cache(e.cache);
    j["ms_per_cached_step"] = cached_med;
    j["cached_fraction"] = med > 0 ? cached_med / med : 0.0;
    std::vector<double> decision;
    for (const auto& t : timed) decision.push_back(t.decision_ms);
    j["ms_per_cache_decision"] = median(decision);
  }
  j["per_rank"] = nlohmann::json::array();
  for (int r = 0; r < layout.group_size(); ++r) {
    const double* f = &ranks[size_t(4 * r)];
    j["per_rank"].push_back({{"rank", r}, {"ms_per_step", f[0]}, {"compute_only_ms", f[1]},
                             {"exposed_comm_ms", std::max(0.0, f[0] - f[1])}, {"mib_sent_per_step", f[2] / (1 << 20)},
                             {"memory_gib", f[3] / double(1ull << 30)}});
  }
  j["profile"] = nlohmann::json::array();
  for (const auto& [name, k] : profile)
    j["profile"].push_back({{"op", name}, {"calls", k.calls}, {"ms", k.ms},
                            {"tflops", k.ms > 0 ? k.flops / (k.ms * 1e-3) / 1e12 : 0.0},
                            {"tb_per_s", k.ms > 0 ? k.bytes / (k.ms * 1e-3) / 1e12 : 0.0}});
  if (!o.record.empty()) {
    RunRecord record("bench", "");
    record.set_engine(e);
    record["bench"] = j;
    record.write(mpi, o.record, 0);
  }
  if (mpi.rank() != 0) return 0;
  if (o.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("fresco bench: %s %lldx%lld (%lld text + %lld image tokens), %s %s on %s, CUDA graphs %s\n",
              config.name.c_str(), (long long)o.width, (long long)o.height, (long long)o.txt_len, (long long)Limg,
              e.backend->name().c_str(), precision_name(e.choice).c_str(), device.c_str(), graphed ? "on" : "off");
  std::printf("  step: %.3f ms median of %lld%s (min %.3f, max %.3f)\n", med, (long long)ms.size(),
              e.cache.enabled() ? " computed" : "", lo, hi);
  if (e.cache.enabled())
    std::printf("  cached step: %.3f ms median of %lld (%.1f%% of a computed one); %s; the decision %.3f ms\n",
                cached_med, (long long)(timed.size() - ms.size()), med > 0 ? 100 * cached_med / med : 0.0,
                describe_cache(e.cache).c_str(), j["ms_per_cache_decision"].get<double>());
  std::printf("  %.2f TFLOP per step (attention %.2f): %.1f TFLOP/s; floor at %.0f TFLOP/s %.2f ms: %.1f%% of it\n",
              flops.total() / 1e12, flops.attention / 1e12, tflops, kFloorTflops, floor_ms, 100 * floor_ms / med);
  std::printf("  device memory in use: %.2f GiB\n", double(memory) / double(1ull << 30));
  if (layout.group_size() > 1) {
    std::printf("  %d ranks, %s (Ulysses %d x Ring %d), %s\n", layout.group_size(),
                sequence ? "sequence" : "patch", layout.ulysses(), layout.ring(), layout.group().describe().c_str());
    std::printf("    %-5s %10s %14s %12s %12s %10s\n", "rank", "ms/step", "compute-only", "exposed ms", "MiB sent",
                "GiB");
    for (int r = 0; r < layout.group_size(); ++r) {
      const double* f = &ranks[size_t(4 * r)];
      std::printf("    %-5d %10.3f %14.3f %12.3f %12.1f %10.2f\n", r, f[0], f[1], std::max(0.0, f[0] - f[1]),
                  f[2] / (1 << 20), f[3] / double(1ull << 30));
    }
  }
  if (!profile.empty()) {
    std::printf("  per op, eager (mean of %lld steps, %.3f ms per step in the ops):\n", (long long)o.profile_steps,
                profile_ms);
    std::printf("    %-44s %6s %10s %6s %9s %8s\n", "op", "calls", "ms/step", "%", "TFLOP/s", "TB/s");
    for (const auto& [name, k] : profile)
      std::printf("    %-44s %6lld %10.3f %6.1f %9.1f %8.2f\n", name.c_str(), (long long)k.calls, k.ms,
                  100 * k.ms / profile_ms, k.ms > 0 ? k.flops / (k.ms * 1e-3) / 1e12 : 0.0,
                  k.ms > 0 ? k.bytes / (k.ms * 1e-3) / 1e12 : 0.0);
  }
  return 0;
}

}  // namespace

Command bench_command() {
  Command c;
  c.name = "bench";
  c.summary = "time one denoising step of a preset with random weights (ms, TFLOP/s, memory)";
  c.usage = "fresco bench [--model flux-dev] [--width 1024 --height 1024] [--steps 10] [--profile] [--json]";
  c.details =
      "Times the transformer forward plus the Euler update at one image size, on random weights\n"
      "made on the device (--weights random:SEED, or a weights file). Prints the median ms per\n"
      "step over --steps steps after warm-up (device events), the achieved TFLOP/s from the\n"
      "spec's FLOP count, the fraction of the 750 TFLOP/s floor, and the device memory in use;\n"
      "before the weights are made, the memory a rank needs (weights + activations) is checked\n"
      "against the node's memory (cpu) or the GPU's (cuda): f32 FLUX.1-dev, the CPU default,\n"
      "needs about 45 GiB, so a smaller node is told to use --dtype bf16 or a smaller --model;\n"
      "--profile adds a per-op breakdown of eager steps; --json prints one JSON object.\n"
      "With --cache the steps follow --cache-pattern (default 10: computed and cached in turn) and\n"
      "the report gives a computed and a cached step's median apart (docs/step-cache.md).\n"
      "On several ranks (mpiexec -n N) every rank computes a share of the one image with the\n"
      "--parallel method and degrees (automatic: Ulysses over all ranks); each rank's step is\n"
      "timed again with every transfer skipped (the compute-only baseline), and the\n"
      "difference is reported as the communication the method leaves exposed.";
  c.add_options = [](po::options_description& o, po::positional_options_description&) {
    o.add_options()
        ("model", po::value<std::string>()->default_value("flux-dev"), "preset: flux-dev, flux-schnell, flux-small, flux-tiny, qwen-image, qwen-tiny")
        ("weights", po::value<std::string>()->default_value("random:0"), "random:SEED, or a weights file of the preset")
        ("width", po::value<int64_t>()->default_value(1024), "image width in pixels (multiple of 16)")
        ("height", po::value<int64_t>()->default_value(1024), "image height in pixels (multiple of 16)")
        ("txt-len", po::value<int64_t>()->default_value(512), "text tokens")
        ("steps", po::value<int64_t>()->default_value(10), "timed steps (at least 5)")
        ("warmup", po::value<int64_t>()->default_value(2), "untimed steps after the first (eager) one")
        ("profile", po::bool_switch(), "per-op breakdown of eager steps (events around every op)")
        ("json", po::bool_switch(), "print one JSON object instead of the text report")
        ("record", po::value<std::string>()->default_value(""), "FILE: also write the figures as a JSON run record")
        ("threads", po::value<int>()->default_value(0), "CPU threads (0: OMP_NUM_THREADS, else all cores)");
    add_engine_options(o);
    add_parallel_options(o);
    add_cache_options(o);
    add_lora_options(o);
  };
  c.setup = [](const po::variables_map& vm, const RunContext& ctx) -> std::function<int()> {
    BenchOptions o;
    o.cache = cache_options(vm);
    o.lora = lora_options(vm);
    // Random weights do not decide like trained ones: bench times forced decisions.
    if (o.cache.enabled() && o.cache.pattern.empty()) {
      for (const char* name : {"cache-threshold", "cache-warmup", "cache-max-consecutive", "cache-coefficients"})
        require_input(!vm.count(name), std::string("fresco bench times forced decisions (--cache-pattern, default 10): "
                                                   "option --") + name + " applies to generate");
      o.cache.pattern = "10";
    }
    o.model = vm["model"].as<std::string>();
    o.weights = vm["weights"].as<std::string>();
    o.record = vm["record"].as<std::string>();
    o.width = vm["width"].as<int64_t>();
    o.height = vm["height"].as<int64_t>();
    o.txt_len = vm["txt-len"].as<int64_t>();
    o.steps = vm["steps"].as<int64_t>();
    o.warmup = vm["warmup"].as<int64_t>();
    o.parallel = parallel_choice(vm);
    o.engine = engine_choice(vm);
    require_input(o.engine.fp8_bf16_steps == 0,
                  "option --fp8-bf16-steps is for generate: bench times the steps of one precision (--dtype fp8 or bf16)");
    require_input(o.width > 0 && o.height > 0 && o.width % 16 == 0 && o.height % 16 == 0,
                  "options --width and --height must be positive multiples of 16");
    require_input(o.txt_len > 0, "option --txt-len must be positive");
    require_input(o.steps >= 5, "option --steps must be at least 5 (got " + std::to_string(o.steps) + ")");
    require_input(o.warmup >= 0, "option --warmup must not be negative");
    (void)denoiser_config(o.model);  // InputError naming the presets
    o.profile = vm["profile"].as<bool>();
    o.json = vm["json"].as<bool>();
    require_input(!o.profile || ctx.mpi.size() == 1, "--profile times one rank's ops: run it on one rank");
    if (!o.record.empty()) ensure_output_path(o.record);
    configure_threads(vm["threads"].as<int>(), ctx.mpi.local_size());
    return [o, &mpi = ctx.mpi]() { return run_bench(o, mpi); };
  };
  return c;
}

}  // namespace fresco::cli
