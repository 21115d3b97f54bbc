// The op test program (after ggml's test-backend-ops): every op of every available backend, on
// several shapes (odd and empty ones included), in f32 and in bf16, in place and on strided
// views, against straightforward double-precision references written here from the spec.
//
// For each case it also checks that
//  - the output is finite and nothing around it was written (outputs live inside a larger
//    buffer filled with a NaN byte pattern: guard rows, and guard columns for strided outputs;
//    strided inputs are column views whose other columns hold NaN, so reading them shows);
//  - the op created no Storage and, when the op can be repeated, that a second identical call
//    allocates no heap memory (a denoising step allocates nothing);
//  - fused ops agree with their decomposition into primitive ops on the CPU backend.
// Large shapes (FLUX-sized attention and GEMMs) use the CPU backend in f32 as the reference
// instead of the O(n^3) double loops ("CPU-backend reference").
//
// A backend that declines a case skips it, unless the op is required of it: the CPU backend
// (the specification) must run every case; other backends must run the ops of a FLUX
// denoising step (kFluxStepOps) in f32 and bf16. Prints one line per case; exit status 1 if
// any case fails. Run with --help for the filters.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <new>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "src/backend/backend.hpp"
#include "src/core/error.hpp"
#include "src/core/float16.hpp"
#include "src/core/float8.hpp"

// ---- heap allocations, counted so that a repeated op call can be checked to allocate nothing --

namespace {
std::atomic<uint64_t> heap_allocations{0};
}  // namespace

// The replacements pair malloc with free; GCC, which knows new and delete as builtins, would
// warn about free() on memory from operator new once they are inlined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  heap_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

using namespace fresco;

namespace {

using Vec = std::vector<double>;

// ---- tolerances (max NMSE, normalised mean squared error as ggml's op tests measure it) -------
//
// Inputs are rounded to the case's dtype before the backend and the reference see them, so the
// reference measures only the op's own error.
//  kF32   f32 against the double reference: the f32 arithmetic of these ops stays below 1e-13
//         (K = 256 dot products, softmax over 300 keys, 3x3x32 convolutions).
//  kBf16  an output rounded once to bf16. bf16 keeps 8 significant bits, so one rounding has a
//         relative error of at most 2^-8 and an NMSE of at most 2^-16 = 1.5e-5 whatever the
//         data (about 2.7e-6 on average, which is what the CPU backend measures); the margin
//         covers the f32 arithmetic before the store and a backend whose accumulation order
//         differs. Tiny cases (2 to 8 elements) come close to the worst case, hence a bound
//         above it rather than near the average.
//  kF16   the same for f16 (11 significant bits): at most 2^-22 = 2.4e-7.
//  kTwoRoundings  bf16 results that went through two stores: the decomposition of a fused op,
//         which rounds its intermediate, against the fused op; partial attentions stored in
//         bf16 and merged. At most (2 * 2^-8)^2 = 6.1e-5 plus what the second op amplifies.
//  attention in bf16 follows flash-attention's rule: at most twice the NMSE of a naive bf16
//         implementation (rounding S, P and O; about 2e-5 here) against the same double
//         reference, and never less than kBf16. Large shapes have no naive double reference:
//         kBf16Attention is twice the naive NMSE measured at the small shapes.
//  kSums  sums in f64 of n terms the reference forms exactly as the op does (change_sums: the
//         f32 differences and |b|): only the order of the additions differs. Each sum of terms
//         of one sign is within n 2^-53 (relative) of the exact one, so the two differ by at most
//         2n 2^-53: 1e-9 at the 4.7 M terms of the largest case, an NMSE of 1.1e-18. One term
//         more or less (2e-7 there, an NMSE of 4e-14) shows.
//  kExact conversions, copies, data movement and counts: bit exact.
constexpr double kF32 = 1e-10, kBf16 = 2e-5, kF16 = 5e-7, kTwoRoundings = 1e-4,
                 kBf16Attention = 5e-5, kSums = 1e-17, kExact = 0;

double rounded_once(DType out) {
  switch (out) {
    case DType::bf16: return kBf16;
    case DType::f16: return kF16;
    default: return kF32;
  }
}
double two_roundings(DType out) { return out == DType::f32 ? kF32 : kTwoRoundings; }

// ---- the ops every backend must run: a FLUX denoising step --------------------------------------

// The forward pass, the sequence-parallel merge, the Euler step, the non-finite check and the
// step cache (docs/step-cache.md: the residual and the change metric).
constexpr Op kFluxStepOps[] = {
    Op::linear,  Op::norm_modulate, Op::rms_norm_rope, Op::attention,
    Op::attention_merge, Op::gelu_tanh, Op::silu, Op::gated_residual,
    Op::add,     Op::axpy,          Op::timestep_embedding, Op::copy,
    Op::count_nonfinite, Op::subtract, Op::change_sums};

// The text encoders' own ops (docs/text-encoders.md; they use linear, rms_norm_heads, add,
// transpose and copy too).
constexpr Op kTextEncoderOps[] = {Op::gather_rows, Op::layer_norm_affine, Op::multiply, Op::quick_gelu,
                                  Op::attention_bias};

// The SDXL U-Net's own op (docs/sdxl.md; the rest it shares with the decoder and the encoders).
constexpr Op kUnetOps[] = {Op::gelu_erf};

// Whether `backend` must run a case rather than decline it.
bool required(const Backend& backend, const OpDesc& d) {
  if (backend.name() == "cpu") return true;  // the specification runs everything
  const auto listed = [&d](const auto& ops) { return std::find(std::begin(ops), std::end(ops), d.op) != std::end(ops); };
  if (!listed(kFluxStepOps) && !listed(kTextEncoderOps) && !listed(kUnetOps)) return false;
  return d.in != DType::f16 && d.out != DType::f16 && d.weight != DType::f16;
}

// ---- results --------------------------------------------------------------------------------

double nmse(const Vec& a, const Vec& b) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err += (a[i] - b[i]) * (a[i] - b[i]);
    ref += b[i] * b[i];
  }
  return ref > 0 ? err / ref : err;
}

struct Check {
  std::string what;
  Vec got, expected;
  double max_nmse;
};

// What one run of a case found.
struct Outcome {
  std::vector<Check> checks;
  std::vector<std::string> problems;  // guards overwritten, allocations, exceptions
};

// A double vector of a host tensor's values.
Vec as_vec(const Tensor& host) {
  const int64_t n = host.numel();
  Vec v(static_cast<size_t>(n));
  if (host.dtype() == DType::f64) {
    const Tensor c = host.clone();
    for (int64_t i = 0; i < n; ++i) v[size_t(i)] = c.data<double>()[i];
  } else if (host.dtype() == DType::i64) {
    const Tensor c = host.clone();
    for (int64_t i = 0; i < n; ++i) v[size_t(i)] = double(c.data<int64_t>()[i]);
  } else {
    const Tensor f = host.to_f32();
    for (int64_t i = 0; i < n; ++i) v[size_t(i)] = f.f32()[i];
  }
  return v;
}

Backend& cpu_reference() {
  static const std::unique_ptr<Backend> cpu = make_cpu_backend();
  return *cpu;
}

constexpr unsigned char kGuardByte = 0xff;  // NaN in every float dtype

// An output inside a larger device buffer whose other elements hold the guard pattern: a row
// of guards above and below, and for strided outputs guard columns either side.
struct Guarded {
  Tensor whole, view;
  int64_t whole_rows, whole_width;     // whole as a matrix (a vector is one row)
  int64_t row0, rows, col0, width;     // the window the op may write
};

// The state of one case on one backend.
class Ctx {
 public:
  Ctx(Backend& backend, DType act, uint64_t seed) : be(backend), act(act), rng(uint32_t(seed)) {}

  Backend& be;
  const DType act;  // the activation dtype of the case
  std::mt19937 rng;
  Outcome outcome;

