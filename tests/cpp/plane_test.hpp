#pragma once
// A test fixture parametrized by data plane ("inproc", "shm", "tcp", "fabric_<provider>"):
// its own rendezvous directory per test, and writer/reader options with bounded waits.
// Shared by the tests that run writers and readers through the public C++ API.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "twinstream/twinstream.hpp"

namespace twinstream::testing_support {

class PlaneTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "twinstream-" + std::string(info->test_suite_name()) + "-" +
                       std::to_string(::getpid()) + "-" + info->name();
    for (auto& c : name) {
      if (c == '/') c = '_';  // parametrized names hold '/'
    }
    dir_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Defaults for what `extra` does not set.
  Options writer_options(Options extra = {}) const {
    extra["dir"] = dir_.string();
    extra.try_emplace("min_readers", "1");
    extra.try_emplace("open_timeout", "30");
    extra.try_emplace("close_timeout", "30");
    return extra;
  }
  Options reader_options(Options extra = {}) const {
    extra["dir"] = dir_.string();
    // "fabric_tcp": the fabric plane with libfabric's tcp provider.
    const auto& p = GetParam();
    const auto sep = p.find('_');
    extra["data_plane"] = p.substr(0, sep);
    if (sep != std::string::npos) extra["fabric_provider"] = p.substr(sep + 1);
    extra["timeout"] = "30";
    return extra;
  }
  std::filesystem::path dir_;
};

/// inproc, shm, tcp, and fabric with each provider that runs here.
inline std::vector<std::string> planes_of_this_build() {
  std::vector<std::string> out{"inproc", "shm", "tcp"};
  for (const auto& p : data_planes()) {
    if (p.name == "fabric" && p.available) {
      out.push_back("fabric_tcp");
      out.push_back("fabric_shm");
    }
  }
  return out;
}

}  // namespace twinstream::testing_support
