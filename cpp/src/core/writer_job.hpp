#pragma once
// One writer as a reader sees it: a job of one or more ranks (N x M), each reached through
// its own ReaderSource. Steps of the ranks are matched by index and their variables merged
// into what the user reads: global arrays (blocks placed by start/count), joined arrays
// (blocks stacked along axis 0 in rank order) and local arrays (blocks read by index). A
// read is planned here and each rank pulls only the pieces of its blocks that overlap it.
// Used by one thread (the reader's); every wait bounded.
#include <memory>
#include <string>
#include <vector>

#include "core/reader_source.hpp"

namespace twinstream {

class WriterJob {
 public:
  /// Connects to rank 0 through contact file `path` (waiting as ReaderSource does), then,
  /// if its contact names more ranks, to each of them (waiting until `deadline`: the ranks
  /// of a job open together). Throws InvalidArgument for a delivery policy that a job of
  /// several ranks cannot honour.
  WriterJob(std::string stream, std::string member, std::string path, const ReaderOptions& opt,
            transport::PlaneChoice choice, std::shared_ptr<BufferPool> buffers,
            net::Deadline deadline, bool wait);
  ~WriterJob() { close(); }

  /// Ok once every rank has offered the same step (a rank ahead waits for the others; a
  /// rank behind acknowledges its older steps: under a drop policy a step one rank dropped
  /// is skipped and counted as dropped). NotReady at the deadline (steps already offered
  /// are kept for the next call). EndOfStream once every rank has ended.
  StepStatus begin_step(net::Deadline deadline);
  ConstView get(std::string_view name, const Box* sel);
  void get_into(std::string_view name, const Box& sel, void* dst, std::size_t dst_bytes);
  ConstView get_block(std::string_view name, std::size_t index);
  void end_step();
  void close();

  /// Control connections still waiting for a step (to poll several writers at once), and
  /// whether any already has frames buffered.
  std::vector<int> fds() const;
  bool buffered() const;
  void remove_dead_writers_memory(double grace) const;

  const std::string& member() const { return ranks_.front()->member(); }
  std::size_t ranks() const { return ranks_.size(); }
  std::uint64_t first_step() const;
  std::uint64_t index() const { return ranks_.front()->step().index; }
  std::uint32_t flags() const { return flags_; }
  const std::string& source() const { return ranks_.front()->step().source; }
  const std::vector<VariableInfo>& variables() const { return vars_; }
  const Attributes& step_attributes() const { return step_attrs_; }
  const Attributes& stream_attributes() const { return stream_attrs_; }
  ReaderStats stats() const;

 private:
  // A block of the merged variable: which rank holds it and where it lies in the array the
  // user reads (joined blocks shifted past the lower ranks').
  struct Placed {
    std::uint32_t rank = 0;
    const wire::BlockMeta* meta = nullptr;
    Box box;
  };
  struct Merged {
    std::vector<Placed> blocks;
    std::string conflict;  // why the ranks' puts disagree; reads of it fail with this
  };
  void merge();
  std::string who() const;
  std::size_t find(std::string_view name) const;  // index into vars_; throws if absent
  Box checked_box(const VariableInfo& v, const Box* sel) const;

  const std::string name_;
  const ReaderOptions& opt_;
  std::shared_ptr<BufferPool> buffers_;
  std::vector<std::unique_ptr<ReaderSource>> ranks_;
  std::vector<VariableInfo> vars_;
  std::vector<Merged> merged_;  // parallel to vars_
  Attributes step_attrs_;
  Attributes stream_attrs_;
  std::uint32_t flags_ = 0;
  bool in_step_ = false;
  std::uint64_t bytes_ = 0;    // selection bytes read (what ReaderStats::bytes reports)
  std::uint64_t steps_ = 0;
  std::uint64_t skipped_ = 0;  // steps some rank had dropped, acknowledged at the others
};

}  // namespace twinstream