  // Random host values (f32) of mean 0 and standard deviation `scale`, exactly representable in
  // `dtype`: normal, or for large tensors uniform (a normal deviate per element of a FLUX-sized
  // weight would take most of the program's time).
  Tensor values(const Shape& s, double scale, DType dtype) {
    Tensor t(s);
    float* p = t.f32();
    const int64_t n = t.numel();
    if (n <= (int64_t(1) << 16)) {
      std::normal_distribution<float> normal(0.0f, float(scale));
      for (int64_t i = 0; i < n; ++i) p[i] = normal(rng);
    } else {
      uint64_t state = rng() | (uint64_t(rng()) << 32) | 1;
      const double half_width = std::sqrt(3.0) * scale;
      for (int64_t i = 0; i < n; ++i) {  // xorshift64*
        state ^= state >> 12, state ^= state << 25, state ^= state >> 27;
        const double u = double((state * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53;  // [0, 1)
        p[i] = float((2 * u - 1) * half_width);
      }
    }
    return dtype == DType::f32 ? t : t.to_dtype(dtype).to_f32();
  }
  Tensor values(const Shape& s, double scale = 1.0) { return values(s, scale, act); }

  // Uploads a host tensor, keeping it alive until the case ends (uploads are asynchronous).
  Tensor upload(Backend& b, const Tensor& host) {
    keep_.push_back(host);
    return b.upload(host);
  }
  // A contiguous device tensor of `dtype` holding f32 host values.
  Tensor input(const Tensor& v, DType dtype) { return upload(be, v.to_dtype(dtype)); }
  Tensor input(const Tensor& v) { return input(v, act); }
  Tensor cpu_input(const Tensor& v, DType dtype) { return upload(cpu_reference(), v.to_dtype(dtype)); }

  // Column views of one wide device matrix [R, total] of `dtype`: part i holds parts[i] (f32 host
  // values with R rows) from column col0[i]; every other column holds NaN.
  std::vector<Tensor> wide_views(const std::vector<Tensor>& parts, const std::vector<int64_t>& col0,
                                 int64_t total, DType dtype) {
    const int64_t R = parts.at(0).dim(0);
    Tensor wide({R, total});
    std::fill_n(wide.f32(), wide.numel(), std::numeric_limits<float>::quiet_NaN());
    for (size_t i = 0; i < parts.size(); ++i) {
      const int64_t w = parts[i].row_numel();
      for (int64_t r = 0; r < R; ++r)
        std::memcpy(wide.f32() + r * total + col0[i], parts[i].f32() + r * w, size_t(w) * sizeof(float));
    }
    const Tensor dev = input(wide, dtype);
    std::vector<Tensor> views;
    for (size_t i = 0; i < parts.size(); ++i)
      views.push_back(dev.cols(col0[i], parts[i].row_numel()).reshape(parts[i].shape()));
    return views;
  }
  // f32 host values [R, ...] as a strided device view (3 NaN columns before, 4 after).
  Tensor strided_input(const Tensor& v, DType dtype) {
    return wide_views({v}, {3}, v.row_numel() + 7, dtype)[0];
  }
  Tensor strided_input(const Tensor& v) { return strided_input(v, act); }

  // A device output of shape s and `dtype` surrounded by guards; `extra` columns of which `col0`
  // before the window make it strided; `init` (f32 host values) fills the window.
  Guarded output(const Shape& s, DType dtype, int64_t col0 = 0, int64_t extra = 0,
                 const Tensor* init = nullptr) {
    Guarded g;
    constexpr int64_t kVectorGuard = 5;
    if (s.size() <= 1) {
      FRESCO_ASSERT(extra == 0, "a vector output cannot be strided");
      g.width = shape_numel(s);
      g.whole_rows = 1;
      g.whole_width = g.width + 2 * kVectorGuard;
      g.row0 = 0;
      g.rows = 1;
      g.col0 = kVectorGuard;
    } else {
      g.rows = s[0];
      g.width = shape_numel(Shape(s.begin() + 1, s.end()));
      g.whole_rows = g.rows + 2;
      g.whole_width = g.width + extra;
      g.row0 = 1;
      g.col0 = col0;
    }
    const size_t es = dtype_size(dtype);
    const Shape whole_shape = s.size() <= 1 ? Shape{g.whole_width} : Shape{g.whole_rows, g.whole_width};
    Tensor host(whole_shape, dtype);
    std::memset(host.raw(), kGuardByte, host.bytes());
    if (init) {
      const Tensor v = init->to_dtype(dtype);
      for (int64_t r = 0; r < g.rows; ++r)
        std::memcpy(static_cast<char*>(host.raw()) + size_t((g.row0 + r) * g.whole_width + g.col0) * es,
                    static_cast<const char*>(v.raw()) + size_t(r * g.width) * es, size_t(g.width) * es);
    }
    g.whole = upload(be, host);
    g.view = s.size() <= 1 ? g.whole.rows(g.col0, g.width).reshape(s)
                           : g.whole.rows(1, g.rows).cols(col0, g.width).reshape(s);
    return g;
  }
  Guarded output(const Shape& s) { return output(s, act); }
  Guarded strided_output(const Shape& s, DType dtype) { return output(s, dtype, 2, 5); }
  Guarded strided_output(const Shape& s) { return strided_output(s, act); }

  // The values of a guarded output, after checking that nothing outside its window changed.
  Vec result(const Guarded& g) {
    const Tensor after = be.download(g.whole);
    const size_t es = dtype_size(after.dtype());
    const auto* bytes = static_cast<const unsigned char*>(after.raw());
    int64_t touched = 0;
    for (int64_t r = 0; r < g.whole_rows; ++r)
      for (int64_t c = 0; c < g.whole_width; ++c) {
        const bool inside = r >= g.row0 && r < g.row0 + g.rows && c >= g.col0 && c < g.col0 + g.width;
        if (inside) continue;
        const unsigned char* e = bytes + size_t(r * g.whole_width + c) * es;
        if (std::any_of(e, e + es, [](unsigned char b) { return b != kGuardByte; })) ++touched;
      }
    if (touched) outcome.problems.push_back(std::to_string(touched) + " guard elements overwritten");
    return as_vec(be.download(g.view));
  }
  Vec result(const Tensor& t) { return as_vec(be.download(t)); }
  Vec cpu_result(const Tensor& t) { return as_vec(cpu_reference().download(t)); }

  // Runs a backend op: it must create no Storage, and when `repeatable` (the op's inputs are
  // not its outputs), a second identical call must not allocate heap memory.
  void op(const std::function<void()>& run, bool repeatable) {
    const uint64_t storages = Storage::created();
    run();
    if (Storage::created() != storages) outcome.problems.push_back("the op created a Storage");
    if (repeatable) {
      const uint64_t before = heap_allocations.load();
      run();
      const uint64_t n = heap_allocations.load() - before;
      if (n) outcome.problems.push_back("a repeated call made " + std::to_string(n) + " heap allocations");
    }
  }

  void check(std::string what, Vec got, Vec expected, double max_nmse) {
    outcome.checks.push_back({std::move(what), std::move(got), std::move(expected), max_nmse});
  }

 private:
  std::vector<Tensor> keep_;
};

// ---- the cases ---------------------------------------------------------------------------------

enum class Layout { plain, in_place, strided };
const char* layout_name(Layout l) {
  switch (l) {
    case Layout::plain: return "";
    case Layout::in_place: return "in-place";
    case Layout::strided: return "strided";
  }
  return "?";
}

struct Case {
  Op op;
  std::string params;
  DType dtype;         // activations
  std::string layout;  // "", "in-place", "strided", ...
  OpDesc desc;
  std::function<void(Ctx&)> run;
};

std::string join(std::initializer_list<std::pair<const char*, int64_t>> kv) {
  std::string s;
  for (const auto& [k, v] : kv) s += (s.empty() ? "" : " ") + std::string(k) + "=" + std::to_string(v);
  return s;
}

OpDesc desc(Op op, DType in, DType out, DType weight, bool strided = false,
            Epilogue epilogue = Epilogue::none) {
  OpDesc d;
  d.op = op;
  d.in = in;
  d.out = out;
  d.weight = weight;
  d.epilogue = epilogue;
  d.strided = strided;
  return d;
}

// Every case runs in f32 and bf16; a few also with f16 activations (the CPU backend supports
// them; other backends are not required to).
constexpr DType kDtypes[] = {DType::f32, DType::bf16};
constexpr DType kDtypesAndF16[] = {DType::f32, DType::bf16, DType::f16};

Vec to_vec(const Tensor& host_f32) { return as_vec(host_f32); }

double gelu_ref(double v) {
  return 0.5 * v * (1 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (v + 0.044715 * v * v * v)));
}

// Per-row LayerNorm (no affine) of x [L, C].
Vec ref_layer_norm(const Vec& x, int64_t L, int64_t C, double eps) {
  Vec y(x.size());
  for (int64_t l = 0; l < L; ++l) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) mean += x[size_t(l * C + c)] / double(C);
    for (int64_t c = 0; c < C; ++c) var += std::pow(x[size_t(l * C + c)] - mean, 2) / double(C);
    for (int64_t c = 0; c < C; ++c) y[size_t(l * C + c)] = (x[size_t(l * C + c)] - mean) / std::sqrt(var + eps);
  }
  return y;
}
// (1 + scale[c]) x + shift[c]
Vec ref_modulate(const Vec& x, const Vec& shift, const Vec& scale) {
  Vec y(x.size());
  const size_t C = shift.size();
  for (size_t i = 0; i < x.size(); ++i) y[i] = (1.0 + scale[i % C]) * x[i] + shift[i % C];
  return y;
}
// RMSNorm of every D-wide head times scale[D].
Vec ref_rms_heads(const Vec& x, const Vec& scale, double eps) {
  const size_t D = scale.size();
  Vec y(x.size());
  for (size_t r = 0; r < x.size() / D; ++r) {
    double ms = 0;
    for (size_t d = 0; d < D; ++d) ms += x[r * D + d] * x[r * D + d] / double(D);
    for (size_t d = 0; d < D; ++d) y[r * D + d] = x[r * D + d] / std::sqrt(ms + eps) * scale[d];
  }
  return y;
}
// Pairs of x [L, H, D] rotated by the angles [L, D/2].
Vec ref_rope(const Vec& x, const Vec& angles, int64_t L, int64_t H, int64_t D) {
  Vec y(x.size());
  const int64_t P = D / 2;
  for (int64_t l = 0; l < L; ++l)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t p = 0; p < P; ++p) {
        const size_t i = size_t((l * H + h) * D + 2 * p);
        const double a = angles[size_t(l * P + p)];
        y[i] = std::cos(a) * x[i] - std::sin(a) * x[i + 1];
        y[i + 1] = std::sin(a) * x[i] + std::cos(a) * x[i + 1];
      }
  return y;
}
// x [M, K] W[N, K]^T + b
Vec ref_linear(const Vec& x, const Vec& w, const Vec* bias, int64_t M, int64_t N, int64_t K) {
  Vec y(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = bias ? (*bias)[size_t(n)] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += x[size_t(m * K + k)] * w[size_t(n * K + k)];
      y[size_t(m * N + n)] = s;
    }
  return y;
}

double round_to(DType dtype, double v) {
  switch (dtype) {
    case DType::bf16: return bf16_to_float(float_to_bf16(float(v)));
    case DType::f16: return f16_to_float(float_to_f16(float(v)));
    case DType::f32: return float(v);
    default: return v;
  }
}

// softmax(q k^T / sqrt(D)) v per head in double, with the log-sum-exp of each query row.
// q: [Lq, H, D]; k, v: [Lk, H, D]. With `naive` set to a 16-bit dtype: the naive implementation
// in that precision instead (S, P and O each rounded), the baseline of flash-attention's rule.
// attention_bias's: another `scale` (0: 1/sqrt(D)), bias [H, Lq, Lk] added to the scaled scores,
// keys j > i left out when `causal`.
struct ScoreRule {
  double scale = 0;
  const Vec* bias = nullptr;
  bool causal = false;
};
void ref_attention(const Vec& q, const Vec& k, const Vec& v, int64_t Lq, int64_t Lk, int64_t H,
                   int64_t D, Vec& o, Vec& lse, DType naive = DType::f64, ScoreRule rule = {}) {
  const double scale = rule.scale != 0 ? rule.scale : 1 / std::sqrt(double(D));
  o.assign(size_t(Lq * H * D), 0.0);
  lse.assign(size_t(Lq * H), 0.0);
  Vec s(static_cast<size_t>(Lk));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < Lq; ++i) {
      double mx = -1e300;
      for (int64_t j = 0; j < Lk; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += q[size_t((i * H + h) * D + d)] * k[size_t((j * H + h) * D + d)];
        const double b = rule.bias ? (*rule.bias)[size_t((h * Lq + i) * Lk + j)] : 0.0;
        s[size_t(j)] = rule.causal && j > i ? -INFINITY : round_to(naive, dot * scale + b);
        mx = std::max(mx, s[size_t(j)]);
      }
      double sum = 0;
      for (double& e : s) sum += (e = std::exp(e - mx));
      lse[size_t(i * H + h)] = mx + std::log(sum);
      for (double& e : s) e = round_to(naive, e / sum);
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < Lk; ++j) acc += s[size_t(j)] * v[size_t((j * H + h) * D + d)];
        o[size_t((i * H + h) * D + d)] = round_to(naive, acc);
      }
    }
}

class Cases {
 public:
  std::vector<Case> list;

  void add(Op op, std::string params, DType dtype, std::string layout, OpDesc d,
           std::function<void(Ctx&)> run) {
    list.push_back({op, std::move(params), dtype, std::move(layout), d, std::move(run)});
  }

  void linear();
  void norms();
  void heads();
  void attention();
  void elementwise();
  void scalars_and_copies();
  void step_cache();
  void random_fills();
  void latent_and_image();
  void fp8();
  void attention_fp8();
  void linear_fp8();
  void norm_modulate_fp8();
  void text_encoders();
};

// ---- linear ---------------------------------------------------------------------------------

void Cases::linear() {
  struct Spec {
    int64_t M, N, K;
  };
  // Every shape plain, with and without bias; on two shapes also strided x and y (column views),
  // each epilogue, and weights of each other dtype than the activations.
  struct Variant {
    Epilogue ep;
    bool strided;
    bool other_weights;
  };
  for (DType dt : kDtypesAndF16) {
    for (auto [M, N, K] : {Spec{1, 1, 1}, {7, 13, 5}, {33, 64, 17}, {128, 96, 256}, {0, 8, 4}})
      for (bool with_bias : {true, false})
        for (auto [ep, strided, other_weights] :
             {Variant{Epilogue::none, false, false}, {Epilogue::none, true, false}, {Epilogue::gelu_tanh, false, false},
              {Epilogue::gelu_tanh, true, false}, {Epilogue::gated_residual, false, false},
              {Epilogue::gated_residual, true, false}, {Epilogue::none, false, true}})
          for (DType wt : {DType::f32, DType::bf16, DType::f16}) {
            const bool basic = ep == Epilogue::none && !strided && !other_weights;
            if (!basic && !(with_bias && (M == 7 || M == 33) && dt != DType::f16)) continue;
            if (other_weights ? wt == dt : wt != dt) continue;
            std::string p = join({{"M", M}, {"N", N}, {"K", K}}) + (with_bias ? " bias" : "");
            if (ep != Epilogue::none) p += std::string(" ") + epilogue_name(ep);
            if (wt != dt) p += std::string(" w=") + dtype_name(wt);
            add(Op::linear, p, dt, strided ? "strided" : "", desc(Op::linear, dt, dt, wt, strided, ep),
                  [=](Ctx& c) {
                    const Tensor x = c.values({M, K}), w = c.values({N, K}, 1.0, wt),
                                 b = c.values({N}, 1.0, wt), gate = c.values({N}),
                                 y0 = c.values({M, N});
                    const Tensor xd = strided ? c.strided_input(x) : c.input(x);
                    const Tensor wd = c.input(w, wt), bd = c.input(b, wt), gd = c.input(gate);
                    const bool gated = ep == Epilogue::gated_residual;
                    const Guarded y = strided ? c.output({M, N}, dt, 4, 9, gated ? &y0 : nullptr)
                                              : c.output({M, N}, dt, 0, 0, gated ? &y0 : nullptr);
                    c.op([&] { c.be.linear(xd, wd, with_bias ? &bd : nullptr, y.view, ep, gated ? &gd : nullptr); },
                         !gated);
                    const Vec bv = to_vec(b);
                    Vec ref = ref_linear(to_vec(x), to_vec(w), with_bias ? &bv : nullptr, M, N, K);
                    if (ep == Epilogue::gelu_tanh)
                      for (double& r : ref) r = gelu_ref(r);
                    if (gated)
                      for (int64_t i = 0; i < M * N; ++i)
                        ref[size_t(i)] = y0.f32()[i] + double(gate.f32()[i % N]) * ref[size_t(i)];
                    const Vec got = c.result(y);
                    c.check("y", got, ref, rounded_once(dt));
                    if (ep == Epilogue::none) return;
                    // The decomposition on the CPU backend: linear, then gelu_tanh or gated_residual,
                    // with the product stored in the activation dtype in between.
                    Backend& cpu = cpu_reference();
                    const Tensor t = cpu.alloc({M, N}, dt), yc = c.cpu_input(y0, dt);
                    const Tensor cb = c.cpu_input(b, wt);
                    cpu.linear(c.cpu_input(x, dt), c.cpu_input(w, wt), with_bias ? &cb : nullptr, t);
                    if (gated) {
                      cpu.gated_residual(t, c.cpu_input(gate, dt), yc);
                      c.check("vs decomposition", got, c.cpu_result(yc), two_roundings(dt));
                    } else {
                      cpu.gelu_tanh(t, t);
                      c.check("vs decomposition", got, c.cpu_result(t), two_roundings(dt));
                    }
                  });
            }
    if (dt == DType::f16) continue;
    // A vector (the modulation and embedding GEMVs): x [K] -> y [N].
    add(Op::linear, "x=[300] N=70 bias (vector)", dt, "", desc(Op::linear, dt, dt, dt), [=](Ctx& c) {
      const int64_t N = 70, K = 300;
      const Tensor x = c.values({K}), w = c.values({N, K}), b = c.values({N});
      const Tensor xd = c.input(x), wd = c.input(w), bd = c.input(b);
      const Guarded y = c.output({N});
      c.op([&] { c.be.linear(xd, wd, &bd, y.view); }, true);
      const Vec bv = to_vec(b);
      c.check("y", c.result(y), ref_linear(to_vec(x), to_vec(w), &bv, 1, N, K), rounded_once(dt));
    });
    // FLUX-sized GEMMs against the CPU backend in f32 (a double reference would take seconds).
    for (Epilogue ep : {Epilogue::none, Epilogue::gated_residual}) {
      const int64_t M = 256, N = 3072, K = 3072;
      const bool gated = ep == Epilogue::gated_residual;
      add(Op::linear,
          join({{"M", M}, {"N", N}, {"K", K}}) + " bias" + (gated ? " gated_residual" : "") +
              " (CPU-backend reference)",
          dt, gated ? "strided" : "", desc(Op::linear, dt, dt, dt, gated, ep), [=](Ctx& c) {
            const Tensor x = c.values({M, K}), w = c.values({N, K}, 0.02), b = c.values({N}),
                         gate = c.values({N}), y0 = c.values({M, N});
            const Tensor xd = gated ? c.strided_input(x) : c.input(x), wd = c.input(w), bd = c.input(b),
                         gd = c.input(gate);
            const Guarded y = gated ? c.output({M, N}, dt, 1, 3, &y0) : c.output({M, N});
            c.op([&] { c.be.linear(xd, wd, &bd, y.view, ep, gated ? &gd : nullptr); }, !gated);
            Backend& cpu = cpu_reference();
            const Tensor yc = c.cpu_input(y0, DType::f32), gc = c.cpu_input(gate, DType::f32),
                         bc = c.cpu_input(b, DType::f32);
            cpu.linear(c.cpu_input(x, DType::f32), c.cpu_input(w, DType::f32), &bc, yc, ep,
                       gated ? &gc : nullptr);
            c.check("y", c.result(y), c.cpu_result(yc), rounded_once(dt));
          });
    }
  }
}

