// The ranks of an MPI simulation publish one stream, each its own blocks (N x M): rank r
// owns rows of a 3-D field (uneven: rank 0 has 5, the others 6; the last row of the last
// rank is never put), 2r atoms (a joined array: rank 0 has none) and r+1 patches (local
// blocks). The layout is the one tests/python/procs/nxm_job.py writes and checks.
//
//   mpiexec -n P cpp_mpi_writer <dir> <steps> [readers]
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <twinstream/mpi.hpp>
#include <twinstream/twinstream.hpp>

namespace {
constexpr std::uint64_t kRowsPerRank = 5, kNy = 7, kNz = 4;

std::uint64_t first_row(int rank) { return rank == 0 ? 0 : kRowsPerRank + (rank - 1) * 6; }
}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  if (argc < 3) {
    if (rank == 0) std::fprintf(stderr, "usage: %s <dir> <steps> [readers]\n", argv[0]);
    MPI_Finalize();
    return 2;
  }
  const int steps = std::atoi(argv[2]);
  int rc = 0;
  try {
    const twinstream::Dims shape{kRowsPerRank * ranks + ranks - 1 + 1, kNy, kNz};
    auto writer = twinstream::mpi::open_writer(
        "nxm", MPI_COMM_WORLD,
        {{"dir", argv[1]}, {"queue_limit", "2"}, {"min_readers", argc > 3 ? argv[3] : "1"}});
    const std::uint64_t lo = first_row(rank);
    std::uint64_t hi = lo + (rank == 0 ? kRowsPerRank : 6);
    if (rank == ranks - 1) hi -= 1;  // a gap: readers see zeros there
    std::vector<double> field;
    for (int i = 0; i < steps; ++i) {
      writer->begin_step();
      // This rank's rows, cut along axis 1 into 1-3 blocks; value = linear index + 1000 i.
      const int nblocks = 1 + rank % 3;
      for (int b = 0; b < nblocks; ++b) {
        const std::uint64_t a = kNy * b / nblocks, e = kNy * (b + 1) / nblocks;
        field.clear();
        for (std::uint64_t x = lo; x < hi; ++x)
          for (std::uint64_t y = a; y < e; ++y)
            for (std::uint64_t z = 0; z < kNz; ++z)
              field.push_back(double((x * kNy + y) * kNz + z) + 1000.0 * i);
        writer->put("field", twinstream::DType::Float64, shape, {lo, a, 0}, {hi - lo, e - a, kNz},
                    field.data());
      }
      std::vector<float> atoms(2 * rank * 3, float(rank + i));
      writer->put_joined("atoms", twinstream::DType::Float32, {std::uint64_t(2 * rank), 3},
                         atoms.data());
      for (int k = 0; k <= rank; ++k) {
        std::vector<std::int32_t> patch((k + 1) * 2, 100 * rank + k + i);
        writer->put_local("patch", twinstream::DType::Int32, {std::uint64_t(k + 1), 2},
                          patch.data());
      }
      if (rank == 0) writer->set_step_attribute("step", std::int64_t{i});
      writer->end_step();
      MPI_Barrier(MPI_COMM_WORLD);  // the simulation's ranks advance together
    }
    writer->close();
    std::printf("WRITER %d done\n", rank);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    rc = 1;
  }
  MPI_Finalize();
  return rc;
}
