// The registry of FRESCO_* environment switches (src/core/tuning.hpp): every row is well formed,
// its fallback and the op test's value parse as its kind (the gpu-labelled cuda_switch_* tests
// run with those values), and a value that does not parse names the switch.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "src/core/error.hpp"
#include "src/core/tuning.hpp"

using namespace fresco;
using namespace fresco::tuning;

TEST(Tuning, EveryRowIsWellFormed) {
  std::set<std::string> names;
  for (const SwitchInfo& s : switches()) {
    const std::string name = s.name;
    EXPECT_EQ(name.rfind("FRESCO_", 0), 0u) << name;
    EXPECT_TRUE(names.insert(name).second) << name << " listed twice";
    EXPECT_GT(std::string(s.meaning).size(), 20u) << name << " says too little";
    EXPECT_EQ(&info(s.id), &s) << name;
    for (const std::string value : {std::string(s.fallback), std::string(s.flipped)}) {
      if (value.empty()) continue;
      if (s.kind == Kind::flag) EXPECT_NO_THROW(parse_flag(s.id, value)) << name << "=" << value;
      if (s.kind == Kind::number) EXPECT_GT(parse_number(s.id, value), 0) << name << "=" << value;
    }
    if (s.kind == Kind::flag) {
      ASSERT_FALSE(std::string(s.fallback).empty()) << name << ": a flag needs a default";
      if (*s.flipped) EXPECT_NE(parse_flag(s.id, s.flipped), parse_flag(s.id, s.fallback)) << name;
    }
  }
}

TEST(Tuning, ValuesParseOrNameTheSwitch) {
  EXPECT_TRUE(parse_flag(Switch::cuda_vector, "on"));
  EXPECT_FALSE(parse_flag(Switch::cuda_vector, "false"));
  EXPECT_DOUBLE_EQ(parse_number(Switch::cudnn_conv_workspace_mb, "0.5"), 0.5);
  EXPECT_EQ(parse_number(Switch::cudnn_conv_span, ""), 0);
  try {
    parse_flag(Switch::cudnn_stats, "maybe");
    FAIL() << "accepted 'maybe'";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("FRESCO_CUDNN_STATS"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'maybe'"), std::string::npos) << e.what();
  }
  for (const char* bad : {"-1", "0", "12MB", "nan"})
    EXPECT_THROW(parse_number(Switch::cudnn_conv_workspace_mb, bad), InputError) << bad;
  EXPECT_THROW(parse_flag(Switch::gnuplot, "1"), Error);  // a text switch read as a flag: a bug
}
