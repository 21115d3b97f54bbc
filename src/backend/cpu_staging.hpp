// Staging between tensors of any float dtype and row stride and the f32 rows the CPU ops
// compute on (see cpu_backend.hpp).
//
//   const cpu::Rows in = cpu::read(x, scratch, cpu::kIn0);    // f32 in place, else converted
//   const cpu::Rows out = cpu::write(y, scratch, cpu::kOut);  // f32 in place, else scratch
//   ... compute out.row(r)[c] from in.row(r)[c] ...
//   cpu::store(out, y);                                       // rounds once, if not in place
//
// An op stages all its inputs before it writes anything, and every staged operand of one call
// has its own scratch slot, so outputs may alias inputs.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>

#include "src/core/error.hpp"
#include "src/core/float16.hpp"
#include "src/core/tensor.hpp"

namespace fresco::cpu {

// Scratch slots: one per operand role, so the operands of one call never share a buffer.
enum Slot : int {
  kIn0, kIn1, kIn2,         // sequence inputs
  kOut, kOut1,              // outputs (or outputs that are also read)
  kWeight, kBias, kVec0, kVec1, kVec2,  // contiguous weights and per-channel vectors
  kTmp,                     // intermediate results (the linear's product before its epilogue)
  kScores,                  // attention's score block
  kIm2col,                  // conv2d's column matrix
  kSlotCount
};

// Reusable f32 buffers that only grow.
class Scratch {
 public:
  float* get(Slot slot, size_t n) {
    Buffer& b = buffers_[size_t(slot)];
    if (b.size < n || !b.data) {
      b.data.reset(new float[n ? n : 1]);
      b.size = n;
    }
    return b.data.get();
  }

 private:
  struct Buffer {
    std::unique_ptr<float[]> data;
    size_t size = 0;
  };
  std::array<Buffer, kSlotCount> buffers_;
};

// The matrix an op iterates over: a tensor of rank >= 2 is dim(0) rows of row_numel()
// elements, row_stride() apart; a (contiguous) vector or scalar is one row.
struct Matrix {
  int64_t rows, width, ld;
};
inline Matrix matrix_of(const Tensor& t) {
  FRESCO_ASSERT(t.device() == Device::cpu, "the CPU backend got a device tensor " + t.describe());
  if (t.rank() <= 1) {
    FRESCO_ASSERT(t.contiguous(), "strided vector " + t.describe());
    return {1, t.numel(), t.numel()};
  }
  return {t.dim(0), t.row_numel(), t.row_stride()};
}

// f32 rows: row r starts at data + r * ld.
struct Rows {
  float* data = nullptr;
  int64_t rows = 0, width = 0, ld = 0;
  float* row(int64_t r) const { return data + r * ld; }
};

// ---- element conversion ------------------------------------------------------------------

template <DType D>
struct Elem;
template <>
struct Elem<DType::f32> {
  using T = float;
  static float load(T v) { return v; }
  static T store(float v) { return v; }
};
template <>
struct Elem<DType::bf16> {
  using T = uint16_t;
  static float load(T v) { return bf16_to_float(v); }
  static T store(float v) { return float_to_bf16(v); }
};
template <>
struct Elem<DType::f16> {
  using T = uint16_t;
  static float load(T v) { return f16_to_float(v); }
  static T store(float v) { return float_to_f16(v); }
};

// Calls f(Elem<dtype>{}) for a float dtype the ops compute with.
template <typename F>
void with_float_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32: f(Elem<DType::f32>{}); return;
    case DType::bf16: f(Elem<DType::bf16>{}); return;
    case DType::f16: f(Elem<DType::f16>{}); return;
    case DType::f64:
    case DType::i64:
    case DType::e4m3: break;
  }
  FRESCO_ASSERT(false, std::string("the CPU ops compute with f32, bf16 or f16, not ") +
                           dtype_name(dtype));
}

