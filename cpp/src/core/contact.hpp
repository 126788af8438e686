#pragma once
// The contact file `<dir>/<name>.twin`: how readers find a writer. Mode 0600: whoever can
// read it can connect (it holds the access token); nobody else can.
#include <optional>
#include <string>
#include <vector>

#include "core/messages.hpp"

namespace twinstream {

struct Contact {
  std::uint16_t version = wire::kProtocolVersion;
  std::string host;
  std::uint16_t port = 0;
  wire::Token token{};
  std::uint32_t pid = 0;
  std::string host_id;
  std::string shm_prefix;
  // A writer job of several processes: each rank has its own contact file (rank_contact_path),
  // all with the same `job`. Readers open rank 0's and find the others from `ranks`.
  std::uint32_t rank = 0;
  std::uint32_t ranks = 1;
  std::string job;
};

/// Throws InvalidArgument unless `name` is usable as a file name ([A-Za-z0-9._-], 1-200).
void validate_stream_name(const std::string& name);
/// The option if set, else $TWINSTREAM_DIR, else the working directory.
std::string rendezvous_dir(const std::string& option);
std::string contact_path(const std::string& dir, const std::string& name);
/// Fan-in streams: each ensemble member's writer has `<dir>/<name>@<member>.twin`.
std::string member_contact_path(const std::string& dir, const std::string& name,
                                const std::string& member);
/// Rank k > 0 of a writer job publishes `<rank 0's contact path>.rank<k>` (the suffix
/// keeps it out of every stream's and member's name space).
std::string rank_contact_path(const std::string& rank0_path, std::uint32_t rank);
/// Members of stream `name` with a contact file in `dir`, sorted.
std::vector<std::string> list_members(const std::string& dir, const std::string& name);

/// Writes atomically (temporary file + rename) with mode 0600.
void write_contact(const std::string& path, const Contact& c);
/// nullopt if the file is missing or unreadable/garbled (`why` says which).
std::optional<Contact> read_contact(const std::string& path, std::string* why = nullptr);
/// Removes the file only if it still carries `token` (a newer writer may own it).
void remove_contact_if_ours(const std::string& path, const wire::Token& token);

/// Whether the writer a contact file names is still running: same host, its pid is alive;
/// other host, its port answers.
bool contact_is_live(const Contact& c);

wire::Token random_token();
std::string to_hex(const wire::Token& t);
/// Constant-time comparison (no early exit on the first differing byte).
bool tokens_equal(const wire::Token& a, const wire::Token& b);

}  // namespace twinstream
