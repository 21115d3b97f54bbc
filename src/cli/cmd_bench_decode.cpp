// `fresco bench-decode`: times the autoencoder's decoder at one image size, on one device or
// patch-parallel over all ranks of the job (each rank a band of rows, as `fresco decode` and
// `generate --vae` split it), with random weights made on the device (or a weights file), and
// measures what the convolutions of a rank's band reach alone, so that the decode time can be
// read against the convolution ceiling.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <tuple>

#include "mpi/comm/mpi_communicator.hpp"
#include "mpi/comm/transports.hpp"
#include "mpi/plans/row_partition.hpp"
#include "src/backend/backend.hpp"
#include "src/cli/commands.hpp"
#include "src/cli/options.hpp"
#include "src/cli/parallel_decode.hpp"
#include "src/model/hooks.hpp"
#include "src/model/vae_config.hpp"
#include "src/model/vae_decoder.hpp"
#include "src/model/weights_io.hpp"
#include "src/runtime/engine.hpp"
#include "src/runtime/step_runner.hpp"

#ifdef FRESCO_HAVE_CUDA
#include "cuda/device_info.hpp"
#endif

namespace fresco::cli {
namespace {

struct DecodeBenchOptions {
  std::string vae = "random:0", model = "flux-ae", backend = "cuda", transport = "auto";
  int64_t width = 1024, height = 1024, repeat = 5;
  DType dtype = DType::bf16;
  bool convs = true, json = false;
};

// One convolution shape of the decoder and how often a decode runs it.
struct ConvShape {
  int64_t Ci, Co, k, H, W;
  bool operator<(const ConvShape& o) const {
    return std::tie(Ci, Co, k, H, W) < std::tie(o.Ci, o.Co, o.k, o.H, o.W);
  }
  double flops() const { return 2.0 * double(Ci) * double(Co) * double(k * k) * double(H) * double(W); }
};

// The decoder's convolutions (walking the spec's structure as VaeDecoder::decode does) and the
// mid-block attention's FLOPs (4 n^2 C: scores and output) for a latent of h x w.
std::map<ConvShape, int> decoder_convs(const VaeConfig& c, int64_t h, int64_t w, double& attention_flops) {
  std::map<ConvShape, int> convs;
  int64_t H = h, W = w;
  auto conv = [&](int64_t ci, int64_t co, int64_t k) { ++convs[{ci, co, k, H, W}]; };
  auto resnet = [&](int64_t ci, int64_t co) {
    conv(ci, co, 3);
    conv(co, co, 3);
    if (ci != co) conv(ci, co, 1);
  };
  int64_t C = c.width(c.levels() - 1);
  conv(c.z_channels, C, 3);
  resnet(C, C);
  for (int i = 0; i < 4; ++i) conv(C, C, 1);  // q, k, v, proj_out
  attention_flops = 4.0 * double(H * W) * double(H * W) * double(C);
  resnet(C, C);
  for (int level = c.levels() - 1; level >= 0; --level) {
    for (int b = 0; b <= c.num_res_blocks; ++b) {
      resnet(C, c.width(level));
      C = c.width(level);
    }
    if (level != 0) {
      H *= 2;
      W *= 2;
      conv(C, C, 3);
    }
  }
  conv(C, c.out_ch, 3);
  return convs;
}

// Milliseconds of `work` on the backend's stream: the median of `reps` after one untimed run.
template <typename F>
double time_ms(Backend& backend, int reps, F&& work) {
  work();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto start = backend.new_timing_event(), stop = backend.new_timing_event();
    start->record(backend.stream());
    work();
    stop->record(backend.stream());
    stop->synchronize();
    ms.push_back(stop->elapsed_ms(*start));
  }
  return median(ms);
}

// One rank's figures, gathered on rank 0.
struct RankFigures {
  double ms = 0, peak_gib = -1;
  int64_t rows = 0;
};

int run_bench_decode(const DecodeBenchOptions& o, const MpiSession& mpi) {
  const VaeConfig config = vae_preset(o.model);
  const int64_t f = config.upscale();
  const int64_t h = o.height / f, w = o.width / f;
  const std::unique_ptr<Backend> backend = make_backend(o.backend, mpi.local_rank());
  const int64_t mem_context = backend->device_memory_in_use();
  ModelWeights weights = load_weights(o.vae, o.model, *backend, o.dtype);
  VaeDecoder decoder(config, std::move(weights), *backend, o.dtype);
  const int64_t mem_weights = backend->device_memory_in_use();

  // All ranks decode one image: halos, GroupNorm sums and the mid-block attention go through
  // the transport (IPC or NCCL between GPU ranks). One rank decodes the whole latent alone.
  MPI_Comm world;
  FRESCO_MPI_CHECK(MPI_Comm_dup(mpi.world(), &world));
  const std::unique_ptr<Communicator> group = make_transport(
      o.transport, backend->device() == Device::cuda, std::make_unique<MpiCommunicator>(world, "bench-decode"));
  std::unique_ptr<RowPartition> rows;
  int64_t first_row = 0;
  if (group->size() == 1) {
    rows = std::make_unique<LocalRows>(h);
  } else {
    auto group_rows = std::make_unique<GroupRows>(*group, h, int(config.width(config.levels() - 1)));
    first_row = group_rows->first_row();
    rows = std::move(group_rows);
  }
  const int64_t mine = rows->latent_rows()[size_t(rows->index())];

  // A latent of standard normal values (the sampler's final latents are about that): the whole
  // latent is drawn on every rank, and each keeps its band [16, mine, w].
  Tensor whole({config.z_channels, h, w});
  std::mt19937_64 gen(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < whole.numel(); ++i) whole.f32()[i] = normal(gen);
  const Tensor latent = latent_band(whole, first_row, mine);

  // The first decode lays out the slots and plans every convolution; the timed ones reuse both.
  // Each decode starts on all ranks together (a barrier with the device idle); a rank's time is
  // from its start to its last op, the group's the slowest rank's.
  const auto decode_once = [&](Tensor& out) {
    backend->synchronize();
    group->barrier();
    const auto a = backend->new_timing_event(), b = backend->new_timing_event();
    a->record(backend->stream());
    out = decoder.decode(latent, *rows);
    b->record(backend->stream());
    b->synchronize();
    return b->elapsed_ms(*a);
  };
  Tensor out;
  const double first_ms = decode_once(out);
  std::vector<double> ms;
  for (int64_t i = 0; i < o.repeat; ++i) ms.push_back(decode_once(out));
  // Nothing the decoder or the backend holds is freed between decodes: in use now is the peak.
  const int64_t mem_peak = backend->device_memory_in_use();
  const Tensor bad = backend->alloc({1}, DType::i64);
  backend->count_nonfinite(out, bad);
  const int64_t non_finite = sum_over_group(*group, backend->download(bad).data<int64_t>()[0]);
  const double gib = 1024.0 * 1024.0 * 1024.0;
  const bool known = mem_peak >= 0 && mem_context >= 0;  // device memory is not known on the CPU (-1)
  const auto in_gib = [&](int64_t bytes) { return known ? double(bytes) / gib : -1.0; };

  const RankFigures here{median(ms), in_gib(mem_peak), mine};
  std::vector<RankFigures> per_rank(size_t(group->size()));
  group->host_all_gather(&here, per_rank.data(),
                         Displacements::packed(std::vector<size_t>(per_rank.size(), sizeof(RankFigures))));
  double decode_ms = 0, worst_peak = -1;
  for (const RankFigures& r : per_rank) {
    decode_ms = std::max(decode_ms, r.ms);
    worst_peak = std::max(worst_peak, r.peak_gib);
  }

  double attention_flops = 0;
  // The FLOPs of the whole decode, and the convolutions of this rank's band (its share).
  double conv_flops = 0;
  for (const auto& [s, n] : decoder_convs(config, h, w, attention_flops)) conv_flops += n * s.flops();
  double band_attention_flops = 0;
  const auto convs = decoder_convs(config, mine, w, band_attention_flops);
  double band_conv_flops = 0;
  for (const auto& [s, n] : convs) band_conv_flops += n * s.flops();

  // Each convolution shape alone (random operands, the decode's dtype): its rate, the best of
  // them (the ceiling the decoder's convolutions reach here) and the decode's convolution time
  // at those rates.
  struct Rate {
    ConvShape s;
    int n;
    double ms;
  };
  std::vector<Rate> rates;
  double conv_ms = 0, ceiling = 0;
  std::string ceiling_shape;
  if (o.convs && mpi.rank() == 0) {  // alone on its GPU: the other ranks wait
    int64_t most_x = 0, most_y = 0, most_w = 0;
    for (const auto& [s, n] : convs) {
      most_x = std::max(most_x, s.Ci * s.H * s.W);
      most_y = std::max(most_y, s.Co * s.H * s.W);
      most_w = std::max(most_w, s.Co * s.Ci * s.k * s.k);
    }
    const Tensor xs = backend->alloc({most_x}, o.dtype), ys = backend->alloc({most_y}, o.dtype);
    const Tensor ws = backend->alloc({most_w}, o.dtype), bs = backend->alloc({4096}, o.dtype);
    backend->fill_random(7, 0, 0, 0.0f, 1.0f, xs);
    backend->fill_random(7, 0, 1, 0.0f, 0.05f, ws);
    backend->fill_random(7, 0, 2, 0.0f, 0.1f, bs);
    for (const auto& [s, n] : convs) {
      const Tensor x = xs.rows(0, s.Ci * s.H * s.W).reshape({s.Ci, s.H, s.W});
      const Tensor y = ys.rows(0, s.Co * s.H * s.W).reshape({s.Co, s.H, s.W});
      const Tensor wt = ws.rows(0, s.Co * s.Ci * s.k * s.k).reshape({s.Co, s.Ci, s.k, s.k});
      const Tensor b = bs.rows(0, s.Co);
      const double t = time_ms(*backend, 5, [&] { backend->conv2d(x, wt, b, int(s.k / 2), y); });
      rates.push_back({s, n, t});
      conv_ms += n * t;
      const double tflops = s.flops() / (t * 1e9);
      if (tflops > ceiling) {
        ceiling = tflops;
        ceiling_shape = std::to_string(s.Ci) + "->" + std::to_string(s.Co) + " k" + std::to_string(s.k) + " @" +
                        std::to_string(s.H) + "x" + std::to_string(s.W);
      }
    }
  }
  const double total_flops = conv_flops + attention_flops;
  // The floor of this rank's convolutions at the ceiling, against the group's decode time.
  const double floor_ms = ceiling > 0 ? band_conv_flops / (ceiling * 1e9) : 0;
  const std::string device = device_name(*backend, mpi.local_rank());
  if (mpi.rank() != 0) return non_finite == 0 ? 0 : 5;
  std::string ranks_json;
  for (const RankFigures& r : per_rank)
    ranks_json += (ranks_json.empty() ? "" : ",") + std::string("{\"ms\":") + std::to_string(r.ms) +
                  ",\"peak_gib\":" + std::to_string(r.peak_gib) + ",\"latent_rows\":" + std::to_string(r.rows) + "}";
  if (o.json) {
    std::printf(
        "{\"command\":\"bench-decode\",\"model\":\"%s\",\"width\":%lld,\"height\":%lld,\"dtype\":\"%s\","
        "\"device\":\"%s\",\"ms\":%.3f,\"first_ms\":%.3f,\"repeat\":%lld,\"peak_gib\":%.3f,\"weights_gib\":%.3f,"
        "\"context_gib\":%.3f,\"tflop\":%.3f,\"conv_tflop\":%.3f,\"attention_tflop\":%.3f,\"tflops\":%.1f,"
        "\"conv_ms_alone\":%.3f,\"conv_ceiling_tflops\":%.1f,\"conv_floor_ms\":%.3f,\"fraction_of_conv_ceiling\":%.3f,"
        "\"non_finite\":%lld,\"ranks\":%d,\"transport\":\"%s\",\"per_rank\":[%s]}\n",
        o.model.c_str(), (long long)o.width, (long long)o.height, dtype_name(o.dtype), device.c_str(), decode_ms,
        first_ms, (long long)o.repeat, worst_peak, in_gib(mem_weights - mem_context), in_gib(mem_context),
        total_flops / 1e12, conv_flops / 1e12, attention_flops / 1e12,
        total_flops / (decode_ms * 1e9), conv_ms, ceiling, floor_ms, floor_ms / decode_ms, (long long)non_finite,
        group->size(), group->describe().c_str(), ranks_json.c_str());
  } else {
    std::printf("fresco bench-decode: %s %lldx%lld %s on %s (%s), %d rank%s\n", o.model.c_str(), (long long)o.width,
                (long long)o.height, dtype_name(o.dtype), device.c_str(), o.vae.c_str(), group->size(),
                group->size() > 1 ? ("s over " + group->describe()).c_str() : "");
    if (group->size() > 1) {
      std::printf("  %-6s %12s %10s %14s\n", "rank", "latent rows", "ms", "peak GiB");
      for (size_t r = 0; r < per_rank.size(); ++r)
        std::printf("  %-6zu %12lld %10.2f %14.2f\n", r, (long long)per_rank[r].rows, per_rank[r].ms,
                    per_rank[r].peak_gib);
    }
    if (!rates.empty()) {
      std::printf("  %-22s %6s %10s %10s %9s\n", "convolution", "calls", "ms each", "ms total", "TFLOP/s");
      for (const Rate& r : rates)
        std::printf("  %4lld->%-4lld k%lld %5lldx%-5lld %6d %10.3f %10.2f %9.1f\n", (long long)r.s.Ci,
                    (long long)r.s.Co, (long long)r.s.k, (long long)r.s.H, (long long)r.s.W, r.n, r.ms, r.n * r.ms,
                    r.s.flops() / (r.ms * 1e9));
    }
    std::printf("  decode: %.2f ms (median of %lld; first %.1f ms), %.2f TFLOP (conv %.2f, attention %.2f): %.0f TFLOP/s\n",
                decode_ms, (long long)o.repeat, first_ms, total_flops / 1e12, conv_flops / 1e12,
                attention_flops / 1e12, total_flops / (decode_ms * 1e9));
    if (known)
      std::printf("  device memory in use: %.2f GiB peak (context %.2f, weights %.2f, decoder's buffers and scratch %.2f)\n",
                  in_gib(mem_peak), in_gib(mem_context), in_gib(mem_weights - mem_context), in_gib(mem_peak - mem_weights));
    if (ceiling > 0)
      std::printf("  rank 0's convolutions alone: %.2f ms; ceiling %.0f TFLOP/s (%s); conv floor %.2f ms = %.0f%% of the decode\n",
                  conv_ms, ceiling, ceiling_shape.c_str(), floor_ms, 100.0 * floor_ms / decode_ms);
    std::printf("  non-finite values in the output: %lld\n", (long long)non_finite);
  }
  return non_finite == 0 ? 0 : 5;
}

}  // namespace

