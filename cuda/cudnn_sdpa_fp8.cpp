#include "cuda/cudnn_sdpa_fp8.hpp"

#include <cuda_runtime.h>

#include <array>
#include <cmath>
#include <deque>
#include <vector>

#include "cuda/cuda_check.hpp"
#include "cuda/kernels.hpp"

namespace fresco::cuda {
namespace {

// Unique ids of the graph's tensors passed at execution; intermediates are numbered after them.
enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kAttnScale, kScalar0 };
constexpr int64_t kFirstIntermediate = int64_t(kScalar0) + int64_t(kFp8ScalarCount);

// An operation graph under construction: its descriptors in stable storage (operations refer to
// tensors by reference while the graph grows), moved into the plan's keep when it is built.
class GraphBuilder {
 public:
  const CudnnDescriptor& tensor(int64_t uid, cudnnDataType_t type, std::array<int64_t, 4> dims,
                                std::array<int64_t, 4> strides, TensorKind kind = TensorKind::data) {
    return store_.emplace_back(cudnn_tensor(uid, type, dims, strides, kind));
  }
  // An intermediate of the fused kernel: row-major dims.
  const CudnnDescriptor& intermediate(cudnnDataType_t type, std::array<int64_t, 4> dims) {
    return tensor(next_uid_++, type, dims, {dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1},
                  TensorKind::intermediate);
  }
  // y = mode(x, b) (b null for a unary mode), in f32.
  void pointwise(cudnnPointwiseMode_t mode, const CudnnDescriptor& x, const CudnnDescriptor* b,
                 const CudnnDescriptor& y) {
    CudnnDescriptor pw(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    const cudnnDataType_t precision = CUDNN_DATA_FLOAT;
    pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    pw.set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &precision);
    pw.finalize();
    CudnnDescriptor op(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    op.set_descriptor(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw);
    op.set_descriptor(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x);
    if (b) op.set_descriptor(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *b);
    op.set_descriptor(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y);
    op.finalize();
    store_.push_back(std::move(pw));
    add_op(std::move(op));
  }
  // y = reduction of x over the dimensions where y has extent 1, in f32.
  void reduction(cudnnReduceTensorOp_t mode, const CudnnDescriptor& x, const CudnnDescriptor& y) {
    CudnnDescriptor r(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    const cudnnDataType_t precision = CUDNN_DATA_FLOAT;
    r.set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode);
    r.set(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &precision);
    r.finalize();
    CudnnDescriptor op(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    op.set_descriptor(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x);
    op.set_descriptor(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y);
    op.set_descriptor(CUDNN_ATTR_OPERATION_REDUCTION_DESC, r);
    op.finalize();
    store_.push_back(std::move(r));
    add_op(std::move(op));
  }
  // c = a b (batched over the first two dimensions), f32 accumulation; `zero_padding` as the
  // frontend sets it on the scores' product.
  void matmul(const CudnnDescriptor& a, const CudnnDescriptor& b, const CudnnDescriptor& c, bool zero_padding) {
    CudnnDescriptor m(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    const cudnnDataType_t precision = CUDNN_DATA_FLOAT;
    m.set(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &precision);
    if (zero_padding) {
      const double zero = 0.0;
      m.set(CUDNN_ATTR_MATMUL_PADDING_VALUE, CUDNN_TYPE_DOUBLE, 1, &zero);
    }
    m.finalize();
    CudnnDescriptor op(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    op.set_descriptor(CUDNN_ATTR_OPERATION_MATMUL_ADESC, a);
    op.set_descriptor(CUDNN_ATTR_OPERATION_MATMUL_BDESC, b);
    op.set_descriptor(CUDNN_ATTR_OPERATION_MATMUL_CDESC, c);
    op.set_descriptor(CUDNN_ATTR_OPERATION_MATMUL_DESC, m);
    op.finalize();
    store_.push_back(std::move(m));
    add_op(std::move(op));
  }
  const std::vector<const CudnnDescriptor*>& ops() const { return ops_; }
  // Hands every descriptor over to `keep` (their cuDNN handles stay valid: moves keep them).
  void move_into(std::vector<CudnnDescriptor>& keep) {
    for (CudnnDescriptor& d : store_) keep.push_back(std::move(d));
    store_.clear();
    ops_.clear();
  }

 private:
  void add_op(CudnnDescriptor op) { ops_.push_back(&store_.emplace_back(std::move(op))); }

  std::deque<CudnnDescriptor> store_;
  std::vector<const CudnnDescriptor*> ops_;
  int64_t next_uid_ = kFirstIntermediate;
};

}  // namespace

struct CudnnSdpaFp8::Plan {
  bool ok = false;
  std::vector<CudnnDescriptor> keep;  // tensors, operations, graph, heuristics, engine configs
  std::unique_ptr<CudnnDescriptor> plan;
  int64_t workspace = 0;
  float attn_scale = 1.0f;  // by value, read at execution
  std::unique_ptr<CudnnDescriptor> pack;
  std::vector<void*> pack_ptrs;
};

size_t CudnnSdpaFp8::KeyHash::operator()(const Key& k) const {
  return hash_key_values({k.Lq, k.Lk, k.H, k.D, k.ld_o, int64_t(k.bf16), int64_t(k.stats)});
}

CudnnSdpaFp8::CudnnSdpaFp8(const CudnnSdpa& owner) : owner_(owner) {
  if (!owner.handle()) {
    why_ = "no cuDNN handle (" + owner.why() + ")";
    return;
  }
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    why_ = "the GPU's compute capability is unknown";
    return;
  }
  if (major < 9) {
    why_ = "cuDNN's FP8 attention needs a GPU of compute capability 9.0 or newer (this one: " +
           std::to_string(major) + ".x)";
    return;
  }
  available_ = true;
}

CudnnSdpaFp8::~CudnnSdpaFp8() = default;

bool CudnnSdpaFp8::eligible(const SdpaFp8Call& c) {
  const auto aligned = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; };
  return c.D % 16 == 0 && c.D <= 256 && c.Lq > 0 && c.Lk > 0 && (c.H * c.D) % 16 == 0 && c.ld_o % 8 == 0 &&
         aligned(c.q) && aligned(c.k) && aligned(c.v) && aligned(c.o);
}

std::unique_ptr<CudnnSdpaFp8::Plan> CudnnSdpaFp8::build(const Key& key) {
  auto p = std::make_unique<Plan>();
  GraphBuilder g;
  const int64_t H = key.H, D = key.D, Lq = key.Lq, Lk = key.Lk, HD = H * D;
  const cudnnDataType_t f8 = CUDNN_DATA_FP8_E4M3, f32 = CUDNN_DATA_FLOAT;
  // q, k, v: token-major [L, H*D] seen as [1, H, L, D]; Kᵀ as [1, H, D, Lk] (strides swapped).
  const auto& q = g.tensor(kQ, f8, {1, H, Lq, D}, {Lq * HD, D, HD, 1});
  const auto& kt = g.tensor(kK, f8, {1, H, D, Lk}, {Lk * HD, D, 1, HD});
  const auto& v = g.tensor(kV, f8, {1, H, Lk, D}, {Lk * HD, D, HD, 1});
  const auto& o = g.tensor(kO, key.bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF, {1, H, Lq, D},
                           {Lq * key.ld_o, D, key.ld_o, 1});
  const auto& attn_scale = g.tensor(kAttnScale, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, TensorKind::by_value);
  std::array<const CudnnDescriptor*, kFp8ScalarCount> scalar{};
  for (int i = 0; i < kFp8ScalarCount; ++i) scalar[size_t(i)] = &g.tensor(kScalar0 + i, f32, {1, 1, 1, 1}, {1, 1, 1, 1});

  // S = (Q Kᵀ) · attn_scale · dQ · dK
  const auto& s0 = g.intermediate(f32, {1, H, Lq, Lk});
  g.matmul(q, kt, s0, true);
  const auto& s1 = g.intermediate(f32, {1, H, Lq, Lk});
  g.pointwise(CUDNN_POINTWISE_MUL, s0, &attn_scale, s1);
  const auto& s2 = g.intermediate(f32, {1, H, Lq, Lk});
  g.pointwise(CUDNN_POINTWISE_MUL, s1, scalar[kDescaleQ], s2);
  const auto& s3 = g.intermediate(f32, {1, H, Lq, Lk});
  g.pointwise(CUDNN_POINTWISE_MUL, s2, scalar[kDescaleK], s3);
  // softmax with its statistics M + log Z (an output where the caller wants lse)
  const auto& m = g.intermediate(f32, {1, H, Lq, 1});
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, s3, m);
  const auto& shifted = g.intermediate(f32, {1, H, Lq, Lk});
  g.pointwise(CUDNN_POINTWISE_SUB, s3, &m, shifted);
  const auto& e = g.intermediate(f32, {1, H, Lq, Lk});
  g.pointwise(CUDNN_POINTWISE_EXP, shifted, nullptr, e);
  const auto& z = g.intermediate(f32, {1, H, Lq, 1});
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, e, z);
  const auto& log_z = g.intermediate(f32, {1, H, Lq, 1});
  g.pointwise(CUDNN_POINTWISE_LOG, z, nullptr, log_z);
  const auto& stats = key.stats ? g.tensor(kStats, f32, {1, H, Lq, 1}, {H * Lq, Lq, 1, 1})
                                : g.intermediate(f32, {1, H, Lq, 1});
  g.pointwise(CUDNN_POINTWISE_ADD, m, &log_z, stats);
  const auto& prob = g.intermediate(f32, {1, H, Lq, Lk});
  g.pointwise(CUDNN_POINTWISE_DIV, e, &z, prob);
  g.reduction(CUDNN_REDUCE_TENSOR_AMAX, prob, *scalar[kAmaxP]);
  const auto& p8 = g.intermediate(f8, {1, H, Lq, Lk});
  g.pointwise(CUDNN_POINTWISE_MUL, prob, scalar[kScaleP], p8);
  // O = (P8 V) · dP · dV · sO
  const auto& o0 = g.intermediate(f32, {1, H, Lq, D});
  g.matmul(p8, v, o0, false);
  const auto& o1 = g.intermediate(f32, {1, H, Lq, D});
  g.pointwise(CUDNN_POINTWISE_MUL, o0, scalar[kDescaleP], o1);
  const auto& o2 = g.intermediate(f32, {1, H, Lq, D});
  g.pointwise(CUDNN_POINTWISE_MUL, o1, scalar[kDescaleV], o2);
  g.pointwise(CUDNN_POINTWISE_MUL, o2, scalar[kScaleO], o);
  g.reduction(CUDNN_REDUCE_TENSOR_AMAX, o, *scalar[kAmaxO]);

