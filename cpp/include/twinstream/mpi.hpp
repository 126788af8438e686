#pragma once
/// Collective opens for MPI jobs (header only: include it where MPI is, link MPI yourself).
///
/// open_writer: every rank of `comm` opens its own writer of one stream (N x M): each puts
/// its own blocks, readers see one stream. open_reader: every rank of a reader job joins,
/// and all start at the same step, so no rank sees a step another misses. Both are
/// collective: if one rank fails to open, every rank throws (none is left waiting).
#include <mpi.h>

#include <cstdio>
#include <memory>
#include <random>
#include <string>

#include "twinstream/errors.hpp"
#include "twinstream/reader.hpp"
#include "twinstream/writer.hpp"

namespace twinstream::mpi {
namespace detail {
// Runs `open` on every rank; throws on every rank if it failed on any.
template <typename T, typename Open>
std::unique_ptr<T> open_all(const std::string& name, MPI_Comm comm, Open&& open) {
  std::unique_ptr<T> out;
  std::string error;
  try {
    out = open();
  } catch (const std::exception& e) {
    error = e.what();
  }
  int ok = error.empty() ? 1 : 0, all = 0;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm);
  if (!ok) throw Error(error);
  if (!all) {
    throw Error("stream '" + name + "': another rank of this job failed to open it (its "
                "error says why)");
  }
  return out;
}
}  // namespace detail

/// This rank's writer in a writer job over `comm` (options rank, ranks and job are set).
inline std::unique_ptr<Writer> open_writer(const std::string& name, MPI_Comm comm,
                                           Options options = {}) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  // An identifier for this job's contact files, so readers can tell a stale rank file.
  char job[17] = {};
  if (rank == 0) {
    std::random_device rd;
    std::snprintf(job, sizeof job, "%08x%08x", rd(), rd());
  }
  MPI_Bcast(job, sizeof job, MPI_CHAR, 0, comm);
  options["rank"] = std::to_string(rank);
  options["ranks"] = std::to_string(size);
  options["job"] = job;
  return detail::open_all<Writer>(name, comm,
                                  [&] { return std::make_unique<Writer>(name, options); });
}

/// This rank's reader in a reader job over `comm`: every rank starts at the same step.
inline std::unique_ptr<Reader> open_reader(const std::string& name, MPI_Comm comm,
                                           const Options& options = {}) {
  auto r = detail::open_all<Reader>(name, comm,
                                    [&] { return std::make_unique<Reader>(name, options); });
  unsigned long long mine = r->first_step(), start = 0;
  MPI_Allreduce(&mine, &start, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, comm);
  r->start_at(start);
  return r;
}

}  // namespace twinstream::mpi
