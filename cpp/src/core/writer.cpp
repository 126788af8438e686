// Writer: step building on the user's thread, and delivery bookkeeping shared with the
// service thread (writer_service.cpp).
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/log.hpp"
#include "transport/inproc/inproc.hpp"
#include "transport/shm/shared_memory.hpp"
#include "twinstream/errors.hpp"
#include "core/writer_impl.hpp"

namespace twinstream {

namespace {
std::uint64_t random_u64() {
  const auto t = random_token();
  std::uint64_t v;
  std::memcpy(&v, t.data(), sizeof v);
  return v;
}
}  // namespace

Writer::Impl::Impl(std::string name, WriterOptions options)
    : name_(std::move(name)), opt_(std::move(options)), queue_(opt_.queue_limit, opt_.queue_policy) {
  validate_stream_name(name_);
  // An ensemble member publishes under its own contact file; readers of the stream find
  // every member's.
  if (opt_.rank >= opt_.ranks) {
    throw InvalidArgument("stream '" + name_ + "': rank " + std::to_string(opt_.rank) +
                          " of a writer job of " + std::to_string(opt_.ranks) +
                          " ranks; ranks count from 0 (open with comm= to set both)");
  }
  // The ranks of a writer job each publish their own contact file next to rank 0's.
  contact_path_ = rank_contact_path(
      opt_.member.empty() ? twinstream::contact_path(rendezvous_dir(opt_.dir), name_)
                          : member_contact_path(rendezvous_dir(opt_.dir), name_, opt_.member),
      opt_.rank);
  std::string why;
  if (auto old = read_contact(contact_path_, &why)) {
    if (contact_is_live(*old)) {
      throw Error("stream '" + name_ + "' already has a live writer (pid " +
                  std::to_string(old->pid) + ", " + net::format_address(old->host, old->port) +
                  ", contact file " + contact_path_ + "); stop it or choose another name");
    }
    log::warn("stream '" + name_ + "': replacing the stale contact file " + contact_path_ +
              " of a dead writer (pid " + std::to_string(old->pid) + ")");
    if (old->host_id == net::host_id()) shm::unlink_all_with_prefix(old->shm_prefix);
  } else if (::access(contact_path_.c_str(), F_OK) == 0) {
    log::warn("stream '" + name_ + "': replacing unreadable contact file: " + why);
  }

  queue_.set_retention(opt_.history, opt_.keep_first);
  token_ = random_token();
  writer_key_ = random_u64();
  if (opt_.shm) {
    shm_prefix_ = "twinstream-" + std::to_string(::getpid()) + "-" + to_hex(token_).substr(0, 12);
  }
  std::uint16_t port = 0;
  listen_ = net::listen_tcp(opt_.host, opt_.port, &port);
  net::set_nonblocking(listen_.get(), true);
  wake_fd_ = net::Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  tcp_ = std::make_unique<transport::TcpServer>(name_, *this);
  planes_ = std::make_unique<transport::WriterPlanes>(transport::WriterContext{name_, opt_.host},
                                                       segments_);
  transport::inproc::register_writer(writer_key_, segments_);

  Contact c;
  c.host = opt_.advertise.empty() ? opt_.host : opt_.advertise;
  if (c.host == "0.0.0.0" || c.host == "::") c.host = "127.0.0.1";
  c.port = port;
  c.token = token_;
  c.pid = static_cast<std::uint32_t>(::getpid());
  c.host_id = net::host_id();
  c.shm_prefix = shm_prefix_;
  c.rank = opt_.rank;
  c.ranks = opt_.ranks;
  c.job = opt_.job;
  address_ = net::format_address(c.host, port);
  write_contact(contact_path_, c);
  service_ = std::thread([this] { serve(); });
  log::info("stream '" + name_ + "': writer listening on " + address_ + ", contact file " +
            contact_path_);
}

Writer::Impl::~Impl() {
  try {
    close();
  } catch (const std::exception& e) {
    log::warn("stream '" + name_ + "': error while closing: " + e.what());
  }
}

std::shared_ptr<Segment> Writer::Impl::new_segment(std::size_t min_size) {
  // Powers of two, at least 256 KiB: few distinct sizes, so slots stay reusable.
  const std::size_t size = std::bit_ceil(std::max<std::size_t>(min_size, 256u << 10));
  auto seg = std::make_shared<Segment>(next_segment_id_++, size, shm_prefix_);
  segments_->add(seg);
  planes_->add_segment(seg);
  return seg;
}

void Writer::Impl::begin_step() {
  if (closed_ || closing_) throw InvalidArgument("stream '" + name_ + "': begin_step after close");
  if (in_step_) {
    throw InvalidArgument("stream '" + name_ + "': begin_step called twice; call end_step first");
  }
  std::unique_lock lock(mu_);
  if (first_step_ && opt_.min_readers > 0) {
    const auto deadline = net::deadline_after(opt_.open_timeout);
    if (!cv_.wait_until(lock, deadline, [&] { return readers_.size() >= opt_.min_readers; })) {
      throw TimeoutError("stream '" + name_ + "': only " + std::to_string(readers_.size()) +
                         " of min_readers=" + std::to_string(opt_.min_readers) +
                         " readers joined within " + std::to_string(opt_.open_timeout) +
                         " s; start the readers (contact file " + contact_path_ +
                         ") or lower min_readers");
    }
  }
  first_step_ = false;
  read_rings();  // acknowledgements waiting in control rings may make room
  // A shuffle group whose next window is full waits for its current one to be delivered.
  if (opt_.queue_policy == QueuePolicy::Block && (queue_.full() || groups_.backlogged())) {
    const auto t0 = net::Clock::now();
    // Readers on control rings ring when they acknowledge while we wait; the rings are
    // read once more after asking, so that an acknowledgement just before is not missed.
    user_waits_ = true;
    for (auto& [id, p] : readers_) want_acks(p);
    read_rings();
    cv_.wait(lock, [&] { return (!queue_.full() && !groups_.backlogged()) || stop_; });
    user_waits_ = false;
    stats_.blocked_ns += static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(net::Clock::now() - t0).count());
  }
  if (!free_slots_.empty()) {
    slot_ = std::move(free_slots_.back());
    free_slots_.pop_back();
  } else {
    slot_ = std::make_unique<Slot>();
  }
  std::vector<std::uint32_t> retired;
  slot_->reset([this](std::size_t n) { return new_segment(n); }, retired);
  for (auto id : retired) {
    segments_->remove(id);
    planes_->remove_segment(id);
    retired_log_.emplace_back(++retired_seq_, id);
  }
  vars_.clear();
  step_attrs_.clear();
  in_step_ = true;
}

