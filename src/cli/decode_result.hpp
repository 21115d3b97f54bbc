// A saved latent completed with its picture: the group decodes the file's /latent (bands of
// rows, decode_on_group) and its leader publishes the PNG and the HDF5 output with /image.
// `fresco decode` runs it for every file it is given; `generate` can run it for a result of its
// batch that has its latent but lacks the picture, instead of denoising the image again.
#pragma once

#include <exception>
#include <string>

#include "mpi/comm/communicator.hpp"
#include "src/model/vae_decoder.hpp"

namespace fresco {

// Where the decode of `source` is published: PREFIX.png, and PREFIX.h5 when `source` is a
// Fresco image result (by default the source itself: the result is completed in place, as
// `generate --vae` would have written it) or PREFIX.decoded.h5 for any other file with /latent
// (such a file is never rewritten). PREFIX: `out_prefix`, else the source's path without .h5.
struct DecodeOutputs {
  std::string png;
  std::string h5;
};
DecodeOutputs decode_outputs(const std::string& source, bool image_result, const std::string& out_prefix = "");

struct DecodedResult {
  bool published = false;  // the same on every rank of the group
  // The leader's, when not published: why (an InputError, ApiError, ComputeError or IoError
  // naming the file), for the caller to report and go on, or to rethrow.
  std::exception_ptr failure;
  DecodeOutputs outputs;   // where it was published (the leader's)
  Shape image_shape;       // [3, H, W] of the picture
  double seconds = 0;      // this rank's decode
};

// Collective over `group`: every rank calls it with the same `source` and `out_prefix`. The
// group leader (rank 0 of `group`) reads /latent [16, h, w] and sends it to the others, the
// group decodes it, and the leader publishes the PNG, then the HDF5 output (an image result
// keeps its latent and provenance and gains /image and `vae`; another file's output holds
// /latent, /image, `vae` and `source`). Each is written atomically and read back before it is
// renamed; when the HDF5 output fails, the PNG just published is removed, so a picture never
// stands without its result, and the source is unchanged.
// A failure of this file is not thrown but returned (`failure`, on the leader) after the
// group's last collective for the file, so the group can go on with the next one: the file
// does not read, has no /latent or a shape the decoder or the group cannot take; the picture
// has non-finite values (nothing written); the outputs could not be written. Errors of the
// decode itself (a communication timeout, a backend failure) leave the group out of step and
// are thrown.
DecodedResult decode_result(VaeDecoder& decoder, Communicator& group, const std::string& source,
                            const std::string& out_prefix = "");

}  // namespace fresco
