#include "cuda/conv_cudnn.hpp"

#include <algorithm>
#include <array>
#include <climits>
#include <functional>
#include <utility>
#include <vector>

#include "cuda/cuda_check.hpp"
#include "src/core/tuning.hpp"

namespace fresco::cuda {
namespace {

// A move-only owner of one cuDNN descriptor of the convolution API.
template <typename D, cudnnStatus_t (*Create)(D*), cudnnStatus_t (*Destroy)(D)>
class Descriptor {
 public:
  Descriptor() { FRESCO_CUDNN_CHECK(Create(&d_)); }
  ~Descriptor() {
    if (d_) Destroy(d_);
  }
  Descriptor(Descriptor&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  Descriptor& operator=(Descriptor&& o) noexcept {
    if (this != &o) {
      if (d_) Destroy(d_);
      d_ = std::exchange(o.d_, nullptr);
    }
    return *this;
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  D get() const { return d_; }

 private:
  D d_ = nullptr;
};

using TensorDesc = Descriptor<cudnnTensorDescriptor_t, &cudnnCreateTensorDescriptor, &cudnnDestroyTensorDescriptor>;
using FilterDesc = Descriptor<cudnnFilterDescriptor_t, &cudnnCreateFilterDescriptor, &cudnnDestroyFilterDescriptor>;
using ConvDesc =
    Descriptor<cudnnConvolutionDescriptor_t, &cudnnCreateConvolutionDescriptor, &cudnnDestroyConvolutionDescriptor>;

cudnnDataType_t cudnn_type(int dt) { return dt == kBF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF; }

// The largest element offset cuDNN's convolutions address (32-bit); FRESCO_CUDNN_CONV_SPAN
// lowers it (to exercise the channel chunks on small images).
int64_t max_span() {
  static const int64_t span = [] {
    const double n = tuning::number(tuning::Switch::cudnn_conv_span);  // 0: unset
    return n >= 1 && n < double(INT_MAX) ? int64_t(n) : int64_t(INT_MAX);
  }();
  return span;
}

// Channels per chunk: the most (halving from all of them) whose rows span at most max_span().
int64_t channel_chunk(int64_t channels, int64_t ld, int64_t row) {
  int64_t c = channels;
  while (c > 1 && (c - 1) * ld + row > max_span()) c = (c + 1) / 2;
  return c;
}

const char* algo_name(cudnnConvolutionFwdAlgo_t a) {
  switch (a) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM: return "implicit_gemm";
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM: return "implicit_precomp_gemm";
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM: return "gemm";
    case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT: return "direct";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT: return "fft";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING: return "fft_tiling";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD: return "winograd";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED: return "winograd_nonfused";
    default: return "?";
  }
}

}  // namespace

struct CudnnConv::Plan {
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  struct Candidate {
    cudnnConvolutionFwdAlgo_t algo;
    size_t workspace;
  };
  std::vector<Candidate> candidates;  // usable algorithms, best first
  size_t chosen = 0;                  // index into candidates; == size(): declined
  bool executed = false;
  bool ok() const { return chosen < candidates.size(); }
};

size_t CudnnConv::KeyHash::operator()(const Key& k) const {
  size_t h = 1469598103934665603ull;
  for (int64_t v : {k.Ci, k.H, k.W, k.Co, k.k, k.pad_rows, k.ld_x, k.ld_y, int64_t(k.dt)})
    h = (h ^ std::hash<int64_t>{}(v)) * 1099511628211ull;
  return h;
}

size_t CudnnConv::workspace_limit() {
  // FRESCO_CUDNN_CONV_WORKSPACE_MB (fractions allowed: a tiny limit makes small convolutions
  // run in bands, which the op test uses to check them).
  static const size_t limit = size_t(tuning::number(tuning::Switch::cudnn_conv_workspace_mb) * double(1 << 20));
  return limit;
}

CudnnConv::CudnnConv() {
  find_ = tuning::flag(tuning::Switch::cudnn_conv_find);
  graph_replay_ = tuning::flag(tuning::Switch::cudnn_graph);
  try {
    handle_ = std::make_unique<CudnnHandle>();
  } catch (const Error& e) {
    why_ = e.what();
    handle_.reset();
  }
}

CudnnConv::~CudnnConv() = default;

size_t CudnnConv::declined() const {
  size_t n = 0;
  for (const auto& [key, plan] : plans_) n += plan->ok() ? 0 : 1;
  return n;
}

bool CudnnConv::eligible(const ConvCall& c) {
  const int64_t Ho = c.H + 2 * int64_t(c.pad_rows) - (c.k - 1);
  const bool half = c.x.dt == kBF16 || c.x.dt == kF16;
  return half && c.weight.dt == c.x.dt && c.y.dt == c.x.dt && c.k % 2 == 1 && c.pad_rows >= 0 && Ho > 0 &&
         c.W > 0 && c.x.rows > 0 && c.Co >= 8 && c.Co <= 65535 && c.H * c.W <= max_span() &&
         Ho * c.W <= max_span() && c.x.cols == c.H * c.W && c.y.cols == Ho * c.W && c.y.rows == c.Co &&
         c.bias.n == c.Co;
}

void CudnnConv::build(Plan& p, const Key& key, const void* x, const void* w, void* y, cudaStream_t stream) {
  const cudnnDataType_t t = cudnn_type(key.dt);
  const int64_t Ho = key.H + 2 * key.pad_rows - (key.k - 1);
  const int64_t span_x = (key.Ci - 1) * key.ld_x + key.H * key.W, span_y = (key.Co - 1) * key.ld_y + Ho * key.W;
  // N = 1: the batch stride is the whole span (no overlap), whatever the channel stride is.
  FRESCO_CUDNN_CHECK(cudnnSetTensor4dDescriptorEx(p.x.get(), t, 1, int(key.Ci), int(key.H), int(key.W),
                                                  int(span_x), int(key.ld_x), int(key.W), 1));
  FRESCO_CUDNN_CHECK(cudnnSetTensor4dDescriptorEx(p.y.get(), t, 1, int(key.Co), int(Ho), int(key.W), int(span_y),
                                                  int(key.ld_y), int(key.W), 1));
  FRESCO_CUDNN_CHECK(
      cudnnSetFilter4dDescriptor(p.w.get(), t, CUDNN_TENSOR_NCHW, int(key.Co), int(key.Ci), int(key.k), int(key.k)));
  FRESCO_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p.conv.get(), int(key.pad_rows), int(key.k / 2), 1, 1, 1, 1,
                                                     CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  FRESCO_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv.get(), CUDNN_TENSOR_OP_MATH));