wire::VariableMeta& Writer::Impl::variable_for(std::string_view name, ArrayKind kind,
                                               DType dtype, const Dims& shape, const Dims& start,
                                               const Dims& count) {
  const std::string who = "stream '" + name_ + "' variable '" + std::string(name) + "'";
  if (!in_step_) throw InvalidArgument(who + ": put outside a step; call begin_step first");
  if (name.empty() || name.size() > 4096) throw InvalidArgument(who + ": bad variable name");
  if (!dtype_valid(static_cast<std::uint8_t>(dtype))) throw InvalidArgument(who + ": bad dtype");
  if (shape.size() > kMaxRank) throw InvalidArgument(who + ": rank above 32");
  if (start.size() != shape.size() || count.size() != shape.size()) {
    throw InvalidArgument(who + ": start " + dims_to_string(start) + " and count " +
                          dims_to_string(count) + " must have the rank of shape " +
                          dims_to_string(shape));
  }
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (start[d] > shape[d] || count[d] > shape[d] - start[d]) {
      throw InvalidArgument(who + ": block start " + dims_to_string(start) + " count " +
                            dims_to_string(count) + " lies outside shape " +
                            dims_to_string(shape));
    }
  }
  (void)element_count(shape);
  for (auto& v : vars_) {
    if (v.name != name) continue;
    if (v.kind != kind) {
      throw InvalidArgument(who + ": already put in this step as a " +
                            std::string(kind_name(v.kind)) + " array, now as a " +
                            std::string(kind_name(kind)) + " one");
    }
    // Joined and local arrays grow with each block (shape here is the block's own).
    const bool agree = kind == ArrayKind::Global ? v.shape == shape
                       : kind == ArrayKind::Joined
                           ? std::equal(v.shape.begin() + 1, v.shape.end(), shape.begin() + 1,
                                        shape.end())
                           : v.shape.size() == shape.size();
    if (v.dtype != dtype || !agree) {
      throw InvalidArgument(who + ": already put in this step as " +
                            std::string(dtype_name(v.dtype)) + dims_to_string(v.shape) +
                            ", now as " + std::string(dtype_name(dtype)) +
                            dims_to_string(shape) + "; blocks of one variable must agree" +
                            (kind == ArrayKind::Joined ? " on every axis but the first" : ""));
    }
    return v;
  }
  if (kind == ArrayKind::Local && definitions_.count(name)) {
    throw InvalidArgument(who + ": a local array has no single array for its pipeline to run "
                          "on; put it as a global or joined array, or apply the pipeline to "
                          "each block in the reader");
  }
  check_definition(name, dtype, shape);
  auto& v = vars_.emplace_back();
  v.name = std::string(name);
  v.dtype = dtype;
  v.kind = kind;
  v.shape = shape;
  if (kind == ArrayKind::Joined) v.shape[0] = 0;  // grows block by block
  return v;
}

