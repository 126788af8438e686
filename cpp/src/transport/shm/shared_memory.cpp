#include "transport/shm/shared_memory.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <utility>

#include "control/socket.hpp"
#include "twinstream/errors.hpp"

namespace twinstream::shm {

SharedMemory SharedMemory::create(const std::string& name, std::size_t size) {
  const int fd = ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw Error("cannot create shared memory " + name + ": " + net::errno_text(errno) +
                "; check that /dev/shm is mounted and has room, or open the writer with "
                "shm=False");
  }
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    const int err = errno;
    ::close(fd);
    ::shm_unlink(name.c_str());
    throw Error("cannot size shared memory " + name + " to " + std::to_string(size) +
                " bytes: " + net::errno_text(err) + "; /dev/shm may be too small");
  }
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  const int err = errno;
  ::close(fd);
  if (p == MAP_FAILED) {
    ::shm_unlink(name.c_str());
    throw Error("cannot map shared memory " + name + ": " + net::errno_text(err));
  }
  SharedMemory m;
  m.name_ = name;
  m.data_ = static_cast<std::byte*>(p);
  m.size_ = size;
  m.owner_ = true;
  return m;
}

SharedMemory SharedMemory::open_readonly(const std::string& name, std::size_t size) {
  const int fd = ::shm_open(name.c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) {
    throw Unavailable("cannot open the writer's shared memory " + name + ": " +
                      net::errno_text(errno) +
                      " (reader on another host or container?); use data_plane='tcp'");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || static_cast<std::size_t>(st.st_size) < size) {
    ::close(fd);
    throw Unavailable("shared memory " + name + " is smaller than the writer announced");
  }
  // Populate: the reader touches the whole step anyway, and one fault per page costs more.
  return map(fd, name, size, false);
}

SharedMemory SharedMemory::open_readwrite(const std::string& name, std::size_t size) {
  const int fd = ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) throw Error("cannot open shared memory " + name + ": " + net::errno_text(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || static_cast<std::size_t>(st.st_size) != size) {
    ::close(fd);
    throw Error("shared memory " + name + " is not " + std::to_string(size) + " bytes");
  }
  return map(fd, name, size, true);
}

SharedMemory SharedMemory::map(int fd, const std::string& name, std::size_t size, bool writable) {
  void* p = ::mmap(nullptr, size, writable ? PROT_READ | PROT_WRITE : PROT_READ,
                   MAP_SHARED | MAP_POPULATE, fd, 0);
  const int err = errno;
  ::close(fd);
  if (p == MAP_FAILED) throw Unavailable("cannot map " + name + ": " + net::errno_text(err));
  SharedMemory m;
  m.name_ = name;
  m.data_ = static_cast<std::byte*>(p);
  m.size_ = size;
  return m;
}

SharedMemory::SharedMemory(SharedMemory&& o) noexcept
    : name_(std::move(o.name_)),
      data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      owner_(std::exchange(o.owner_, false)) {}

SharedMemory& SharedMemory::operator=(SharedMemory&& o) noexcept {
  if (this != &o) {
    release();
    name_ = std::move(o.name_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    owner_ = std::exchange(o.owner_, false);
  }
  return *this;
}

SharedMemory::~SharedMemory() { release(); }

void SharedMemory::release() {
  if (data_) ::munmap(data_, size_);
  if (owner_) ::shm_unlink(name_.c_str());
  data_ = nullptr;
  owner_ = false;
}

std::string segment_name(const std::string& prefix, std::uint32_t id) {
  return "/" + prefix + "-" + std::to_string(id);
}

void unlink_all_with_prefix(const std::string& prefix) {
  if (prefix.empty()) return;
  DIR* dir = ::opendir("/dev/shm");
  if (!dir) return;
  const std::string start = prefix + "-";
  while (dirent* e = ::readdir(dir)) {
    const std::string n = e->d_name;
    if (n.rfind(start, 0) == 0) ::shm_unlink(("/" + n).c_str());
  }
  ::closedir(dir);
}

}  // namespace twinstream::shm
