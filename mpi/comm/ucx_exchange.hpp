// The exchanges of the UCX transport (ucx_communicator.hpp describes the protocol): a plan of
// what this rank puts to and expects from each peer, made collectively into an Exchange.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mpi/comm/communicator.hpp"

namespace fresco {

class UcxCommunicator;

// The plan of an exchange before its set-up: what this rank sends to and expects from each peer.
struct ExchangeSpec {
  std::string what;
  std::vector<Tensor> buffers;            // keeps the bound memory alive
  void* region = nullptr;                 // where peers put into this rank
  size_t region_bytes = 0;
  std::vector<const char*> send_from;     // by peer: first byte this rank sends it
  std::vector<size_t> send_bytes;         // by peer
  std::vector<uint64_t> expect_offset;    // by peer: where in `region` its bytes land
  std::vector<uint64_t> expect_bytes;     // by peer
  struct Copy {
    void* dst;
    const void* src;
    size_t bytes;
  };
  std::vector<Copy> copies;  // the part for oneself

  explicit ExchangeSpec(std::string name, size_t size)
      : what(std::move(name)), send_from(size, nullptr), send_bytes(size, 0), expect_offset(size, 0), expect_bytes(size, 0) {}
};

// Maps this rank's receive region, exchanges addresses and remote keys over the bootstrap MPI
// communicator (collective: every rank creates the same exchanges in the same order) and
// returns the exchange. A peer that sends a different byte count than this rank expects (or
// the reverse) is an error here.
std::unique_ptr<Exchange> make_ucx_exchange(UcxCommunicator& comm, ExchangeSpec spec);

}  // namespace fresco