Writer::Impl::Block Writer::Impl::add_block(std::string_view name, ArrayKind kind, DType dtype,
                                            const Dims& shape, const Dims& start,
                                            const Dims& count) {
  auto& v = variable_for(name, kind, dtype, shape, start, count);
  const std::uint64_t nbytes = element_count(count) * dtype_size(dtype);
  const auto a = slot_->allocate(nbytes, [this](std::size_t n) { return new_segment(n); });
  Dims at = start;
  if (kind == ArrayKind::Joined) {
    // Stacked after this rank's earlier blocks; readers shift it past the lower ranks'.
    at[0] = v.shape[0];
    v.shape[0] += count[0];
  } else if (kind == ArrayKind::Local) {
    for (std::size_t d = 0; d < count.size(); ++d) v.shape[d] = std::max(v.shape[d], count[d]);
  }
  v.blocks.push_back({std::move(at), count, a.segment, a.offset, nbytes});
  return {{a.data, nbytes}, a.segment};
}

std::shared_ptr<std::byte> Writer::Impl::reserve_shared(std::string_view name, DType dtype,
                                                        const Dims& shape, const Dims& start,
                                                        const Dims& count) {
  const auto block = add_block(name, ArrayKind::Global, dtype, shape, start, count);
  return {segments_->find(block.segment), block.bytes.data()};
}

void Writer::Impl::abort_step() {
  if (!in_step_) throw InvalidArgument("stream '" + name_ + "': abort_step without begin_step");
  in_step_ = false;
  vars_.clear();
  step_attrs_.clear();
  std::lock_guard lock(mu_);
  release(std::move(slot_));
}

void Writer::Impl::put(std::string_view name, DType dtype, const Dims& shape, const Dims& start,
                       const Dims& count, const void* data) {
  // Checked before the block is added, so that a refused put leaves the step as it was.
  if (!data && element_count(count) != 0) {
    throw InvalidArgument("stream '" + name_ + "': put of '" + std::string(name) +
                          "' with no data");
  }
  const auto block = add_block(name, ArrayKind::Global, dtype, shape, start, count);
  if (!block.bytes.empty()) std::memcpy(block.bytes.data(), data, block.bytes.size());
}

void Writer::Impl::put_block(std::string_view name, ArrayKind kind, DType dtype,
                             const Dims& count, const void* data) {
  const std::string what = kind == ArrayKind::Joined ? "put_joined" : "put_local";
  if (!data && element_count(count) != 0) {
    throw InvalidArgument("stream '" + name_ + "': " + what + " of '" + std::string(name) +
                          "' with no data");
  }
  if (kind == ArrayKind::Joined && count.empty()) {
    throw InvalidArgument("stream '" + name_ + "': " + what + " of '" + std::string(name) +
                          "' needs at least one axis (blocks are stacked along the first)");
  }
  const auto block = add_block(name, kind, dtype, count, Dims(count.size(), 0), count);
  if (!block.bytes.empty()) std::memcpy(block.bytes.data(), data, block.bytes.size());
}

std::span<std::byte> Writer::Impl::reserve(std::string_view name, DType dtype, const Dims& shape,
                                           const Dims& start, const Dims& count) {
  return add_block(name, ArrayKind::Global, dtype, shape, start, count).bytes;
}

namespace {
void check_attribute(const std::string& stream, std::string_view name, const AttributeValue& v) {
  if (name.empty() || name.size() > 4096) {
    throw InvalidArgument("stream '" + stream + "': attribute names must have 1-4096 characters");
  }
  std::size_t size = 0;
  if (auto* s = std::get_if<std::string>(&v)) size = s->size();
  if (auto* a = std::get_if<ArrayAttribute>(&v)) {
    size = a->bytes.size();
    if (a->shape.size() > kMaxRank ||
        element_count(a->shape) * dtype_size(a->dtype) != a->bytes.size()) {
      throw InvalidArgument("stream '" + stream + "': attribute '" + std::string(name) +
                            "' bytes do not match its shape");
    }
  }
  if (size > kMaxAttributeBytes) {
    throw InvalidArgument("stream '" + stream + "': attribute '" + std::string(name) +
                          "' is larger than 1 MiB; put it as a variable instead");
  }
}
}  // namespace

