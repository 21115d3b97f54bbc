// `fresco decode`: a saved latent to a picture with the autoencoder's decoder, split over all
// ranks of the job (patch-parallel: bands of rows, exact).
#include <sys/resource.h>

#include <cstdio>

#include "mpi/comm/transports.hpp"
#include "io/atomic_output.hpp"
#include "io/h5_file.hpp"
#include "io/image_file.hpp"
#include "io/png_file.hpp"
#include "mpi/comm/mpi_communicator.hpp"
#include "src/cli/parallel_decode.hpp"
#include "src/cli/commands.hpp"
#include "src/model/vae_config.hpp"

namespace fresco::cli {
namespace {

std::string default_prefix(const std::string& latent_path) {
  return latent_path.ends_with(".h5") ? latent_path.substr(0, latent_path.size() - 3) : latent_path;
}

// Peak resident memory of this process in bytes (Linux reports KiB).
double peak_memory_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) * 1024.0;
}

}  // namespace

Command decode_command() {
  Command c;
  c.name = "decode";
  c.summary = "decode a saved latent into a PNG with the autoencoder (patch-parallel over the ranks)";
  c.usage = "[mpiexec -n N] fresco decode --vae AE.h5 LATENT.h5 [--out PREFIX]";
  c.details =
      "Reads /latent [16, h, w] (a generate result or any such file), decodes it on all ranks\n"
      "(each rank a band of latent rows; halos, GroupNorm statistics and the mid-block attention\n"
      "are exchanged, so the result equals one rank's), and writes PREFIX.png (8-bit RGB) and\n"
      "PREFIX.decoded.h5 (/image [3, H, W] in [0, 1] and /latent). PREFIX defaults to the latent\n"
      "file's path without .h5.";
  c.add_options = [](po::options_description& o, po::positional_options_description& p) {
    o.add_options()
        ("vae", po::value<std::string>()->required(), "autoencoder weights (flux-ae, ae-small, ae-tiny)")
        ("latent", po::value<std::string>()->required(), "HDF5 file with /latent (positional)")
        ("out", po::value<std::string>()->default_value(""), "output prefix (default: the latent's path without .h5)")
        ("threads", po::value<int>()->default_value(0),
         "CPU threads per rank (0: OMP_NUM_THREADS, else cores / ranks on the node)");
    add_engine_options(o);
    p.add("latent", 1);
  };
  c.setup = [](const po::variables_map& vm, const RunContext& ctx) -> std::function<int()> {
    configure_threads(vm["threads"].as<int>(), ctx.mpi.local_size());
    const std::string latent_path = vm["latent"].as<std::string>();
    std::string prefix = vm["out"].as<std::string>();
    if (prefix.empty()) prefix = default_prefix(latent_path);
    ensure_output_path(prefix + ".png");
    EngineChoice engine = engine_choice(vm);
    auto backend = std::shared_ptr<Backend>(make_engine_backend(engine, ctx.mpi.local_rank()));
    std::shared_ptr<VaeDecoder> decoder = load_decoder(vm["vae"].as<std::string>(), *backend, engine);
    const VaeConfig& config = decoder->config();
    const std::string preset = config.name;
    const h5::File file = h5::File::open(latent_path);
    const Shape shape = file.dataset_shape("/latent");
    require_input(shape.size() == 3 && shape[0] == config.z_channels,
                  latent_path + ":/latent has shape " + shape_string(shape) + ", expected [" +
                      std::to_string(config.z_channels) + ", h, w]");
    require_input(shape[1] >= ctx.mpi.size(), latent_path + ": a latent of " + std::to_string(shape[1]) +
                                                  " rows cannot be split over " + std::to_string(ctx.mpi.size()) +
                                                  " ranks");
    const Tensor latent = file.read_f32("/latent");
    // The closure owns the backend too: the decoder only refers to it.
    return [backend, decoder, latent, latent_path, prefix, preset, engine, &mpi = ctx.mpi]() {
      MPI_Comm world;
      FRESCO_MPI_CHECK(MPI_Comm_dup(mpi.world(), &world));
      const std::unique_ptr<Communicator> transport =
          make_transport(engine.transport, backend->device() == Device::cuda,
                         std::make_unique<MpiCommunicator>(world, "decode"));
      Communicator& group = *transport;
      group.set_deadline(engine.comm_timeout);
      const DecodedImage d = decode_on_group(*decoder, group, latent);
      const double mine[2] = {d.seconds, peak_memory_bytes()};
      std::vector<double> all(size_t(2 * group.size()));
      group.host_all_gather(mine, all.data(),
                            Displacements::packed(std::vector<size_t>(size_t(group.size()), sizeof mine)));
      if (mpi.rank() != 0) return 0;
      for (int r = 0; r < group.size(); ++r)
        std::printf("fresco decode: rank %d decoded in %.3f s, peak memory %.1f MiB\n", r, all[size_t(2 * r)],
                    all[size_t(2 * r + 1)] / (1 << 20));
      if (d.non_finite)
        throw ComputeError(latent_path + ": the decoded image has " + std::to_string(d.non_finite) +
                           " non-finite values; nothing written");
      write_png(prefix + ".png", d.image, {{"Software", "Fresco"}, {"source", latent_path}, {"vae", preset}});
      h5::write_atomically(prefix + ".decoded.h5", [&](h5::File& out) {
        out.write("/image", d.image);
        out.write("/latent", latent);
        out.write_attr("vae", preset);
        out.write_attr("source", latent_path);
      });
      std::printf("fresco decode: wrote %s.png and %s.decoded.h5 %s\n", prefix.c_str(), prefix.c_str(),
                  shape_string(d.image.shape()).c_str());
      return 0;
    };
  };
  return c;
}

}  // namespace fresco::cli
