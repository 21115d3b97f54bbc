// A stand-alone probe for docs/performance.md (issue 26, "FP8 attention"): can cuDNN's fused FP8
// flash attention serve FLUX.1-dev's joint attention (24 heads of 128, 4608 tokens at 1024²,
// 16896 at 2048²) through the backend C API, how fast, and how far from bf16?
//
// cuDNN 9.x has no FP8 form of its one-operation SDPA_FWD; its FP8 attention engine matches an
// operation graph (the one cuDNN's own frontend builds for sdpa_fp8):
//   S = (Q Kᵀ) · attn_scale · dQ · dK                      matmul (f32 out) + 3 pointwise MUL
//   M = rowmax S;  E = exp(S − M);  Z = rowsum E;  P = E / Z   (stats = M + log Z)
//   amax_P = amax P;   P8 = e4m3(P · sP)
//   O = (P8 V) · dP · dV · sO;  amax_O = amax O             matmul (f32 out) + 3 pointwise MUL
// Q, K, V are e4m3 with one scale per tensor (d = 1/s, the descale); P ∈ [0, 1] so sP = 448; the
// output O is a convex combination of V rows, so |O| ≤ amax(V) and sO = 448 / amax(V) never
// saturates (no delayed scaling needed). Variants: O in bf16 or e4m3; inference form or the
// softmax statistics written. Each is timed (CUDA events, median of 20 after warm-up) next to
// the bf16 SDPA_FWD on the same data, with the relative L2 of O against the bf16 output. For the
// bf16 lever "attention at cuDNN's ceiling" it also times every engine configuration cuDNN's
// heuristics offer for bf16, with q, k, v dense and as columns of the qkv rows (row stride 3HD).
// Build: nvcc -std=c++17 -O3 -arch=sm_90a fp8_attention_probe.cu -lcudnn -o fp8_attention_probe
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s at %d\n", cudaGetErrorString(e), __LINE__); exit(1);} } while (0)
#define DN(x) do { cudnnStatus_t s = (x); if (s != CUDNN_STATUS_SUCCESS) { char m[1024]; cudnnGetLastErrorString(m, sizeof m); throw std::string(#x) + ": " + cudnnGetErrorString(s) + " " + m; } } while (0)

struct Desc {
  cudnnBackendDescriptor_t d = nullptr;
  explicit Desc(cudnnBackendDescriptorType_t t) { DN(cudnnBackendCreateDescriptor(t, &d)); }
  ~Desc() { if (d) cudnnBackendDestroyDescriptor(d); }
  Desc(const Desc&) = delete;
  void set(cudnnBackendAttributeName_t n, cudnnBackendAttributeType_t t, int64_t c, const void* v) {
    DN(cudnnBackendSetAttribute(d, n, t, c, v));
  }
  void ref(cudnnBackendAttributeName_t n, const Desc& v) { set(n, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v.d); }
  void fin() { DN(cudnnBackendFinalize(d)); }
};
using DescP = std::shared_ptr<Desc>;

