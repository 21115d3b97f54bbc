#include "src/cli/options.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "src/core/error.hpp"

namespace fresco::cli {

bool parse_options(const Command& cmd, const std::vector<std::string>& args,
                   po::variables_map& vm, std::string& help) {
  po::options_description specific(cmd.name + " options");
  po::positional_options_description positional;
  cmd.add_options(specific, positional);
  po::options_description common("common options");
  common.add_options()("help,h", "show this help")(
      "config", po::value<std::string>(),
      "INI file with the same option names (name = value); the command line wins");
  po::options_description all;
  all.add(specific).add(common);

  try {
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
    if (vm.count("help")) {
      std::ostringstream s;
      s << "usage: " << cmd.usage << "\n\n" << cmd.details << "\n\n" << all;
      help = s.str();
      return false;
    }
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) throw InputError("cannot read config file " + path);
      // Options already stored from the command line keep their values.
      po::store(po::parse_config_file(in, specific, /*allow_unregistered=*/false), vm);
    }
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

void add_layout_options(po::options_description& o) {
  o.add_options()
      ("ulysses", po::value<int>()->default_value(0),
       "Ulysses degree U: ranks of an image that exchange heads by all-to-all (0: automatic)")
      ("ring", po::value<int>()->default_value(0),
       "Ring degree R: groups of U ranks that pass K/V around a ring (0: automatic); U x R ranks\n"
       "compute one image, the rest of the world is data parallel")
      ("ranks-per-node", po::value<int>()->default_value(0),
       "emulate nodes of this many consecutive ranks (0: detect the real nodes)");
}

LayoutRequest layout_request(const po::variables_map& vm) {
  return {vm["ulysses"].as<int>(), vm["ring"].as<int>(), vm["ranks-per-node"].as<int>()};
}

void require_positive(const po::variables_map& vm, const std::string& name) {
  const boost::any& v = vm[name].value();
  double x = 1;
  if (const auto* i = boost::any_cast<int>(&v)) x = *i;
  else if (const auto* l = boost::any_cast<int64_t>(&v)) x = double(*l);
  require_input(x > 0, "option --" + name + " must be positive (got " + value_string(v) + ")");
}

int configure_threads(int requested, int ranks_on_node) {
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  int n = std::max(1, cores / std::max(1, ranks_on_node));
  if (const char* env = std::getenv("OMP_NUM_THREADS"); env && std::atoi(env) > 0) n = std::atoi(env);
  if (requested > 0) n = requested;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
  return n;
}

}  // namespace fresco::cli
