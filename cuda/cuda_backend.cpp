// The CUDA backend class (C++20; the kernels are C++17 CUDA translation units behind the POD
// launchers of cuda/kernels.hpp). See cuda/cuda_backend.hpp for the overview.
//
// Tensors become kernel views here: a tensor of rank >= 2 is dim(0) rows of row_numel()
// elements, row_stride() apart (a sequence operand may be a column view of a wider matrix); a
// vector or scalar is one dense row. Weights, per-channel vectors and tables are dense.
//
// Dtypes (what supports() promises): activations f32, bf16 or f16 in any combination of input
// and output dtype; weights and per-channel vectors f32, bf16 or f16 whatever the activations
// are; f32 accumulation everywhere (GroupNorm sums f64). A linear whose input and weight dtypes
// differ converts the non-f32 operand(s) to f32 scratch and runs the f32 product (exactly the
// CPU reference's arithmetic); mixed q/k/v dtypes in attention are likewise widened to f32.
#include "cuda/cuda_backend.hpp"

#include <cuda_runtime_api.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "cuda/cublaslt.hpp"
#include "cuda/cuda_check.hpp"
#include "cuda/cuda_stream.hpp"
#include "cuda/conv_cudnn.hpp"
#include "cuda/cudnn_sdpa.hpp"
#include "cuda/cudnn_sdpa_fp8.hpp"
#include "cuda/device_buffer.hpp"
#include "cuda/kernels.hpp"
#include "cuda/wide_attention.hpp"
#include "src/backend/backend.hpp"
#include "src/backend/op_checks.hpp"
#include "src/core/error.hpp"
#include "src/core/tuning.hpp"

namespace fresco {
namespace {

static_assert(int(DType::f32) == cuda::kF32 && int(DType::bf16) == cuda::kBF16 &&
                  int(DType::f16) == cuda::kF16 && int(DType::f64) == cuda::kF64 &&
                  int(DType::i64) == cuda::kI64 && int(DType::e4m3) == cuda::kE4M3,
              "cuda::Dt numbers the dtypes as fresco::DType");

using cuda::Mat;
using cuda::Vec;

bool is_float(DType d) { return d == DType::f32 || d == DType::bf16 || d == DType::f16; }

cudaDataType_t cuda_type(int dt) {
  switch (dt) {
    case cuda::kF32: return CUDA_R_32F;
    case cuda::kBF16: return CUDA_R_16BF;
    case cuda::kF16: return CUDA_R_16F;
    default: break;
  }
  FRESCO_ASSERT(false, "no cuBLAS type for dtype " + std::to_string(dt));
}

// Selects the device before any member that creates CUDA objects is constructed.
struct DeviceSelection {
  explicit DeviceSelection(int device) : index(device) {
    int count = 0;
    const cudaError_t rc = cudaGetDeviceCount(&count);
    if (rc != cudaSuccess) {
      cudaGetLastError();
      throw ApiError(std::string("the CUDA backend needs a GPU: ") + cudaGetErrorString(rc));
    }
    if (device < 0 || count < 1)
      throw ApiError("the CUDA backend was asked for device " + std::to_string(device) + ", but " +
                     std::to_string(count) + " CUDA device(s) are visible");
    // `device` is the rank's index on its node: ranks beyond the GPU count share GPUs
    // round-robin (the IPC and host-staged transports allow it; NCCL refuses it).
    index = device % count;
    FRESCO_CUDA_CHECK(cudaSetDevice(index));
  }
  int index;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  Device device() const override { return Device::cuda; }
  bool supports(const OpDesc& op) const override;

  Stream& stream() override { return stream_; }
  std::unique_ptr<Event> new_timing_event() override { return std::make_unique<cuda::CudaEvent>(true); }
  std::unique_ptr<StepGraph> capture(const std::function<void()>& enqueue) override;
  int64_t device_memory_in_use() const override;
  // Scratch and workspaces are DeviceBuffers: any new block may be one a graph points at.
  uint64_t allocation_epoch() const override { return cuda::DeviceBuffer::allocations(); }
  std::shared_ptr<Storage> alloc_storage(size_t bytes) override;

  void copy(const Tensor& src, const Tensor& dst) override;

