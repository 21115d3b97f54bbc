// `fresco decode`: saved latents to pictures with the autoencoder's decoder, loaded once; each
// file is decoded by all ranks of the job together (patch-parallel: bands of rows, exact) and
// published with its PNG (decode_result.hpp).
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <regex>

#include "io/atomic_output.hpp"
#include "mpi/comm/mpi_communicator.hpp"
#include "mpi/comm/transports.hpp"
#include "src/cli/commands.hpp"
#include "src/cli/decode_result.hpp"
#include "src/cli/parallel_decode.hpp"

namespace fresco::cli {
namespace {

namespace fs = std::filesystem;

// Peak resident memory of this process in bytes (Linux reports KiB).
double peak_memory_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) * 1024.0;
}

// The files to decode: each path as given, a directory as its image results (img_{i}.h5, by
// index; temporary files and other outputs do not match).
std::vector<std::string> expand_inputs(const std::vector<std::string>& paths) {
  static const std::regex result_name(R"(img_(\d+)\.h5)");
  std::vector<std::string> files;
  for (const std::string& path : paths) {
    if (!fs::is_directory(path)) {
      files.push_back(path);
      continue;
    }
    std::vector<std::pair<int64_t, std::string>> found;
    for (const fs::directory_entry& e : fs::directory_iterator(path)) {
      std::smatch m;
      const std::string name = e.path().filename().string();
      if (std::regex_match(name, m, result_name)) found.emplace_back(std::stoll(m[1]), (fs::path(path) / name).string());
    }
    require_input(!found.empty(), "directory " + path + " holds no image result (img_{i}.h5)");
    std::sort(found.begin(), found.end());
    for (auto& [index, file] : found) files.push_back(std::move(file));
  }
  return files;
}

// The leader's list of files on every rank of the group, so that all decode the same sequence
// even where a directory's listing differs between nodes.
std::vector<std::string> leader_list(Communicator& group, const std::vector<std::string>& files) {
  std::string joined;
  for (const std::string& f : files) joined += f + '\n';
  const int64_t length = sum_over_group(group, group.rank() == 0 ? int64_t(joined.size()) : 0);
  std::vector<char> all(static_cast<size_t>(length));
  from_leader(group, joined.data(), all.data(), all.size());
  std::vector<std::string> out;
  for (auto begin = all.begin(); begin != all.end();) {
    const auto end = std::find(begin, all.end(), '\n');
    out.emplace_back(begin, end);
    begin = end + 1;
  }
  return out;
}

}  // namespace