void Writer::Impl::set_step_attribute(std::string_view name, AttributeValue value) {
  if (!in_step_) {
    throw InvalidArgument("stream '" + name_ + "': step attribute '" + std::string(name) +
                          "' set outside a step; call begin_step first");
  }
  check_attribute(name_, name, value);
  step_attrs_[std::string(name)] = std::move(value);
}

void Writer::Impl::set_attribute(std::string_view name, AttributeValue value) {
  check_attribute(name_, name, value);
  std::lock_guard lock(mu_);
  stream_attrs_[std::string(name)] = std::move(value);
  ++stream_attrs_version_;
}

void Writer::Impl::end_step() {
  if (!in_step_) throw InvalidArgument("stream '" + name_ + "': end_step without begin_step");
  ops_unpublished_bytes_ = 0;
  if (!definitions_.empty()) run_definitions();
  QueuedStep s;
  s.slot = std::move(slot_);
  s.variables = std::move(vars_);
  s.attributes = std::move(step_attrs_);
  vars_.clear();
  step_attrs_.clear();
  in_step_ = false;

  std::lock_guard lock(mu_);
  read_rings();  // acknowledgements first: they free steps the queue may drop or reuse
  // Numbered under the lock: a reader joining now learns the first index it will be offered.
  s.index = next_index_++;
  // A step carries the stream attributes as they were when it ended, not as they are
  // when a slow reader gets to it.
  if (!stream_snapshot_ || snapshot_version_ != stream_attrs_version_) {
    stream_snapshot_ = std::make_shared<const Attributes>(stream_attrs_);
    snapshot_version_ = stream_attrs_version_;
  }
  s.stream_attributes = stream_snapshot_;
  s.stream_attributes_version = snapshot_version_;
  stats_.steps++;
  stats_.bytes += s.slot->used() - ops_unpublished_bytes_;
  const auto to = groups_.recipients(s.index);
  s.pending = to.readers;
  for (auto g : to.owed) s.owed.emplace(g, false);
  const auto claims = shuffle_claims(s);
  const auto index = s.index;
  auto result = queue_.publish(std::move(s));
  for (const auto& d : result.dropped) count_dropped(d);
  if (auto* q = queue_.find(index)) {
    for (const auto& [g, rows] : claims) {
      if (q->claims.count(g)) groups_.group(g)->shuffler->add_step(index, rows);
    }
  }
  for (auto& slot : result.freed) release(std::move(slot));
  pump_all();
  reap_dead();
}

void Writer::Impl::count_dropped(const StepQueue::Dropped& d) {
  // Counted once per step the writer published and somebody missed; skips of `latest`
  // readers are theirs alone.
  bool counted = false;
  auto count_for = [&](ReaderId r) {
    if (auto it = readers_.find(r); it != readers_.end()) {
      it->second.dropped++;
      if (!it->second.latest) counted = true;
    }
  };
  for (auto r : d.readers) count_for(r);
  for (auto g : d.groups) {
    if (auto* grp = groups_.group(g)) {
      for (auto r : grp->members) count_for(r);
    }
  }
  if (counted || (d.readers.empty() && d.groups.empty())) stats_.dropped++;
}

std::vector<std::pair<GroupId, std::uint64_t>> Writer::Impl::shuffle_claims(QueuedStep& s) {
  std::vector<std::pair<GroupId, std::uint64_t>> out;
  for (auto& [id, g] : groups_.all()) {
    if (!g.shuffler) continue;
    std::string why;
    if (g.shuffler->backlogged()) {
      why = "the group is still delivering its previous windows (the writer does not wait "
            "under queue_policy=" + std::string(queue_policy_name(opt_.queue_policy)) + ")";
    } else if (auto rows = sample_rows(g.shuffler->options(), s.variables, signatures_[id], &why)) {
      s.claims.insert(id);
      out.emplace_back(id, rows);
      continue;
    }
    log::warn("stream '" + name_ + "': step " + std::to_string(s.index) +
              " is not shuffled for group '" + g.name + "': " + why);
    for (auto r : g.members) {
      if (auto it = readers_.find(r); it != readers_.end()) it->second.dropped++;
    }
  }
  return out;
}

