#include "cuda/cudnn_sdpa.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <utility>

#include "cuda/cuda_check.hpp"
#include "cuda/cuda_stream.hpp"
#include "cuda/kernels.hpp"
#include "src/core/tuning.hpp"

namespace fresco::cuda {

namespace detail {
std::string cudnn_failure(cudnnStatus_t status, const char* call, const char* file, int line) {
  char message[1024] = {0};
  cudnnGetLastErrorString(message, sizeof message);
  std::string s = std::string("cuDNN call failed: ") + cudnnGetErrorString(status);
  if (message[0]) s += std::string(" (") + message + ")";
  return s + " [" + call + " at " + source_location(file, line) + "]";
}
}  // namespace detail

// ---- owners ---------------------------------------------------------------------------------

CudnnHandle::CudnnHandle() { FRESCO_CUDNN_CHECK(cudnnCreate(&h_)); }
CudnnHandle::~CudnnHandle() {
  if (h_) cudnnDestroy(h_);
}
CudnnHandle::CudnnHandle(CudnnHandle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
CudnnHandle& CudnnHandle::operator=(CudnnHandle&& o) noexcept {
  if (this != &o) {
    if (h_) cudnnDestroy(h_);
    h_ = std::exchange(o.h_, nullptr);
  }
  return *this;
}

CudnnDescriptor::CudnnDescriptor(cudnnBackendDescriptorType_t type) {
  FRESCO_CUDNN_CHECK(cudnnBackendCreateDescriptor(type, &d_));
}
CudnnDescriptor::~CudnnDescriptor() {
  if (d_) cudnnBackendDestroyDescriptor(d_);
}
CudnnDescriptor::CudnnDescriptor(CudnnDescriptor&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
CudnnDescriptor& CudnnDescriptor::operator=(CudnnDescriptor&& o) noexcept {
  if (this != &o) {
    if (d_) cudnnBackendDestroyDescriptor(d_);
    d_ = std::exchange(o.d_, nullptr);
  }
  return *this;
}
void CudnnDescriptor::set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
                          int64_t count, const void* values) {
  FRESCO_CUDNN_CHECK(cudnnBackendSetAttribute(d_, name, type, count, values));
}
void CudnnDescriptor::set_descriptor(cudnnBackendAttributeName_t name, const CudnnDescriptor& value) {
  cudnnBackendDescriptor_t v = value.get();
  FRESCO_CUDNN_CHECK(cudnnBackendSetAttribute(d_, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v));
}
void CudnnDescriptor::finalize() { FRESCO_CUDNN_CHECK(cudnnBackendFinalize(d_)); }

// ---- SDPA -----------------------------------------------------------------------------------

CudnnDescriptor cudnn_tensor(int64_t uid, cudnnDataType_t type, std::array<int64_t, 4> dims,
                             std::array<int64_t, 4> strides, TensorKind kind) {
  CudnnDescriptor t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const int64_t alignment = 16;
  t.set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
  t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
  t.set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
  t.set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data());
  t.set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data());
  const bool yes = true;
  if (kind == TensorKind::by_value) t.set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &yes);
  if (kind == TensorKind::intermediate) t.set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &yes);
  t.finalize();
  return t;
}

CudnnPlan cudnn_first_plan(cudnnHandle_t h, const std::vector<const CudnnDescriptor*>& ops,
                           std::vector<CudnnDescriptor>& keep) {
  std::vector<cudnnBackendDescriptor_t> raw_ops;
  for (const CudnnDescriptor* op : ops) raw_ops.push_back(op->get());
  CudnnDescriptor graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, int64_t(raw_ops.size()), raw_ops.data());
  graph.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
  graph.finalize();

  CudnnDescriptor heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  heur.set_descriptor(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  heur.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
  heur.finalize();
  int64_t count = 0;
  FRESCO_CUDNN_CHECK(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                              CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr));
  std::vector<CudnnDescriptor> configs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i) {
    configs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    raw.push_back(configs.back().get());
  }
  int64_t got = 0;
  if (count > 0)
    FRESCO_CUDNN_CHECK(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                                CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got, raw.data()));
  CudnnPlan result;
  std::string failures;
  for (int64_t i = 0; i < got && !result.plan; ++i) {
    auto plan = std::make_unique<CudnnDescriptor>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    plan->set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
    plan->set_descriptor(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, configs[size_t(i)]);
    const cudnnStatus_t rc = cudnnBackendFinalize(plan->get());
    if (rc != CUDNN_STATUS_SUCCESS) {
      failures += std::string(failures.empty() ? "" : "; ") + "config " + std::to_string(i) + ": " +
                  cudnnGetErrorString(rc);
      continue;
    }
    int64_t n = 0;
    FRESCO_CUDNN_CHECK(cudnnBackendGetAttribute(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                                CUDNN_TYPE_INT64, 1, &n, &result.workspace));
    result.plan = std::move(plan);
  }
  if (!result.plan)
    throw ApiError("cuDNN: no engine configuration finalized (" + std::to_string(got) + " offered" +
                   (failures.empty() ? "" : ": " + failures) + ")");
  keep.push_back(std::move(graph));
  keep.push_back(std::move(heur));
  for (auto& c : configs) keep.push_back(std::move(c));
  return result;
}

