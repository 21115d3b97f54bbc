// Element-wise kernels of the CUDA backend: conversion, activations, residual updates, the
// linear's own epilogue, the timestep embedding, the non-finite count, the step cache's change
// sums, latent (un)packing.
//
// Layout: a Mat is rows of `cols` elements `ld` apart. Operands that are all contiguous are
// flattened to one long row; otherwise blockIdx.y walks rows and blockIdx.x/threadIdx.x walk
// columns, so no index division is needed.
#include "cuda/kernels_common.cuh"
#include "src/core/tuning.hpp"

namespace fresco::cuda {

bool vector_kernels_enabled() {
  static const bool on = tuning::flag(tuning::Switch::cuda_vector);
  return on;
}

size_t dt_size(int dt) {
  switch (dt) {
    case kF32: return 4;
    case kBF16:
    case kF16: return 2;
    case kF64:
    case kI64: return 8;
    case kE4M3: return 1;
    default: return 0;
  }
}

namespace {

constexpr int kThreads = 256;

bool dense(const Mat& m) { return m.rows <= 1 || m.ld == m.cols; }

// One long row when every operand is dense (the per-element index is then the same in all).
template <typename... M>
void flatten_if_dense(Mat& first, M&... rest) {
  if (!(dense(first) && (dense(rest) && ...))) return;
  const int64_t n = first.rows * first.cols;
  for (Mat* m : {&first, &rest...}) {
    m->rows = 1;
    m->cols = n;
    m->ld = n;
  }
}

dim3 grid_2d(const Mat& m) {
  const int64_t bx = (m.cols + kThreads - 1) / kThreads;
  const int64_t by = m.rows;
  return dim3(unsigned(bx < 1 ? 1 : (bx > (1 << 20) ? (1 << 20) : bx)),
              unsigned(by < 1 ? 1 : (by > 65535 ? 65535 : by)));
}

#define FRESCO_FOR_ELEMENTS(m)                                                        \
  for (int64_t r = blockIdx.y; r < (m).rows; r += gridDim.y)                          \
    for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < (m).cols;    \
         c += int64_t(gridDim.x) * blockDim.x)

// ---- unary maps ------------------------------------------------------------------------------

struct Identity {
  __device__ float operator()(float v) const { return v; }
};
struct GeluTanh {
  __device__ float operator()(float v) const {
    const float k = 0.7978845608028654f;  // sqrt(2/pi)
    return 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
  }
};
struct Silu {
  __device__ float operator()(float v) const { return v / (1.0f + expf(-v)); }
};
struct QuickGelu {
  __device__ float operator()(float v) const { return v / (1.0f + expf(-1.702f * v)); }
};
struct GeluErf {
  __device__ float operator()(float v) const { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); }
};
struct Affine {
  float a, b;
  __device__ float operator()(float v) const { return a * v + b; }
};

template <typename Tin, typename Tout, typename F>
__global__ void map_kernel(Mat x, Mat y, F f) {
  FRESCO_FOR_ELEMENTS(y) *at<Tout>(y, r, c) = from_f<Tout>(f(to_f(*at<const Tin>(x, r, c))));
}

// 8 elements per thread with 16-byte accesses (rows of a multiple of 8 elements, aligned).
template <typename Tin, typename Tout, typename F>
__global__ void map_vec_kernel(Mat x, Mat y, F f) {
  const int64_t nv = y.cols / 8;
  for (int64_t r = blockIdx.y; r < y.rows; r += gridDim.y)
    for (int64_t v = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; v < nv; v += int64_t(gridDim.x) * blockDim.x) {
      float a[8];
      load8(at<const Tin>(x, r, v * 8), a);
#pragma unroll
      for (int j = 0; j < 8; ++j) a[j] = f(a[j]);
      store8(at<Tout>(y, r, v * 8), a);
    }
}

// The grid of a kernel with one thread per 8 elements.
dim3 grid_vec(const Mat& m) {
  Mat v = m;
  v.cols = m.cols / 8;
  return grid_2d(v);
}

