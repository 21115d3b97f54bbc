// `fresco generate`: a batch of images, data parallel over ranks (each rank takes whole
// images). Every image is published atomically as DIR/img_{i}.h5; an image whose file exists
// is skipped, so re-running the same command resumes a preempted batch.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

#include "io/atomic_output.hpp"
#include "io/image_file.hpp"
#include "src/model/model_inputs.hpp"
#include "src/model/weights_io.hpp"
#include "src/cli/progress.hpp"
#include "src/cli/parallel_decode.hpp"
#include "mpi/plans/parallel_plan.hpp"
#include "io/png_file.hpp"
#include "src/cli/auto_layout.hpp"
#include "src/cli/commands.hpp"
#include "src/cli/validation.hpp"
#include "src/core/digest.hpp"
#include "src/model/flux_model.hpp"
#include "src/model/noise.hpp"
#include "src/model/sampler.hpp"
#include "src/model/vae_config.hpp"

namespace fresco::cli {
namespace {

// Everything about one image, resolved from the batch file and the command line.
struct ImageJob {
  int64_t index = 0;
  uint64_t seed = 0;
  int64_t width = 0, height = 0, steps = 0;
  double guidance = 0.0;
  ImageDigests digests;  // what determines the result (resume compares it)
};

// An option given explicitly on the command line (or config file) overrides the batch file;
// a batch value overrides the option's default.
template <typename T>
T pick(const po::variables_map& vm, const std::string& name, const std::optional<T>& from_file) {
  if (!vm[name].defaulted() || !from_file) return vm[name].as<T>();
  return *from_file;
}

ImageJob resolve_job(const po::variables_map& vm, const PromptsFile& prompts, int64_t index,
                     const FluxConfig& config) {
  const PromptSettings s = prompts.settings(index);
  ImageJob job;
  job.index = index;
  // The seed: an explicit --seed S gives S + i; else the prompt's own, else the batch's + i
  // (settings() applies the offset), else the default --seed 0 + i.
  const bool seed_given = !vm["seed"].defaulted();
  if (!seed_given && s.seed) job.seed = uint64_t(*s.seed);
  else job.seed = uint64_t(vm["seed"].as<int64_t>() + index);
  job.width = pick<int64_t>(vm, "width", s.width);
  job.height = pick<int64_t>(vm, "height", s.height);
  job.steps = pick<int64_t>(vm, "steps", s.steps);
  if (job.steps == 0 && vm["steps"].defaulted() && !s.steps) job.steps = config.default_steps;
  job.guidance = pick<double>(vm, "guidance", s.guidance);
  if (job.guidance < 0) job.guidance = config.default_guidance;  // negative: the preset's

  const std::string what = prompts.path() + " image " + std::to_string(index) + ": ";
  const bool size_given = !vm["width"].defaulted() || !vm["height"].defaulted();
  check_image_size(job.width, job.height, what,
                   size_given ? " (options --width/--height)" : " (width/height attributes of the prompt file)");
  check_steps(job.steps, what, vm["steps"].defaulted() ? " (steps attribute of the prompt file)" : " (option --steps)");
  require_input(std::isfinite(job.guidance), what + "guidance is not a finite number (attribute guidance)");
  return job;
}

struct GenerateRun {
  const MpiSession& mpi;
  std::string command_line;
  std::string out_dir;
  ParallelChoice choice;
  std::unique_ptr<ParallelLayout> layout;
  FluxConfig config;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<FluxTransformer> model;
  std::unique_ptr<PromptsFile> prompts;
  std::unique_ptr<VaeDecoder> decoder;  // null: latents only (--no-decode or no --vae)
  std::vector<ImageJob> jobs;
  int64_t slice = 0, slices = 1;  // --slice K/N: this run's contiguous part of the batch
  bool cuda_graphs = false;       // --cuda-graphs on (and a backend that captures)

  // Whether a whole step can be one graph: one rank per image, or transports that queue their
  // transfers on the device (nccl, ipc) for the exact method, and for DistriFusion when its
  // gathers complete within their step (join_each_step).
  bool step_capturable() const {
    return layout->group_size() == 1 ||
           (layout->capturable() &&
            (choice.plan.method == ParallelMethod::sequence || choice.plan.displaced.join_each_step));
  }

