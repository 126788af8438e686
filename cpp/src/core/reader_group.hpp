#pragma once
// Reader groups and their delivery policies. Every group sees the whole stream; inside a
// group the policy decides which member gets a step:
//   all          every member, decided when the step is published (eager);
//   round_robin  member k mod n of the members present at publication (eager);
//   on_demand    the step is owed by the group and goes to the first member with room to
//                take it (lazy: decided when a member asks);
//   shuffle      the group's Shuffler claims the step and hands out batches of its
//                samples (see shuffle.hpp).
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/shuffle.hpp"
#include "twinstream/options.hpp"

namespace twinstream {

using ReaderId = std::uint64_t;
using GroupId = std::uint32_t;

enum class Assignment { Eager, Lazy, Batches };

class DeliveryPolicy {
 public:
  virtual ~DeliveryPolicy() = default;
  virtual std::string_view name() const = 0;
  virtual Assignment assignment() const = 0;
  /// Eager policies: members that must receive step `index` (members in join order).
  virtual std::vector<ReaderId> recipients(const std::vector<ReaderId>& members,
                                           std::uint64_t index) const = 0;
  /// Whether a member that dies hands its unacknowledged steps to another member.
  virtual bool redelivers() const { return true; }
};

/// Throws InvalidArgument for an unknown policy name.
std::unique_ptr<DeliveryPolicy> make_policy(const std::string& name);

/// Which readers and groups a newly published step goes to.
struct Recipients {
  std::set<ReaderId> readers;  ///< eager assignments
  std::set<GroupId> owed;      ///< lazy groups: one member will take it
  std::set<GroupId> claims;    ///< shuffle groups: the group's shuffler keeps it
};

class ReaderGroups {
 public:
  struct Member {
    GroupId group = 0;
    bool latest = false;
  };
  struct Group {
    std::string name;
    std::unique_ptr<DeliveryPolicy> policy;
    std::vector<ReaderId> members;  // join order
    std::unique_ptr<Shuffler> shuffler;  // shuffle groups only
  };

  /// Adds `reader` to group `name`. The first member chooses the policy (and shuffle
  /// parameters); later ones must agree (InvalidArgument otherwise, naming the fix).
  /// Returns the group's id.
  GroupId join(const std::string& name, const std::string& policy, ReaderId reader, bool latest,
               const ShuffleOptions& shuffle);
  /// Removes `reader`; returns the id of its group when that group is now empty (and gone).
  std::optional<GroupId> leave(ReaderId reader);

  Recipients recipients(std::uint64_t index) const;

  const Member* member(ReaderId reader) const;
  Group* group(GroupId id);
  const Group* group(GroupId id) const;
  std::map<GroupId, Group>& all() { return groups_; }
  std::size_t groups() const { return groups_.size(); }
  /// True when a shuffle group cannot take more steps until its current window is done
  /// (the writer waits under queue_policy=block).
  bool backlogged() const;

 private:
  std::map<GroupId, Group> groups_;
  std::map<std::string, GroupId, std::less<>> by_name_;
  std::map<ReaderId, Member> members_;
  GroupId next_id_ = 1;
};

}  // namespace twinstream