// ---- layer_norm, modulate, norm_modulate, gated_residual ------------------------------------------

void Cases::norms() {
  constexpr float eps = 1e-6f;
  for (DType dt : kDtypes)
    for (auto [L, C] : {std::pair<int64_t, int64_t>{1, 8}, {5, 3}, {19, 64}, {64, 1000}, {512, 3072}}) {
      const bool large = L == 512;
      const std::string p = join({{"L", L}, {"C", C}}) + (large ? " (CPU-backend reference)" : "");
      for (Layout layout : {Layout::plain, Layout::in_place, Layout::strided}) {
        if (large && layout == Layout::in_place) continue;
        const bool strided = layout == Layout::strided, in_place = layout == Layout::in_place;
        // In place: the output buffer, initialised with x, is also the input.
        auto io = [=](Ctx& c, const Tensor& x, Tensor& xd) {
          const Guarded y = strided ? c.strided_output({L, C}) : c.output({L, C}, c.act, 0, 0, in_place ? &x : nullptr);
          xd = in_place ? y.view : strided ? c.strided_input(x) : c.input(x);
          return y;
        };
        if (!large) {
          add(Op::layer_norm, p, dt, layout_name(layout), desc(Op::layer_norm, dt, dt, dt, strided), [=](Ctx& c) {
            const Tensor x = c.values({L, C}, 3.0);
            Tensor xd;
            const Guarded y = io(c, x, xd);
            c.op([&] { c.be.layer_norm(xd, eps, y.view); }, !in_place);
            c.check("y", c.result(y), ref_layer_norm(to_vec(x), L, C, eps), rounded_once(dt));
          });
          add(Op::modulate, p, dt, layout_name(layout), desc(Op::modulate, dt, dt, dt, strided), [=](Ctx& c) {
            const Tensor x = c.values({L, C}), sh = c.values({C}), sc = c.values({C});
            Tensor xd;
            const Guarded y = io(c, x, xd);
            const Tensor shd = c.input(sh), scd = c.input(sc);
            c.op([&] { c.be.modulate(xd, shd, scd, y.view); }, !in_place);
            c.check("y", c.result(y), ref_modulate(to_vec(x), to_vec(sh), to_vec(sc)), rounded_once(dt));
          });
        }
        // shift and scale as the model passes them: rows of the modulation vector [k, C].
        add(Op::norm_modulate, p, dt, layout_name(layout), desc(Op::norm_modulate, dt, dt, dt, strided),
            [=](Ctx& c) {
              const Tensor x = c.values({L, C}, 3.0), mod = c.values({2, C});
              const Tensor modd = c.input(mod), shd = modd.rows(0, 1), scd = modd.rows(1, 1);
              Tensor xd;
              const Guarded y = io(c, x, xd);
              c.op([&] { c.be.norm_modulate(xd, shd, scd, eps, y.view); }, !in_place);
              const Vec got = c.result(y);
              const Vec mv = to_vec(mod);
              const Vec sh(mv.begin(), mv.begin() + C), sc(mv.begin() + C, mv.end());
              Backend& cpu = cpu_reference();
              if (large) {  // the CPU backend in f32
                const Tensor yc = cpu.alloc({L, C}, DType::f32), mc = c.cpu_input(mod, DType::f32);
                cpu.norm_modulate(c.cpu_input(x, DType::f32), mc.rows(0, 1), mc.rows(1, 1), eps, yc);
                c.check("y", got, c.cpu_result(yc), rounded_once(dt));
              } else {
                c.check("y", got, ref_modulate(ref_layer_norm(to_vec(x), L, C, eps), sh, sc), rounded_once(dt));
              }
              // The decomposition: layer_norm, then modulate, stored in the activation dtype between.
              const Tensor t = cpu.alloc({L, C}, dt), mc = c.cpu_input(mod, dt);
              cpu.layer_norm(c.cpu_input(x, dt), eps, t);
              cpu.modulate(t, mc.rows(0, 1), mc.rows(1, 1), t);
              c.check("vs decomposition", got, c.cpu_result(t), two_roundings(dt));
            });
        if (large || in_place) continue;
        // x += gate * y: x (read and written) and y strided in the strided variant.
        add(Op::gated_residual, p, dt, layout_name(layout), desc(Op::gated_residual, dt, dt, dt, strided),
            [=](Ctx& c) {
              const Tensor x = c.values({L, C}), g = c.values({C}), yv = c.values({L, C});
              const Guarded acc = strided ? c.output({L, C}, dt, 3, 4, &x) : c.output({L, C}, dt, 0, 0, &x);
              const Tensor yd = strided ? c.strided_input(yv) : c.input(yv);
              const Tensor gd = c.input(g);
              c.op([&] { c.be.gated_residual(yd, gd, acc.view); }, false);
              Vec ref(static_cast<size_t>(L * C));
              for (int64_t i = 0; i < L * C; ++i)
                ref[size_t(i)] = x.f32()[i] + double(g.f32()[i % C]) * yv.f32()[i];
              c.check("x", c.result(acc), ref, rounded_once(dt));
            });
      }
    }
}

// ---- rms_norm_heads, rope, rms_norm_rope -------------------------------------------------------

void Cases::heads() {
  constexpr float eps = 1e-6f;
  struct Spec {
    int64_t L, H, D;
  };
  for (DType dt : kDtypes)
    for (auto [L, H, D] : {Spec{1, 1, 2}, {5, 3, 8}, {17, 2, 32}, {9, 24, 128}, {1024, 6, 128}}) {
      const bool large = L == 1024;
      const std::string p = join({{"L", L}, {"H", H}, {"D", D}}) + (large ? " (CPU-backend reference)" : "");
      const int64_t P = D / 2, HD = H * D;
      // cos/sin tables stay f32 whatever the activations (angles up to 1000 radians need it).
      auto tables = [=](Ctx& c, Tensor& ang, Tensor& cs, Tensor& sn) {
        ang = c.values({L, P}, 3.0, DType::f32);
        cs = Tensor({L, P});
        sn = Tensor({L, P});
        for (int64_t i = 0; i < L * P; ++i) {
          cs.f32()[i] = std::cos(ang.f32()[i]);
          sn.f32()[i] = std::sin(ang.f32()[i]);
        }
      };
      // Layouts: plain, in place, strided (input and output column views); for rms_norm_rope also
      // the input as the k columns of a qkv matrix, to a dense output or in place.
      for (const char* layout : {"", "in-place", "strided", "qkv view", "qkv in-place"}) {
        const std::string l = layout;
        const bool qkv = l.starts_with("qkv"), in_place = l.ends_with("in-place"), strided = l == "strided";
        if (large && l != "qkv view") continue;
        auto io = [=](Ctx& c, const Tensor& x, Tensor& xd) {
          Guarded y;
          if (qkv && in_place) {
            y = c.output({L, H, D}, c.act, HD, 2 * HD, &x);  // the k columns of [L, 3 H D]
            xd = y.view;
          } else if (qkv) {
            const Tensor q = c.values({L, H, D}), v = c.values({L, H, D});
            xd = c.wide_views({q, x, v}, {0, HD, 2 * HD}, 3 * HD, c.act)[1];
            y = c.output({L, H, D});
          } else if (in_place) {
            y = c.output({L, H, D}, c.act, 0, 0, &x);
            xd = y.view;
          } else {
            y = strided ? c.strided_output({L, H, D}) : c.output({L, H, D});
            xd = strided ? c.strided_input(x) : c.input(x);
          }
          return y;
        };
        const bool any_stride = strided || qkv;
        if (!qkv && !large) {
          add(Op::rms_norm_heads, p, dt, l, desc(Op::rms_norm_heads, dt, dt, dt, any_stride), [=](Ctx& c) {
            const Tensor x = c.values({L, H, D}, 2.0), s = c.values({D});
            Tensor xd;
            const Guarded y = io(c, x, xd);
            const Tensor sd = c.input(s);
            c.op([&] { c.be.rms_norm_heads(xd, sd, eps, y.view); }, !in_place);
            c.check("y", c.result(y), ref_rms_heads(to_vec(x), to_vec(s), eps), rounded_once(dt));
          });
          add(Op::rope, p, dt, l, desc(Op::rope, dt, dt, dt, any_stride), [=](Ctx& c) {
            const Tensor x = c.values({L, H, D});
            Tensor ang, cs, sn;
            tables(c, ang, cs, sn);
            Tensor xd;
            const Guarded y = io(c, x, xd);
            const Tensor csd = c.input(cs, DType::f32), snd = c.input(sn, DType::f32);
            c.op([&] { c.be.rope(xd, csd, snd, y.view); }, !in_place);
            c.check("y", c.result(y), ref_rope(to_vec(x), to_vec(ang), L, H, D), rounded_once(dt));
          });
        }
        add(Op::rms_norm_rope, p, dt, l, desc(Op::rms_norm_rope, dt, dt, dt, any_stride), [=](Ctx& c) {
          const Tensor x = c.values({L, H, D}, 2.0), s = c.values({D});
          Tensor ang, cs, sn;
          tables(c, ang, cs, sn);
          Tensor xd;
          const Guarded y = io(c, x, xd);
          const Tensor csd = c.input(cs, DType::f32), snd = c.input(sn, DType::f32), sd = c.input(s);
          c.op([&] { c.be.rms_norm_rope(xd, sd, eps, csd, snd, y.view); }, !in_place);
          const Vec got = c.result(y);
          Backend& cpu = cpu_reference();
          const Tensor csc = c.cpu_input(cs, DType::f32), snc = c.cpu_input(sn, DType::f32);
          if (large) {
            const Tensor yc = cpu.alloc({L, H, D}, DType::f32);
            cpu.rms_norm_rope(c.cpu_input(x, DType::f32), c.cpu_input(s, DType::f32), eps, csc, snc, yc);
            c.check("y", got, c.cpu_result(yc), rounded_once(dt));
          } else {
            c.check("y", got, ref_rope(ref_rms_heads(to_vec(x), to_vec(s), eps), to_vec(ang), L, H, D),
                    rounded_once(dt));
          }
          // The decomposition: rms_norm_heads, then rope, stored in the activation dtype between.
          const Tensor t = cpu.alloc({L, H, D}, dt);
          cpu.rms_norm_heads(c.cpu_input(x, dt), c.cpu_input(s, dt), eps, t);
          cpu.rope(t, csc, snc, t);
          c.check("vs decomposition", got, c.cpu_result(t), two_roundings(dt));
        });
      }
    }
}

// ---- attention, attention_merge ------------------------------------------------------------------

