// A reader's view of a writer job: step matching across ranks, merged variables, reads
// planned over the ranks whose blocks overlap.
#include "core/writer_job.hpp"

#include <algorithm>
#include <cstring>
#include <map>

#include "core/box_copy.hpp"
#include "core/log.hpp"
#include "twinstream/errors.hpp"

namespace twinstream {

WriterJob::WriterJob(std::string stream, std::string member, std::string path,
                     const ReaderOptions& opt, transport::PlaneChoice choice,
                     std::shared_ptr<BufferPool> buffers, net::Deadline deadline, bool wait)
    : name_(std::move(stream)), opt_(opt), buffers_(std::move(buffers)) {
  ranks_.push_back(std::make_unique<ReaderSource>(name_, member, 0, path, opt_, choice, buffers_,
                                                  deadline, wait));
  const Contact first = ranks_.front()->contact();
  if (first.ranks <= 1) return;
  // Each rank chooses group members on its own: only policies where every reader gets
  // every step stay consistent across the ranks.
  if (opt_.policy != "all") {
    throw InvalidArgument(who() + " is written by a job of " + std::to_string(first.ranks) +
                          " ranks; policy '" + opt_.policy + "' needs a single-rank writer "
                          "(each rank would choose the member on its own); use policy='all', "
                          "or give each reader its own ranks' boxes");
  }
  for (std::uint32_t r = 1; r < first.ranks; ++r) {
    // The job's ranks open together, so each file is there or about to be.
    auto src = std::make_unique<ReaderSource>(name_, member, r, rank_contact_path(path, r), opt_,
                                              choice, buffers_, deadline, true);
    const auto& c = src->contact();
    if (c.ranks != first.ranks || c.job != first.job || c.rank != r) {
      throw ConnectionError(who() + ": the contact file of rank " + std::to_string(r) +
                            " belongs to another writer job (job '" + c.job + "' of " +
                            std::to_string(c.ranks) + " ranks, this one is '" + first.job +
                            "' of " + std::to_string(first.ranks) + "); a stale file from an "
                            "earlier run? restart the writer job");
    }
    ranks_.push_back(std::move(src));
  }
}

std::string WriterJob::who() const {
  const auto& m = ranks_.front()->member();
  return "stream '" + name_ + "'" + (m.empty() ? "" : " member '" + m + "'");
}

std::uint64_t WriterJob::first_step() const {
  std::uint64_t first = 0;
  for (const auto& r : ranks_) first = std::max(first, r->first_step());
  return first;
}

StepStatus WriterJob::begin_step(net::Deadline deadline) {
  if (in_step_) throw InvalidArgument(who() + ": begin_step called twice; call end_step first");
  while (true) {
    bool ended = false;
    for (auto& r : ranks_) {
      if (r->in_step()) continue;
      const auto st = r->begin_step(deadline);
      if (st == StepStatus::NotReady) return StepStatus::NotReady;  // the others keep theirs
      if (st == StepStatus::EndOfStream) ended = true;
    }
    if (ended) {
      // A rank has ended: the job's stream ends once each has. Steps the others still
      // offer cannot be completed (the ended rank's blocks will never come).
      bool all = true;
      for (auto& r : ranks_) {
        if (r->in_step()) {
          log::warn(who() + ": writer rank " + std::to_string(r->rank()) + " offered step " +
                    std::to_string(r->step().index) + " after another rank had ended the "
                    "stream; it is skipped (did every rank call end_step as often?)");
          r->end_step();
        }
        all = all && r->ended();
      }
      if (all) return StepStatus::EndOfStream;
      if (net::Clock::now() >= deadline) return StepStatus::NotReady;
      continue;
    }
    std::uint64_t target = 0;
    for (const auto& r : ranks_) target = std::max(target, r->step().index);
    bool behind = false, dropped = false;
    const auto first = first_step();
    for (auto& r : ranks_) {
      if (r->step().index < target) {
        // Dropped at another rank (nobody can read it whole), or older than what some
        // rank offers a reader that joined mid-stream (not a drop: never on offer).
        behind = true;
        dropped = dropped || r->step().index >= first;
        r->end_step();
      }
    }
    if (dropped) ++skipped_;
    if (behind) continue;
    merge();
    ++steps_;
    in_step_ = true;
    return StepStatus::Ok;
  }
}

void WriterJob::merge() {
  const auto& lead = *ranks_.front();
  flags_ = 0;
  for (const auto& r : ranks_) flags_ |= r->step().flags;
  // Rank 0's attributes; keys only other ranks set are added (rank 0 wins a clash).
  step_attrs_ = lead.step_attributes();
  stream_attrs_ = lead.stream_attributes();
  for (std::size_t i = 1; i < ranks_.size(); ++i) {
    for (const auto& [k, v] : ranks_[i]->step_attributes()) step_attrs_.try_emplace(k, v);
    for (const auto& [k, v] : ranks_[i]->stream_attributes()) stream_attrs_.try_emplace(k, v);
  }
  vars_.clear();
  merged_.clear();
  std::map<std::string, std::size_t, std::less<>> at;
  for (std::uint32_t r = 0; r < ranks_.size(); ++r) {
    for (const auto& v : ranks_[r]->step().variables) {
      auto [it, fresh] = at.try_emplace(v.name, vars_.size());
      if (fresh) {
        VariableInfo info{v.name, v.dtype, v.shape, {}, v.kind};
        if (v.kind == ArrayKind::Joined) info.shape[0] = 0;
        vars_.push_back(std::move(info));
        merged_.emplace_back();
      }
      auto& info = vars_[it->second];
      auto& m = merged_[it->second];
      if (!m.conflict.empty()) continue;
      // Every rank must put a variable the same way; say which rank differs and how.
      std::string differs;
      if (v.kind != info.kind) {
        differs = "a " + std::string(kind_name(v.kind)) + " array, rank " +
                  std::to_string(m.blocks.empty() ? 0 : m.blocks.front().rank) + " a " +
                  std::string(kind_name(info.kind)) + " one";
      } else if (v.dtype != info.dtype) {
        differs = std::string(dtype_name(v.dtype)) + " where other ranks put " +
                  std::string(dtype_name(info.dtype));
      } else if (v.kind == ArrayKind::Global && v.shape != info.shape) {
        differs = "global shape " + dims_to_string(v.shape) + " where other ranks put " +
                  dims_to_string(info.shape);
      } else if (v.shape.size() != info.shape.size() ||
                 (v.kind == ArrayKind::Joined &&
                  !std::equal(v.shape.begin() + 1, v.shape.end(), info.shape.begin() + 1))) {
        differs = "blocks of shape " + dims_to_string(v.shape) + " that do not fit those of " +
                  "the other ranks " + dims_to_string(info.shape);
      }
      if (!differs.empty()) {
        m.conflict = who() + " variable '" + v.name + "': writer rank " + std::to_string(r) +
                     " put " + differs + "; every rank must put a variable with the same " +
                     "dtype, kind and shape (joined: the same row shape)";
        continue;
      }
      // Joined blocks continue where the lower ranks' end.
      const std::uint64_t shift = v.kind == ArrayKind::Joined ? info.shape[0] : 0;
      for (const auto& b : v.blocks) {
        Placed p{r, &b, Box{b.start, b.count}};
        if (shift) p.box.start[0] += shift;
        info.blocks.push_back({p.box.start, p.box.count, r});
        m.blocks.push_back(std::move(p));
      }
      if (v.kind == ArrayKind::Joined) info.shape[0] += v.shape[0];
      if (v.kind == ArrayKind::Local) {
        for (std::size_t d = 0; d < v.shape.size(); ++d) {
          info.shape[d] = std::max(info.shape[d], v.shape[d]);
        }
      }
    }
  }
}

std::size_t WriterJob::find(std::string_view name) const {
  if (!in_step_) {
    throw InvalidArgument(who() + ": get('" + std::string(name) +
                          "') outside a step; call begin_step first");
  }
  for (std::size_t i = 0; i < vars_.size(); ++i) {
    if (vars_[i].name == name) {
      if (!merged_[i].conflict.empty()) throw InvalidArgument(merged_[i].conflict);
      return i;
    }
  }
  std::string names;
  for (const auto& v : vars_) names += (names.empty() ? "" : ", ") + v.name;
  throw InvalidArgument(who() + " step " + std::to_string(index()) + " has no variable '" +
                        std::string(name) + "'; it has: " + (names.empty() ? "none" : names));
}

Box WriterJob::checked_box(const VariableInfo& v, const Box* sel) const {
  if (v.kind == ArrayKind::Local) {
    throw InvalidArgument(who() + " variable '" + v.name + "' is a local array of " +
                          std::to_string(v.blocks.size()) + " independent blocks; read one "
                          "with get_block(name, i) (step.blocks(name) lists them)");
  }
  if (!sel) return Box{Dims(v.shape.size(), 0), v.shape};
  if (sel->start.size() != v.shape.size() || sel->count.size() != v.shape.size()) {
    throw InvalidArgument(who() + " variable '" + v.name + "': selection rank " +
                          std::to_string(sel->start.size()) + " does not match shape " +
                          dims_to_string(v.shape));
  }
  for (std::size_t d = 0; d < v.shape.size(); ++d) {
    if (sel->start[d] > v.shape[d] || sel->count[d] > v.shape[d] - sel->start[d]) {
      throw InvalidArgument(who() + " variable '" + v.name + "': selection start " +
                            dims_to_string(sel->start) + " count " + dims_to_string(sel->count) +
                            " lies outside shape " + dims_to_string(v.shape));
    }
  }
  return *sel;
}

ConstView WriterJob::get(std::string_view name, const Box* sel) {
  const auto i = find(name);
  const auto& v = vars_[i];
  const Box box = checked_box(v, sel);
  const std::size_t elem = dtype_size(v.dtype);
  const std::uint64_t nbytes = element_count(box.count) * elem;
  ConstView out;
  out.dtype = v.dtype;
  out.shape = box.count;
  out.size = nbytes;
  // Zero copy when one block is exactly the selection and its rank's plane can map it.
  const auto& blocks = merged_[i].blocks;
  if (blocks.size() == 1 && blocks[0].box == box) {
    const auto& b = *blocks[0].meta;
    if (auto p = ranks_[blocks[0].rank]->view(b.segment, b.offset, b.nbytes)) {
      out.data = p.get();
      out.owner = std::move(p);
      bytes_ += nbytes;
      return out;
    }
  }
  auto buf = buffers_->acquire(nbytes);
  get_into(name, box, buf.get(), nbytes);
  out.data = buf.get();
  out.owner = std::move(buf);
  return out;
}

void WriterJob::get_into(std::string_view name, const Box& sel, void* dst,
                         std::size_t dst_bytes) {
  const auto i = find(name);
  const auto& v = vars_[i];
  const Box box = checked_box(v, &sel);
  const std::size_t elem = dtype_size(v.dtype);
  const std::uint64_t nbytes = element_count(box.count) * elem;
  if (dst_bytes != nbytes) {
    throw InvalidArgument(who() + " variable '" + v.name + "': destination has " +
                          std::to_string(dst_bytes) + " bytes, the selection " +
                          dims_to_string(box.count) + " of " + std::string(dtype_name(v.dtype)) +
                          " needs " + std::to_string(nbytes));
  }
  auto* out = static_cast<std::byte*>(dst);
  // Each rank pulls only the runs of its blocks that fall inside the selection.
  std::vector<std::vector<transport::Copy>> copies(ranks_.size());
  std::uint64_t covered = 0;
  for (const auto& p : merged_[i].blocks) {
    const auto ov = intersect(p.box, box);
    if (ov.empty) continue;
    covered += element_count(ov.box.count);
    const auto& b = *p.meta;
    for_each_run(p.box, box, ov.box, elem,
                 [&](std::uint64_t src, std::uint64_t doff, std::uint64_t len) {
                   copies[p.rank].push_back({b.segment, b.offset + src, out + doff, len});
                 });
  }
  // Parts of the global array no block covers read as zeros.
  if (covered < element_count(box.count)) std::memset(out, 0, nbytes);
  for (std::size_t r = 0; r < ranks_.size(); ++r) ranks_[r]->pull(copies[r]);
  bytes_ += nbytes;
}

ConstView WriterJob::get_block(std::string_view name, std::size_t index) {
  const auto i = find(name);
  const auto& v = vars_[i];
  const auto& blocks = merged_[i].blocks;
  if (index >= blocks.size()) {
    throw InvalidArgument(who() + " variable '" + v.name + "' has " + std::to_string(blocks.size()) +
                     " blocks in step " + std::to_string(this->index()) + "; block " +
                     std::to_string(index) + " does not exist");
  }
  const auto& p = blocks[index];
  const auto& b = *p.meta;
  ConstView out;
  out.dtype = v.dtype;
  out.shape = p.box.count;
  out.size = b.nbytes;
  bytes_ += b.nbytes;
  if (auto view = ranks_[p.rank]->view(b.segment, b.offset, b.nbytes)) {
    out.data = view.get();
    out.owner = std::move(view);
    return out;
  }
  auto buf = buffers_->acquire(b.nbytes);
  const transport::Copy c{b.segment, b.offset, buf.get(), b.nbytes};
  ranks_[p.rank]->pull({&c, 1});
  out.data = buf.get();
  out.owner = std::move(buf);
  return out;
}

void WriterJob::end_step() {
  if (!in_step_) throw InvalidArgument(who() + ": end_step without begin_step");
  in_step_ = false;
  for (auto& r : ranks_) r->end_step();
}

void WriterJob::close() {
  in_step_ = false;
  for (auto& r : ranks_) r->close();
}

std::vector<int> WriterJob::fds() const {
  std::vector<int> out;
  for (const auto& r : ranks_) {
    if (!r->in_step() && !r->ended()) out.push_back(r->fd());
  }
  return out;
}

bool WriterJob::buffered() const {
  return std::any_of(ranks_.begin(), ranks_.end(), [](const auto& r) { return r->buffered(); });
}

void WriterJob::remove_dead_writers_memory(double grace) const {
  for (const auto& r : ranks_) r->remove_dead_writers_memory(grace);
}

ReaderStats WriterJob::stats() const {
  ReaderStats out = ranks_.front()->stats();
  // A job step counts once, read from every rank; drops are the most any rank saw, plus
  // steps skipped because some rank had dropped them.
  for (std::size_t i = 1; i < ranks_.size(); ++i) {
    out.dropped = std::max(out.dropped, ranks_[i]->stats().dropped);
    if (ranks_[i]->stats().control != out.control) out.control = "mixed";
    out.preload_bytes += ranks_[i]->stats().preload_bytes;
    out.preload_unused_bytes += ranks_[i]->stats().preload_unused_bytes;
  }
  out.steps = steps_;
  out.dropped += skipped_;
  out.bytes = bytes_;
  return out;
}

}  // namespace twinstream