// dst rows = src rows, converted between f32, bf16 and f16 (rounding to nearest even); the same
// dtype (any, f64 and i64 included) is a byte copy. `ld`s are in elements.
inline void convert_rows(const void* src, DType src_dtype, int64_t src_ld, void* dst,
                         DType dst_dtype, int64_t dst_ld, int64_t rows, int64_t width) {
  if (rows <= 0 || width <= 0) return;
  constexpr int64_t kParallel = 1 << 15;  // elements; below that threads cost more than they gain
  const int64_t n = rows * width;
  if (src_dtype == dst_dtype) {
    const size_t es = dtype_size(src_dtype), row_bytes = size_t(width) * es;
    if (src == dst && src_ld == dst_ld) return;
    if (src_ld == width && dst_ld == width) {
      std::memmove(dst, src, size_t(n) * es);
      return;
    }
#pragma omp parallel for if (n > kParallel)
    for (int64_t r = 0; r < rows; ++r)
      std::memmove(static_cast<char*>(dst) + size_t(r * dst_ld) * es,
                   static_cast<const char*>(src) + size_t(r * src_ld) * es, row_bytes);
    return;
  }
  with_float_dtype(src_dtype, [&](auto s) {
    with_float_dtype(dst_dtype, [&](auto d) {
      using S = decltype(s);
      using D = decltype(d);
      const auto* in = static_cast<const typename S::T*>(src);
      auto* out = static_cast<typename D::T*>(dst);
      if (src_ld == width && dst_ld == width) {
#pragma omp parallel for if (n > kParallel)
        for (int64_t i = 0; i < n; ++i) out[i] = D::store(S::load(in[i]));
      } else {
#pragma omp parallel for if (n > kParallel)
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < width; ++c)
            out[r * dst_ld + c] = D::store(S::load(in[r * src_ld + c]));
      }
    });
  });
}

// ---- staging -------------------------------------------------------------------------------

// An input's rows in f32: the tensor itself when it is f32 (any row stride), else a dense
// converted copy in `slot`. Read-only by convention.
inline Rows read(const Tensor& t, Scratch& scratch, Slot slot) {
  const Matrix m = matrix_of(t);
  if (t.dtype() == DType::f32) return {t.data<float>(), m.rows, m.width, m.ld};
  float* buf = scratch.get(slot, size_t(m.rows * m.width));
  convert_rows(t.raw(), t.dtype(), m.ld, buf, DType::f32, m.width, m.rows, m.width);
  return {buf, m.rows, m.width, m.width};
}

// An output's rows in f32: the tensor itself when it is f32, else uninitialised scratch that
// store() rounds into the tensor.
inline Rows write(const Tensor& t, Scratch& scratch, Slot slot) {
  const Matrix m = matrix_of(t);
  if (t.dtype() == DType::f32) return {t.data<float>(), m.rows, m.width, m.ld};
  with_float_dtype(t.dtype(), [](auto) {});  // checks the dtype
  return {scratch.get(slot, size_t(m.rows * m.width)), m.rows, m.width, m.width};
}

// An output that is also read (x += ...): like write(), holding the tensor's values.
inline Rows update(const Tensor& t, Scratch& scratch, Slot slot) { return read(t, scratch, slot); }

// Writes staged output rows into `t` (nothing to do when they are t's own memory).
inline void store(const Rows& rows, const Tensor& t) {
  if (rows.data == t.raw()) return;
  const Matrix m = matrix_of(t);
  convert_rows(rows.data, DType::f32, rows.ld, t.raw(), t.dtype(), m.ld, m.rows, m.width);
}

// All elements of a contiguous operand (weights, per-channel vectors, tables) as dense f32.
inline const float* dense(const Tensor& t, Scratch& scratch, Slot slot) {
  if (t.dtype() == DType::f32 && t.contiguous()) {
    FRESCO_ASSERT(t.device() == Device::cpu, "the CPU backend got a device tensor " + t.describe());
    return t.data<float>();
  }
  const Matrix m = matrix_of(t);
  float* buf = scratch.get(slot, size_t(m.rows * m.width));
  convert_rows(t.raw(), t.dtype(), m.ld, buf, DType::f32, m.width, m.rows, m.width);
  return buf;
}

// The value of a one-element device scalar (t, alpha) of any float dtype.
inline double scalar(const Tensor& t) {
  FRESCO_ASSERT(t.numel() == 1 && t.device() == Device::cpu, "expected a [1] scalar, got " + t.describe());
  if (t.dtype() == DType::f64) return *t.data<double>();
  float v = 0;
  convert_rows(t.raw(), t.dtype(), 1, &v, DType::f32, 1, 1, 1);
  return v;
}

}  // namespace fresco::cpu
