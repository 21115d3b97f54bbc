#include "src/cli/generate_sdxl.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "io/atomic_output.hpp"
#include "io/image_file.hpp"
#include "io/prompts_file.hpp"
#include "io/weights_file.hpp"
#include "src/cli/options.hpp"
#include "src/core/digest.hpp"
#include "src/model/noise.hpp"
#include "src/model/sdxl_config.hpp"
#include "src/model/sdxl_sampler.hpp"
#include "src/model/weights_io.hpp"
#include "src/runtime/engine.hpp"

namespace fresco::cli {
namespace {

// [rows, cols] -> [cols, rows] of a host f32 tensor (the latent [4, h w] <-> the tokens [h w, 4]).
Tensor host_transpose(const Tensor& x) {
  const int64_t rows = x.dim(0), cols = x.dim(1);
  Tensor y({cols, rows});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) y.f32()[c * rows + r] = x.f32()[r * cols + c];
  return y;
}

// One prompt's conditioning for the U-Net, checked against the preset's widths.
Conditioning sdxl_condition(const PromptEntry& e, const SdxlConfig& c, const ImageJob& job, const std::string& where) {
  const auto expect = [&](const Tensor& t, const char* name, const Shape& shape) {
    require_input(t.shape() == shape, where + name + " has shape " + shape_string(t.shape()) + ", but " + c.name +
                                          " expects " + shape_string(shape));
  };
  require_input(e.txt.rank() == 2 && e.txt.dim(1) == c.context_dim,
                where + "/txt has shape " + shape_string(e.txt.shape()) + ", but " + c.name +
                    " expects the text hidden states [Ltxt, " + std::to_string(c.context_dim) + "]");
  expect(e.y, "/y", {c.pooled_dim});
  Conditioning cond{e.txt, e.y};
  require_input(e.negative_txt.defined() == e.negative_y.defined(),
                where + ": a negative prompt needs both negative_txt and negative_y");
  if (e.negative_txt.defined()) {
    expect(e.negative_txt, "/negative_txt", e.txt.shape());
    expect(e.negative_y, "/negative_y", {c.pooled_dim});
    cond.negative_txt = e.negative_txt;
    cond.negative_y = e.negative_y;
  }
  if (e.size_cond.defined()) {
    expect(e.size_cond, "/size_cond", {6});
    cond.size_cond = e.size_cond;
  } else {  // SDXL's usual choice: the original and target size are the image's, no crop
    const float h = float(job.height), w = float(job.width);
    const float values[6] = {h, w, 0.0f, 0.0f, h, w};
    cond.size_cond = Tensor::from_floats({6}, std::span<const float>(values, 6));
  }
  return cond;
}

struct SdxlGenerateRun {
  std::string preset, out_dir, command_line, precision;
  SdxlScheduler scheduler = SdxlScheduler::euler;
  TimestepSpacing spacing = TimestepSpacing::leading;
  std::unique_ptr<PromptsFile> prompts;
  std::vector<ImageJob> jobs;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Denoiser> model;
  int64_t ranks = 1;

  int operator()() {
    const SdxlConfig config = sdxl_preset(preset);
    Backend& be = *backend;
    for (const ImageJob& job : jobs) {
      const auto start = std::chrono::steady_clock::now();
      const std::string where = prompts->path() + ":/prompts/" + std::to_string(job.index);
      const PromptEntry entry = prompts->read(job.index);
      const Conditioning cond = sdxl_condition(entry, config, job, where);
      const int64_t h = job.height / 8, w = job.width / 8, C = config.latent_channels;
      model->set_condition(cond, h, w, {}, 0);
      Tensor noise({C, h * w});  // [4, h w]
      fill_normal(noise, job.seed, RandomStream::initial_noise);
      const Tensor tokens = be.upload(host_transpose(noise));  // [h w, 4]
      const SdxlSchedule schedule = sdxl_schedule(scheduler, int(job.steps), spacing);
      sdxl_sample(*model, be, schedule, job.guidance, tokens);
      const Tensor latent = host_transpose(be.download(tokens)).reshape({C, h, w});  // [4, h, w]
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (count_nonfinite_host(latent) != 0)
        throw ComputeError("image " + std::to_string(job.index) + ": the sampler produced non-finite values; nothing written");
      ImageProvenance p = job_provenance(job, preset, command_line, ranks);
      p.seconds_per_step = seconds / double(job.steps);
      p.compute_dtype = precision;
      p.sampler = std::string(scheduler_name(scheduler)) + " " + spacing_name(spacing) +
                  (cond.negative_txt.defined() ? ", guided" : ", conditional only");
      const std::string path = image_result_path(out_dir, job.index);
      write_image_result(path, latent, p);
      std::printf("fresco generate: image %lld/%lld done (%s, %.3f s per step) -> %s\n", (long long)job.index + 1,
                  (long long)jobs.size(), p.sampler.c_str(), p.seconds_per_step, path.c_str());
    }
    return 0;
  }
};

}  // namespace

