#pragma once
// Writer side of the data planes that need the writer's help to reach its memory (fabric,
// mpi): they register each segment once when it is created (segments are reused step after
// step, so this is the registration cache) and deregister it when it is retired, and they
// tell a joining reader how to reach them. inproc, shm and tcp need none of this.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/messages.hpp"
#include "core/segment.hpp"

namespace twinstream::transport {

/// What a writer-side plane needs to know about its writer.
struct WriterContext {
  std::string stream;
  std::string host;  // address the control port binds; RMA endpoints bind the same interface
};

/// What a reader receives in its Welcome for an RMA plane.
struct PlaneGrant {
  std::string detail;                  // text the reader-side plane reads
  std::vector<std::string> addresses;  // one per writer endpoint
};

/// One opened RMA plane of a writer (one per fabric provider, one for mpi). Called from the
/// writer's threads, never concurrently on one object: the WriterPlanes hub serializes.
class DataPlaneWriter {
 public:
  virtual ~DataPlaneWriter() = default;
  virtual std::string_view name() const = 0;
  /// Makes a segment readable through this plane. Idempotent; throws Error on failure.
  virtual void add_segment(const std::shared_ptr<Segment>& s) = 0;
  /// Stops exposing a retired segment (a no-op for one never added).
  virtual void remove_segment(std::uint32_t id) = 0;
  /// Admits reader `reader` with its plane option: what it needs to reach this plane.
  /// Throws Unavailable.
  virtual PlaneGrant admit(std::uint64_t reader, const std::string& option) = 0;
  /// How reader `reader` reaches segment `id`; false when it is not exposed.
  virtual bool describe(std::uint64_t reader, std::uint32_t id, wire::RemoteSegment& out) = 0;
  virtual void reader_left(std::uint64_t reader) = 0;
  /// How many steps reader `reader` now holds (handed, not yet acknowledged): it reads
  /// only those. A plane whose reads need the writer's help (mpi) helps only then.
  virtual void steps_held(std::uint64_t /*reader*/, std::size_t /*held*/) {}
  /// Stops progress and deregisters everything, before the segments' memory goes.
  virtual void close() = 0;
};

/// The writer's RMA planes, opened on the first reader that asks for one. Segment events
/// reach every open plane; announcements to an RMA reader carry its remote keys.
class WriterPlanes {
 public:
  WriterPlanes(WriterContext ctx, std::shared_ptr<SegmentDirectory> segments);
  ~WriterPlanes() { close(); }

  /// Whether plane `name` needs a writer side (fabric, mpi).
  static bool needs_writer(const std::string& name);

  void add_segment(const std::shared_ptr<Segment>& s);
  void remove_segment(std::uint32_t id);
  /// Opens plane `name` with `option` if needed, admits the reader and fills the Welcome's
  /// plane fields. A no-op for planes without a writer side. Throws Unavailable.
  void admit(std::uint64_t reader, const std::string& name, const std::string& option,
             wire::Welcome& welcome);
  /// Adds the reader's remote keys for the step's segments (RMA readers only).
  void describe(std::uint64_t reader, wire::StepMeta& step);
  void reader_left(std::uint64_t reader);
  void steps_held(std::uint64_t reader, std::size_t held);
  /// Closes every plane; segments may be freed afterwards.
  void close();

 private:
  WriterContext ctx_;
  std::shared_ptr<SegmentDirectory> segments_;
  std::mutex mu_;
  // By name and the part of the option before '|' (fabric: the provider); the rest is the
  // reader's own (mpi: its rank).
  std::map<std::string, std::unique_ptr<DataPlaneWriter>> planes_;
  std::map<std::uint64_t, DataPlaneWriter*> readers_;
};

}  // namespace twinstream::transport