void Writer::Impl::close() {
  if (closed_) return;
  if (in_step_) abort_step();  // an unfinished step is discarded
  {
    std::unique_lock lock(mu_);
    closing_ = true;
    // Shuffle groups deliver a partly filled last window as it is.
    for (auto& [id, g] : groups_.all()) {
      if (g.shuffler) g.shuffler->finish();
    }
    pump_all();
    wake();
    const auto deadline = net::deadline_after(opt_.close_timeout);
    const bool drained = cv_.wait_until(lock, deadline, [&] {
      for (const auto& [id, p] : readers_) {
        if (!p.dead && (!p.end_sent || p.out_pos < p.out.size())) return false;
      }
      return true;
    });
    if (!drained) {
      log::warn("stream '" + name_ + "': " + std::to_string(readers_.size()) +
                " reader(s) did not drain the queue within close_timeout=" +
                std::to_string(opt_.close_timeout) + " s; they will see the connection close");
    }
    stop_ = true;
    wake();
    cv_.notify_all();
  }
  if (service_.joinable()) service_.join();
  tcp_->stop();
  planes_->close();  // deregisters step memory before it is freed below
  {
    // Step memory goes now, not when the object is destroyed: shared-memory names are
    // unlinked (views readers still hold stay mapped until they drop them).
    std::lock_guard lock(mu_);
    readers_.clear();
    pending_.clear();
    queue_.clear();
    free_slots_.clear();
    cache_.clear();
    request_states_.clear();
    segments_->clear();
  }
  remove_contact_if_ours(contact_path_, token_);
  transport::inproc::unregister_writer(writer_key_);
  closed_ = true;
}

WriterStats Writer::Impl::stats() const {
  std::lock_guard lock(mu_);
  WriterStats s = stats_;
  s.readers = static_cast<std::uint32_t>(readers_.size());
  s.queued = static_cast<std::uint32_t>(queue_.size());
  s.ops_seconds = ops_seconds_;
  s.ops_last_seconds = ops_last_seconds_;
  s.ops_steps = ops_steps_;
  ops::report(cache_.counters(), s);
  return s;
}

std::vector<std::shared_ptr<Segment>> Writer::Impl::held_segments(ReaderId reader,
                                                                  std::uint64_t step) {
  std::lock_guard lock(mu_);
  const auto* m = groups_.member(reader);
  const auto* g = m ? groups_.group(m->group) : nullptr;
  if (g && g->shuffler) {
    const auto* b = g->shuffler->held(reader, step);
    if (!b) return {};
    std::vector<std::shared_ptr<Segment>> out;
    for (const auto& sample : b->samples) {
      if (auto* q = queue_.find(sample.step)) {
        for (auto& seg : q->slot->segments()) {
          if (std::find(out.begin(), out.end(), seg) == out.end()) out.push_back(seg);
        }
      }
    }
    return out;
  }
  auto* s = queue_.held_by(reader, step);
  if (!s) return {};
  auto out = s->slot->segments();
  // Results of the pipelines it asked the writer to run (writer_ops).
  if (auto p = readers_.find(reader); p != readers_.end()) {
    if (auto it = p->second.served.find(step); it != p->second.served.end()) {
      for (const auto& x : it->second) out.push_back(x.segment);
    }
  }
  return out;
}

void Writer::Impl::release(std::unique_ptr<Slot> slot) {
  if (slot) free_slots_.push_back(std::move(slot));
  // A released step's cached results go with it (kept steps stay, for newcomers).
  if (cache_.counters().entries) drop_released_entries();
  cv_.notify_all();
}

void Writer::Impl::wake() {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_.get(), &one, sizeof one);
}

void Writer::Impl::send(Peer& p, const std::vector<std::byte>& frame) {
  if (p.dead) return;
  p.out.insert(p.out.end(), frame.begin(), frame.end());
  p.last_send = net::Clock::now();
  flush(p);
  // The service thread finishes on POLLOUT (a ring: when the reader rings for room).
  if (p.out_pos < p.out.size() && !p.ring) wake();
}

void Writer::Impl::flush(Peer& p) {
  if (p.ring) {
    flush_ring(p);
  } else {
    flush_socket(p);
  }
  if (p.out_pos == p.out.size()) {
    p.out.clear();
    p.out_pos = 0;
    cv_.notify_all();  // close() waits for END to leave
  }
}