std::string sdxl_generate_preset(const po::variables_map& vm) {
  const std::string model = vm["model"].as<std::string>(), weights = vm["weights"].as<std::string>();
  if (model != "auto") return is_sdxl_preset(model) ? model : "";
  if (random_weights_seed(weights) || !std::filesystem::is_regular_file(weights)) return "";
  try {
    const std::string stored = weights_file_model(weights);
    return is_sdxl_preset(stored) ? stored : "";
  } catch (const Error&) {
    return "";  // generate's own path names what is wrong with the file
  }
}

std::function<int()> sdxl_generate_setup(const po::variables_map& vm, const RunContext& ctx, const std::string& preset) {
  require_input(ctx.mpi.size() == 1, preset + " runs on one rank for now (its patch parallelism is not built; "
                                              "docs/sdxl.md): run generate without mpiexec -n " +
                                              std::to_string(ctx.mpi.size()));
  require_input(vm["vae"].as<std::string>().empty(),
                "option --vae: there is no SDXL autoencoder preset yet; " + preset + " writes latents only");
  require_input(vm["cache"].as<std::string>() == "none", "option --cache is for the FLUX transformer");
  require_input(!vm.count("lora"), "option --lora is for the FLUX transformer");
  require_input(vm["slice"].as<std::string>() == "0/1", "option --slice is not available for " + preset);
  require_input(vm["record"].as<std::string>().empty(), "option --record is not available for " + preset);
  auto run = std::make_shared<SdxlGenerateRun>();
  run->preset = preset;
  run->out_dir = vm["out"].as<std::string>();
  run->command_line = ctx.command_line;
  run->scheduler = parse_sdxl_scheduler(vm["scheduler"].as<std::string>());
  run->spacing = parse_timestep_spacing(vm["timestep-spacing"].as<std::string>());
  const EngineChoice choice = engine_choice(vm);
  require_input(!choice.fp8, "--dtype fp8 is for the FLUX transformer");
  run->precision = precision_name(choice);
  run->prompts = std::make_unique<PromptsFile>(vm["prompts"].as<std::string>());
  const DenoiserSpec spec = denoiser_spec(preset);
  for (int64_t i = 0; i < run->prompts->size(); ++i) {
    run->jobs.push_back(resolve_job(vm, *run->prompts, i, spec));
    sdxl_schedule(run->scheduler, int(run->jobs.back().steps), run->spacing);  // refuses ddim + trailing now
  }
  configure_threads(vm["threads"].as<int>(), ctx.mpi.local_size());
  ensure_writable_directory(run->out_dir);
  run->backend = make_backend(choice.backend, ctx.mpi.local_rank());
  run->model = make_denoiser(preset, load_weights(vm["weights"].as<std::string>(), preset, *run->backend,
                                                  weight_dtype_for(choice)),
                             *run->backend, std::make_unique<LocalAttention>(), choice.compute);
  std::printf("fresco generate: %s on one rank, %s backend, %s activations, %s sampler (%s timesteps); latents only\n",
              preset.c_str(), choice.backend.c_str(), dtype_name(choice.compute), scheduler_name(run->scheduler),
              spacing_name(run->spacing));
  return [run]() { return (*run)(); };
}

}  // namespace fresco::cli