  void linear(const Tensor& x, const Tensor& weight, const Tensor* bias, const Tensor& y,
              Epilogue epilogue = Epilogue::none, const Tensor* gate = nullptr) override;
  void layer_norm(const Tensor& x, float eps, const Tensor& y) override;
  void modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, const Tensor& y) override;
  void norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                     const Tensor& y) override;
  void rms_norm_heads(const Tensor& x, const Tensor& scale, float eps, const Tensor& y) override;
  void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& y) override;
  void rms_norm_rope(const Tensor& x, const Tensor& scale, float eps, const Tensor& cos,
                     const Tensor& sin, const Tensor& y) override;
  void attention_fp8(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                     const Tensor& lse) override;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                 const Tensor& lse) override;
  void attention_merge(const Tensor& o_part, const Tensor& lse_part, const Tensor& o,
                       const Tensor& lse) override;
  void gelu_tanh(const Tensor& x, const Tensor& y) override;
  void silu(const Tensor& x, const Tensor& y) override;
  void gated_residual(const Tensor& y, const Tensor& gate, const Tensor& x) override;
  void add(const Tensor& a, const Tensor& b, const Tensor& y) override;
  void subtract(const Tensor& a, const Tensor& b, const Tensor& y) override;
  void affine(const Tensor& x, float a, float b, const Tensor& y) override;
  void axpy(const Tensor& alpha, const Tensor& x, const Tensor& y) override;
  void timestep_embedding(const Tensor& t, const Tensor& out) override;
  void pack_latent(const Tensor& latent, const Tensor& tokens) override;
  void unpack_latent(const Tensor& tokens, const Tensor& latent) override;
  void count_nonfinite(const Tensor& x, const Tensor& count) override;
  void change_sums(const Tensor& a, const Tensor& b, const Tensor& sums) override;

  void conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int pad_rows,
              const Tensor& y) override;
  void group_sums(const Tensor& x, int groups, const Tensor& sums) override;
  void group_norm(const Tensor& x, const Tensor& sums, double count, float eps, const Tensor& weight,
                  const Tensor& bias, const Tensor& y) override;
  void upsample_nearest(const Tensor& x, const Tensor& y) override;
  void transpose(const Tensor& x, const Tensor& y) override;
  void gather_rows(const Tensor& table, const Tensor& ids, const Tensor& y) override;
  void layer_norm_affine(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                         const Tensor& y) override;
  void multiply(const Tensor& a, const Tensor& b, const Tensor& y) override;
  void quick_gelu(const Tensor& x, const Tensor& y) override;
  void gelu_erf(const Tensor& x, const Tensor& y) override;
  void attention_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* bias, bool causal,
                      float scale, const Tensor& o) override;
  void quantize_rows(const Tensor& x, const Tensor& q, const Tensor& scales) override;
  void dequantize_rows(const Tensor& q, const Tensor& scales, const Tensor& y) override;
  void linear_fp8(const Tensor& xq, const Tensor& x_scale, const Tensor& wq, const Tensor& w_scale,
                  const Tensor* bias, const Tensor& y, Epilogue epilogue = Epilogue::none,
                  const Tensor* gate = nullptr) override;
  void norm_modulate_fp8(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, const Tensor& q,
                         const Tensor& scales) override;
  void fill_random(uint64_t seed, uint32_t stream, uint32_t substream, float mean, float std,
                   const Tensor& y) override;

 private:
  // Grow-only device scratch, one buffer per role so that the operands of one op never share.
  enum Slot { kAcc, kConvX, kConvW, kBias, kAttQ, kAttK, kAttV, kAttO, kPartial, kChangePartial, kFp8Scale, kNormed, kSlots };

  cudaStream_t s() const { return stream_.get(); }
  template <typename T>
  T* scratch(Slot slot, size_t count) {
    return scratch_[slot].reserve_as<T>(count, s());
  }
  Mat mat(const Tensor& t, const char* op) const;
  Vec vec(const Tensor& t, const char* op) const;
  void check(const Tensor& t, const char* op) const;
  // An attention's optional lse [Lq, H] f32 (null when undefined), checked.
  float* lse_rows(const Tensor& lse, int64_t Lq, int64_t H, const char* op) const;
  // A dense f32 copy of `m` in `slot` (m itself when it is f32 already and `dense_needed` is false).
  Mat widen(const Mat& m, Slot slot, bool dense_needed = false);
  // The f32 product acc = XA WA^T (cuBLASLt, or the fallback kernel; operands of one dtype), then
  // one kernel adds the bias and applies the epilogue, rounding once into y.
  void product_then_epilogue(const Mat& XA, const Mat& WA, const Vec& B, Epilogue epilogue, const Vec& G,
                             const Mat& Y);

  DeviceSelection device_;
  cuda::CudaStream stream_;
  cuda::LtGemm gemm_;
  cuda::CudnnSdpa sdpa_;
  cuda::CudnnSdpaFp8 sdpa_fp8_{sdpa_};  // attention_fp8 (on sdpa_'s cuDNN handle)
  // attention_fp8's e4m3 q, k, v and its scalars (cuda::Fp8Scalar, then the three maxima's bits).
  std::array<cuda::DeviceBuffer, 4> fp8_attention_{
      cuda::DeviceBuffer("fp8 attention q"), cuda::DeviceBuffer("fp8 attention k"),
      cuda::DeviceBuffer("fp8 attention v"), cuda::DeviceBuffer("fp8 attention scalars")};
  cuda::CudnnConv conv_;        // the decoder's bf16/f16 convolutions (FRESCO_CUDNN_CONV=0: the direct kernel)
  cuda::WideAttention wide_;    // attention with head dims above 256 (the decoder's mid-block)
  bool use_cudnn_conv_;
  bool use_cudnn_;
  bool verbose_;
  std::array<cuda::DeviceBuffer, kSlots> scratch_{
      cuda::DeviceBuffer("linear accumulator"), cuda::DeviceBuffer("converted activations"),
      cuda::DeviceBuffer("converted weights"),  cuda::DeviceBuffer("linear bias"),
      cuda::DeviceBuffer("attention q"),        cuda::DeviceBuffer("attention k"),
      cuda::DeviceBuffer("attention v"),        cuda::DeviceBuffer("attention output"),
      cuda::DeviceBuffer("group partial sums"), cuda::DeviceBuffer("change partial sums"),
      cuda::DeviceBuffer("gated fp8 scales"),   cuda::DeviceBuffer("normed rows to quantize")};
  size_t attention_fp8_ = 0;
  size_t attention_cudnn_ = 0, attention_kernel_ = 0, linear_lt_ = 0, linear_acc_ = 0, linear_fallback_ = 0;
  size_t linear_fp8_lt_ = 0, linear_fp8_widened_ = 0;
  size_t attention_wide_ = 0, conv_cudnn_ = 0, conv_kernel_ = 0;
};

CudaBackend::CudaBackend(int device)
    : device_(device),
      use_cudnn_(tuning::flag(tuning::Switch::cudnn_sdpa)),
      verbose_(tuning::flag(tuning::Switch::cuda_verbose)) {
  use_cudnn_conv_ = tuning::flag(tuning::Switch::cudnn_conv);
  // cudnnBackendExecute allocates host memory on every call; a replayed graph does not.
  sdpa_.set_graph_replay(tuning::flag(tuning::Switch::cudnn_graph));
}

CudaBackend::~CudaBackend() {
  if (!verbose_) return;
  std::fprintf(stderr,
               "[cuda backend] conv2d: %zu via cuDNN (%s; plans %zu, declined %zu%s%s), %zu via the direct kernel; "
               "attention with head dim > %lld: %zu via cuBLASLt blocks\n",
               conv_cudnn_, !use_cudnn_conv_ ? "off by FRESCO_CUDNN_CONV" : (conv_.available() ? "available" : "unavailable"),
               conv_.planned(), conv_.declined(), conv_.why().empty() ? "" : "; ", conv_.why().c_str(), conv_kernel_,
               static_cast<long long>(cuda::kAttentionMaxHeadDim), attention_wide_);
  if (conv_.planned()) std::fprintf(stderr, "[cuda backend] conv plans: %s\n", conv_.describe().c_str());
  std::fprintf(stderr,
               "[cuda backend] linear: %zu via cuBLASLt direct, %zu via f32 product + epilogue kernel, "
               "%zu via the fallback GEMM; fp8: %zu via cuBLASLt, %zu widened to f32; cuBLASLt problems planned %zu, "
               "declined %zu\n",
               linear_lt_, linear_acc_, linear_fallback_, linear_fp8_lt_, linear_fp8_widened_, gemm_.planned(),
               gemm_.declined());
  std::fprintf(stderr,
               "[cuda backend] attention: %zu via cuDNN SDPA (cuDNN %d, %s; plans %zu, declined %zu), "
               "%zu via the tiled kernel; graph replay %s%s%s%s\n",
               attention_cudnn_, sdpa_.version(),
               !use_cudnn_ ? "off by FRESCO_CUDNN_SDPA" : (sdpa_.available() ? "available" : "unavailable"),
               sdpa_.planned(), sdpa_.declined(), attention_kernel_, sdpa_.graph_replay() ? "on" : "off",
               sdpa_.graph_note().empty() ? "" : (" (" + sdpa_.graph_note() + ")").c_str(),
               sdpa_.why().empty() ? "" : "; cuDNN: ", sdpa_.why().c_str());
}

// ---- views ----------------------------------------------------------------------------------

void CudaBackend::check(const Tensor& t, const char* op) const {
  FRESCO_ASSERT(t.defined() && t.device() == Device::cuda,
                std::string(op) + ": the CUDA backend got " +
                    (t.defined() ? t.describe() : std::string("an undefined tensor")));
}