void Cases::attention() {
  struct Spec {
    int64_t Lq, Lk, H, D;
  };
  for (DType dt : kDtypes) {
    // Head dims above 256 (the decoder's mid-block: one head of 512) take the CUDA backend's
    // blocked cuBLASLt path.
    for (auto [Lq, Lk, H, D] : {Spec{1, 1, 1, 4}, {5, 9, 2, 8}, {37, 300, 3, 32}, {300, 41, 2, 64},
                                {1100, 1300, 3, 128}, {1024, 1024, 2, 128}, {300, 517, 1, 512}, {70, 129, 2, 320}})
      for (Layout layout : {Layout::plain, Layout::strided})
        for (bool with_lse : {true, false}) {
          const bool large = Lq >= 1024, strided = layout == Layout::strided;
          if (!with_lse && (large || strided || Lq == 1)) continue;
          if (large && (Lq == 1024) != strided) continue;  // one layout per large shape
          const std::string p = join({{"Lq", Lq}, {"Lk", Lk}, {"H", H}, {"D", D}}) +
                                (with_lse ? "" : " no lse") + (large ? " (CPU-backend reference)" : "");
          add(Op::attention, p, dt, layout_name(layout), desc(Op::attention, dt, dt, dt, strided), [=](Ctx& c) {
            const int64_t HD = H * D;
            const Tensor q = c.values({Lq, H, D}), k = c.values({Lk, H, D}), v = c.values({Lk, H, D});
            Tensor qd, kd, vd;
            Guarded o;
            if (strided) {  // q, k, v from qkv rows; o into the first columns of a concat buffer
              if (Lq == Lk) {
                const auto views = c.wide_views({q, k, v}, {0, HD, 2 * HD}, 3 * HD, c.act);
                qd = views[0], kd = views[1], vd = views[2];
              } else {
                qd = c.wide_views({q}, {0}, 3 * HD, c.act)[0];
                const auto kv = c.wide_views({k, v}, {HD, 2 * HD}, 3 * HD, c.act);
                kd = kv[0], vd = kv[1];
              }
              o = c.output({Lq, H, D}, dt, 0, 3 * HD);
            } else {
              qd = c.input(q), kd = c.input(k), vd = c.input(v);
              o = c.output({Lq, H, D});
            }
            const Guarded lse = c.output({Lq, H}, DType::f32);
            const Tensor no_lse;
            c.op([&] { c.be.attention(qd, kd, vd, o.view, with_lse ? lse.view : no_lse); }, true);
            const Vec got = c.result(o);
            if (large) {
              Backend& cpu = cpu_reference();
              const Tensor oc = cpu.alloc({Lq, H, D}, DType::f32), lc = cpu.alloc({Lq, H}, DType::f32);
              cpu.attention(c.cpu_input(q, DType::f32), c.cpu_input(k, DType::f32),
                            c.cpu_input(v, DType::f32), oc, lc);
              c.check("o", got, c.cpu_result(oc), dt == DType::f32 ? kF32 : kBf16Attention);
              c.check("lse", c.result(lse), c.cpu_result(lc), kF32);
              return;
            }
            Vec ref_o, ref_lse;
            ref_attention(to_vec(q), to_vec(k), to_vec(v), Lq, Lk, H, D, ref_o, ref_lse);
            double max_nmse = kF32;
            std::string what = "o";
            if (dt != DType::f32) {  // flash-attention's rule
              Vec naive_o, naive_lse;
              ref_attention(to_vec(q), to_vec(k), to_vec(v), Lq, Lk, H, D, naive_o, naive_lse, dt);
              const double naive = nmse(naive_o, ref_o);
              max_nmse = std::max(kBf16, 2 * naive);
              char buf[64];
              std::snprintf(buf, sizeof buf, "o (naive %s nmse %.1e)", dtype_name(dt), naive);
              what = buf;
            }
            c.check(what, got, ref_o, max_nmse);
            const Vec got_lse = c.result(lse);
            if (with_lse) c.check("lse", got_lse, ref_lse, kF32);
          });
        }

    // Merging the attention over two key blocks equals the attention over all keys (the partial
    // outputs are stored in the activation dtype, hence two roundings).
    for (auto [Lq, Lk1, Lk2, H, D] :
         {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{1, 1, 1, 1, 4}, {7, 5, 12, 3, 16}, {64, 100, 1, 2, 32}})
      for (Layout layout : {Layout::plain, Layout::strided}) {
        const bool strided = layout == Layout::strided;
        add(Op::attention_merge,
            join({{"Lq", Lq}, {"Lk", Lk1}}) + "+" + std::to_string(Lk2) + " " + join({{"H", H}, {"D", D}}) +
                " partials",
            dt, layout_name(layout), desc(Op::attention_merge, dt, dt, dt, strided), [=](Ctx& c) {
              const Tensor q = c.values({Lq, H, D}), k = c.values({Lk1 + Lk2, H, D}),
                           v = c.values({Lk1 + Lk2, H, D});
              const Guarded o = strided ? c.strided_output({Lq, H, D}) : c.output({Lq, H, D});
              const Guarded o2 = strided ? c.strided_output({Lq, H, D}) : c.output({Lq, H, D});
              const Guarded lse = c.output({Lq, H}, DType::f32), lse2 = c.output({Lq, H}, DType::f32);
              const Tensor qd = c.input(q), kd = c.input(k), vd = c.input(v);
              c.be.attention(qd, kd.rows(0, Lk1), vd.rows(0, Lk1), o.view, lse.view);
              c.be.attention(qd, kd.rows(Lk1, Lk2), vd.rows(Lk1, Lk2), o2.view, lse2.view);
              c.op([&] { c.be.attention_merge(o2.view, lse2.view, o.view, lse.view); }, false);
              Vec ref, ref_lse;  // the attention over all keys at once
              ref_attention(to_vec(q), to_vec(k), to_vec(v), Lq, Lk1 + Lk2, H, D, ref, ref_lse);
              c.check("o", c.result(o), ref, two_roundings(dt));
              c.check("lse", c.result(lse), ref_lse, kF32);
              c.result(o2);  // their guards
              c.result(lse2);
            });
      }
    // The merge formula itself on random partials, an empty part (lse = -inf) included.
    for (auto [L, H, D] : {std::tuple<int64_t, int64_t, int64_t>{3, 2, 8}, {33, 3, 64}})
      add(Op::attention_merge, join({{"L", L}, {"H", H}, {"D", D}}) + " formula", dt, "",
          desc(Op::attention_merge, dt, dt, dt), [=](Ctx& c) {
            const Tensor o = c.values({L, H, D}), op = c.values({L, H, D});
            Tensor lse = c.values({L, H}, 2.0, DType::f32), lsep = c.values({L, H}, 2.0, DType::f32);
            lsep.f32()[0] = -std::numeric_limits<float>::infinity();  // nothing in this part
            const Guarded od = c.output({L, H, D}, dt, 0, 0, &o);
            const Guarded ld = c.output({L, H}, DType::f32, 0, 0, &lse);
            const Tensor opd = c.input(op), lpd = c.input(lsep, DType::f32);
            c.op([&] { c.be.attention_merge(opd, lpd, od.view, ld.view); }, false);
            Vec ref(static_cast<size_t>(L * H * D)), ref_lse(size_t(L * H));
            for (int64_t r = 0; r < L * H; ++r) {
              const double a = lse.f32()[r], b = lsep.f32()[r];
              const double m = std::log(std::exp(a) + std::exp(b));
              ref_lse[size_t(r)] = m;
              for (int64_t d = 0; d < D; ++d)
                ref[size_t(r * D + d)] = std::exp(a - m) * o.f32()[r * D + d] + std::exp(b - m) * op.f32()[r * D + d];
            }
            c.check("o", c.result(od), ref, rounded_once(dt));
            c.check("lse", c.result(ld), ref_lse, kF32);
          });
  }
}

// ---- gelu_tanh, silu, add, subtract, affine, axpy ---------------------------------------------------

void Cases::elementwise() {
  using Fn = double (*)(double);
  struct Unary {
    Op op;
    Fn ref;
  };
  const Unary unary[] = {{Op::gelu_tanh, gelu_ref}, {Op::silu, [](double v) { return v / (1 + std::exp(-v)); }},
                         // affine's constants are f32: the reference uses the values the op gets
                         {Op::affine, [](double v) { return double(float(1 / 0.3611)) * v + double(0.1159f); }},
                         {Op::quick_gelu, [](double v) { return v / (1 + std::exp(-1.702 * v)); }},
                         {Op::gelu_erf, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }}};
  for (DType dt : kDtypesAndF16)
    for (Shape s : {Shape{1}, Shape{7}, Shape{1000}, Shape{4097}, Shape{33, 70}, Shape{3, 5, 40}})
      for (Layout layout : {Layout::plain, Layout::in_place, Layout::strided}) {
        const bool strided = layout == Layout::strided, in_place = layout == Layout::in_place;
        if (strided && s.size() < 2) continue;
        const std::string p = "shape " + shape_string(s);
        // In place: the guarded output initialised with x is also the input; strided: both the
        // input and the output are column views (the MLP columns of the single block).
        auto io = [=](Ctx& c, const Tensor& x, Tensor& xd) {
          const Guarded y = strided ? c.strided_output(s) : c.output(s, c.act, 0, 0, in_place ? &x : nullptr);
          xd = in_place ? y.view : strided ? c.strided_input(x) : c.input(x);
          return y;
        };
        for (const Unary& u : unary)
          add(u.op, p, dt, layout_name(layout), desc(u.op, dt, dt, dt, strided), [=](Ctx& c) {
            const Tensor x = c.values(s, 3.0);
            Tensor xd;
            const Guarded y = io(c, x, xd);
            c.op(
                [&] {
                  if (u.op == Op::gelu_tanh) c.be.gelu_tanh(xd, y.view);
                  else if (u.op == Op::silu) c.be.silu(xd, y.view);
                  else if (u.op == Op::quick_gelu) c.be.quick_gelu(xd, y.view);
                  else if (u.op == Op::gelu_erf) c.be.gelu_erf(xd, y.view);
                  else c.be.affine(xd, float(1 / 0.3611), 0.1159f, y.view);
                },
                !in_place);
            Vec ref = to_vec(x);
            for (double& r : ref) r = u.ref(r);
            c.check("y", c.result(y), ref, rounded_once(dt));
          });
        add(Op::add, p, dt, layout_name(layout), desc(Op::add, dt, dt, dt, strided), [=](Ctx& c) {
          const Tensor a = c.values(s), b = c.values(s);
          Tensor ad;
          const Guarded y = io(c, a, ad);  // in place: y = a + b into a
          const Tensor bd = strided ? c.strided_input(b) : c.input(b);
          c.op([&] { c.be.add(ad, bd, y.view); }, !in_place);
          Vec ref(size_t(a.numel()));
          for (int64_t i = 0; i < a.numel(); ++i) ref[size_t(i)] = double(a.f32()[i]) + b.f32()[i];
          c.check("y", c.result(y), ref, rounded_once(dt));
        });
        add(Op::multiply, p, dt, layout_name(layout), desc(Op::multiply, dt, dt, dt, strided), [=](Ctx& c) {
          const Tensor a = c.values(s), b = c.values(s);
          Tensor ad;
          const Guarded y = io(c, a, ad);  // in place: y = a * b into a
          const Tensor bd = strided ? c.strided_input(b) : c.input(b);
          c.op([&] { c.be.multiply(ad, bd, y.view); }, !in_place);
          Vec ref(size_t(a.numel()));
          for (int64_t i = 0; i < a.numel(); ++i) ref[size_t(i)] = double(a.f32()[i]) * b.f32()[i];
          c.check("y", c.result(y), ref, rounded_once(dt));
        });
        // subtract: in place into a (as add) and into b (the step cache's residual Q <- x - Q).
        for (bool into_b : {false, true}) {
          if (into_b && !in_place) continue;
          add(Op::subtract, p, dt, into_b ? "in-place y=b" : layout_name(layout), desc(Op::subtract, dt, dt, dt, strided),
              [=](Ctx& c) {
                const Tensor a = c.values(s), b = c.values(s);
                Tensor ad, bd;
                const Guarded y = io(c, into_b ? b : a, into_b ? bd : ad);
                (into_b ? ad : bd) = strided ? c.strided_input(into_b ? a : b) : c.input(into_b ? a : b);
                c.op([&] { c.be.subtract(ad, bd, y.view); }, !in_place);
                Vec ref(size_t(a.numel()));
                for (int64_t i = 0; i < a.numel(); ++i) ref[size_t(i)] = double(a.f32()[i]) - b.f32()[i];
                c.check("y", c.result(y), ref, rounded_once(dt));
              });
        }
        if (in_place) continue;
        // y += alpha x: alpha a device scalar, y read and written.
        add(Op::axpy, p, dt, layout_name(layout), desc(Op::axpy, dt, dt, dt, strided), [=](Ctx& c) {
          const Tensor x = c.values(s), y0 = c.values(s);
          const float alpha = -0.37f;
          const Tensor ad = c.input(Tensor::from_floats({1}, std::span<const float>(&alpha, 1)), DType::f32);
          const Tensor xd = strided ? c.strided_input(x) : c.input(x);
          const Guarded y = strided ? c.output(s, dt, 1, 2, &y0) : c.output(s, dt, 0, 0, &y0);
          c.op([&] { c.be.axpy(ad, xd, y.view); }, false);
          Vec ref(size_t(x.numel()));
          for (int64_t i = 0; i < x.numel(); ++i) ref[size_t(i)] = y0.f32()[i] + double(alpha) * x.f32()[i];
          c.check("y", c.result(y), ref, rounded_once(dt));
        });
      }
}