struct Graph {
  std::vector<DescP> keep, ops;
  int64_t next_uid = 100;
  DescP tensor(int64_t uid, cudnnDataType_t type, std::array<int64_t, 4> dims, std::array<int64_t, 4> strides,
               bool is_virtual, bool by_value = false) {
    auto t = std::make_shared<Desc>(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const int64_t align = 16;
    t->set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    t->set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
    t->set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
    t->set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data());
    t->set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data());
    if (is_virtual) { bool y = true; t->set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &y); }
    if (by_value) { bool y = true; t->set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &y); }
    t->fin();
    keep.push_back(t);
    return t;
  }
  DescP virt(cudnnDataType_t type, std::array<int64_t, 4> dims) {
    std::array<int64_t, 4> s{dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1};
    return tensor(next_uid++, type, dims, s, true);
  }
  void pointwise(cudnnPointwiseMode_t mode, const DescP& x, const DescP& b, const DescP& y) {
    auto pw = std::make_shared<Desc>(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    pw->set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    pw->set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
    pw->fin();
    auto op = std::make_shared<Desc>(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    op->ref(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, *pw);
    op->ref(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, *x);
    if (b) op->ref(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *b);
    op->ref(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, *y);
    op->fin();
    keep.push_back(pw);
    ops.push_back(op);
  }
  void reduction(cudnnReduceTensorOp_t mode, const DescP& x, const DescP& y) {
    auto r = std::make_shared<Desc>(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    r->set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode);
    r->set(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &prec);
    r->fin();
    auto op = std::make_shared<Desc>(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    op->ref(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, *x);
    op->ref(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, *y);
    op->ref(CUDNN_ATTR_OPERATION_REDUCTION_DESC, *r);
    op->fin();
    keep.push_back(r);
    ops.push_back(op);
  }
  void matmul(const DescP& a, const DescP& b, const DescP& c, bool padding) {
    auto m = std::make_shared<Desc>(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    m->set(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &prec);
    if (padding) { double zero = 0.0; m->set(CUDNN_ATTR_MATMUL_PADDING_VALUE, CUDNN_TYPE_DOUBLE, 1, &zero); }
    m->fin();
    auto op = std::make_shared<Desc>(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    op->ref(CUDNN_ATTR_OPERATION_MATMUL_ADESC, *a);
    op->ref(CUDNN_ATTR_OPERATION_MATMUL_BDESC, *b);
    op->ref(CUDNN_ATTR_OPERATION_MATMUL_CDESC, *c);
    op->ref(CUDNN_ATTR_OPERATION_MATMUL_DESC, *m);
    op->fin();
    keep.push_back(m);
    ops.push_back(op);
  }
};

// Finalizes the first engine configuration the heuristics offer that builds; the plan owns it.
struct Plan {
  Graph g;
  std::unique_ptr<Desc> plan;
  int64_t workspace = 0;
  std::string why;
  int engine_index = -1;
  // With `all`: every configuration that finalizes (index, plan, workspace), the first in `plan`.
  struct Alt {
    int index;
    std::unique_ptr<Desc> plan;
    int64_t workspace;
  };
  std::vector<Alt> alternatives;
};

bool finalize_plan(cudnnHandle_t h, Plan& p, bool all = false) {
  Desc graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  std::vector<cudnnBackendDescriptor_t> raw;
  for (auto& op : p.g.ops) raw.push_back(op->d);
  graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, int64_t(raw.size()), raw.data());
  graph.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
  graph.fin();
  Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  heur.ref(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  heur.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
  heur.fin();
  int64_t count = 0;
  DN(cudnnBackendGetAttribute(heur.d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr));
  std::vector<std::unique_ptr<Desc>> cfgs;
  std::vector<cudnnBackendDescriptor_t> craw;
  for (int64_t i = 0; i < count; ++i) {
    cfgs.push_back(std::make_unique<Desc>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
    craw.push_back(cfgs.back()->d);
  }
  int64_t got = 0;
  if (count) DN(cudnnBackendGetAttribute(heur.d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got, craw.data()));
  p.why = std::to_string(got) + " configs offered";
  for (int64_t i = 0; i < got; ++i) {
    auto plan = std::make_unique<Desc>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    plan->set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
    plan->ref(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, *cfgs[size_t(i)]);
    const cudnnStatus_t rc = cudnnBackendFinalize(plan->d);
    if (rc != CUDNN_STATUS_SUCCESS) {
      char m[512];
      cudnnGetLastErrorString(m, sizeof m);
      p.why += std::string("; cfg ") + std::to_string(i) + ": " + cudnnGetErrorString(rc) + " " + m;
      continue;
    }
    int64_t n = 0, ws = 0;
    DN(cudnnBackendGetAttribute(plan->d, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &ws));
    if (!p.plan) {
      p.plan = std::move(plan);
      p.workspace = ws;
      p.engine_index = int(i);
      if (!all) return true;
    } else {
      p.alternatives.push_back({int(i), std::move(plan), ws});
    }
  }
  return p.plan != nullptr;
}

enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kScale, kDq, kDk, kDv, kDp, kSp, kSo, kAmaxP, kAmaxO };

// Q, K, V, O: token-major [S, H*D] (row stride ld) viewed as [1, H, S, D].
std::array<int64_t, 4> bhsd_strides(int64_t S, int64_t D, int64_t ld) { return {S * ld, D, ld, 1}; }

void build_fp8(Plan& p, int64_t H, int64_t S, int64_t D, bool out_bf16, bool stats_out) {
  Graph& g = p.g;
  const int64_t ld = H * D;
  const cudnnDataType_t f8 = CUDNN_DATA_FP8_E4M3, f32 = CUDNN_DATA_FLOAT;
  auto q = g.tensor(kQ, f8, {1, H, S, D}, bhsd_strides(S, D, ld), false);
  auto kt = g.tensor(kK, f8, {1, H, D, S}, {S * ld, D, 1, ld}, false);  // Kᵀ: dims and strides swapped
  auto v = g.tensor(kV, f8, {1, H, S, D}, bhsd_strides(S, D, ld), false);
  auto o = g.tensor(kO, out_bf16 ? CUDNN_DATA_BFLOAT16 : f8, {1, H, S, D}, bhsd_strides(S, D, ld), false);
  auto scalar = [&](int64_t uid, bool by_value = false) { return g.tensor(uid, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, by_value); };
  auto attn_scale = scalar(kScale, true);
  auto dq = scalar(kDq), dk = scalar(kDk), dv = scalar(kDv), dp = scalar(kDp), sp = scalar(kSp), so = scalar(kSo);
  auto amax_p = scalar(kAmaxP), amax_o = scalar(kAmaxO);

  auto s0 = g.virt(f32, {1, H, S, S});
  g.matmul(q, kt, s0, true);
  auto s1 = g.virt(f32, {1, H, S, S});
  g.pointwise(CUDNN_POINTWISE_MUL, s0, attn_scale, s1);
  auto s2 = g.virt(f32, {1, H, S, S});
  g.pointwise(CUDNN_POINTWISE_MUL, s1, dq, s2);
  auto s3 = g.virt(f32, {1, H, S, S});
  g.pointwise(CUDNN_POINTWISE_MUL, s2, dk, s3);
  // softmax with its statistics
  auto m = g.virt(f32, {1, H, S, 1});
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, s3, m);
  auto sub = g.virt(f32, {1, H, S, S});
  g.pointwise(CUDNN_POINTWISE_SUB, s3, m, sub);
  auto e = g.virt(f32, {1, H, S, S});
  g.pointwise(CUDNN_POINTWISE_EXP, sub, nullptr, e);
  auto z = g.virt(f32, {1, H, S, 1});
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, e, z);
  auto logz = g.virt(f32, {1, H, S, 1});
  g.pointwise(CUDNN_POINTWISE_LOG, z, nullptr, logz);
  auto stats = stats_out ? g.tensor(kStats, f32, {1, H, S, 1}, {H * S, S, 1, 1}, false) : g.virt(f32, {1, H, S, 1});
  g.pointwise(CUDNN_POINTWISE_ADD, m, logz, stats);
  auto prob = g.virt(f32, {1, H, S, S});
  g.pointwise(CUDNN_POINTWISE_DIV, e, z, prob);
  g.reduction(CUDNN_REDUCE_TENSOR_AMAX, prob, amax_p);
  auto p8 = g.virt(f8, {1, H, S, S});
  g.pointwise(CUDNN_POINTWISE_MUL, prob, sp, p8);
  // P V
  auto o0 = g.virt(f32, {1, H, S, D});
  g.matmul(p8, v, o0, false);
  auto o1 = g.virt(f32, {1, H, S, D});
  g.pointwise(CUDNN_POINTWISE_MUL, o0, dp, o1);
  auto o2 = g.virt(f32, {1, H, S, D});
  g.pointwise(CUDNN_POINTWISE_MUL, o1, dv, o2);
  g.pointwise(CUDNN_POINTWISE_MUL, o2, so, o);
  g.reduction(CUDNN_REDUCE_TENSOR_AMAX, o, amax_o);
}

void build_bf16(Plan& p, int64_t H, int64_t S, int64_t D, int64_t ld) {
  Graph& g = p.g;
  auto q = g.tensor(kQ, CUDNN_DATA_BFLOAT16, {1, H, S, D}, bhsd_strides(S, D, ld), false);
  auto k = g.tensor(kK, CUDNN_DATA_BFLOAT16, {1, H, S, D}, bhsd_strides(S, D, ld), false);
  auto v = g.tensor(kV, CUDNN_DATA_BFLOAT16, {1, H, S, D}, bhsd_strides(S, D, ld), false);
  auto o = g.tensor(kO, CUDNN_DATA_BFLOAT16, {1, H, S, D}, bhsd_strides(S, D, ld), false);
  auto sc = g.tensor(kScale, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
  auto op = std::make_shared<Desc>(CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR);
  op->ref(CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC, *q);
  op->ref(CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC, *k);
  op->ref(CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC, *v);
  op->ref(CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC, *o);
  op->ref(CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC, *sc);
  op->fin();
  g.ops.push_back(op);
}

__global__ void fill(__nv_bfloat16* x, int64_t n, uint32_t seed, float amp) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 15; h *= 2246822519u; h ^= h >> 13; h *= 3266489917u; h ^= h >> 16;
    const float u = (h & 0xffffff) / float(1 << 24) * 2.0f - 1.0f;
    x[i] = __float2bfloat16(amp * u * u * u * 3.0f);  // heavier tails than uniform
  }
}
__global__ void amax_kernel(const __nv_bfloat16* x, int64_t n, unsigned* out) {
  float m = 0.0f;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    m = fmaxf(m, fabsf(__bfloat162float(x[i])));
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if ((threadIdx.x & 31) == 0) atomicMax(out, __float_as_uint(m));
}
__global__ void quantize(const __nv_bfloat16* x, int64_t n, float scale, __nv_fp8_e4m3* y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __nv_fp8_e4m3(__bfloat162float(x[i]) * scale);
}
__global__ void rel_l2(const __nv_bfloat16* ref, const void* got, bool got_fp8, float inv_scale, int64_t n, double* acc) {
  double d = 0, r = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float a = __bfloat162float(ref[i]);
    const float b = got_fp8 ? float(static_cast<const __nv_fp8_e4m3*>(got)[i]) * inv_scale
                            : __bfloat162float(static_cast<const __nv_bfloat16*>(got)[i]);
    d += double(a - b) * (a - b);
    r += double(a) * a;
  }
  atomicAdd(acc, d);
  atomicAdd(acc + 1, r);
}

