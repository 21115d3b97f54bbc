#include "src/cli/decode_result.hpp"

#include <cstdio>
#include <exception>
#include <optional>

#include "fresco/version.hpp"
#include "io/h5_file.hpp"
#include "io/image_file.hpp"
#include "io/png_file.hpp"
#include "src/cli/parallel_decode.hpp"

namespace fresco {
namespace {

// What the leader read of the source.
struct Source {
  Tensor latent;                               // f32 [16, h, w]
  std::optional<ImageProvenance> provenance;   // when the source is a Fresco image result
  DecodeOutputs outputs;
};

Source read_source(const std::string& path, const std::string& out_prefix, const VaeConfig& config, int ranks) {
  const h5::File file = h5::File::open(path);  // closed before the outputs replace it
  const Shape shape = file.dataset_shape("/latent");
  require_input(shape.size() == 3 && shape[0] == config.z_channels,
                path + ":/latent has shape " + shape_string(shape) + ", expected [" +
                    std::to_string(config.z_channels) + ", h, w]");
  require_input(shape[1] >= ranks, path + ": a latent of " + std::to_string(shape[1]) +
                                       " rows cannot be split over " + std::to_string(ranks) + " ranks");
  Source s;
  s.latent = file.read_f32("/latent");
  if (is_image_result(file)) s.provenance = read_image_provenance(file);
  s.outputs = decode_outputs(path, s.provenance.has_value(), out_prefix);
  return s;
}

// image: f32 [3, H, W] in [0, 1].
void publish(const Source& s, const std::string& path, const Tensor& image, const std::string& vae) {
  std::optional<ImageProvenance> p = s.provenance;
  if (p) p->vae = vae;
  const std::map<std::string, std::string> text =
      p ? png_text(*p)
        : std::map<std::string, std::string>{{"Software", std::string("Fresco ") + kVersion}, {"source", path}, {"vae", vae}};
  // The PNG first, as generate writes them: the HDF5 output is what marks the picture as done.
  write_png(s.outputs.png, image, text);
  try {
    if (p) {
      write_image_result(s.outputs.h5, s.latent, *p, &image);
    } else {
      h5::write_atomically(s.outputs.h5, [&](h5::File& out) {
        out.write("/image", image);
        out.write("/latent", s.latent);
        out.write_attr("vae", vae);
        out.write_attr("source", path);
      });
    }
  } catch (const Error&) {
    // Without its result the PNG would look like a finished picture; the next decode makes both.
    std::remove(s.outputs.png.c_str());
    throw;
  }
}

}  // namespace

DecodeOutputs decode_outputs(const std::string& source, bool image_result, const std::string& out_prefix) {
  std::string prefix = out_prefix;
  if (prefix.empty()) prefix = source.ends_with(".h5") ? source.substr(0, source.size() - 3) : source;
  return {prefix + ".png", prefix + (image_result ? ".h5" : ".decoded.h5")};
}

DecodedResult decode_result(VaeDecoder& decoder, Communicator& group, const std::string& source,
                            const std::string& out_prefix) {
  const bool leader = group.rank() == 0;
  DecodedResult result;
  std::exception_ptr& failure = result.failure;  // the leader's
  Source s;
  if (leader) {
    try {
      s = read_source(source, out_prefix, decoder.config(), group.size());
    } catch (const Error&) {
      failure = std::current_exception();
    }
  }
  // [read, channels, rows, columns] of the leader's latent
  const bool read = leader && !failure;
  const int64_t mine[4] = {read, read ? s.latent.dim(0) : 0, read ? s.latent.dim(1) : 0, read ? s.latent.dim(2) : 0};
  int64_t header[4];
  from_leader(group, mine, header, sizeof header);
  if (!header[0]) return result;
  Tensor latent({header[1], header[2], header[3]});  // f32 [16, h, w], the leader's copy
  from_leader(group, leader ? s.latent.raw() : nullptr, latent.raw(), size_t(latent.numel()) * sizeof(float));

  const DecodedImage d = decode_on_group(decoder, group, latent);
  result.seconds = d.seconds;
  result.image_shape = d.image.shape();
  result.outputs = s.outputs;
  if (leader) {
    try {
      if (d.non_finite)
        throw ComputeError(source + ": the decoded picture has " + std::to_string(d.non_finite) +
                           " non-finite values; nothing written");
      publish(s, source, d.image, decoder.config().name);
    } catch (const Error&) {
      failure = std::current_exception();
    }
  }
  result.published = sum_over_group(group, failure ? 1 : 0) == 0;
  return result;
}

}  // namespace fresco
