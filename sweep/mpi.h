// Sweeps across the ranks of an MPI job (`mpirun -n N orrery sweep ...`): rank r is shard
// r of N, and rank 0 gathers every rank's shard and merges it (sweep/sweep.h), so the
// output is the single-process output byte for byte. Built only where MPI is found
// (ORRERY_WITH_MPI); the rest of orrery never includes mpi.h.
#pragma once

#include <string>
#include <vector>

namespace orrery {

// True when this process was started by an MPI launcher (mpirun/mpiexec set the job's
// size in the environment), so a plain `orrery sweep` never starts MPI.
bool launched_by_mpi();

// MPI_Init in the constructor, MPI_Finalize in the destructor.
class MpiJob {
 public:
  MpiJob(int* argc, char*** argv);
  ~MpiJob();
  MpiJob(const MpiJob&) = delete;
  MpiJob& operator=(const MpiJob&) = delete;
  int rank() const { return rank_; }
  int size() const { return size_; }
  // Every rank's text, in rank order, on rank 0; empty on the others. Collective.
  std::vector<std::string> gather(const std::string& mine) const;
  // The largest of every rank's value, on every rank. Collective.
  int max_all(int mine) const;

 private:
  int rank_ = 0, size_ = 1;
};

}  // namespace orrery