void Writer::Impl::flush_socket(Peer& p) {
  while (!p.dead && p.out_pos < p.out.size()) {
    const ssize_t n = ::send(p.fd.get(), p.out.data() + p.out_pos, p.out.size() - p.out_pos,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      p.out_pos += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;
    } else {
      p.dead = true;
      p.dead_reason = "connection lost";
    }
  }
}

void Writer::Impl::flush_ring(Peer& p) {
  bool wrote = false;
  try {
    while (!p.dead && p.out_pos < p.out.size()) {
      const auto n = p.ring->write_some(std::span(p.out).subspan(p.out_pos));
      p.out_pos += n;
      wrote = wrote || n > 0;
      // Full: the reader rings when it has made room (unless room appeared meanwhile).
      if (n == 0 && p.ring->wait_for_room()) break;
    }
  } catch (const ProtocolError& e) {
    p.dead = true;
    p.dead_reason = std::string("corrupted its control ring (") + e.what() + ")";
    return;
  }
  if (wrote && p.ring->take_peer_waiting() && !net::send_doorbell(p.fd.get())) {
    p.dead = true;
    p.dead_reason = "connection lost";
  }
}

void Writer::Impl::read_ring(Peer& p) {
  if (!p.ring) return;
  try {
    if (p.ring->read(p.ring_in) == 0) return;
    while (auto f = p.ring_in.next()) {
      if (f->header.type != wire::MsgType::Ack) {
        throw ProtocolError("sent " + std::string(wire::msg_type_name(f->header.type)) +
                            " through its control ring");
      }
      handle_frame(p, *f);
    }
  } catch (const std::exception& e) {
    p.dead = true;
    p.dead_reason = std::string("sent bad data (") + e.what() + "); connection closed";
  }
}

void Writer::Impl::read_rings() {
  for (auto& [id, p] : readers_) read_ring(p);
}

void Writer::Impl::want_acks(Peer& p) {
  if (!p.ring) return;
  p.ring->want_doorbell(!p.held.empty() &&
                        (p.held.size() >= credit(p) || closing_ || user_waits_));
}

std::uint32_t Writer::Impl::credit(const Peer& p) const {
  // Under the drop policies a reader holds one step at a time: a step handed out can no
  // longer be dropped, and prefetched steps would turn drop_oldest into drop_newest for a
  // slow reader. A `latest` reader too: a prefetched step would be stale by the time it
  // is read.
  return opt_.queue_policy == QueuePolicy::Block && !p.latest ? p.prefetch : std::uint32_t{1};
}

wire::StepMeta Writer::Impl::announcement(Peer& p, const QueuedStep& s) {
  wire::StepMeta m;
  m.index = s.index;
  m.dropped = p.dropped;
  m.variables = s.variables;
  m.attributes = s.attributes;
  m.source = opt_.member;
  if (s.redelivered.count(p.id)) m.flags |= wire::kRedelivered;
  for (const auto& seg : s.slot->segments()) m.segments.push_back({seg->id(), seg->size()});
  if (!p.writer_ops.empty()) serve_writer_ops(p, s, m);
  announce_common(p, m, s);
  return m;
}

wire::StepMeta Writer::Impl::batch_announcement(Peer& p, const Batch& b) {
  wire::StepMeta m;
  m.index = b.id;
  m.dropped = p.dropped;
  m.flags = wire::kBatch | (b.redelivered ? wire::kRedelivered : 0u);
  m.source = opt_.member;
  const QueuedStep* newest = nullptr;
  for (const auto& sample : b.samples) {
    const auto* q = queue_.find(sample.step);
    if (!newest || q->index > newest->index) newest = q;
    for (const auto& seg : q->slot->segments()) {
      const wire::SegmentInfo info{seg->id(), seg->size()};
      if (std::none_of(m.segments.begin(), m.segments.end(),
                       [&](const wire::SegmentInfo& x) { return x.id == info.id; })) {
        m.segments.push_back(info);
      }
    }
  }
  m.variables = batch_variables(signatures_[p.group], b.samples, [&](std::uint64_t step) ->
                                const std::vector<wire::VariableMeta>& {
                                  return queue_.find(step)->variables;
                                });
  m.attributes["sample_id"] = sample_ids(b.samples);
  m.attributes["pass"] = static_cast<std::int64_t>(b.pass);
  batch_ops_attributes(
      signatures_[p.group], b.samples,
      [&](std::uint64_t step) -> const Attributes& { return queue_.find(step)->attributes; },
      m.attributes);
  announce_common(p, m, *newest);
  return m;
}

