#include "core/reader_group.hpp"

#include <algorithm>

#include "twinstream/errors.hpp"

namespace twinstream {
namespace {
class AllPolicy final : public DeliveryPolicy {
 public:
  std::string_view name() const override { return "all"; }
  std::vector<ReaderId> recipients(const std::vector<ReaderId>& members, std::uint64_t) override {
    return members;
  }
};
}  // namespace

std::unique_ptr<DeliveryPolicy> make_policy(const std::string& name) {
  if (name == "all" || name.empty()) return std::make_unique<AllPolicy>();
  throw InvalidArgument("unknown delivery policy '" + name + "'; this build supports: all");
}

void ReaderGroups::join(const std::string& group, const std::string& policy, ReaderId reader) {
  auto it = groups_.find(group);
  if (it == groups_.end()) {
    it = groups_.emplace(group, Group{make_policy(policy), {}}).first;
  } else if (!policy.empty() && it->second.policy->name() != policy) {
    throw InvalidArgument("reader group '" + group + "' uses policy '" +
                          std::string(it->second.policy->name()) + "', not '" + policy +
                          "'; join with the same policy or use another group name");
  }
  it->second.members.push_back(reader);
}

void ReaderGroups::leave(ReaderId reader) {
  for (auto it = groups_.begin(); it != groups_.end();) {
    auto& m = it->second.members;
    m.erase(std::remove(m.begin(), m.end(), reader), m.end());
    it = m.empty() ? groups_.erase(it) : std::next(it);
  }
}

std::set<ReaderId> ReaderGroups::recipients(std::uint64_t index) {
  std::set<ReaderId> out;
  for (auto& [name, g] : groups_) {
    for (auto r : g.policy->recipients(g.members, index)) out.insert(r);
  }
  return out;
}

}  // namespace twinstream
