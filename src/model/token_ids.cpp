#include "src/model/token_ids.hpp"

#include "src/core/error.hpp"

namespace fresco {

const Tensor& DeviceTokenIds::upload(std::span<const int32_t> ids, int64_t vocab, const std::string& model,
                                     Backend& backend) {
  const int64_t L = int64_t(ids.size());
  require_input(L > 0, model + ": no tokens to encode");
  for (int64_t l = 0; l < L; ++l)
    require_input(ids[size_t(l)] >= 0 && ids[size_t(l)] < vocab,
                  model + ": token id " + std::to_string(ids[size_t(l)]) + " at position " + std::to_string(l) +
                      " is outside the vocabulary (" + std::to_string(vocab) + " ids)");
  backend.synchronize();  // the previous copy from host_ is done before host_ changes
  if (!device_.defined() || device_.numel() != L) {
    host_ = Tensor({L}, DType::i64);
    device_ = backend.alloc({L}, DType::i64);
  }
  for (int64_t l = 0; l < L; ++l) host_.data<int64_t>()[l] = ids[size_t(l)];
  backend.copy(host_, device_);
  return device_;
}

Tensor constant_vector(Backend& backend, int64_t n, DType dtype, float value) {
  const Tensor t = backend.alloc({n}, dtype);
  backend.fill_random(0, 0, 0, value, 0.0f, t);  // std 0: the constant, nothing drawn
  return t;
}

void require_encoder_dtype(DType compute, const std::string& encoder) {
  require_input(compute == DType::f32 || compute == DType::bf16,
                encoder + " computes in f32 or bf16, not " + dtype_name(compute));
}

}  // namespace fresco
