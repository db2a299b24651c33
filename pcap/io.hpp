#pragma once
// libpcap file I/O: pcap and pcapng in (libpcap tells them apart), pcap out. Timestamps are kept in
// nanoseconds end to end so a replay's conntrack timers see the capture's own clock.
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>

#include "core/diag.hpp"

namespace svcpath::pcap {

/// A capture file that could not be opened, read or written: an input error naming the file;
/// what() reads "FILE: message", as libpcap words it.
struct IoError : LoadError {
  IoError(const std::string& path, std::string message) : LoadError({{path, 0, 0, message}}, path + ": " + message) {}
};

struct Frame {
  uint64_t ts_ns = 0;
  uint32_t caplen = 0;
  uint32_t wirelen = 0;
  const uint8_t* data = nullptr;  // valid until the next call to next()
  std::span<const uint8_t> bytes() const { return {data, caplen}; }
};

class Reader {
 public:
  explicit Reader(const std::string& path);
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  int linktype() const { return linktype_; }
  const std::string& path() const { return path_; }
  /// The next frame; false at the end of the file. A damaged file throws IoError naming the
  /// frame number it failed at.
  bool next(Frame& f);
  uint64_t frames_read() const { return n_; }
  /// How far through the file reading is, 0..1 (for progress bars).
  double fraction_read() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  int linktype_ = 0;
  uint64_t size_ = 0;
  uint64_t n_ = 0;
};

class Writer {
 public:
  /// linktype: a link::* value; Raw (101) for post-NAT IP packets.
  Writer(const std::string& path, int linktype, uint32_t snaplen = 262144);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void write(uint64_t ts_ns, std::span<const uint8_t> bytes, uint32_t wirelen = 0);
  /// Flushes and closes; errors (disk full) surface here rather than being lost in a destructor.
  void close();
  uint64_t frames_written() const { return n_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  uint64_t n_ = 0;
};

}  // namespace svcpath::pcap