// ---- change_sums: the step cache's metric ---------------------------------------------------------
//
// Against sums in double of the values the op reads, the difference formed in f32 as the spec
// says (kSums), with b = a + small changes as between two denoising steps. Layouts: dense;
// strided (column views with NaN around them: on a GPU the element-wise path), also with rows
// that allow 16-byte loads ("strided-aligned"); row ranges of larger buffers (the step cache's
// x.rows(r0, n)); and b the same tensor as a (sum |a - b| exactly 0). Sizes that are no multiple
// of a block or a vector, one large enough for many blocks, and an empty one. Two calls must
// give the same bits.
void Cases::step_cache() {
  for (DType dt : kDtypesAndF16)
    for (Shape s : {Shape{7}, Shape{0, 16}, Shape{33, 70}, Shape{300, 257}, Shape{96, 3072}, Shape{1531, 3072}})
      for (const std::string layout : {"", "strided", "strided-aligned", "rows", "b=a"}) {
        const bool strided = layout.starts_with("strided");
        if ((s.size() != 2 || s[0] == 0) && (strided || layout == "rows")) continue;
        add(Op::change_sums, "shape " + shape_string(s), dt, layout, desc(Op::change_sums, dt, DType::f64, dt, strided),
            [=](Ctx& c) {
              const Tensor a = c.values(s), change = c.values(s, 0.05);
              Tensor b = a.clone();
              for (int64_t i = 0; i < b.numel(); ++i) b.f32()[i] += change.f32()[i];
              b = b.to_dtype(dt).to_f32();  // what the op reads
              Tensor ad, bd;
              if (strided) {  // a then b in one wide matrix: 3, 2 and 4 NaN columns, or 8, 8 and 8
                const bool aligned = layout == "strided-aligned";
                const auto views = aligned ? c.wide_views({a, b}, {8, s[1] + 16}, 2 * s[1] + 24, dt)
                                           : c.wide_views({a, b}, {3, s[1] + 5}, 2 * s[1] + 9, dt);
                ad = views[0], bd = views[1];
              } else if (layout == "rows") {  // rows [2, 2 + L) of buffers of L + 5 rows of NaN
                auto rows_of = [&](const Tensor& v) {
                  Tensor whole({s[0] + 5, s[1]});
                  std::fill_n(whole.f32(), whole.numel(), std::numeric_limits<float>::quiet_NaN());
                  std::memcpy(whole.f32() + 2 * s[1], v.f32(), size_t(v.numel()) * sizeof(float));
                  return c.input(whole).rows(2, s[0]);
                };
                ad = rows_of(a), bd = rows_of(b);
              } else {
                ad = c.input(a);
                bd = layout == "b=a" ? ad : c.input(b);
              }
              const Tensor& bref = layout == "b=a" ? a : b;
              double diff = 0, ref = 0;
              for (int64_t i = 0; i < a.numel(); ++i) {
                diff += double(std::fabs(a.f32()[i] - bref.f32()[i]));  // the difference in f32
                ref += std::fabs(double(bref.f32()[i]));
              }
              const Guarded sums = c.output({2}, DType::f64);
              c.op([&] { c.be.change_sums(ad, bd, sums.view); }, true);
              const Vec first = c.result(sums);
              c.be.change_sums(ad, bd, sums.view);
              const Vec second = c.result(sums);
              if (first.size() != 2 || second.size() != 2 || std::memcmp(first.data(), second.data(), 2 * sizeof(double)))
                c.outcome.problems.push_back("two calls gave different bits");
              c.check("sum |a - b|", Vec{first.at(0)}, Vec{diff}, layout == "b=a" ? kExact : kSums);
              c.check("sum |b|", Vec{first.at(1)}, Vec{ref}, kSums);
            });
      }
}

// ---- fill_random: an independent reference of the counter-based normal numbers -------------------

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), written
// from the paper: 10 rounds of two 32x32->64 products, the key bumped by the Weyl constants.
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> c, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    if (round) k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
    const uint64_t p0 = uint64_t(0xD2511F53u) * c[0], p1 = uint64_t(0xCD9E8D57u) * c[2];
    c = {uint32_t(p1 >> 32) ^ c[1] ^ k0, uint32_t(p1), uint32_t(p0 >> 32) ^ c[3] ^ k1, uint32_t(p0)};
  }
  return c;
}
// Box-Muller in double on Random123's float uniforms: u0 in (-1, 1), u1 in (0, 1).
double ref_normal(uint64_t seed, uint32_t stream, uint32_t substream, uint64_t i) {
  const auto r = philox4x32_10({uint32_t(i), uint32_t(i >> 32), substream, stream}, uint32_t(seed), uint32_t(seed >> 32));
  const float u0 = float(int32_t(r[0])) * 0x1p-31f + 0x1p-32f;
  const float u1 = float(r[1]) * 0x1p-32f + 0x1p-33f;
  return std::sin(std::numbers::pi * double(u0)) * std::sqrt(-2.0 * std::log(double(u1)));
}

void Cases::random_fills() {
  for (DType dt : kDtypes)
    for (Shape s : {Shape{1000}, Shape{37, 50}, Shape{3, 5, 7}, Shape{0}})
      for (const auto& [mean, std] : {std::pair{0.0f, 0.02f}, std::pair{0.25f, 1.5f}, std::pair{1.0f, 0.0f}}) {
        const std::string p = "shape " + shape_string(s) + " mean " + std::to_string(mean).substr(0, 4) +
                              " std " + std::to_string(std).substr(0, 4);
        add(Op::fill_random, p, dt, "", desc(Op::fill_random, dt, dt, dt), [=](Ctx& c) {
          const uint64_t seed = 0x123456789abcdefull;
          const uint32_t stream = 1, substream = 77;
          const Guarded y = c.output(s, dt);
          c.op([&] { c.be.fill_random(seed, stream, substream, mean, std, y.view); }, true);
          Vec ref(size_t(shape_numel(s)));
          for (size_t i = 0; i < ref.size(); ++i)
            ref[i] = std == 0.0f ? double(mean) : double(mean) + double(std) * ref_normal(seed, stream, substream, i);
          c.check("y", c.result(y), ref, std == 0.0f ? kExact : rounded_once(dt));
        });
      }
}

// ---- timestep_embedding, count_nonfinite, copy -----------------------------------------------------

void Cases::scalars_and_copies() {
  for (DType dt : kDtypes) {
    for (float t : {0.0f, 0.25f, 1.0f})
      add(Op::timestep_embedding, "t=" + std::to_string(t).substr(0, 4), dt, "", desc(Op::timestep_embedding, DType::f32, dt, dt),
          [=](Ctx& c) {
            const Tensor td = c.input(Tensor::from_floats({1}, std::span<const float>(&t, 1)), DType::f32);
            const Guarded e = c.output({256});
            c.op([&] { c.be.timestep_embedding(td, e.view); }, true);
            Vec ref(256);
            for (int k = 0; k < 128; ++k) {
              const double f = std::exp(-std::log(10000.0) * k / 128.0);
              ref[size_t(k)] = std::cos(1000.0 * t * f);
              ref[size_t(128 + k)] = std::sin(1000.0 * t * f);
            }
            c.check("e", c.result(e), ref, rounded_once(dt));
          });

    // NaN and infinities planted in x; in the strided variant the NaN columns around the view
    // must not be counted.
    for (Shape s : {Shape{1000}, Shape{37, 50}, Shape{6, 4, 9}})
      for (Layout layout : {Layout::plain, Layout::strided}) {
        const bool strided = layout == Layout::strided;
        if (strided && s.size() < 2) continue;
        add(Op::count_nonfinite, "shape " + shape_string(s), dt, layout_name(layout),
            desc(Op::count_nonfinite, dt, DType::i64, dt, strided), [=](Ctx& c) {
              Tensor x = c.values(s);
              int64_t planted = 0;
              if (s.size() > 1) {
                const float bad[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                                     -std::numeric_limits<float>::infinity()};
                for (int64_t i = 3; i < x.numel(); i += 29, ++planted) x.f32()[i] = bad[planted % 3];
              }
              const Tensor xd = strided ? c.strided_input(x) : c.input(x);
              const Guarded n = c.output({1}, DType::i64);
              c.op([&] { c.be.count_nonfinite(xd, n.view); }, true);
              c.check("count", c.result(n), Vec{double(planted)}, kExact);
            });
      }
  }
  // f64 input (statistics)
  add(Op::count_nonfinite, "shape [10, 3] f64", DType::f64, "", desc(Op::count_nonfinite, DType::f64, DType::i64, DType::f32),
      [](Ctx& c) {
        Tensor x({10, 3}, DType::f64);
        for (int i = 0; i < 30; ++i) x.data<double>()[i] = i == 7 ? std::nan("") : i == 11 ? -HUGE_VAL : 0.5 * i;
        const Tensor xd = c.upload(c.be, x);
        const Guarded n = c.output({1}, DType::i64);
        c.op([&] { c.be.count_nonfinite(xd, n.view); }, true);
        c.check("count", c.result(n), Vec{2}, kExact);
      });

  // copy: conversions (bit exact against the scalar conversions), strided rows on either side,
  // inner dimensions grouped differently, host <-> device, and byte copies of f64/i64.
  const DType all[] = {DType::f32, DType::bf16, DType::f16};
  for (DType from : all)
    for (DType to : all)
      for (Layout layout : {Layout::plain, Layout::strided}) {
        const bool strided = layout == Layout::strided;
        const int64_t L = 9, H = 3, D = 10;
        // strided: src [L, H, D] view of a wide matrix -> dst [L, H*D] view of a concat buffer
        add(Op::copy, std::string(dtype_name(from)) + " -> " + dtype_name(to) + " " + join({{"L", L}, {"H", H}, {"D", D}}),
            from, layout_name(layout), desc(Op::copy, from, to, from, strided), [=](Ctx& c) {
              const Tensor x = c.values({L, H, D}, 100.0, from);
              const Tensor xd = strided ? c.strided_input(x, from) : c.input(x, from);
              const Guarded y = strided ? c.output({L, H * D}, to, 5, 40) : c.output({L, H * D}, to);
              c.op([&] { c.be.copy(xd, y.view); }, true);
              Vec ref = to_vec(x);
              for (double& r : ref) r = round_to(to, r);
              c.check("dst", c.result(y), ref, kExact);
            });
      }
  for (DType dt : {DType::f64, DType::i64})
    for (Layout layout : {Layout::plain, Layout::strided}) {
      const bool strided = layout == Layout::strided;
      add(Op::copy, std::string(dtype_name(dt)) + " -> " + dtype_name(dt) + " L=6 C=5", dt, layout_name(layout),
          desc(Op::copy, dt, dt, DType::f32, strided), [=](Ctx& c) {
            // src: columns 2..6 of a [6, 9] matrix (strided) or a [6, 5] matrix
            const int64_t L = 6, C = 5, W = strided ? 9 : 5, c0 = strided ? 2 : 0;
            Tensor host({L, W}, dt);
            Vec ref;
            for (int64_t r = 0; r < L; ++r)
              for (int64_t j = 0; j < W; ++j) {
                const int64_t v = (r * 1000 + j) * 7919 - 30000;  // not representable in f32 exactly
                const int64_t big = v * 1000003;
                if (dt == DType::f64) host.data<double>()[r * W + j] = double(big) + 0.25;
                else host.data<int64_t>()[r * W + j] = big;
                if (j >= c0 && j < c0 + C) ref.push_back(dt == DType::f64 ? double(big) + 0.25 : double(big));
              }
            const Tensor src = c.upload(c.be, host).cols(c0, C);
            const Guarded y = strided ? c.output({L, C}, dt, 1, 2) : c.output({L, C}, dt);
            c.op([&] { c.be.copy(src, y.view); }, true);
            c.check("dst", c.result(y), ref, kExact);
          });
    }
  // Between the host and the backend's device (the step scalars' path), both directions.
  add(Op::copy, "host -> device -> host f32 [37, 3]", DType::f32, "", desc(Op::copy, DType::f32, DType::f32, DType::f32),
      [](Ctx& c) {
        const Tensor x = c.values({37, 3});
        const Tensor dev = c.be.alloc({37, 3}, DType::f32);
        Tensor back({37, 3});
        c.op([&] { c.be.copy(x, dev); }, true);
        c.be.copy(dev, back);
        c.be.synchronize();
        c.check("dst", to_vec(back), to_vec(x), kExact);
      });
}

// ---- pack/unpack_latent, conv2d, group_sums, group_norm, upsample_nearest, transpose -------------