namespace {

enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kScale };

CudnnDescriptor make_tensor(int64_t uid, cudnnDataType_t type, std::array<int64_t, 4> dims,
                            std::array<int64_t, 4> strides, bool by_value = false) {
  return cudnn_tensor(uid, type, dims, strides, by_value ? TensorKind::by_value : TensorKind::data);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

using Pointers = std::array<void*, 7>;  // q, k, v, o, scale, stats (or null), workspace

struct CudnnSdpa::Plan {
  bool ok = false;
  std::vector<CudnnDescriptor> keep;  // tensors, operation, graph, heuristics, engine configs
  std::unique_ptr<CudnnDescriptor> plan;
  int64_t workspace = 0;
  float scale = 1.0f;  // by-value scale, read at execution
  bool executed = false;
  // The variant pack of the last pointers.
  std::unique_ptr<CudnnDescriptor> pack;
  Pointers pack_ptrs{};
  // Graph replays by pointers (graph_replay_ only), oldest first.
  struct Replay {
    Pointers ptrs;
    CudaGraphExec exec;
  };
  std::vector<Replay> replays;
  static constexpr size_t kMaxReplays = 8;
};

size_t hash_key_values(std::initializer_list<int64_t> values) {
  size_t h = 1469598103934665603ull;
  for (int64_t v : values) h = (h ^ std::hash<int64_t>{}(v)) * 1099511628211ull;
  return h;
}

size_t CudnnSdpa::KeyHash::operator()(const Key& k) const {
  return hash_key_values({k.Lq, k.Lk, k.H, k.D, k.ld_q, k.ld_k, k.ld_v, k.ld_o, int64_t(k.bf16), int64_t(k.stats)});
}

CudnnSdpa::CudnnSdpa() {
  force_stats_ = tuning::flag(tuning::Switch::cudnn_stats);
  version_ = int(cudnnGetVersion());
  if (version_ < 91300) {
    why_ = "cuDNN " + std::to_string(version_) + " has no SDPA_FWD operation (needs >= 9.13)";
    return;
  }
  try {
    handle_ = std::make_unique<CudnnHandle>();
  } catch (const Error& e) {
    why_ = e.what();
    handle_.reset();
  }
}

CudnnSdpa::~CudnnSdpa() = default;

size_t CudnnSdpa::declined() const {
  size_t n = 0;
  for (const auto& [key, plan] : plans_) n += plan->ok ? 0 : 1;
  return n;
}

bool CudnnSdpa::eligible(const SdpaCall& c) {
  return c.D % 8 == 0 && c.D <= 256 && c.Lq > 0 && c.Lk > 0 && c.ld_q % 8 == 0 && c.ld_k % 8 == 0 &&
         c.ld_v % 8 == 0 && c.ld_o % 8 == 0 && aligned16(c.q) && aligned16(c.k) && aligned16(c.v) &&
         aligned16(c.o);
}

std::unique_ptr<CudnnSdpa::Plan> CudnnSdpa::build(const Key& key) {
  auto p = std::make_unique<Plan>();
  const cudnnDataType_t io = key.bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
  const int64_t H = key.H, D = key.D, Lq = key.Lq, Lk = key.Lk;
  p->keep.push_back(make_tensor(kQ, io, {1, H, Lq, D}, {Lq * key.ld_q, D, key.ld_q, 1}));
  p->keep.push_back(make_tensor(kK, io, {1, H, Lk, D}, {Lk * key.ld_k, D, key.ld_k, 1}));
  p->keep.push_back(make_tensor(kV, io, {1, H, Lk, D}, {Lk * key.ld_v, D, key.ld_v, 1}));
  p->keep.push_back(make_tensor(kO, io, {1, H, Lq, D}, {Lq * key.ld_o, D, key.ld_o, 1}));
  p->keep.push_back(make_tensor(kScale, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, true));
  if (key.stats) p->keep.push_back(make_tensor(kStats, CUDNN_DATA_FLOAT, {1, H, Lq, 1}, {H * Lq, Lq, 1, 1}));

  // Without a statistics descriptor the operation is the inference form (no softmax
  // statistics written), which cuDNN may serve with other engines.
  CudnnDescriptor op(CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR);
  op.set_descriptor(CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC, p->keep[0]);
  op.set_descriptor(CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC, p->keep[1]);
  op.set_descriptor(CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC, p->keep[2]);
  op.set_descriptor(CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC, p->keep[3]);
  op.set_descriptor(CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC, p->keep[4]);
  if (key.stats) op.set_descriptor(CUDNN_ATTR_OPERATION_SDPA_FWD_STATSDESC, p->keep[5]);
  op.finalize();

  CudnnPlan plan = cudnn_first_plan(handle_->get(), {&op}, p->keep);
  p->plan = std::move(plan.plan);
  p->workspace = plan.workspace;
  p->ok = true;
  p->keep.push_back(std::move(op));
  p->scale = 1.0f / std::sqrt(float(D));
  return p;
}

bool CudnnSdpa::run(const SdpaCall& c, cudaStream_t stream) {
  if (!available() || !eligible(c)) return false;
  // Without lse the inference form first; where cuDNN declines it, the form with statistics.
  Key key{c.Lq, c.Lk, c.H, c.D, c.ld_q, c.ld_k, c.ld_v, c.ld_o, c.bf16, true};
  if (!c.lse && !force_stats_) {
    key.stats = false;
    if (run_key(c, key, stream)) return true;
    key.stats = true;
  }
  return run_key(c, key, stream);
}

bool CudnnSdpa::run_key(const SdpaCall& c, const Key& key, cudaStream_t stream) {
  auto it = plans_.find(key);
  if (it == plans_.end()) {
    std::unique_ptr<Plan> plan;
    try {
      plan = build(key);
    } catch (const Error& e) {  // cuDNN declines this problem: remember it, fall back
      plan = std::make_unique<Plan>();
      why_ = std::string("Lq=") + std::to_string(c.Lq) + " Lk=" + std::to_string(c.Lk) + " H=" +
             std::to_string(c.H) + " D=" + std::to_string(c.D) + ": " + e.what();
    }
    it = plans_.emplace(key, std::move(plan)).first;
  }
  Plan& p = *it->second;
  if (!p.ok) return false;

  if (stream != stream_) {
    FRESCO_CUDNN_CHECK(cudnnSetStream(handle_->get(), stream));
    stream_ = stream;
  }
  void* ws = p.workspace > 0 ? workspace_.reserve(size_t(p.workspace), stream) : nullptr;
  float* stats = key.stats ? stats_.reserve_as<float>(size_t(c.H * c.Lq), stream) : nullptr;
  const Pointers ptrs{const_cast<void*>(c.q), const_cast<void*>(c.k), const_cast<void*>(c.v), c.o, &p.scale,
                      stats, ws};
  if (!p.pack || p.pack_ptrs != ptrs) {
    const int64_t uids[] = {kQ, kK, kV, kO, kScale, kStats};
    const int64_t n = key.stats ? 6 : 5;
    auto pack = std::make_unique<CudnnDescriptor>(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    pack->set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    pack->set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs.data());
    pack->set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ptrs[6]);
    pack->finalize();
    p.pack = std::move(pack);
    p.pack_ptrs = ptrs;
  }
  const auto execute = [&](cudaStream_t) {
    FRESCO_CUDNN_CHECK(cudnnBackendExecute(handle_->get(), p.plan->get(), p.pack->get()));
  };
  bool done = false;
  if (graph_replay_) {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    FRESCO_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
    if (status == cudaStreamCaptureStatusNone) {
      auto r = std::find_if(p.replays.begin(), p.replays.end(), [&](const Plan::Replay& x) { return x.ptrs == ptrs; });
      if (r == p.replays.end()) {
        try {
          CudaGraphExec exec = CudaGraphExec::capture(stream, execute);
          if (p.replays.size() >= Plan::kMaxReplays) p.replays.erase(p.replays.begin());
          p.replays.push_back({ptrs, std::move(exec)});
          r = p.replays.end() - 1;
        } catch (const Error& e) {  // cuDNN did something capture forbids: execute directly from now on
          graph_replay_ = false;
          graph_note_ = e.what();
        }
      }
      if (r != p.replays.end()) {
        r->exec.launch(stream);
        done = true;
      }
    }
  }
  if (!done) {
    if (p.executed) {
      execute(stream);
    } else {
      try {  // a first execution that cuDNN refuses (a synchronous error) enqueues nothing: fall back
        execute(stream);
      } catch (const Error& e) {
        p.ok = false;
        why_ = std::string("Lq=") + std::to_string(c.Lq) + " Lk=" + std::to_string(c.Lk) + " H=" +
               std::to_string(c.H) + " D=" + std::to_string(c.D) + ": " + e.what();
        return false;
      }
    }
  }
  p.executed = true;
  if (c.lse) heads_to_tokens(stats, c.lse, c.Lq, c.H, stream);  // c.lse implies key.stats
  return true;
}

}  // namespace fresco::cuda
