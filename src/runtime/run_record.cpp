#include "src/runtime/run_record.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "fresco/version.hpp"
#include "io/atomic_output.hpp"
#include "src/core/error.hpp"

namespace fresco {

using nlohmann::json;

RunRecord::RunRecord(std::string command, std::string command_line) {
  record_["schema"] = "fresco-run-record";
  record_["schema_version"] = 1;
  record_["command"] = std::move(command);
  record_["command_line"] = std::move(command_line);
  record_["version"] = kVersion;
  record_["commit"] = kCommit;
}

void RunRecord::set_engine(const Engine& e) {
  const ParallelLayout& layout = *e.layout;
  const PlanOptions& plan = e.parallel.plan;
  const bool patch = plan.method == ParallelMethod::patch;
  record_["ranks"] = e.mpi.size();
  record_["engine"] = {
      {"backend", e.backend->name()},
      {"device", device_name(*e.backend, e.mpi.local_rank())},
      {"dtype", precision_name(e.choice)},
      {"fp8_bf16_steps", e.choice.fp8_bf16_steps},
      {"fp8_attention", e.choice.fp8_attention},
      {"cuda_graphs", e.choice.cuda_graphs},
      {"transport", layout.group().describe()},
      {"method", patch ? "patch" : "sequence"},
      {"group_size", layout.group_size()},
      {"groups", layout.groups()},
      {"ulysses", patch ? 1 : layout.ulysses()},
      {"ring", patch ? 1 : layout.ring()},
      {"patches", patch ? layout.group_size() : 1},
      {"comm_dtype", plan.fp8_wire || (patch && plan.displaced.stale_dtype == DType::e4m3) ? "e4m3"
                                                                                           : dtype_name(plan.compute)},
      {"cache", describe_cache(e.cache)},
  };
  json loras = json::array();  // docs/checkpoints.md "LoRA"
  for (const LoraSummary& l : e.loras)
    loras.push_back({{"path", l.path}, {"digest", l.digest}, {"scale", l.scale}, {"pairs", l.pairs}});
  record_["engine"]["lora"] = std::move(loras);
  const DenoiserSpec& s = e.spec;
  record_["model"] = {{"name", s.name},
                      {"family", s.family},
                      {"attention_layers", s.attention.layers},
                      {"heads", s.attention.heads},
                      {"head_dim", s.attention.head_dim}};
}

void RunRecord::add_image(const ImageJob& job, const DenoisedImage& r, bool ok) {
  json steps = json::array(), eager = json::array(), kinds = json::array();
  for (const auto& s : r.step_times) {
    steps.push_back(s.ms);
    eager.push_back(s.eager);
    kinds.push_back(s.kind);
  }
  json image = {{"index", job.index},       {"width", job.width},   {"height", job.height},
                {"steps", job.steps},       {"seed", job.seed},     {"guidance", job.guidance},
                {"ok", ok},                 {"seconds", r.seconds}, {"ms_per_step", r.median_step_ms()},
                {"step_ms", steps},         {"step_eager", eager},  {"step_kind", kinds},
                {"mib_sent_per_step", r.bytes_sent / double(1 << 20) / double(std::max<int64_t>(job.steps, 1))}};
  if (!job.prompt_text.empty()) image["prompt"] = job.prompt_text;  // the prompt batch's text attribute
  if (!r.cache_decisions.empty()) {  // docs/step-cache.md: which steps were computed
    image["cache_computed"] = r.cache_decisions;
    image["ms_per_cached_step"] = r.median_cached_step_ms();
    json cached = json::array();
    for (const auto& s : r.step_times) cached.push_back(s.cached);
    image["step_cached"] = std::move(cached);
    json ratios = json::array();  // the metric the threshold is compared with (null: undefined)
    for (double ratio : r.cache_ratios) ratios.push_back(std::isfinite(ratio) ? json(ratio) : json(nullptr));
    image["cache_ratio"] = std::move(ratios);
    std::vector<double> decision;
    for (const auto& s : r.step_times) decision.push_back(s.decision_ms);
    image["ms_per_cache_decision"] = median(decision);  // the agreement's own cost
  }
  const StepAccounting& acc = r.accounting;
  if (!acc.per_rank.empty()) {
    json ranks = json::array();
    const double n = double(std::max<int64_t>(job.steps, 1));
    for (size_t k = 0; k < acc.per_rank.size(); ++k) {
      const double wait_ms = acc.per_rank[k].wait_seconds * 1e3 / n;
      ranks.push_back({{"rank", k},
                       {"mib_sent_per_step", acc.per_rank[k].bytes_sent / double(1 << 20) / n},
                       {"wait_ms_per_step", wait_ms},
                       {"compute_ms_per_step", acc.seconds[k] * 1e3 / n - wait_ms}});
    }
    image["per_rank"] = std::move(ranks);
  }
  images_.push_back(std::move(image));
}

void RunRecord::write(const MpiSession& mpi, const std::string& path, double wall_seconds) {
  // Every rank's images (only group leaders hold any) to rank 0, as JSON text.
  const std::string mine = images_.dump();
  int length = int(mine.size());
  std::vector<int> lengths(size_t(mpi.size()));
  FRESCO_MPI_CHECK(MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, mpi.world()));
  std::vector<int> offsets(size_t(mpi.size()), 0);
  for (size_t r = 1; r < offsets.size(); ++r) offsets[r] = offsets[r - 1] + lengths[r - 1];
  std::string all(mpi.rank() == 0 ? size_t(offsets.back() + lengths.back()) : 0, '\0');
  FRESCO_MPI_CHECK(MPI_Gatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, 0,
                               mpi.world()));
  if (mpi.rank() != 0) return;
  json images = json::array();
  for (size_t r = 0; r < lengths.size(); ++r)
    for (json& image : json::parse(all.substr(size_t(offsets[r]), size_t(lengths[r])))) images.push_back(std::move(image));
  std::sort(images.begin(), images.end(), [](const json& a, const json& b) { return a["index"] < b["index"]; });
  json out = record_;
  out["images"] = std::move(images);
  out["wall_seconds"] = wall_seconds;
  AtomicOutput file(path);
  {
    std::ofstream f(file.temp_path());
    f << out.dump(2) << "\n";
    f.flush();
    if (!f) throw IoError("cannot write the run record " + path);
  }
  file.commit();
}

}  // namespace fresco
