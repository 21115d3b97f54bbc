#include "mpi/comm/transports.hpp"

#include <algorithm>
#include <cstring>

#include "mpi/comm/layered_communicator.hpp"
#include "mpi/comm/mpi_context.hpp"

#if FRESCO_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "cuda/cuda_check.hpp"
#include "mpi/comm/ipc_communicator.hpp"
#include "mpi/comm/staged_communicator.hpp"
#endif
#if FRESCO_HAVE_NCCL
#include "mpi/comm/nccl_communicator.hpp"
#endif
#if FRESCO_HAVE_UCX
#include "mpi/comm/ucx_communicator.hpp"
#endif

namespace fresco {

std::vector<std::string> transports_built() {
  std::vector<std::string> names{"mpi"};
#if FRESCO_HAVE_CUDA
  names.push_back("ipc");
#endif
#if FRESCO_HAVE_NCCL
  names.push_back("nccl");
#endif
#if FRESCO_HAVE_UCX
  names.push_back("ucx");
#endif
  return names;
}

void check_transport_name(const std::string& name) {
  const std::vector<std::string> built = transports_built();
  if (name == "auto" || std::find(built.begin(), built.end(), name) != built.end()) return;
  std::string list = "auto";
  for (const std::string& b : built) list += ", " + b;
  std::string why;
  if (name == "nccl" || name == "ipc")
    why = name == "nccl" ? " (this build has no NCCL: configure with NCCL_ROOT set to its prefix)"
                         : " (this build has no CUDA)";
  if (name == "ucx") why = " (this build has no UCX: install libucx-dev and reconfigure with -DFRESCO_UCX=ON)";
  throw InputError("option --transport must be one of " + list + " in this build (got '" + name + "')" + why);
}

#if FRESCO_HAVE_CUDA
namespace {

// Where the members of `comm` are: whether they share a node, and whether two share a GPU.
struct Placement {
  bool one_node = true;
  bool shared_gpu = false;
};

Placement placement(MpiCommunicator& comm) {
  // A rank is named by its host and its GPU's PCI bus id (collective over `comm` only).
  struct Where {
    char host[MPI_MAX_PROCESSOR_NAME];
    char bus_id[32];
  } mine{};
  int length = 0;
  FRESCO_MPI_CHECK(MPI_Get_processor_name(mine.host, &length));
  int device = 0;
  FRESCO_CUDA_CHECK(cudaGetDevice(&device));
  FRESCO_CUDA_CHECK(cudaDeviceGetPCIBusId(mine.bus_id, sizeof mine.bus_id, device));
  std::vector<Where> all(size_t(comm.size()));
  comm.host_all_gather(&mine, all.data(), Displacements::packed(std::vector<size_t>(all.size(), sizeof mine)));
  Placement p;
  for (size_t i = 0; i < all.size(); ++i) {
    if (std::strcmp(all[i].host, all[0].host) != 0) p.one_node = false;
    for (size_t j = i + 1; j < all.size(); ++j)
      if (std::strcmp(all[i].host, all[j].host) == 0 && std::strcmp(all[i].bus_id, all[j].bus_id) == 0)
        p.shared_gpu = true;
  }
  return p;
}

}  // namespace
#endif

namespace {

// The compute-only baseline of `fresco bench`: exchanges that move nothing, so a step runs
// the same kernels on the same buffers without waiting for any transfer; the step time minus
// this one is the communication a method leaves exposed. Collectives still run (set-up only).
class SkipTransfers final : public LayeredCommunicator {
 public:
  explicit SkipTransfers(std::unique_ptr<MpiCommunicator> base) : LayeredCommunicator(std::move(base)) {}
  std::string describe() const override { return base_->describe() + " (transfers skipped)"; }
  bool device_memory() const override { return true; }
  bool capturable() const override { return true; }
  std::unique_ptr<Exchange> all_to_all(const Tensor&, const Displacements&, const Tensor&,
                                       const Displacements&) override {
    return std::make_unique<Nothing>();
  }
  std::unique_ptr<Exchange> send_recv(const Tensor&, int, const Tensor&, int) override {
    return std::make_unique<Nothing>();
  }
  std::unique_ptr<Exchange> all_gather_in_place(const Tensor&, const Displacements&) override {
    return std::make_unique<Nothing>();
  }
  void all_reduce_sum(const Tensor&, Stream&) override {}

 private:
  struct Nothing final : Exchange {
    void start(Stream&) override {}
    void finish(Stream&) override {}
    bool poll() override { return true; }
  };
};

}  // namespace

std::unique_ptr<Communicator> make_transport(const std::string& requested, bool device_buffers,
                                             std::unique_ptr<MpiCommunicator> base) {
  if (requested == kSkipTransfers) return std::make_unique<SkipTransfers>(std::move(base));
  check_transport_name(requested);
  if (!device_buffers) {
#if FRESCO_HAVE_UCX
    // UCX one-sided puts between host buffers, on every communicator of several ranks (UCX
    // itself takes shared memory within a node and the network across).
    if (requested == "ucx") {
      if (base->size() == 1) return base;
      return std::make_unique<UcxCommunicator>(std::move(base));
    }
#endif
    require_input(requested == "auto" || requested == "mpi",
                  "--transport " + requested + " moves GPU memory, but this run computes on the CPU "
                  "(--backend cpu); use --transport mpi or auto");
    return base;
  }
#if FRESCO_HAVE_CUDA
  std::string chosen = requested;
  if (base->size() == 1) {
    chosen = "mpi";  // nothing crosses ranks: the staged wrapper only serves local copies
  } else if (chosen == "auto") {
    const Placement where = placement(*base);
    chosen = where.one_node ? "ipc" : "mpi";
#if FRESCO_HAVE_NCCL
    if (!where.one_node && !where.shared_gpu) chosen = "nccl";
#endif
  } else if (chosen == "ipc" || chosen == "nccl") {
    const Placement where = placement(*base);
    require_input(chosen != "ipc" || where.one_node,
                  "--transport ipc needs the ranks of " + base->describe() +
                      " on one node; use --transport nccl or mpi across nodes");
    require_input(chosen != "nccl" || !where.shared_gpu,
                  "--transport nccl needs one GPU per rank, but ranks of " + base->describe() +
                      " share a GPU; use --transport ipc (one node) or mpi");
  }
  if (chosen == "ipc") return std::make_unique<IpcCommunicator>(std::move(base));
#if FRESCO_HAVE_NCCL
  if (chosen == "nccl") return std::make_unique<NcclCommunicator>(std::move(base));
#endif
#if FRESCO_HAVE_UCX
  // UCX puts host memory only (GPU memory needs a UCX built with CUDA, which the GPU host's is
  // not): the device buffers are staged through pinned host mirrors, and the progress thread
  // puts each round's data once its copy from the GPU is done.
  if (chosen == "ucx")
    return std::make_unique<StagedCommunicator>(std::make_unique<UcxCommunicator>(std::move(base)));
#endif
  return std::make_unique<StagedCommunicator>(std::move(base));
#else
  (void)base;
  throw InputError("device buffers need a CUDA build");
#endif
}

}  // namespace fresco
