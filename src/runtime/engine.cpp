#include "src/runtime/engine.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "src/core/error.hpp"
#include "src/model/model_registry.hpp"
#include "src/model/vae_config.hpp"
#include "src/model/weights_io.hpp"
#include "src/runtime/validation.hpp"
#ifdef FRESCO_HAVE_CUDA
#include "cuda/device_info.hpp"
#endif

namespace fresco {

DType resolve_compute_dtype(const std::string& value, const std::string& backend, const std::string& option) {
  if (value == "auto") return backend == "cuda" ? DType::bf16 : DType::f32;
  if (value == "f32" || value == "float32") return DType::f32;
  if (value == "bf16" || value == "bfloat16" || fp8_dtype_option(value)) return DType::bf16;
  throw InputError("option --" + option + " must be " + kComputeDtypeChoices + " (got '" + value + "')");
}

bool fp8_dtype_option(const std::string& value) { return value == "fp8" || value == "e4m3"; }

void apply_fp8_choice(Denoiser& model, const EngineChoice& engine) {
  if (engine.fp8) model.use_fp8_linears();
  if (engine.fp8_attention) model.use_fp8_attention();
}

std::string precision_name(const EngineChoice& engine) { return engine.fp8 ? "fp8" : dtype_name(engine.compute); }

std::string device_name(const Backend& backend, int local_rank) {
#ifdef FRESCO_HAVE_CUDA
  if (backend.device() == Device::cuda) {
    const auto devices = cuda::list_devices();
    if (!devices.empty()) return devices[size_t(local_rank) % devices.size()].name;
  }
#endif
  (void)local_rank;
  return backend.device() == Device::cpu ? "CPU" : backend.name();
}

MachineModel engine_machine(const EngineChoice& engine, const std::string& device, int threads) {
  if (engine.backend == "cuda") return gpu_machine(device, engine.compute == DType::bf16);
  return cpu_machine(threads);
}

std::optional<DType> weight_dtype_for(const EngineChoice& engine) {
  if (engine.compute == DType::f32) return std::nullopt;
  return engine.compute;
}

int threads_per_rank(int requested, int ranks_on_node) {
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  int n = std::max(1, cores / std::max(1, ranks_on_node));
  if (const char* env = std::getenv("OMP_NUM_THREADS"); env && std::atoi(env) > 0) n = std::atoi(env);
  if (requested > 0) n = requested;
  return n;
}

int configure_threads(int requested, int ranks_on_node) {
  check_threads(requested);  // a negative or absurd count is named, never taken as automatic
  const int n = threads_per_rank(requested, ranks_on_node);
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
  return n;
}

std::unique_ptr<VaeDecoder> load_decoder(const std::string& path, Backend& backend, const EngineChoice& engine) {
  const std::string preset = weights_file_model(path);
  require_input(is_vae_preset(preset), path + " holds " + preset + " weights, not an autoencoder's");
  return std::make_unique<VaeDecoder>(vae_preset(preset), load_weights(path, preset, backend, weight_dtype_for(engine)),
                                      backend, engine.compute);
}

Engine::Engine(const MpiSession& mpi_session, EngineChoice engine, ParallelChoice parallel_choice,
               std::string weights, const std::string& preset)
    : mpi(mpi_session), choice(std::move(engine)), parallel(std::move(parallel_choice)), weights_path(std::move(weights)) {
  parallel.plan.set_compute(choice.compute);
  backend = make_backend(choice.backend, mpi.local_rank());
  parallel.layout.transport = choice.transport;
  parallel.layout.device_buffers = backend->device() == Device::cuda;
  config = preset_for_weights(weights_path, preset);
  spec = denoiser_spec(config.name);
}

void Engine::build_layout(DegreeChooser choose, int64_t images) {
  parallel.layout.choose = std::move(choose);
  layout = std::make_unique<ParallelLayout>(mpi, parallel.layout, std::max<int64_t>(images, 1));
  layout->set_deadline(choice.comm_timeout);
}

bool Engine::step_capturable() const {
  return layout->group_size() == 1 ||
         (layout->capturable() &&
          (parallel.plan.method == ParallelMethod::sequence || parallel.plan.displaced.join_each_step));
}

void Engine::load_model() {
  FRESCO_ASSERT(layout != nullptr, "Engine::load_model before build_layout");
  // An FP8 weights file: --dtype fp8 runs on its e4m3 linears as stored (never a bf16 copy of
  // them); another dtype on them dequantized; the hybrid schedule needs the bf16 ones.
  const bool fp8_file = is_fp8_weights_file(weights_path);
  const Fp8Linears fp8_linears = choice.fp8 ? Fp8Linears::keep : Fp8Linears::dequantize;
  if (fp8_file) {
    require_input(choice.fp8_bf16_steps == 0,
                  "--fp8-bf16-steps runs its first and last steps on bf16 token linears, which the FP8 weights file " +
                      weights_path + " does not hold: run it from the bf16 file that file was made from");
    if (!choice.fp8 && mpi.rank() == 0)
      std::fprintf(stderr,
                   "fresco: note: %s is an FP8 weights file: --dtype %s runs its token linears dequantized "
                   "(e4m3 x scale), not the weights it was made from\n",
                   weights_path.c_str(), precision_name(choice).c_str());
  }
  if (lora.empty()) {
    weights = load_weights(weights_path, config.name, *backend, weight_dtype_for(choice), nullptr, fp8_linears);
  } else {
    const LoraMerge merge(lora, config.name);
    if (mpi.rank() == 0)
      for (const std::string& key : merge.unmatched())
        std::fprintf(stderr, "fresco: warning: LoRA key not merged (--lora-unmatched warn): %s\n", key.c_str());
    weights = load_weights(weights_path, config.name, *backend, weight_dtype_for(choice), &merge);
    loras = merge.summaries();
  }
  model = make_denoiser(config.name, weights, *backend, make_attention(*layout, spec.attention, parallel.plan),
                        choice.compute);
  apply_fp8_choice(*model, choice);
  resolve_cache_options(cache, spec.blocks);
  model->set_step_cache(cache_layout(cache));
}

void Engine::report_plan(int64_t tokens) const {
  if (mpi.rank() != 0) return;
  const PlanOptions& plan = parallel.plan;
  const bool patch = plan.method == ParallelMethod::patch;
  std::printf("%s\n", layout->describe(!patch).c_str());
  if (const int U = layout->ulysses(), H = spec.attention.heads; !patch && U > 1 && H % U != 0) {
    const int per_rank = (H + U - 1) / U;  // UspAttention pads the heads to a multiple of U
    std::printf("Ulysses %d over %d heads: each rank attends %d heads, %d of them empty padding in all "
                "(the result is unchanged; %.0f%% more attention work and all-to-all bytes)\n",
                U, H, per_rank, per_rank * U - H, 100.0 * double(per_rank * U - H) / double(H));
  }
  if (!patch && layout->ring() > 1 && plan.inter_node == InterNodeSchedule::torus)
    std::printf("Torus attention: K/V of the %d Ulysses groups in %d shifted pairwise steps (no forwarding)\n",
                layout->ring(), layout->ring() - 1);
  if (!patch || layout->group_size() == 1) return;
  const auto& d = plan.displaced;
  const AttentionShape& a = spec.attention;
  const int width = a.heads * a.head_dim;
  std::printf("DistriFusion: %d patches, %s, %d warm-up step(s); stale K/V buffers %.1f MiB per rank "
              "(%d layers x 2 x %lld tokens x %d, %s) for the first image\n",
              layout->group_size(), d.full_sync ? "every step synchronous" : "displaced", d.warmup_steps,
              DisplacedPatchAttention::buffer_bytes(a.layers, tokens, width, d.stale_dtype, plan.compute) / (1 << 20),
              a.layers, (long long)tokens, width, dtype_name(d.stale_dtype));
}

}  // namespace fresco
