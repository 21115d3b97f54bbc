// A 64-bit digest of what determines a result (resume checks it before trusting a file) and a
// host scan for non-finite values. Not cryptographic: it tells configurations apart, it does
// not defend against an adversary.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "src/core/tensor.hpp"

namespace fresco {

class Digest {
 public:
  Digest& bytes(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {  // FNV-1a
      h_ ^= p[i];
      h_ *= 0x100000001b3ULL;
    }
    return *this;
  }
  Digest& add(const std::string& s) { return u64(s.size()).bytes(s.data(), s.size()); }
  Digest& u64(uint64_t v) { return bytes(&v, sizeof v); }
  Digest& i64(int64_t v) { return bytes(&v, sizeof v); }
  Digest& f64(double v) { return bytes(&v, sizeof v); }
  // Dtype, shape and every byte of a host tensor (any row stride).
  Digest& tensor(const Tensor& t) {
    add(dtype_name(t.dtype()));
    for (int64_t d : t.shape()) i64(d);
    if (t.numel() == 0) return *this;
    const Tensor dense = t.contiguous() ? t : t.clone();
    // Whole 8-byte words mixed by a multiply (fast), the tail by bytes.
    const size_t n = dense.bytes(), words = n / 8;
    const auto* p = static_cast<const unsigned char*>(dense.raw());
    uint64_t acc = h_;
    for (size_t i = 0; i < words; ++i) {
      uint64_t w;
      std::memcpy(&w, p + 8 * i, 8);
      acc = (acc ^ w) * 0x9E3779B97F4A7C15ULL;
      acc ^= acc >> 29;
    }
    h_ = acc;
    return bytes(p + 8 * words, n - 8 * words);
  }
  uint64_t value() const { return h_; }
  std::string hex() const {
    char s[17];
    std::snprintf(s, sizeof s, "%016llx", (unsigned long long)h_);
    return s;
  }

 private:
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

// Non-finite values of a host tensor of f32, bf16, f16 or f64 (bit tests for the 16-bit
// types: no conversion); OpenMP over the elements.
int64_t count_nonfinite_host(const Tensor& t);

}  // namespace fresco