void Writer::Impl::announce_common(Peer& p, wire::StepMeta& m, const QueuedStep& s) {
  if (p.attrs_sent != s.stream_attributes_version) {
    m.stream_attributes = *s.stream_attributes;
    p.attrs_sent = s.stream_attributes_version;
  }
  for (const auto& [seq, id] : retired_log_) {
    if (seq > p.retired_sent) m.retired.push_back(id);
  }
  p.retired_sent = retired_seq_;
  // Forget what every reader has been told.
  std::uint64_t low = retired_seq_;
  for (const auto& [id, r] : readers_) low = std::min(low, r.retired_sent);
  while (!retired_log_.empty() && retired_log_.front().first <= low) retired_log_.pop_front();
  planes_->describe(p.id, m);  // remote keys, for RMA-plane readers
}

void Writer::Impl::pump(Peer& p) {
  if (p.dead) return;
  // Hand steps ahead of the reader's end_step (up to its credit), so that the next
  // announcement is already there when it asks.
  const std::uint32_t may_hold = credit(p);
  auto* group = groups_.group(p.group);
  Shuffler* shuffler = group ? group->shuffler.get() : nullptr;
  while (p.held.size() < may_hold) {
    if (shuffler) {
      const auto* b = shuffler->next_for(p.id);
      if (!b) break;
      p.held.push_back(b->id);
      p.last_take = ++takes_;
      send(p, wire::encode(batch_announcement(p, *b)));
      continue;
    }
    std::vector<std::uint64_t> skipped;
    std::vector<std::unique_ptr<Slot>> freed;
    auto* s = queue_.take_next(p.id, p.group, &skipped, &freed);
    p.dropped += skipped.size();
    for (auto& slot : freed) release(std::move(slot));
    if (!s) break;
    p.held.push_back(s->index);
    p.last_take = ++takes_;
    send(p, wire::encode(announcement(p, *s)));
  }
  planes_->steps_held(p.id, p.held.size());
  want_acks(p);
  // The end of the stream waits for what may still come to this member: under a policy
  // that re-delivers, a step another member holds comes here if that member dies.
  bool owes = false;
  if (shuffler) {
    owes = !shuffler->done();
  } else if (group && group->policy->redelivers() && opt_.queue_policy == QueuePolicy::Block) {
    owes = queue_.owes_any(group->members, p.group);
  } else {
    owes = queue_.owes(p.id, p.group);
  }
  if (p.held.empty() && closing_ && !p.end_sent && !owes) {
    p.end_sent = true;
    send(p, wire::encode_empty(wire::MsgType::End));
  }
}

void Writer::Impl::pump_all() {
  // Members that hold the fewest steps, and among them the one served longest ago, go
  // first: an on_demand step goes to a member that is waiting, not to one that would only
  // prefetch it while busy with another.
  std::vector<Peer*> order;
  order.reserve(readers_.size());
  for (auto& [id, p] : readers_) order.push_back(&p);
  std::sort(order.begin(), order.end(), [](const Peer* a, const Peer* b) {
    return a->held.size() != b->held.size() ? a->held.size() < b->held.size()
                                            : a->last_take < b->last_take;
  });
  for (auto* p : order) pump(*p);
}

void Writer::Impl::handle_frame(Peer& p, const net::Frame& f) {
  switch (f.header.type) {
    case wire::MsgType::Ack: {
      const auto ack = wire::decode_ack(f.payload);
      if (p.held.empty() || p.held.front() != ack.step) {
        throw ProtocolError("acknowledged step " + std::to_string(ack.step) +
                            " it was not handed");
      }
      p.held.pop_front();
      planes_->steps_held(p.id, p.held.size());
      auto* group = groups_.group(p.group);
      if (group && group->shuffler) {
        // A finished window frees its steps, and the next pass hands batches to everyone.
        for (auto index : group->shuffler->ack(p.id, ack.step)) {
          release(queue_.release_claim(p.group, index));
        }
        pump_all();
      } else {
        release_served(p, ack.step);
        release(queue_.ack(p.id, ack.step));
        // Closing: this ack may be what the other members' end of stream waits for.
        if (closing_) {
          pump_all();
        } else {
          pump(p);
        }
      }
      break;
    }
    case wire::MsgType::Bye:
      p.dead = true;
      p.dead_reason = "left";
      break;
    case wire::MsgType::Doorbell:  // a control ring's reader made room, or acknowledged
      flush(p);
      break;
    default:
      throw ProtocolError("unexpected " + std::string(wire::msg_type_name(f.header.type)) +
                          " from a reader");
  }
}