Mat CudaBackend::mat(const Tensor& t, const char* op) const {
  check(t, op);
  const int dt = int(t.dtype());
  if (t.rank() <= 1 || t.contiguous()) {
    if (t.rank() <= 1) return {t.raw(), dt, 1, t.numel(), t.numel()};
    return {t.raw(), dt, t.dim(0), t.row_numel(), t.row_numel()};
  }
  return {t.raw(), dt, t.dim(0), t.row_numel(), t.row_stride()};
}

Vec CudaBackend::vec(const Tensor& t, const char* op) const {
  check(t, op);
  FRESCO_ASSERT(t.contiguous(), std::string(op) + ": expected a dense vector, got " + t.describe());
  return {t.raw(), int(t.dtype()), t.numel()};
}

Mat CudaBackend::widen(const Mat& m, Slot slot, bool dense_needed) {
  if (m.dt == cuda::kF32 && (!dense_needed || m.ld == m.cols)) return m;
  float* buf = scratch<float>(slot, size_t(m.rows * m.cols));
  const Mat out{buf, cuda::kF32, m.rows, m.cols, m.cols};
  cuda::convert(m, out, s());
  return out;
}

// ---- capabilities, memory, copies -----------------------------------------------------------

bool CudaBackend::supports(const OpDesc& d) const {
  // The same promise as the CPU reference: f32 accumulation, float weights of any of the three
  // dtypes, epilogues only on linear.
  if (d.op == Op::count || d.accum != DType::f32) return false;
  if (d.op == Op::linear_fp8 ? d.weight != DType::e4m3 : !is_float(d.weight)) return false;
  if (d.epilogue != Epilogue::none && d.op != Op::linear && d.op != Op::linear_fp8) return false;
  switch (d.op) {
    case Op::copy:  // conversion among f32/bf16/f16 on the device, or a same-dtype copy
      return (is_float(d.in) && is_float(d.out)) || d.in == d.out;
    case Op::count_nonfinite: return (is_float(d.in) || d.in == DType::f64) && d.out == DType::i64;
    case Op::group_sums: return is_float(d.in) && d.out == DType::f64;
    case Op::change_sums: return is_float(d.in) && d.out == DType::f64;
    case Op::quantize_rows: return is_float(d.in) && d.out == DType::e4m3;
    case Op::dequantize_rows: return d.in == DType::e4m3 && is_float(d.out);
    case Op::linear_fp8: return d.in == DType::e4m3 && is_float(d.out);
    case Op::norm_modulate_fp8: return is_float(d.in) && d.out == DType::e4m3;
    case Op::gather_rows: return d.in == DType::i64 && is_float(d.out);
    case Op::attention_fp8:
      return d.in == d.out && (d.in == DType::bf16 || d.in == DType::f16) && sdpa_fp8_.available();
    default: return is_float(d.in) && is_float(d.out);
  }
}

std::shared_ptr<Storage> CudaBackend::alloc_storage(size_t bytes) {
  void* p = bytes ? cuda::device_malloc(bytes, "a tensor") : nullptr;
  return std::make_shared<Storage>(Device::cuda, p, bytes, [](void* q) {
    if (q) cudaFree(q);
  });
}

void CudaBackend::copy(const Tensor& src, const Tensor& dst) {
  FRESCO_ASSERT(src.defined() && dst.defined(), "copy of an undefined tensor");
  FRESCO_ASSERT(src.device() == Device::cuda || dst.device() == Device::cuda,
                "copy on the CUDA backend between two host tensors: " + src.describe() + " -> " +
                    dst.describe());
  const int64_t rows_s = src.rank() == 0 ? 1 : src.dim(0), rows_d = dst.rank() == 0 ? 1 : dst.dim(0);
  FRESCO_ASSERT(rows_s == rows_d && src.row_numel() == dst.row_numel(),
                "copy: " + src.describe() + " -> " + dst.describe() +
                    " (rows and elements per row must match)");
  const bool dense = src.contiguous() && dst.contiguous();
  const int64_t rows = dense ? 1 : rows_s, width = dense ? src.numel() : src.row_numel();
  const int64_t ld_s = dense ? width : src.row_stride(), ld_d = dense ? width : dst.row_stride();
  if (rows * width == 0) return;
  if (src.dtype() == dst.dtype()) {
    const size_t es = dtype_size(src.dtype());
    if (rows == 1)
      FRESCO_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), size_t(width) * es, cudaMemcpyDefault, s()));
    else
      FRESCO_CUDA_CHECK(cudaMemcpy2DAsync(dst.raw(), size_t(ld_d) * es, src.raw(), size_t(ld_s) * es,
                                          size_t(width) * es, size_t(rows), cudaMemcpyDefault, s()));
    return;
  }
  FRESCO_ASSERT(src.device() == Device::cuda && dst.device() == Device::cuda,
                "copy between host and device keeps the dtype: " + src.describe() + " -> " + dst.describe());
  FRESCO_ASSERT(is_float(src.dtype()) && is_float(dst.dtype()),
                "copy: no conversion " + src.describe() + " -> " + dst.describe());
  cuda::convert({src.raw(), int(src.dtype()), rows, width, ld_s},
                {dst.raw(), int(dst.dtype()), rows, width, ld_d}, s());
}

// ---- whole-step graphs, memory, random fills ------------------------------------------------

namespace {
// A captured step: cudaGraphLaunch of the instantiated graph on the backend's compute stream.
// It holds the scratch it was captured on: a block replaced while it lives is kept, not freed.
class CudaStepGraph final : public StepGraph {
 public:
  CudaStepGraph(cuda::CudaGraphExec exec, cudaStream_t stream) : exec_(std::move(exec)), stream_(stream) {}
  void replay() override { exec_.launch(stream_); }

 private:
  cuda::DeviceBuffer::Hold hold_;
  cuda::CudaGraphExec exec_;
  cudaStream_t stream_;
};
}  // namespace

std::unique_ptr<StepGraph> CudaBackend::capture(const std::function<void()>& enqueue) {
  // Work queued before the capture must not be part of it, nor race with it.
  stream_.synchronize();
  cuda::CudaGraphExec exec = cuda::CudaGraphExec::capture(s(), [&](cudaStream_t) { enqueue(); });
  return std::make_unique<CudaStepGraph>(std::move(exec), s());
}

int64_t CudaBackend::device_memory_in_use() const {
  size_t free = 0, total = 0;
  FRESCO_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return int64_t(total - free);
}

void CudaBackend::fill_random(uint64_t seed, uint32_t stream, uint32_t substream, float mean, float std,
                              const Tensor& y) {
  check(y, "fill_random");
  FRESCO_ASSERT(y.contiguous() && is_float(y.dtype()), "fill_random: expected a dense float tensor, got " + y.describe());
  cuda::fill_random(seed, stream, substream, mean, std, y.raw(), int(y.dtype()), y.numel(), s());
}

