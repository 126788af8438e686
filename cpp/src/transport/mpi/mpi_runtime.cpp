#include "transport/mpi/mpi_runtime.hpp"

#include "transport/mpi/mpi_pairing.hpp"

#include <dirent.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

#include "twinstream/errors.hpp"

namespace twinstream::mpi {

namespace {
std::atomic<bool> window_left_open{false};

// libfabric's shm provider (MPICH's ofi module on one host) names each process's region
// in /dev/shm after its pid: "<pid>:<n>:<n>[:<n>]". A process that ends without
// MPI_Finalize (killed, or see note_window_left_open) leaves its region behind. Seen once
// here: both programs of an MPMD launch spun in MPI_Init_thread for ten minutes, the
// writer opening the reader's "<pid>:0:0:1" while a stale "<pid>:0:0" of a killed process
// with the reader's (recycled) pid was there. So this process removes the regions named
// after its own pid: before it initializes MPI (they are stale then) and when it leaves
// without finalizing. Regions of other pids are left alone: in another pid namespace
// sharing /dev/shm, a process that looks dead from here may be alive.
void remove_own_fabric_regions() {
  DIR* dir = ::opendir("/dev/shm");
  if (!dir) return;
  const std::string prefix = std::to_string(::getpid()) + ":";
  while (dirent* e = ::readdir(dir)) {
    const std::string n = e->d_name;
    if (n.rfind(prefix, 0) == 0 &&
        n.find_first_not_of("0123456789:", prefix.size()) == std::string::npos) {
      ::shm_unlink(("/" + n).c_str());
    }
  }
  ::closedir(dir);
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (window_left_open && size == 1) {  // see note_window_left_open
    remove_own_fabric_regions();
    return;
  }
  MPI_Finalize();
}
}  // namespace

void note_window_left_open() { window_left_open = true; }

void ensure_initialized(const std::string& stream) {
  static std::mutex mu;
  std::lock_guard lock(mu);
  int initialized = 0;
  MPI_Initialized(&initialized);
  int provided = 0;
  if (!initialized) {
    // MPI_Open_port / MPI_Comm_connect need MPICH's ofi network module (see the README).
    ::setenv("MPIR_CVAR_CH4_NETMOD", "ofi", 0);
    remove_own_fabric_regions();
    int argc = 0;
    char** argv = nullptr;
    const int rc = MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    if (rc != MPI_SUCCESS) {
      throw Unavailable("stream '" + stream + "': MPI_Init_thread failed: " + error_text(rc) +
                        "; use data_plane='tcp'");
    }
    std::atexit(finalize_at_exit);
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < MPI_THREAD_MULTIPLE) {
    throw Unavailable("stream '" + stream + "': the mpi data plane needs MPI_THREAD_MULTIPLE, "
                      "MPI runs at thread level " + std::to_string(provided) +
                      "; initialize MPI with MPI_Init_thread(MPI_THREAD_MULTIPLE) (mpi4py "
                      "does by default) or use data_plane='tcp'");
  }
  // Errors come back as codes, so that a lost peer is an exception, not an abort.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
}

bool launched_by_mpiexec() {
  const char* size = std::getenv("PMI_SIZE");
  return size && std::atoi(size) > 1;
}

std::string world_identity() {
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int* appnum = nullptr;
  int flag = 0;
  MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_APPNUM, &appnum, &flag);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  (void)appnum;  // differs between the programs of one launch; not part of the identity
  return std::to_string(size) + "/" + host + "/" + std::to_string(::getppid());
}

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

std::string error_text(int code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, static_cast<std::size_t>(len));
}

std::string field(const std::string& text, const std::string& key) {
  const std::string k = key + "=";
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto end = text.find(';', pos);
    if (end == std::string::npos) end = text.size();
    if (text.compare(pos, k.size(), k) == 0) return text.substr(pos + k.size(), end - pos - k.size());
    pos = end + 1;
  }
  return "";
}

}  // namespace twinstream::mpi
