#include "src/core/tensor.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>

#include "src/core/error.hpp"
#include "src/core/float16.hpp"
#include "src/core/float8.hpp"

namespace fresco {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32: return 4;
    case DType::bf16: return 2;
    case DType::f16: return 2;
    case DType::f64: return 8;
    case DType::i64: return 8;
    case DType::e4m3: return 1;
  }
  FRESCO_ASSERT(false, "unknown dtype");
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::f64: return "f64";
    case DType::i64: return "i64";
    case DType::e4m3: return "e4m3";
  }
  return "?";
}

const char* device_name(Device device) { return device == Device::cpu ? "cpu" : "cuda"; }

std::string shape_string(const Shape& shape) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---- Storage --------------------------------------------------------------------------------

namespace {
std::atomic<uint64_t> storages_created{0};
}  // namespace

Storage::Storage(Device device, void* data, size_t bytes, Release release)
    : device_(device), bytes_(bytes), data_(data), release_(std::move(release)) {
  storages_created.fetch_add(1, std::memory_order_relaxed);
}

Storage::~Storage() {
  if (release_) release_(data_);
}

std::shared_ptr<Storage> Storage::host(size_t bytes) {
  constexpr size_t kAlign = 64;
  const size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;  // aligned_alloc wants a multiple
  void* data = std::aligned_alloc(kAlign, rounded ? rounded : kAlign);
  if (!data) throw std::bad_alloc();
  return std::make_shared<Storage>(Device::cpu, data, bytes, [](void* p) { std::free(p); });
}

uint64_t Storage::created() { return storages_created.load(std::memory_order_relaxed); }

// ---- Tensor ---------------------------------------------------------------------------------

namespace {

// Copies `rows` rows of `row_bytes` bytes from a layout with `src_pitch` bytes between rows to
// one with `dst_pitch` bytes between rows (host memory).
void copy_rows(const void* src, size_t src_pitch, void* dst, size_t dst_pitch, int64_t rows,
               size_t row_bytes) {
  if (src_pitch == row_bytes && dst_pitch == row_bytes) {
    std::memcpy(dst, src, size_t(rows) * row_bytes);
    return;
  }
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(static_cast<char*>(dst) + size_t(r) * dst_pitch,
                static_cast<const char*>(src) + size_t(r) * src_pitch, row_bytes);
}

// Rows of a host tensor as seen by the row-by-row helpers: a contiguous tensor (of any rank)
// is one run of numel elements; a strided one is dim(0) rows of row_numel() elements.
struct HostRows {
  int64_t rows, width, stride;  // elements
};
HostRows host_rows(const Tensor& t) {
  if (t.contiguous()) return {1, t.numel(), t.numel()};
  return {t.dim(0), t.row_numel(), t.row_stride()};
}

}  // namespace

Tensor::Tensor(Shape shape, DType dtype)
    : storage_(Storage::host(size_t(shape_numel(shape)) * dtype_size(dtype))),
      shape_(std::move(shape)),
      dtype_(dtype) {}

Tensor Tensor::zeros(Shape shape, DType dtype) {
  Tensor t(std::move(shape), dtype);
  std::memset(t.raw(), 0, t.bytes());
  return t;
}

