#pragma once
// Writer side of the fabric plane: one RDM endpoint per provider that readers asked for,
// every segment registered once for remote reads (segments are reused step after step,
// so registration happens when a segment is created, not per step), and a progress thread
// for providers whose RMA only advances when the target polls (FI_PROGRESS_MANUAL, shm).
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "control/socket.hpp"
#include "transport/fabric/fabric_common.hpp"
#include "transport/writer_plane.hpp"

namespace twinstream::fabric {

class FabricWriter final : public transport::DataPlaneWriter {
 public:
  /// Opens an endpoint of `provider` bound to the writer's interface. Throws Unavailable.
  FabricWriter(const transport::WriterContext& ctx, const std::string& provider);
  ~FabricWriter() override;

  std::string_view name() const override { return "fabric"; }
  void add_segment(const std::shared_ptr<Segment>& s) override;
  void remove_segment(std::uint32_t id) override;
  transport::PlaneGrant admit(std::uint64_t reader, const std::string& option) override;
  bool describe(std::uint64_t reader, std::uint32_t id, wire::RemoteSegment& out) override;
  void reader_left(std::uint64_t) override {}
  void close() override;

 private:
  struct Registration {
    std::shared_ptr<Segment> segment;  // keeps the memory alive while it is registered
    Fid<fid_mr> mr;
    std::uint64_t key = 0;
    std::uint64_t address = 0;  // what readers add offsets to
  };
  void progress();
  void progress_on_fd(int wait_fd);
  void progress_polling();
  void drain(fi_cq_entry* entries);  // under mu_

  std::string stream_;
  std::unique_ptr<Endpoint> ep_;
  std::string address_;
  std::mutex mu_;  // the domain is opened FI_THREAD_DOMAIN: one thread in it at a time
  std::map<std::uint32_t, Registration> regs_;

  std::thread progress_;
  std::mutex idle_mu_;
  std::condition_variable idle_cv_;
  bool stop_ = false;
  std::atomic<bool> stop_flag_{false};
  net::Fd stop_fd_;  // eventfd that wakes the progress agent for close()
  std::atomic<std::uint64_t> kicks_{0};
};

}  // namespace twinstream::fabric
