#pragma once
// Plots through Debian's python3-matplotlib: the script tools/plot.py is
// embedded in the binary and fed to /usr/bin/python3 on stdin, so plotting
// works from any directory. A missing python/matplotlib is reported, not
// fatal: the numbers are in the CSV/JSON files either way.
#include <string>

namespace ml3 {

// mode "curve": src = metrics.csv; mode "compare": src = curves JSON.
// Returns "" on success, else the reason the PNG was not written.
std::string make_plot(const std::string& mode, const std::string& src, const std::string& png,
                      const std::string& title);

}  // namespace ml3
