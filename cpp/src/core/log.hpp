#pragma once
// One log line per event to stderr, prefixed "twinstream:". TWINSTREAM_LOG picks the
// level (error, warn, info, debug; default warn).
#include <string_view>

namespace twinstream::log {
enum class Level { Error = 0, Warn = 1, Info = 2, Debug = 3 };
bool enabled(Level level);
void write(Level level, std::string_view message);
inline void warn(std::string_view m) { write(Level::Warn, m); }
inline void info(std::string_view m) { write(Level::Info, m); }
inline void debug(std::string_view m) { write(Level::Debug, m); }
}  // namespace twinstream::log
