#include "core/contact.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "control/socket.hpp"
#include "twinstream/errors.hpp"

namespace twinstream {

void validate_stream_name(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 200 && name[0] != '.';
  for (char c : name) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    ok = ok && allowed;
  }
  if (!ok) {
    throw InvalidArgument("stream name '" + name +
                          "' is not usable: use 1-200 characters from A-Z a-z 0-9 . _ - "
                          "(not starting with '.')");
  }
}

std::string rendezvous_dir(const std::string& option) {
  if (!option.empty()) return option;
  if (const char* env = std::getenv("TWINSTREAM_DIR"); env && *env) return env;
  return ".";
}

std::string contact_path(const std::string& dir, const std::string& name) {
  return dir + "/" + name + ".twin";
}

std::string member_contact_path(const std::string& dir, const std::string& name,
                                const std::string& member) {
  return dir + "/" + name + "@" + member + ".twin";
}

std::string rank_contact_path(const std::string& rank0_path, std::uint32_t rank) {
  return rank == 0 ? rank0_path : rank0_path + ".rank" + std::to_string(rank);
}

std::vector<std::string> list_members(const std::string& dir, const std::string& name) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  const std::string prefix = name + "@";
  const std::string suffix = ".twin";
  while (const dirent* e = ::readdir(d)) {
    const std::string f = e->d_name;
    if (f.size() > prefix.size() + suffix.size() && f.compare(0, prefix.size(), prefix) == 0 &&
        f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(f.substr(prefix.size(), f.size() - prefix.size() - suffix.size()));
    }
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::string to_hex(const wire::Token& t) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (auto b : t) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

namespace {
bool from_hex(const std::string& s, wire::Token& t) {
  if (s.size() != 2 * t.size()) return false;
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < t.size(); ++i) {
    const int hi = val(s[2 * i]), lo = val(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    t[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return true;
}
}  // namespace

wire::Token random_token() {
  wire::Token t{};
  std::size_t got = 0;
  while (got < t.size()) {
    const ssize_t n = ::getrandom(t.data() + got, t.size() - got, 0);
    if (n < 0 && errno != EINTR) throw Error("getrandom failed: " + net::errno_text(errno));
    if (n > 0) got += static_cast<std::size_t>(n);
  }
  return t;
}

bool tokens_equal(const wire::Token& a, const wire::Token& b) {
  volatile std::uint8_t diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff = diff | (a[i] ^ b[i]);
  return diff == 0;
}

void write_contact(const std::string& path, const Contact& c) {
  std::ostringstream body;
  body << "twinstream-contact " << c.version << "\n"
       << "host " << c.host << "\n"
       << "port " << c.port << "\n"
       << "token " << to_hex(c.token) << "\n"
       << "pid " << c.pid << "\n"
       << "host_id " << c.host_id << "\n"
       << "shm_prefix " << c.shm_prefix << "\n";
  if (c.ranks > 1) {
    body << "rank " << c.rank << "\n"
         << "ranks " << c.ranks << "\n"
         << "job " << c.job << "\n";
  }
  const std::string text = body.str();
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw Error("cannot create contact file " + tmp + ": " + net::errno_text(errno) +
                "; set dir= or TWINSTREAM_DIR to a writable directory");
  }
  ::fchmod(fd, 0600);  // whatever the umask says
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::fsync(fd);
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw Error("cannot write contact file " + path + ": " + net::errno_text(errno));
  }
}

std::optional<Contact> read_contact(const std::string& path, std::string* why) {
  errno = 0;
  std::ifstream f(path);
  if (!f) {
    if (why) {
      *why = errno == ENOENT || errno == 0 ? "no contact file " + path
                                           : "cannot read contact file " + path + ": " +
                                                 net::errno_text(errno);
    }
    return std::nullopt;
  }
  Contact c;
  std::string key, value;
  bool have_header = false, have_token = false;
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream ls(line);
    ls >> key;
    std::getline(ls >> std::ws, value);
    if (key == "twinstream-contact") {
      have_header = true;
      c.version = static_cast<std::uint16_t>(std::atoi(value.c_str()));
    } else if (key == "host") {
      c.host = value;
    } else if (key == "port") {
      c.port = static_cast<std::uint16_t>(std::atoi(value.c_str()));
    } else if (key == "token") {
      have_token = from_hex(value, c.token);
    } else if (key == "pid") {
      c.pid = static_cast<std::uint32_t>(std::strtoul(value.c_str(), nullptr, 10));
    } else if (key == "host_id") {
      c.host_id = value;
    } else if (key == "shm_prefix") {
      c.shm_prefix = value;
    } else if (key == "rank") {
      c.rank = static_cast<std::uint32_t>(std::strtoul(value.c_str(), nullptr, 10));
    } else if (key == "ranks") {
      c.ranks = static_cast<std::uint32_t>(std::strtoul(value.c_str(), nullptr, 10));
    } else if (key == "job") {
      c.job = value;
    }
  }
  if (!have_header || !have_token || c.host.empty() || c.port == 0 || c.ranks == 0 ||
      c.rank >= c.ranks) {
    if (why) *why = "contact file " + path + " is incomplete or garbled";
    return std::nullopt;
  }
  return c;
}

void remove_contact_if_ours(const std::string& path, const wire::Token& token) {
  auto c = read_contact(path);
  if (c && tokens_equal(c->token, token)) ::unlink(path.c_str());
}

bool contact_is_live(const Contact& c) {
  if (c.host_id == net::host_id()) {
    if (c.pid == 0) return false;
    if (::kill(static_cast<pid_t>(c.pid), 0) != 0 && errno != EPERM) return false;
    // A killed writer stays a zombie until its parent reaps it: that is not alive.
    // /proc/<pid>/stat is "pid (comm) state ..."; comm may hold spaces and parentheses.
    std::ifstream stat("/proc/" + std::to_string(c.pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    const auto close = line.rfind(')');
    if (close == std::string::npos || close + 2 >= line.size()) return true;
    const char state = line[close + 2];
    return state != 'Z' && state != 'X';
  }
  try {
    net::connect_tcp(c.host, c.port, net::deadline_after(1.0));
    return true;
  } catch (const ConnectionError&) {
    return false;
  }
}

}  // namespace twinstream
