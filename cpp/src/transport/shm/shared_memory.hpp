#pragma once
// POSIX shared-memory objects: the writer creates one per segment (mode 0600, a name with
// a random part), same-host readers map them read-only by name.
#include <cstddef>
#include <string>

namespace twinstream::shm {

/// A mapping of a POSIX shared-memory object; unmaps on destruction, and unlinks the name
/// too when it was created here.
class SharedMemory {
 public:
  /// Creates `name` (must not exist) of `size` bytes, mapped read-write, pages populated.
  static SharedMemory create(const std::string& name, std::size_t size);
  /// Maps an existing object read-only; throws Unavailable if it is missing or smaller
  /// than `size` (another host, another container, or a stale name).
  static SharedMemory open_readonly(const std::string& name, std::size_t size);
  /// Maps an existing object of exactly `size` bytes read-write (the control ring a
  /// reader created). Throws Error if it is missing or of another size.
  static SharedMemory open_readwrite(const std::string& name, std::size_t size);

  SharedMemory() = default;
  SharedMemory(SharedMemory&& o) noexcept;
  SharedMemory& operator=(SharedMemory&& o) noexcept;
  ~SharedMemory();

  std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& name() const { return name_; }

 private:
  void release();
  // Maps an open object; closes `fd`.
  static SharedMemory map(int fd, const std::string& name, std::size_t size, bool writable);
  std::string name_;
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  bool owner_ = false;
};

/// Name of segment `id` of a writer whose names start with `prefix`.
std::string segment_name(const std::string& prefix, std::uint32_t id);
/// Removes every object of a dead writer (found through its stale contact file).
void unlink_all_with_prefix(const std::string& prefix);

}  // namespace twinstream::shm