  std::array<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT> perf{};
  int got = 0;
  if (find_) {
    // Times every algorithm on the real operands (y is overwritten: the bias is filled after).
    void* ws = workspace_.reserve(workspace_limit(), stream);
    FRESCO_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(handle_->get(), p.x.get(), x, p.w.get(), w,
                                                              p.conv.get(), p.y.get(), y, int(perf.size()), &got,
                                                              perf.data(), ws, workspace_limit()));
  } else {
    FRESCO_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle_->get(), p.x.get(), p.w.get(), p.conv.get(),
                                                              p.y.get(), int(perf.size()), &got, perf.data()));
  }
  for (int i = 0; i < got; ++i) {
    if (perf[size_t(i)].status != CUDNN_STATUS_SUCCESS) continue;
    size_t ws = perf[size_t(i)].memory;
    // The heuristic's memory field is an estimate: ask for the algorithm's exact need.
    if (cudnnGetConvolutionForwardWorkspaceSize(handle_->get(), p.x.get(), p.w.get(), p.conv.get(), p.y.get(),
                                                perf[size_t(i)].algo, &ws) != CUDNN_STATUS_SUCCESS)
      continue;
    if (ws <= workspace_limit()) p.candidates.push_back({perf[size_t(i)].algo, ws});
  }
  if (p.candidates.empty())
    why_ = "conv Ci=" + std::to_string(key.Ci) + " Co=" + std::to_string(key.Co) + " " + std::to_string(key.H) +
           "x" + std::to_string(key.W) + " k=" + std::to_string(key.k) + ": no algorithm within the workspace limit";
}

CudnnConv::Plan& CudnnConv::plan_for(const Key& key, const void* x, const void* w, void* y, cudaStream_t stream) {
  auto it = plans_.find(key);
  if (it == plans_.end()) {
    auto plan = std::make_unique<Plan>();
    try {
      build(*plan, key, x, w, y, stream);
    } catch (const Error& e) {  // cuDNN refuses the descriptors: remember it, fall back
      plan->candidates.clear();
      why_ = e.what();
    }
    it = plans_.emplace(key, std::move(plan)).first;
  }
  return *it->second;
}

size_t CudnnConv::CallKeyHash::operator()(const CallKey& k) const {
  size_t h = KeyHash{}(k.shape);
  for (const void* p : {k.x, k.w, k.b, static_cast<const void*>(k.y)})
    h = (h ^ std::hash<const void*>{}(p)) * 1099511628211ull;
  return (h ^ size_t(k.bias_dt)) * 1099511628211ull;
}

