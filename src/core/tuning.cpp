#include "src/core/tuning.hpp"

#include <cmath>
#include <cstdlib>
#include <iterator>

#include "src/core/error.hpp"

namespace fresco::tuning {
namespace {

// One row per switch: id, name, kind, fallback, the op test's value on the first line (the
// gpu-labelled CTest cuda_switch_* runs test_backend_ops once per row with a value there;
// tests/CMakeLists.txt reads these lines), then what it does.
constexpr SwitchInfo kSwitches[] = {
    {Switch::default_backend, "FRESCO_DEFAULT_BACKEND", Kind::text, "", "",
     "what --backend auto means, cpu or cuda (unset: cuda where a GPU is visible, else cpu); the "
     "test suite sets cpu"},
    {Switch::memory_per_rank, "FRESCO_MEMORY_PER_RANK", Kind::number, "", "",
     "the memory of one rank in MiB for the estimate checked before the first step, on either "
     "backend (unset: the node's physical memory or cgroup limit shared by its ranks; on cuda "
     "the GPU's memory shared by its ranks, less 1 GiB each)"},
    {Switch::gnuplot, "FRESCO_GNUPLOT", Kind::text, "gnuplot", "",
     "the gnuplot program that `fresco sweep` draws its plots with"},
    {Switch::comm_trace, "FRESCO_COMM_TRACE", Kind::text, "", "",
     "a path prefix: the device transports' exchanges write the device time of each round's "
     "phases to PREFIX.rankN.jsonl (docs/transports.md)"},
    {Switch::decode_profile, "FRESCO_DECODE_PROFILE", Kind::flag, "0", "",
     "1: the VAE decoder prints the device time of each part of a decode"},
    {Switch::cuda_vector, "FRESCO_CUDA_VECTOR", Kind::flag, "1", "0",
     "0: the scalar element-wise, epilogue, LayerNorm and RMSNorm/RoPE kernels instead of the "
     "vectorised (16-byte) ones"},
    {Switch::cuda_rope_rows, "FRESCO_CUDA_ROPE_ROWS", Kind::flag, "1", "0",
     "0: RMSNorm+RoPE with a warp per head instead of a warp per row (A/B open: within noise at "
     "1024^2, docs/performance.md)"},
    {Switch::cuda_verbose, "FRESCO_CUDA_VERBOSE", Kind::flag, "0", "",
     "1: the CUDA backend prints what it chose (cuBLASLt and cuDNN plans, and why cuDNN "
     "declined) when it is destroyed"},
    {Switch::cudnn_sdpa, "FRESCO_CUDNN_SDPA", Kind::flag, "1", "0",
     "0: attention through the tiled kernel instead of cuDNN's fused SDPA"},
    {Switch::cudnn_stats, "FRESCO_CUDNN_STATS", Kind::flag, "0", "1",
     "1: cuDNN attention always writes the softmax statistics (by default a call without lse "
     "uses cuDNN's inference form; A/B open: within noise, docs/performance.md)"},
    {Switch::cudnn_graph, "FRESCO_CUDNN_GRAPH", Kind::flag, "1", "0",
     "0: cuDNN's attention and convolution calls are made directly instead of replayed from a "
     "graph captured per shape and pointers (a direct call allocates host memory every time)"},
    {Switch::cudnn_conv, "FRESCO_CUDNN_CONV", Kind::flag, "1", "0",
     "0: every convolution through the direct kernel instead of cuDNN"},
    {Switch::cudnn_conv_find, "FRESCO_CUDNN_CONV_FIND", Kind::flag, "0", "1",
     "1: time every cuDNN convolution algorithm once per shape instead of taking the "
     "heuristic's order (not yet measured)"},
    {Switch::cudnn_conv_span, "FRESCO_CUDNN_CONV_SPAN", Kind::number, "", "1000",
     "the largest element offset one cuDNN convolution may address (unset: 2^31 - 1, cuDNN's); "
     "a small value makes small images run in channel chunks, for tests"},
    {Switch::cudnn_conv_workspace_mb, "FRESCO_CUDNN_CONV_WORKSPACE_MB", Kind::number, "512", "0.01",
     "the cuDNN convolution workspace in MiB; a convolution whose fast algorithm needs more "
     "runs in bands of rows"},
};
static_assert(std::size(kSwitches) == size_t(Switch::count), "one row per Switch");

constexpr bool rows_in_order() {
  for (size_t i = 0; i < std::size(kSwitches); ++i)
    if (kSwitches[i].id != Switch(i)) return false;
  return true;
}
static_assert(rows_in_order(), "the rows of kSwitches follow the order of Switch");

// The environment's values, read once ("" where unset).
const std::string& raw(Switch s) {
  static const std::vector<std::string> values = [] {
    std::vector<std::string> v;
    for (const SwitchInfo& i : kSwitches) {
      const char* e = std::getenv(i.name);
      v.emplace_back(e ? e : "");
    }
    return v;
  }();
  return values[size_t(s)];
}

const SwitchInfo& checked(Switch s, Kind kind) {
  const SwitchInfo& i = info(s);
  FRESCO_ASSERT(i.kind == kind, std::string(i.name) + " read as another kind of switch");
  return i;
}

// The value in effect: the environment's, else the fallback.
std::string effective(const SwitchInfo& i) { return raw(i.id).empty() ? i.fallback : raw(i.id); }

}  // namespace

const std::vector<SwitchInfo>& switches() {
  static const std::vector<SwitchInfo> all(std::begin(kSwitches), std::end(kSwitches));
  return all;
}

const SwitchInfo& info(Switch s) {
  FRESCO_ASSERT(size_t(s) < std::size(kSwitches), "no such switch");
  return switches()[size_t(s)];
}

bool is_set(Switch s) { return !raw(s).empty(); }

bool flag(Switch s) { return parse_flag(s, effective(checked(s, Kind::flag))); }

double number(Switch s) { return parse_number(s, effective(checked(s, Kind::number))); }

std::string text(Switch s) { return effective(checked(s, Kind::text)); }

bool parse_flag(Switch s, const std::string& v) {
  const SwitchInfo& i = checked(s, Kind::flag);
  if (v == "1" || v == "on" || v == "yes" || v == "true") return true;
  if (v == "0" || v == "off" || v == "no" || v == "false") return false;
  throw InputError(std::string(i.name) + " must be 1, on, yes or true, or 0, off, no or false (got '" + v + "')");
}

double parse_number(Switch s, const std::string& v) {
  const SwitchInfo& i = checked(s, Kind::number);
  if (v.empty()) return 0;
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (end == v.c_str() || *end != '\0' || !std::isfinite(x) || x <= 0)
    throw InputError(std::string(i.name) + " must be a positive number (got '" + v + "')");
  return x;
}

}  // namespace fresco::tuning
