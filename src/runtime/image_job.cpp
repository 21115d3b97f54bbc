#include "src/runtime/image_job.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "src/model/noise.hpp"
#include "src/runtime/validation.hpp"

namespace fresco {

double DenoisedImage::median_step_ms() const { return StepRunner::median_ms(step_times, false); }
double DenoisedImage::median_cached_step_ms() const { return StepRunner::median_ms(step_times, true); }

ImageDenoiser::ImageDenoiser(Engine& engine, bool verbose)
    : engine_(engine),
      verbose_(verbose),
      runner_(*engine.backend, *engine.layout, *engine.model, engine.choice.cuda_graphs, engine.step_capturable(),
              engine.cache) {
  runner_.set_bf16_edge_steps(engine.choice.fp8_bf16_steps);
}

DenoisedImage ImageDenoiser::denoise(const ImageJob& job, const Conditioning& prompt,
                                     const std::function<void()>& between_steps) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  Backend& backend = *engine_.backend;
  const ParallelLayout& layout = *engine_.layout;
  const DenoiserSpec& spec = engine_.spec;
  const int64_t c = spec.latent_channels, C = spec.token_channels, h = job.height / 8, w = job.width / 8;
  const int64_t grid_h = h / spec.latent_patch, grid_w = w / spec.latent_patch, Limg = grid_h * grid_w;
  const auto shards = image_shards(layout, engine_.parallel.plan, prompt.txt.dim(0), grid_h, grid_w);
  const SequenceShard& mine = shards[size_t(layout.position())];
  if (image_tokens_ != Limg) {  // the whole-image buffers, outside the step
    latent_ = backend.alloc({c * h * w}, DType::f32);
    packed_ = backend.alloc({Limg, C}, DType::f32);
    bad_ = backend.alloc({1}, DType::i64);
    image_tokens_ = Limg;
  }
  const StepRunner::Buffers& io = runner_.buffers(mine.img_rows());

  // Every rank of the group draws the whole initial noise (it is cheap and keyed by element,
  // so no rank count changes it) and keeps its own rows of the packed tokens.
  Tensor noise({c, h, w});  // [16, h, w]
  fill_normal(noise, job.seed, RandomStream::initial_noise);
  const Tensor device_latent = latent_.reshape({c, h, w});  // [16, h, w]
  backend.copy(noise, device_latent);
  backend.pack_latent(device_latent, packed_);
  backend.copy(packed_.rows(mine.img_begin(), mine.img_rows()), io.tokens);
  engine_.model->set_condition(prompt, grid_h, grid_w, shards, layout.position());
  runner_.begin_image(int(job.steps));

  DenoisedImage out;
  layout.reset_stats();
  const auto t = spec.timesteps(int(job.steps), Limg);
  for (int64_t i = 0; i < job.steps; ++i) {
    // A stop signal (SIGTERM, SIGUSR1) ends the batch here, between steps, on every rank of
    // the group at once; the image in progress is abandoned (nothing is written for it).
    if (group_agrees_to_stop(layout.group())) {
      out.stopped = true;
      return out;
    }
    const double ti = t[size_t(i)], dt = t[size_t(i) + 1] - ti;
    runner_.run(int(i), int(job.steps), float(ti), float(job.guidance), float(dt));
    between_steps();
  }
  backend.count_nonfinite(io.tokens, bad_);
  out.step_times = runner_.times();  // synchronizes: the steps are done
  out.cache_decisions = runner_.cache_decisions();
  if (const StepCachePolicy* cache = runner_.cache()) out.cache_ratios = cache->ratios();
  out.seconds = std::chrono::duration<double>(clock::now() - start).count();
  out.bytes_sent = layout.stats().bytes_sent + runner_.replayed_bytes();
  if (layout.group_size() > 1) {  // before the final gather, which is not part of a step
    CommStats sent = layout.stats();
    sent.bytes_sent = out.bytes_sent;
    out.accounting = gather_accounting(layout.group(), sent, out.seconds);
    const StepAccounting& acc = out.accounting;
    if (verbose_ && layout.group_leader()) {
      std::printf("fresco: image %lld, communication per step (mean of %lld):\n%s", (long long)job.index,
                  (long long)job.steps, acc.table("group " + std::to_string(layout.group_index()), job.steps).c_str());
      if (const std::string extra = engine_.model->attention().report(); !extra.empty())
        std::printf("  rank %d: %s\n", engine_.mpi.rank(), extra.c_str());
    }
  }
  const Tensor all_tokens = gather_image_rows(layout, shards, backend.download(io.tokens));  // [Limg, C]
  backend.copy(all_tokens, packed_);
  backend.unpack_latent(packed_, device_latent);
  out.latent = backend.download(device_latent);  // [16, h, w]
  // Non-finite values of any rank's rows fail the image on every rank of the group.
  const int64_t bad_here = backend.download(bad_).data<int64_t>()[0];
  std::vector<int64_t> bad_all(size_t(layout.group_size()));
  layout.group().host_all_gather(&bad_here, bad_all.data(),
                                 Displacements::packed(std::vector<size_t>(bad_all.size(), sizeof(int64_t))));
  for (int64_t b : bad_all) out.non_finite += b;
  return out;
}

ImageProvenance job_provenance(const ImageJob& job, const std::string& model, const std::string& command_line,
                               int64_t ranks) {
  ImageProvenance p;
  p.prompt_index = job.index;
  p.seed = int64_t(job.seed);
  p.steps = job.steps;
  p.width = job.width;
  p.height = job.height;
  p.guidance = job.guidance;
  p.model = model;
  p.command_line = command_line;
  p.ranks = ranks;
  p.prompt_text = job.prompt_text;
  return p;
}

ImageProvenance image_provenance(const ImageJob& job, const Engine& engine, const std::string& command_line,
                                 double seconds_per_step) {
  const PlanOptions& plan = engine.parallel.plan;
  ImageProvenance p = job_provenance(job, engine.spec.name, command_line, engine.mpi.size());
  if (plan.method == ParallelMethod::patch) {
    const auto& d = plan.displaced;
    p.parallel = "patch";
    p.patches = engine.layout->group_size();
    p.warmup_steps = d.full_sync ? job.steps : std::min<int64_t>(d.warmup_steps, job.steps);
    p.sync_mode = d.full_sync ? "full_sync" : "async";
    p.stale_dtype = dtype_name(d.stale_dtype);
  } else {
    p.ulysses = engine.layout->ulysses();
    p.ring = engine.layout->ring();
    p.comm_dtype = plan.fp8_wire ? "e4m3" : dtype_name(plan.compute);
  }
  p.seconds_per_step = seconds_per_step;
  p.compute_dtype = precision_name(engine.choice);
  p.digests = job.digests;
  if (engine.cache.enabled()) p.cache = describe_cache(engine.cache);
  p.lora = describe_loras(engine.loras);
  return p;
}

}  // namespace fresco