void Cases::latent_and_image() {
  for (DType dt : kDtypes) {
    for (auto [ch, h, w] : {std::tuple<int64_t, int64_t, int64_t>{1, 2, 2}, {16, 4, 6}, {3, 10, 2}})
      for (Layout layout : {Layout::plain, Layout::strided}) {
        const bool strided = layout == Layout::strided;  // tokens as column views
        const std::string p = join({{"c", ch}, {"h", h}, {"w", w}});
        // Reference: the spec's mapping (c, 2i+pi, 2j+pj) -> token i*w/2+j, channel 4c+2pi+pj.
        auto packed_index = [=](int64_t c, int64_t y, int64_t x) {
          return ((y / 2) * (w / 2) + x / 2) * 4 * ch + c * 4 + (y % 2) * 2 + (x % 2);
        };
        const int64_t T = (h / 2) * (w / 2);
        add(Op::pack_latent, p, dt, layout_name(layout), desc(Op::pack_latent, dt, dt, dt, strided), [=](Ctx& c) {
          const Tensor lat = c.values({ch, h, w});
          const Guarded tok = strided ? c.strided_output({T, 4 * ch}) : c.output({T, 4 * ch});
          const Tensor latd = c.input(lat);
          c.op([&] { c.be.pack_latent(latd, tok.view); }, true);
          Vec ref(static_cast<size_t>(ch * h * w));
          for (int64_t k = 0; k < ch; ++k)
            for (int64_t y = 0; y < h; ++y)
              for (int64_t x = 0; x < w; ++x) ref[size_t(packed_index(k, y, x))] = lat.f32()[(k * h + y) * w + x];
          c.check("tokens", c.result(tok), ref, kExact);
        });
        add(Op::unpack_latent, p, dt, layout_name(layout), desc(Op::unpack_latent, dt, dt, dt, strided), [=](Ctx& c) {
          const Tensor tok = c.values({T, 4 * ch});
          const Tensor tokd = strided ? c.strided_input(tok) : c.input(tok);
          const Guarded lat = c.output({ch, h, w});
          c.op([&] { c.be.unpack_latent(tokd, lat.view); }, true);
          Vec ref(static_cast<size_t>(ch * h * w));
          for (int64_t k = 0; k < ch; ++k)
            for (int64_t y = 0; y < h; ++y)
              for (int64_t x = 0; x < w; ++x) ref[size_t((k * h + y) * w + x)] = tok.f32()[packed_index(k, y, x)];
          c.check("latent", c.result(lat), ref, kExact);
        });
      }

    // Convolution: whole images (zero rows) and haloed shards (pad_rows 0), 3x3 and 1x1; the
    // wider ones are what cuDNN's tensor-core algorithms take on the CUDA backend.
    for (auto [Ci, Co, H, W, k, pad] : {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int>{1, 1, 1, 1, 3, 1},
                                        {3, 5, 4, 7, 3, 1}, {4, 6, 6, 5, 3, 0}, {8, 3, 5, 3, 1, 0}, {32, 16, 9, 11, 3, 1},
                                        {64, 48, 12, 20, 3, 1}, {48, 40, 7, 9, 3, 0}, {64, 32, 6, 10, 1, 0}})
      add(Op::conv2d,
          join({{"Ci", Ci}, {"Co", Co}}) + " " + std::to_string(H) + "x" + std::to_string(W) + " " +
              join({{"k", k}, {"pad_rows", pad}}),
          dt, "", desc(Op::conv2d, dt, dt, dt), [=](Ctx& c) {
            const Tensor x = c.values({Ci, H, W}), w = c.values({Co, Ci, k, k}), bias = c.values({Co});
            const int64_t Ho = H + 2 * pad - (k - 1);
            const Guarded y = c.output({Co, Ho, W});
            const Tensor xd = c.input(x), wd = c.input(w), bd = c.input(bias);
            c.op([&] { c.be.conv2d(xd, wd, bd, pad, y.view); }, true);
            Vec ref(static_cast<size_t>(Co * Ho * W));
            for (int64_t o = 0; o < Co; ++o)
              for (int64_t i = 0; i < Ho; ++i)
                for (int64_t j = 0; j < W; ++j) {
                  double acc = bias.f32()[o];
                  for (int64_t ci = 0; ci < Ci; ++ci)
                    for (int64_t a = 0; a < k; ++a)
                      for (int64_t e = 0; e < k; ++e) {
                        const int64_t si = i + a - pad, sj = j + e - k / 2;
                        if (si < 0 || si >= H || sj < 0 || sj >= W) continue;
                        acc += double(w.f32()[((o * Ci + ci) * k + a) * k + e]) * x.f32()[(ci * H + si) * W + sj];
                      }
                  ref[size_t((o * Ho + i) * W + j)] = acc;
                }
            c.check("y", c.result(y), ref, rounded_once(dt));
          });

    // GroupNorm: group_sums into a device f64 [G, 2], then the normalisation with those sums.
    for (auto [C, G, H, W] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{2, 1, 1, 1}, {32, 32, 3, 4}, {64, 32, 7, 5}}) {
      const std::string p = join({{"C", C}, {"groups", G}}) + " " + std::to_string(H) + "x" + std::to_string(W);
      const int64_t cpg = C / G, n = cpg * H * W;
      auto ref_sums = [=](const Tensor& x) {
        Vec s(size_t(2 * G), 0.0);
        for (int64_t g = 0; g < G; ++g)
          for (int64_t i = 0; i < n; ++i) {
            s[size_t(2 * g)] += x.f32()[g * n + i];
            s[size_t(2 * g + 1)] += double(x.f32()[g * n + i]) * x.f32()[g * n + i];
          }
        return s;
      };
      add(Op::group_sums, p, dt, "", desc(Op::group_sums, dt, DType::f64, dt), [=](Ctx& c) {
        const Tensor x = c.values({C, H, W}, 2.0);
        const Tensor xd = c.input(x);
        const Guarded sums = c.output({G, 2}, DType::f64);
        c.op([&] { c.be.group_sums(xd, int(G), sums.view); }, true);
        c.check("sums", c.result(sums), ref_sums(x), kF32);
      });
      add(Op::group_norm, p, dt, "", desc(Op::group_norm, dt, dt, dt), [=](Ctx& c) {
        const Tensor x = c.values({C, H, W}, 2.0), w = c.values({C}), bias = c.values({C});
        const Tensor xd = c.input(x), sums = c.be.alloc({G, 2}, DType::f64);
        c.be.group_sums(xd, int(G), sums);
        const Guarded y = c.output({C, H, W});
        const Tensor wd = c.input(w), bd = c.input(bias);
        c.op([&] { c.be.group_norm(xd, sums, double(n), 1e-6f, wd, bd, y.view); }, true);
        const Vec s = ref_sums(x);
        Vec ref(static_cast<size_t>(C * H * W));
        for (int64_t g = 0; g < G; ++g) {
          const double mean = s[size_t(2 * g)] / double(n), var = s[size_t(2 * g + 1)] / double(n) - mean * mean;
          for (int64_t i = 0; i < n; ++i) {
            const int64_t ch = g * cpg + i / (H * W);
            ref[size_t(g * n + i)] = (x.f32()[g * n + i] - mean) / std::sqrt(var + 1e-6) * w.f32()[ch] + bias.f32()[ch];
          }
        }
        c.check("y", c.result(y), ref, rounded_once(dt));
      });
    }

    for (auto [C, H, W] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {3, 4, 5}}) {
      const std::string p = join({{"C", C}}) + " " + std::to_string(H) + "x" + std::to_string(W);
      add(Op::upsample_nearest, p, dt, "", desc(Op::upsample_nearest, dt, dt, dt), [=](Ctx& c) {
        const Tensor x = c.values({C, H, W});
        const Guarded y = c.output({C, 2 * H, 2 * W});
        const Tensor xd = c.input(x);
        c.op([&] { c.be.upsample_nearest(xd, y.view); }, true);
        Vec ref;
        for (int64_t ch = 0; ch < C; ++ch)
          for (int64_t i = 0; i < 2 * H; ++i)
            for (int64_t j = 0; j < 2 * W; ++j) ref.push_back(x.f32()[(ch * H + i / 2) * W + j / 2]);
        c.check("y", c.result(y), ref, kExact);
      });
      // channel-major [C, n] <-> token-major [n, C]; strided: both sides column views.
      for (Layout layout : {Layout::plain, Layout::strided}) {
        const bool strided = layout == Layout::strided;
        add(Op::transpose, p, dt, layout_name(layout), desc(Op::transpose, dt, dt, dt, strided), [=](Ctx& c) {
          const Tensor x = c.values({C, H * W});
          const Guarded y = strided ? c.strided_output({H * W, C}) : c.output({H * W, C});
          const Tensor xd = strided ? c.strided_input(x) : c.input(x);
          c.op([&] { c.be.transpose(xd, y.view); }, true);
          Vec ref;
          for (int64_t j = 0; j < H * W; ++j)
            for (int64_t ch = 0; ch < C; ++ch) ref.push_back(x.f32()[ch * H * W + j]);
          c.check("y", c.result(y), ref, kExact);
        });
      }
    }
  }
}

// ---- FP8 communication ----------------------------------------------------------------------
//
// quantize_rows: the scales and the e4m3 bytes are exact (the reference performs the same f32
// operations and the same round-to-nearest-even, saturating conversion); the round trip
// dequantize(quantize(x)) stays within e4m3's precision (3 mantissa bits: a relative error of
// at most 2^-4 per element, an NMSE of at most 2^-8 = 3.9e-3). dequantize_rows: one rounding.
void Cases::fp8() {
  struct Spec {
    int64_t R, C;
  };
  for (DType dt : {DType::f32, DType::bf16})
    for (auto [R, C] : {Spec{1, 1}, {5, 7}, {16, 300}, {3, 1536}, {0, 8}})
      for (Layout layout : {Layout::plain, Layout::strided}) {
        const bool strided = layout == Layout::strided;
        if (strided && (R == 0 || C == 1)) continue;
        const std::string p = join({{"R", R}, {"C", C}});
        add(Op::quantize_rows, p, dt, layout_name(layout), desc(Op::quantize_rows, dt, DType::e4m3, dt, strided),
            [=](Ctx& c) {
              Tensor x = c.values({R, C}, 3.0);
              if (R > 2) std::fill_n(x.f32() + 2 * C, C, 0.0f);  // an all-zero row: scale 1
              const Tensor xd = strided ? c.strided_input(x) : c.input(x);
              const Guarded q = strided ? c.strided_output({R, C}, DType::e4m3) : c.output({R, C}, DType::e4m3);
              const Guarded scales = c.output({R}, DType::f32);
              c.op([&] { c.be.quantize_rows(xd, q.view, scales.view); }, true);
              const Tensor xs = x.to_dtype(dt).to_f32();  // what the op read
              Vec ref_q, ref_scales;
              for (int64_t r = 0; r < R; ++r) {
                float amax = 0;
                for (int64_t k = 0; k < C; ++k) amax = std::max(amax, std::fabs(xs.f32()[r * C + k]));
                const float s = amax > 0 ? amax / kE4m3Max : 1.0f;
                ref_scales.push_back(s);
                for (int64_t k = 0; k < C; ++k) ref_q.push_back(e4m3_to_float(float_to_e4m3(xs.f32()[r * C + k] / s)));
              }
              const Vec got_q = c.result(q), got_scales = c.result(scales);
              c.check("scales", got_scales, ref_scales, kExact);
              c.check("q", got_q, ref_q, kExact);
              Vec round_trip, original;
              for (int64_t r = 0; r < R; ++r)
                for (int64_t k = 0; k < C; ++k) {
                  round_trip.push_back(got_q[size_t(r * C + k)] * got_scales[size_t(r)]);
                  original.push_back(xs.f32()[r * C + k]);
                }
              c.check("dequantize(quantize(x)) vs x", round_trip, original, 3.9e-3);
            });
        add(Op::dequantize_rows, p, dt, layout_name(layout), desc(Op::dequantize_rows, DType::e4m3, dt, dt, strided),
            [=](Ctx& c) {
              Tensor bytes({R, C}, DType::e4m3), s({R});
              for (int64_t i = 0; i < R * C; ++i) {
                uint8_t b = uint8_t(c.rng());
                if ((b & 0x7F) == 0x7F) b ^= 0x01;  // no NaN codes
                bytes.data<uint8_t>()[i] = b;
              }
              for (int64_t r = 0; r < R; ++r) s.f32()[r] = 0.01f + float(c.rng() % 1000) / 100.0f;
              const Tensor qd = strided ? c.strided_input(bytes.to_f32(), DType::e4m3) : c.upload(c.be, bytes);
              const Tensor sd = c.upload(c.be, s);
              const Guarded y = strided ? c.strided_output({R, C}) : c.output({R, C});
              c.op([&] { c.be.dequantize_rows(qd, sd, y.view); }, true);
              Vec ref;
              for (int64_t r = 0; r < R; ++r)
                for (int64_t k = 0; k < C; ++k) ref.push_back(double(e4m3_to_float(bytes.data<uint8_t>()[r * C + k]) * s.f32()[r]));
              c.check("y", c.result(y), ref, rounded_once(dt));
            });
      }
}

// norm_modulate_fp8: the same bytes and scales as the tested backend's own norm_modulate
// followed by quantize_rows (the definition: the fused op stores nothing in between), and the
// dequantized rows within e4m3's precision of the float64 LayerNorm + modulate.
void Cases::norm_modulate_fp8() {
  constexpr float eps = 1e-6f;
  for (DType dt : {DType::f32, DType::bf16})
    for (auto [L, C] : {std::pair<int64_t, int64_t>{1, 8}, {5, 24}, {19, 64}, {64, 1000}, {33, 3072}, {0, 8}})
      for (Layout layout : {Layout::plain, Layout::strided}) {
        const bool strided = layout == Layout::strided;
        if (strided && L == 0) continue;
        add(Op::norm_modulate_fp8, join({{"L", L}, {"C", C}}), dt, layout_name(layout),
            desc(Op::norm_modulate_fp8, dt, DType::e4m3, dt, strided), [=](Ctx& c) {
              const Tensor x = c.values({L, C}, 3.0), mod = c.values({2, C});
              const Tensor modd = c.input(mod), shd = modd.rows(0, 1), scd = modd.rows(1, 1);
              const Tensor xd = strided ? c.strided_input(x) : c.input(x);
              // q strided as a wide buffer's columns: 16 bytes in, rows of C + 32 bytes.
              const Guarded q = strided ? c.output({L, C}, DType::e4m3, 16, 32) : c.output({L, C}, DType::e4m3);
              const Guarded scales = c.output({L}, DType::f32);
              c.op([&] { c.be.norm_modulate_fp8(xd, shd, scd, eps, q.view, scales.view); }, true);
              const Guarded y = c.output({L, C}, dt), q2 = c.output({L, C}, DType::e4m3), s2 = c.output({L}, DType::f32);
              c.be.norm_modulate(xd, shd, scd, eps, y.view);
              c.be.quantize_rows(y.view, q2.view, s2.view);
              const Vec got_q = c.result(q), got_s = c.result(scales);
              c.check("q vs norm_modulate + quantize_rows", got_q, c.result(q2), kExact);
              c.check("scales vs norm_modulate + quantize_rows", got_s, c.result(s2), kExact);
              const Vec mv = to_vec(mod);
              const Vec sh(mv.begin(), mv.begin() + C), sc(mv.begin() + C, mv.end());
              Vec dequantized;
              for (int64_t r = 0; r < L; ++r)
                for (int64_t k = 0; k < C; ++k) dequantized.push_back(got_q[size_t(r * C + k)] * got_s[size_t(r)]);
              c.check("dequantized vs LayerNorm + modulate", dequantized,
                      ref_modulate(ref_layer_norm(to_vec(x), L, C, eps), sh, sc), 3.9e-3);
            });
      }
}