// ---- linear ---------------------------------------------------------------------------------

void CudaBackend::linear(const Tensor& x, const Tensor& weight, const Tensor* bias, const Tensor& y,
                         Epilogue epilogue, const Tensor* gate) {
  const Mat X = mat(x, "linear"), Y = mat(y, "linear");
  check(weight, "linear");
  const int64_t M = X.rows, K = X.cols, N = weight.rank() == 2 ? weight.dim(0) : -1;
  FRESCO_ASSERT(N >= 0 && weight.dim(1) == K && weight.contiguous(),
                "linear: weight " + weight.describe() + " does not match input " + x.describe());
  FRESCO_ASSERT(Y.rows == M && Y.cols == N, "linear: output " + y.describe() + " for input " + x.describe());
  FRESCO_ASSERT(!bias || bias->numel() == N, "linear: bias " + bias->describe());
  FRESCO_ASSERT((epilogue == Epilogue::gated_residual) == (gate != nullptr),
                std::string("linear: a gate goes with the gated_residual epilogue, got ") +
                    epilogue_name(epilogue));
  FRESCO_ASSERT(!gate || gate->numel() == N, "linear: gate " + gate->describe());
  if (M == 0 || N == 0) return;
  const Vec B = bias ? vec(*bias, "linear") : Vec{nullptr, cuda::kF32, 0};
  const Vec G = gate ? vec(*gate, "linear") : Vec{nullptr, cuda::kF32, 0};

  // The product's operands: X and W of one dtype, else both widened to f32.
  Mat XA = X, WA{weight.raw(), int(weight.dtype()), N, K, K};
  if (XA.dt != WA.dt) {
    XA = widen(XA, kConvX);
    WA = widen(WA, kConvW);
  }
  const int ab = XA.dt;

  // 1. cuBLASLt writes y itself, bias and GELU in its epilogue. Its D is the operands' dtype or
  //    f32 (f32 operands: f32 only), its bias has D's dtype (a 16-bit bias is widened exactly
  //    for an f32 D; an f32 bias for a 16-bit D goes through path 2 rather than being rounded).
  //    cuBLASLt's GELU is the tanh form but evaluated with a fast tanh (errors near 1e-6): far
  //    below a 16-bit store's rounding, not below f32's, so an f32 output takes path 2.
  const bool gated = epilogue == Epilogue::gated_residual;
  const bool lt_gelu_ok = epilogue != Epilogue::gelu_tanh || Y.dt != cuda::kF32;
  if (!gated && lt_gelu_ok && K > 0 && (Y.dt == ab || Y.dt == cuda::kF32)) {
    const void* bias_ptr = nullptr;
    bool bias_ok = true;
    if (bias) {
      if (B.dt == Y.dt) bias_ptr = B.data;
      else if (Y.dt == cuda::kF32) bias_ptr = widen({const_cast<void*>(B.data), B.dt, 1, N, N}, kBias).data;
      else bias_ok = false;
    }
    if (bias_ok) {
      const cuda::LtEpilogue e = epilogue == Epilogue::gelu_tanh
                                     ? (bias ? cuda::LtEpilogue::gelu_bias : cuda::LtEpilogue::gelu)
                                     : (bias ? cuda::LtEpilogue::bias : cuda::LtEpilogue::none);
      const cuda::GemmProblem p{XA.data, XA.ld, WA.data, Y.data, Y.ld, M, N, K,
                                cuda_type(ab), cuda_type(Y.dt), e, bias_ptr};
      if (gemm_.run(p, s())) {
        ++linear_lt_;
        return;
      }
    }
  }

  // 2. (The gated residual as one cuBLASLt call, the gate as a device alpha vector with beta 1,
  //    was tried: cuBLASLt 13.0 offers no algorithm for that pointer mode with bf16 or f32
  //    operands on an H200. With e4m3 operands the gate folds into the scale vector instead:
  //    linear_fp8.)
  product_then_epilogue(XA, WA, B, epilogue, G, Y);
}

void CudaBackend::product_then_epilogue(const Mat& XA, const Mat& WA, const Vec& B, Epilogue epilogue,
                                        const Vec& G, const Mat& Y) {
  const int64_t M = XA.rows, K = XA.cols, N = WA.rows;
  float* acc = scratch<float>(kAcc, size_t(M * N));
  if (K == 0) {
    FRESCO_CUDA_CHECK(cudaMemsetAsync(acc, 0, size_t(M * N) * sizeof(float), s()));
  } else {
    const cuda::GemmProblem p{XA.data, XA.ld, WA.data, acc, N, M, N, K,
                              cuda_type(XA.dt), CUDA_R_32F, cuda::LtEpilogue::none, nullptr};
    if (gemm_.run(p, s())) {
      ++linear_acc_;
    } else {
      cuda::gemm_fallback(XA, WA, acc, N, s());
      ++linear_fallback_;
    }
  }
  const int kind = epilogue == Epilogue::gated_residual ? cuda::kEpiGatedResidual
                   : epilogue == Epilogue::gelu_tanh    ? cuda::kEpiGelu
                                                        : cuda::kEpiNone;
  cuda::linear_epilogue(acc, N, B, kind, G, Y, s());
}