  bool in_slice(int64_t index) const {
    const int64_t n = int64_t(jobs.size());
    return index >= slice * n / slices && index < (slice + 1) * n / slices;
  }

  // Device buffers of the sampler for one image shape, kept while the shape repeats.
  struct StepBuffers {
    int64_t image_tokens = -1, rows = -1;
    Tensor latent;        // [16, h, w] f32
    Tensor packed;        // [Limg, 64] f32  every image token
    Tensor tokens;        // [ni, 64] f32    this rank's tokens: the sampler's state
    Tensor velocity;      // [ni, 64] f32
    Tensor scalars;       // [3] f32         t, guidance, dt of the current step
    Tensor bad;           // [1] i64         non-finite count of the final tokens
    Tensor host_scalars;  // [3] f32 host staging of `scalars`
    // The denoising step (forward + Euler update) captured on these buffers, for prompts of
    // graph_txt_len tokens, one graph per kind of step (AttentionStrategy::graph_kind:
    // DistriFusion's warm-up and displaced steps); none until a step of the kind has run
    // eagerly at this shape.
    struct CapturedStep {
      std::unique_ptr<StepGraph> graph;
      double bytes_sent = 0;  // bytes this rank's exchanges send in one such step
    };
    std::map<int, CapturedStep> graphs;
    int64_t graph_txt_len = -1;
  };
  StepBuffers step_io{};
  const StepBuffers& step_buffers(int64_t image_tokens, int64_t rows);

  // Indices of images whose result is missing, decided by rank 0 and shared with all.
  std::vector<int64_t> pending() const;
  // Rank 0: true when image j has no trustworthy result: missing, not opening, or recording
  // another configuration (said per image).
  bool needs_work(const ImageJob& j) const;
  bool stopped = false;  // a stop signal ended the batch at a step boundary
  // Denoises one image; false when its result was not finite (reported, not written).
  bool generate_one(const ImageJob& job, BatchProgress& progress);
  int operator()();
};

bool GenerateRun::needs_work(const ImageJob& j) const {
  const std::string path = image_result_path(out_dir, j.index);
  if (!std::filesystem::exists(path)) return true;
  const std::string why = image_result_mismatch(path, j.digests);
  if (why.empty()) return false;
  std::printf("fresco: image %lld: %s %s; computing it again\n", (long long)j.index, path.c_str(), why.c_str());
  return true;
}

std::vector<int64_t> GenerateRun::pending() const {
  std::vector<int64_t> todo;
  if (mpi.rank() == 0)
    for (const ImageJob& j : jobs)
      if (in_slice(j.index) && needs_work(j)) todo.push_back(j.index);
  int64_t n = int64_t(todo.size());
  FRESCO_MPI_CHECK(MPI_Bcast(&n, 1, MPI_INT64_T, 0, mpi.world()));
  todo.resize(size_t(n));
  FRESCO_MPI_CHECK(MPI_Bcast(todo.data(), int(n), MPI_INT64_T, 0, mpi.world()));
  return todo;
}

const GenerateRun::StepBuffers& GenerateRun::step_buffers(int64_t image_tokens, int64_t rows) {
  StepBuffers& b = step_io;
  if (b.image_tokens == image_tokens && b.rows == rows && b.latent.defined()) return b;
  const int64_t c = config.latent_channels(), C = config.in_channels;
  // The latent's height and width are only known through the job; [16, h, w] has 4 Limg values
  // per channel, allocated here as a flat buffer and shaped per image below.
  b.latent = backend->alloc({c * 4 * image_tokens}, DType::f32);
  b.packed = backend->alloc({image_tokens, C}, DType::f32);
  b.tokens = backend->alloc({rows, C}, DType::f32);
  b.velocity = backend->alloc({rows, C}, DType::f32);
  b.scalars = backend->alloc({3}, DType::f32);
  b.bad = backend->alloc({1}, DType::i64);
  b.host_scalars = Tensor({3});
  b.image_tokens = image_tokens;
  b.rows = rows;
  b.graphs.clear();
  return b;
}

bool GenerateRun::generate_one(const ImageJob& job, BatchProgress& progress) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const PromptEntry prompt = prompts->read(job.index);
  const int64_t c = config.latent_channels(), h = job.height / 8, w = job.width / 8;
  const int64_t Limg = (h / 2) * (w / 2);
  const auto shards = image_shards(*layout, choice.plan, prompt.txt.dim(0), h / 2, w / 2);
  const SequenceShard& mine = shards[size_t(layout->position())];

