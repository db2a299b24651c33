#include "core/ipv6_ext.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "core/bytes.hpp"

namespace svcpath::ext6 {

std::optional<uint8_t> byte_at(const Packet& p, unsigned off) {
  if (off < 40 || off >= p.len) return std::nullopt;
  return off - 40 < p.ext_len ? p.ext[off - 40] : uint8_t(0);
}

int find_hdr(const Packet& p, int target, unsigned* off, uint16_t* fragoff) {
  unsigned start = 40;
  uint8_t nexthdr = first_header(p);
  if (fragoff) *fragoff = 0;
  bool found = false;
  do {
    found = nexthdr == target;
    if (!is_ext(nexthdr) || nexthdr == NONE) {
      if (target < 0 || found) break;
      return kNoEnt;
    }
    auto nh = byte_at(p, start), hl = byte_at(p, start + 1);
    if (!nh || !hl) return kBadMsg;
    unsigned hdrlen;
    if (nexthdr == FRAGMENT) {
      auto a = byte_at(p, start + 2), b = byte_at(p, start + 3);
      if (!a || !b) return kBadMsg;
      auto fo = uint16_t((*a << 8 | *b) & ~7);
      if (fo) {
        // A later fragment: what follows its header is in the first fragment.
        if (target < 0 && (!is_ext(*nh) || *nh == NONE)) {
          if (fragoff) *fragoff = fo;
          return *nh;
        }
        if (!found) return kNoEnt;
        if (fragoff) *fragoff = fo;
        break;
      }
      hdrlen = 8;
    } else if (nexthdr == AUTH) {
      hdrlen = (unsigned(*hl) + 2) << 2;
    } else {
      hdrlen = (unsigned(*hl) + 1) << 3;
    }
    if (!found) {
      nexthdr = *nh;
      start += hdrlen;
    }
  } while (!found);
  *off = start;
  return nexthdr;
}

void remove_header(Packet& p, unsigned off) {
  unsigned at = off - 40;
  if (at >= p.ext_len) return;
  uint8_t type = first_header(p);
  unsigned prev = ~0u, k = 0;
  while (k < at) {  // the header before it, to take over its Next Header
    prev = k;
    unsigned len = type == FRAGMENT ? 8 : type == AUTH ? (p.ext[k + 1] + 2u) << 2 : (p.ext[k + 1] + 1u) << 3;
    type = p.ext[k];
    k += len;
  }
  unsigned len = type == FRAGMENT ? 8 : type == AUTH ? (p.ext[at + 1] + 2u) << 2 : (p.ext[at + 1] + 1u) << 3;
  len = std::min<unsigned>(len, p.ext_len - at);
  uint8_t next = p.ext[at];
  if (prev == ~0u) p.ext_first = next;
  else p.ext[prev] = next;
  std::memmove(p.ext + at, p.ext + at + len, p.ext_len - at - len);
  p.ext_len = uint8_t(p.ext_len - len);
  std::memset(p.ext + p.ext_len, 0, len);
  p.len = uint16_t(p.len - len);
  if (!p.ext_len) p.t.proto = next;
}

void as_reassembled(Packet& p) {
  p.more_fragments = false;
  unsigned off = 0;
  if (!p.t.src.is_v4() && p.ext_len && find_hdr(p, FRAGMENT, &off) >= 0) remove_header(p, off);
}

namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    auto k = s.find(sep);
    out.push_back(s.substr(0, k));
    if (k == std::string_view::npos) return out;
    s.remove_prefix(k + 1);
  }
}

// What ip6_parse_tlv lets through to PREROUTING: padding (at most 7 bytes in a row), a router alert
// of two bytes, and unknown options whose two high bits say "skip". Anything else the kernel drops
// or answers before netfilter sees the packet (destination options after INPUT), so the spec
// refuses it rather than tracing a packet the tables never get.
bool option_ok(uint8_t type, uint8_t len, bool hbh, std::string& why) {
  if (type == 0 || type == 1) return true;
  if (hbh && type == 5) {
    if (len == 2) return true;
    why = "a router alert (type 5) carries 2 bytes";
    return false;
  }
  if (type >> 6) {
    why = fmt::format(
        "option type {} is one the kernel acts on (discards or answers) instead of skipping; "
        "use a type below 64",
        type);
    return false;
  }
  return true;
}

}  // namespace