template <typename F>
void map(Mat x, Mat y, F f, cudaStream_t stream) {
  if (y.rows * y.cols == 0) return;
  flatten_if_dense(x, y);
  const bool vec = vector_ok(x, 8) && vector_ok(y, 8);
  dispatch_float(x.dt, [&](auto tin) {
    dispatch_float(y.dt, [&](auto tout) {
      using Tin = typename decltype(tin)::type;
      using Tout = typename decltype(tout)::type;
      if (vec) map_vec_kernel<Tin, Tout><<<grid_vec(y), kThreads, 0, stream>>>(x, y, f);
      else map_kernel<Tin, Tout><<<grid_2d(y), kThreads, 0, stream>>>(x, y, f);
    });
  });
  FRESCO_CUDA_LAUNCHED();
}

// ---- binary and vector ops -------------------------------------------------------------------

struct Plus {
  __device__ float operator()(float u, float v) const { return u + v; }
};
struct Minus {
  __device__ float operator()(float u, float v) const { return u - v; }
};
struct Times {
  __device__ float operator()(float u, float v) const { return u * v; }
};

// y = f(a, b). Each element is read and written by one thread, so y may be a or b.
template <typename Ta, typename Tb, typename Ty, typename F>
__global__ void binary_kernel(Mat a, Mat b, Mat y, F f) {
  FRESCO_FOR_ELEMENTS(y)
  *at<Ty>(y, r, c) = from_f<Ty>(f(to_f(*at<const Ta>(a, r, c)), to_f(*at<const Tb>(b, r, c))));
}

// The same with 8 elements per thread and 16-byte accesses (one dtype, aligned rows of a
// multiple of 8 elements).
template <typename T, typename F>
__global__ void binary_vec_kernel(Mat a, Mat b, Mat y, F f) {
  const int64_t nv = y.cols / 8;
  for (int64_t r = blockIdx.y; r < y.rows; r += gridDim.y)
    for (int64_t v = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; v < nv; v += int64_t(gridDim.x) * blockDim.x) {
      float u[8], w[8];
      load8(at<const T>(a, r, v * 8), u);
      load8(at<const T>(b, r, v * 8), w);
#pragma unroll
      for (int j = 0; j < 8; ++j) u[j] = f(u[j], w[j]);
      store8(at<T>(y, r, v * 8), u);
    }
}

template <typename Tx, typename Ty>
__global__ void axpy_kernel(Vec alpha, Mat x, Mat y) {
  const float a = load_dt(alpha.data, alpha.dt, 0);
  FRESCO_FOR_ELEMENTS(y) {
    Ty* p = at<Ty>(y, r, c);
    *p = from_f<Ty>(to_f(*p) + a * to_f(*at<const Tx>(x, r, c)));
  }
}

template <typename Ty, typename Tx>
__global__ void gated_residual_kernel(Mat y, Vec gate, Mat x) {
  FRESCO_FOR_ELEMENTS(x) {
    Tx* p = at<Tx>(x, r, c);
    *p = from_f<Tx>(to_f(*p) + load_dt(gate.data, gate.dt, c) * to_f(*at<const Ty>(y, r, c)));
  }
}

template <typename Tx, typename Ty>
__global__ void modulate_kernel(Mat x, Vec shift, Vec scale, Mat y) {
  FRESCO_FOR_ELEMENTS(y) {
    const float v = to_f(*at<const Tx>(x, r, c));
    *at<Ty>(y, r, c) =
        from_f<Ty>((1.0f + load_dt(scale.data, scale.dt, c)) * v + load_dt(shift.data, shift.dt, c));
  }
}

template <typename Ty>
__global__ void linear_epilogue_kernel(const float* acc, int64_t ld_acc, Vec bias, int epilogue,
                                       Vec gate, Mat y) {
  FRESCO_FOR_ELEMENTS(y) {
    float v = acc[r * ld_acc + c];
    if (bias.data) v += load_dt(bias.data, bias.dt, c);
    Ty* p = at<Ty>(y, r, c);
    if (epilogue == kEpiGatedResidual) {
      *p = from_f<Ty>(to_f(*p) + load_dt(gate.data, gate.dt, c) * v);
    } else {
      if (epilogue == kEpiGelu) v = GeluTanh{}(v);
      *p = from_f<Ty>(v);
    }
  }
}