  // Every rank of the group draws the whole initial noise (it is cheap and keyed by element,
  // so no rank count changes it) and keeps its own rows of the packed tokens.
  Tensor latent({c, h, w});  // [16, h, w]
  fill_normal(latent, job.seed, RandomStream::initial_noise);
  const StepBuffers& io = step_buffers(Limg, mine.img_rows());
  const Tensor device_latent = io.latent.reshape({c, h, w});  // [16, h, w]
  backend->copy(latent, device_latent);
  backend->pack_latent(device_latent, io.packed);
  backend->copy(io.packed.rows(mine.img_begin(), mine.img_rows()), io.tokens);
  model->set_condition(prompt.txt, prompt.y, h / 2, w / 2, shards, layout->position());

  layout->reset_stats();
  double replayed_bytes = 0;  // bytes sent by replayed step graphs (their exchanges count nothing)
  const auto t = flux_timesteps(int(job.steps), Limg, config.time_shift);
  for (int64_t i = 0; i < job.steps; ++i) {
    // A stop signal (SIGTERM, SIGUSR1) ends the batch here, between steps, on every rank of
    // the group at once; the image in progress is abandoned (nothing is written for it).
    if (group_agrees_to_stop(layout->group())) {
      stopped = true;
      return true;
    }
    // The step's scalars reach the device by one copy; the step itself reads them there.
    backend->synchronize();  // the staging values of the previous step have been read
    float* staged = io.host_scalars.f32();
    staged[0] = float(t[size_t(i)]);                        // t
    staged[1] = float(job.guidance);                        // guidance
    staged[2] = float(t[size_t(i) + 1] - t[size_t(i)]);     // dt of the Euler step
    backend->copy(io.host_scalars, io.scalars);  // outside any graph: a replay reads the new values
    const auto step = [&] {
      model->forward(io.tokens, io.scalars.rows(0, 2), io.velocity);
      backend->axpy(io.scalars.rows(2, 1), io.velocity, io.tokens);  // Euler step
    };
    // Whole-step graphs: the step runs eagerly once per shape, which sizes every scratch
    // buffer, and is then captured and replayed; a replay runs the same kernels and transfers
    // on the same buffers as an eager step. With ranks per image the transfers are captured
    // too (NCCL, IPC); a host transport cannot be, nor can DistriFusion's gathers, which
    // stay in flight from one step into the next.
    StepBuffers& g = step_io;
    if (g.graph_txt_len != prompt.txt.dim(0)) {
      g.graphs.clear();
      g.graph_txt_len = prompt.txt.dim(0);
    }
    const int kind = model->attention().graph_kind(int(i));
    if (const auto found = g.graphs.find(kind); found != g.graphs.end()) {
      found->second.graph->replay();
      layout->watch(backend->stream());            // a hung peer ends the job, not this rank's GPU
      replayed_bytes += found->second.bytes_sent;  // what the captured exchanges send per replay
    } else {
      model->set_step(int(i));  // replays before it ran no host code
      const double sent_before = layout->stats().bytes_sent;
      step();
      const double sent = layout->stats().bytes_sent - sent_before;
      // Captured for the steps after it of the same kind (the capture computes step i + 1's work).
      if (cuda_graphs && step_capturable() && i + 1 < job.steps && model->attention().graph_kind(int(i + 1)) == kind) {
        model->set_step(int(i + 1));
        StepBuffers::CapturedStep captured{backend->capture(step), sent};
        if (captured.graph)
          g.graphs[kind] = std::move(captured);
        else
          cuda_graphs = false;  // this backend cannot capture
        layout->reset_stats();  // the capture's exchanges sent nothing; count the eager step again
        replayed_bytes += sent;
      }
    }
    progress.poll();
  }
  backend->count_nonfinite(io.tokens, io.bad);
  backend->synchronize();  // the steps are queued on a device: the time is when they are done
  const double seconds = std::chrono::duration<double>(clock::now() - start).count();
  const double per_step = seconds / double(job.steps);
  if (layout->group_size() > 1) {  // before the final gather, which is not part of a step
    CommStats sent = layout->stats();
    sent.bytes_sent += replayed_bytes;
    const StepAccounting acc = gather_accounting(layout->group(), sent, seconds);
    if (layout->group_leader()) {
      std::printf("fresco: image %lld, communication per step (mean of %lld):\n%s", (long long)job.index,
                  (long long)job.steps,
                  acc.table("group " + std::to_string(layout->group_index()), job.steps).c_str());
      if (const std::string extra = model->attention().report(); !extra.empty())
        std::printf("  rank %d: %s\n", mpi.rank(), extra.c_str());
    }
  }
  const Tensor all_tokens = gather_image_rows(*layout, shards, backend->download(io.tokens));  // [Limg, 64]
  backend->copy(all_tokens, io.packed);
  backend->unpack_latent(io.packed, device_latent);
  const Tensor result = backend->download(device_latent);  // [16, h, w]
  // Non-finite values of any rank's rows fail the image on every rank of the group.
  const int64_t bad_here = backend->download(io.bad).data<int64_t>()[0];
  std::vector<int64_t> bad_all(size_t(layout->group_size()));
  layout->group().host_all_gather(&bad_here, bad_all.data(),
                                  Displacements::packed(std::vector<size_t>(bad_all.size(), sizeof(int64_t))));
  int64_t bad = 0;
  for (int64_t b : bad_all) bad += b;
  // The group decodes the picture together (bands of rows), unless the latent is already bad.
  DecodedImage picture;
  if (decoder && !bad) {
    picture = decode_on_group(*decoder, layout->group(), result);
    bad += picture.non_finite;
  }
  if (!layout->group_leader()) return true;  // the leader reports and writes

