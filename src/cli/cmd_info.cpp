// `fresco info`: what this build and this node offer (backends, ops, GPUs, MPI ranks).
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "mpi/comm/transports.hpp"
#include "src/backend/backend.hpp"
#include "src/cli/commands.hpp"
#include "src/model/flux_model.hpp"
#include "src/model/flux_weights.hpp"
#include "src/model/qwen_config.hpp"
#ifdef FRESCO_HAVE_CUDA
#include "cuda/device_info.hpp"
#endif

namespace fresco::cli {
namespace {

#ifdef FRESCO_HAVE_CUDA
// The plain reason a CUDA build sees no GPU: on a node without one the runtime's own words
// ("CUDA driver version is insufficient for CUDA runtime version") read like a broken install.
std::string no_gpu_line(const std::string& runtime_reason) {
  std::string why;
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES"); visible && !*visible)
    why = "CUDA_VISIBLE_DEVICES is empty";
  else if (std::error_code ec; !std::filesystem::exists("/dev/nvidiactl", ec))
    why = "no NVIDIA driver on this node (no /dev/nvidiactl)";
  else
    why = "the NVIDIA driver is loaded but CUDA found no usable GPU (CUDA says: " + runtime_reason + ")";
  return "GPUs: none on this node (" + why + "), so commands run on the CPU (--backend auto picks cpu)";
}
#endif

}  // namespace

Command info_command() {
  Command c;
  c.name = "info";
  c.summary = "show the build, backends, presets and visible GPUs";
  c.usage = "[mpiexec -n N] fresco info";
  c.details = "Prints what this build supports and what the node offers; rank 0 prints.";
  c.add_options = [](po::options_description&, po::positional_options_description&) {};
  c.setup = [](const po::variables_map&, const RunContext& ctx) -> std::function<int()> {
    return [&mpi = ctx.mpi]() {
      if (mpi.rank() != 0) return 0;
      std::printf("MPI ranks: %d (%d on this node)\n", mpi.size(), mpi.local_size());
      for (const auto& b : available_backends()) {
        std::printf("backend %s:", b->name().c_str());
        for (DType dt : {DType::f32, DType::bf16}) {
          int n = 0;
          for (Op op : all_ops()) {  // statistics and counters have their own output dtypes
            const DType out = op == Op::group_sums || op == Op::change_sums ? DType::f64
                              : op == Op::count_nonfinite   ? DType::i64
                                                            : dt;
            n += b->supports(OpDesc{op, dt, dt, out});
          }
          bool forward = true;
          for (const OpDesc& op : FluxTransformer::ops_needed(dt, dt)) forward &= b->supports(op);
          std::printf(" %s: %d of %d ops%s;", dtype_name(dt), n, int(Op::count),
                      forward ? ", FLUX forward" : "");
        }
        std::printf("\n");
      }
      for (const auto& name : flux_preset_names())
        std::printf("preset %-13s %lld parameters\n", name.c_str(),
                    (long long)flux_parameter_count(flux_preset(name)));
      for (const auto& name : qwen_preset_names())
        std::printf("preset %-13s %lld parameters\n", name.c_str(),
                    (long long)qwen_parameter_count(qwen_preset(name)));
#ifdef FRESCO_HAVE_CUDA
      const auto devices = cuda::list_devices();
      if (devices.empty()) std::printf("%s\n", no_gpu_line(cuda::no_device_reason()).c_str());
      std::printf("CUDA: built, runtime %d.%d; %zu GPU(s) visible\n", cuda::runtime_version() / 1000,
                  cuda::runtime_version() % 1000 / 10, devices.size());
      for (const auto& d : devices)
        std::printf("  GPU %d: %s, sm_%d%d, %.1f GiB, %d SMs\n", d.index, d.name.c_str(), d.major,
                    d.minor, double(d.total_memory) / (1 << 30), d.multiprocessors);
#else
      std::printf("GPUs: none usable: this build has no CUDA backend, so commands run on the CPU\n");
      std::printf("CUDA: not built (no CUDA compiler found or -DFRESCO_CUDA=OFF)\n");
#endif
      {
        std::string names;
        for (const std::string& t : transports_built()) names += (names.empty() ? "" : ", ") + t;
        std::printf("transports: %s (--transport; auto picks per communicator)\n", names.c_str());
      }
#ifdef FRESCO_HAVE_UCX
      std::printf("UCX: built (--transport ucx: one-sided puts of host memory; GPU ranks stage through pinned "
                  "host buffers)\n");
#else
      std::printf("UCX: not built (UCX not found or -DFRESCO_UCX=OFF; --transport ucx unavailable)\n");
#endif
      return 0;
    };
  };
  return c;
}

}  // namespace fresco::cli
