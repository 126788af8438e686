#include "ops/cache.hpp"

#include <functional>

namespace twinstream::ops {

std::size_t ResultCache::KeyHash::operator()(const CacheKey& k) const {
  std::size_t h = std::hash<std::uint64_t>{}(k.step);
  h ^= std::hash<std::string>{}(k.variable) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  h ^= std::hash<std::string>{}(k.pipeline) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

ResultCache::ResultCache(std::uint64_t max_bytes) { counters_.max_bytes = max_bytes; }

std::shared_ptr<const PipelineResult> ResultCache::get(const CacheKey& key) {
  std::lock_guard lock(mutex_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++counters_.misses;
    return nullptr;
  }
  ++counters_.hits;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->result;
}

bool ResultCache::put(const CacheKey& key, std::shared_ptr<const PipelineResult> result) {
  // Only the output counts: timings and attributes are small and fixed per pipeline.
  const std::uint64_t bytes = result ? result->output.bytes : 0;
  std::lock_guard lock(mutex_);
  if (auto it = index_.find(key); it != index_.end()) {
    counters_.bytes -= it->second->bytes;
    lru_.erase(it->second);
    index_.erase(it);
  }
  // A result that views its input would dangle once the step is released.
  if (!result || !result->output.owned() || bytes > counters_.max_bytes) {
    ++counters_.rejected;
    counters_.entries = lru_.size();
    return false;
  }
  evict_to(counters_.max_bytes - bytes);
  lru_.push_front(Entry{key, std::move(result), bytes});
  index_.emplace(key, lru_.begin());
  counters_.bytes += bytes;
  counters_.entries = lru_.size();
  return true;
}

void ResultCache::evict_to(std::uint64_t limit) {
  while (counters_.bytes > limit && !lru_.empty()) {
    const Entry& last = lru_.back();
    counters_.bytes -= last.bytes;
    index_.erase(last.key);
    lru_.pop_back();
    ++counters_.evictions;
  }
  counters_.entries = lru_.size();
}

void ResultCache::drop_step(std::uint64_t step) {
  std::lock_guard lock(mutex_);
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (it->key.step == step) {
      counters_.bytes -= it->bytes;
      index_.erase(it->key);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
  counters_.entries = lru_.size();
}

void ResultCache::clear() {
  std::lock_guard lock(mutex_);
  lru_.clear();
  index_.clear();
  counters_.bytes = 0;
  counters_.entries = 0;
}

void ResultCache::set_max_bytes(std::uint64_t max_bytes) {
  std::lock_guard lock(mutex_);
  counters_.max_bytes = max_bytes;
  evict_to(max_bytes);
}

CacheCounters ResultCache::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

std::vector<CacheKey> ResultCache::keys() const {
  std::lock_guard lock(mutex_);
  std::vector<CacheKey> out;
  for (const auto& e : lru_) out.push_back(e.key);
  return out;
}

}  // namespace twinstream::ops
