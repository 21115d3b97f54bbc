#include "mpi/comm/host_wait.hpp"

#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <thread>

namespace fresco {

double seconds_since(WaitClock::time_point start) {
  return std::chrono::duration<double>(WaitClock::now() - start).count();
}

std::string format_seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof text, s < 10 ? "%.1f" : "%.0f", s);
  return text;
}

void back_off(double waited) {
  if (waited < 1e-3)
    sched_yield();
  else
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(1e-3, waited / 50)));
}

}  // namespace fresco