bool parse_chain(std::string_view s, uint8_t proto, Packet& p, std::string* why) {
  uint8_t buf[kExtMax] = {};
  size_t n = 0;
  uint8_t types[16];
  size_t starts[16];
  size_t count = 0;
  bool later = false;
  std::string err;
  auto fail = [&](std::string m) {
    if (why) *why = fmt::format("'ext={}': {}", s, m);
    return false;
  };
  auto room = [&](size_t need) { return n + need <= kExtMax; };
  if (s.empty()) return fail("expected headers, e.g. ext=hbh,frag/off=8");
  for (auto hdr : split(s, ',')) {
    auto parts = split(hdr, '/');
    auto name = parts[0];
    if (count == std::size(types)) return fail("at most 16 headers");
    if (later) return fail("nothing follows a later fragment's header (the rest of the chain is in the first fragment)");
    auto kv = [](std::string_view w, std::string_view& key, std::string_view& val) {
      auto eq = w.find('=');
      key = w.substr(0, eq);
      val = eq == std::string_view::npos ? std::string_view() : w.substr(eq + 1);
      return eq != std::string_view::npos;
    };
    starts[count] = n;
    if (name == "hbh" || name == "dst") {
      bool hbh = name == "hbh";
      if (hbh && count) return fail("hbh comes first (RFC 8200; the kernel refuses it anywhere else)");
      uint8_t body[kExtMax];
      size_t b = 0, pad_run = 0, tlvs = 0;
      for (size_t k = 1; k < parts.size(); ++k) {
        auto tl = split(parts[k], ':');
        auto t = parse_uint(tl[0], 255, true);
        auto l = tl.size() == 2 ? parse_uint(tl[1], 255, true) : std::optional<uint64_t>(0);
        if (!t || !l || tl.size() > 2 || (*t == 0 && tl.size() == 2))
          return fail(fmt::format("'{}': an option is TYPE[:LEN] (LEN data bytes; Pad1, type 0, has none)", parts[k]));
        if (!option_ok(uint8_t(*t), uint8_t(*l), hbh, err)) return fail(err);
        size_t size = *t == 0 ? 1 : 2 + *l;
        pad_run = *t <= 1 ? pad_run + size : 0;
        if (*t > 1) ++tlvs;
        if (pad_run > 7) return fail("more than 7 bytes of padding in a row (the kernel drops the packet)");
        if (2 + b + size > kExtMax) return fail(fmt::format("the options do not fit in {} bytes", kExtMax));
        if (*t == 0) {
          body[b++] = 0;
        } else {
          body[b++] = uint8_t(*t);
          body[b++] = uint8_t(*l);
          std::memset(body + b, 0, *l);
          b += *l;
        }
      }
      if (tlvs > 8) return fail("more than 8 options (net.ipv6.max_hbh_opts_number/max_dst_opts_number)");
      // Padded to a multiple of 8 bytes with Pad1 or PadN, as a sender must.
      size_t pad = (8 - (2 + b) % 8) % 8;
      if (pad_run + pad > 7) return fail("more than 7 bytes of padding in a row (the kernel drops the packet)");
      if (!room(2 + b + pad)) return fail(fmt::format("the headers do not fit in {} bytes", kExtMax));
      buf[n + 1] = uint8_t((2 + b + pad) / 8 - 1);
      std::memcpy(buf + n + 2, body, b);
      if (pad == 1) buf[n + 2 + b] = 0;
      else if (pad > 1) buf[n + 2 + b] = 1, buf[n + 3 + b] = uint8_t(pad - 2);
      n += 2 + b + pad;
      types[count++] = hbh ? HOP : DEST;
    } else if (name == "rt") {
      uint64_t type = 0, left = 0, res = 0;
      std::vector<Addr> addrs;
      for (size_t k = 1; k < parts.size(); ++k) {
        std::string_view key, val;
        bool has = kv(parts[k], key, val);
        std::optional<uint64_t> v;
        if (has && (key == "type" || key == "left")) v = parse_uint(val, 255);
        else if (has && key == "res") v = parse_uint(val, 0xffffffff, true);
        if (v) (key == "type" ? type : key == "left" ? left : res) = *v;
        else if (has && key == "addr") {
          for (auto a : split(val, '+')) {
            auto ad = Addr::parse(a, nullptr);
            if (!ad || ad->is_v4()) return fail(fmt::format("'{}': not an IPv6 address", a));
            addrs.push_back(*ad);
          }
        } else {
          return fail(fmt::format("'{}': rt takes type=N, left=N, res=N and addr=A[+A...]", parts[k]));
        }
      }
      if (!room(8 + 16 * addrs.size())) return fail(fmt::format("the headers do not fit in {} bytes", kExtMax));
      buf[n + 1] = uint8_t(2 * addrs.size());
      buf[n + 2] = uint8_t(type);
      buf[n + 3] = uint8_t(left);
      put32(buf + n + 4, uint32_t(res));
      for (size_t a = 0; a < addrs.size(); ++a) std::memcpy(buf + n + 8 + 16 * a, addrs[a].b.data(), 16);
      n += 8 + 16 * addrs.size();
      types[count++] = ROUTING;
    } else if (name == "frag") {
      uint64_t off = 0, id = 0, res = 0;
      bool more = false;
      for (size_t k = 1; k < parts.size(); ++k) {
        std::string_view key, val;
        bool has = kv(parts[k], key, val);
        std::optional<uint64_t> v;
        if (!has && key == "more") {
          more = true;
          continue;
        }
        if (has && key == "off") v = parse_uint(val, 65528);
        else if (has && key == "id") v = parse_uint(val, 0xffffffff, true);
        else if (has && key == "res") v = parse_uint(val, 255, true);
        if (!v || (key == "off" && *v % 8))
          return fail(fmt::format("'{}': frag takes off=N (bytes, a multiple of 8), id=N, res=N and more", parts[k]));
        (key == "off" ? off : key == "id" ? id : res) = *v;
      }
      if (!room(8)) return fail(fmt::format("the headers do not fit in {} bytes", kExtMax));
      buf[n + 1] = uint8_t(res);
      put16(buf + n + 2, uint16_t(off | (more ? 1 : 0)));
      put32(buf + n + 4, uint32_t(id));
      n += 8;
      types[count++] = FRAGMENT;
      later = off != 0;
      p.fragment = later;
      p.more_fragments = more;
    } else if (name == "ah") {
      uint64_t spi = 0, len = 4;
      for (size_t k = 1; k < parts.size(); ++k) {
        std::string_view key, val;
        bool has = kv(parts[k], key, val);
        std::optional<uint64_t> v;
        if (has && key == "spi") v = parse_uint(val, 0xffffffff, true);
        else if (has && key == "len") v = parse_uint(val, 255);
        if (!v || (key == "len" && (*v == 0 || *v % 2)))
          return fail(fmt::format("'{}': ah takes spi=N and len=N (its Payload Len: (N+2)*4 bytes, N even)", parts[k]));
        (key == "spi" ? spi : len) = *v;
      }
      size_t size = (len + 2) * 4;
      if (!room(size)) return fail(fmt::format("the headers do not fit in {} bytes", kExtMax));
      buf[n + 1] = uint8_t(len);
      put32(buf + n + 4, uint32_t(spi));
      n += size;
      types[count++] = AUTH;
    } else {
      return fail(fmt::format("'{}': unknown header (hbh, dst, rt, frag, ah)", name));
    }
  }
  // Each header's Next Header names the one after it; the last names the upper-layer protocol.
  for (size_t k = 0; k < count; ++k) buf[starts[k]] = k + 1 < count ? types[k + 1] : proto;
  p.ext_first = types[0];
  p.ext_len = uint8_t(n);
  std::memcpy(p.ext, buf, n);
  return true;
}

}  // namespace svcpath::ext6
