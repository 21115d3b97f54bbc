// What every host-side wait of a transport shares (MPI, UCX): elapsed time, the back-off between
// polls, and the seconds as the timeout messages print them.
#pragma once

#include <chrono>
#include <string>

namespace fresco {

using WaitClock = std::chrono::steady_clock;

double seconds_since(WaitClock::time_point start);
// "1.0" below 10 s, "30" above.
std::string format_seconds(double seconds);
// Between two polls of a host wait: a long wait must not burn a core (ranks may share cores),
// while a short one stays a busy poll. Sleeps at most 2% of the time already waited, <= 1 ms.
void back_off(double waited);

}  // namespace fresco