void CudaBackend::linear_fp8(const Tensor& xq, const Tensor& x_scale, const Tensor& wq, const Tensor& w_scale,
                             const Tensor* bias, const Tensor& y, Epilogue epilogue, const Tensor* gate) {
  const bool gated = epilogue == Epilogue::gated_residual;
  op_checks::linear_fp8(xq, x_scale, wq, w_scale, bias, y, gated, gate);
  const Mat XQ = mat(xq, "linear_fp8"), Y = mat(y, "linear_fp8");
  check(wq, "linear_fp8");
  const int64_t M = XQ.rows, K = XQ.cols, N = wq.dim(0);
  if (M == 0 || N == 0) return;
  const Vec XS = vec(x_scale, "linear_fp8"), WS = vec(w_scale, "linear_fp8");
  const Vec B = bias ? vec(*bias, "linear_fp8") : Vec{nullptr, cuda::kF32, 0};
  const Vec G = gate ? vec(*gate, "linear_fp8") : Vec{nullptr, cuda::kF32, 0};

  // 1. cuBLASLt's e4m3 product with outer-vector scales (Hopper and later), the bias and GELU in
  //    its epilogue, a 16-bit D. Gated: y += (gate w_scale) x_scale acc + gate b in one call
  //    (beta 1 on y), the gate folded into the scale vector and the bias by a kernel of N
  //    elements (the folded bias rounded once to y's dtype, as cuBLASLt takes it).
  //    cuBLASLt wants K and the row strides in multiples of 16 bytes and 16-byte-aligned data.
  const bool sixteen = [&] {
    const auto al = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; };
    return K > 0 && K % 16 == 0 && XQ.ld % 16 == 0 && (Y.ld * int64_t(dtype_size(y.dtype()))) % 16 == 0 &&
           al(XQ.data) && al(wq.raw()) && al(Y.data);
  }();
  if (sixteen && Y.dt != cuda::kF32 && (!bias || B.dt == Y.dt)) {
    const float* scale_w = static_cast<const float*>(WS.data);
    const void* bias_ptr = B.data;
    if (gated) {
      float* folded = scratch<float>(kFp8Scale, size_t(2 * N));  // N scales, then N bias values of y's dtype
      void* folded_bias = bias ? static_cast<void*>(folded + N) : nullptr;
      cuda::fold_gate(scale_w, G, B, N, folded, folded_bias, Y.dt, s());
      scale_w = folded;
      bias_ptr = folded_bias;
    }
    const cuda::LtEpilogue e = epilogue == Epilogue::gelu_tanh ? (bias ? cuda::LtEpilogue::gelu_bias : cuda::LtEpilogue::gelu)
                                                               : (bias ? cuda::LtEpilogue::bias : cuda::LtEpilogue::none);
    cuda::GemmProblem p{XQ.data, XQ.ld, wq.raw(), Y.data, Y.ld, M, N, K, CUDA_R_8F_E4M3, cuda_type(Y.dt), e, bias_ptr};
    p.w_scale = scale_w;
    p.x_scale = static_cast<const float*>(XS.data);
    p.accumulate = gated;
    if (gemm_.run(p, s())) {
      ++linear_fp8_lt_;
      return;
    }
  }
  // 2. Elsewhere (an f32 output, small or odd shapes, GPUs without FP8 tensor cores): both
  //    operands widened to f32 with their scales applied (one f32 rounding each), then the f32
  //    product and the epilogue kernel.
  const Mat XF{scratch<float>(kConvX, size_t(M * K)), cuda::kF32, M, K, K};
  const Mat WF{scratch<float>(kConvW, size_t(N * K)), cuda::kF32, N, K, K};
  cuda::dequantize_rows(XQ, static_cast<const float*>(XS.data), XF, s());
  cuda::dequantize_rows(mat(wq, "linear_fp8"), static_cast<const float*>(WS.data), WF, s());
  ++linear_fp8_widened_;
  product_then_epilogue(XF, WF, B, epilogue, G, Y);
}

// ---- normalisation --------------------------------------------------------------------------

using op_checks::numel;
using op_checks::same_shape;

void CudaBackend::layer_norm(const Tensor& x, float eps, const Tensor& y) {
  same_shape(x, y, "layer_norm");
  const Vec none{nullptr, cuda::kF32, 0};
  cuda::layer_norm(mat(x, "layer_norm"), none, none, eps, mat(y, "layer_norm"), s());
}

void CudaBackend::modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, const Tensor& y) {
  same_shape(x, y, "modulate");
  const Mat X = mat(x, "modulate");
  numel(shift, X.cols, "modulate", "shift");
  numel(scale, X.cols, "modulate", "scale");
  cuda::modulate(X, vec(shift, "modulate"), vec(scale, "modulate"), mat(y, "modulate"), s());
}

void CudaBackend::norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                                const Tensor& y) {
  same_shape(x, y, "norm_modulate");
  const Mat X = mat(x, "norm_modulate");
  numel(shift, X.cols, "norm_modulate", "shift");
  numel(scale, X.cols, "norm_modulate", "scale");
  cuda::layer_norm(X, vec(shift, "norm_modulate"), vec(scale, "norm_modulate"), eps,
                   mat(y, "norm_modulate"), s());
}

void CudaBackend::norm_modulate_fp8(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                                    const Tensor& q, const Tensor& scales) {
  op_checks::quantized_rows(x, q, scales, "norm_modulate_fp8");
  const Mat X = mat(x, "norm_modulate_fp8"), Q = mat(q, "norm_modulate_fp8");
  numel(shift, X.cols, "norm_modulate_fp8", "shift");
  numel(scale, X.cols, "norm_modulate_fp8", "scale");
  check(scales, "norm_modulate_fp8");
  const Vec SH = vec(shift, "norm_modulate_fp8"), SC = vec(scale, "norm_modulate_fp8");
  float* qs = scales.data<float>();
  if (cuda::layer_norm_fp8(X, SH, SC, eps, Q, qs, s())) return;
  // Elsewhere the two ops it stands for, through a scratch row block of x's dtype.
  const Mat Y{scratch<char>(kNormed, size_t(X.rows * X.cols) * dtype_size(x.dtype())), X.dt, X.rows, X.cols, X.cols};
  cuda::layer_norm(X, SH, SC, eps, Y, s());
  cuda::quantize_rows(Y, Q, qs, s());
}

void CudaBackend::rms_norm_heads(const Tensor& x, const Tensor& scale, float eps, const Tensor& y) {
  same_shape(x, y, "rms_norm_heads");
  const Mat X = mat(x, "rms_norm_heads");
  const int64_t D = x.rank() >= 2 ? x.dim(-1) : 0;
  FRESCO_ASSERT(x.rank() >= 2 && D > 0 && X.cols % D == 0, "rms_norm_heads: x " + x.describe());
  numel(scale, D, "rms_norm_heads", "scale");
  const Mat none{nullptr, cuda::kF32, 0, 0, 0};
  cuda::rms_norm_rope(X, X.cols / D, D, true, vec(scale, "rms_norm_heads"), eps, none, none,
                      mat(y, "rms_norm_heads"), s());
}

namespace {
// The rows of a [L, D/2] angle table.
Mat table(const Tensor& t, int64_t L, int64_t P) {
  if (t.rank() == 2 && t.dim(0) == L && t.dim(1) == P) return {t.raw(), int(t.dtype()), L, P, t.row_stride()};
  FRESCO_ASSERT(t.contiguous() && t.numel() == L * P, "rope table " + t.describe());
  return {t.raw(), int(t.dtype()), L, P, P};
}
}  // namespace

void CudaBackend::rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& y) {
  op_checks::rope(x, cos, sin, y, "rope");
  const int64_t L = x.dim(0), H = x.dim(1), D = x.dim(2), P = D / 2;
  check(cos, "rope");
  check(sin, "rope");
  const Vec none{nullptr, cuda::kF32, 0};
  cuda::rms_norm_rope(mat(x, "rope"), H, D, false, none, 0.0f, table(cos, L, P), table(sin, L, P),
                      mat(y, "rope"), s());
}

void CudaBackend::rms_norm_rope(const Tensor& x, const Tensor& scale, float eps, const Tensor& cos,
                                const Tensor& sin, const Tensor& y) {
  op_checks::rms_norm_rope(x, scale, cos, sin, y);
  const int64_t L = x.dim(0), H = x.dim(1), D = x.dim(2), P = D / 2;
  check(cos, "rms_norm_rope");
  check(sin, "rms_norm_rope");
  cuda::rms_norm_rope(mat(x, "rms_norm_rope"), H, D, true, vec(scale, "rms_norm_rope"), eps,
                      table(cos, L, P), table(sin, L, P), mat(y, "rms_norm_rope"), s());
}

