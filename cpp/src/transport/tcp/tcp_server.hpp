#pragma once
// Writer side of the tcp plane: one thread per reader data connection answers pull
// requests with scatter-gather sends straight from step memory (no staging copy).
#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control/socket.hpp"
#include "core/segment.hpp"

namespace twinstream::transport {

/// What the server may read: the segments of a step, only while `reader_id` holds it.
class StepAccess {
 public:
  virtual ~StepAccess() = default;
  /// Segments of step `step` if reader `reader_id` holds it now; empty otherwise.
  virtual std::vector<std::shared_ptr<Segment>> held_segments(std::uint64_t reader_id,
                                                              std::uint64_t step) = 0;
};

class TcpServer {
 public:
  TcpServer(std::string stream, StepAccess& access) : stream_(std::move(stream)), access_(access) {}
  ~TcpServer() { stop(); }
  /// Serves a reader's authenticated data connection on its own thread.
  void serve(net::Fd fd, std::uint64_t reader_id);
  /// Wakes and joins every serving thread.
  void stop();

 private:
  struct Worker {
    net::Fd fd;  // closed when the worker is reaped, so shutdown() never hits a reused fd
    std::atomic<bool> done{false};
    std::thread thread;
  };
  void run(Worker& w, int fd, std::uint64_t reader_id);
  void reap_finished();

  std::string stream_;
  StepAccess& access_;
  std::mutex mu_;
  std::list<Worker> workers_;
};

}  // namespace twinstream::transport