void Writer::Impl::remove_reader(ReaderId id, const std::string& reason) {
  auto it = readers_.find(id);
  if (it == readers_.end()) return;
  read_ring(it->second);  // what it acknowledged before it went is not re-delivered
  const bool quiet = reason == "left" || it->second.end_sent;
  const GroupId gid = it->second.group;
  const auto* group = groups_.group(gid);
  // Under block nothing is lost: what a member was given and did not acknowledge goes to
  // another member of its group (policy all: the others have it already).
  const bool redeliver = opt_.queue_policy == QueuePolicy::Block && group &&
                         group->policy->redelivers() && group->members.size() > 1;
  const std::string group_name = group ? group->name : "?";
  std::string what;
  if (!it->second.held.empty()) {
    what = redeliver ? "; its unacknowledged steps go to another member of group '" +
                           group_name + "'"
                     : "; its unacknowledged steps are released";
  }
  (quiet ? log::info : log::warn)("stream '" + name_ + "': " + it->second.who + " " + reason +
                                  what);
  auto& served = it->second.served;
  while (!served.empty()) release_served(it->second, served.begin()->first);
  for (auto& slot : queue_.remove_reader(id, gid, redeliver)) release(std::move(slot));
  if (auto gone = groups_.leave(id)) {
    signatures_.erase(*gone);
    for (auto& slot : queue_.remove_group(*gone)) release(std::move(slot));
  }
  planes_->reader_left(id);
  readers_.erase(it);
  pump_all();
  cv_.notify_all();
}

void Writer::Impl::reap_dead() {
  std::vector<std::pair<ReaderId, std::string>> dead;
  for (const auto& [id, p] : readers_) {
    if (p.dead) dead.emplace_back(id, p.dead_reason);
  }
  for (const auto& [id, why] : dead) remove_reader(id, why);
}

// Public API: thin forwarding.
Writer::Writer(std::string name, const WriterOptions& options)
    : impl_(std::make_unique<Impl>(std::move(name), options)) {}
Writer::Writer(std::string name, const Options& options)
    : Writer(std::move(name), parse_writer_options(options)) {}
Writer::~Writer() = default;
void Writer::begin_step() { impl_->begin_step(); }
void Writer::put(std::string_view name, DType dtype, const Dims& shape, const Dims& start,
                 const Dims& count, const void* data) {
  impl_->put(name, dtype, shape, start, count, data);
}
void Writer::put(std::string_view name, DType dtype, const Dims& shape, const void* data) {
  impl_->put(name, dtype, shape, Dims(shape.size(), 0), shape, data);
}
void Writer::put_joined(std::string_view name, DType dtype, const Dims& count, const void* data) {
  impl_->put_block(name, ArrayKind::Joined, dtype, count, data);
}
void Writer::put_local(std::string_view name, DType dtype, const Dims& count, const void* data) {
  impl_->put_block(name, ArrayKind::Local, dtype, count, data);
}
std::span<std::byte> Writer::reserve(std::string_view name, DType dtype, const Dims& shape,
                                     const Dims& start, const Dims& count) {
  return impl_->reserve(name, dtype, shape, start, count);
}
std::span<std::byte> Writer::reserve(std::string_view name, DType dtype, const Dims& shape) {
  return impl_->reserve(name, dtype, shape, Dims(shape.size(), 0), shape);
}
void Writer::set_step_attribute(std::string_view name, AttributeValue value) {
  impl_->set_step_attribute(name, std::move(value));
}
void Writer::set_attribute(std::string_view name, AttributeValue value) {
  impl_->set_attribute(name, std::move(value));
}
std::shared_ptr<std::byte> Writer::reserve_shared(std::string_view name, DType dtype,
                                                  const Dims& shape, const Dims& start,
                                                  const Dims& count) {
  return impl_->reserve_shared(name, dtype, shape, start, count);
}
void Writer::define(std::string_view name, std::string_view pipeline, Placement placement,
                    std::optional<DType> dtype, const Dims& shape) {
  impl_->define(name, pipeline, placement, dtype, shape);
}
void Writer::abort_step() { impl_->abort_step(); }
void Writer::end_step() { impl_->end_step(); }
void Writer::close() { impl_->close(); }
const std::string& Writer::name() const { return impl_->name_; }
std::string Writer::contact_path() const { return impl_->contact_path_; }
std::string Writer::address() const { return impl_->address_; }
WriterStats Writer::stats() const { return impl_->stats(); }

}  // namespace twinstream
