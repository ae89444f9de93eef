#include "src/run/plot.h"

#include <cstdio>
#include <filesystem>
#include <sys/wait.h>

namespace ml3 {

extern const char* const kPlotScript;  // generated from tools/plot.py

namespace {
std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
}  // namespace

std::string make_plot(const std::string& mode, const std::string& src, const std::string& png,
                      const std::string& title) {
  const char* python = std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  const std::string tmp = png + ".tmp.png";
  const std::string log = png + ".log";
  const std::string cmd = std::string(python) + " - " + quote(mode) + " " + quote(src) + " " + quote(tmp) + " " +
                          quote(title) + " >" + quote(log) + " 2>&1";
  FILE* p = popen(cmd.c_str(), "w");
  if (!p) return "cannot start python3";
  std::fputs(kPlotScript, p);
  const int status = pclose(p);
  if (status != 0 || !std::filesystem::exists(tmp)) {
    std::filesystem::remove(tmp);
    std::string last;
    if (FILE* f = std::fopen(log.c_str(), "r")) {
      char line[512];
      while (std::fgets(line, sizeof(line), f)) last = line;
      std::fclose(f);
    }
    std::filesystem::remove(log);
    while (!last.empty() && last.back() == '\n') last.pop_back();
    return "python3 with matplotlib failed (" + last + ", exit status " + std::to_string(WEXITSTATUS(status)) +
           "); install python3-matplotlib";
  }
  std::filesystem::remove(log);
  std::filesystem::rename(tmp, png);
  return "";
}

}  // namespace ml3
