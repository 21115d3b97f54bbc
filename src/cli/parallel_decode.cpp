#include "src/cli/parallel_decode.hpp"

#include <algorithm>
#include <chrono>

#include "mpi/plans/row_partition.hpp"

namespace fresco {

Tensor latent_band(const Tensor& latent, int64_t first, int64_t count) {
  // channel-major: one block of rows per channel
  const int64_t C = latent.dim(0), h = latent.dim(1), w = latent.dim(2);
  const Tensor whole = latent.to_f32();
  Tensor band({C, count, w});
  for (int64_t ch = 0; ch < C; ++ch)
    std::copy_n(whole.f32() + (ch * h + first) * w, count * w, band.f32() + ch * count * w);
  return band;
}

int64_t sum_over_group(Communicator& group, int64_t value) {
  std::vector<int64_t> all(size_t(group.size()));
  group.host_all_gather(&value, all.data(), Displacements::packed(std::vector<size_t>(all.size(), sizeof(int64_t))));
  int64_t sum = 0;
  for (int64_t v : all) sum += v;
  return sum;
}

void from_leader(Communicator& group, const void* send, void* recv, size_t bytes) {
  // The host all-gather, to which the other ranks contribute nothing.
  std::vector<size_t> counts(size_t(group.size()), 0);
  counts[0] = bytes;
  group.host_all_gather(send, recv, Displacements::packed(std::move(counts)));
}

DecodedImage decode_on_group(VaeDecoder& decoder, Communicator& group, const Tensor& latent) {
  const auto start = std::chrono::steady_clock::now();
  Backend& backend = decoder.backend();
  const VaeConfig& c = decoder.config();
  const int64_t h = latent.dim(1), w = latent.dim(2), f = c.upscale();
  GroupRows rows(group, h, c.width(c.levels() - 1));
  const int64_t mine = rows.latent_rows()[size_t(rows.index())];
  const Tensor out = decoder.decode(latent_band(latent, rows.first_row(), mine), rows);  // [3, mine f, w f]

  // Gather pixel rows: [3, r, W] -> [r W, 3] (row-major pixels, f32) -> all ranks' [H W, 3].
  const int64_t W = w * f, my_pixels = mine * f * W;
  const Tensor bad = backend.alloc({1}, DType::i64);
  backend.count_nonfinite(out, bad);
  const Tensor hwc = backend.alloc({my_pixels, 3}, out.dtype());
  backend.transpose(out.reshape({3, my_pixels}), hwc);
  const Tensor hwc_f32 = backend.alloc({my_pixels, 3}, DType::f32);
  backend.copy(hwc, hwc_f32);
  std::vector<size_t> counts;
  for (int64_t r : rows.latent_rows()) counts.push_back(size_t(r * f * W * 3) * dtype_size(DType::f32));
  Tensor all({h * f * W, 3});
  group.host_all_gather(backend.download(hwc_f32).raw(), all.raw(), Displacements::packed(std::move(counts)));
  const int64_t bad_here = backend.download(bad).data<int64_t>()[0];

  // Back to channel-major [3, H, W] with the backend's transpose.
  const Tensor chw_device = backend.alloc({3, h * f, W}, DType::f32);
  backend.transpose(backend.upload(all), chw_device.reshape({3, h * f * W}));
  const Tensor chw = backend.download(chw_device);
  DecodedImage result;
  result.non_finite = sum_over_group(group, bad_here);
  result.image = decoded_to_image(chw);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace fresco
