// `fresco info`: what this build and this node offer (backends, ops, GPUs, MPI ranks).
#include <cstdio>

#include "mpi/comm/transports.hpp"
#include "src/backend/backend.hpp"
#include "src/cli/commands.hpp"
#include "src/model/flux_model.hpp"
#include "src/model/flux_weights.hpp"
#ifdef FRESCO_HAVE_CUDA
#include "cuda/device_info.hpp"
#endif

namespace fresco::cli {

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
            const DType out = op == Op::group_sums ? DType::f64 : op == Op::count_nonfinite ? DType::i64 : dt;
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
#ifdef FRESCO_HAVE_CUDA
      const auto devices = cuda::list_devices();
      std::printf("CUDA runtime %d: %zu device(s)%s%s\n", cuda::runtime_version(), devices.size(),
                  devices.empty() ? " - " : "", devices.empty() ? cuda::no_device_reason().c_str() : "");
      for (const auto& d : devices)
        std::printf("  GPU %d: %s, sm_%d%d, %.1f GiB, %d SMs\n", d.index, d.name.c_str(), d.major,
                    d.minor, double(d.total_memory) / (1 << 30), d.multiprocessors);
#else
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