int main(int argc, char** argv) {
  const int64_t H = 24, D = 128;
  std::vector<int64_t> lengths{4608, 16896};
  if (argc > 1) lengths = {std::atoll(argv[1])};
  cudnnHandle_t handle;
  DN(cudnnCreate(&handle));
  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));
  DN(cudnnSetStream(handle, stream));
  printf("cuDNN %zu\n", cudnnGetVersion());
  for (const int64_t S : lengths) {
    const int64_t n = S * H * D;
    __nv_bfloat16 *q, *k, *v, *o_ref;
    __nv_fp8_e4m3 *q8, *k8, *v8;
    void* o_test;
    CK(cudaMalloc(&q, n * 2)); CK(cudaMalloc(&k, n * 2)); CK(cudaMalloc(&v, n * 2)); CK(cudaMalloc(&o_ref, n * 2));
    CK(cudaMalloc(&q8, n)); CK(cudaMalloc(&k8, n)); CK(cudaMalloc(&v8, n)); CK(cudaMalloc(&o_test, n * 2));
    // q, k of the size RMS-normed rows have (|x| up to a few units), v as a projection's output.
    fill<<<1024, 256, 0, stream>>>(q, n, 1u, 2.0f);
    fill<<<1024, 256, 0, stream>>>(k, n, 2u, 2.0f);
    fill<<<1024, 256, 0, stream>>>(v, n, 3u, 1.0f);
    unsigned* amax;
    CK(cudaMalloc(&amax, 3 * sizeof(unsigned)));
    CK(cudaMemsetAsync(amax, 0, 3 * sizeof(unsigned), stream));
    amax_kernel<<<1024, 256, 0, stream>>>(q, n, amax);
    amax_kernel<<<1024, 256, 0, stream>>>(k, n, amax + 1);
    amax_kernel<<<1024, 256, 0, stream>>>(v, n, amax + 2);
    unsigned amax_host[3];
    CK(cudaMemcpyAsync(amax_host, amax, sizeof amax_host, cudaMemcpyDeviceToHost, stream));
    CK(cudaStreamSynchronize(stream));
    float am[3];
    for (int i = 0; i < 3; ++i) memcpy(&am[i], &amax_host[i], 4);
    quantize<<<1024, 256, 0, stream>>>(q, n, 448.0f / am[0], q8);
    quantize<<<1024, 256, 0, stream>>>(k, n, 448.0f / am[1], k8);
    quantize<<<1024, 256, 0, stream>>>(v, n, 448.0f / am[2], v8);
    // scalars: dq dk dv dp sp so amax_p amax_o
    float host_scalars[8] = {am[0] / 448.0f, am[1] / 448.0f, am[2] / 448.0f, 1.0f / 448.0f, 448.0f, 448.0f / am[2], 0, 0};
    float* dev_scalars;
    CK(cudaMalloc(&dev_scalars, sizeof host_scalars));
    CK(cudaMemcpy(dev_scalars, host_scalars, sizeof host_scalars, cudaMemcpyHostToDevice));
    float attn_scale = 1.0f / std::sqrt(float(D));
    void* ws = nullptr;
    CK(cudaMalloc(&ws, 256 << 20));
    float* stats;
    CK(cudaMalloc(&stats, H * S * sizeof(float)));
    double* acc;
    CK(cudaMalloc(&acc, 2 * sizeof(double)));

    const double flops = 4.0 * double(S) * double(S) * double(H) * double(D);
    auto time_it = [&](Desc& plan, Desc& pack) {
      for (int i = 0; i < 3; ++i) DN(cudnnBackendExecute(handle, plan.d, pack.d));
      cudaEvent_t a, b;
      CK(cudaEventCreate(&a)); CK(cudaEventCreate(&b));
      std::vector<float> ms;
      for (int i = 0; i < 20; ++i) {
        CK(cudaEventRecord(a, stream));
        DN(cudnnBackendExecute(handle, plan.d, pack.d));
        CK(cudaEventRecord(b, stream));
        CK(cudaEventSynchronize(b));
        float t;
        CK(cudaEventElapsedTime(&t, a, b));
        ms.push_back(t);
      }
      std::sort(ms.begin(), ms.end());
      return ms[ms.size() / 2];
    };

    // bf16 reference (dense rows), then every engine configuration of the dense and the
    // qkv-strided layout (the blocks read q, k, v as columns of rows 3*H*D wide)
    float bf16_ms = 0;
    for (const int64_t ld : {H * D, 3 * H * D}) {
      Plan p;
      __nv_bfloat16* wide = nullptr;
      if (ld != H * D) CK(cudaMalloc(&wide, size_t(S * ld * 2)));
      try {
        build_bf16(p, H, S, D, ld);
        if (!finalize_plan(handle, p, true)) { printf("S=%lld bf16: no plan (%s)\n", (long long)S, p.why.c_str()); continue; }
        for (auto& alt : p.alternatives) {
          Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
          const int64_t uids[] = {kQ, kK, kV, kO, kScale};
          void* base = wide ? (void*)wide : (void*)q;
          void* ptrs[] = {base, wide ? (void*)(wide + H * D) : (void*)k, wide ? (void*)(wide + 2 * H * D) : (void*)v,
                          o_test, &attn_scale};
          pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 5, uids);
          pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 5, ptrs);
          pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
          pack.fin();
          try {
            const float t = time_it(*alt.plan, pack);
            printf("S=%-6lld bf16 ld=%-5lld engine cfg %d   %8.3f ms  %6.1f TFLOP/s\n", (long long)S, (long long)ld,
                   alt.index, t, flops / t * 1e-9);
          } catch (const std::string& e) {
            printf("S=%-6lld bf16 ld=%-5lld engine cfg %d   error %s\n", (long long)S, (long long)ld, alt.index,
                   e.substr(0, 200).c_str());
          }
        }
        if (wide) {
          Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
          const int64_t uids[] = {kQ, kK, kV, kO, kScale};
          void* ptrs[] = {wide, wide + H * D, wide + 2 * H * D, o_test, &attn_scale};
          pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 5, uids);
          pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 5, ptrs);
          pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
          pack.fin();
          const float t = time_it(*p.plan, pack);
          printf("S=%-6lld bf16 ld=%-5lld (first cfg %d)  %8.3f ms  %6.1f TFLOP/s\n", (long long)S, (long long)ld,
                 p.engine_index, t, flops / t * 1e-9);
          cudaFree(wide);
          continue;
        }
        Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
        const int64_t uids[] = {kQ, kK, kV, kO, kScale};
        void* ptrs[] = {q, k, v, o_ref, &attn_scale};
        pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 5, uids);
        pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 5, ptrs);
        pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
        pack.fin();
        bf16_ms = time_it(*p.plan, pack);
        printf("S=%-6lld bf16 SDPA_FWD          %8.3f ms  %6.1f TFLOP/s\n", (long long)S, bf16_ms, flops / bf16_ms * 1e-9);
      } catch (const std::string& e) {
        printf("S=%lld bf16: %s\n", (long long)S, e.c_str());
        if (wide) cudaFree(wide);
        continue;
      }
    }
    for (const bool out_bf16 : {true, false})
      for (const bool stats_out : {false, true}) {
        Plan p;
        const char* name = out_bf16 ? (stats_out ? "fp8 in, bf16 O, stats" : "fp8 in, bf16 O") : (stats_out ? "fp8 in, e4m3 O, stats" : "fp8 in, e4m3 O");
        try {
          build_fp8(p, H, S, D, out_bf16, stats_out);
          if (!finalize_plan(handle, p)) { printf("S=%-6lld %-22s declined: %s\n", (long long)S, name, p.why.substr(0, 600).c_str()); continue; }
          Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
          std::vector<int64_t> uids{kQ, kK, kV, kO, kScale, kDq, kDk, kDv, kDp, kSp, kSo, kAmaxP, kAmaxO};
          std::vector<void*> ptrs{q8, k8, v8, o_test, &attn_scale, dev_scalars, dev_scalars + 1, dev_scalars + 2,
                                  dev_scalars + 3, dev_scalars + 4, out_bf16 ? nullptr : dev_scalars + 5,
                                  dev_scalars + 6, dev_scalars + 7};
          if (out_bf16) { static float one = 1.0f; CK(cudaMemcpy(dev_scalars + 5, &one, 4, cudaMemcpyHostToDevice)); ptrs[10] = dev_scalars + 5; }
          else CK(cudaMemcpy(dev_scalars + 5, &host_scalars[5], 4, cudaMemcpyHostToDevice));
          if (stats_out) { uids.push_back(kStats); ptrs.push_back(stats); }
          pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, int64_t(uids.size()), uids.data());
          pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, int64_t(ptrs.size()), ptrs.data());
          pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
          pack.fin();
          const float t = time_it(*p.plan, pack);
          CK(cudaMemsetAsync(acc, 0, 2 * sizeof(double), stream));
          rel_l2<<<1024, 256, 0, stream>>>(o_ref, o_test, !out_bf16, out_bf16 ? 1.0f : am[2] / 448.0f, n, acc);
          double h_acc[2];
          float amaxes[2];
          CK(cudaMemcpyAsync(h_acc, acc, sizeof h_acc, cudaMemcpyDeviceToHost, stream));
          CK(cudaMemcpyAsync(amaxes, dev_scalars + 6, sizeof amaxes, cudaMemcpyDeviceToHost, stream));
          CK(cudaStreamSynchronize(stream));
          printf("S=%-6lld %-22s %8.3f ms  %6.1f TFLOP/s  %.2fx bf16  rel L2 vs bf16 %.3e  amax P %.3f O %.3f  (engine cfg %d, ws %lld)\n",
                 (long long)S, name, t, flops / t * 1e-9, bf16_ms / t, std::sqrt(h_acc[0] / h_acc[1]), amaxes[0], amaxes[1],
                 p.engine_index, (long long)p.workspace);
        } catch (const std::string& e) {
          printf("S=%-6lld %-22s error: %s\n", (long long)S, name, e.substr(0, 600).c_str());
        }
      }
    cudaFree(q); cudaFree(k); cudaFree(v); cudaFree(o_ref); cudaFree(q8); cudaFree(k8); cudaFree(v8); cudaFree(o_test);
    cudaFree(amax); cudaFree(dev_scalars); cudaFree(ws); cudaFree(stats); cudaFree(acc);
  }
  return 0;
}
