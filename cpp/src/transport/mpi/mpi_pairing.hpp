#pragma once
// What the two sides of one mpi pairing (writer rank 0 and reader rank 1 of their pair
// communicator) say to each other on that communicator, and the text of a pairing grant.
//
// Teardown: MPI_Win_free is collective, so a window is freed only when both sides agree,
// and neither may be left inside MPI_Win_free waiting for a peer that is not coming:
//   reader: Bye  ->  writer: ByeAck  ->  reader: Commit, then both call MPI_Win_free.
// The reader sends Commit only if the ByeAck came within its deadline, and the writer calls
// MPI_Win_free only after Commit: a side that gives up waiting leaves the window as it is
// (a dead reader never says Bye). Once the writer has answered, it waits for the Commit
// far longer than the reader waits for the answer, and its progress agent does not stop
// before (a Commit the writer gave up on would leave the reader in MPI_Win_free for
// ever). Freed windows matter: MPICH cannot finalize with a window still open over
// libfabric's shm provider ("fabricclose ... Device or resource busy").
#include <string>

namespace twinstream::mpi {

constexpr int kIdTag = 0x7157;      // reader -> writer: the reader's id, once the pair exists
constexpr int kByeTag = 0x7158;     // reader -> writer: I am closing; free our window
constexpr int kByeAckTag = 0x7159;  // writer -> reader: agreed
constexpr int kCommitTag = 0x715A;  // reader -> writer: freeing it now

/// How long a reader waits for the writer's ByeAck, and the writer for the Bye of a reader
/// that left, before leaving the window open, in seconds.
constexpr double kTeardownWait = 2.0;
/// How long the writer waits for the Commit after its ByeAck, in seconds.
constexpr double kCommitWait = 5 * kTeardownWait;

/// Value of `key` in "key=value;key=value" (empty when absent).
std::string field(const std::string& text, const std::string& key);

}  // namespace twinstream::mpi
