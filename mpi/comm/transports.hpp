// The transports of the parallel plans, chosen per communicator at set-up (--transport).
//
//   mpi   host memory over MPI (CPU ranks); device buffers are staged through pinned host
//         buffers (staged_communicator.hpp): works everywhere, slowest.
//   nccl  NCCL between GPU ranks, one GPU each, within and across nodes (nccl_communicator.hpp).
//   ipc   CUDA IPC one-sided puts between the GPU ranks of one node; ranks may share a GPU
//         (ipc_communicator.hpp).
//   ucx   UCX one-sided puts of host memory, where built (ucx_communicator.hpp); device buffers
//         are staged through pinned host buffers as for mpi, the puts issued by UCX's progress
//         thread (staged_communicator.hpp).
//   auto  host buffers: mpi. Device buffers: ipc when the communicator's ranks share a node,
//         else nccl where built and no two ranks share a GPU, else mpi (host-staged).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mpi/comm/mpi_communicator.hpp"

namespace fresco {

// The transports this build has, in the order --help lists them ("mpi", "ipc", "nccl", "ucx").
std::vector<std::string> transports_built();

// Throws InputError unless `name` is auto or a transport of this build.
void check_transport_name(const std::string& name);

// Not a transport: exchanges that move nothing, for `fresco bench`'s compute-only baseline
// (the step time without any transfer, from which the exposed communication follows).
inline constexpr const char* kSkipTransfers = "skip-transfers";

// The communicator the plans use over `base`; collective over `base` (every member calls it
// with the same arguments). `device_buffers`: the exchanges move GPU memory (CUDA backend).
std::unique_ptr<Communicator> make_transport(const std::string& requested, bool device_buffers,
                                             std::unique_ptr<MpiCommunicator> base);

}  // namespace fresco
