#pragma once
// MPI for the mpi data plane: initialized once per process with MPI_THREAD_MULTIPLE (the
// writer's service and progress threads call MPI beside the simulation's own calls), by
// twinstream when the application has not done it (then finalized at exit).
#include <mpi.h>

#include <string>

namespace twinstream::mpi {

/// Initializes MPI if needed. Throws Unavailable when MPI runs at a thread level below
/// MPI_THREAD_MULTIPLE or cannot start.
void ensure_initialized(const std::string& stream);
/// Whether this process was started by an MPI launcher (mpiexec sets PMI_SIZE).
bool launched_by_mpiexec();
/// "size/host/parent-pid" of this process's MPI_COMM_WORLD: equal for the processes of one
/// MPMD launch on one host (same world size, same launcher proxy as parent).
std::string world_identity();
int world_rank();
/// Records that a pairing's window stays open (its peer died or did not answer the
/// teardown). MPICH over libfabric's shm provider cannot finalize then; a process alone in
/// its MPI_COMM_WORLD that twinstream initialized skips MPI_Finalize at exit instead (in an
/// MPMD launch the launcher would take that as a failure of the whole job).
void note_window_left_open();
/// MPI's text for an error code.
std::string error_text(int code);

}  // namespace twinstream::mpi