CudnnConv::Schedule& CudnnConv::schedule_for(const ConvCall& c, const Key& shape, cudaStream_t stream) {
  auto found = schedules_.find(shape);
  if (found != schedules_.end()) return found->second;
  Schedule& s = schedules_[shape];
  const int64_t Ci = c.x.rows, Co = c.Co, H = c.H, W = c.W, k = c.k, p = c.pad_rows;
  const int64_t Ho = H + 2 * p - (k - 1), es = int64_t(dt_size(c.x.dt));
  const int64_t cci = channel_chunk(Ci, c.x.ld, H * W), cco = channel_chunk(Co, c.y.ld, Ho * W);
  // Bands of output rows whose input and output (the fast algorithm's workspace, with a margin
  // for its own tables) fit under the limit: about (nci (R + k - 1) + nco R) W elements.
  const auto band_rows = [&](int64_t nci, int64_t nco) {
    const int64_t budget = int64_t(double(workspace_limit()) * 0.85) / (W * es) - nci * (k - 1);
    return std::max<int64_t>(budget / (nci + nco), 1);
  };
  auto add = [&](int64_t ci0, int64_t nci, int64_t co0, int64_t nco, int64_t in0, int64_t in_rows, int pad,
                 int64_t out0, int64_t out_rows) {
    const Key key{nci, in_rows, W, nco, k, pad, c.x.ld, c.y.ld, c.x.dt};
    const void* x = static_cast<const char*>(c.x.data) + size_t((ci0 * c.x.ld + in0 * W) * es);
    void* y = static_cast<char*>(c.y.data) + size_t((co0 * c.y.ld + out0 * W) * es);
    Plan& plan = plan_for(key, x, c.weight.data, y, stream);
    if (!plan.ok()) return false;
    FRESCO_ASSERT(in_rows + 2 * pad - (k - 1) == out_rows, "conv bands: rows do not add up");
    s.steps.push_back({&plan, ci0, nci, co0, nco, in0, out0, out_rows});
    if (nci != Ci) s.slice = std::max(s.slice, size_t(nco * nci * k * k * es));
    return true;
  };
  // Bands of output rows: {first input row, input rows, cuDNN's pad, first row written, rows}.
  struct Band {
    int64_t in0, in_rows;
    int pad;
    int64_t out0, out_rows;
  };
  std::vector<Band> bands;
  int64_t R = band_rows(cci, std::min(cco, Co));
  if (R >= Ho || p > k / 2 || Ho < 3 * (2 * p + 1)) {  // one band (also for unusual padding)
    bands.push_back({0, H, int(p), 0, Ho});
  } else {
    R = std::max(R, 2 * p + 1);
    int64_t n = (Ho + R - 1) / R;
    if (p > 0) n = std::max<int64_t>(n, 3);  // an interior band absorbs the border bands' extra rows
    R = (Ho + n - 1) / n;
    n = (Ho + R - 1) / R;
    if (p == 0) {  // every band exact: its rows plus k - 1 input rows
      for (int64_t o0 = 0; o0 < Ho; o0 += R) {
        const int64_t rows = std::min(R, Ho - o0);
        bands.push_back({o0, rows + k - 1, 0, o0, rows});
      }
    } else {
      // Top band [0, R): cuDNN's pad p on input rows [0, R - p + k - 1) writes rows [0, R + p),
      // the last p wrong. Bottom band [b, Ho): pad p on input rows [b - p, H) writes rows
      // [b - p, Ho), the first p wrong. Interior bands, computed after both, are exact and
      // rewrite those rows (bias first).
      const int64_t b = (n - 1) * R;
      bands.push_back({0, R - p + k - 1, int(p), 0, R + p});
      bands.push_back({b - p, H - (b - p), int(p), b - p, Ho - b + p});
      for (int64_t o0 = R; o0 < b; o0 += R) {
        const int64_t rows = std::min(R, b - o0);
        bands.push_back({o0 - p, rows + k - 1, 0, o0, rows});
      }
    }
  }
  // Input-channel chunks innermost: a band's first chunk writes its bias, the others accumulate,
  // before the next band (whose first chunk rewrites the rows the border bands got wrong).
  for (int64_t co0 = 0; co0 < Co; co0 += cco)
    for (const Band& band : bands)
      for (int64_t ci0 = 0; ci0 < Ci; ci0 += cci)
        if (!add(ci0, std::min(cci, Ci - ci0), co0, std::min(cco, Co - co0), band.in0, band.in_rows, band.pad,
                 band.out0, band.out_rows))
          return s;
  s.ok = true;
  return s;
}

