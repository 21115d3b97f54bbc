// `fresco generate`: a batch of images, data parallel over ranks (each rank takes whole
// images). Every image is published atomically as DIR/img_{i}.h5; an image whose file exists
// is skipped, so re-running the same command resumes a preempted batch.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <utility>

#include "io/atomic_output.hpp"
#include "io/h5_file.hpp"
#include "io/image_file.hpp"
#include "io/png_file.hpp"
#include "src/cli/commands.hpp"
#include "src/cli/decode_result.hpp"
#include "src/cli/generate_sdxl.hpp"
#include "src/cli/parallel_decode.hpp"
#include "src/cli/text_prompts.hpp"
#include "src/core/digest.hpp"
#include "src/model/model_inputs.hpp"
#include "src/model/weights_io.hpp"
#include "src/runtime/auto_layout.hpp"
#include "src/runtime/engine.hpp"
#include "src/runtime/image_job.hpp"
#include "src/runtime/memory_check.hpp"
#include "src/runtime/progress.hpp"
#include "src/runtime/run_record.hpp"
#include "src/runtime/validation.hpp"
#include "src/runtime/work_queue.hpp"

namespace fresco::cli {
namespace {

// An option given explicitly on the command line (or config file) overrides the batch file;
// a batch value overrides the option's default.
template <typename T>
T pick(const po::variables_map& vm, const std::string& name, const std::optional<T>& from_file) {
  if (!vm[name].defaulted() || !from_file) return vm[name].as<T>();
  return *from_file;
}

}  // namespace

ImageJob resolve_job(const po::variables_map& vm, const PromptsFile& prompts, int64_t index,
                     const DenoiserSpec& spec) {
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
  if (job.steps == 0 && vm["steps"].defaulted() && !s.steps) job.steps = spec.default_steps;
  job.guidance = pick<double>(vm, "guidance", s.guidance);
  job.prompt_text = s.text.value_or("");
  if (job.guidance < 0) job.guidance = spec.default_guidance;  // negative: the preset's

  const std::string what = prompts.path() + " image " + std::to_string(index) + ": ";
  const bool size_given = !vm["width"].defaulted() || !vm["height"].defaulted();
  check_image_size(job.width, job.height, what,
                   size_given ? " (options --width/--height)" : " (width/height attributes of the prompt file)");
  check_steps(job.steps, what, vm["steps"].defaulted() ? " (steps attribute of the prompt file)" : " (option --steps)");
  require_input(std::isfinite(job.guidance), what + "guidance is not a finite number (attribute guidance)");
  return job;
}

namespace {

struct GenerateRun {
  GenerateRun(const MpiSession& session, std::string line, std::string out)
      : mpi(session), command_line(std::move(line)), out_dir(std::move(out)) {}
  const MpiSession& mpi;
  std::string command_line;
  std::string out_dir;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<PromptsFile> prompts;
  std::unique_ptr<VaeDecoder> decoder;  // null: latents only (--no-decode or no --vae)
  std::unique_ptr<ImageDenoiser> denoiser;
  std::vector<ImageJob> jobs;
  int64_t slice = 0, slices = 1;  // --slice K/N: this run's contiguous part of the batch
  std::string record_path;        // --record FILE: the run record (empty: none)
  bool verbose = false;           // --verbose: per-rank communication of every image
  std::function<void()> on_step;  // after every denoising step (the work queue's heartbeat)
  std::unique_ptr<RunRecord> record;

  bool in_slice(int64_t index) const {
    const int64_t n = int64_t(jobs.size());
    return index >= slice * n / slices && index < (slice + 1) * n / slices;
  }
  const ParallelLayout& layout() const { return *engine->layout; }

