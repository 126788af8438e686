#pragma once
// The writer-side cache of pre-processed results: what readers asked the writer to compute
// for them (reader option writer_ops), one entry per (step, variable, pipeline), each
// owning its output bytes in a writer Segment so that every data plane can serve it.
// Bounded in bytes (an entry is charged its segment's size), least recently used entries
// evicted first. An entry a reader holds (handed with a step, not yet acknowledged) is
// pinned and never evicted; a result that cannot fit without evicting a pinned entry is
// not kept (the caller serves it from a segment of its own). Pure bookkeeping, no I/O,
// not thread-safe: the writer uses it under its mutex.
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "core/segment.hpp"
#include "ops/cache.hpp"
#include "ops/pipeline.hpp"
#include "twinstream/attribute.hpp"
#include "twinstream/dtype.hpp"

namespace twinstream {

struct WriterCacheKey {
  std::uint64_t step = 0;
  std::string variable;
  std::string pipeline;  // canonical text (ops::Pipeline::key())
  auto operator<=>(const WriterCacheKey&) const = default;
};

/// One computed result: the output array at offset 0 of `segment`.
struct WriterCacheResult {
  std::shared_ptr<Segment> segment;
  DType dtype = DType::Float32;
  Dims shape;
  std::uint64_t bytes = 0;  // output bytes (the segment may be larger)
  Attributes attributes;    // what the operators published (stats, running standardize)
  double seconds = 0;       // time the operators took when it was computed
};

// The reader cache's counters; `rejected` counts results not kept because they did not
// fit beside the pinned entries.
using WriterCacheCounters = ops::CacheCounters;

class WriterCache {
 public:
  explicit WriterCache(std::uint64_t max_bytes) { counters_.max_bytes = max_bytes; }

  /// The result for `key`, pinned and marked most recently used (a hit); null on a miss.
  /// Counts either. Each non-null lookup needs one unpin().
  std::shared_ptr<const WriterCacheResult> lookup(const WriterCacheKey& key);
  /// Makes room for `charge` bytes by evicting unpinned entries, least recently used
  /// first, and only when that frees enough; the segments of evicted entries are added to
  /// `evicted`. False (nothing evicted, counted as rejected) when it cannot.
  bool make_room(std::uint64_t charge, std::vector<std::shared_ptr<Segment>>& evicted);
  /// Keeps a result after make_room(charge) said yes; it starts pinned once.
  void insert(const WriterCacheKey& key, std::shared_ptr<const WriterCacheResult> result,
              std::uint64_t charge);
  /// A reader no longer holds a result it was handed.
  void unpin(const WriterCacheKey& key);
  /// Drops the unpinned entries whose step `released(step)` says is gone (not counted as
  /// evictions); their segments go to `dropped`.
  void drop_steps(const std::function<bool(std::uint64_t)>& released,
                  std::vector<std::shared_ptr<Segment>>& dropped);
  /// Every entry, pinned or not (the stream is closing).
  void clear();

  const WriterCacheCounters& counters() const { return counters_; }
  /// Keys from most to least recently used (tests, diagnostics).
  std::vector<WriterCacheKey> keys() const;
  std::uint32_t pins(const WriterCacheKey& key) const;

 private:
  struct Entry {
    WriterCacheKey key;
    std::shared_ptr<const WriterCacheResult> result;
    std::uint64_t charge = 0;
    std::uint32_t pins = 0;
  };
  using List = std::list<Entry>;
  void erase(List::iterator it);

  List lru_;  // front: most recently used
  std::map<WriterCacheKey, List::iterator> index_;
  WriterCacheCounters counters_;
};

/// Parses the reader option writer_ops, "var=<pipeline key>;var2=<key>", into one
/// pipeline per variable. Throws InvalidArgument starting with `who`, naming the variable,
/// the operator and the fix (bad syntax, a variable twice, an unknown operator, python()).
std::vector<std::pair<std::string, ops::Pipeline>> parse_writer_ops(std::string_view text,
                                                                    std::string_view who);

/// What an entry is charged: its segment's size (page-rounded output, at least a page).
std::uint64_t writer_cache_charge(std::uint64_t output_bytes);

}  // namespace twinstream
