#include "src/cli/options.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <cmath>
#include <sstream>
#include <thread>

#include "mpi/comm/transports.hpp"
#include "src/cli/config_file.hpp"
#include "src/runtime/validation.hpp"
#include "src/model/weights_io.hpp"
#include "src/core/error.hpp"

namespace fresco::cli {

bool parse_options(const Command& cmd, const std::vector<std::string>& args,
                   po::variables_map& vm, std::string& help) {
  po::options_description specific(cmd.name + " options");
  po::positional_options_description positional;
  cmd.add_options(specific, positional);
  po::options_description common("common options");
  common.add_options()("help,h", "show this help")(
      "config", po::value<std::string>(), kConfigOptionHelp);
  po::options_description all;
  all.add(specific).add(common);

  // Boost's error messages substitute "%canonical_option%" and friends in a loop that never
  // ends when the option's own name holds one (found by fuzz/fuzz_config): names with '%'
  // are refused before Boost sees them.
  for (const std::string& a : args)
    if (a.starts_with("-") && a.substr(0, a.find('=')).find('%') != std::string::npos)
      throw InputError("fresco " + cmd.name + ": '" + a + "' is not an option name (see fresco " + cmd.name + " --help)");
  try {
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
    if (vm.count("help")) {
      std::ostringstream s;
      s << "usage: " << cmd.usage << "\n\n" << cmd.details << "\n\n" << all;
      help = s.str();
      return false;
    }
    if (vm.count("config")) store_config_file(vm["config"].as<std::string>(), cmd, specific, vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw InputError(std::string("fresco ") + cmd.name + ": " + e.what() +
                     " (see fresco " + cmd.name + " --help)");
  }
  return true;
}

namespace {
std::string value_string(const boost::any& v) {
  if (const auto* s = boost::any_cast<std::string>(&v)) return *s;
  if (const auto* i = boost::any_cast<int>(&v)) return std::to_string(*i);
  if (const auto* l = boost::any_cast<int64_t>(&v)) return std::to_string(*l);
  if (const auto* u = boost::any_cast<uint64_t>(&v)) return std::to_string(*u);
  if (const auto* d = boost::any_cast<double>(&v)) {
    std::ostringstream s;
    s << *d;
    return s.str();
  }
  if (const auto* b = boost::any_cast<bool>(&v)) return *b ? "true" : "false";
  if (const auto* list = boost::any_cast<std::vector<std::string>>(&v)) {  // repeatable options (--lora)
    std::string joined;
    for (const std::string& item : *list) joined += (joined.empty() ? "" : " ") + item;
    return joined;
  }
  return "(set)";
}
}  // namespace

std::string effective_configuration(const po::variables_map& vm) {
  std::ostringstream s;
  for (const auto& [name, value] : vm) {
    if (name == "help") continue;
    s << "  " << name << " = " << value_string(value.value())
      << (value.defaulted() ? "  (default)" : "") << "\n";
  }
  return s.str();
}

nlohmann::json settings_record(const po::variables_map& vm) {
  nlohmann::json settings = nlohmann::json::object();
  for (const auto& [name, value] : vm)
    if (name != "help") settings[name] = value_string(value.value());
  return settings;
}

DType parse_dtype_option(const std::string& option, const std::string& s) {
  if (s == "f32" || s == "float32") return DType::f32;
  if (s == "bf16" || s == "bfloat16") return DType::bf16;
  if (s == "f16" || s == "float16") return DType::f16;
  throw InputError("option --" + option + " must be f32, bf16 or f16 (got '" + s + "')");
}

void add_engine_options(po::options_description& o) {
  o.add_options()
      ("backend", po::value<std::string>()->default_value("auto"),
       "where the ops run: cpu (the reference backend), cuda (a GPU per rank: the rank's index\n"
       "on its node, modulo the visible GPUs), or auto: cuda where this build has it and a GPU\n"
       "is present, else cpu (FRESCO_DEFAULT_BACKEND=cpu|cuda in the environment overrides auto)")
      ("cuda-graphs", po::value<std::string>()->default_value("on"),
       "on: a denoising step is captured once per image shape as a CUDA graph and replayed\n"
       "(cuda backend; with ranks per image, for --parallel sequence over nccl or ipc);\n"
       "off: every op is launched eagerly (debugging)")
      ("dtype", po::value<std::string>()->default_value("auto"),
       (std::string("compute dtype of the activations: ") + kComputeDtypeChoices +
        " (bf16: what the GPU runs; on the CPU the ops round to bf16 where a GPU kernel stores;\n"
        "fp8: bf16, with every block's token linears on e4m3 operands, weights per output\n"
        "channel and activations per token: opt-in, faster on Hopper GPUs, less exact; the CPU\n"
        "emulates it). Weights are converted to the activations' dtype when it is not f32")
           .c_str())
      ("fp8-bf16-steps", po::value<int>()->default_value(0),
       "with --dtype fp8: the first N and the last N denoising steps of each image run in bf16\n"
       "(the hybrid schedule: FP8's error kept out of the steps that set the composition and the\n"
       "fine detail); 0: every step in fp8")
      ("fp8-attention", po::bool_switch(),
       "the joint attention with q, k, v and the softmax probabilities in e4m3, one scale per\n"
       "tensor (cuDNN's FP8 flash attention on Hopper GPUs; the CPU emulates it): opt-in, faster,\n"
       "less exact; with --dtype bf16 or fp8 (the hybrid schedule's bf16 steps keep bf16\n"
       "attention)")
      ("transport", po::value<std::string>()->default_value("auto"),
       "how the ranks of an image exchange activations: mpi (host memory; GPU buffers staged\n"
       "through pinned host memory), ipc (CUDA IPC puts between the GPU ranks of one node;\n"
       "ranks may share a GPU), nccl (one GPU per rank, within and across nodes), ucx (UCX\n"
       "one-sided puts of host memory, where built; GPU buffers staged as for mpi;\n"
       "docs/cluster.md), or auto: mpi on CPU ranks; on GPU ranks ipc within a node, else\n"
       "nccl, else mpi")
      ("comm-timeout", po::value<double>()->default_value(Communicator::kDefaultDeadlineSeconds),
       "seconds a rank waits for a peer's data before it declares the peer hung or dead and\n"
       "ends the job (0: wait forever)");
}

EngineChoice engine_choice(const po::variables_map& vm) {
  EngineChoice e;
  e.backend_auto = vm["backend"].as<std::string>() == "auto";
  e.backend = backend_option(vm);
  const std::string graphs = vm["cuda-graphs"].as<std::string>();
  require_input(graphs == "on" || graphs == "off", "option --cuda-graphs must be on or off (got '" + graphs + "')");
  e.cuda_graphs = graphs == "on";
  e.compute = resolve_compute_dtype(vm["dtype"].as<std::string>(), e.backend);
  e.fp8 = fp8_dtype_option(vm["dtype"].as<std::string>());
  e.fp8_bf16_steps = vm["fp8-bf16-steps"].as<int>();
  require_input(e.fp8_bf16_steps >= 0, "option --fp8-bf16-steps must be 0 or more");
  require_input(e.fp8_bf16_steps == 0 || e.fp8, "option --fp8-bf16-steps goes with --dtype fp8");
  e.fp8_attention = vm["fp8-attention"].as<bool>();
  require_input(!e.fp8_attention || e.compute == DType::bf16,
                "option --fp8-attention goes with --dtype bf16 or fp8 (the activations it quantizes are bf16)");
  e.transport = vm["transport"].as<std::string>();
  check_transport_name(e.transport);
  require_input(e.backend == "cuda" || e.transport == "auto" || e.transport == "mpi" || e.transport == "ucx",
                "--transport " + e.transport + " moves GPU memory; with --backend cpu use mpi, ucx or auto");
  e.comm_timeout = vm["comm-timeout"].as<double>();
  require_input(e.comm_timeout >= 0 && std::isfinite(e.comm_timeout),
                "option --comm-timeout must be a non-negative number of seconds");
  return e;
}

std::string backend_option(const po::variables_map& vm) {
  const std::string backend = vm["backend"].as<std::string>();
  require_input(backend == "auto" || backend == "cpu" || backend == "cuda",
                "option --backend must be auto, cpu or cuda (got '" + backend + "')");
  return backend == "auto" ? default_backend_name() : backend;
}

bool fp8_comm_option(const po::variables_map& vm) {
  const std::string wire = vm["comm-dtype"].as<std::string>();
  require_input(wire == "auto" || wire == "e4m3", "option --comm-dtype must be auto or e4m3 (got '" + wire + "')");
  return wire == "e4m3";
}

BenchEngine bench_engine(const po::variables_map& vm) {
  BenchEngine e;
  e.backend = backend_option(vm);
  e.dtype = resolve_compute_dtype(vm["dtype"].as<std::string>(), e.backend);
  require_input(!fp8_dtype_option(vm["dtype"].as<std::string>()),
                "--dtype fp8 changes the transformer's linears; the decoder has none: use auto, f32 or bf16");
  return e;
}

void add_model_options(po::options_description& o) {
  o.add_options()
      ("weights", po::value<std::string>()->required(),
       "weights file (HDF5, fresco-weights), or random:SEED for the --model preset's random\n"
       "weights made directly on the device (benchmarks; no file)")
      ("model", po::value<std::string>()->default_value("auto"),
       "preset: flux-dev, flux-schnell, flux-small, flux-tiny, qwen-image, qwen-tiny\n(docs/qwen-image.md), or auto (the weights' own)")
      ("threads", po::value<int>()->default_value(0),
       "CPU threads per rank (0: OMP_NUM_THREADS, else cores / ranks on the node)");
}

void add_parallel_options(po::options_description& o) {
  o.add_options()
      ("parallel", po::value<std::string>()->default_value("sequence"),
       "how an image is split over its ranks: sequence (exact Ulysses x Ring) or patch\n"
       "(DistriFusion: displaced patches, stale activations of the other patches)")
      ("ulysses", po::value<int>()->default_value(0),
       "sequence: Ulysses degree U, ranks of an image that exchange heads by all-to-all (0: automatic)")
      ("ring", po::value<int>()->default_value(0),
       "sequence: Ring degree R, groups of U ranks that pass K/V around a ring (0: automatic);\n"
       "U x R ranks compute one image, the rest of the world is data parallel")
      ("patches", po::value<int>()->default_value(0),
       "patch: ranks (patches) per image (0: automatic); the rest is data parallel")
      ("warmup-steps", po::value<int>()->default_value(4),
       "patch: synchronous (exact) steps before the displaced ones")
      ("sync-mode", po::value<std::string>()->default_value("async"),
       "patch: async (displaced) or full_sync (every step synchronous: the quality reference)")
      ("stale-dtype", po::value<std::string>()->default_value("auto"),
       "patch: type of the stale K/V buffers: auto (the activations' dtype, --dtype: the K/V are\n"
       "computed in it, so nothing is lost and nothing converted), f32, bf16 or f16 (halve f32's\n"
       "memory), or e4m3 (FP8 with per-token scales: a quarter of f32, and of the gathers' bytes)")
      ("comm-dtype", po::value<std::string>()->default_value("auto"),
       "what the ranks of an image exchange: auto (the activations' dtype: exact) or e4m3 (FP8\n"
       "with per-token scales, opt-in and inexact: sequence: q, k, v of the Ulysses all-to-all;\n"
       "patch: the stale K/V, as --stale-dtype e4m3). `fresco compare` measures the difference")
      ("ranks-per-node", po::value<int>()->default_value(0),
       "emulate nodes of this many consecutive ranks (0: detect the real nodes)")
      ("head-groups", po::value<int>()->default_value(0),
       "sequence, Ulysses alone (ring 1): exchange and attend each rank's heads in this many\n"
       "groups, so that a group's transfers overlap the attention of the one before (FastUSP's\n"
       "pipeline; 0: automatic = 1, which measured fastest on 4 H100s; see docs/performance.md)")
      ("inter-node", po::value<std::string>()->default_value("ring"),
       "sequence: how K/V chunks move between the Ulysses groups (nodes): ring (passed on to the\n"
       "next group) or torus (StreamFusion: each group sends its own chunk in shifted pairwise steps)")
      ("emulate-link", po::value<std::string>()->default_value("off"),
       "BW_GBps,LATENCY_us: emulate a slow link between nodes (with --ranks-per-node): exchanges\n"
       "between ranks of different nodes finish no earlier than bytes / BW + LATENCY (an emulation\n"
       "for studies on one machine; the data still moves over the real transport)");
}

ParallelChoice parallel_choice(const po::variables_map& vm) {
  ParallelChoice c;
  const std::string method = vm["parallel"].as<std::string>();
  const int rpn = vm["ranks-per-node"].as<int>();
  if (method == "sequence") {
    require_input(vm["patches"].defaulted(), "--patches applies to --parallel patch");
    c.layout.ulysses = vm["ulysses"].as<int>();
    c.layout.ring = vm["ring"].as<int>();
  } else if (method == "patch") {
    require_input(vm["ulysses"].defaulted() && vm["ring"].defaulted(),
                  "--ulysses and --ring apply to --parallel sequence; use --patches with --parallel patch");
    const int patches = vm["patches"].as<int>();
    require_input(patches >= 0, "--patches must not be negative");
    c.plan.method = ParallelMethod::patch;
    c.layout.ulysses = patches;  // a patch group is the layout's Ulysses axis
    c.layout.ring = patches > 0 ? 1 : 0;
    c.layout.patches = true;
  } else {
    throw InputError("option --parallel must be sequence or patch (got '" + method + "')");
  }
  c.layout.ranks_per_node = rpn;
  c.plan.head_groups = vm["head-groups"].as<int>();
  require_input(c.plan.head_groups >= 0, "option --head-groups must not be negative");
  require_input(c.plan.head_groups == 0 || c.plan.method == ParallelMethod::sequence,
                "--head-groups applies to --parallel sequence");
  const std::string inter_node = vm["inter-node"].as<std::string>();
  require_input(inter_node == "ring" || inter_node == "torus",
                "option --inter-node must be ring or torus (got '" + inter_node + "')");
  c.plan.inter_node = inter_node == "torus" ? InterNodeSchedule::torus : InterNodeSchedule::ring;
  c.layout.link = LinkEmulation::parse(vm["emulate-link"].as<std::string>());
  const std::string mode = vm["sync-mode"].as<std::string>();
  require_input(mode == "async" || mode == "full_sync",
                "option --sync-mode must be async or full_sync (got '" + mode + "')");
  c.plan.displaced.full_sync = mode == "full_sync";
  c.plan.displaced.warmup_steps = vm["warmup-steps"].as<int>();
  require_input(c.plan.displaced.warmup_steps >= 1,
                "option --warmup-steps must be at least 1 (the first step has no earlier activations)");
  const std::string stale = vm["stale-dtype"].as<std::string>();
  c.plan.displaced.stale_dtype_auto = stale == "auto";
  if (stale == "e4m3") {
    c.plan.displaced.stale_dtype = DType::e4m3;
  } else if (!c.plan.displaced.stale_dtype_auto) {
    try {
      c.plan.displaced.stale_dtype = parse_dtype_option("stale-dtype", stale);
    } catch (const InputError&) {  // the floating-point types are not all it takes
      throw InputError("option --stale-dtype must be auto, f32, bf16, f16 or e4m3 (got '" + stale + "')");
    }
  }
  if (fp8_comm_option(vm)) {
    if (c.plan.method == ParallelMethod::patch) {
      require_input(stale == "auto" || stale == "e4m3",
                    "--comm-dtype e4m3 with --parallel patch means --stale-dtype e4m3 (got --stale-dtype " + stale + ")");
      c.plan.displaced.stale_dtype = DType::e4m3;
      c.plan.displaced.stale_dtype_auto = false;
    } else {
      c.plan.fp8_wire = true;
    }
  }
  return c;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::optional<double> whole_number(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (text.find_first_not_of(" \t", used) != std::string::npos || !std::isfinite(value)) return std::nullopt;
  return value;
}

void require_positive(const po::variables_map& vm, const std::string& name) {
  const boost::any& v = vm[name].value();
  double x = 1;
  if (const auto* i = boost::any_cast<int>(&v)) x = *i;
  else if (const auto* l = boost::any_cast<int64_t>(&v)) x = double(*l);
  require_input(x > 0, "option --" + name + " must be positive (got " + value_string(v) + ")");
}

}  // namespace fresco::cli
