// A stand-alone cuBLASLt probe for docs/performance.md (issue 26): on FLUX.1-dev's token-linear
// shapes it times
//   - bf16 x bf16 -> bf16 with the bias epilogue: the heuristic's first algorithm and each of
//     its top candidates (and whether a candidate's output is bit-identical to the first's);
//   - e4m3 x e4m3 -> bf16 with per-tensor scales, and with outer-vector scales (one f32 per
//     output channel for W, one per token for X), with the bias and GELU+bias epilogues, and
//     the gated residual folded in (the gate multiplied into W's scale vector, beta = 1 on the
//     residual, bias pre-multiplied by the gate);
//   - bf16 with the gated residual in the GEMM: the gate as a per-output-channel alpha vector
//     (pointer mode ALPHA_DEVICE_VECTOR_BETA_HOST), the bias pre-multiplied by the gate, beta = 1
//     on the residual (what would replace today's f32 product plus gated_residual kernel);
// and checks a sample of each fp8 variant's outputs against a host dot product of the same
// quantized values. Build: nvcc -O2 -arch=sm_90a gemm_probe.cu -lcublasLt -o gemm_probe
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s at %d\n", cudaGetErrorString(e), __LINE__); exit(1);} } while (0)
#define LK(x) ((x) == CUBLAS_STATUS_SUCCESS)

static cublasLtHandle_t lt;
static void* ws;
static const size_t kWs = 32u << 20;

struct Variant {
  const char* name;
  bool fp8, outer, gelu, gated;
  bool alpha_vector = false;  // bf16: the gate as alpha, one f32 per output channel (device)
};