// ---- attention ------------------------------------------------------------------------------

float* CudaBackend::lse_rows(const Tensor& lse, int64_t Lq, int64_t H, const char* op) const {
  if (!lse.defined()) return nullptr;
  check(lse, op);
  FRESCO_ASSERT(lse.numel() == Lq * H && lse.dtype() == DType::f32 && lse.contiguous(),
                std::string(op) + ": lse " + lse.describe() + " should be f32 [Lq, H]");
  return lse.data<float>();
}

void CudaBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                            const Tensor& lse) {
  op_checks::attention(q, k, v, o, lse);
  const int64_t Lq = q.dim(0), H = q.dim(1), D = q.dim(2), Lk = k.dim(0);
  float* lse_ptr = lse_rows(lse, Lq, H, "attention");
  const Mat Q = mat(q, "attention"), K = mat(k, "attention"), V = mat(v, "attention"), O = mat(o, "attention");
  if (Lq == 0) return;
  const float scale = 1.0f / std::sqrt(float(D));
  const bool same = Q.dt == K.dt && Q.dt == V.dt && Q.dt == O.dt;
  if (same && use_cudnn_ && Q.dt != cuda::kF32) {
    const cuda::SdpaCall call{Q.data, K.data, V.data, O.data, Q.ld, K.ld, V.ld, O.ld,
                              Lq, Lk, H, D, Q.dt == cuda::kBF16, lse_ptr};
    if (sdpa_.run(call, s())) {
      ++attention_cudnn_;
      return;
    }
  }
  // Head dims the fused kernels do not take (the decoder's 512): cuBLASLt products per query block.
  const bool wide = D > cuda::kAttentionMaxHeadDim;
  auto attend = [&](const Mat& q_, const Mat& k_, const Mat& v_, const Mat& o_) {
    if (wide) wide_.run(gemm_, q_, k_, v_, o_, H, D, scale, lse_ptr, s());
    else cuda::attention(q_, k_, v_, o_, H, D, scale, lse_ptr, s());
  };
  ++(wide ? attention_wide_ : attention_kernel_);
  if (same) {
    attend(Q, K, V, O);
    return;
  }
  // Mixed dtypes: every operand widened to f32 (exact), the f32 kernel, one rounding at the store.
  const Mat QF = widen(Q, kAttQ), KF = widen(K, kAttK), VF = widen(V, kAttV);
  const Mat OF = O.dt == cuda::kF32 ? O : Mat{scratch<float>(kAttO, size_t(Lq * H * D)), cuda::kF32, Lq, H * D, H * D};
  attend(QF, KF, VF, OF);
  if (OF.data != O.data) cuda::convert(OF, O, s());
}

void CudaBackend::attention_fp8(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                                const Tensor& lse) {
  op_checks::attention(q, k, v, o, lse);
  op_checks::attention_fp8(q, k, v, o);
  const int64_t Lq = q.dim(0), H = q.dim(1), D = q.dim(2), Lk = k.dim(0);
  float* lse_ptr = lse_rows(lse, Lq, H, "attention_fp8");
  const Mat Q = mat(q, "attention_fp8"), K = mat(k, "attention_fp8"), V = mat(v, "attention_fp8"),
            O = mat(o, "attention_fp8");
  if (Lq == 0) return;
  if (!sdpa_fp8_.available()) throw ComputeError("attention_fp8: " + sdpa_fp8_.why());
  // Each operand quantized with one scale for the tensor (backend.hpp): the maxima, then the bytes.
  auto* q8 = fp8_attention_[0].reserve_as<uint8_t>(size_t(Lq * H * D), s());
  auto* k8 = fp8_attention_[1].reserve_as<uint8_t>(size_t(Lk * H * D), s());
  auto* v8 = fp8_attention_[2].reserve_as<uint8_t>(size_t(Lk * H * D), s());
  float* scalars = fp8_attention_[3].reserve_as<float>(cuda::kFp8ScalarCount + 3, s());
  auto* amax_bits = reinterpret_cast<unsigned*>(scalars + cuda::kFp8ScalarCount);  // [3]: q, k, v
  cuda::attention_fp8_prologue(scalars, amax_bits, s());
  const Mat* operands[3] = {&Q, &K, &V};
  uint8_t* quantized[3] = {q8, k8, v8};
  for (int i = 0; i < 3; ++i) cuda::tensor_amax(*operands[i], amax_bits + i, s());
  for (int i = 0; i < 3; ++i)
    cuda::quantize_tensor(*operands[i], amax_bits + i, quantized[i], scalars + cuda::kDescaleQ + i, s());
  const cuda::SdpaFp8Call call{q8, k8, v8, O.data, O.ld, Lq, Lk, H, D, O.dt == cuda::kBF16, scalars, lse_ptr};
  if (!sdpa_fp8_.run(call, s()))
    throw ComputeError("attention_fp8 (Lq=" + std::to_string(Lq) + " Lk=" + std::to_string(Lk) + " H=" +
                       std::to_string(H) + " D=" + std::to_string(D) + "): cuDNN's FP8 attention declined it" +
                       (sdpa_fp8_.why().empty() ? std::string() : ": " + sdpa_fp8_.why()));
  ++attention_fp8_;
}

void CudaBackend::attention_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* bias,
                                 bool causal, float scale, const Tensor& o) {
  op_checks::attention_bias(q, k, v, bias, causal, o);
  const int64_t Lq = q.dim(0), H = q.dim(1), D = q.dim(2);
  FRESCO_ASSERT(D <= cuda::kAttentionMaxHeadDim, "attention_bias: head dim " + std::to_string(D) + " above " +
                                                     std::to_string(cuda::kAttentionMaxHeadDim));
  if (bias) check(*bias, "attention_bias");
  const float* B = bias ? bias->data<float>() : nullptr;
  const Mat Q = mat(q, "attention_bias"), K = mat(k, "attention_bias"), V = mat(v, "attention_bias"),
            O = mat(o, "attention_bias");
  if (Lq == 0) return;
  if (Q.dt == K.dt && Q.dt == V.dt && Q.dt == O.dt) {
    cuda::attention_bias(Q, K, V, O, H, D, scale, B, causal, s());
    return;
  }
  // Mixed dtypes: every operand widened to f32 (exact), one rounding at the store (as attention).
  const Mat QF = widen(Q, kAttQ), KF = widen(K, kAttK), VF = widen(V, kAttV);
  const Mat OF = O.dt == cuda::kF32 ? O : Mat{scratch<float>(kAttO, size_t(Lq * H * D)), cuda::kF32, Lq, H * D, H * D};
  cuda::attention_bias(QF, KF, VF, OF, H, D, scale, B, causal, s());
  if (OF.data != O.data) cuda::convert(OF, O, s());
}