template <typename Ty>
__global__ void linear_epilogue_vec_kernel(const float* acc, int64_t ld_acc, Vec bias, int epilogue,
                                           Vec gate, Mat y) {
  const int64_t nv = y.cols / 8;
  for (int64_t r = blockIdx.y; r < y.rows; r += gridDim.y)
    for (int64_t v = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; v < nv; v += int64_t(gridDim.x) * blockDim.x) {
      const int64_t c0 = v * 8;
      float a[8];
      load8(acc + r * ld_acc + c0, a);
      if (bias.data) {
#pragma unroll
        for (int j = 0; j < 8; ++j) a[j] += load_dt(bias.data, bias.dt, c0 + j);
      }
      Ty* p = at<Ty>(y, r, c0);
      if (epilogue == kEpiGatedResidual) {
        float o[8];
        load8(p, o);
#pragma unroll
        for (int j = 0; j < 8; ++j) a[j] = o[j] + load_dt(gate.data, gate.dt, c0 + j) * a[j];
      } else if (epilogue == kEpiGelu) {
#pragma unroll
        for (int j = 0; j < 8; ++j) a[j] = GeluTanh{}(a[j]);
      }
      store8(p, a);
    }
}

// ---- timestep embedding, non-finite count, latents ------------------------------------------

template <typename T>
__global__ void timestep_embedding_kernel(Vec t, T* out, int64_t half) {
  const double s = 1000.0 * load_dt_f64(t.data, t.dt, 0);
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < half;
       k += int64_t(gridDim.x) * blockDim.x) {
    const double f = exp(-log(10000.0) * double(k) / double(half));
    out[k] = from_f<T>(float(cos(s * f)));
    out[half + k] = from_f<T>(float(sin(s * f)));
  }
}

template <typename T>
__device__ __forceinline__ bool nonfinite(T v) {
  return !isfinite(to_f(v));
}
template <>
__device__ __forceinline__ bool nonfinite<double>(double v) {
  return !isfinite(v);
}

template <typename T>
__global__ void count_nonfinite_kernel(Mat x, unsigned long long* count) {
  unsigned long long n = 0;
  FRESCO_FOR_ELEMENTS(x) n += nonfinite(*at<const T>(x, r, c)) ? 1 : 0;
  for (int o = 16; o > 0; o >>= 1) n += __shfl_xor_sync(0xffffffffu, n, o);
  if ((threadIdx.x & 31) == 0 && n) atomicAdd(count, n);
}

// The step cache's change sums in two deterministic passes (as group_sums, cuda/image_ops.cu):
// the items are runs of 8 elements of a row (the last run of a row may be shorter); block p sums
// a fixed range of the items into partial[2p], partial[2p+1], and one block then adds the
// partials in order. The partition depends on the shape alone and there are no atomics, so every
// call gives the same bits. A run is read with two 16-byte loads where the rows allow it, else
// element by element in the same order (missing elements add +0, which changes no sum of
// non-negative terms): the bits do not depend on the alignment or on FRESCO_CUDA_VECTOR. Up to
// kChangeMaxBlocks blocks of 256 threads: about one wave on an H100 (132 SMs x 8 blocks), each
// thread with several 16-byte loads of a and b in flight.
constexpr int kChangeThreads = 256;
constexpr int64_t kChangeMaxBlocks = 1024;
constexpr int64_t kChangeItemsPerThread = 4;  // at least, before another block is started

int64_t change_blocks(int64_t items) {
  const int64_t per_block = kChangeThreads * kChangeItemsPerThread;
  const int64_t blocks = (items + per_block - 1) / per_block;
  return blocks < 1 ? 1 : (blocks > kChangeMaxBlocks ? kChangeMaxBlocks : blocks);
}

