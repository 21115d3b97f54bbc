// UCX (ucp API) error checks and one RAII owner per UCX handle, for the UCX transport
// (ucx_communicator.cpp). Every ucs_status_t goes through FRESCO_UCX_CHECK, every status
// pointer of a non-blocking operation through FRESCO_UCX_REQUEST; a failure is an ApiError
// naming the call, UCX's message and the source line.
#pragma once

#include <ucp/api/ucp.h>

#include <memory>
#include <type_traits>
#include <vector>

#include "src/core/error.hpp"

namespace fresco {

[[noreturn]] void ucx_fail(ucs_status_t status, const char* call, const char* file, int line);

// The request of a non-blocking operation: nullptr when it completed at once, else a request
// to test with ucp_request_check_status and free with ucp_request_free. Throws on an error.
inline void* ucx_request(ucs_status_ptr_t result, const char* call, const char* file, int line) {
  if (UCS_PTR_IS_ERR(result)) ucx_fail(UCS_PTR_STATUS(result), call, file, line);
  return result;  // nullptr (done) or a request
}

// ---- owners -----------------------------------------------------------------------------
// Handles whose release needs nothing but the handle.
struct UcxContextRelease {
  void operator()(ucp_context_h h) const { ucp_cleanup(h); }
};
struct UcxWorkerRelease {
  void operator()(ucp_worker_h h) const { ucp_worker_destroy(h); }
};
struct UcxRkeyRelease {
  void operator()(ucp_rkey_h h) const { ucp_rkey_destroy(h); }
};
struct UcxPackedRkeyRelease {
  void operator()(void* buffer) const { ucp_rkey_buffer_release(buffer); }
};
using UcxContext = std::unique_ptr<std::remove_pointer_t<ucp_context_h>, UcxContextRelease>;
using UcxWorker = std::unique_ptr<std::remove_pointer_t<ucp_worker_h>, UcxWorkerRelease>;
// A remote key unpacked on an endpoint: must be destroyed before the endpoint is closed.
using UcxRkey = std::unique_ptr<std::remove_pointer_t<ucp_rkey_h>, UcxRkeyRelease>;
using UcxPackedRkey = std::unique_ptr<void, UcxPackedRkeyRelease>;

// Host memory registered for remote access (ucp_mem_map of an existing range); unmapped on
// destruction. The context must outlive it.
class UcxMemory {
 public:
  UcxMemory() = default;
  UcxMemory(ucp_context_h context, void* address, size_t bytes);
  ~UcxMemory() { release(); }
  UcxMemory(UcxMemory&& other) noexcept { *this = std::move(other); }
  UcxMemory& operator=(UcxMemory&& other) noexcept;
  UcxMemory(const UcxMemory&) = delete;
  UcxMemory& operator=(const UcxMemory&) = delete;
  ucp_mem_h get() const { return memory_; }
  // The remote key of this memory, packed for another process (bytes to exchange).
  std::vector<char> packed_rkey() const;

 private:
  void release() noexcept;
  ucp_context_h context_ = nullptr;
  ucp_mem_h memory_ = nullptr;
};

}  // namespace fresco

#define FRESCO_UCX_CHECK(call)                                                             \
  do {                                                                                     \
    const ucs_status_t fresco_ucx_status_ = (call);                                        \
    if (fresco_ucx_status_ != UCS_OK) ::fresco::ucx_fail(fresco_ucx_status_, #call, __FILE__, __LINE__); \
  } while (0)

#define FRESCO_UCX_REQUEST(call) ::fresco::ucx_request((call), #call, __FILE__, __LINE__)
