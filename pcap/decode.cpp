#include "pcap/decode.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "core/bytes.hpp"

namespace svcpath::pcap {

std::string_view decode_error_name(DecodeError e) {
  switch (e) {
    case DecodeError::None: return "ok";
    case DecodeError::UnsupportedLink: return "unsupported link type";
    case DecodeError::NotIp: return "not IP";
    case DecodeError::Truncated: return "truncated (snaplen)";
    case DecodeError::BadHeader: return "bad IP header";
    case DecodeError::LongExtHeaders: return "IPv6 extension headers too long";
    case DecodeError::Count_: break;
  }
  return "?";
}

namespace {

bool echo_like(uint8_t proto, uint8_t type) {
  if (proto == proto::ICMP)
    return type == 0 || type == 8 || type == 13 || type == 14 || type == 15 || type == 16 || type == 17 || type == 18;
  return type == 128 || type == 129;
}

// Transport header fields into the packet; l4 points at the header, avail is what was captured.
DecodeError l4_fields(uint8_t pr, const uint8_t* l4, uint32_t avail, Packet& p) {
  switch (pr) {
    case proto::TCP:
      if (avail < 14) return DecodeError::Truncated;
      p.t.sport = be16(l4);
      p.t.dport = be16(l4 + 2);
      p.tcp_flags = l4[13];
      return DecodeError::None;
    case proto::UDP:
    case proto::UDPLITE:
    case proto::SCTP:
    case proto::DCCP:
      if (avail < 4) return DecodeError::Truncated;
      p.t.sport = be16(l4);
      p.t.dport = be16(l4 + 2);
      return DecodeError::None;
    case proto::ESP:  // the SPI leads the ESP header
      if (avail < 4) return DecodeError::Truncated;
      p.spi = be32(l4);
      return DecodeError::None;
    case proto::AH:  // IPv4 only: IPv6 walks AH as an extension header
      if (avail < 8) return DecodeError::Truncated;
      p.spi = be32(l4 + 4);
      return DecodeError::None;
    case proto::ICMP:
    case proto::ICMPV6:
      if (avail < 2) return DecodeError::Truncated;
      p.t.dport = uint16_t(l4[0] << 8 | l4[1]);
      p.t.sport = 0;
      if (echo_like(pr, l4[0])) {
        if (avail < 6) return DecodeError::Truncated;
        p.t.sport = be16(l4 + 4);
      }
      return DecodeError::None;
    default: return DecodeError::None;
  }
}

DecodeError ipv4(const uint8_t* ip, uint32_t avail, Decoded& d, uint32_t base) {
  if (avail < 20) return DecodeError::Truncated;
  if ((ip[0] >> 4) != 4) return DecodeError::BadHeader;
  uint32_t ihl = uint32_t(ip[0] & 0x0f) * 4;
  uint16_t total = be16(ip + 2);
  if (ihl < 20 || total < ihl) return DecodeError::BadHeader;
  if (avail < ihl) return DecodeError::Truncated;
  Packet& p = d.pkt;
  p.t.src = Addr::v4(be32(ip + 12));
  p.t.dst = Addr::v4(be32(ip + 16));
  p.t.proto = ip[9];
  p.tos = ip[1];
  p.ttl = ip[8];
  p.len = total;
  uint16_t frag = be16(ip + 6);
  d.frag_offset = uint16_t((frag & 0x1fff) * 8);
  p.more_fragments = frag & 0x2000;
  d.ip_id = be16(ip + 4);
  d.l3 = base;
  if (d.frag_offset) {
    p.fragment = true;
    return DecodeError::None;
  }
  d.l4 = base + ihl;
  d.has_l4 = true;
  return l4_fields(p.t.proto, ip + ihl, avail - ihl, p);
}

DecodeError ipv6(const uint8_t* ip, uint32_t avail, Decoded& d, uint32_t base) {
  if (avail < 40) return DecodeError::Truncated;
  if ((ip[0] >> 4) != 6) return DecodeError::BadHeader;
  Packet& p = d.pkt;
  std::array<uint8_t, 16> a;
  std::memcpy(a.data(), ip + 8, 16);
  p.t.src = Addr::v6(a);
  std::memcpy(a.data(), ip + 24, 16);
  p.t.dst = Addr::v6(a);
  p.tos = uint8_t((be16(ip) >> 4) & 0xff);
  p.ttl = ip[7];
  p.len = uint16_t(40 + be16(ip + 4));
  d.l3 = base;
  uint8_t next = ip[6];
  uint32_t off = 40;
  // The extension headers are kept byte for byte (Packet::ext) for the matches that read them.
  auto keep_ext = [&]() {
    if (off == 40) return true;
    if (off - 40 > kExtMax || avail < off) return false;
    p.ext_first = ip[6];
    p.ext_len = uint8_t(off - 40);
    std::memcpy(p.ext, ip + 40, off - 40);
    return true;
  };
  // Walk the extension headers to the transport header (at most 8, to stay bounded).
  for (int hops = 0; hops < 8; ++hops) {
    if (next == 0 || next == 43 || next == 60 || next == 51) {
      if (avail < off + 2) return DecodeError::Truncated;
      uint32_t len = next == 51 ? (uint32_t(ip[off + 1]) + 2) * 4 : (uint32_t(ip[off + 1]) + 1) * 8;
      next = ip[off];
      off += len;
      continue;
    }
    if (next == 44) {  // fragment header
      if (avail < off + 8) return DecodeError::Truncated;
      uint16_t fo = be16(ip + off + 2);
      d.frag_offset = uint16_t(fo & 0xfff8);
      p.more_fragments = fo & 1;
      d.ip_id = be32(ip + off + 4);
      next = ip[off];
      off += 8;
      if (d.frag_offset) {
        p.t.proto = next;
        p.fragment = true;
        return keep_ext() ? DecodeError::None : DecodeError::LongExtHeaders;
      }
      continue;
    }
    break;
  }
  if (!keep_ext()) return avail < off ? DecodeError::Truncated : DecodeError::LongExtHeaders;
  p.t.proto = next;
  if (next == 59) return DecodeError::None;  // no next header
  if (avail < off) return DecodeError::Truncated;
  d.l4 = base + off;
  d.has_l4 = true;
  return l4_fields(next, ip + off, avail - off, p);
}

DecodeError ip_any(const uint8_t* ip, uint32_t avail, Decoded& d, uint32_t base) {
  if (avail < 1) return DecodeError::Truncated;
  switch (ip[0] >> 4) {
    case 4: return ipv4(ip, avail, d, base);
    case 6: return ipv6(ip, avail, d, base);
    default: return DecodeError::BadHeader;
  }
}

DecodeError by_ethertype(uint16_t type, const uint8_t* data, uint32_t caplen, uint32_t off, Decoded& d) {
  if (type == 0x0800) return ipv4(data + off, caplen - off, d, off);
  if (type == 0x86dd) return ipv6(data + off, caplen - off, d, off);
  return DecodeError::NotIp;
}

PktType sll_type(uint16_t t) {
  switch (t) {
    case 1: return PktType::Broadcast;
    case 2: return PktType::Multicast;
    case 3: return PktType::OtherHost;
    case 4: return PktType::Outgoing;
    default: return PktType::Host;
  }
}

}  // namespace

namespace {
DecodeError decode_frame(int linktype, const uint8_t* data, uint32_t caplen, Decoded& d);
}

DecodeError decode(int linktype, const uint8_t* data, uint32_t caplen, Decoded& d, uint32_t wirelen) {
  DecodeError e = decode_frame(linktype, data, caplen, d);
  if (e == DecodeError::None && wirelen && uint64_t(d.l3) + d.pkt.len > wirelen) return DecodeError::BadHeader;
  return e;
}

namespace {

DecodeError decode_frame(int linktype, const uint8_t* data, uint32_t caplen, Decoded& d) {
  d = Decoded{};
  switch (linktype) {
    case link::Ethernet: {
      if (caplen < 14) return DecodeError::Truncated;
      uint32_t off = 12;
      uint16_t type = be16(data + off);
      // 802.1Q, 802.1ad and the old QinQ tag: each adds 4 bytes.
      for (int tags = 0; (type == 0x8100 || type == 0x88a8 || type == 0x9100) && tags < 4; ++tags) {
        if (caplen < off + 6) return DecodeError::Truncated;
        if (!d.vlan) d.vlan = be16(data + off + 2) & 0x0fff;
        off += 4;
        type = be16(data + off);
      }
      if (data[0] & 1) d.pkt.pkt_type = (data[0] == 0xff && data[1] == 0xff) ? PktType::Broadcast : PktType::Multicast;
      uint16_t vlan = d.vlan;
      PktType pt = d.pkt.pkt_type;
      DecodeError e = by_ethertype(type, data, caplen, off + 2, d);
      d.vlan = vlan;
      d.pkt.pkt_type = pt;
      return e;
    }
    case link::Sll: {
      if (caplen < 16) return DecodeError::Truncated;
      PktType pt = sll_type(be16(data));
      DecodeError e = by_ethertype(be16(data + 14), data, caplen, 16, d);
      d.pkt.pkt_type = pt;
      return e;
    }
    case link::Sll2: {
      if (caplen < 20) return DecodeError::Truncated;
      PktType pt = sll_type(data[10]);
      DecodeError e = by_ethertype(be16(data), data, caplen, 20, d);
      d.pkt.pkt_type = pt;
      return e;
    }
    case link::Null:
    case link::Loop: {
      if (caplen < 4) return DecodeError::Truncated;
      uint32_t fam = linktype == link::Loop
                         ? be32(data)
                         : uint32_t(data[0]) | uint32_t(data[1]) << 8 | uint32_t(data[2]) << 16 | uint32_t(data[3]) << 24;
      if (fam > 0xffff) fam = __builtin_bswap32(fam);  // written on a machine of the other byte order
      if (fam == 2) return ipv4(data + 4, caplen - 4, d, 4);
      if (fam == 10 || fam == 24 || fam == 28 || fam == 30) return ipv6(data + 4, caplen - 4, d, 4);
      return DecodeError::NotIp;
    }
    case link::Raw:
    case link::RawAlt12:
    case link::RawAlt14: return ip_any(data, caplen, d, 0);
    case link::Ipv4: return ipv4(data, caplen, d, 0);
    case link::Ipv6: return ipv6(data, caplen, d, 0);
    default: return DecodeError::UnsupportedLink;
  }
}

}  // namespace

// ------------------------------------------------------------------------------ checksums
uint16_t inet_checksum(const uint8_t* data, size_t len, uint32_t sum) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += uint32_t(data[i] << 8 | data[i + 1]);
  if (len & 1) sum += uint32_t(data[len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

namespace {

// RFC 1624: HC' = ~(~HC + ~m + m'), one 16-bit word at a time.
void csum_replace16(uint8_t* csum, uint16_t old_w, uint16_t new_w) {
  uint32_t sum = uint16_t(~be16(csum)) + uint16_t(~old_w) + new_w;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  put16(csum, uint16_t(~sum));
}

void csum_replace_bytes(uint8_t* csum, const uint8_t* old_b, const uint8_t* new_b, size_t n) {
  for (size_t i = 0; i < n; i += 2) csum_replace16(csum, be16(old_b + i), be16(new_b + i));
}

uint32_t pseudo_sum(const uint8_t* ip, bool v6, uint8_t proto, uint32_t l4len) {
  uint32_t sum = 0;
  if (!v6) {
    for (int i = 12; i < 20; i += 2) sum += be16(ip + i);
  } else {
    for (int i = 8; i < 40; i += 2) sum += be16(ip + i);
  }
  sum += proto;
  sum += l4len & 0xffff;
  sum += l4len >> 16;
  return sum;
}

}  // namespace

std::vector<uint8_t> rewrite(const uint8_t* frame, uint32_t caplen, const Decoded& d, const Packet& after) {
  std::vector<uint8_t> out(frame + d.l3, frame + caplen);
  uint8_t* ip = out.data();
  bool v6 = (ip[0] >> 4) == 6;
  uint32_t l4 = d.has_l4 ? d.l4 - d.l3 : 0;
  uint8_t pr = d.pkt.t.proto;
  uint8_t* l4csum = nullptr;
  if (d.has_l4) {
    if (pr == proto::TCP && out.size() >= l4 + 18) l4csum = ip + l4 + 16;
    else if (pr == proto::UDP && out.size() >= l4 + 8 && (v6 || be16(ip + l4 + 6) != 0)) l4csum = ip + l4 + 6;
    else if ((pr == proto::ICMP || pr == proto::ICMPV6) && out.size() >= l4 + 4) l4csum = ip + l4 + 2;
  }
  bool pseudo = pr != proto::ICMP;  // every checksum but ICMPv4's covers the addresses
  auto set_addr = [&](size_t at, const Addr& a) {
    size_t n = v6 ? 16 : 4;
    uint8_t old_b[16];
    std::memcpy(old_b, ip + at, n);
    std::memcpy(ip + at, a.b.data(), n);
    if (!v6) csum_replace_bytes(ip + 10, old_b, ip + at, n);
    if (l4csum && pseudo) csum_replace_bytes(l4csum, old_b, ip + at, n);
  };
  set_addr(v6 ? 8 : 12, after.t.src);
  set_addr(v6 ? 24 : 16, after.t.dst);
  if (d.has_l4 && out.size() >= l4 + 4 && proto::has_ports(pr)) {
    uint16_t os = be16(ip + l4), od = be16(ip + l4 + 2);
    put16(ip + l4, after.t.sport);
    put16(ip + l4 + 2, after.t.dport);
    if (l4csum) {
      csum_replace16(l4csum, os, after.t.sport);
      csum_replace16(l4csum, od, after.t.dport);
    }
  } else if (d.has_l4 && (pr == proto::ICMP || pr == proto::ICMPV6) && out.size() >= l4 + 6 && echo_like(pr, ip[l4])) {
    uint16_t oid = be16(ip + l4 + 4);
    put16(ip + l4 + 4, after.t.sport);
    if (l4csum) csum_replace16(l4csum, oid, after.t.sport);
  }
  if (!v6 && after.ttl != d.pkt.ttl) {
    uint16_t old_w = be16(ip + 8);
    ip[8] = after.ttl;
    csum_replace16(ip + 10, old_w, be16(ip + 8));
  } else if (v6) {
    ip[7] = after.ttl;
  }
  // A UDP checksum of zero means "none"; a computed zero is sent as all ones (RFC 768).
  if (l4csum && pr == proto::UDP && be16(l4csum) == 0) put16(l4csum, 0xffff);
  return out;
}

std::vector<uint8_t> build(const Packet& p) {
  bool v6 = !p.t.src.is_v4();
  uint32_t iph = v6 ? 40u + p.ext_len : 20;  // the transport header follows the extension headers
  uint32_t l4h = p.fragment                 ? 0
                 : p.t.proto == proto::TCP  ? 20
                 : p.t.proto == proto::UDP  ? 8
                 : p.t.proto == proto::SCTP ? 12
                 : p.t.proto == proto::ESP  ? 8
                 : p.t.proto == proto::AH   ? 12
                 : p.is_icmp()              ? 8
                                            : 0;
  uint32_t total = std::max<uint32_t>(p.len, iph + l4h);
  std::vector<uint8_t> b(total, 0);
  uint8_t* ip = b.data();
  if (!v6) {
    ip[0] = 0x45;
    ip[1] = p.tos;
    put16(ip + 2, uint16_t(total));
    ip[8] = p.ttl;
    ip[9] = p.t.proto;
    std::memcpy(ip + 12, p.t.src.b.data(), 4);
    std::memcpy(ip + 16, p.t.dst.b.data(), 4);
    put16(ip + 10, inet_checksum(ip, 20));
  } else {
    ip[0] = 0x60;
    put16(ip + 4, uint16_t(total - 40));
    ip[6] = p.ext_len ? p.ext_first : p.t.proto;
    std::memcpy(ip + 40, p.ext, p.ext_len);
    ip[7] = p.ttl;
    std::memcpy(ip + 8, p.t.src.b.data(), 16);
    std::memcpy(ip + 24, p.t.dst.b.data(), 16);
  }
  uint8_t* l4 = ip + iph;
  uint32_t l4len = total - iph;
  uint8_t* csum = nullptr;
  if (p.fragment) {
    // A later fragment carries no transport header.
  } else if (p.t.proto == proto::ESP) {
    put32(l4, p.spi);
  } else if (p.t.proto == proto::AH) {
    l4[1] = 1;  // Payload Len: 12 bytes, no ICV
    put32(l4 + 4, p.spi);
  } else if (p.t.proto == proto::TCP) {
    put16(l4, p.t.sport);
    put16(l4 + 2, p.t.dport);
    l4[12] = 5 << 4;
    l4[13] = p.tcp_flags;
    put16(l4 + 14, 65535);
    csum = l4 + 16;
  } else if (p.t.proto == proto::UDP) {
    put16(l4, p.t.sport);
    put16(l4 + 2, p.t.dport);
    put16(l4 + 4, uint16_t(l4len));
    csum = l4 + 6;
  } else if (p.t.proto == proto::SCTP) {
    put16(l4, p.t.sport);
    put16(l4 + 2, p.t.dport);
  } else if (p.is_icmp()) {
    l4[0] = p.icmp_type();
    l4[1] = p.icmp_code();
    put16(l4 + 4, p.t.sport);
    csum = l4 + 2;
  }
  if (csum) {
    uint32_t init = p.t.proto == proto::ICMP ? 0 : pseudo_sum(ip, v6, p.t.proto, l4len);
    uint16_t c = inet_checksum(l4, l4len, init);
    if (p.t.proto == proto::UDP && c == 0) c = 0xffff;
    put16(csum, c);
  }
  return b;
}

bool checksums_ok(const uint8_t* ip, size_t len) {
  if (len < 20) return false;
  bool v6 = (ip[0] >> 4) == 6;
  uint32_t iph = v6 ? 40 : uint32_t(ip[0] & 0xf) * 4;
  if (!v6 && inet_checksum(ip, iph) != 0) return false;
  uint8_t pr = v6 ? ip[6] : ip[9];
  uint32_t total = v6 ? 40u + be16(ip + 4) : be16(ip + 2);
  if (total > len || total < iph) return false;
  const uint8_t* l4 = ip + iph;
  uint32_t l4len = total - iph;
  if (pr == proto::TCP || pr == proto::UDP || pr == proto::ICMPV6 || pr == proto::ICMP) {
    if (pr == proto::UDP && !v6 && l4len >= 8 && be16(l4 + 6) == 0) return true;  // no checksum
    uint32_t init = pr == proto::ICMP ? 0 : pseudo_sum(ip, v6, pr, l4len);
    return inet_checksum(l4, l4len, init) == 0;
  }
  return true;
}

}  // namespace svcpath::pcap
