#include "core/reader_group.hpp"

#include <algorithm>

#include "twinstream/errors.hpp"

namespace twinstream {
namespace {
class AllPolicy final : public DeliveryPolicy {
 public:
  std::string_view name() const override { return "all"; }
  Assignment assignment() const override { return Assignment::Eager; }
  std::vector<ReaderId> recipients(const std::vector<ReaderId>& members,
                                   std::uint64_t) const override {
    return members;
  }
  // Every other member already has the step: nobody to hand it to.
  bool redelivers() const override { return false; }
};

class RoundRobinPolicy final : public DeliveryPolicy {
 public:
  std::string_view name() const override { return "round_robin"; }
  Assignment assignment() const override { return Assignment::Eager; }
  std::vector<ReaderId> recipients(const std::vector<ReaderId>& members,
                                   std::uint64_t index) const override {
    if (members.empty()) return {};
    return {members[index % members.size()]};
  }
};

class OnDemandPolicy final : public DeliveryPolicy {
 public:
  std::string_view name() const override { return "on_demand"; }
  Assignment assignment() const override { return Assignment::Lazy; }
  std::vector<ReaderId> recipients(const std::vector<ReaderId>&, std::uint64_t) const override {
    return {};
  }
};

class ShufflePolicy final : public DeliveryPolicy {
 public:
  std::string_view name() const override { return "shuffle"; }
  Assignment assignment() const override { return Assignment::Batches; }
  std::vector<ReaderId> recipients(const std::vector<ReaderId>&, std::uint64_t) const override {
    return {};
  }
};

std::string describe(const ShuffleOptions& s) {
  std::string vars;
  for (const auto& v : s.variables) vars += (vars.empty() ? "" : ",") + v;
  return "window=" + std::to_string(s.window) + " batch_size=" + std::to_string(s.batch_size) +
         " seed=" + std::to_string(s.seed) + " passes=" + std::to_string(s.passes) +
         " variables='" + vars + "'";
}
}  // namespace

std::unique_ptr<DeliveryPolicy> make_policy(const std::string& name) {
  if (name == "all" || name.empty()) return std::make_unique<AllPolicy>();
  if (name == "round_robin") return std::make_unique<RoundRobinPolicy>();
  if (name == "on_demand") return std::make_unique<OnDemandPolicy>();
  if (name == "shuffle") return std::make_unique<ShufflePolicy>();
  throw InvalidArgument("unknown delivery policy '" + name +
                        "'; use all, round_robin, on_demand or shuffle");
}

GroupId ReaderGroups::join(const std::string& name, const std::string& policy, ReaderId reader,
                           bool latest, const ShuffleOptions& shuffle) {
  auto found = by_name_.find(name);
  if (found == by_name_.end()) {
    auto p = make_policy(policy);
    if (latest && (p->name() == "round_robin" || p->name() == "shuffle")) {
      throw InvalidArgument("latest=True cannot be used with policy " + std::string(p->name()) +
                            ", which promises every step (or sample) to the group; use all or "
                            "on_demand");
    }
    Group g;
    g.name = name;
    g.policy = std::move(p);
    if (g.policy->assignment() == Assignment::Batches) {
      g.shuffler = std::make_unique<Shuffler>(shuffle);
    }
    const GroupId id = next_id_++;
    groups_.emplace(id, std::move(g));
    found = by_name_.emplace(name, id).first;
  }
  auto& g = groups_.at(found->second);
  if (!policy.empty() && g.policy->name() != policy) {
    throw InvalidArgument("reader group '" + name + "' uses policy '" +
                          std::string(g.policy->name()) + "', not '" + policy +
                          "'; join with the same policy or use another group name");
  }
  if (g.shuffler && !(g.shuffler->options() == shuffle)) {
    throw InvalidArgument("reader group '" + name + "' shuffles with " +
                          describe(g.shuffler->options()) + ", not " + describe(shuffle) +
                          "; join with the same parameters or use another group name");
  }
  if (latest && g.policy->assignment() != Assignment::Eager && g.policy->name() != "on_demand") {
    throw InvalidArgument("latest=True cannot be used in group '" + name + "' (policy " +
                          std::string(g.policy->name()) + ")");
  }
  g.members.push_back(reader);
  if (g.shuffler) g.shuffler->set_members(g.members);
  members_[reader] = Member{found->second, latest};
  return found->second;
}

std::optional<GroupId> ReaderGroups::leave(ReaderId reader) {
  auto m = members_.find(reader);
  if (m == members_.end()) return std::nullopt;
  const GroupId id = m->second.group;
  members_.erase(m);
  auto& g = groups_.at(id);
  g.members.erase(std::remove(g.members.begin(), g.members.end(), reader), g.members.end());
  if (g.shuffler) g.shuffler->remove_member(reader);
  if (!g.members.empty()) return std::nullopt;
  by_name_.erase(g.name);
  groups_.erase(id);
  return id;
}

Recipients ReaderGroups::recipients(std::uint64_t index) const {
  Recipients out;
  for (const auto& [id, g] : groups_) {
    switch (g.policy->assignment()) {
      case Assignment::Eager:
        for (auto r : g.policy->recipients(g.members, index)) out.readers.insert(r);
        break;
      case Assignment::Lazy: out.owed.insert(id); break;
      case Assignment::Batches: out.claims.insert(id); break;
    }
  }
  return out;
}

const ReaderGroups::Member* ReaderGroups::member(ReaderId reader) const {
  auto it = members_.find(reader);
  return it == members_.end() ? nullptr : &it->second;
}

ReaderGroups::Group* ReaderGroups::group(GroupId id) {
  auto it = groups_.find(id);
  return it == groups_.end() ? nullptr : &it->second;
}

const ReaderGroups::Group* ReaderGroups::group(GroupId id) const {
  auto it = groups_.find(id);
  return it == groups_.end() ? nullptr : &it->second;
}

bool ReaderGroups::backlogged() const {
  return std::any_of(groups_.begin(), groups_.end(), [](const auto& kv) {
    return kv.second.shuffler && kv.second.shuffler->backlogged();
  });
}

}  // namespace twinstream
