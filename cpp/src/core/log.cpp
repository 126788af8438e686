#include "core/log.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace twinstream::log {
namespace {
Level configured() {
  static const Level level = [] {
    const char* env = std::getenv("TWINSTREAM_LOG");
    std::string v = env ? env : "warn";
    if (v == "error") return Level::Error;
    if (v == "info") return Level::Info;
    if (v == "debug") return Level::Debug;
    return Level::Warn;
  }();
  return level;
}
constexpr const char* kNames[] = {"error", "warning", "info", "debug"};
}  // namespace

bool enabled(Level level) { return level <= configured(); }

void write(Level level, std::string_view message) {
  if (!enabled(level)) return;
  // One fprintf per line so lines from several threads do not interleave.
  std::fprintf(stderr, "twinstream: %s: %.*s\n", kNames[static_cast<int>(level)],
               static_cast<int>(message.size()), message.data());
}
}  // namespace twinstream::log
