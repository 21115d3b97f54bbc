// The sweep's plots: one gnuplot script per plot with its data inline (DIR/NAME.gp), run by
// gnuplot in DIR so that it names only NAME.png beside it: the folder can be moved or copied
// and every script redrawn there with `gnuplot NAME.gp`.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "src/cli/sweep/sweep.hpp"
#include "src/core/error.hpp"

namespace fresco::cli::sweep {

namespace {

struct Series {
  std::string title;
  std::vector<std::pair<double, double>> points;
  bool model = false;  // drawn as a dashed line (the model); measurements as lines with points
  int color = 0;       // 0: the series' position; negative: gray
};

// Writes DIR/NAME.gp and runs gnuplot on it in DIR; returns the number of series.
int draw(const SweepPlan& plan, const std::string& name, const std::string& title, const std::string& ylabel,
         std::vector<Series> series, bool logy, const std::string& extra = "") {
  series.erase(std::remove_if(series.begin(), series.end(), [](const Series& s) { return s.points.empty(); }),
               series.end());
  if (series.empty()) {
    std::printf("fresco sweep: no successful run to draw in %s.png\n", name.c_str());
    return 0;
  }
  const std::string gp = name + ".gp", png = name + ".png", log = plan.out_dir + "/" + name + ".gnuplot.log";
  std::ofstream f(plan.out_dir + "/" + gp);
  f << "# drawn by fresco sweep from sweep.jsonl; redraw in this folder: gnuplot " << gp << "\n";
  f << "set terminal pngcairo size 1000,600 font ',10'\nset output '" << png << "'\n";
  f << "set title '" << title << "'\nset xlabel 'ranks'\nset ylabel '" << ylabel << "'\n";
  f << "set logscale x 2\nset grid\nset key outside right top\nset offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05\n";
  if (logy) f << "set logscale y\n";
  f << extra;
  int i = 0;
  for (const Series& s : series) {
    f << "$d" << i++ << " << EOD\n";
    for (const auto& [x, y] : s.points) f << x << " " << y << "\n";
    f << "EOD\n";
  }
  f << "plot ";
  for (size_t k = 0; k < series.size(); ++k) {
    f << (k ? ", \\\n     " : "") << "$d" << k << " using 1:2 with "
      << (series[k].model ? "lines dashtype 2 linewidth 2" : "linespoints pointtype 7 linewidth 2")
      << " linecolor ";
    if (series[k].color < 0) f << "rgb '#808080'";  // reference lines (ideal speed-up)
    else f << (series[k].color ? series[k].color : int(k) + 1);
    f << " title '" << series[k].title << "'";
  }
  f << "\n";
  f.close();
  if (!f) throw IoError("fresco sweep: cannot write " + plan.out_dir + "/" + gp);
  const Launch l = launch({plan.gnuplot, gp}, log, plan.out_dir);
  if (l.status != 0)
    throw IoError("fresco sweep: gnuplot failed on " + plan.out_dir + "/" + gp + " (exit " +
                  std::to_string(l.status) + "): " + last_lines(read_text(log), 5));
  std::printf("fresco sweep: wrote %s/%s (%zu series)\n", plan.out_dir.c_str(), png.c_str(), series.size());
  return int(series.size());
}

}  // namespace

void draw_plots(const SweepPlan& plan, const std::vector<json>& records) {
  // The one-rank run of each resolution: the baseline of every method's speed-up, the compute
  // rate of the model, and the engine the predictions are priced on.
  std::map<std::string, json> base;
  for (const json& r : records)
    if (r["ranks"] == 1 && r["status"] == "ok") base[r["resolution"]] = r;
  const auto base_ms = [&](const std::string& res) { return base.at(res)["ms_per_step"].get<double>(); };
  const auto rate = [&](const std::string& res) {
    return base.count(res) ? base.at(res)["flops_per_step"].get<double>() / (1e-3 * base_ms(res)) : 0.0;
  };
  // Series per (method, resolution); a one-rank run belongs to every method's series.
  std::vector<Series> time, speedup, efficiency, share, model;
  std::set<int> all_ranks;
  for (const Resolution& res : plan.resolutions)
    for (const std::string& method : plan.methods) {
      const std::string label = method + " " + res.name();
      const int color = int(time.size()) + 1;
      Series t{label, {}}, sp{label, {}}, ef{label, {}}, sh{label, {}}, mm{label + " measured", {}, false, color},
          mp{label + " model", {}, true, color};
      json reference = base.count(res.name()) ? base.at(res.name()) : json::object();
      for (const json& r : records) {
        if (r["status"] != "ok" || r["resolution"] != res.name()) continue;
        if (r["method"] != method && r["ranks"] != 1) continue;
        if (reference.empty()) reference = r;
        const double K = r["ranks"].get<int>(), ms = r["ms_per_step"].get<double>();
        all_ranks.insert(int(K));
        t.points.emplace_back(K, ms);
        mm.points.emplace_back(K, ms);
        mp.points.emplace_back(K, model_point(plan, r, rate(res.name())).ms);
        sh.points.emplace_back(K, 100.0 * r["comm_share"].get<double>());
        if (base.count(res.name())) {
          sp.points.emplace_back(K, base_ms(res.name()) / ms);
          ef.points.emplace_back(K, 100.0 * base_ms(res.name()) / ms / K);
        }
      }
      // The model beyond the measurements (--predict-ranks).
      for (int K : plan.predict_ranks) {
        if (std::any_of(mp.points.begin(), mp.points.end(), [&](const auto& p) { return p.first == K; })) continue;
        const auto [ms, layout] = predicted_ms(plan, reference, method, K, res.img_tokens(), rate(res.name()));
        mp.points.emplace_back(K, ms);
        std::printf("fresco sweep: model, %s on %d ranks (%s): %.4g ms per step\n", label.c_str(), K, layout.c_str(), ms);
      }
      for (Series* s : {&t, &sp, &ef, &sh, &mm, &mp}) std::sort(s->points.begin(), s->points.end());
      time.push_back(t);
      speedup.push_back(sp);
      efficiency.push_back(ef);
      share.push_back(sh);
      model.push_back(mm);
      model.push_back(mp);
    }
  const std::string what = plan.config.name + ", " + std::to_string(plan.steps) + " steps, " +
                           (plan.engine_choice.backend == "cuda" ? std::string("one GPU/rank")
                                                                 : std::to_string(plan.threads) + " thread(s)/rank");
  draw(plan, "time", "time per step after warm-up (" + what + ")", "ms per step", time, true);
  const int max_ranks = all_ranks.empty() ? 1 : *all_ranks.rbegin();
  std::vector<Series> sp = speedup;
  Series ideal{"ideal", {}, true, -1};
  for (int k : all_ranks) ideal.points.emplace_back(k, k);
  sp.insert(sp.begin(), ideal);
  draw(plan, "speedup", "speed-up over one rank (" + what + ")", "speed-up", sp, false,
       "set yrange [0:" + std::to_string(max_ranks + 1) + "]\n");
  draw(plan, "efficiency", "parallel efficiency (" + what + ")", "efficiency (%)", efficiency, false,
       "set yrange [0:*]\n");
  draw(plan, "comm_share", "exposed communication share of the step (" + what + ")",
       "communication wait (% of step)", share, false, "set yrange [0:*]\n");
  draw(plan, "model", "model vs measured (" + what + ")", "ms per step", model, true);
}

}  // namespace fresco::cli::sweep
