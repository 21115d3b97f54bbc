#include "mpi/comm/exchange_trace.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "src/core/tuning.hpp"

namespace fresco {
namespace {

constexpr int64_t kTracedRounds = 1 << 14;  // per exchange: a few hundred steps of one call each
constexpr const char* kPhaseNames[] = {"produced", "comm_begins", "permission", "puts_done",
                                       "arrived", "consumer_waits", "consumer_runs"};

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// JSON string contents: the exchange names hold no quotes or backslashes, but be safe.
std::string escaped(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::unique_ptr<ExchangeTrace> ExchangeTrace::if_requested(const std::string& what) {
  if (!tuning::is_set(tuning::Switch::comm_trace)) return nullptr;
  const std::string prefix = tuning::text(tuning::Switch::comm_trace);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return std::make_unique<ExchangeTrace>(what, prefix + ".rank" + std::to_string(rank) + ".jsonl");
}

ExchangeTrace::ExchangeTrace(std::string what, std::string path)
    : what_(std::move(what)), path_(std::move(path)), log_(kTracedRounds, kPhases) {}

ExchangeTrace::~ExchangeTrace() {
  try {
    int64_t dropped = 0;
    const auto rounds = log_.rounds(&dropped);
    // Intervals between consecutive phases that were stamped in a round (an unused phase, 0,
    // is skipped: the interval runs from the last stamped one).
    std::vector<std::vector<double>> ms(kPhases);
    for (const auto& r : rounds) {
      int last = -1;
      for (int p = 0; p < kPhases; ++p) {
        if (r[size_t(p)] == 0) continue;
        if (last >= 0) ms[size_t(p)].push_back(double(int64_t(r[size_t(p)] - r[size_t(last)])) / 1e6);
        last = p;
      }
    }
    std::FILE* f = std::fopen(path_.c_str(), "a");
    if (!f) {
      std::fprintf(stderr, "fresco: FRESCO_COMM_TRACE: cannot write %s\n", path_.c_str());
      return;
    }
    std::fprintf(f, "{\"exchange\":\"%s\",\"rounds\":%zu,\"dropped\":%lld,\"intervals\":{", escaped(what_).c_str(),
                 rounds.size(), (long long)dropped);
    bool first = true;
    for (int p = 1; p < kPhases; ++p) {
      if (ms[size_t(p)].empty()) continue;
      double total = 0;
      for (double x : ms[size_t(p)]) total += x;
      std::fprintf(f, "%s\"to_%s\":{\"median_ms\":%.4f,\"total_ms\":%.3f}", first ? "" : ",", kPhaseNames[p],
                   median_of(ms[size_t(p)]), total);
      first = false;
    }
    std::fprintf(f, "}}\n");
    std::fclose(f);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fresco: FRESCO_COMM_TRACE of %s: %s\n", what_.c_str(), e.what());
  }
}

}  // namespace fresco