// With a null storage this makes a shape-only (undefined) tensor: what a measuring Arena hands
// out.
Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, size_t offset_bytes, Shape shape,
                            DType dtype) {
  Tensor t;
  FRESCO_ASSERT(!storage || offset_bytes + size_t(shape_numel(shape)) * dtype_size(dtype) <=
                                 storage->bytes(),
                "tensor view " + shape_string(shape) + " at byte " + std::to_string(offset_bytes) +
                    " exceeds its storage");
  FRESCO_ASSERT(storage || offset_bytes == 0, "a shape-only tensor has no offset");
  t.storage_ = std::move(storage);
  t.offset_ = offset_bytes;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::from_floats(Shape shape, std::span<const float> values) {
  Tensor t(std::move(shape));
  FRESCO_ASSERT(size_t(t.numel()) == values.size(), "from_floats: size mismatch");
  std::memcpy(t.raw(), values.data(), t.bytes());
  return t;
}

int64_t Tensor::dim(int i) const {
  const int r = rank();
  const int k = i < 0 ? r + i : i;
  FRESCO_ASSERT(k >= 0 && k < r, "dimension index out of range for " + describe());
  return shape_[size_t(k)];
}

int64_t Tensor::row_numel() const {
  // 1 for a scalar too (nothing after the first dimension), so contiguous() is defined.
  int64_t n = 1;
  for (size_t i = 1; i < shape_.size(); ++i) n *= shape_[i];
  return n;
}

void* Tensor::raw() const {
  FRESCO_ASSERT(storage_, "access to an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_;
}

float* Tensor::f32() const {
  FRESCO_ASSERT(dtype_ == DType::f32 && device() == Device::cpu && contiguous(),
                "expected a contiguous f32 host tensor, got " + describe());
  return data<float>();
}

Tensor Tensor::rows(int64_t begin, int64_t count) const {
  FRESCO_ASSERT(rank() >= 1 && begin >= 0 && count >= 0 && begin + count <= shape_[0],
                "row range [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                    ") out of bounds for " + describe());
  Tensor t = *this;
  t.shape_[0] = count;
  t.offset_ = offset_ + size_t(begin * row_stride()) * dtype_size(dtype_);
  return t;
}

Tensor Tensor::cols(int64_t begin, int64_t count) const {
  FRESCO_ASSERT(rank() == 2 && begin >= 0 && count >= 0 && begin + count <= shape_[1],
                "column range [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                    ") out of bounds for " + describe() + " (cols() takes a matrix)");
  Tensor t = *this;
  const int64_t stride = row_stride();
  t.shape_[1] = count;
  t.row_stride_ = stride == count ? 0 : stride;
  t.offset_ = offset_ + size_t(begin) * dtype_size(dtype_);
  return t;
}

Tensor Tensor::reshape(Shape shape) const {
  FRESCO_ASSERT(shape_numel(shape) == numel(),
                "reshape " + describe() + " to " + shape_string(shape));
  Tensor t = *this;
  if (contiguous()) {
    t.row_stride_ = 0;  // one dense run: any shape will do
  } else {
    FRESCO_ASSERT(!shape.empty() && shape[0] == shape_[0],
                  "reshape of " + describe() + " to " + shape_string(shape) +
                      ": a strided tensor keeps its rows (only the dimensions after the first "
                      "may be regrouped)");
  }
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  FRESCO_ASSERT(device() == Device::cpu, "clone needs a host tensor, got " + describe());
  Tensor t(shape_, dtype_);
  const HostRows r = host_rows(*this);
  const size_t es = dtype_size(dtype_);
  copy_rows(raw(), size_t(r.stride) * es, t.raw(), size_t(r.width) * es, r.rows,
            size_t(r.width) * es);
  return t;
}

Tensor Tensor::to_f32() const {
  FRESCO_ASSERT(device() == Device::cpu, "to_f32 needs a host tensor, got " + describe());
  FRESCO_ASSERT(dtype_ != DType::i64, "to_f32 of an integer tensor " + describe());
  if (dtype_ == DType::f32) return clone();
  Tensor out(shape_, DType::f32);
  const HostRows r = host_rows(*this);
  const size_t es = dtype_size(dtype_);
  for (int64_t row = 0; row < r.rows; ++row) {
    const void* src = static_cast<const char*>(raw()) + size_t(row * r.stride) * es;
    float* dst = out.data<float>() + row * r.width;
    const size_t n = size_t(r.width);
    switch (dtype_) {
      case DType::bf16: bf16_to_float(static_cast<const uint16_t*>(src), dst, n); break;
      case DType::f16: f16_to_float(static_cast<const uint16_t*>(src), dst, n); break;
      case DType::f64:
        for (size_t i = 0; i < n; ++i) dst[i] = float(static_cast<const double*>(src)[i]);
        break;
      case DType::e4m3:
        for (size_t i = 0; i < n; ++i) dst[i] = e4m3_to_float(static_cast<const uint8_t*>(src)[i]);
        break;
      case DType::f32:
      case DType::i64: break;  // handled above
    }
  }
  return out;
}

Tensor Tensor::to_dtype(DType dtype) const {
  FRESCO_ASSERT(dtype_ == DType::f32 && device() == Device::cpu,
                "to_dtype converts an f32 host tensor, got " + describe());
  FRESCO_ASSERT(dtype != DType::i64, "to_dtype: no conversion to i64");
  if (dtype == DType::f32) return clone();
  Tensor out(shape_, dtype);
  const HostRows r = host_rows(*this);
  for (int64_t row = 0; row < r.rows; ++row) {
    const float* src = data<float>() + row * r.stride;
    const size_t n = size_t(r.width);
    void* dst = static_cast<char*>(out.raw()) + size_t(row * r.width) * dtype_size(dtype);
    switch (dtype) {
      case DType::bf16: float_to_bf16(src, static_cast<uint16_t*>(dst), n); break;
      case DType::f16: float_to_f16(src, static_cast<uint16_t*>(dst), n); break;
      case DType::f64:
        for (size_t i = 0; i < n; ++i) static_cast<double*>(dst)[i] = src[i];
        break;
      case DType::e4m3:  // unscaled (saturating): scaled quantization is Backend::quantize_rows
        for (size_t i = 0; i < n; ++i) static_cast<uint8_t*>(dst)[i] = float_to_e4m3(src[i]);
        break;
      case DType::f32:
      case DType::i64: break;  // handled above
    }
  }
  return out;
}

std::vector<float> Tensor::to_vector() const {
  const Tensor f = dtype_ == DType::f32 && contiguous() ? *this : to_f32();
  const float* p = f.f32();
  return std::vector<float>(p, p + numel());
}

std::string Tensor::describe() const {
  std::string s = std::string(dtype_name(dtype_)) + shape_string(shape_) + " on " +
                  device_name(device());
  if (!contiguous()) s += ", row stride " + std::to_string(row_stride());
  return s;
}

// ---- Arena ----------------------------------------------------------------------------------

Arena::Arena(std::shared_ptr<Storage> block) : block_(std::move(block)) {}

size_t Arena::capacity() const { return block_ ? block_->bytes() : 0; }

Tensor Arena::take(const Shape& shape, DType dtype) {
  const size_t offset = (used_ + kAlignment - 1) / kAlignment * kAlignment;
  const size_t bytes = size_t(shape_numel(shape)) * dtype_size(dtype);
  FRESCO_ASSERT(measuring() || offset + bytes <= capacity(),
                "arena overflow: " + std::string(dtype_name(dtype)) + shape_string(shape) +
                    " needs bytes [" + std::to_string(offset) + ", " +
                    std::to_string(offset + bytes) + ") of a block of " +
                    std::to_string(capacity()) + " (measure the layout on the same sizes first)");
  used_ = offset + bytes;
  if (measuring()) return Tensor::from_storage(nullptr, 0, shape, dtype);  // shape only
  return Tensor::from_storage(block_, offset, shape, dtype);
}

}  // namespace fresco
