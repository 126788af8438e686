#pragma once
// The shuffle policy's bookkeeping: which samples go in which batch, which member gets
// which batch, and when a window of steps may be released. Pure bookkeeping, no I/O.
//
// A sample is one row (a slice along the first axis) of the group's variables in one step.
// Steps are collected into windows of `window` steps. A window's samples are delivered
// `passes` times; each pass is a seeded random permutation of all of them, cut into
// batches of `batch_size` (the last may be smaller), so every sample goes out exactly once
// per pass across the whole group. Batch j of a pass goes to member j mod n of the members
// present when the pass starts (the same seed and membership give every member the same
// sequence); a batch whose member leaves goes to whichever member asks next. While one
// window is being delivered the next one fills; when that one is full too, the group is
// backlogged and a blocking writer waits.
#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "twinstream/options.hpp"

namespace twinstream {

using ReaderId = std::uint64_t;

struct Sample {
  std::uint64_t step = 0;
  std::uint64_t row = 0;
  bool operator==(const Sample&) const = default;
};

struct Batch {
  std::uint64_t id = 0;     // sequence number in the group: the index its reader sees
  std::uint32_t pass = 0;   // pass over its window, counted over the whole stream
  std::vector<Sample> samples;
  ReaderId assigned = 0;    // the member it is meant for; 0: whoever asks first
  ReaderId holder = 0;      // the member it was handed to; 0: not handed
  bool redelivered = false; // handed before to a member that left without acknowledging
  bool acked = false;
};

/// A deterministic random permutation of 0..n-1 from (seed, stream): our own generator,
/// so that the order does not depend on the C++ library.
std::vector<std::uint64_t> seeded_permutation(std::uint64_t n, std::uint64_t seed,
                                              std::uint64_t stream);

class Shuffler {
 public:
  explicit Shuffler(ShuffleOptions options) : opt_(std::move(options)) {}
  const ShuffleOptions& options() const { return opt_; }

  /// Step `index` with `rows` samples joins the window being filled.
  void add_step(std::uint64_t index, std::uint64_t rows);
  /// The stream ends: a partly filled window is delivered as it is.
  void finish();
  /// Members in join order; used from the next pass on.
  void set_members(std::vector<ReaderId> members);
  /// The next batch for `member` (marked handed), or nullptr.
  Batch* next_for(ReaderId member);
  /// `member` acknowledged batch `id`. Returns the steps whose window is now fully
  /// delivered (the caller releases them). Throws ProtocolError if it does not hold it.
  std::vector<std::uint64_t> ack(ReaderId member, std::uint64_t id);
  /// The batch `member` holds with that id, or nullptr.
  const Batch* held(ReaderId member, std::uint64_t id) const;
  /// `member` left or died: what it held is re-delivered, what was meant for it goes to
  /// whoever asks.
  void remove_member(ReaderId member);
  /// The window after the one being delivered is full (a blocking writer waits).
  bool backlogged() const;
  /// Nothing more will be delivered (finished and every batch acknowledged).
  bool done() const;
  /// Steps the shuffler still keeps.
  std::vector<std::uint64_t> steps() const;

 private:
  struct Window {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> steps;  // (index, rows)
    bool full = false;
  };
  void start_pass();
  bool window_ready(const Window& w) const { return w.full || (finished_ && !w.steps.empty()); }

  ShuffleOptions opt_;
  std::vector<ReaderId> members_;
  std::deque<Window> windows_;  // front: being delivered once a pass has started
  std::deque<Batch> batches_;   // the current pass
  bool delivering_ = false;
  std::uint32_t pass_in_window_ = 0;
  std::uint32_t passes_started_ = 0;
  std::uint64_t windows_started_ = 0;
  std::uint64_t next_batch_ = 0;
  bool finished_ = false;
};

}  // namespace twinstream