  CudnnPlan plan = cudnn_first_plan(owner_.handle(), g.ops(), p->keep);
  p->plan = std::move(plan.plan);
  p->workspace = plan.workspace;
  g.move_into(p->keep);
  p->attn_scale = 1.0f / std::sqrt(float(D));
  p->ok = true;
  return p;
}

bool CudnnSdpaFp8::run(const SdpaFp8Call& c, cudaStream_t stream) {
  if (!available_ || !eligible(c)) return false;
  const Key key{c.Lq, c.Lk, c.H, c.D, c.ld_o, c.bf16, c.lse != nullptr};
  auto it = plans_.find(key);
  if (it == plans_.end()) {
    std::unique_ptr<Plan> plan;
    try {
      plan = build(key);
    } catch (const Error& e) {  // cuDNN declines this problem: remembered, reported by the caller
      plan = std::make_unique<Plan>();
      why_ = "Lq=" + std::to_string(c.Lq) + " Lk=" + std::to_string(c.Lk) + " H=" + std::to_string(c.H) +
             " D=" + std::to_string(c.D) + ": " + e.what();
    }
    it = plans_.emplace(key, std::move(plan)).first;
  }
  Plan& p = *it->second;
  if (!p.ok) return false;

  // The handle is shared with CudnnSdpa, which may have set another stream.
  FRESCO_CUDNN_CHECK(cudnnSetStream(owner_.handle(), stream));
  void* ws = p.workspace > 0 ? workspace_.reserve(size_t(p.workspace), stream) : nullptr;
  float* stats = key.stats ? stats_.reserve_as<float>(size_t(c.H * c.Lq), stream) : nullptr;
  std::vector<int64_t> uids{kQ, kK, kV, kO, kAttnScale};
  std::vector<void*> ptrs{const_cast<void*>(c.q), const_cast<void*>(c.k), const_cast<void*>(c.v), c.o, &p.attn_scale};
  for (int i = 0; i < kFp8ScalarCount; ++i) {
    uids.push_back(kScalar0 + i);
    ptrs.push_back(c.scalars + i);
  }
  if (stats) {
    uids.push_back(kStats);
    ptrs.push_back(stats);
  }
  ptrs.push_back(ws);  // the pack's workspace, compared with the pointers
  if (!p.pack || p.pack_ptrs != ptrs) {
    auto pack = std::make_unique<CudnnDescriptor>(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    pack->set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, int64_t(uids.size()), uids.data());
    pack->set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, int64_t(uids.size()), ptrs.data());
    pack->set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
    pack->finalize();
    p.pack = std::move(pack);
    p.pack_ptrs = ptrs;
  }
  FRESCO_CUDNN_CHECK(cudnnBackendExecute(owner_.handle(), p.plan->get(), p.pack->get()));
  if (c.lse) heads_to_tokens(stats, c.lse, c.Lq, c.H, stream);
  return true;
}

}  // namespace fresco::cuda
