#include "src/core/tensor.hpp"

#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>

#include "src/core/error.hpp"
#include "src/core/float16.hpp"

namespace fresco {

size_t dtype_size(DType dtype) { return dtype == DType::f32 ? 4 : 2; }

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
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

Storage::Storage(Device device, size_t bytes) : device_(device), bytes_(bytes), data_(nullptr) {
  FRESCO_ASSERT(device == Device::cpu, "Storage allocates CPU memory only; devices own theirs");
  const size_t rounded = (bytes + 63) / 64 * 64;
  data_ = std::aligned_alloc(64, rounded ? rounded : 64);
  if (!data_) throw std::bad_alloc();
}

Storage::~Storage() { std::free(data_); }

Tensor::Tensor(Shape shape, DType dtype)
    : storage_(std::make_shared<Storage>(Device::cpu, size_t(shape_numel(shape)) * dtype_size(dtype))),
      shape_(std::move(shape)),
      dtype_(dtype) {}

Tensor Tensor::zeros(Shape shape, DType dtype) {
  Tensor t(std::move(shape), dtype);
  std::memset(t.raw(), 0, t.bytes());
  return t;
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, size_t offset_bytes, Shape shape,
                            DType dtype) {
  Tensor t;
  FRESCO_ASSERT(offset_bytes + size_t(shape_numel(shape)) * dtype_size(dtype) <= storage->bytes(),
                "tensor view exceeds its storage");
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
  FRESCO_ASSERT(rank() >= 1, "row_numel of a scalar");
  return shape_numel(Shape(shape_.begin() + 1, shape_.end()));
}

void* Tensor::raw() const {
  FRESCO_ASSERT(storage_, "access to an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_;
}

float* Tensor::f32() const {
  FRESCO_ASSERT(dtype_ == DType::f32 && device() == Device::cpu,
                "expected an f32 CPU tensor, got " + describe());
  return data<float>();
}

Tensor Tensor::rows(int64_t begin, int64_t count) const {
  FRESCO_ASSERT(rank() >= 1 && begin >= 0 && count >= 0 && begin + count <= shape_[0],
                "row range out of bounds for " + describe());
  Shape s = shape_;
  s[0] = count;
  return from_storage(storage_, offset_ + size_t(begin * row_numel()) * dtype_size(dtype_), s,
                      dtype_);
}

Tensor Tensor::reshape(Shape shape) const {
  FRESCO_ASSERT(shape_numel(shape) == numel(),
                "reshape " + describe() + " to " + shape_string(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(shape_, dtype_);
  std::memcpy(t.raw(), raw(), bytes());
  return t;
}

Tensor Tensor::to_f32() const {
  FRESCO_ASSERT(device() == Device::cpu, "to_f32 needs a CPU tensor");
  Tensor out(shape_, DType::f32);
  const size_t n = size_t(numel());
  switch (dtype_) {
    case DType::f32: std::memcpy(out.raw(), raw(), bytes()); break;
    case DType::bf16: bf16_to_float(data<uint16_t>(), out.f32(), n); break;
    case DType::f16: f16_to_float(data<uint16_t>(), out.f32(), n); break;
  }
  return out;
}

Tensor Tensor::to_dtype(DType dtype) const {
  const float* src = f32();
  Tensor out(shape_, dtype);
  const size_t n = size_t(numel());
  switch (dtype) {
    case DType::f32: std::memcpy(out.raw(), src, bytes()); break;
    case DType::bf16: float_to_bf16(src, out.data<uint16_t>(), n); break;
    case DType::f16: float_to_f16(src, out.data<uint16_t>(), n); break;
  }
  return out;
}

std::vector<float> Tensor::to_vector() const {
  const Tensor f = dtype_ == DType::f32 ? *this : to_f32();
  const float* p = f.f32();
  return std::vector<float>(p, p + numel());
}

std::string Tensor::describe() const {
  return std::string(dtype_name(dtype_)) + shape_string(shape_) + " on " + device_name(device());
}

}  // namespace fresco
