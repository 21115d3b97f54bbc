// The FRESCO_* environment switches: one registry (tuning.cpp) that names every switch the
// program reads, says what it does and gives its default. Every reader of a FRESCO_* variable
// goes through this header; a new switch is a new Switch and a new row of the table, and
// docs/performance.md ("Environment switches") lists them for users.
//
// Switches are for comparisons (A/B timings of an alternative path), debugging and tests, never
// for what a user must choose to get a correct or fast run: the defaults are the tested, measured
// paths. Once an A/B is decided in docs/performance.md, the switch goes with its losing path.
//
// The environment is read once, at the first query (nothing in Fresco sets it at run time). A
// value that does not parse is an InputError naming the switch and what it accepts.
// C++17 (the CUDA translation units include it).
#pragma once

#include <string>
#include <vector>

namespace fresco::tuning {

enum class Switch {
  default_backend,
  memory_per_rank,
  gnuplot,
  comm_trace,
  decode_profile,
  cuda_vector,
  cuda_rope_rows,
  cuda_verbose,
  cudnn_sdpa,
  cudnn_stats,
  cudnn_graph,
  cudnn_conv,
  cudnn_conv_find,
  cudnn_conv_span,
  cudnn_conv_workspace_mb,
  count
};

enum class Kind {
  flag,    // 1/0, on/off, yes/no, true/false
  number,  // a positive number
  text,    // any non-empty text
};

struct SwitchInfo {
  Switch id;
  const char* name;      // "FRESCO_CUDA_VECTOR"
  Kind kind;
  const char* fallback;  // the value when the variable is unset or empty ("": none, see meaning)
  const char* flipped;   // the value the op test runs with to cover the other path ("": none)
  const char* meaning;   // one sentence for the docs and `fresco info`
};

// Every switch, in the order of Switch.
const std::vector<SwitchInfo>& switches();
const SwitchInfo& info(Switch s);

// Whether the variable is set (and not empty).
bool is_set(Switch s);
// A flag's value, or its fallback when unset.
bool flag(Switch s);
// A number's value, or its fallback (0 when the fallback is "") when unset.
double number(Switch s);
// A text's value, or its fallback when unset.
std::string text(Switch s);

// How flag() and number() read `value` as switch `s` (InputError naming the switch when it does
// not parse; number: "" is 0).
bool parse_flag(Switch s, const std::string& value);
double parse_number(Switch s, const std::string& value);

}  // namespace fresco::tuning