  if (bad) {
    std::cerr << "fresco: error (rank " << mpi.rank() << "): image " << job.index << ": " << bad
              << " non-finite values in the latent or the decoded picture; "
              << image_result_path(out_dir, job.index) << " not written" << std::endl;
    progress.image_done(job.index, per_step, seconds, false);
    return false;
  }
  ImageProvenance p;
  p.prompt_index = job.index;
  p.seed = int64_t(job.seed);
  p.steps = job.steps;
  p.width = job.width;
  p.height = job.height;
  p.guidance = job.guidance;
  p.model = config.name;
  p.command_line = command_line;
  p.ranks = mpi.size();
  if (choice.plan.method == ParallelMethod::patch) {
    const auto& d = choice.plan.displaced;
    p.parallel = "patch";
    p.patches = layout->group_size();
    p.warmup_steps = d.full_sync ? job.steps : std::min<int64_t>(d.warmup_steps, job.steps);
    p.sync_mode = d.full_sync ? "full_sync" : "async";
    p.stale_dtype = dtype_name(d.stale_dtype);
  } else {
    p.ulysses = layout->ulysses();
    p.ring = layout->ring();
    p.comm_dtype = choice.plan.fp8_wire ? "e4m3" : dtype_name(choice.plan.compute);
  }
  p.seconds_per_step = per_step;
  p.compute_dtype = dtype_name(choice.plan.compute);
  p.digests = job.digests;
  // The PNG first: the HDF5 result marks the image as done for a resumed run.
  if (decoder) write_png(image_png_path(out_dir, job.index), picture.image, png_text(p));
  write_image_result(image_result_path(out_dir, job.index), result, p, decoder ? &picture.image : nullptr);
  progress.image_done(job.index, per_step, seconds, true);
  return true;
}

int GenerateRun::operator()() {
  install_stop_handlers();  // from here a SIGTERM/SIGUSR1 stops the batch at a step boundary
  const std::vector<int64_t> todo = pending();
  int64_t in_this_slice = 0;
  for (const ImageJob& j : jobs) in_this_slice += in_slice(j.index);
  BatchProgress progress(mpi, int64_t(todo.size()), in_this_slice - int64_t(todo.size()),
                         layout->groups());
  int64_t failures = 0;
  // Round-robin of the images still to do over the data-parallel groups, so a resumed batch
  // stays balanced.
  const size_t groups = size_t(layout->groups());
  int64_t not_done = 0;  // images abandoned or not started because of a stop signal
  for (size_t k = size_t(layout->group_index()); k < todo.size(); k += groups) {
    if (!stopped) failures += !generate_one(jobs[size_t(todo[k])], progress);
    if (stopped) {  // the image in progress and the rest of this group's share
      ++not_done;
      if (layout->group_leader()) progress.image_stopped(todo[k]);
    }
  }
  progress.finish();
  int64_t total_failures = 0, total_not_done = 0;
  FRESCO_MPI_CHECK(MPI_Allreduce(&failures, &total_failures, 1, MPI_INT64_T, MPI_SUM, mpi.world()));
  if (layout->position() != 0) not_done = 0;  // counted once per group
  FRESCO_MPI_CHECK(MPI_Allreduce(&not_done, &total_not_done, 1, MPI_INT64_T, MPI_SUM, mpi.world()));
  if (total_not_done > 0) {
    if (mpi.rank() == 0)
      std::printf("fresco generate: stopped by a signal: %lld image(s) not done, %lld failed; finished images "
                  "are kept in %s; run the same command again to finish the batch (exit status %d)\n",
                  (long long)total_not_done, (long long)total_failures, out_dir.c_str(), kExitStopped);
    return kExitStopped;
  }
  if (mpi.rank() == 0)
    std::printf("fresco generate: %lld image(s) in %s, %lld failed\n",
                (long long)(jobs.size() - size_t(total_failures)), out_dir.c_str(),
                (long long)total_failures);
  return total_failures ? ComputeError::kExitCode : 0;
}

// What determines each image's numbers, as digests (docs/file-formats.md, "Image result").
// Ulysses x Ring degrees are left out: they change results only within float32 rounding.
void record_digests(GenerateRun& run, const std::vector<std::string>& prompt_digests) {
  const std::string weights = Digest()
                                  .add(run.model->weights_identity())
                                  .add(run.decoder ? run.decoder->weights_identity() : std::string("no decoder"))
                                  .hex();
  for (ImageJob& job : run.jobs) {
    Digest settings;
    settings.add("fresco-image settings 2").i64(job.width).i64(job.height).i64(job.steps);
    settings.u64(job.seed).f64(job.guidance).add(run.config.name).add(dtype_name(run.choice.plan.compute));
    if (run.choice.plan.method == ParallelMethod::patch) {
      const auto& d = run.choice.plan.displaced;
      settings.add("patch").i64(run.layout->group_size());
      settings.i64(d.full_sync ? job.steps : std::min<int64_t>(d.warmup_steps, job.steps));
      settings.add(d.full_sync ? "full_sync" : "async").add(dtype_name(d.stale_dtype));
    } else {
      settings.add("sequence");
      // Inexact: a different result, whose per-token scales span one head group.
      if (run.choice.plan.fp8_wire) settings.add("q/k/v e4m3").i64(run.choice.plan.head_groups);
    }
    job.digests.weights = weights;
    job.digests.prompt = prompt_digests.at(size_t(job.index));
    job.digests.settings = settings.hex();
    job.digests.combined = Digest().add(job.digests.weights).add(job.digests.prompt).add(job.digests.settings).hex();
  }
}

// The memory estimate of the largest image against this node's memory per rank (InputError
// naming the option or the prompt file's attribute that sets the size).
void check_generate_memory(const po::variables_map& vm, const GenerateRun& run, const EngineChoice& engine,
                           const std::string& weights_path, int ranks_on_node) {
  if (engine.backend != "cpu") return;  // device memory is the GPU backend's to check
  const double weight_bytes = weight_bytes_in_memory(run.config, engine, weights_path);
  const double budget = memory_per_rank(ranks_on_node);
  const bool patch = run.choice.plan.method == ParallelMethod::patch;
  const bool size_given = !vm["width"].defaulted() || !vm["height"].defaulted();
  for (const ImageJob& job : run.jobs) {
    const int64_t tokens = (job.height / 16) * (job.width / 16);
    const MemoryEstimate m = estimate_memory(run.config, weight_bytes, engine.compute, tokens,
                                             run.prompts->txt_len(job.index), run.layout->group_size(), patch,
                                             run.choice.plan.displaced.stale_dtype);
    if (m.total() <= budget) continue;
    const double gib = 1024.0 * 1024.0 * 1024.0;
    char msg[512];
    std::snprintf(msg, sizeof msg,
                  "image %lld (%lldx%lld) needs about %.1f GiB per rank (weights %.1f GiB, activations %.1f GiB), "
                  "more than the %.1f GiB per rank this node has; ",
                  (long long)job.index, (long long)job.width, (long long)job.height, m.total() / gib, m.weights / gib,
                  m.activations / gib, budget / gib);
    throw InputError(std::string(msg) +
                     (size_given ? "lower --width/--height" : "lower the width/height attributes of " + run.prompts->path()) +
                     ", spread an image over more ranks (--ulysses/--ring or --patches), use --dtype bf16 or fewer "
                     "ranks per node");
  }
}

}  // namespace