// D^T[N x M] = A(W: K x N col-major, op T) * B(X^T: K x M) ; row-major D [M, N].
static bool setup(const Variant& v, int64_t M, int64_t N, int64_t K, const void* bias, const float* sa,
                  const float* sb, cublasLtMatmulDesc_t* desc, cublasLtMatrixLayout_t* la,
                  cublasLtMatrixLayout_t* lb, cublasLtMatrixLayout_t* lc, cublasLtMatrixLayout_t* ld) {
  cublasLtMatmulDescCreate(desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(*desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
  cublasLtMatmulDescSetAttribute(*desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
  cublasLtEpilogue_t epi = v.gelu ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
  cublasLtMatmulDescSetAttribute(*desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
  cublasLtMatmulDescSetAttribute(*desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
  cudaDataType_t bt = CUDA_R_16BF;
  cublasLtMatmulDescSetAttribute(*desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt);
  const cudaDataType_t ab = v.fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
  if (v.alpha_vector) {
    int32_t mode = CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_HOST;
    if (!LK(cublasLtMatmulDescSetAttribute(*desc, CUBLASLT_MATMUL_DESC_POINTER_MODE, &mode, sizeof mode))) return false;
  }
  if (v.fp8) {
    if (v.outer) {
      int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
      if (!LK(cublasLtMatmulDescSetAttribute(*desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode))) return false;
      if (!LK(cublasLtMatmulDescSetAttribute(*desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof mode))) return false;
    }
    cublasLtMatmulDescSetAttribute(*desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sa, sizeof sa);
    cublasLtMatmulDescSetAttribute(*desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sb, sizeof sb);
  }
  cublasLtMatrixLayoutCreate(la, ab, K, N, K);
  cublasLtMatrixLayoutCreate(lb, ab, K, M, K);
  cublasLtMatrixLayoutCreate(lc, CUDA_R_16BF, N, M, N);
  cublasLtMatrixLayoutCreate(ld, CUDA_R_16BF, N, M, N);
  return true;
}

static float e4m3_to_f(uint8_t b) {
  __nv_fp8_e4m3 x;
  memcpy(&x, &b, 1);
  return float(x);
}

int main() {
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  printf("GPU %s, cuBLASLt %zu\n", prop.name, cublasLtGetVersion());
  cublasLtCreate(&lt);
  CK(cudaMalloc(&ws, kWs));
  const int64_t Ms[] = {4608, 16896};
  const int64_t NK[][2] = {{3072, 3072}, {9216, 3072}, {12288, 3072}, {3072, 12288}, {3072, 15360}};
  const Variant variants[] = {{"bf16 bias", false, false, false, false},
                              {"fp8 tensor bias", true, false, false, false},
                              {"fp8 rowwise bias", true, true, false, false},
                              {"fp8 rowwise gelu", true, true, true, false},
                              {"fp8 rowwise gated", true, true, false, true},
                              {"bf16 gated alphavec", false, false, false, true, true}};
  cudaStream_t st;
  CK(cudaStreamCreate(&st));
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int64_t M : Ms)
    for (auto& nk : NK) {
      const int64_t N = nk[0], K = nk[1];
      // Host data: bf16 copies and e4m3 copies (quantized with scale 1: values ~N(0,1) fit).
      std::vector<__nv_bfloat16> hx(static_cast<size_t>(M * K)), hw(static_cast<size_t>(N * K)), hb(static_cast<size_t>(N));
      std::vector<uint8_t> qx(static_cast<size_t>(M * K)), qw(static_cast<size_t>(N * K));
      std::vector<float> sa(static_cast<size_t>(N)), sb(static_cast<size_t>(M)), gate(static_cast<size_t>(N));
      for (size_t i = 0; i < hx.size(); ++i) { float f = nd(rng); hx[i] = f; __nv_fp8_e4m3 q(f); memcpy(&qx[i], &q, 1); }
      for (size_t i = 0; i < hw.size(); ++i) { float f = 0.02f * nd(rng); hw[i] = f; __nv_fp8_e4m3 q(f * 50.f); memcpy(&qw[i], &q, 1); }
      for (auto& b : hb) b = 0.1f * nd(rng);
      for (size_t i = 0; i < sa.size(); ++i) { sa[i] = 0.02f + 0.001f * float(i % 7); gate[i] = 0.5f + 0.01f * float(i % 13); }
      for (size_t i = 0; i < sb.size(); ++i) sb[i] = 1.0f + 0.01f * float(i % 5);
      void *dx, *dw, *db, *dd, *dqx, *dqw, *dgb, *dd2;
      float *dsa, *dsb, *dsag, *dscal, *dgate;
      CK(cudaMalloc(&dx, M * K * 2)); CK(cudaMalloc(&dw, N * K * 2)); CK(cudaMalloc(&db, N * 2));
      CK(cudaMalloc(&dgb, N * 2)); CK(cudaMalloc(&dd, M * N * 2)); CK(cudaMalloc(&dd2, M * N * 2));
      CK(cudaMalloc(&dqx, M * K)); CK(cudaMalloc(&dqw, N * K));
      CK(cudaMalloc(&dsa, N * 4)); CK(cudaMalloc(&dsb, M * 4)); CK(cudaMalloc(&dsag, N * 4)); CK(cudaMalloc(&dscal, 8));
      CK(cudaMalloc(&dgate, N * 4));
      CK(cudaMemcpy(dx, hx.data(), M * K * 2, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dw, hw.data(), N * K * 2, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(db, hb.data(), N * 2, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dqx, qx.data(), M * K, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dqw, qw.data(), N * K, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dsa, sa.data(), N * 4, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dsb, sb.data(), M * 4, cudaMemcpyHostToDevice));
      std::vector<float> sag(static_cast<size_t>(N));
      std::vector<__nv_bfloat16> hgb(static_cast<size_t>(N));
      for (int64_t i = 0; i < N; ++i) { sag[size_t(i)] = sa[size_t(i)] * gate[size_t(i)]; hgb[size_t(i)] = float(hb[size_t(i)]) * gate[size_t(i)]; }
      CK(cudaMemcpy(dsag, sag.data(), N * 4, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dgate, gate.data(), N * 4, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dgb, hgb.data(), N * 2, cudaMemcpyHostToDevice));
      const float scal[2] = {0.02f, 1.0f};
      CK(cudaMemcpy(dscal, scal, 8, cudaMemcpyHostToDevice));
      const double flop = 2.0 * double(M) * double(N) * double(K);
      for (const Variant& v : variants) {
        if (v.gelu && N != 12288) continue;
        if (v.gated && K == 3072 && N != 3072) continue;
        cublasLtMatmulDesc_t desc;
        cublasLtMatrixLayout_t la, lb, lc, ld;
        const float* sA = v.outer ? (v.gated ? dsag : dsa) : dscal;
        const float* sB = v.outer ? dsb : dscal + 1;
        const void* bias = v.gated ? dgb : db;
        if (!setup(v, M, N, K, bias, sA, sB, &desc, &la, &lb, &lc, &ld)) {
          printf("M=%6ld N=%5ld K=%5ld %-18s scale mode refused\n", M, N, K, v.name);
          continue;
        }
        cublasLtMatmulPreference_t pref;
        cublasLtMatmulPreferenceCreate(&pref);
        uint64_t wsb = kWs;
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb);
        cublasLtMatmulHeuristicResult_t res[8];
        int found = 0;
        cublasStatus_t rc = cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, ld, pref, 8, res, &found);
        if (!LK(rc) || found == 0) {
          printf("M=%6ld N=%5ld K=%5ld %-18s no algorithm (%s)\n", M, N, K, v.name, cublasLtGetStatusName(rc));
          continue;
        }
        const void* A = v.fp8 ? dqw : dw;
        const void* B = v.fp8 ? dqx : dx;
        const float alpha = 1.f, beta = v.gated ? 1.f : 0.f;
        const void* alpha_arg = v.alpha_vector ? static_cast<const void*>(dgate) : &alpha;
        int tries = (v.fp8 || v.alpha_vector) ? 1 : found;
        std::vector<uint16_t> first(static_cast<size_t>(M * N)), other(static_cast<size_t>(M * N));
        for (int a = 0; a < tries; ++a) {
          if (v.gated) CK(cudaMemsetAsync(dd, 0, M * N * 2, st));
          auto run = [&] {
            return cublasLtMatmul(lt, desc, alpha_arg, A, la, B, lb, &beta, dd, lc, dd, ld, &res[a].algo, ws,
                                  res[a].workspaceSize, st);
          };
          if (!LK(run())) { printf("  algo %d: run failed\n", a); continue; }
          CK(cudaStreamSynchronize(st));
          if (v.fp8 || v.alpha_vector) {  // a sample of outputs against a host dot product of the same e4m3 values
            std::vector<__nv_bfloat16> out(static_cast<size_t>(M * N));
            CK(cudaMemcpy(out.data(), dd, M * N * 2, cudaMemcpyDeviceToHost));
            double worst = 0;
            for (int t = 0; t < 64; ++t) {
              const int64_t m = (t * 977) % M, n = (t * 613) % N;
              double acc = 0;
              for (int64_t k = 0; k < K; ++k)
                acc += v.fp8 ? double(e4m3_to_f(qw[size_t(n * K + k)])) * double(e4m3_to_f(qx[size_t(m * K + k)]))
                             : double(float(hw[size_t(n * K + k)])) * double(float(hx[size_t(m * K + k)]));
              double ref = (!v.fp8 ? acc : v.outer ? acc * sa[size_t(n)] * sb[size_t(m)] : acc * 0.02) +
                           double(float(hb[size_t(n)]));
              if (v.gelu) ref = 0.5 * ref * (1 + std::tanh(0.7978845608 * (ref + 0.044715 * ref * ref * ref)));
              if (v.gated) ref *= gate[size_t(n)];  // one pass onto a zero residual
              worst = std::max(worst, std::fabs(float(out[size_t(m * N + n)]) - ref) / (std::fabs(ref) + 1e-2));
            }
            printf("  %s check: worst rel err %.2e\n", v.gated ? "gated" : "fp8", worst);
          } else {
            CK(cudaMemcpy(a == 0 ? first.data() : other.data(), dd, M * N * 2, cudaMemcpyDeviceToHost));
          }
          for (int w = 0; w < 3; ++w) run();
          std::vector<float> ms;
          for (int r = 0; r < 10; ++r) {
            cudaEventRecord(e0, st);
            run();
            cudaEventRecord(e1, st);
            cudaEventSynchronize(e1);
            float t;
            cudaEventElapsedTime(&t, e0, e1);
            ms.push_back(t);
          }
          std::sort(ms.begin(), ms.end());
          const double med = ms[5];
          int splitk = 0, red = 0, tile = 0, stages = 0;
          size_t sz;
          cublasLtMatmulAlgoConfigGetAttribute(&res[a].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof splitk, &sz);
          cublasLtMatmulAlgoConfigGetAttribute(&res[a].algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &red, sizeof red, &sz);
          cublasLtMatmulAlgoConfigGetAttribute(&res[a].algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &sz);
          cublasLtMatmulAlgoConfigGetAttribute(&res[a].algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof stages, &sz);
          const bool same = v.fp8 || v.alpha_vector || a == 0 || other == first;
          printf("M=%6ld N=%5ld K=%5ld %-18s algo %d: %8.3f ms %7.1f TFLOP/s  splitk %d red %d tile %d stages %d %s\n", M,
                 N, K, v.name, a, med, flop / med / 1e9, splitk, red, tile, stages,
                 (v.fp8 || v.alpha_vector) ? "" : (same ? "bits=first" : "bits DIFFER"));
        }
        cublasLtMatmulPreferenceDestroy(pref);
        cublasLtMatrixLayoutDestroy(la); cublasLtMatrixLayoutDestroy(lb);
        cublasLtMatrixLayoutDestroy(lc); cublasLtMatrixLayoutDestroy(ld);
        cublasLtMatmulDescDestroy(desc);
      }
      cudaFree(dx); cudaFree(dw); cudaFree(db); cudaFree(dgb); cudaFree(dd); cudaFree(dd2); cudaFree(dqx);
      cudaFree(dqw); cudaFree(dsa); cudaFree(dsb); cudaFree(dsag); cudaFree(dscal); cudaFree(dgate);
    }
  return 0;
}
