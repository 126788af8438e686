#pragma once
/// Pre-processed results kept for reuse (several reader groups, epochs or models reading
/// the same step through the same pipeline), bounded in bytes, least recently used
/// evicted first. Thread-safe; results are shared, never copied, on a hit.
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "ops/pipeline.hpp"

namespace twinstream::ops {

/// What identifies a result: the step, the variable (with its selection, if any, in the
/// name) and the pipeline's canonical text (Pipeline::key()).
struct CacheKey {
  std::uint64_t step = 0;
  std::string variable;
  std::string pipeline;
  bool operator==(const CacheKey&) const = default;
};

struct CacheCounters {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t evictions = 0;  ///< entries removed to make room
  std::uint64_t rejected = 0;   ///< results larger than the whole bound, not kept
  std::uint64_t bytes = 0;      ///< bytes held now (never above max_bytes)
  std::uint64_t entries = 0;
  std::uint64_t max_bytes = 0;
};

/// Copies `c` into the cache_* fields of a ReaderStats or WriterStats.
template <typename Stats>
void report(const CacheCounters& c, Stats& s) {
  s.cache_hits = c.hits;
  s.cache_misses = c.misses;
  s.cache_evictions = c.evictions;
  s.cache_rejected = c.rejected;
  s.cache_bytes = c.bytes;
  s.cache_entries = c.entries;
  s.cache_max_bytes = c.max_bytes;
}

class ResultCache {
 public:
  /// A cache holding at most `max_bytes` of results (0 keeps nothing).
  explicit ResultCache(std::uint64_t max_bytes);

  /// The result for `key`, marked most recently used; null on a miss. Counts either.
  std::shared_ptr<const PipelineResult> get(const CacheKey& key);
  /// Keeps `result` (its output bytes count against the bound), evicting the least
  /// recently used entries as needed; replaces an entry with the same key. A result
  /// larger than the bound, or whose output views its input (run with own_output), is
  /// not kept (counted as rejected); returns whether it was kept.
  bool put(const CacheKey& key, std::shared_ptr<const PipelineResult> result);
  /// get(), or on a miss compute() then put(): the usual way to use the cache. compute()
  /// runs without the lock held; two threads missing the same key both compute, and the
  /// later put replaces the earlier (the results are identical).
  template <typename F>
  std::shared_ptr<const PipelineResult> get_or_compute(const CacheKey& key, F&& compute) {
    if (auto hit = get(key)) return hit;
    auto fresh = std::make_shared<const PipelineResult>(compute());
    put(key, fresh);
    return fresh;
  }
  /// Drops every entry of `step` (e.g. when it is released); not counted as evictions.
  void drop_step(std::uint64_t step);
  void clear();
  /// Changes the bound, evicting as needed.
  void set_max_bytes(std::uint64_t max_bytes);
  CacheCounters counters() const;
  /// Keys from most to least recently used (for tests and diagnostics).
  std::vector<CacheKey> keys() const;

 private:
  struct KeyHash {
    std::size_t operator()(const CacheKey& k) const;
  };
  struct Entry {
    CacheKey key;
    std::shared_ptr<const PipelineResult> result;
    std::uint64_t bytes;
  };
  void evict_to(std::uint64_t limit);  // with mutex_ held

  mutable std::mutex mutex_;
  std::list<Entry> lru_;  // front: most recently used
  std::unordered_map<CacheKey, std::list<Entry>::iterator, KeyHash> index_;
  CacheCounters counters_;
};

}  // namespace twinstream::ops
