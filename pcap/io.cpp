#include "pcap/io.hpp"

#include <pcap/pcap.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string_view>

#include <fmt/format.h>

namespace svcpath::pcap {

struct Reader::Impl {
  pcap_t* p = nullptr;
};

Reader::Reader(const std::string& path) : impl_(std::make_unique<Impl>()), path_(path) {
  char err[PCAP_ERRBUF_SIZE] = {};
  // Nanosecond precision: libpcap scales microsecond files up, so one clock unit serves both.
  impl_->p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
  if (!impl_->p) {
    std::string_view e = err;
    if (e == "unknown file format") throw IoError(path, "not a pcap or pcapng capture (bad magic number)");
    // libpcap names the file in some messages ("x: No such file") but not others ("unknown file format").
    if (e.starts_with(path + ": ")) e.remove_prefix(path.size() + 2);
    throw IoError(path, std::string(e));
  }
  linktype_ = pcap_datalink(impl_->p);
  std::error_code ec;
  size_ = std::filesystem::file_size(path, ec);
  if (ec) size_ = 0;
}

double Reader::fraction_read() const {
  FILE* fp = pcap_file(impl_->p);
  if (!fp || !size_) return 0;
  long at = std::ftell(fp);
  return at > 0 ? std::min(1.0, double(at) / double(size_)) : 0.0;
}

Reader::~Reader() {
  if (impl_ && impl_->p) pcap_close(impl_->p);
}

bool Reader::next(Frame& f) {
  pcap_pkthdr* h = nullptr;
  const u_char* d = nullptr;
  int rc = pcap_next_ex(impl_->p, &h, &d);
  if (rc == PCAP_ERROR_BREAK) return false;
  if (rc != 1) throw IoError(path_, fmt::format("frame {}: {}", n_ + 1, pcap_geterr(impl_->p)));
  ++n_;
  f.ts_ns = uint64_t(h->ts.tv_sec) * 1'000'000'000ull + uint64_t(h->ts.tv_usec);
  f.caplen = h->caplen;
  f.wirelen = h->len;
  f.data = d;
  return true;
}

struct Writer::Impl {
  pcap_t* dead = nullptr;
  pcap_dumper_t* dump = nullptr;
};

Writer::Writer(const std::string& path, int linktype, uint32_t snaplen) : impl_(std::make_unique<Impl>()), path_(path) {
  // pcap_open_dead takes a DLT_ value; LINKTYPE_RAW (101) is DLT_RAW in the API.
  if (linktype == 101) linktype = DLT_RAW;
  impl_->dead = pcap_open_dead_with_tstamp_precision(linktype, int(snaplen), PCAP_TSTAMP_PRECISION_NANO);
  if (!impl_->dead) throw IoError(path, fmt::format("cannot create a capture of link type {}", linktype));
  impl_->dump = pcap_dump_open(impl_->dead, path.c_str());
  if (!impl_->dump) {
    std::string_view e = pcap_geterr(impl_->dead);  // names the file: "PATH: reason"
    std::string why(e.starts_with(path + ": ") ? e.substr(path.size() + 2) : e);
    pcap_close(impl_->dead);
    impl_->dead = nullptr;
    throw IoError(path, why);
  }
}

Writer::~Writer() {
  if (!impl_) return;
  if (impl_->dump) pcap_dump_close(impl_->dump);
  if (impl_->dead) pcap_close(impl_->dead);
}

void Writer::write(uint64_t ts_ns, std::span<const uint8_t> bytes, uint32_t wirelen) {
  if (!impl_->dump) throw IoError(path_, "write after close");
  pcap_pkthdr h{};
  h.ts.tv_sec = time_t(ts_ns / 1'000'000'000ull);
  h.ts.tv_usec = suseconds_t(ts_ns % 1'000'000'000ull);  // nanoseconds: the file says so in its magic
  h.caplen = uint32_t(bytes.size());
  h.len = wirelen ? wirelen : h.caplen;
  pcap_dump(reinterpret_cast<u_char*>(impl_->dump), &h, bytes.data());
  ++n_;
}

void Writer::close() {
  if (!impl_->dump) return;
  bool bad = pcap_dump_flush(impl_->dump) != 0;
  bad |= std::ferror(pcap_dump_file(impl_->dump)) != 0;
  pcap_dump_close(impl_->dump);
  impl_->dump = nullptr;
  pcap_close(impl_->dead);
  impl_->dead = nullptr;
  if (bad) throw IoError(path_, "write failed");
}

}  // namespace svcpath::pcap