Command generate_command() {
  Command c;
  c.name = "generate";
  c.summary = "denoise a batch of prompts into latents, data parallel over ranks (resumable)";
  c.usage = "[mpiexec -n N] fresco generate --weights W.h5 --prompts P.h5 --out DIR";
  c.details =
      "Groups of ranks (--ulysses x --ring, or --patches) each take whole images; by default\n"
      "the performance model picks the layout that finishes the batch soonest (no group idle at\n"
      "the start; rank 0 prints the choice and its prediction). Image i is written atomically to\n"
      "DIR/img_{i}.h5 (final latent /latent [16, H/8, W/8] plus provenance; with --vae also the\n"
      "picture /image [3, H, W], decoded by the group in bands of rows, and DIR/img_{i}.png).\n"
      "Images whose .h5 exists are skipped, so re-running the same command after preemption finishes the batch. --seed, --width,\n"
      "--height, --steps and --guidance apply where the prompt file gives no value, and\n"
      "override it when given explicitly. Image i's noise seed is the prompt's own seed\n"
      "attribute, else (--seed or the batch's seed) + i.";
  c.add_options = [](po::options_description& o, po::positional_options_description&) {
    o.add_options()
        ("prompts", po::value<std::string>()->required(), "prompt batch (HDF5, fresco-prompts)")
        ("out", po::value<std::string>()->required(), "output directory")
        ("vae", po::value<std::string>()->default_value(""),
         "autoencoder weights (flux-ae, ae-small, ae-tiny): decode every image to DIR/img_{i}.png")
        ("no-decode", po::bool_switch(), "write latents only, even with --vae")
        ("seed", po::value<int64_t>()->default_value(0), "base seed of the initial noise")
        ("width", po::value<int64_t>()->default_value(256), "image width in pixels (multiple of 16)")
        ("height", po::value<int64_t>()->default_value(256), "image height in pixels (multiple of 16)")
        ("steps", po::value<int64_t>()->default_value(0), "denoising steps (0: the preset's default)")
        ("guidance", po::value<double>()->default_value(-1.0),
         "guidance scale for models with a guidance embedder (negative: the preset's default)")
        ("slice", po::value<std::string>()->default_value("0/1"),
         "K/N: compute only the K-th of N contiguous parts of the batch (job arrays; K from 0)");
    add_model_options(o);
    add_engine_options(o);
    add_parallel_options(o);
  };
  c.setup = [](const po::variables_map& vm, const RunContext& ctx) -> std::function<int()> {
    require_input(vm["steps"].defaulted() || vm["steps"].as<int64_t>() > 0,
                  "option --steps must be positive (got " + std::to_string(vm["steps"].as<int64_t>()) + ")");
    require_input(vm["steps"].as<int64_t>() <= kMaxSteps, "option --steps must be at most " +
                                                              std::to_string(kMaxSteps) + " (got " +
                                                              std::to_string(vm["steps"].as<int64_t>()) + ")");
    check_finite(vm["guidance"].as<double>(), "--guidance");
    check_threads(vm["threads"].as<int>());
    auto run = std::make_shared<GenerateRun>(GenerateRun{ctx.mpi, ctx.command_line,
                                                         vm["out"].as<std::string>(), parallel_choice(vm),
                                                         nullptr, {}, nullptr, nullptr, nullptr, {}, {}, {}});
    // The prompt count sizes the automatic layout; the layout is collective, so it comes
    // before any check that only some ranks could fail.
    {
      const std::string s = vm["slice"].as<std::string>();
      long long k = -1, n = 0;
      char end = 0;
      require_input(std::sscanf(s.c_str(), "%lld/%lld%c", &k, &n, &end) == 2 && n > 0 && k >= 0 && k < n,
                    "option --slice must be K/N with 0 <= K < N (got '" + s + "')");
      run->slice = k;
      run->slices = n;
    }
    run->prompts = std::make_unique<PromptsFile>(vm["prompts"].as<std::string>());
    EngineChoice engine = engine_choice(vm);
    run->choice.plan.set_compute(engine.compute);
    // The backend selects the rank's GPU, which the layout's device transports use.
    run->backend = make_engine_backend(engine, ctx.mpi.local_rank());
    request_transport(run->choice.layout, engine, *run->backend);
    // The automatic layout is chosen for the model and the images of this run, so they are read
    // first; every rank reads the same files and options, so these checks fail on all or none.
    const std::string weights_path = vm["weights"].as<std::string>();
    run->config = preset_for_weights(weights_path, vm["model"].as<std::string>());
    validate_prompts(*run->prompts, run->config);
    for (int64_t i = 0; i < run->prompts->size(); ++i) run->jobs.push_back(resolve_job(vm, *run->prompts, i, run->config));
    {
      // This run's images: its slice, all of them, also on a rerun that finds some done, so
      // that a resumed run builds the same layout (and computes the same bits).
      AutoLayoutInputs auto_layout;
      auto_layout.config = run->config;
      auto_layout.patch = run->choice.plan.method == ParallelMethod::patch;
      auto_layout.link = run->choice.layout.link;
      for (const ImageJob& job : run->jobs)
        if (run->in_slice(job.index))
          auto_layout.images.push_back({run->prompts->txt_len(job.index), job.height / 16, job.width / 16});
      auto_layout.decode = !vm["vae"].as<std::string>().empty() && !vm["no-decode"].as<bool>();
      auto_layout.engine = engine;
      auto_layout.threads_per_rank = threads_per_rank(vm["threads"].as<int>(), ctx.mpi.local_size());
      auto_layout.weight_bytes = weight_bytes_in_memory(run->config, engine, weights_path);
      auto_layout.memory_budget = memory_per_rank(ctx.mpi.local_size());
      auto_layout.stale_dtype = run->choice.plan.displaced.stale_dtype;
      const int64_t images_here = int64_t(auto_layout.images.size());
      if (images_here > 0) run->choice.layout.choose = automatic_layout(std::move(auto_layout));
      run->layout = std::make_unique<ParallelLayout>(ctx.mpi, run->choice.layout, std::max<int64_t>(images_here, 1));
    }
    run->layout->set_deadline(engine.comm_timeout);
    // Every prompt entry's values, each rank a share (collective: before any per-rank check).
    const std::vector<std::string> prompt_digests = check_prompt_values(ctx.mpi, *run->prompts);
    configure_threads(vm["threads"].as<int>(), ctx.mpi.local_size());
    ensure_writable_directory(run->out_dir);
    for (const ImageJob& job : run->jobs)
      image_shards(*run->layout, run->choice.plan, run->prompts->txt_len(job.index), job.height / 16,
                   job.width / 16);  // refuses images too small for the group
    check_generate_memory(vm, *run, engine, weights_path, ctx.mpi.local_size());
    const ImageJob& first = run->jobs.front();
    report_plan(ctx.mpi, *run->layout, run->choice, run->config,
                run->prompts->txt_len(0) + (first.height / 16) * (first.width / 16));
    run->cuda_graphs = engine.cuda_graphs;
    // DistriFusion's steps can be graphs when every gather completes within its step.
    run->choice.plan.displaced.join_each_step = run->cuda_graphs && run->layout->capturable();
    const std::string vae_path = vm["vae"].as<std::string>();
    if (!vae_path.empty() && !vm["no-decode"].as<bool>()) {
      for (const ImageJob& job : run->jobs)
        require_input(job.height / 8 >= run->layout->group_size(),
                      "image " + std::to_string(job.index) + ": " + std::to_string(job.height / 8) +
                          " latent rows cannot be decoded on " + std::to_string(run->layout->group_size()) +
                          " ranks");
      run->decoder = load_decoder(vae_path, *run->backend, engine);
    } else if (ctx.mpi.rank() == 0) {
      std::printf("fresco generate: writing latents only (%s)\n",
                  vae_path.empty() ? "no --vae given" : "--no-decode");
    }
    run->model = std::make_unique<FluxTransformer>(
        run->config, load_weights(weights_path, run->config.name, *run->backend, weight_dtype_for(engine)),
        *run->backend, make_attention(*run->layout, run->config, run->choice.plan), engine.compute);
    record_digests(*run, prompt_digests);
    return [run]() { return (*run)(); };
  };
  return c;
}

}  // namespace fresco::cli