// Items [blockIdx.x * per_block, + per_block) of the rows x per_row runs of 8 elements (kVec:
// whole runs read with 16-byte loads); partial[2 blockIdx.x] = sum |a - b| (the difference in
// f32), [+1] = sum |b|, in f64.
template <typename T, bool kVec>
__global__ void __launch_bounds__(kChangeThreads)
    change_partial_kernel(Mat a, Mat b, int64_t per_row, int64_t per_block, double* partial) {
  __shared__ double shared[33];
  const int64_t items = a.rows * per_row, i0 = int64_t(blockIdx.x) * per_block;
  const int64_t i1 = i0 + per_block < items ? i0 + per_block : items;
  double d = 0.0, s = 0.0;
  for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
    const int64_t r = a.rows == 1 ? 0 : i / per_row, c0 = (i - r * per_row) * 8;
    float u[8], w[8];
    if constexpr (kVec) {
      load8(at<const T>(a, r, c0), u);
      load8(at<const T>(b, r, c0), w);
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const bool inside = c0 + j < a.cols;
        u[j] = inside ? to_f(*at<const T>(a, r, c0 + j)) : 0.0f;
        w[j] = inside ? to_f(*at<const T>(b, r, c0 + j)) : 0.0f;
      }
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      d += double(fabsf(u[j] - w[j]));
      s += double(fabsf(w[j]));
    }
  }
  d = block_sum(d, shared);
  s = block_sum(s, shared);
  if (threadIdx.x == 0) {
    partial[2 * blockIdx.x] = d;
    partial[2 * blockIdx.x + 1] = s;
  }
}

__global__ void change_final_kernel(const double* partial, int64_t blocks, double* sums) {
  __shared__ double shared[33];
  double d = 0.0, s = 0.0;
  for (int64_t p = threadIdx.x; p < blocks; p += blockDim.x) {
    d += partial[2 * p];
    s += partial[2 * p + 1];
  }
  d = block_sum(d, shared);
  s = block_sum(s, shared);
  if (threadIdx.x == 0) {
    sums[0] = d;
    sums[1] = s;
  }
}

template <typename Tin, typename Tout>
__global__ void pack_latent_kernel(Mat latent, int64_t w, Mat tokens, bool pack) {
  // tokens [(h/2)(w/2), 4c] element (t, tc) <-> latent (ch, 2i+pi, 2j+pj)
  const int64_t gw = w / 2;
  FRESCO_FOR_ELEMENTS(tokens) {
    const int64_t ch = c >> 2, pi = (c >> 1) & 1, pj = c & 1, i = r / gw, j = r - i * gw;
    const int64_t pos = (2 * i + pi) * w + 2 * j + pj;
    if (pack)
      *at<Tout>(tokens, r, c) = from_f<Tout>(to_f(*at<const Tin>(latent, ch, pos)));
    else
      *at<Tout>(latent, ch, pos) = from_f<Tout>(to_f(*at<const Tin>(tokens, r, c)));
  }
}

}  // namespace

// ---- launchers --------------------------------------------------------------------------------

void convert(Mat src, Mat dst, cudaStream_t stream) { map(src, dst, Identity{}, stream); }
void gelu_tanh(Mat x, Mat y, cudaStream_t stream) { map(x, y, GeluTanh{}, stream); }
void silu(Mat x, Mat y, cudaStream_t stream) { map(x, y, Silu{}, stream); }
void affine(Mat x, float a, float b, Mat y, cudaStream_t stream) { map(x, y, Affine{a, b}, stream); }
void quick_gelu(Mat x, Mat y, cudaStream_t stream) { map(x, y, QuickGelu{}, stream); }
void gelu_erf(Mat x, Mat y, cudaStream_t stream) { map(x, y, GeluErf{}, stream); }

namespace {
template <typename F>
void binary(Mat a, Mat b, Mat y, F f, cudaStream_t stream) {
  if (y.rows * y.cols == 0) return;
  flatten_if_dense(a, b, y);
  if (a.dt == y.dt && b.dt == y.dt && vector_ok(a, 8) && vector_ok(b, 8) && vector_ok(y, 8)) {
    dispatch_float(y.dt, [&](auto t) {
      binary_vec_kernel<typename decltype(t)::type><<<grid_vec(y), kThreads, 0, stream>>>(a, b, y, f);
    });
  } else {
    dispatch_float(a.dt, [&](auto ta) {
      dispatch_float(b.dt, [&](auto tb) {
        dispatch_float(y.dt, [&](auto ty) {
          binary_kernel<typename decltype(ta)::type, typename decltype(tb)::type, typename decltype(ty)::type>
              <<<grid_2d(y), kThreads, 0, stream>>>(a, b, y, f);
        });
      });
    });
  }
  FRESCO_CUDA_LAUNCHED();
}
}  // namespace