// linear_fp8 against its definition (backend.hpp): the products of the e4m3 values summed in
// double, then both scales, the bias and the epilogue, rounded once. K a multiple of 16 with
// 16-byte rows takes cuBLASLt's e4m3 path on GPUs that have one (the strided cases are laid out
// for it too); the other shapes and f32 outputs take the widened f32 path. The GPU's gated form
// folds the gate into the weight scales and the bias (one more rounding of gate * b, in y's dtype):
// within one rounding of y.
void Cases::linear_fp8() {
  struct Spec {
    int64_t M, N, K;
  };
  for (DType dt : {DType::f32, DType::bf16})
    for (auto [M, N, K] : {Spec{1, 1, 1}, {7, 13, 5}, {33, 64, 48}, {128, 96, 256}, {0, 8, 16}})
      for (Epilogue ep : {Epilogue::none, Epilogue::gelu_tanh, Epilogue::gated_residual})
        for (bool with_bias : {true, false})
          for (bool strided : {false, true}) {
            if ((strided || !with_bias) && (M == 0 || M == 1 || ep == Epilogue::gelu_tanh)) continue;
            const bool gated = ep == Epilogue::gated_residual;
            std::string p = join({{"M", M}, {"N", N}, {"K", K}}) + (with_bias ? " bias" : "");
            if (ep != Epilogue::none) p += std::string(" ") + epilogue_name(ep);
            add(Op::linear_fp8, p, dt, strided ? "strided" : "",
                desc(Op::linear_fp8, DType::e4m3, dt, DType::e4m3, strided, ep), [=](Ctx& c) {
                  // e4m3 values (exact in f32), positive scales, bias / gate / y0 in f32.
                  const Tensor xv = c.values({M, K}, 3.0).to_dtype(DType::e4m3).to_f32();
                  const Tensor wv = c.values({N, K}, 3.0).to_dtype(DType::e4m3).to_f32();
                  Tensor xs = c.values({M}), ws = c.values({N});
                  for (int64_t i = 0; i < M; ++i) xs.f32()[i] = 0.01f + std::fabs(xs.f32()[i]);
                  for (int64_t i = 0; i < N; ++i) ws.f32()[i] = 0.01f + std::fabs(ws.f32()[i]);
                  const Tensor b = c.values({N}), gate = c.values({N}), y0 = c.values({M, N});
                  // Strided: x a column window 16 bytes into rows of K + 32 bytes, y 8 elements
                  // into rows of N + 16 (16-byte rows for cuBLASLt wherever K and N allow).
                  const Tensor xd = strided ? c.wide_views({xv}, {16}, K + 32, DType::e4m3)[0] : c.input(xv, DType::e4m3);
                  const Tensor wd = c.input(wv, DType::e4m3), xsd = c.input(xs, DType::f32), wsd = c.input(ws, DType::f32);
                  const Tensor bd = c.input(b, dt), gd = c.input(gate, dt);
                  const Guarded y = strided ? c.output({M, N}, dt, 8, 16, gated ? &y0 : nullptr)
                                            : c.output({M, N}, dt, 0, 0, gated ? &y0 : nullptr);
                  c.op([&] { c.be.linear_fp8(xd, xsd, wd, wsd, with_bias ? &bd : nullptr, y.view, ep, gated ? &gd : nullptr); },
                       !gated);
                  const Tensor bq = b.to_dtype(dt).to_f32(), gq = gate.to_dtype(dt).to_f32();  // what the op read
                  Vec ref;
                  for (int64_t m = 0; m < M; ++m)
                    for (int64_t n = 0; n < N; ++n) {
                      double acc = 0;
                      for (int64_t k = 0; k < K; ++k) acc += double(xv.f32()[m * K + k]) * double(wv.f32()[n * K + k]);
                      double v = double(xs.f32()[m]) * double(ws.f32()[n]) * acc + (with_bias ? double(bq.f32()[n]) : 0.0);
                      if (ep == Epilogue::gelu_tanh) v = gelu_ref(v);
                      if (gated) v = double(y0.to_dtype(dt).to_f32().f32()[m * N + n]) + double(gq.f32()[n]) * v;
                      ref.push_back(v);
                    }
                  c.check("y", c.result(y), ref, rounded_once(dt));
                });
          }
}

// attention_fp8 against its definition (backend.hpp), in double: q, k, v each quantized to e4m3
// with one scale for the tensor, the scores of those values, the softmax, P rounded to e4m3 at
// 448, the product with v's e4m3 values and the descales. The tolerance is the bf16 one, or twice
// the error that P's rounding itself brings (the same reference with P unrounded), whichever is
// larger: a flash-attention kernel rounds P before its final normalization, so its P8 values
// differ from the definition's by about that rounding (flash-attention's rule, as attention's).
namespace {
struct Fp8AttentionRef {
  Vec o, lse, o_unrounded_p;
};
Vec quantized_per_tensor(const Tensor& x, float& scale) {  // x as the op read it (f32 values)
  float amax = 0;
  for (int64_t i = 0; i < x.numel(); ++i) amax = std::max(amax, std::fabs(x.f32()[i]));
  scale = amax > 0 ? amax / kE4m3Max : 1.0f;
  Vec q;
  for (int64_t i = 0; i < x.numel(); ++i) q.push_back(e4m3_to_float(float_to_e4m3(x.f32()[i] / scale)));
  return q;
}
Fp8AttentionRef ref_attention_fp8(const Tensor& q, const Tensor& k, const Tensor& v, int64_t Lq, int64_t Lk,
                                  int64_t H, int64_t D) {
  float sq = 0, sk = 0, sv = 0;
  const Vec q8 = quantized_per_tensor(q, sq), k8 = quantized_per_tensor(k, sk), v8 = quantized_per_tensor(v, sv);
  const double score_scale = double(sq) * double(sk) / std::sqrt(double(D)), out_scale = double(sv) / kE4m3Max;
  Fp8AttentionRef r;
  r.o.assign(size_t(Lq * H * D), 0.0);
  r.o_unrounded_p.assign(size_t(Lq * H * D), 0.0);
  r.lse.assign(size_t(Lq * H), 0.0);
  Vec s(size_t(Lk), 0.0), p8(size_t(Lk), 0.0);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < Lq; ++i) {
      double mx = -1e300;
      for (int64_t j = 0; j < Lk; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += q8[size_t((i * H + h) * D + d)] * k8[size_t((j * H + h) * D + d)];
        s[size_t(j)] = dot * score_scale;
        mx = std::max(mx, s[size_t(j)]);
      }
      double sum = 0;
      for (double& e : s) sum += (e = std::exp(e - mx));
      r.lse[size_t(i * H + h)] = mx + std::log(sum);
      for (int64_t j = 0; j < Lk; ++j) {
        s[size_t(j)] /= sum;
        p8[size_t(j)] = e4m3_to_float(float_to_e4m3(float(s[size_t(j)] * kE4m3Max)));
      }
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0, exact = 0;
        for (int64_t j = 0; j < Lk; ++j) {
          const double vv = v8[size_t((j * H + h) * D + d)];
          acc += p8[size_t(j)] * vv;
          exact += s[size_t(j)] * kE4m3Max * vv;
        }
        r.o[size_t((i * H + h) * D + d)] = acc * out_scale;
        r.o_unrounded_p[size_t((i * H + h) * D + d)] = exact * out_scale;
      }
    }
  return r;
}
}  // namespace

void Cases::attention_fp8() {
  struct Spec {
    int64_t Lq, Lk, H, D;
  };
  for (DType dt : {DType::bf16, DType::f16})
    for (auto [Lq, Lk, H, D] : {Spec{5, 9, 2, 16}, {37, 300, 3, 64}, {300, 41, 2, 128}, {256, 320, 2, 128}})
      for (Layout layout : {Layout::plain, Layout::strided})
        for (bool with_lse : {true, false}) {
          const bool strided = layout == Layout::strided;
          if (dt == DType::f16 && (strided || !with_lse)) continue;
          const std::string p = join({{"Lq", Lq}, {"Lk", Lk}, {"H", H}, {"D", D}}) + (with_lse ? "" : " no lse");
          add(Op::attention_fp8, p, dt, layout_name(layout), desc(Op::attention_fp8, dt, dt, dt, strided),
              [=](Ctx& c) {
                const int64_t HD = H * D;
                // q and k of RMS-normed size, v wider: three different scales.
                const Tensor q = c.values({Lq, H, D}, 2.0), k = c.values({Lk, H, D}, 2.0), v = c.values({Lk, H, D}, 5.0);
                Tensor qd, kd, vd;
                Guarded o;
                if (strided) {  // q, k, v from the columns of wider rows; o into a concat buffer
                  qd = c.wide_views({q}, {0}, 3 * HD, c.act)[0];
                  const auto kv = c.wide_views({k, v}, {HD, 2 * HD}, 3 * HD, c.act);
                  kd = kv[0], vd = kv[1];
                  o = c.output({Lq, H, D}, dt, 0, 3 * HD);
                } else {
                  qd = c.input(q), kd = c.input(k), vd = c.input(v);
                  o = c.output({Lq, H, D});
                }
                const Guarded lse = c.output({Lq, H}, DType::f32);
                const Tensor no_lse;
                c.op([&] { c.be.attention_fp8(qd, kd, vd, o.view, with_lse ? lse.view : no_lse); }, true);
                const auto read = [&](const Tensor& x) { return x.to_dtype(dt).to_f32(); };  // what the op read
                const Fp8AttentionRef ref = ref_attention_fp8(read(q), read(k), read(v), Lq, Lk, H, D);
                const double p_rounding = nmse(ref.o_unrounded_p, ref.o);
                char what[80];
                std::snprintf(what, sizeof what, "o (P's rounding nmse %.1e)", p_rounding);
                c.check(what, c.result(o), ref.o, std::max(rounded_once(dt), 2 * p_rounding));
                if (with_lse) c.check("lse", c.result(lse), ref.lse, kBf16);
              });
        }
}

