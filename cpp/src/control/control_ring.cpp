#include "control/control_ring.hpp"

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <random>

#include "core/messages.hpp"
#include "twinstream/errors.hpp"

namespace twinstream::net {

// One direction. Each position has its own cache line: the producer writes head, the
// consumer tail, and neither should stall the other's line on every step.
struct ControlRing::Channel {
  alignas(64) std::atomic<std::uint64_t> head;     // bytes written so far (producer)
  std::atomic<std::uint32_t> producer_waiting;     // producer waits for room: ring it
  alignas(64) std::atomic<std::uint64_t> tail;     // bytes read so far (consumer)
  std::atomic<std::uint32_t> consumer_waiting;     // consumer sleeps: ring it
};

struct ControlRing::Layout {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t capacity;
  Channel down;  // writer -> reader
  Channel up;    // reader -> writer
};

namespace {
// Lock-free atomics are address-free: they work across processes mapping the same page.
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
constexpr std::uint64_t kMagic = 0x676e69724c544354ull;  // "TCTLring"
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kDataOffset = 4096;
constexpr std::size_t kSize = kDataOffset + 2 * ControlRing::kCapacity;
static_assert(sizeof(std::max_align_t) <= kDataOffset);

// Rings created by this process, by name: a writer in the same process maps none again.
std::mutex registry_mu;
std::map<std::string, std::weak_ptr<shm::SharedMemory>>& registry() {
  static std::map<std::string, std::weak_ptr<shm::SharedMemory>> rings;
  return rings;
}

[[noreturn]] void impossible(const char* what) {
  throw ProtocolError(std::string("control ring: the other side wrote an impossible ") + what);
}
}  // namespace

ControlRing::ControlRing(std::shared_ptr<shm::SharedMemory> memory, Side side)
    : memory_(std::move(memory)), side_(side) {}

ControlRing ControlRing::create() {
  std::random_device rd;
  char name[64];
  std::snprintf(name, sizeof name, "/ts-ctl-%d-%08x%08x", static_cast<int>(::getpid()), rd(), rd());
  auto memory = std::make_shared<shm::SharedMemory>(shm::SharedMemory::create(name, kSize));
  auto* layout = new (memory->data()) Layout{};
  layout->magic = kMagic;
  layout->version = kVersion;
  layout->capacity = static_cast<std::uint32_t>(kCapacity);
  std::lock_guard lock(registry_mu);
  auto& rings = registry();
  std::erase_if(rings, [](const auto& r) { return r.second.expired(); });
  rings[name] = memory;
  return ControlRing(std::move(memory), Side::Reader);
}

ControlRing ControlRing::attach(const std::string& name) {
  // A name the reader chose: only ours, so that it cannot point us at anything else.
  if (name.rfind("/ts-ctl-", 0) != 0 || name.size() > 64 ||
      name.find('/', 1) != std::string::npos) {
    throw Error("not a control ring name: '" + name + "'");
  }
  std::shared_ptr<shm::SharedMemory> memory;
  {
    std::lock_guard lock(registry_mu);
    if (auto it = registry().find(name); it != registry().end()) memory = it->second.lock();
  }
  if (!memory) {
    memory = std::make_shared<shm::SharedMemory>(shm::SharedMemory::open_readwrite(name, kSize));
  }
  ::shm_unlink(name.c_str());  // mapped by both now: nothing to leave behind
  const auto* layout = reinterpret_cast<const Layout*>(memory->data());
  if (layout->magic != kMagic || layout->version != kVersion || layout->capacity != kCapacity) {
    throw Error("control ring " + name + " has another layout");
  }
  return ControlRing(std::move(memory), Side::Writer);
}

void ControlRing::unlink() {
  if (memory_ && memory_->data()) ::shm_unlink(memory_->name().c_str());
}

ControlRing::Channel& ControlRing::out() const {
  auto* l = reinterpret_cast<Layout*>(memory_->data());
  return side_ == Side::Writer ? l->down : l->up;
}
ControlRing::Channel& ControlRing::in() const {
  auto* l = reinterpret_cast<Layout*>(memory_->data());
  return side_ == Side::Writer ? l->up : l->down;
}
std::byte* ControlRing::out_data() const {
  return memory_->data() + kDataOffset + (side_ == Side::Writer ? 0 : kCapacity);
}
std::byte* ControlRing::in_data() const {
  return memory_->data() + kDataOffset + (side_ == Side::Writer ? kCapacity : 0);
}

bool send_doorbell(int fd) {
  static const auto frame = wire::encode_empty(wire::MsgType::Doorbell);
  const ssize_t n = ::send(fd, frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  return n >= 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

std::size_t ControlRing::room(std::memory_order order) const {
  const std::uint64_t tail = out().tail.load(order);
  if (tail > out_pos_ || out_pos_ - tail > kCapacity) impossible("read position");
  return kCapacity - (out_pos_ - tail);
}

std::size_t ControlRing::write_some(std::span<const std::byte> bytes) {
  const std::size_t n = std::min(bytes.size(), room(std::memory_order_acquire));
  if (n == 0) return 0;
  const std::size_t at = out_pos_ % kCapacity;
  const std::size_t first = std::min(n, kCapacity - at);
  std::memcpy(out_data() + at, bytes.data(), first);
  std::memcpy(out_data(), bytes.data() + first, n - first);
  out_pos_ += n;
  out().head.store(out_pos_, std::memory_order_seq_cst);
  return n;
}

bool ControlRing::write_all(std::span<const std::byte> bytes) {
  return room(std::memory_order_acquire) >= bytes.size() && write_some(bytes) == bytes.size();
}

bool ControlRing::take_peer_waiting() {
  // Cheap test first: the exchange dirties the peer's cache line.
  return out().consumer_waiting.load(std::memory_order_seq_cst) != 0 &&
         out().consumer_waiting.exchange(0, std::memory_order_seq_cst) != 0;
}

bool ControlRing::peer_waiting() const {
  return out().consumer_waiting.load(std::memory_order_seq_cst) != 0;
}

bool ControlRing::wait_for_room() {
  out().producer_waiting.store(1, std::memory_order_seq_cst);
  if (room(std::memory_order_seq_cst) > 0) {
    out().producer_waiting.store(0, std::memory_order_relaxed);
    return false;
  }
  return true;
}

std::size_t ControlRing::read(FrameAssembler& in_frames) {
  const std::uint64_t head = in().head.load(std::memory_order_acquire);
  if (head < in_pos_ || head - in_pos_ > kCapacity) impossible("write position");
  const std::size_t n = head - in_pos_;
  if (n == 0) return 0;
  const std::size_t at = in_pos_ % kCapacity;
  const std::size_t first = std::min(n, kCapacity - at);
  auto dst = in_frames.space(n);
  std::memcpy(dst.data(), in_data() + at, first);
  std::memcpy(dst.data() + first, in_data(), n - first);
  in_frames.commit(n);
  in_pos_ = head;
  in().tail.store(in_pos_, std::memory_order_seq_cst);
  if (in().consumer_waiting.load(std::memory_order_relaxed)) {
    in().consumer_waiting.store(0, std::memory_order_relaxed);  // awake: no need to be rung
  }
  return n;
}

bool ControlRing::readable() const {
  return in().head.load(std::memory_order_seq_cst) != in_pos_;  // after a doorbell request
}

bool ControlRing::wait_for_data() {
  in().consumer_waiting.store(1, std::memory_order_seq_cst);
  if (in().head.load(std::memory_order_seq_cst) != in_pos_) {
    in().consumer_waiting.store(0, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void ControlRing::want_doorbell(bool on) {
  if ((in().consumer_waiting.load(std::memory_order_relaxed) != 0) != on) {
    in().consumer_waiting.store(on ? 1 : 0, std::memory_order_seq_cst);
  }
}

bool ControlRing::take_peer_wants_room() {
  return in().producer_waiting.load(std::memory_order_seq_cst) != 0 &&
         in().producer_waiting.exchange(0, std::memory_order_seq_cst) != 0;
}

}  // namespace twinstream::net
