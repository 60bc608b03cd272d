#include "engine/mapped_file.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace kvserve::engine {
namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("mapped_file_test_" + name)).string();
}

TEST(MappedFileTest, MapsTheFileBytes) {
  const std::string path = TempPath("bytes");
  const std::string content("GGUF\0\x01\xff tail", 11);
  std::ofstream(path, std::ios::binary) << content;
  auto file = MappedFile::Open(path, "test file");
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ((*file)->size(), content.size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*file)->data()), (*file)->size()), content);
  std::remove(path.c_str());
}

TEST(MappedFileTest, EmptyFileHasNoBytes) {
  const std::string path = TempPath("empty");
  std::ofstream(path, std::ios::binary).close();
  auto file = MappedFile::Open(path, "test file");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->size(), 0u);
  EXPECT_EQ((*file)->data(), nullptr);
  std::remove(path.c_str());
}

TEST(MappedFileTest, MissingFileIsNotFoundNamingKindAndPath) {
  const std::string path = TempPath("does_not_exist");
  auto file = MappedFile::Open(path, "GGUF file");
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(file.status().message().find("cannot open GGUF file '" + path + "'"), std::string::npos)
      << file.status();
}

TEST(MappedFileTest, DirectoryIsNotARegularFile) {
  const std::string path = std::filesystem::temp_directory_path().string();
  auto file = MappedFile::Open(path, "safetensors file");
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(file.status().message().find("is not a regular file"), std::string::npos)
      << file.status();
}

}  // namespace
}  // namespace kvserve::engine
