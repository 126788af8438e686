#include "core/writer_cache.hpp"

#include <algorithm>

#include "core/messages.hpp"
#include "twinstream/errors.hpp"

namespace twinstream {

std::vector<std::pair<std::string, ops::Pipeline>> parse_writer_ops(std::string_view text,
                                                                    std::string_view who) {
  std::vector<std::pair<std::string, ops::Pipeline>> out;
  const std::string w(who);
  if (text.size() > wire::kMaxWriterOpsBytes) {
    throw InvalidArgument(w + ": " + std::to_string(text.size()) + " characters, at most " +
                          std::to_string(wire::kMaxWriterOpsBytes) + "; ask for fewer or "
                          "shorter pipelines");
  }
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find(';', pos);
    if (end == std::string_view::npos) end = text.size();
    const auto item = text.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    const auto eq = item.find('=');
    const auto not_a_request = [&] {
      return InvalidArgument(w + ": '" + std::string(item) + "' is not variable=<pipeline>; "
                            "write 'x=cast(to=float16);y=log1p' (Python: writer_ops={\"x\": "
                            "[ts.ops.cast(\"float16\")]})");
    };
    if (eq == std::string_view::npos || eq == 0) throw not_a_request();
    std::string variable(item.substr(0, eq));
    for (const auto& [v, p] : out) {
      if (v == variable) {
        throw InvalidArgument(w + ": variable '" + variable + "' is asked twice; give it one "
                              "pipeline");
      }
    }
    ops::Pipeline pipeline;
    try {
      pipeline = ops::Pipeline::parse(item.substr(eq + 1));
    } catch (const InvalidArgument& e) {
      // "cast(to=float16)" alone splits at its own '=': say what is missing.
      bool whole_is_pipeline = false;
      try {
        whole_is_pipeline = !ops::Pipeline::parse(item).empty();
      } catch (const InvalidArgument&) {
      }
      if (whole_is_pipeline) throw not_a_request();
      throw InvalidArgument(w + " variable '" + variable + "': " + e.what());
    }
    if (pipeline.empty()) {
      throw InvalidArgument(w + " variable '" + variable + "': empty pipeline; leave the "
                            "variable out to read it as written");
    }
    if (pipeline.has_python()) {
      throw InvalidArgument(w + " variable '" + variable + "': python() operators cannot run "
                            "on the writer (only their name would travel); run them in the "
                            "reader with step.get(name, ops=[...])");
    }
    out.emplace_back(std::move(variable), std::move(pipeline));
  }
  return out;
}

std::uint64_t writer_cache_charge(std::uint64_t output_bytes) {
  constexpr std::uint64_t kPage = 4096;
  return std::max<std::uint64_t>(kPage, (output_bytes + kPage - 1) / kPage * kPage);
}

std::shared_ptr<const WriterCacheResult> WriterCache::lookup(const WriterCacheKey& key) {
  const auto it = index_.find(key);
  if (it == index_.end()) {
    ++counters_.misses;
    return nullptr;
  }
  ++counters_.hits;
  lru_.splice(lru_.begin(), lru_, it->second);
  ++it->second->pins;
  return it->second->result;
}

bool WriterCache::make_room(std::uint64_t charge,
                            std::vector<std::shared_ptr<Segment>>& evicted) {
  std::uint64_t unpinned = 0;
  for (const auto& e : lru_) {
    if (e.pins == 0) unpinned += e.charge;
  }
  // Decided before evicting anything: entries are not thrown away for a result that
  // would not fit anyway.
  if (charge > counters_.max_bytes || counters_.bytes - unpinned > counters_.max_bytes - charge) {
    ++counters_.rejected;
    return false;
  }
  auto it = lru_.end();
  while (counters_.bytes > counters_.max_bytes - charge) {
    --it;  // the loop ends before running out: the unpinned entries free enough
    if (it->pins != 0) continue;
    evicted.push_back(it->result->segment);
    ++counters_.evictions;
    it = std::next(it);
    erase(std::prev(it));
  }
  return true;
}

void WriterCache::insert(const WriterCacheKey& key,
                         std::shared_ptr<const WriterCacheResult> result, std::uint64_t charge) {
  if (auto old = index_.find(key); old != index_.end()) erase(old->second);
  lru_.push_front(Entry{key, std::move(result), charge, 1});
  index_.emplace(key, lru_.begin());
  counters_.bytes += charge;
  counters_.entries = lru_.size();
}

void WriterCache::unpin(const WriterCacheKey& key) {
  const auto it = index_.find(key);
  if (it != index_.end() && it->second->pins > 0) --it->second->pins;
}

void WriterCache::drop_steps(const std::function<bool(std::uint64_t)>& released,
                             std::vector<std::shared_ptr<Segment>>& dropped) {
  for (auto it = lru_.begin(); it != lru_.end();) {
    auto next = std::next(it);
    if (it->pins == 0 && released(it->key.step)) {
      dropped.push_back(it->result->segment);
      erase(it);
    }
    it = next;
  }
}

void WriterCache::clear() {
  lru_.clear();
  index_.clear();
  counters_.bytes = 0;
  counters_.entries = 0;
}

std::vector<WriterCacheKey> WriterCache::keys() const {
  std::vector<WriterCacheKey> out;
  for (const auto& e : lru_) out.push_back(e.key);
  return out;
}

std::uint32_t WriterCache::pins(const WriterCacheKey& key) const {
  const auto it = index_.find(key);
  return it == index_.end() ? 0 : it->second->pins;
}

void WriterCache::erase(List::iterator it) {
  counters_.bytes -= it->charge;
  index_.erase(it->key);
  lru_.erase(it);
  counters_.entries = lru_.size();
}

}  // namespace twinstream