void CudaBackend::attention_merge(const Tensor& o_part, const Tensor& lse_part, const Tensor& o,
                                  const Tensor& lse) {
  FRESCO_ASSERT(o.rank() == 3 && o.shape() == o_part.shape() && lse.shape() == lse_part.shape() &&
                    lse.numel() == o.dim(0) * o.dim(1) && lse.dtype() == DType::f32 &&
                    lse_part.dtype() == DType::f32 && lse.contiguous() && lse_part.contiguous(),
                "attention_merge: o " + o.describe() + ", lse " + lse.describe() + ", o_part " +
                    o_part.describe() + ", lse_part " + lse_part.describe());
  check(lse, "attention_merge");
  check(lse_part, "attention_merge");
  cuda::attention_merge(mat(o_part, "attention_merge"), lse_part.data<float>(), mat(o, "attention_merge"),
                        lse.data<float>(), o.dim(1), o.dim(2), s());
}

// ---- element-wise ---------------------------------------------------------------------------

void CudaBackend::gelu_tanh(const Tensor& x, const Tensor& y) {
  same_shape(x, y, "gelu_tanh");
  cuda::gelu_tanh(mat(x, "gelu_tanh"), mat(y, "gelu_tanh"), s());
}

void CudaBackend::silu(const Tensor& x, const Tensor& y) {
  same_shape(x, y, "silu");
  cuda::silu(mat(x, "silu"), mat(y, "silu"), s());
}

void CudaBackend::gated_residual(const Tensor& y, const Tensor& gate, const Tensor& x) {
  same_shape(x, y, "gated_residual");
  const Mat X = mat(x, "gated_residual");
  numel(gate, X.cols, "gated_residual", "gate");
  cuda::gated_residual(mat(y, "gated_residual"), vec(gate, "gated_residual"), X, s());
}

void CudaBackend::add(const Tensor& a, const Tensor& b, const Tensor& y) {
  op_checks::binary(a, b, y, "add");
  cuda::add(mat(a, "add"), mat(b, "add"), mat(y, "add"), s());
}

void CudaBackend::subtract(const Tensor& a, const Tensor& b, const Tensor& y) {
  op_checks::binary(a, b, y, "subtract");
  cuda::subtract(mat(a, "subtract"), mat(b, "subtract"), mat(y, "subtract"), s());
}

void CudaBackend::affine(const Tensor& x, float a, float b, const Tensor& y) {
  same_shape(x, y, "affine");
  cuda::affine(mat(x, "affine"), a, b, mat(y, "affine"), s());
}

void CudaBackend::axpy(const Tensor& alpha, const Tensor& x, const Tensor& y) {
  same_shape(x, y, "axpy");
  numel(alpha, 1, "axpy", "alpha");
  cuda::axpy(vec(alpha, "axpy"), mat(x, "axpy"), mat(y, "axpy"), s());
}

void CudaBackend::timestep_embedding(const Tensor& t, const Tensor& out) {
  numel(t, 1, "timestep_embedding", "t");
  check(out, "timestep_embedding");
  FRESCO_ASSERT(out.numel() % 2 == 0 && out.contiguous(), "timestep_embedding: output " + out.describe());
  cuda::timestep_embedding(vec(t, "timestep_embedding"),
                           {out.raw(), int(out.dtype()), 1, out.numel(), out.numel()}, s());
}

namespace {
void check_packed(const Tensor& latent, const Tensor& tokens, const char* op) {
  FRESCO_ASSERT(latent.rank() == 3 && tokens.rank() == 2,
                std::string(op) + ": expected latent [c, h, w] and tokens [n, 4c]");
  const int64_t c = latent.dim(0), h = latent.dim(1), w = latent.dim(2);
  FRESCO_ASSERT(h % 2 == 0 && w % 2 == 0 && tokens.dim(0) == (h / 2) * (w / 2) && tokens.dim(1) == 4 * c,
                std::string(op) + ": " + latent.describe() + " vs tokens " + tokens.describe());
}
}  // namespace

void CudaBackend::pack_latent(const Tensor& latent, const Tensor& tokens) {
  check_packed(latent, tokens, "pack_latent");
  cuda::pack_latent(mat(latent, "pack_latent"), latent.dim(0), latent.dim(1), latent.dim(2),
                    mat(tokens, "pack_latent"), s());
}

void CudaBackend::unpack_latent(const Tensor& tokens, const Tensor& latent) {
  check_packed(latent, tokens, "unpack_latent");
  cuda::unpack_latent(mat(tokens, "unpack_latent"), latent.dim(0), latent.dim(1), latent.dim(2),
                      mat(latent, "unpack_latent"), s());
}

void CudaBackend::count_nonfinite(const Tensor& x, const Tensor& count) {
  check(count, "count_nonfinite");
  FRESCO_ASSERT(count.dtype() == DType::i64 && count.numel() == 1,
                "count_nonfinite: count " + count.describe() + " should be an i64 [1]");
  const Mat X = mat(x, "count_nonfinite");
  FRESCO_ASSERT(is_float(x.dtype()) || x.dtype() == DType::f64, "count_nonfinite of " + x.describe());
  cuda::count_nonfinite(X, count.data<int64_t>(), s());
}

void CudaBackend::change_sums(const Tensor& a, const Tensor& b, const Tensor& sums) {
  op_checks::change_sums(a, b, sums);
  check(sums, "change_sums");
  // The partials' scratch has one size for every shape: reserved once, never grown.
  double* partial = scratch<double>(kChangePartial, cuda::change_sums_scratch());
  cuda::change_sums(mat(a, "change_sums"), mat(b, "change_sums"), sums.data<double>(), partial, s());
}

// ---- FP8 communication ----------------------------------------------------------------------

void CudaBackend::quantize_rows(const Tensor& x, const Tensor& q, const Tensor& scales) {
  op_checks::quantized_rows(x, q, scales, "quantize_rows");
  check(scales, "quantize_rows");
  FRESCO_ASSERT(is_float(x.dtype()), "quantize_rows of " + x.describe());
  cuda::quantize_rows(mat(x, "quantize_rows"), mat(q, "quantize_rows"), scales.data<float>(), s());
}

void CudaBackend::dequantize_rows(const Tensor& q, const Tensor& scales, const Tensor& y) {
  op_checks::quantized_rows(y, q, scales, "dequantize_rows");
  check(scales, "dequantize_rows");
  FRESCO_ASSERT(is_float(y.dtype()), "dequantize_rows into " + y.describe());
  cuda::dequantize_rows(mat(q, "dequantize_rows"), scales.data<float>(), mat(y, "dequantize_rows"), s());
}

// ---- decoder --------------------------------------------------------------------------------