void add(Mat a, Mat b, Mat y, cudaStream_t stream) { binary(a, b, y, Plus{}, stream); }
void subtract(Mat a, Mat b, Mat y, cudaStream_t stream) { binary(a, b, y, Minus{}, stream); }
void multiply(Mat a, Mat b, Mat y, cudaStream_t stream) { binary(a, b, y, Times{}, stream); }

namespace {
// Row r of y from row ids[r] of the table (blockIdx.y walks rows, as FRESCO_FOR_ELEMENTS).
template <typename Ty>
__global__ void gather_rows_kernel(Vec table, const int64_t* ids, Mat y) {
  const int64_t V = table.n / y.cols;
  FRESCO_FOR_ELEMENTS(y) {
    const int64_t id = ids[r];
    *at<Ty>(y, r, c) = from_f<Ty>(id >= 0 && id < V ? load_dt(table.data, table.dt, id * y.cols + c) : 0.0f);
  }
}
}  // namespace

void gather_rows(Vec table, int64_t C, const int64_t* ids, Mat y, cudaStream_t stream) {
  if (y.rows * y.cols == 0) return;
  FRESCO_ASSERT(y.cols == C && table.n % C == 0, "gather_rows kernel: rows of " + std::to_string(y.cols) +
                                                     " from a table of rows of " + std::to_string(C));
  dispatch_float(y.dt, [&](auto t) {
    gather_rows_kernel<typename decltype(t)::type><<<grid_2d(y), kThreads, 0, stream>>>(table, ids, y);
  });
  FRESCO_CUDA_LAUNCHED();
}

void axpy(Vec alpha, Mat x, Mat y, cudaStream_t stream) {
  if (y.rows * y.cols == 0) return;
  flatten_if_dense(x, y);
  dispatch_float(x.dt, [&](auto tx) {
    dispatch_float(y.dt, [&](auto ty) {
      axpy_kernel<typename decltype(tx)::type, typename decltype(ty)::type>
          <<<grid_2d(y), kThreads, 0, stream>>>(alpha, x, y);
    });
  });
  FRESCO_CUDA_LAUNCHED();
}

void gated_residual(Mat y, Vec gate, Mat x, cudaStream_t stream) {
  if (x.rows * x.cols == 0) return;
  dispatch_float(y.dt, [&](auto ty) {
    dispatch_float(x.dt, [&](auto tx) {
      gated_residual_kernel<typename decltype(ty)::type, typename decltype(tx)::type>
          <<<grid_2d(x), kThreads, 0, stream>>>(y, gate, x);
    });
  });
  FRESCO_CUDA_LAUNCHED();
}

void modulate(Mat x, Vec shift, Vec scale, Mat y, cudaStream_t stream) {
  if (y.rows * y.cols == 0) return;
  dispatch_float(x.dt, [&](auto tx) {
    dispatch_float(y.dt, [&](auto ty) {
      modulate_kernel<typename decltype(tx)::type, typename decltype(ty)::type>
          <<<grid_2d(y), kThreads, 0, stream>>>(x, shift, scale, y);
    });
  });
  FRESCO_CUDA_LAUNCHED();
}

void linear_epilogue(const float* acc, int64_t ld_acc, Vec bias, int epilogue, Vec gate, Mat y,
                     cudaStream_t stream) {
  if (y.rows * y.cols == 0) return;
  const Mat a{const_cast<float*>(acc), kF32, y.rows, y.cols, ld_acc};
  const bool vec = vector_ok(a, 8) && vector_ok(y, 8);
  dispatch_float(y.dt, [&](auto ty) {
    using Ty = typename decltype(ty)::type;
    if (vec)
      linear_epilogue_vec_kernel<Ty><<<grid_vec(y), kThreads, 0, stream>>>(acc, ld_acc, bias, epilogue, gate, y);
    else
      linear_epilogue_kernel<Ty><<<grid_2d(y), kThreads, 0, stream>>>(acc, ld_acc, bias, epilogue, gate, y);
  });
  FRESCO_CUDA_LAUNCHED();
}