Command decode_command() {
  Command c;
  c.name = "decode";
  c.summary = "decode saved latents into PNGs with the autoencoder (patch-parallel over the ranks)";
  c.usage = "[mpiexec -n N] fresco decode --vae AE.h5 LATENT.h5|DIR... [--out PREFIX]";
  c.details =
      "Decodes /latent [16, h, w] of each file given (a generate result or any file with\n"
      "/latent; a directory: every img_{i}.h5 in it) with the decoder loaded once, each file\n"
      "by all ranks together (each rank a band of latent rows; halos, GroupNorm statistics and\n"
      "the mid-block attention are exchanged, so the result equals one rank's). For each file it\n"
      "writes PREFIX.png (8-bit RGB) and, for a generate result, PREFIX.h5: the result with its\n"
      "picture /image [3, H, W] in [0, 1] added, as generate --vae writes it (by default the file\n"
      "itself, completed in place); for any other file, PREFIX.decoded.h5 (/image, /latent), the\n"
      "file itself untouched. PREFIX: --out (one file only), else the file's path without .h5.\n"
      "Every output is published atomically and read back first. A file that cannot be decoded\n"
      "or written is reported and left as it was, and the others are still decoded; the exit\n"
      "status is then that of the first failure (2 bad input, 3 write failure, 5 non-finite).";
  c.add_options = [](po::options_description& o, po::positional_options_description& p) {
    o.add_options()
        ("vae", po::value<std::string>()->required(), "autoencoder weights (flux-ae, ae-small, ae-tiny)")
        ("latent", po::value<std::vector<std::string>>()->required()->multitoken(),
         "HDF5 files with /latent, or directories of generate results (positional, one or more)")
        ("out", po::value<std::string>()->default_value(""),
         "output prefix, for one file (default: the file's path without .h5)")
        ("threads", po::value<int>()->default_value(0),
         "CPU threads per rank (0: OMP_NUM_THREADS, else cores / ranks on the node)");
    add_engine_options(o);
    p.add("latent", -1);
  };
  c.setup = [](const po::variables_map& vm, const RunContext& ctx) -> std::function<int()> {
    configure_threads(vm["threads"].as<int>(), ctx.mpi.local_size());
    const std::vector<std::string> files = expand_inputs(vm["latent"].as<std::vector<std::string>>());
    const std::string prefix = vm["out"].as<std::string>();
    require_input(prefix.empty() || files.size() == 1,
                  "--out names the outputs of one file; " + std::to_string(files.size()) + " files were given");
    for (const std::string& f : files) ensure_output_path(decode_outputs(f, false, prefix).png);
    EngineChoice engine = engine_choice(vm);
    require_input(!engine.fp8, "--dtype fp8 changes the transformer's linears; the decoder has none: use auto, f32 or bf16");
    auto backend = std::shared_ptr<Backend>(make_backend(engine.backend, ctx.mpi.local_rank()));
    std::shared_ptr<VaeDecoder> decoder = load_decoder(vm["vae"].as<std::string>(), *backend, engine);
    // The closure owns the backend too: the decoder only refers to it.
    return [backend, decoder, files, prefix, engine, &mpi = ctx.mpi]() {
      MPI_Comm world;
      FRESCO_MPI_CHECK(MPI_Comm_dup(mpi.world(), &world));
      const std::unique_ptr<Communicator> transport =
          make_transport(engine.transport, backend->device() == Device::cuda,
                         std::make_unique<MpiCommunicator>(world, "decode"));
      Communicator& group = *transport;
      group.set_deadline(engine.comm_timeout);
      const bool leader = group.rank() == 0;
      int64_t failed = 0, first_status = 0;
      double seconds = 0;
      for (const std::string& file : leader_list(group, files)) {
        const DecodedResult r = decode_result(*decoder, group, file, prefix);
        seconds += r.seconds;
        failed += !r.published;
        if (r.published && leader)
          std::printf("fresco decode: wrote %s and %s %s\n", r.outputs.png.c_str(), r.outputs.h5.c_str(),
                      shape_string(r.image_shape).c_str());
        if (!r.failure) continue;
        try {  // this file's failure (the leader's), reported as main reports an error
          std::rethrow_exception(r.failure);
        } catch (const Error& e) {
          std::cerr << "fresco: error (rank " << mpi.rank() << "): " << e.what() << std::endl;
          if (!first_status) first_status = e.exit_code();
        }
      }
      const double mine[2] = {seconds, peak_memory_bytes()};
      std::vector<double> all(size_t(2 * group.size()));
      group.host_all_gather(mine, all.data(),
                            Displacements::packed(std::vector<size_t>(size_t(group.size()), sizeof mine)));
      if (leader) {
        for (int r = 0; r < group.size(); ++r)
          std::printf("fresco decode: rank %d decoded in %.3f s, peak memory %.1f MiB\n", r, all[size_t(2 * r)],
                      all[size_t(2 * r + 1)] / (1 << 20));
        std::printf("fresco decode: %zu file(s), %lld failed\n", files.size(), static_cast<long long>(failed));
      }
      // Every rank ends with the leader's status, so the job's status does not depend on
      // which rank mpiexec reports.
      return int(sum_over_group(group, leader ? first_status : 0));
    };
  };
  return c;
}

}  // namespace fresco::cli