  // What an image of the slice still needs: nothing, its picture decoded from the saved latent
  // (a latents-only result and --vae), or denoising.
  enum class Work { none, decode, denoise };
  // Rank 0: the work image j needs; denoising when its result is missing, does not open, or
  // records another configuration (said per image).
  Work work_for(const ImageJob& j) const;
  // Indices of the images that need `work`, decided by rank 0 (one pass over the results) and
  // shared with all.
  struct Pending {
    std::vector<int64_t> denoise, decode;
  };
  Pending pending() const;
  // Decodes the saved latents of `indices` (this group's share), each result completed in place
  // with its picture; returns the failures (reported by the group leader).
  int64_t decode_saved(const std::vector<int64_t>& indices);
  bool stopped = false;  // a stop signal ended the batch at a step boundary
  // Denoises one image; false when its result was not finite (reported, not written).
  bool generate_one(const ImageJob& job, BatchProgress& progress);
  int operator()();
};

GenerateRun::Work GenerateRun::work_for(const ImageJob& j) const {
  const std::string path = image_result_path(out_dir, j.index);
  if (!std::filesystem::exists(path)) return Work::denoise;
  const std::string why = image_result_mismatch(path, j.digests);
  if (why.empty()) {
    // The latent is this run's; with a decoder, a result without its picture needs only that.
    if (decoder && !h5::File::open(path).exists("/image")) return Work::decode;
    return Work::none;
  }
  std::printf("fresco: image %lld: %s %s; computing it again\n", (long long)j.index, path.c_str(), why.c_str());
  return Work::denoise;
}

namespace {
// Rank 0's list, on every rank.
void broadcast_list(const MpiSession& mpi, std::vector<int64_t>& list) {
  int64_t n = int64_t(list.size());
  FRESCO_MPI_CHECK(MPI_Bcast(&n, 1, MPI_INT64_T, 0, mpi.world()));
  list.resize(size_t(n));
  FRESCO_MPI_CHECK(MPI_Bcast(list.data(), int(n), MPI_INT64_T, 0, mpi.world()));
}
}  // namespace

GenerateRun::Pending GenerateRun::pending() const {
  Pending p;
  if (mpi.rank() == 0)
    for (const ImageJob& j : jobs) {
      if (!in_slice(j.index)) continue;
      const Work w = work_for(j);
      if (w == Work::denoise) p.denoise.push_back(j.index);
      if (w == Work::decode) p.decode.push_back(j.index);
    }
  broadcast_list(mpi, p.denoise);
  broadcast_list(mpi, p.decode);
  return p;
}

int64_t GenerateRun::decode_saved(const std::vector<int64_t>& indices) {
  int64_t failures = 0;
  const size_t groups = size_t(layout().groups());
  for (size_t k = size_t(layout().group_index()); k < indices.size(); k += groups) {
    const std::string path = image_result_path(out_dir, indices[k]);
    const DecodedResult d = decode_result(*decoder, layout().group(), path);
    if (!layout().group_leader()) continue;
    if (d.published) {
      std::printf("fresco: image %lld: decoded its saved latent into %s (no denoising)\n", (long long)indices[k],
                  d.outputs.png.c_str());
      continue;
    }
    ++failures;
    try {
      std::rethrow_exception(d.failure);
    } catch (const std::exception& e) {
      std::cerr << "fresco: error (rank " << mpi.rank() << "): image " << indices[k] << ": " << e.what() << std::endl;
    }
  }
  return failures;
}

bool GenerateRun::generate_one(const ImageJob& job, BatchProgress& progress) {
  const PromptEntry prompt = prompts->read(job.index);
  const DenoisedImage result = denoiser->denoise(job, Conditioning{prompt.txt, prompt.y}, [&] {
    progress.poll();
    if (on_step) on_step();
  });
  if (result.stopped) {
    stopped = true;
    return true;
  }
  const double per_step = result.seconds / double(job.steps);
  int64_t bad = result.non_finite;
  // The group decodes the picture together (bands of rows), unless the latent is already bad.
  DecodedImage picture;
  if (decoder && !bad) {
    picture = decode_on_group(*decoder, layout().group(), result.latent);
    bad += picture.non_finite;
  }
  if (!layout().group_leader()) return true;  // the leader reports and writes

  if (record) record->add_image(job, result, bad == 0);
  if (bad) {
    std::cerr << "fresco: error (rank " << mpi.rank() << "): image " << job.index << ": " << bad
              << " non-finite values in the latent or the decoded picture; "
              << image_result_path(out_dir, job.index) << " not written" << std::endl;
    progress.image_done(job.index, job.width, job.height, job.steps, per_step, result.seconds, false);
    return false;
  }
  ImageProvenance p = image_provenance(job, *engine, command_line, per_step);
  p.cache_computed = result.cache_decisions;
  if (!result.cache_decisions.empty())
    std::printf("fresco: image %lld: step cache computed %lld of %lld steps (%s)\n", (long long)job.index,
                (long long)std::count(result.cache_decisions.begin(), result.cache_decisions.end(), '1'),
                (long long)job.steps, result.cache_decisions.c_str());
  if (verbose && !result.cache_ratios.empty()) {  // what the threshold is compared with (TeaCache: before rescaling)
    std::printf("fresco: image %lld: step cache metric per step:", (long long)job.index);
    for (double ratio : result.cache_ratios) std::printf(" %.4g", ratio);
    std::printf("\n");
  }
  // The PNG first: the HDF5 result marks the image as done for a resumed run.
  if (decoder) write_png(image_png_path(out_dir, job.index), picture.image, png_text(p));
  write_image_result(image_result_path(out_dir, job.index), result.latent, p, decoder ? &picture.image : nullptr);
  progress.image_done(job.index, job.width, job.height, job.steps, per_step, result.seconds, true);
  return true;
}

int GenerateRun::operator()() {
  const auto start = std::chrono::steady_clock::now();
  install_stop_handlers();  // from here a SIGTERM/SIGUSR1 stops the batch at a step boundary
  const Pending work = pending();
  const std::vector<int64_t>& todo = work.denoise;
  int64_t in_this_slice = 0;
  for (const ImageJob& j : jobs) in_this_slice += in_slice(j.index);
  if (mpi.rank() == 0)
    std::printf("fresco generate: %lld image(s) in this %s, %lld to denoise, %lld to decode from their saved latent\n",
                (long long)in_this_slice, slices > 1 ? "slice" : "batch", (long long)todo.size(),
                (long long)work.decode.size());
  // Latents saved by an earlier run without --vae: decoded, not denoised again.
  int64_t failures = work.decode.empty() ? 0 : decode_saved(work.decode);
  BatchProgress progress(mpi, int64_t(todo.size()), in_this_slice - int64_t(todo.size()),
                         layout().groups());
  // The images still to do, handed out one at a time (src/runtime/work_queue.hpp): a group takes
  // the next when it is free, so sizes balance themselves and a slow, stopped or dead group
  // holds no more than the image it computes; the others take the rest.
  const double deadline = layout().group().deadline();
  WorkQueue queue(mpi, layout(), todo, deadline);
  if (layout().group_leader()) on_step = [&queue] { queue.beat(); };
  int64_t finished = 0;  // images this group finished, published or failed (its leader counts)
  constexpr int64_t kQueueEmpty = -1, kStopping = -2;
  while (!stopped) {
    // The leader decides for its group: a group whose leader got a stop signal takes no new
    // image (--max-hours and the other ranks' signals stop it at a step boundary, below).
    int64_t mine = kStopping, next = kStopping;
    if (layout().group_leader() && stop_signal() == 0) mine = queue.take().value_or(kQueueEmpty);
    from_leader(layout().group(), &mine, &next, sizeof next);
    if (next == kStopping) stopped = true;
    if (next < 0) break;
    const bool ok = generate_one(jobs[size_t(next)], progress);
    if (stopped) {  // abandoned at a step boundary: left to a resumed run
      if (layout().group_leader()) progress.image_stopped(next);
      break;
    }
    failures += !ok;
    if (layout().group_leader()) {
      queue.finish(next);
      ++finished;
    }
  }
  // The end-of-batch agreement (failures, finished images), waited on without spinning and
  // under the deadline: a stopped or dead group never joins it, and rank 0 then names the
  // images it held (CommTimeout: main reports it and aborts the job, status 6); the finished
  // images stay published, so a rerun finishes the batch. The other ranks wait twice as long,
  // so that rank 0's report is the one that ends the job (where rank 0 itself is alive).
  int64_t counts[2] = {failures, finished}, totals[2] = {0, 0};
  MPI_Request agreement;
  FRESCO_MPI_CHECK(MPI_Iallreduce(counts, totals, 2, MPI_INT64_T, MPI_SUM, mpi.world(), &agreement));
  // A group still computing beats at every step: the deadline counts from the last new beat.
  int64_t beats_seen = queue.beats();
  auto last_check = std::chrono::steady_clock::now();
  const auto alive = [&] {
    if (std::chrono::steady_clock::now() - last_check < std::chrono::seconds(1)) return false;
    last_check = std::chrono::steady_clock::now();
    const int64_t now = queue.beats();
    return std::exchange(beats_seen, now) != now;
  };
  wait_sleeping(agreement, mpi.rank() == 0 ? deadline : 2 * deadline, [&](double waited) {
    std::string what = "rank " + std::to_string(mpi.rank()) + " waited " + std::to_string(int(waited)) +
                       " s at the end of the batch: a group is hung or dead (deadline " + std::to_string(deadline) +
                       " s, --comm-timeout)";
    if (mpi.rank() != 0) return what;
    const std::vector<std::string> lost = queue.unfinished();
    what += lost.empty() ? "; it held no image" : "; taken but never finished:";
    for (const std::string& l : lost) what += " " + l + (&l == &lost.back() ? "" : ",");
    return what + ". Every other image is published in " + out_dir + "; run the same command again to finish the batch";
  }, [&] { progress.poll(); }, alive);
  const int64_t total_failures = totals[0], total_not_done = int64_t(todo.size()) - totals[1];
  // Images no group took (every group stopped first) are reported by rank 0, so that the
  // progress counts every image of the batch.
  if (mpi.rank() == 0)
    for (int64_t index : queue.untaken()) progress.image_stopped(index);
  progress.finish();
  queue.close();
  if (record) record->write(mpi, record_path, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (mpi.rank() == 0) {  // the end-of-run block
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double gpus = engine->choice.backend == "cuda" ? double(mpi.size()) : 0.0;
    const int64_t done = progress.images_done();
    std::printf("fresco generate: run summary: %.1f s wall, %lld image(s) denoised, %lld decoded from saved latents, "
                "%.3f s/step (mean over the denoised images), %.1f images/hour",
                wall, (long long)done, (long long)(int64_t(work.decode.size())), 
                progress.steps_done() > 0 ? progress.seconds_done() / progress.steps_done() : 0.0,
                wall > 0 ? double(done) * 3600.0 / wall : 0.0);
    if (gpus > 0) std::printf(", %.1f images per GPU-hour on %d GPU(s)", wall > 0 ? double(done) * 3600.0 / (wall * gpus) : 0.0, mpi.size());
    std::printf("\n");
  }
  if (total_not_done > 0) {
    if (mpi.rank() == 0) {
      const std::string why = stop_reason();
      std::printf("fresco generate: stopped by %s: %lld image(s) not done, %lld failed; finished images "
                  "are kept in %s; run the same command again to finish the batch (exit status %d)\n",
                  why.empty() ? "a signal or --max-hours on another rank" : why.c_str(), (long long)total_not_done,
                  (long long)total_failures, out_dir.c_str(), kExitStopped);
    }
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
  // The transformer's weights only: the decoder does not change the latent, so adding --vae to
  // a latents-only batch decodes its results instead of denoising them again.
  const std::string weights = Digest().add(run.engine->model->weights_identity()).hex();
  for (ImageJob& job : run.jobs) {
    Digest settings;
    settings.add("fresco-image settings 2").i64(job.width).i64(job.height).i64(job.steps);
    const PlanOptions& plan = run.engine->parallel.plan;
    settings.u64(job.seed).f64(job.guidance).add(run.engine->spec.name).add(precision_name(run.engine->choice));
    if (const int n = run.engine->choice.fp8_bf16_steps; n > 0) settings.add("fp8-bf16-steps").i64(n);
    if (run.engine->choice.fp8_attention) settings.add("fp8-attention");
    if (plan.method == ParallelMethod::patch) {
      const auto& d = plan.displaced;
      settings.add("patch").i64(run.layout().group_size());
      settings.i64(d.full_sync ? job.steps : std::min<int64_t>(d.warmup_steps, job.steps));
      settings.add(d.full_sync ? "full_sync" : "async").add(dtype_name(d.stale_dtype));
    } else {
      settings.add("sequence");
      // Inexact: a different result, whose per-token scales span one head group.
      if (plan.fp8_wire) settings.add("q/k/v e4m3").i64(plan.head_groups);
    }
    // A step cache changes the result; without one the digest stays what it was before caching.
    if (run.engine->cache.enabled()) settings.add("step cache").add(describe_cache(run.engine->cache));
    job.digests.weights = weights;
    job.digests.prompt = prompt_digests.at(size_t(job.index));
    job.digests.settings = settings.hex();
    job.digests.combined = Digest().add(job.digests.weights).add(job.digests.prompt).add(job.digests.settings).hex();
  }
}

// The one memory check (src/runtime/memory_check.hpp) of every image on this rank, host or GPU
// (InputError naming the option or the prompt file's attribute that sets the size).
void check_generate_memory(const po::variables_map& vm, const GenerateRun& run) {
  const bool size_given = !vm["width"].defaulted() || !vm["height"].defaulted();
  std::vector<MemoryImage> images;
  for (const ImageJob& job : run.jobs)
    images.push_back({"image " + std::to_string(job.index) + " (" + std::to_string(job.width) + "x" +
                          std::to_string(job.height) + ")",
                      (job.height / 16) * (job.width / 16), run.prompts->txt_len(job.index)});
  check_rank_memory(*run.engine, images,
                    size_given ? "--width/--height" : "the width/height attributes of " + run.prompts->path());
}

}  // namespace

Command generate_command() {
  Command c;
  c.name = "generate";
  c.summary = "denoise a batch of prompts into latents, data parallel over ranks (resumable)";
  c.usage = "[mpiexec -n N] fresco generate --weights W.h5 --prompts P.h5|P.txt|P.jsonl --out DIR";
  c.details =
      "Groups of ranks (--ulysses x --ring, or --patches) each take whole images; by default\n"
      "the performance model picks the layout that finishes the batch soonest (no group idle at\n"
      "the start; rank 0 prints the choice and its prediction). Image i is written atomically to\n"
      "DIR/img_{i}.h5 (final latent /latent [16, H/8, W/8] plus provenance; with --vae also the\n"
      "picture /image [3, H, W], decoded by the group in bands of rows, and DIR/img_{i}.png).\n"
      "Images whose .h5 exists are skipped, so re-running the same command after preemption finishes the batch. --seed, --width,\n"
      "--height, --steps and --guidance apply where the prompt file gives no value, and\n"
      "override it when given explicitly. Image i's noise seed is the prompt's own seed\n"
      "attribute, else (--seed or the batch's seed) + i. A text or JSONL prompt list with\n"
      "--t5 T5.h5 --clip CLIP.h5 --tokenizers DIR is first encoded on rank 0 (as fresco encode\n"
      "does, on the --backend in the --dtype's activations: f32, or bf16 for bf16 and fp8) into\n"
      "DIR/prompts.h5, which then is the batch; the encoders are freed before the transformer loads.";
  c.add_options = [](po::options_description& o, po::positional_options_description&) {
    o.add_options()
        ("prompts", po::value<std::string>()->required(),
         "prompt batch (HDF5, fresco-prompts), or a prompt list (text, or .jsonl as for encode)\n"
         "with --t5, --clip and --tokenizers: encoded first, on rank 0, into DIR/prompts.h5")
        ("out", po::value<std::string>()->required(), "output directory")
        ("vae", po::value<std::string>()->default_value(""),
         "autoencoder weights (flux-ae, ae-small, ae-tiny): decode every image to DIR/img_{i}.png\n"
         "(FLUX presets only: Qwen-Image runs write latents, its VAE is not in Fresco yet)")
        ("no-decode", po::bool_switch(), "write latents only, even with --vae")
        ("seed", po::value<int64_t>()->default_value(0), "base seed of the initial noise")
        ("width", po::value<int64_t>()->default_value(256), "image width in pixels (multiple of 16)")
        ("height", po::value<int64_t>()->default_value(256), "image height in pixels (multiple of 16)")
        ("steps", po::value<int64_t>()->default_value(0), "denoising steps (0: the preset's default)")
        ("guidance", po::value<double>()->default_value(-1.0),
         "guidance scale: FLUX's guidance embedder, or the U-Net's classifier-free guidance\n"
         "where a prompt has a negative one (negative: the preset's default)")
        ("slice", po::value<std::string>()->default_value("0/1"),
         "K/N: compute only the K-th of N contiguous parts of the batch (job arrays; K from 0)")
        ("max-hours", po::value<double>()->default_value(0),
         "stop at a step boundary before this many hours have passed since the start (0: no limit;\n"
         "as GROMACS's -maxh: give the job's time limit minus a margin); the same exit status (7)\n"
         "and resume as a stop signal")
        ("verbose", po::bool_switch(), "per-rank communication of every image (groups of several ranks)")
        ("scheduler", po::value<std::string>()->default_value("euler"),
         "the SDXL U-Net's sampler: euler (Euler discrete, SDXL's default) or ddim (DistriFusion's);\n"
         "FLUX always samples its flow with Euler (docs/sdxl.md)")
        ("timestep-spacing", po::value<std::string>()->default_value("leading"),
         "the SDXL U-Net's timesteps: leading (SDXL's config) or trailing (euler only)")
        ("record", po::value<std::string>()->default_value(""),
         "FILE: write a JSON run record (settings, engine, per-image and per-step times,\n"
         "communication; docs/file-formats.md) when the batch ends");
    add_model_options(o);
    add_engine_options(o);
    add_parallel_options(o);
    add_cache_options(o);
    add_lora_options(o);
    add_text_encoder_options(o, false);
  };
  c.setup = [](const po::variables_map& vm, const RunContext& ctx) -> std::function<int()> {
    require_input(vm["steps"].defaulted() || vm["steps"].as<int64_t>() > 0,
                  "option --steps must be positive (got " + std::to_string(vm["steps"].as<int64_t>()) + ")");
    require_input(vm["steps"].as<int64_t>() <= kMaxSteps, "option --steps must be at most " +
                                                              std::to_string(kMaxSteps) + " (got " +
                                                              std::to_string(vm["steps"].as<int64_t>()) + ")");
    check_finite(vm["guidance"].as<double>(), "--guidance");
    check_threads(vm["threads"].as<int>());
    if (const std::string unet = sdxl_generate_preset(vm); !unet.empty()) return sdxl_generate_setup(vm, ctx, unet);
    auto run = std::make_shared<GenerateRun>(ctx.mpi, ctx.command_line, vm["out"].as<std::string>());
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
    run->record_path = vm["record"].as<std::string>();
    const double max_hours = vm["max-hours"].as<double>();
    require_input(max_hours >= 0 && std::isfinite(max_hours), "option --max-hours must be a non-negative number of hours");
    set_time_limit(max_hours * 3600.0);
    run->verbose = vm["verbose"].as<bool>();
    if (!run->record_path.empty()) ensure_output_path(run->record_path);
    // A text prompt list is encoded here, before the engine exists (src/cli/text_prompts.hpp).
    const EngineChoice choice = engine_choice(vm);
    run->prompts = std::make_unique<PromptsFile>(prompt_batch_for_generate(vm, ctx.mpi, choice, run->out_dir));
    // The engine: the backend selects the rank's GPU, which the layout's device transports use.
    run->engine = std::make_unique<Engine>(ctx.mpi, choice, parallel_choice(vm),
                                           vm["weights"].as<std::string>(), vm["model"].as<std::string>());
    Engine& e = *run->engine;
    e.cache = cache_options(vm);
    resolve_cache_options(e.cache, e.spec.blocks);
    e.lora = lora_options(vm);
    // The automatic layout is chosen for the model and the images of this run, so they are read
    // first; every rank reads the same files and options, so these checks fail on all or none.
    validate_prompts(*run->prompts, e.config);
    for (int64_t i = 0; i < run->prompts->size(); ++i) run->jobs.push_back(resolve_job(vm, *run->prompts, i, e.spec));
    {
      // This run's images: its slice, all of them, also on a rerun that finds some done, so
      // that a resumed run builds the same layout (and computes the same bits).
      AutoLayoutInputs auto_layout = auto_layout_inputs(e, vm["threads"].as<int>());
      for (const ImageJob& job : run->jobs)
        if (run->in_slice(job.index))
          auto_layout.images.push_back({run->prompts->txt_len(job.index), job.height / 16, job.width / 16});
      auto_layout.decode = !vm["vae"].as<std::string>().empty() && !vm["no-decode"].as<bool>();
      auto_layout.weight_bytes = weight_bytes_in_memory(e.config, e.choice, e.weights_path);
      auto_layout.memory_budget = memory_per_rank(ctx.mpi.local_size());
      const int64_t images_here = int64_t(auto_layout.images.size());
      e.build_layout(images_here > 0 ? automatic_layout(std::move(auto_layout)) : nullptr, images_here);
    }
    // Every prompt entry's values, each rank a share (collective: before any per-rank check).
    const std::vector<std::string> prompt_digests = check_prompt_values(ctx.mpi, *run->prompts);
    configure_threads(vm["threads"].as<int>(), ctx.mpi.local_size());
    ensure_writable_directory(run->out_dir);
    for (const ImageJob& job : run->jobs)
      image_shards(*e.layout, e.parallel.plan, run->prompts->txt_len(job.index), job.height / 16,
                   job.width / 16);  // refuses images too small for the group
    check_generate_memory(vm, *run);
    if (ctx.mpi.rank() == 0) {  // the values resolved from the options and the prompt file
      std::map<std::string, int64_t> kinds;
      for (const ImageJob& job : run->jobs) {
        if (!run->in_slice(job.index)) continue;
        char kind[160];
        std::snprintf(kind, sizeof kind, "%lldx%lld, %lld steps, guidance %g", (long long)job.width,
                      (long long)job.height, (long long)job.steps, job.guidance);
        ++kinds[kind];
      }
      std::printf("fresco generate: resolved: %s backend, %s activations%s; images:", e.choice.backend.c_str(),
                  dtype_name(e.choice.compute), e.choice.fp8 ? " (token linears in fp8)" : "");
      for (const auto& [kind, count] : kinds) std::printf(" %lld x (%s);", (long long)count, kind.c_str());
      std::printf("\n");
    }
    const ImageJob& first = run->jobs.front();
    e.report_plan(run->prompts->txt_len(0) + (first.height / 16) * (first.width / 16));
    // DistriFusion's steps can be graphs when every gather completes within its step.
    e.parallel.plan.displaced.join_each_step = e.choice.cuda_graphs && e.layout->capturable();
    const std::string vae_path = vm["vae"].as<std::string>();
    if (!vae_path.empty() && !vm["no-decode"].as<bool>()) {
      // FLUX's autoencoder would turn a Qwen-Image latent into a wrong picture without a word.
      require_input(e.spec.family == "flux", "--vae " + vae_path + ": the " + e.spec.name +
                                                 " latents need the Qwen-Image VAE decoder, which Fresco does not have "
                                                 "yet; run without --vae (or with --no-decode) for latents only");
      for (const ImageJob& job : run->jobs)
        require_input(job.height / 8 >= e.layout->group_size(),
                      "image " + std::to_string(job.index) + ": " + std::to_string(job.height / 8) +
                          " latent rows cannot be decoded on " + std::to_string(e.layout->group_size()) +
                          " ranks");
      run->decoder = load_decoder(vae_path, *e.backend, e.choice);
    } else if (ctx.mpi.rank() == 0) {
      std::printf("fresco generate: writing latents only (%s)\n",
                  vae_path.empty() ? "no --vae given" : "--no-decode");
    }
    e.load_model();
    run->denoiser = std::make_unique<ImageDenoiser>(e, run->verbose);
    if (!run->record_path.empty()) {
      run->record = std::make_unique<RunRecord>("generate", ctx.command_line);
      run->record->set_engine(e);
      run->record->set_settings(settings_record(vm));
    }
    record_digests(*run, prompt_digests);
    return [run]() { return (*run)(); };
  };
  return c;
}

}  // namespace fresco::cli
