#pragma once
// Reader groups and their delivery policies. Every group sees the whole stream; inside a
// group the policy decides which members get a step. This release has `all`; the other
// policies (round_robin, on_demand, shuffle) plug in as further DeliveryPolicy classes.
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace twinstream {

using ReaderId = std::uint64_t;

class DeliveryPolicy {
 public:
  virtual ~DeliveryPolicy() = default;
  virtual std::string_view name() const = 0;
  /// Members that must receive step `index`, given the members present now.
  virtual std::vector<ReaderId> recipients(const std::vector<ReaderId>& members,
                                           std::uint64_t index) = 0;
};

/// Throws InvalidArgument for a policy this build does not have.
std::unique_ptr<DeliveryPolicy> make_policy(const std::string& name);

class ReaderGroups {
 public:
  /// Adds `reader` to `group`; the first member chooses the policy, later ones must agree
  /// (InvalidArgument otherwise).
  void join(const std::string& group, const std::string& policy, ReaderId reader);
  void leave(ReaderId reader);
  /// Every reader that must receive step `index`.
  std::set<ReaderId> recipients(std::uint64_t index);
  std::size_t groups() const { return groups_.size(); }

 private:
  struct Group {
    std::unique_ptr<DeliveryPolicy> policy;
    std::vector<ReaderId> members;
  };
  std::map<std::string, Group> groups_;
};

}  // namespace twinstream
