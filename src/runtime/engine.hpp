// The engine of a run, set up once the same way for every command (generate, forward, bench,
// decode, sweep's runs): the backend (which selects the rank's GPU), the transport, the model
// preset, the parallel layout (automatic or given), the deadline, the CPU threads and the
// denoiser with the attention of its plan. The commands parse options into EngineChoice and
// ParallelChoice and call these steps in order, with their own checks between them.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "mpi/comm/mpi_context.hpp"
#include "mpi/plans/parallel_layout.hpp"
#include "mpi/plans/parallel_plan.hpp"
#include "src/backend/backend.hpp"
#include "src/model/denoiser.hpp"
#include "src/model/flux_config.hpp"
#include "src/model/lora.hpp"
#include "src/model/perf_model.hpp"
#include "src/model/vae_decoder.hpp"
#include "src/runtime/step_cache.hpp"

namespace fresco {

// Where and how the ops run (--backend, --dtype, --cuda-graphs, --transport, --comm-timeout).
struct EngineChoice {
  std::string backend = "cpu";   // cpu | cuda (--backend auto resolved: see default_backend_name)
  bool backend_auto = false;     // --backend auto: cpu where cuda cannot run the group
  bool cuda_graphs = true;       // --cuda-graphs: capture a denoising step once, replay it
  DType compute = DType::f32;    // activations: f32, or bf16 (the GPU's; CPU rounds alike)
  bool fp8 = false;              // --dtype fp8: bf16 activations, the token linears in e4m3
  int fp8_bf16_steps = 0;        // --fp8-bf16-steps: the first and last N steps in bf16
  bool fp8_attention = false;    // --fp8-attention: the joint attention on e4m3 operands
  std::string transport = "auto"; // --transport: auto | mpi | ipc | nccl | ucx (transports.hpp)
  double comm_timeout = 300;     // seconds a rank waits for a peer before ending the job
};

// The values --dtype accepts, for help texts and errors.
inline constexpr const char* kComputeDtypeChoices = "auto (bf16 on cuda, f32 on cpu), f32, bf16 or fp8";
// --dtype (or another option named `option`) resolved for `backend`: auto is bf16 on cuda and
// f32 on cpu; f32/float32 and bf16/bfloat16 as given; fp8 computes the activations in bf16
// (fp8_dtype_option says whether the token linears run in e4m3); anything else an InputError
// listing the accepted values.
DType resolve_compute_dtype(const std::string& value, const std::string& backend, const std::string& option = "dtype");
// Whether --dtype asks for the FP8 linears (docs/performance.md "FP8").
bool fp8_dtype_option(const std::string& value);
// The name of an engine's precision for records and reports: f32, bf16 or fp8.
std::string precision_name(const EngineChoice& engine);
// The FP8 parts of `engine` applied to a new model (before set_condition): its token linears
// (--dtype fp8) and its attention (--fp8-attention).
void apply_fp8_choice(Denoiser& model, const EngineChoice& engine);

// How an image is split over its ranks (--parallel and its degrees and options).
struct ParallelChoice {
  LayoutRequest layout;
  PlanOptions plan;
};

// The device a backend runs on, for reports: the GPU's name (the rank's, `local_rank` modulo
// the visible GPUs), or "CPU".
std::string device_name(const Backend& backend, int local_rank);
// The performance model's machine for a group of this engine: the measured step rate of the GPU
// kind and dtype where Fresco has measured it (docs/performance.md), else a stated assumption;
// on CPU ranks the rate of `threads_per_rank` threads.
MachineModel engine_machine(const EngineChoice& engine, const std::string& device, int threads_per_rank);

// Weights in the compute dtype's precision: an f32 run keeps what the file stores, a bf16 run
// converts to bf16 (the GPU's weights).
std::optional<DType> weight_dtype_for(const EngineChoice& engine);

// Sets OpenMP and OpenBLAS threads: `requested` if positive, else OMP_NUM_THREADS if set
// (what Slurm scripts set from --cpus-per-task), else the node's cores shared among its ranks.
// Returns the count. Results are bitwise reproducible for a given thread count per rank
// (BLAS blocking depends on it), whatever the number of ranks.
int configure_threads(int requested, int ranks_on_node);
// The count configure_threads sets, without setting it (the automatic layout's CPU rate).
int threads_per_rank(int requested, int ranks_on_node);

// The autoencoder decoder of a weights file (InputError when the file holds another model).
std::unique_ptr<VaeDecoder> load_decoder(const std::string& path, Backend& backend, const EngineChoice& engine);

class Engine {
 public:
  // Step 1: this rank's backend (it selects the rank's GPU, which the device transports use),
  // the transport request, and the preset of the weights (`preset` auto: the file's own).
  Engine(const MpiSession& mpi, EngineChoice engine, ParallelChoice parallel, std::string weights_path,
         const std::string& preset);
  // Step 2 (collective): the layout, `choose` picking the degrees the user left automatic
  // (null: ParallelLayout's fixed rule), for `images` images spread over the groups; sets the
  // communication deadline.
  void build_layout(DegreeChooser choose, int64_t images);
  // Step 3: the weights onto the backend (with the `lora` files merged; rank 0 warns of keys
  // they left unmatched where allowed) and the denoiser with the attention of the plan and the
  // buffers of `cache` (set before; checked against the model here).
  void load_model();

  // Whether a whole step can be one graph: one rank per image, or transports that queue their
  // transfers on the device (nccl, ipc) for the exact method, and for DistriFusion when its
  // gathers complete within their step (join_each_step).
  bool step_capturable() const;
  // Prints (rank 0) the layout and, for the patch method, the memory of its stale buffers for a
  // sequence of `tokens` tokens.
  void report_plan(int64_t tokens) const;

  const MpiSession& mpi;
  EngineChoice choice;
  ParallelChoice parallel;
  StepCacheOptions cache;  // --cache and its knobs (none by default)
  LoraOptions lora;        // --lora files merged into the transformer's weights at load (none by default)
  std::vector<LoraSummary> loras;  // what load_model merged: provenance and the run record
  std::string weights_path;
  FluxConfig config;   // the preset (the performance model and memory estimate are FLUX's)
  DenoiserSpec spec;   // the preset as the runtime sees it
  std::unique_ptr<Backend> backend;
  std::unique_ptr<ParallelLayout> layout;
  ModelWeights weights;  // the model's (tensors shared with it), for a second model of the same weights
  std::unique_ptr<Denoiser> model;
};

}  // namespace fresco
