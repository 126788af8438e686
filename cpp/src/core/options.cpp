#include "twinstream/options.hpp"

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <vector>

#include "core/writer_cache.hpp"
#include "twinstream/errors.hpp"

namespace twinstream {
namespace {

// One row per key: documentation and the parser that stores the value. The docs are what
// help(ts.open) prints, so they are written for users.
template <typename Opts>
struct OptionRow {
  OptionDoc doc;
  std::function<void(Opts&, const std::string&)> set;
};

double parse_double(std::string_view key, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || errno != 0 || std::isnan(d)) {
    throw InvalidArgument("option " + std::string(key) + "='" + v + "' is not a number");
  }
  return d;
}

std::uint64_t parse_uint(std::string_view key, const std::string& v, std::uint64_t max) {
  char* end = nullptr;
  errno = 0;
  const auto n = std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || v[0] == '-' || *end != '\0' || errno != 0 || n > max) {
    throw InvalidArgument("option " + std::string(key) + "='" + v +
                          "' must be an integer from 0 to " + std::to_string(max));
  }
  return n;
}

bool parse_bool(std::string_view key, const std::string& v) {
  if (v == "1" || v == "true" || v == "True" || v == "on" || v == "yes") return true;
  if (v == "0" || v == "false" || v == "False" || v == "off" || v == "no") return false;
  throw InvalidArgument("option " + std::string(key) + "='" + v + "' must be true or false");
}