// ---- the text encoders' ops: attention_bias, gather_rows, layer_norm_affine ---------------------
//
// (multiply and quick_gelu are with the element-wise ops.)
void Cases::text_encoders() {
  struct Spec {
    int64_t Lq, Lk, H, D;
  };
  for (DType dt : kDtypes) {
    // T5's (scale 1, a bias, no mask) and CLIP's (scale 1/8, causal, no bias) uses, both together,
    // and neither; shapes with one tile, several query and key tiles, ragged tiles, Lq < Lk.
    for (auto [Lq, Lk, H, D] : {Spec{1, 1, 1, 4}, {5, 9, 2, 8}, {37, 70, 3, 32}, {77, 77, 4, 64}, {130, 130, 2, 64}})
      for (bool with_bias : {false, true})
        for (bool causal : {false, true})
          for (Layout layout : {Layout::plain, Layout::strided}) {
            const bool strided = layout == Layout::strided;
            if (strided && (Lq != Lk || !with_bias || !causal)) continue;
            const double scale = with_bias ? 1.0 : 0.125;
            const std::string p = join({{"Lq", Lq}, {"Lk", Lk}, {"H", H}, {"D", D}}) + (with_bias ? " bias" : "") +
                                  (causal ? " causal" : "") + " scale " + (with_bias ? "1" : "1/8");
            add(Op::attention_bias, p, dt, layout_name(layout), desc(Op::attention_bias, dt, dt, dt, strided),
                [=](Ctx& c) {
                  const int64_t HD = H * D;
                  // T5's unscaled scores are larger: q and k of std 0.5 keep softmax away from one-hot.
                  const double qk = with_bias ? 0.5 : 1.0;
                  const Tensor q = c.values({Lq, H, D}, qk), k = c.values({Lk, H, D}, qk), v = c.values({Lk, H, D});
                  const Tensor bias = c.values({H, Lq, Lk}, 2.0, DType::f32);
                  Tensor qd, kd, vd;
                  Guarded o;
                  if (strided) {  // q, k, v from qkv rows; o into the first columns of a wider buffer
                    const auto views = c.wide_views({q, k, v}, {0, HD, 2 * HD}, 3 * HD, c.act);
                    qd = views[0], kd = views[1], vd = views[2];
                    o = c.output({Lq, H, D}, dt, 0, 3 * HD);
                  } else {
                    qd = c.input(q), kd = c.input(k), vd = c.input(v);
                    o = c.output({Lq, H, D});
                  }
                  const Tensor bd = c.input(bias, DType::f32);
                  c.op([&] { c.be.attention_bias(qd, kd, vd, with_bias ? &bd : nullptr, causal, float(scale), o.view); },
                       true);
                  const Vec bv = to_vec(bias);
                  const ScoreRule rule{double(float(scale)), with_bias ? &bv : nullptr, causal};
                  Vec ref_o, ref_lse;
                  ref_attention(to_vec(q), to_vec(k), to_vec(v), Lq, Lk, H, D, ref_o, ref_lse, DType::f64, rule);
                  double max_nmse = kF32;
                  std::string what = "o";
                  if (dt != DType::f32) {  // flash-attention's rule, as attention
                    Vec naive_o, naive_lse;
                    ref_attention(to_vec(q), to_vec(k), to_vec(v), Lq, Lk, H, D, naive_o, naive_lse, dt, rule);
                    const double naive = nmse(naive_o, ref_o);
                    max_nmse = std::max(kBf16, 2 * naive);
                    char buf[64];
                    std::snprintf(buf, sizeof buf, "o (naive %s nmse %.1e)", dtype_name(dt), naive);
                    what = buf;
                  }
                  c.check(what, c.result(o), ref_o, max_nmse);
                });
          }

    // Embedding rows: repeated, first and last ids; tables of each weight dtype; strided y.
    for (DType table_dt : kDtypes)
      for (auto [V, C, L] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {7, 5, 12}, {300, 64, 77}, {50, 1000, 9}})
        for (Layout layout : {Layout::plain, Layout::strided}) {
          const bool strided = layout == Layout::strided;
          add(Op::gather_rows, join({{"V", V}, {"C", C}, {"L", L}}) + " table " + dtype_name(table_dt), dt,
              layout_name(layout), desc(Op::gather_rows, DType::i64, dt, table_dt, strided), [=](Ctx& c) {
                const Tensor table = c.values({V, C}, 1.0, table_dt);
                Tensor ids({L}, DType::i64);
                for (int64_t l = 0; l < L; ++l)
                  ids.data<int64_t>()[l] = l == 0 ? V - 1 : l == 1 ? 0 : int64_t(c.rng() % uint32_t(V));
                const Tensor td = c.input(table, table_dt), idd = c.upload(c.be, ids);
                const Guarded y = strided ? c.strided_output({L, C}) : c.output({L, C});
                c.op([&] { c.be.gather_rows(td, idd, y.view); }, true);
                Vec ref(size_t(L * C));
                for (int64_t l = 0; l < L; ++l)
                  for (int64_t i = 0; i < C; ++i)
                    ref[size_t(l * C + i)] = round_to(dt, table.f32()[ids.data<int64_t>()[l] * C + i]);
                c.check("y", c.result(y), ref, kExact);
              });
        }

    // LayerNorm with weight and bias (CLIP: rows of 768).
    constexpr float eps = 1e-5f;
    for (auto [L, C] : {std::pair<int64_t, int64_t>{1, 8}, {5, 3}, {77, 768}, {19, 1000}})
      for (Layout layout : {Layout::plain, Layout::in_place, Layout::strided}) {
        const bool strided = layout == Layout::strided, in_place = layout == Layout::in_place;
        add(Op::layer_norm_affine, join({{"L", L}, {"C", C}}), dt, layout_name(layout),
            desc(Op::layer_norm_affine, dt, dt, dt, strided), [=](Ctx& c) {
              const Tensor x = c.values({L, C}, 3.0), w = c.values({C}), b = c.values({C});
              const Guarded y = strided ? c.strided_output({L, C}) : c.output({L, C}, c.act, 0, 0, in_place ? &x : nullptr);
              const Tensor xd = in_place ? y.view : strided ? c.strided_input(x) : c.input(x);
              const Tensor wd = c.input(w), bd = c.input(b);
              c.op([&] { c.be.layer_norm_affine(xd, wd, bd, eps, y.view); }, !in_place);
              Vec ref = ref_layer_norm(to_vec(x), L, C, eps);
              for (size_t i = 0; i < ref.size(); ++i) ref[i] = ref[i] * w.f32()[i % size_t(C)] + b.f32()[i % size_t(C)];
              c.check("y", c.result(y), ref, rounded_once(dt));
            });
      }
  }
}

std::vector<Case> make_cases() {
  Cases c;
  c.linear();
  c.linear_fp8();
  c.norm_modulate_fp8();
  c.norms();
  c.heads();
  c.attention();
  c.elementwise();
  c.scalars_and_copies();
  c.step_cache();
  c.random_fills();
  c.latent_and_image();
  c.fp8();
  c.attention_fp8();
  c.text_encoders();
  return std::move(c.list);
}

// ---- running --------------------------------------------------------------------------------

uint64_t seed_of(const Case& c) {  // FNV-1a of the case's name: data independent of filters
  uint64_t h = 1469598103934665603ull;
  for (const std::string& s : {std::string(op_name(c.op)), c.params, std::string(dtype_name(c.dtype)), c.layout})
    for (char ch : s + "|") h = (h ^ uint64_t(uint8_t(ch))) * 1099511628211ull;
  return h;
}

struct Filters {
  std::vector<std::string> ops, backends, dtypes;
  static bool accepts(const std::vector<std::string>& list, const std::string& name) {
    return list.empty() || std::find(list.begin(), list.end(), name) != list.end();
  }
};

void usage(FILE* to) {
  std::fprintf(to,
               "usage: test_backend_ops [--op NAME]... [--backend NAME]... [--dtype f32|bf16|f16|f64|i64]...\n"
               "Runs every case of every op on every backend of this build against double-precision\n"
               "references (CPU backend in f32 for large shapes). A filter may be repeated or take a\n"
               "comma-separated list. Exit status: 0 when every case that ran passed, 1 otherwise,\n"
               "2 for bad arguments.\n");
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find(',', start), s.size());
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Runs a case and judges it; returns whether it passed.
bool run_case(Backend& backend, const Case& c) {
  Ctx ctx(backend, c.dtype, seed_of(c));
  try {
    c.run(ctx);
  } catch (const std::exception& e) {
    ctx.outcome.problems.push_back(std::string("exception: ") + e.what());
  }
  bool ok = ctx.outcome.problems.empty();
  double worst_ratio = -1, worst_nmse = 0, worst_max = 0;
  std::string worst_what, notes;
  for (const Check& k : ctx.outcome.checks) {
    bool finite = true;
    for (double v : k.got) finite &= std::isfinite(v);
    const bool sizes = k.got.size() == k.expected.size();
    const double err = sizes ? nmse(k.got, k.expected) : INFINITY;
    const bool pass = finite && sizes && err <= k.max_nmse;
    if (!finite) notes += " (" + k.what + ": non-finite values)";
    if (!sizes) notes += " (" + k.what + ": " + std::to_string(k.got.size()) + " values, expected " +
                         std::to_string(k.expected.size()) + ")";
    if (!pass && finite && sizes) notes += " (" + k.what + " fails)";
    const double ratio = !pass ? INFINITY : k.max_nmse > 0 ? err / k.max_nmse : 0;
    if (ratio > worst_ratio) {
      worst_ratio = ratio, worst_nmse = err, worst_max = k.max_nmse, worst_what = k.what;
    }
    ok &= pass;
  }
  if (ctx.outcome.checks.empty()) {
    ok = false;
    notes += " (no check ran)";
  }
  for (const std::string& p : ctx.outcome.problems) notes += " (" + p + ")";
  const std::string name = c.params + (c.layout.empty() ? "" : " " + c.layout);
  std::printf("  %-18s %-58s %-4s nmse %.2e <= %.0e %-4s%s\n", op_name(c.op), name.c_str(), dtype_name(c.dtype),
              worst_nmse, worst_max, ok ? "OK" : "FAIL", notes.c_str());
  if (!ok && ctx.outcome.checks.size() > 1) std::printf("      worst check: %s\n", worst_what.c_str());
  return ok;
}

// Checks of the backend interface itself (names, descriptors, the backend factory, transfers of
// strided views); prints one line each and counts them.
void interface_checks(int& passed, int& failed) {
  auto report = [&](const char* what, bool ok, const std::string& detail = "") {
    std::printf("  %-18s %-63s %s%s\n", "interface", what, ok ? "OK" : "FAIL", detail.c_str());
    (ok ? passed : failed)++;
  };
  bool names = true;
  for (Op op : all_ops())
    for (Op other : all_ops()) names &= std::string(op_name(op)) != "?" && (op == other || std::string(op_name(op)) != op_name(other));
  report("op names unique", names && all_ops().size() == size_t(Op::count));
  const std::string d = desc(Op::linear, DType::bf16, DType::bf16, DType::bf16, true, Epilogue::gelu_tanh).describe();
  report("OpDesc::describe", d == "linear in=bf16 w=bf16 out=bf16 acc=f32 gelu_tanh strided", " (" + d + ")");
  auto throws_input_error = [](const std::string& name, const std::string& expected) {
    try {
      make_backend(name);
    } catch (const InputError& e) {
      return std::string(e.what()).find(expected) != std::string::npos;
    }
    return false;
  };
  report("make_backend cpu", make_backend("cpu")->name() == "cpu");
  bool have_cuda = false;
  for (const auto& b : available_backends()) have_cuda |= b->name() == "cuda";
  if (have_cuda)
    report("make_backend cuda with a GPU", make_backend("cuda")->name() == "cuda");
  else
    report("make_backend cuda without a GPU: InputError", throws_input_error("cuda", "--backend cuda"));
  report("make_backend unknown: InputError naming the choices", throws_input_error("tpu", "--backend tpu") &&
                                                                   throws_input_error("tpu", "cpu, cuda"));
  for (const auto& backend : available_backends()) {
    Tensor m({5, 9});
    for (int i = 0; i < 45; ++i) m.f32()[i] = float(i);
    const Tensor up = backend->upload(m.cols(2, 3));
    const Tensor down = backend->download(up);
    bool ok = up.contiguous() && up.device() == backend->device() && down.device() == Device::cpu &&
              down.shape() == (Shape{5, 3});
    for (int r = 0; r < 5 && ok; ++r)
      for (int c = 0; c < 3; ++c) ok &= down.f32()[r * 3 + c] == float(r * 9 + 2 + c);
    const Tensor back = backend->download(backend->upload(m).cols(4, 5));  // a strided device view
    for (int r = 0; r < 5 && ok; ++r)
      for (int c = 0; c < 5; ++c) ok &= back.f32()[r * 5 + c] == float(r * 9 + 4 + c);
    report((backend->name() + ": upload/download of strided views").c_str(), ok);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Filters filters;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        usage(stderr);
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    } else if (arg == "--op") {
      for (const std::string& n : split_commas(value())) filters.ops.push_back(n);
    } else if (arg == "--backend") {
      for (const std::string& n : split_commas(value())) filters.backends.push_back(n);
    } else if (arg == "--dtype") {
      for (const std::string& n : split_commas(value())) filters.dtypes.push_back(n);
    } else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      usage(stderr);
      return 2;
    }
  }
  for (const std::string& n : filters.ops) {
    const auto ops = all_ops();
    if (std::none_of(ops.begin(), ops.end(), [&](Op op) { return n == op_name(op); })) {
      std::fprintf(stderr, "--op %s: no such op\n", n.c_str());
      return 2;
    }
  }

  const auto start = std::chrono::steady_clock::now();
  const std::vector<Case> cases = make_cases();
  int failed = 0, passed = 0, skipped = 0;

  std::printf("interface\n");
  interface_checks(passed, failed);

  // Every op has at least one case.
  for (Op op : all_ops())
    if (std::none_of(cases.begin(), cases.end(), [&](const Case& c) { return c.op == op; })) {
      std::printf("op %s has no test case\n", op_name(op));
      ++failed;
    }

  bool any_backend = false;
  for (const auto& backend : available_backends()) {
    if (!Filters::accepts(filters.backends, backend->name())) continue;
    any_backend = true;
    std::printf("backend %s\n", backend->name().c_str());
    std::vector<int> ran(size_t(Op::count), 0);
    std::vector<bool> selected(size_t(Op::count), false);
    for (const Case& c : cases) {
      if (!Filters::accepts(filters.ops, op_name(c.op)) || !Filters::accepts(filters.dtypes, dtype_name(c.dtype)))
        continue;
      selected[size_t(c.op)] = true;
      if (!backend->supports(c.desc)) {
        const bool must = required(*backend, c.desc);
        std::printf("  %-18s %-58s %-4s %s: %s\n", op_name(c.op), (c.params + " " + c.layout).c_str(),
                    dtype_name(c.dtype), must ? "FAIL, declined a required op" : "not supported, skipped",
                    c.desc.describe().c_str());
        (must ? failed : skipped)++;
        continue;
      }
      ++ran[size_t(c.op)];
      (run_case(*backend, c) ? passed : failed)++;
    }
    // A backend must run the ops required of it (not only decline them).
    for (Op op : all_ops()) {
      const bool must = backend->name() == "cpu" ||
                        std::find(std::begin(kFluxStepOps), std::end(kFluxStepOps), op) != std::end(kFluxStepOps);
      if (must && selected[size_t(op)] && ran[size_t(op)] == 0) {
        std::printf("  backend %s ran no case of the required op %s: FAIL\n", backend->name().c_str(), op_name(op));
        ++failed;
      }
    }
  }
  if (!any_backend) {
    std::printf("no backend of this build matches the --backend filter\n");
    ++failed;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d passed, %d failed, %d skipped in %.1f s\n", passed, failed, skipped, seconds);
  return failed ? 1 : 0;
}
