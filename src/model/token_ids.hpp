// What the two text encoders share around their layers: a prompt's token ids checked and put
// on the device for the embedding lookup, the constant gate of their residual adds, and the
// compute dtypes they run in.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "src/backend/backend.hpp"

namespace fresco {

// A prompt's token ids as an i64 [L] tensor on a backend's device.
class DeviceTokenIds {
 public:
  // Checks ids (1 <= L, each in [0, vocab): InputError naming `model` otherwise) and copies them
  // to the device (a new tensor only when L changes). Waits for the previous copy first.
  const Tensor& upload(std::span<const int32_t> ids, int64_t vocab, const std::string& model, Backend& backend);

 private:
  Tensor host_;    // [L] i64: alive while the copy may run
  Tensor device_;  // [L] i64
};

// [n] of the constant `value` in `dtype` on the backend: the gate of ones with which linear's
// gated-residual epilogue adds a layer's output to the residual stream (x += 1 * (a W^T + b)).
Tensor constant_vector(Backend& backend, int64_t n, DType dtype, float value);

// InputError unless `compute` is f32 or bf16 (the encoders' compute dtypes).
void require_encoder_dtype(DType compute, const std::string& encoder);

}  // namespace fresco