std::string one_of(std::string_view key, const std::string& v,
                   std::initializer_list<std::string_view> allowed) {
  std::string list;
  for (auto a : allowed) {
    if (a == v) return v;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  throw InvalidArgument("option " + std::string(key) + "='" + v + "' must be one of: " + list);
}

const std::array<OptionRow<WriterOptions>, 18>& writer_rows() {
  static const std::array<OptionRow<WriterOptions>, 18> rows{{
      {{"queue_limit", "2", "int",
        "Most unacknowledged steps the writer keeps (at least 1; never unbounded)."},
       [](WriterOptions& o, const std::string& v) {
         o.queue_limit = static_cast<std::uint32_t>(parse_uint("queue_limit", v, 1u << 16));
         if (o.queue_limit == 0) throw InvalidArgument("option queue_limit must be at least 1");
       }},
      {{"queue_policy", "block", "str",
        "When the queue is full: block (the simulation waits, nothing is lost), "
        "drop_oldest or drop_newest (never waits; drops are counted and reported)."},
       [](WriterOptions& o, const std::string& v) {
         const auto p = one_of("queue_policy", v, {"block", "drop_oldest", "drop_newest"});
         o.queue_policy = p == "block"         ? QueuePolicy::Block
                          : p == "drop_oldest" ? QueuePolicy::DropOldest
                                               : QueuePolicy::DropNewest;
       }},
      {{"min_readers", "0", "int", "Readers to wait for before the first step."},
       [](WriterOptions& o, const std::string& v) {
         o.min_readers = static_cast<std::uint32_t>(parse_uint("min_readers", v, 1u << 16));
       }},
      {{"open_timeout", "60", "float",
        "Seconds the first step waits for min_readers before raising TimeoutError."},
       [](WriterOptions& o, const std::string& v) {
         o.open_timeout = parse_double("open_timeout", v);
       }},
      {{"host", "127.0.0.1", "str",
        "Address the control port binds (0.0.0.0 or a NIC address to accept remote readers)."},
       [](WriterOptions& o, const std::string& v) { o.host = v; }},
      {{"port", "0", "int", "Control port; 0 picks a free one."},
       [](WriterOptions& o, const std::string& v) {
         o.port = static_cast<std::uint16_t>(parse_uint("port", v, 65535));
       }},
      {{"advertise", "", "str",
        "Address written to the contact file for readers (default: host)."},
       [](WriterOptions& o, const std::string& v) { o.advertise = v; }},
      {{"dir", "", "str",
        "Rendezvous directory for the contact file (default: $TWINSTREAM_DIR, else the "
        "working directory)."},
       [](WriterOptions& o, const std::string& v) { o.dir = v; }},
      {{"shm", "true", "bool",
        "Keep step buffers in shared memory so same-host readers map them (zero copy)."},
       [](WriterOptions& o, const std::string& v) { o.shm = parse_bool("shm", v); }},
      {{"heartbeat_interval", "0.5", "float",
        "Seconds between heartbeats to idle readers."},
       [](WriterOptions& o, const std::string& v) {
         o.heartbeat_interval = parse_double("heartbeat_interval", v);
         if (o.heartbeat_interval <= 0) throw InvalidArgument("heartbeat_interval must be > 0");
       }},
      {{"close_timeout", "60", "float",
        "Seconds close() waits for readers to drain queued steps."},
       [](WriterOptions& o, const std::string& v) {
         o.close_timeout = parse_double("close_timeout", v);
       }},
      {{"history", "0", "int",
        "Last steps kept for readers that join later: a newcomer (in a group of policy all) "
        "starts with them. They do not count against queue_limit."},
       [](WriterOptions& o, const std::string& v) {
         o.history = static_cast<std::uint32_t>(parse_uint("history", v, 1024));
       }},
      {{"keep_first", "false", "bool",
        "Keep step 0 (initial conditions) for every reader that joins later."},
       [](WriterOptions& o, const std::string& v) { o.keep_first = parse_bool("keep_first", v); }},
      {{"member", "", "str",
        "Ensemble member name: publish into a fan-in stream that readers receive from every "
        "member at once (each step tagged with its source)."},
       [](WriterOptions& o, const std::string& v) {
         bool ok = !v.empty() && v.size() <= 128 && v[0] != '.';
         for (char c : v) {
           ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-');
         }
         if (!ok) {
           throw InvalidArgument("option member='" + v +
                                 "' must be 1-128 characters from A-Z a-z 0-9 . _ - (not "
                                 "starting with '.')");
         }
         o.member = v;
       }},
      {{"rank", "0", "int",
        "This process's rank in a writer job of `ranks` processes (ts.open(..., comm=...) "
        "sets it from the communicator)."},
       [](WriterOptions& o, const std::string& v) {
         o.rank = static_cast<std::uint32_t>(parse_uint("rank", v, 1u << 20));
       }},
      {{"ranks", "1", "int",
        "Processes in the writer job; each puts its own blocks, readers see one stream "
        "(ts.open(..., comm=...) sets it)."},
       [](WriterOptions& o, const std::string& v) {
         o.ranks = static_cast<std::uint32_t>(parse_uint("ranks", v, 1u << 20));
         if (o.ranks == 0) throw InvalidArgument("option ranks must be at least 1");
       }},
      {{"job", "", "str",
        "Identifier shared by the ranks of one writer job (set by ts.open(..., comm=...)); "
        "readers check that every rank's contact file carries the same one."},
       [](WriterOptions& o, const std::string& v) {
         if (v.size() > 64 || v.find_first_of(" \t\n") != std::string::npos) {
           throw InvalidArgument("option job='" + v + "' must be at most 64 characters "
                                 "without spaces");
         }
         o.job = v;
       }},
      {{"cache_bytes", std::string_view("268435456"), "int",
        "Bound of the writer-side cache in bytes: results of the pipelines readers ask the "
        "writer to run (reader option writer_ops), kept per (step, variable, pipeline) and "
        "shared by every reader asking the same; least recently used evicted. 0: nothing is "
        "kept (every request is computed for its reader)."},
       [](WriterOptions& o, const std::string& v) {
         o.cache_bytes = parse_uint("cache_bytes", v, std::uint64_t{1} << 62);
       }},
  }};
  return rows;
}

std::vector<std::string> split_names(const std::string& v) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= v.size()) {
    const auto comma = v.find(',', pos);
    auto name = v.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (!name.empty()) out.push_back(std::move(name));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

const std::array<OptionRow<ReaderOptions>, 21>& reader_rows() {
  static const std::array<OptionRow<ReaderOptions>, 21> rows{{
      {{"group", "", "str",
        "Reader group to join; members share a delivery policy (default: a group of its own)."},
       [](ReaderOptions& o, const std::string& v) { o.group = v; }},
      {{"policy", "all", "str",
        "Delivery policy inside the group: all (every member gets every step), round_robin "
        "(step k to member k mod n), on_demand (the next step to whoever asks first) or "
        "shuffle (batches of samples from a window of steps, in seeded random order)."},
       [](ReaderOptions& o, const std::string& v) {
         o.policy = one_of("policy", v, {"all", "round_robin", "on_demand", "shuffle"});
       }},
      {{"data_plane", "auto", "str",
        "How step bytes travel: auto (inproc in the writer's process, shm on its host, tcp "
        "elsewhere), inproc, shm, tcp, fabric (libfabric RMA reads; see fabric_provider) or "
        "mpi (MPI one-sided reads)."},
       [](ReaderOptions& o, const std::string& v) {
         o.data_plane = one_of("data_plane", v, {"auto", "inproc", "shm", "tcp", "mpi", "fabric"});
       }},
      {{"control", "auto", "str",
        "How announcements and acknowledgements travel: auto (through a shared-memory ring "
        "beside the TCP connection when the writer is on this host, else the connection) or "
        "socket (always the TCP connection)."},
       [](ReaderOptions& o, const std::string& v) {
         o.control = one_of("control", v, {"auto", "socket"});
       }},
      {{"preload", "off", "str",
        "on: read the next announced step ahead while this one is read, on the data "
        "planes whose reads run in the background (mpi): the pieces this step read, into "
        "memory of the reader's own. off: read each piece when asked."},
       [](ReaderOptions& o, const std::string& v) {
         o.preload = one_of("preload", v, {"off", "on"});
       }},
      {{"timeout", "60", "float",
        "Seconds to wait for each step when iterating (and to open, unless open_timeout)."},
       [](ReaderOptions& o, const std::string& v) { o.timeout = parse_double("timeout", v); }},
      {{"open_timeout", "", "float",
        "Seconds to wait for the writer to appear (default: timeout)."},
       [](ReaderOptions& o, const std::string& v) {
         o.open_timeout = parse_double("open_timeout", v);
       }},
      {{"heartbeat_timeout", "10", "float",
        "Seconds of silence after which the writer is declared dead (ConnectionError)."},
       [](ReaderOptions& o, const std::string& v) {
         o.heartbeat_timeout = parse_double("heartbeat_timeout", v);
         if (o.heartbeat_timeout <= 0) throw InvalidArgument("heartbeat_timeout must be > 0");
       }},
      {{"prefetch", "2", "int",
        "Steps the writer may hand this reader ahead of its end_step, so the next one is "
        "waiting when asked (1 to 64; writers with a drop policy hand one at a time)."},
       [](ReaderOptions& o, const std::string& v) {
         o.prefetch = static_cast<std::uint32_t>(parse_uint("prefetch", v, 64));
         if (o.prefetch == 0) throw InvalidArgument("option prefetch must be at least 1");
       }},
      {{"dir", "", "str",
        "Rendezvous directory where the contact file is looked for (default: "
        "$TWINSTREAM_DIR, else the working directory)."},
       [](ReaderOptions& o, const std::string& v) { o.dir = v; }},
      {{"latest", "false", "bool",
        "Always take the newest step; older ones are skipped (counted in stats().dropped) and "
        "the writer never waits for this reader."},
       [](ReaderOptions& o, const std::string& v) { o.latest = parse_bool("latest", v); }},
      {{"window", "4", "int", "shuffle: steps whose samples are mixed in one pass."},
       [](ReaderOptions& o, const std::string& v) {
         o.shuffle.window = static_cast<std::uint32_t>(parse_uint("window", v, 4096));
         if (o.shuffle.window == 0) throw InvalidArgument("option window must be at least 1");
       }},
      {{"batch_size", "32", "int", "shuffle: samples per batch (the last of a pass may be "
                                   "smaller)."},
       [](ReaderOptions& o, const std::string& v) {
         o.shuffle.batch_size = static_cast<std::uint32_t>(parse_uint("batch_size", v, 65536));
         if (o.shuffle.batch_size == 0) {
           throw InvalidArgument("option batch_size must be at least 1");
         }
       }},
      {{"seed", "0", "int", "shuffle: random seed; same seed and membership, same sequence."},
       [](ReaderOptions& o, const std::string& v) {
         o.shuffle.seed = parse_uint("seed", v, UINT64_MAX);
       }},
      {{"passes", "1", "int",
        "shuffle: passes over each window; every sample is delivered once per pass."},
       [](ReaderOptions& o, const std::string& v) {
         o.shuffle.passes = static_cast<std::uint32_t>(parse_uint("passes", v, 1024));
         if (o.shuffle.passes == 0) throw InvalidArgument("option passes must be at least 1");
       }},
      {{"variables", "", "str",
        "shuffle: comma-separated variables to sample along their first axis (default: every "
        "variable of rank >= 1 with the first one's length)."},
       [](ReaderOptions& o, const std::string& v) { o.shuffle.variables = split_names(v); }},
      {{"members", "0", "int",
        "Fan-in streams: ensemble members to expect; the stream ends when all of them have "
        "ended (0: end when every member seen so far has ended)."},
       [](ReaderOptions& o, const std::string& v) {
         o.members = static_cast<std::uint32_t>(parse_uint("members", v, 1u << 16));
       }},
      {{"fabric_provider", "", "str",
        "libfabric provider for data_plane='fabric': tcp, shm, cxi (Slingshot), verbs "
        "(InfiniBand), efa, or auto (the first usable of cxi, verbs, efa, tcp; a fallback "
        "is logged and shown in stats()). Default: $FI_PROVIDER, else auto. A provider that "
        "is unusable raises Unavailable saying why."},
       [](ReaderOptions& o, const std::string& v) {
         if (v.empty() || v.size() > 64 || v.find_first_of(",;^ ") != std::string::npos) {
           throw InvalidArgument("option fabric_provider='" + v +
                                 "' must name one libfabric provider (tcp, shm, cxi, verbs, "
                                 "efa) or auto");
         }
         o.fabric_provider = v;
       }},
      {{"cache", "off", "str",
        "on: keep pre-processed results (reader-placed pipelines, get(ops=...)) across "
        "steps, keyed by (source, step, variable, pipeline), least recently used evicted."},
       [](ReaderOptions& o, const std::string& v) {
         o.cache = one_of("cache", v, {"on", "off", "true", "false"}) == "on" || v == "true";
       }},
      {{"cache_bytes", std::string_view("268435456"), "int",
        "Bound of the reader's cache in bytes (results larger than it are not kept)."},
       [](ReaderOptions& o, const std::string& v) {
         o.cache_bytes = parse_uint("cache_bytes", v, std::uint64_t{1} << 62);
       }},
      {{"writer_ops", "", "str",
        "Pipelines the writer runs for this reader, 'var=<pipeline>;var2=<pipeline>' "
        "(Python: a dict of operator lists): the reader gets each variable as the output, "
        "computed once per (step, variable, pipeline) and shared through the writer's "
        "cache by every reader asking the same."},
       [](ReaderOptions& o, const std::string& v) {
         (void)parse_writer_ops(v, "option writer_ops");  // refused here, not at the writer
         o.writer_ops = v;
       }},
  }};
  return rows;
}

template <typename Opts, typename Rows>
Opts parse(const Options& opts, const Rows& rows, const char* side) {
  Opts out;
  for (const auto& [key, value] : opts) {
    bool found = false;
    for (const auto& row : rows) {
      if (row.doc.key == key) {
        row.set(out, value);
        found = true;
        break;
      }
    }
    if (!found) {
      std::string valid;
      for (const auto& row : rows) valid += (valid.empty() ? "" : ", ") + std::string(row.doc.key);
      throw InvalidArgument("unknown " + std::string(side) + " option '" + key +
                            "'; valid options: " + valid);
    }
  }
  return out;
}

template <typename Rows>
std::span<const OptionDoc> docs(const Rows& rows) {
  static std::vector<OptionDoc> out = [&] {
    std::vector<OptionDoc> v;
    for (const auto& r : rows) v.push_back(r.doc);
    return v;
  }();
  return out;
}
}  // namespace

WriterOptions parse_writer_options(const Options& opts) {
  return parse<WriterOptions>(opts, writer_rows(), "writer");
}
ReaderOptions parse_reader_options(const Options& opts) {
  return parse<ReaderOptions>(opts, reader_rows(), "reader");
}
std::span<const OptionDoc> writer_option_docs() { return docs(writer_rows()); }
std::span<const OptionDoc> reader_option_docs() { return docs(reader_rows()); }

std::string_view queue_policy_name(QueuePolicy p) {
  switch (p) {
    case QueuePolicy::Block: return "block";
    case QueuePolicy::DropOldest: return "drop_oldest";
    case QueuePolicy::DropNewest: return "drop_newest";
  }
  return "?";
}

}  // namespace twinstream