bool CudnnConv::enqueue(const ConvCall& c, const Schedule& s, bool eager, cudaStream_t stream) {
  const int64_t Ci = c.x.rows, W = c.W, kk = c.k * c.k;
  const size_t es = dt_size(c.x.dt), bs = dt_size(c.bias.dt);
  const float one = 1.0f;
  const char* w = static_cast<const char*>(c.weight.data);
  for (const Step& st : s.steps) {
    Plan& p = *st.plan;
    const Vec bias{static_cast<const char*>(c.bias.data) + size_t(st.co0) * bs, c.bias.dt, st.nco};
    char* y = static_cast<char*>(c.y.data) + size_t(st.co0 * c.y.ld + st.out_row0 * W) * es;
    if (st.ci0 == 0) fill_rows(bias, {y, c.y.dt, st.nco, st.out_rows * W, c.y.ld}, stream);
    const void* wp = w + size_t(st.co0 * Ci) * kk * es;
    if (st.nci != Ci) {  // the filter's [nco, nci, k, k] block, made dense
      void* slice = weight_slice_.get();
      FRESCO_CUDA_CHECK(cudaMemcpy2DAsync(slice, size_t(st.nci * kk) * es, w + size_t(st.co0 * Ci + st.ci0) * kk * es,
                                          size_t(Ci * kk) * es, size_t(st.nci * kk) * es, size_t(st.nco),
                                          cudaMemcpyDeviceToDevice, stream));
      wp = slice;
    }
    const void* xp = static_cast<const char*>(c.x.data) + size_t(st.ci0 * c.x.ld + st.in_row0 * W) * es;
    while (true) {
      const Plan::Candidate& a = p.candidates[p.chosen];
      const cudnnStatus_t rc =
          cudnnConvolutionForward(handle_->get(), &one, p.x.get(), xp, p.w.get(), wp, p.conv.get(), a.algo,
                                  a.workspace ? workspace_.get() : nullptr, a.workspace, &one, p.y.get(), y);
      if (rc == CUDNN_STATUS_SUCCESS) break;
      // A refusal at launch enqueues nothing; an algorithm that has run before failing now is
      // a real error.
      if (!eager || p.executed) FRESCO_CUDNN_CHECK(rc);
      why_ = std::string("conv algorithm ") + algo_name(a.algo) + " refused: " + cudnnGetErrorString(rc);
      if (++p.chosen == p.candidates.size()) return false;
      if (p.candidates[p.chosen].workspace > workspace_.size()) return false;  // reserved at the next call
    }
    p.executed = true;
  }
  return true;
}

bool CudnnConv::run(const ConvCall& c, cudaStream_t stream) {
  if (!available() || !eligible(c)) return false;
  if (stream != stream_) {
    FRESCO_CUDNN_CHECK(cudnnSetStream(handle_->get(), stream));
    stream_ = stream;
  }
  const Key shape{c.x.rows, c.H, c.W, c.Co, c.k, c.pad_rows, c.x.ld, c.y.ld, c.x.dt};
  Schedule& s = schedule_for(c, shape, stream);  // every band planned before anything is enqueued
  if (!s.ok) return false;
  size_t workspace = 0;  // the algorithms chosen now (a refused one moves a plan to its next)
  for (const Step& st : s.steps) workspace = std::max(workspace, st.plan->candidates[st.plan->chosen].workspace);
  if (workspace) workspace_.reserve(workspace, stream);
  if (s.slice) weight_slice_.reserve(s.slice, stream);
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  FRESCO_CUDA_CHECK(cudaStreamIsCapturing(stream, &capturing));
  const bool replay = graph_replay_ && capturing == cudaStreamCaptureStatusNone;
  if (replay && (workspace_.get() != graph_workspace_ || weight_slice_.get() != graph_slice_)) {
    graphs_.clear();  // the scratch moved: the captured graphs point into the old blocks
    graph_workspace_ = workspace_.get();
    graph_slice_ = weight_slice_.get();
  }
  const CallKey call{shape, c.x.data, c.weight.data, c.bias.data, c.y.data, c.bias.dt};
  if (replay) {
    const auto g = graphs_.find(call);
    if (g != graphs_.end()) {
      g->second.launch(stream);
      return true;
    }
  }
  if (!enqueue(c, s, true, stream)) return false;
  if (replay) {  // recorded for the next call with these pointers (capturing runs nothing)
    try {
      if (graphs_.size() >= kMaxGraphs) graphs_.clear();
      graphs_.emplace(call, CudaGraphExec::capture(stream, [&](cudaStream_t st) { enqueue(c, s, false, st); }));
    } catch (const Error& e) {  // cuDNN did something capture forbids: execute directly from now on
      graph_replay_ = false;
      graph_note_ = e.what();
      graphs_.clear();
    }
  }
  return true;
}

std::string CudnnConv::describe() const {
  std::string s;
  for (const auto& [k, p] : plans_) {
    s += (s.empty() ? "" : "; ") + std::to_string(k.Ci) + "->" + std::to_string(k.Co) + " " + std::to_string(k.H) +
         "x" + std::to_string(k.W) + " k" + std::to_string(k.k) + ": ";
    s += p->ok() ? std::string(algo_name(p->candidates[p->chosen].algo)) + " (ws " +
                       std::to_string(p->candidates[p->chosen].workspace >> 10) + " KiB)"
                 : std::string("declined");
  }
  return s;
}

}  // namespace fresco::cuda