void timestep_embedding(Vec t, Mat out, cudaStream_t stream) {
  const int64_t half = out.rows * out.cols / 2;
  if (half == 0) return;
  dispatch_float(out.dt, [&](auto to) {
    using T = typename decltype(to)::type;
    timestep_embedding_kernel<T><<<grid_for(half, kThreads), kThreads, 0, stream>>>(
        t, static_cast<T*>(out.data), half);
  });
  FRESCO_CUDA_LAUNCHED();
}

void count_nonfinite(Mat x, int64_t* count, cudaStream_t stream) {
  FRESCO_CUDA_CHECK(cudaMemsetAsync(count, 0, sizeof(int64_t), stream));
  if (x.rows * x.cols == 0) return;
  flatten_if_dense(x);
  auto* out = reinterpret_cast<unsigned long long*>(count);
  const dim3 grid = grid_2d(x);
  if (x.dt == kF64) {
    count_nonfinite_kernel<double><<<grid, kThreads, 0, stream>>>(x, out);
  } else {
    dispatch_float(x.dt, [&](auto tx) {
      count_nonfinite_kernel<typename decltype(tx)::type><<<grid, kThreads, 0, stream>>>(x, out);
    });
  }
  FRESCO_CUDA_LAUNCHED();
}

size_t change_sums_scratch() { return size_t(2 * kChangeMaxBlocks); }

void change_sums(Mat a, Mat b, double* sums, double* partial, cudaStream_t stream) {
  // An empty input still runs both passes (one block of nothing): sums = 0 with no other path.
  flatten_if_dense(a, b);
  const bool vec = vector_ok(a, 8) && vector_ok(b, 8);
  const int64_t per_row = (a.cols + 7) / 8, items = a.rows * per_row;
  const int64_t blocks = change_blocks(items), per_block = (items + blocks - 1) / blocks;
  dispatch_float(a.dt, [&](auto ta) {
    using T = typename decltype(ta)::type;
    if (vec)
      change_partial_kernel<T, true><<<unsigned(blocks), kChangeThreads, 0, stream>>>(a, b, per_row, per_block, partial);
    else
      change_partial_kernel<T, false><<<unsigned(blocks), kChangeThreads, 0, stream>>>(a, b, per_row, per_block, partial);
  });
  FRESCO_CUDA_LAUNCHED();
  change_final_kernel<<<1, kChangeThreads, 0, stream>>>(partial, blocks, sums);
  FRESCO_CUDA_LAUNCHED();
}

void pack_latent(Mat latent, int64_t c, int64_t h, int64_t w, Mat tokens, cudaStream_t stream) {
  (void)c;
  (void)h;
  if (tokens.rows * tokens.cols == 0) return;
  dispatch_float(latent.dt, [&](auto ti) {
    dispatch_float(tokens.dt, [&](auto to) {
      pack_latent_kernel<typename decltype(ti)::type, typename decltype(to)::type>
          <<<grid_2d(tokens), kThreads, 0, stream>>>(latent, w, tokens, true);
    });
  });
  FRESCO_CUDA_LAUNCHED();
}

void unpack_latent(Mat tokens, int64_t c, int64_t h, int64_t w, Mat latent, cudaStream_t stream) {
  (void)c;
  (void)h;
  if (tokens.rows * tokens.cols == 0) return;
  dispatch_float(tokens.dt, [&](auto ti) {
    dispatch_float(latent.dt, [&](auto to) {
      pack_latent_kernel<typename decltype(ti)::type, typename decltype(to)::type>
          <<<grid_2d(tokens), kThreads, 0, stream>>>(latent, w, tokens, false);
    });
  });
  FRESCO_CUDA_LAUNCHED();
}

}  // namespace fresco::cuda