Command bench_decode_command() {
  Command c;
  c.name = "bench-decode";
  c.summary = "time the autoencoder's decoder at one image size (ms, peak device memory, conv ceiling)";
  c.usage = "[mpiexec -n N] fresco bench-decode [--width 2048 --height 2048] [--vae random:0] [--json]";
  c.details =
      "Decodes a random latent of the image size with the preset's random weights made on the\n"
      "device (--vae random:SEED) or a weights file, once untimed (slot layout and convolution\n"
      "plans) and --repeat times timed (device events; the median is reported). On N ranks the\n"
      "ranks decode the one image together, each a band of latent rows (halos, GroupNorm sums\n"
      "and the mid-block attention exchanged through --transport), each decode started on all\n"
      "ranks at once; the group's time is the slowest rank's, and each rank's time and peak\n"
      "memory are listed. Prints the device memory in use after the decodes (the peak: nothing\n"
      "is freed between them), the FLOPs of the decoder, and each convolution shape of rank 0's\n"
      "band timed alone: their sum, the best rate (the convolution ceiling here) and the band's\n"
      "convolution floor at that rate as a fraction of the decode time.";
  c.add_options = [](po::options_description& o, po::positional_options_description&) {
    o.add_options()
        ("vae", po::value<std::string>()->default_value("random:0"), "random:SEED, or autoencoder weights of --model")
        ("model", po::value<std::string>()->default_value("flux-ae"), "autoencoder preset: flux-ae, ae-small, ae-tiny")
        ("width", po::value<int64_t>()->default_value(1024), "image width in pixels (a multiple of the preset's upscale)")
        ("height", po::value<int64_t>()->default_value(1024), "image height in pixels")
        ("repeat", po::value<int64_t>()->default_value(5), "timed decodes")
        ("backend", po::value<std::string>()->default_value("auto"), "auto (cuda where a GPU is present), cpu or cuda")
        ("dtype", po::value<std::string>()->default_value("auto"), "auto (bf16 on cuda, f32 on cpu), f32 or bf16")
        ("transport", po::value<std::string>()->default_value("auto"),
         "several ranks: auto, mpi, ipc, nccl or ucx (see fresco generate --help)")
        ("no-convs", po::bool_switch(), "skip timing each convolution shape alone")
        ("json", po::bool_switch(), "print one JSON object instead of the text report");
  };
  c.setup = [](const po::variables_map& vm, const RunContext& ctx) -> std::function<int()> {
    DecodeBenchOptions o;
    o.vae = vm["vae"].as<std::string>();
    o.model = vm["model"].as<std::string>();
    require_input(is_vae_preset(o.model), "option --model: " + o.model + " is not an autoencoder preset");
    const VaeConfig config = vae_preset(o.model);
    o.width = vm["width"].as<int64_t>();
    o.height = vm["height"].as<int64_t>();
    require_input(o.width > 0 && o.height > 0 && o.width % config.upscale() == 0 && o.height % config.upscale() == 0,
                  "options --width and --height must be positive multiples of " + std::to_string(config.upscale()));
    require_input(o.height / config.upscale() >= ctx.mpi.size(),
                  "a latent of " + std::to_string(o.height / config.upscale()) + " rows cannot be split over " +
                      std::to_string(ctx.mpi.size()) + " ranks");
    o.transport = vm["transport"].as<std::string>();
    check_transport_name(o.transport);
    o.repeat = vm["repeat"].as<int64_t>();
    require_input(o.repeat >= 1, "option --repeat must be at least 1");
    const BenchEngine engine = bench_engine(vm);
    o.backend = engine.backend;
    o.dtype = engine.dtype;
    o.convs = !vm["no-convs"].as<bool>();
    o.json = vm["json"].as<bool>();
    return [o, &mpi = ctx.mpi]() { return run_bench_decode(o, mpi); };
  };
  return c;
}

}  // namespace fresco::cli
