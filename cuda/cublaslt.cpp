#include "cuda/cublaslt.hpp"

#include <functional>

#include "cuda/cuda_check.hpp"

namespace fresco::cuda {

namespace {

// Largest power of two (<= 256) dividing the address: what the heuristic may assume.
int alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int al = 1;
  while (al < 256 && !(a & uintptr_t(al))) al <<= 1;
  return al;
}

cublasLtEpilogue_t lt_epilogue(LtEpilogue e) {
  switch (e) {
    case LtEpilogue::none: return CUBLASLT_EPILOGUE_DEFAULT;
    case LtEpilogue::bias: return CUBLASLT_EPILOGUE_BIAS;
    case LtEpilogue::gelu: return CUBLASLT_EPILOGUE_GELU;
    case LtEpilogue::gelu_bias: return CUBLASLT_EPILOGUE_GELU_BIAS;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

bool has_bias(LtEpilogue e) { return e == LtEpilogue::bias || e == LtEpilogue::gelu_bias; }

LtLayout make_layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld) {
  cublasLtMatrixLayout_t l = nullptr;
  FRESCO_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, type, uint64_t(rows), uint64_t(cols), ld));
  return LtLayout(l);
}

}  // namespace

size_t LtGemm::KeyHash::operator()(const Key& k) const {
  size_t h = 1469598103934665603ull;
  auto mix = [&h](int64_t v) { h = (h ^ std::hash<int64_t>{}(v)) * 1099511628211ull; };
  for (int64_t v : {k.M, k.N, k.K, k.ld_x, k.ld_d, int64_t(k.ab), int64_t(k.d), int64_t(k.epilogue),
                    int64_t(k.accumulate), int64_t(k.align_x), int64_t(k.align_w), int64_t(k.align_d), int64_t(k.align_bias)})
    mix(v);
  return h;
}

LtGemm::LtGemm() {
  cublasLtHandle_t h = nullptr;
  FRESCO_CUBLAS_CHECK(cublasLtCreate(&h));
  handle_ = LtHandle(h);
}

LtGemm::~LtGemm() = default;

size_t LtGemm::declined() const {
  size_t n = 0;
  for (const auto& [key, plan] : plans_) n += plan->ok ? 0 : 1;
  return n;
}

std::unique_ptr<LtGemm::Plan> LtGemm::make_plan(const GemmProblem& p, const Key& key) {
  auto plan = std::make_unique<Plan>();
  cublasLtMatmulDesc_t desc = nullptr;
  FRESCO_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  plan->desc = LtMatmulDesc(desc);
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  FRESCO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  FRESCO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  const cublasLtEpilogue_t epi = lt_epilogue(p.epilogue);
  FRESCO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
  if (has_bias(p.epilogue))  // the heuristic reads the bias pointer's alignment
    FRESCO_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias, sizeof p.bias));
  if (p.ab_type == CUDA_R_8F_E4M3) {
    // cuBLASLt's A is W (its rows are the output channels), its B is X: one scale per row of each.
    const int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    FRESCO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode));
    FRESCO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof mode));
    FRESCO_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &p.w_scale, sizeof p.w_scale));
    FRESCO_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &p.x_scale, sizeof p.x_scale));
    const cudaDataType_t bias_type = p.d_type;
    FRESCO_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type));
  }

  plan->a = make_layout(p.ab_type, p.K, p.N, p.K);       // W^T seen column-major: K x N, ld K
  plan->b = make_layout(p.ab_type, p.K, p.M, p.ld_x);    // X^T: K x M, ld = X's row stride
  plan->d = make_layout(p.d_type, p.N, p.M, p.ld_d);     // D^T: N x M, ld = Y's row stride

  cublasLtMatmulPreference_t pref_raw = nullptr;
  FRESCO_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref_raw));
  const LtPreference pref(pref_raw);
  const uint64_t ws = kWorkspaceBytes;
  FRESCO_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref_raw, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                           &ws, sizeof ws));
  const uint32_t al_a = uint32_t(key.align_w), al_b = uint32_t(key.align_x), al_d = uint32_t(key.align_d);
  FRESCO_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref_raw, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                           &al_a, sizeof al_a));
  FRESCO_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref_raw, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                           &al_b, sizeof al_b));
  FRESCO_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref_raw, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                           &al_d, sizeof al_d));
  FRESCO_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref_raw, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                           &al_d, sizeof al_d));

  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t rc = cublasLtMatmulAlgoGetHeuristic(handle_.get(), desc, plan->a.get(), plan->b.get(),
                                                           plan->d.get(), plan->d.get(), pref_raw, 1,
                                                           &result, &found);
  if (rc == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
    plan->ok = true;
    plan->algo = result.algo;
    plan->workspace = result.workspaceSize;
  } else if (rc != CUBLAS_STATUS_SUCCESS && rc != CUBLAS_STATUS_NOT_SUPPORTED &&
             rc != CUBLAS_STATUS_INVALID_VALUE) {
    FRESCO_CUBLAS_CHECK(rc);  // a real failure, not "no algorithm for this problem"
  }
  return plan;
}

bool LtGemm::run(const GemmProblem& p, cudaStream_t stream) {
  if (p.M == 0 || p.N == 0) return true;
  if (p.K == 0) return false;  // cuBLASLt wants K >= 1; the caller's epilogue handles it
  const bool fp8 = p.ab_type == CUDA_R_8F_E4M3;
  FRESCO_ASSERT(!fp8 || (p.w_scale && p.x_scale), "cuBLASLt: an e4m3 product needs its two scale vectors");
  FRESCO_ASSERT(!p.accumulate || fp8, "cuBLASLt: D += X W^T is planned for e4m3 products only");
  const Key key{p.M, p.N, p.K, p.ld_x, p.ld_d, int(p.ab_type), int(p.d_type), int(p.epilogue), p.accumulate,
                alignment_of(p.x), alignment_of(p.w), alignment_of(p.d),
                has_bias(p.epilogue) ? alignment_of(p.bias) : 0};
  auto it = plans_.find(key);
  if (it == plans_.end()) it = plans_.emplace(key, make_plan(p, key)).first;
  Plan& plan = *it->second;
  if (!plan.ok) return false;
  void* ws = workspace_.reserve(kWorkspaceBytes, stream);
  if (has_bias(p.epilogue))
    FRESCO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                       &p.bias, sizeof p.bias));
  if (fp8) {  // the scale vectors change from call to call (a step's activations, a layer's weight)
    FRESCO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc.get(), CUBLASLT_MATMUL_DESC_A_SCALE_POINTER,
                                                       &p.w_scale, sizeof p.w_scale));
    FRESCO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc.get(), CUBLASLT_MATMUL_DESC_B_SCALE_POINTER,
                                                       &p.x_scale, sizeof p.x_scale));
  }
  const float alpha = 1.0f, beta = p.accumulate ? 1.0f : 0.0f;
  FRESCO_CUBLAS_CHECK(cublasLtMatmul(handle_.get(), plan.desc.get(), &alpha, p.w, plan.a.get(), p.x,
                                     plan.b.get(), &beta, p.d, plan.d.get(), p.d, plan.d.get(), &plan.algo,
                                     ws, plan.workspace, stream));
  return true;
}

}  // namespace fresco::cuda
