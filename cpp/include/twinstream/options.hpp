#pragma once
/// Typed option tables for writers and readers. Every key has a default and a doc
/// string; unknown keys are errors (InvalidArgument naming the valid keys).
#include <chrono>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace twinstream {

/// Options as text, the way Python keyword arguments and config files arrive.
using Options = std::map<std::string, std::string, std::less<>>;

/// One documented option.
struct OptionDoc {
  std::string_view key;
  std::string_view default_value;
  std::string_view type;
  std::string_view doc;
};

/// What the writer does when `queue_limit` steps are unacknowledged.
enum class QueuePolicy { Block, DropOldest, DropNewest };

/// Data plane names: "auto", "inproc", "shm", "tcp" (and "mpi", "fabric" when built).
/// Parameters of a `shuffle` group (chosen by its first member).
struct ShuffleOptions {
  std::uint32_t window = 4;       // steps whose samples are mixed in one pass
  std::uint32_t batch_size = 32;  // samples per delivered batch
  std::uint64_t seed = 0;         // same seed and membership: same sequence
  std::uint32_t passes = 1;       // passes over each window (epochs over recent data)
  std::vector<std::string> variables;  // sampled variables; empty: every array variable
  bool operator==(const ShuffleOptions&) const = default;
};

struct WriterOptions {
  std::uint32_t queue_limit = 2;
  QueuePolicy queue_policy = QueuePolicy::Block;
  std::uint32_t min_readers = 0;
  double open_timeout = 60.0;  // seconds to wait for min_readers
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string advertise;        // address written to the contact file; empty: host
  std::string dir;              // rendezvous directory; empty: $TWINSTREAM_DIR or cwd
  bool shm = true;              // put step buffers in shared memory
  double heartbeat_interval = 0.5;
  double close_timeout = 60.0;  // seconds close() waits for readers to drain
  std::uint32_t history = 0;    // last steps kept for a newcomer
  bool keep_first = false;      // keep step 0 for every newcomer
  std::string member;           // ensemble member name: publish into a fan-in stream
  std::uint32_t rank = 0;       // this process's rank in a writer job of `ranks`
  std::uint32_t ranks = 1;      // processes that write the stream together (N x M)
  std::string job;              // identifier shared by the job's ranks
  std::uint64_t cache_bytes = 256ull << 20;  // bound of the writer-side cache (writer_ops)
};

struct ReaderOptions {
  std::string group;            // empty: a group of its own
  std::string policy = "all";   // delivery policy of the group
  std::string data_plane = "auto";
  std::string control = "auto";  // control path: auto (shared-memory ring on the writer's host), socket
  std::string preload = "off";  // on: read the next steps ahead on planes that read in the background (mpi)
  double timeout = 60.0;        // default wait for a step (Python iteration uses it)
  double open_timeout = -1.0;   // wait for the writer to appear; <0: same as timeout
  double heartbeat_timeout = 10.0;
  std::uint32_t prefetch = 2;   // steps handed ahead of end_step (queue_policy=block)
  std::string dir;
  bool latest = false;          // always take the newest step; older ones are skipped
  ShuffleOptions shuffle;       // used when policy is shuffle
  std::uint32_t members = 0;    // fan-in: ensemble members to expect (0: whoever comes)
  std::string fabric_provider;  // libfabric provider for data_plane=fabric; empty: $FI_PROVIDER or auto
  bool cache = false;           // keep pre-processed results (reader-placed, requested) across steps
  std::uint64_t cache_bytes = 256ull << 20;  // bound of that cache
  std::string writer_ops;       // "var=<pipeline>;...": pipelines the writer runs for it
};

/// Parses text options; throws InvalidArgument for an unknown key or a bad value.
WriterOptions parse_writer_options(const Options& opts);
ReaderOptions parse_reader_options(const Options& opts);

/// The documented tables (used for help(ts.open) and error messages).
std::span<const OptionDoc> writer_option_docs();
std::span<const OptionDoc> reader_option_docs();

std::string_view queue_policy_name(QueuePolicy p);

}  // namespace twinstream