void CudaBackend::conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int pad_rows,
                         const Tensor& y) {
  FRESCO_ASSERT(x.rank() == 3 && weight.rank() == 4 && y.rank() == 3, "conv2d: ranks");
  const int64_t Ci = x.dim(0), H = x.dim(1), W = x.dim(2), Co = weight.dim(0), k = weight.dim(2);
  const int64_t Ho = H + 2 * pad_rows - (k - 1);
  FRESCO_ASSERT(weight.dim(1) == Ci && weight.dim(3) == k && k % 2 == 1 && k <= cuda::kConvMaxKernel &&
                    bias.numel() == Co && y.dim(0) == Co && y.dim(1) == Ho && y.dim(2) == W,
                "conv2d: x " + x.describe() + ", weight " + weight.describe() + ", y " + y.describe());
  const Mat X = mat(x, "conv2d"), Y = mat(y, "conv2d");
  const Vec Wt = vec(weight, "conv2d"), B = vec(bias, "conv2d");
  // bf16/f16 on tensor cores through cuDNN; f32 (exact f32 arithmetic) and mixed dtypes, or
  // where cuDNN declines, the direct kernel.
  if (use_cudnn_conv_ && conv_.run({X, H, W, Wt, B, Co, k, pad_rows, Y}, s())) {
    ++conv_cudnn_;
    return;
  }
  ++conv_kernel_;
  cuda::conv2d(X, H, W, Wt, Co, k, B, pad_rows, Y, s());
}

void CudaBackend::group_sums(const Tensor& x, int groups, const Tensor& sums) {
  check(sums, "group_sums");
  FRESCO_ASSERT(x.rank() >= 2 && groups > 0 && x.dim(0) % groups == 0,
                "group_sums: " + x.describe() + " in " + std::to_string(groups) + " groups");
  FRESCO_ASSERT(sums.dtype() == DType::f64 && sums.numel() == 2 * groups && sums.contiguous(),
                "group_sums: sums " + sums.describe() + " should be f64 [groups, 2]");
  const Mat X = mat(x, "group_sums");
  const Mat rows{X.data, X.dt, x.dim(0), x.row_numel(), x.contiguous() ? x.row_numel() : x.row_stride()};
  double* partial = scratch<double>(kPartial, cuda::group_sums_scratch(rows.rows, rows.cols, groups));
  cuda::group_sums(rows, groups, sums.data<double>(), partial, s());
}

void CudaBackend::group_norm(const Tensor& x, const Tensor& sums, double count, float eps,
                             const Tensor& weight, const Tensor& bias, const Tensor& y) {
  same_shape(x, y, "group_norm");
  check(sums, "group_norm");
  FRESCO_ASSERT(x.rank() >= 2 && weight.numel() == x.dim(0) && bias.numel() == x.dim(0) &&
                    sums.dtype() == DType::f64 && sums.numel() % 2 == 0 && sums.numel() > 0 &&
                    x.dim(0) % (sums.numel() / 2) == 0,
                "group_norm: x " + x.describe() + ", sums " + sums.describe() + ", weight " + weight.describe());
  auto rows_of = [](const Tensor& t, const Mat& m) {
    return Mat{m.data, m.dt, t.dim(0), t.row_numel(), t.contiguous() ? t.row_numel() : t.row_stride()};
  };
  cuda::group_norm(rows_of(x, mat(x, "group_norm")), sums.data<double>(), int(sums.numel() / 2), count, eps,
                   vec(weight, "group_norm"), vec(bias, "group_norm"), rows_of(y, mat(y, "group_norm")), s());
}

void CudaBackend::upsample_nearest(const Tensor& x, const Tensor& y) {
  FRESCO_ASSERT(x.rank() == 3 && y.rank() == 3, "upsample_nearest: ranks");
  const int64_t C = x.dim(0), H = x.dim(1), W = x.dim(2);
  FRESCO_ASSERT(y.dim(0) == C && y.dim(1) == 2 * H && y.dim(2) == 2 * W, "upsample_nearest: y " + y.describe());
  const Mat X = mat(x, "upsample_nearest"), Y = mat(y, "upsample_nearest");
  cuda::upsample_nearest({X.data, X.dt, C, H * W, x.contiguous() ? H * W : x.row_stride()}, H, W,
                         {Y.data, Y.dt, C, 4 * H * W, y.contiguous() ? 4 * H * W : y.row_stride()}, s());
}

// ---- text encoders --------------------------------------------------------------------------

void CudaBackend::gather_rows(const Tensor& table, const Tensor& ids, const Tensor& y) {
  op_checks::gather_rows(table, ids, y);
  check(ids, "gather_rows");
  cuda::gather_rows(vec(table, "gather_rows"), table.dim(1), ids.data<int64_t>(), mat(y, "gather_rows"), s());
}

void CudaBackend::layer_norm_affine(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                                    const Tensor& y) {
  same_shape(x, y, "layer_norm_affine");
  op_checks::matrix(x, "layer_norm_affine");
  const Mat X = mat(x, "layer_norm_affine");
  numel(weight, X.cols, "layer_norm_affine", "weight");
  numel(bias, X.cols, "layer_norm_affine", "bias");
  cuda::layer_norm_affine(X, vec(weight, "layer_norm_affine"), vec(bias, "layer_norm_affine"), eps,
                          mat(y, "layer_norm_affine"), s());
}

void CudaBackend::multiply(const Tensor& a, const Tensor& b, const Tensor& y) {
  op_checks::binary(a, b, y, "multiply");
  cuda::multiply(mat(a, "multiply"), mat(b, "multiply"), mat(y, "multiply"), s());
}

void CudaBackend::quick_gelu(const Tensor& x, const Tensor& y) {
  same_shape(x, y, "quick_gelu");
  cuda::quick_gelu(mat(x, "quick_gelu"), mat(y, "quick_gelu"), s());
}

void CudaBackend::gelu_erf(const Tensor& x, const Tensor& y) {
  same_shape(x, y, "gelu_erf");
  cuda::gelu_erf(mat(x, "gelu_erf"), mat(y, "gelu_erf"), s());
}

void CudaBackend::transpose(const Tensor& x, const Tensor& y) {
  // x: [A, B] (leading dims of a dense x flattened into A) -> y: [B, A]
  check(x, "transpose");
  check(y, "transpose");
  FRESCO_ASSERT(x.rank() >= 1 && y.rank() >= 1, "transpose: ranks");
  const int64_t B = x.dim(-1), A = B ? x.numel() / B : 0;
  FRESCO_ASSERT(y.numel() == x.numel() && y.dim(0) == B, "transpose: y " + y.describe() + " for x " + x.describe());
  FRESCO_ASSERT(x.rank() == 2 || x.contiguous(), "transpose: strided x of rank " + std::to_string(x.rank()));
  FRESCO_ASSERT(y.rank() == 2 || y.contiguous(), "transpose: strided y of rank " + std::to_string(y.rank()));
  const Mat X{x.raw(), int(x.dtype()), A, B, x.rank() == 2 && !x.contiguous() ? x.row_stride() : B};
  const Mat Y{y.raw(), int(y.dtype()), B, A, y.rank() == 2 && !y.contiguous() ? y.row_stride() : A};
  cuda::transpose(X, Y, s());
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device) { return std::make_unique<CudaBackend>(device); }

}  // namespace fresco
