#include "netfilter/ipset/ipset.hpp"

#include <algorithm>
#include <array>
#include <functional>
#include <charconv>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "core/diag.hpp"
#include "core/hash.hpp"
#include "netfilter/words.hpp"

namespace svcpath::nf {

std::string_view set_type_name(SetType t) {
  switch (t) {
    case SetType::HashIp: return "hash:ip";
    case SetType::HashIpPort: return "hash:ip,port";
    case SetType::HashIpPortIp: return "hash:ip,port,ip";
    case SetType::HashIpPortNet: return "hash:ip,port,net";
    case SetType::HashNet: return "hash:net";
    case SetType::HashNetPort: return "hash:net,port";
    case SetType::BitmapPort: return "bitmap:port";
    case SetType::ListSet: return "list:set";
  }
  return "?";
}

size_t SetKeyHash::operator()(const SetKey& k) const noexcept {
  return size_t(Fnv1a{}
                    .mix(k.a1.b.data(), 16)
                    .mix(k.a3.b.data(), 16)
                    .mix(uint64_t(k.cidr1) | uint64_t(k.proto) << 8 | uint64_t(k.port) << 16 | uint64_t(k.cidr3) << 32, 5)
                    .h);
}

unsigned IpSet::dims() const {
  switch (type) {
    case SetType::HashIp:
    case SetType::HashNet:
    case SetType::BitmapPort: return 1;
    case SetType::HashIpPort:
    case SetType::HashNetPort: return 2;
    case SetType::HashIpPortIp:
    case SetType::HashIpPortNet: return 3;
    case SetType::ListSet: return 0;
  }
  return 0;
}

const IpSet* IpSets::find(std::string_view name) const {
  int i = index_of(name);
  return i < 0 ? nullptr : &sets_[size_t(i)];
}

int IpSets::index_of(std::string_view name) const {
  for (size_t i = 0; i < sets_.size(); ++i)
    if (sets_[i].name == name) return int(i);
  return -1;
}

namespace {

// Up to four hex digits without 0x, as tc prints class ids.
std::optional<uint16_t> parse_hex16(std::string_view s) {
  uint16_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (s.empty() || s.size() > 4 || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

bool port_proto(std::string_view proto) { return proto == "tcp" || proto == "udp" || proto == "sctp" || proto == "udplite"; }

struct IcmpName {
  const char* name;
  uint8_t type, code;
};
constexpr IcmpName kIcmpNames[] = {{"echo-reply", 0, 0},           {"network-unreachable", 3, 0}, {"host-unreachable", 3, 1},
                                   {"protocol-unreachable", 3, 2}, {"port-unreachable", 3, 3},    {"fragmentation-needed", 3, 4},
                                   {"source-quench", 4, 0},        {"echo-request", 8, 0},        {"time-exceeded", 11, 0},
                                   {"parameter-problem", 12, 0}};
constexpr IcmpName kIcmp6Names[] = {{"no-route", 1, 0},       {"address-unreachable", 1, 3},     {"port-unreachable", 1, 4},
                                    {"packet-too-big", 2, 0}, {"ttl-zero-during-transit", 3, 0}, {"echo-request", 128, 0},
                                    {"echo-reply", 129, 0}};

std::string port_str(uint8_t proto, uint16_t port) {
  if (proto == proto::ICMP || proto == proto::ICMPV6) {
    uint8_t t = uint8_t(port >> 8), c = uint8_t(port);
    const auto* tab = proto == proto::ICMP ? kIcmpNames : kIcmp6Names;
    size_t n = proto == proto::ICMP ? std::size(kIcmpNames) : std::size(kIcmp6Names);
    for (size_t i = 0; i < n; ++i)
      if (tab[i].type == t && tab[i].code == c)
        return fmt::format("{}:{}", proto == proto::ICMP ? "icmp" : "icmpv6", tab[i].name);
    return fmt::format("{}:{}/{}", proto == proto::ICMP ? "icmp" : "icmpv6", t, c);
  }
  return fmt::format("{}:{}", proto::name(proto), port);
}

std::string addr_str(const Addr& a, uint8_t cidr) { return cidr == a.bits() ? a.str() : fmt::format("{}/{}", a.str(), cidr); }

}  // namespace

class IpsetLoader {
 public:
  IpsetLoader(const std::string& file, IpSets& sets) : d_(file), sets_(sets), work_(sets.sets_) {}

  void run(std::string_view text) {
    int ln = 0;
    size_t pos = 0;
    while (pos <= text.size() && !d_.full()) {
      size_t nl = text.find('\n', pos);
      auto line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
      ++ln;
      one(ln, line);
      if (nl == std::string_view::npos) break;
      pos = nl + 1;
    }
    // Resolve list:set members now that every set is known.
    for (auto& s : work_) {
      s.member_index.clear();
      for (size_t i = 0; i < s.members.size(); ++i) {
        int k = -1;
        for (size_t j = 0; j < work_.size(); ++j)
          if (work_[j].name == s.members[i]) k = int(j);
        if (k < 0) d_.error(s.line, 0, fmt::format("list:set {} names a set '{}' that does not exist", s.name, s.members[i]));
        else if (work_[size_t(k)].type == SetType::ListSet)
          d_.error(s.line, 0, fmt::format("list:set {} may not contain the list:set '{}'", s.name, s.members[i]));
        s.member_index.push_back(k);
      }
    }
    d_.throw_if_errors();
    sets_.sets_ = std::move(work_);
  }

 private:
  IpSet* find(std::string_view n) {
    for (auto& s : work_)
      if (s.name == n) return &s;
    return nullptr;
  }

  void one(int ln, std::string_view line) {
    if (line.size() > 64 * 1024) {
      d_.error(ln, 0, "line longer than 65536 bytes");
      return;
    }
    std::vector<Word> t;
    if (auto e = split_words(line, t, kIpsetWords)) {
      d_.error(ln, e->col, e->what);
      return;
    }
    if (t.empty() || t[0].s[0] == '#') return;
    std::erase_if(t, [](const Word& x) { return x.s == "-exist" || x.s == "-!"; });
    if (t.empty()) return;
    const std::string& cmd = t[0].s;
    if (cmd == "create" || cmd == "-N" || cmd == "n") return create(ln, t);
    if (cmd == "add" || cmd == "-A" || cmd == "a") return add(ln, t, false);
    if (cmd == "del" || cmd == "-D" || cmd == "d") return add(ln, t, true);
    if (cmd == "flush" || cmd == "-F" || cmd == "destroy" || cmd == "-X") {
      bool destroy = cmd == "destroy" || cmd == "-X";
      if (t.size() < 2) {
        if (destroy) work_.clear();
        else
          for (auto& s : work_) clear(s);
        return;
      }
      IpSet* s = find(t[1].s);
      if (!s) return no_such_set(ln, t[1]);
      if (destroy) std::erase_if(work_, [&](const IpSet& x) { return x.name == t[1].s; });
      else clear(*s);
      return;
    }
    d_.error(ln, t[0].col, fmt::format("unknown command '{}' (expected create, add, del, flush or destroy)", cmd));
  }

  static void clear(IpSet& s) {
    s.entries.clear();
    s.index.clear();
    s.cidrs1.clear();
    s.cidrs3.clear();
    s.members.clear();
  }

  void create(int ln, const std::vector<Word>& t) {
    if (t.size() < 3) return d_.error(ln, t[0].col, "create needs a set name and a type");
    const std::string& name = t[1].s;
    if (name.empty() || name.size() > 31)
      return d_.error(ln, t[1].col, fmt::format("set name '{}' must be 1..31 characters", name));
    if (IpSet* old = find(name))
      return d_.error(ln, t[1].col, fmt::format("set '{}' already exists (created at line {})", name, old->line));
    IpSet s;
    s.name = name;
    s.line = ln;
    const std::string& ty = t[2].s;
    bool found = false;
    for (int i = 0; i <= int(SetType::ListSet); ++i)
      if (set_type_name(SetType(i)) == ty) s.type = SetType(i), found = true;
    if (!found)
      return d_.error(ln, t[2].col,
                      fmt::format("unsupported set type '{}' (hash:ip, hash:ip,port, hash:ip,port,ip, hash:ip,port,net, "
                                  "hash:net, hash:net,port, bitmap:port, list:set)",
                                  ty));
    bool range_given = false;
    for (size_t i = 3; i < t.size(); ++i) {
      const std::string& o = t[i].s;
      auto need = [&]() -> const std::string* {
        if (i + 1 >= t.size()) {
          d_.error(ln, t[i].col, fmt::format("option '{}' needs a value", o));
          return nullptr;
        }
        return &t[++i].s;
      };
      auto number = [&](uint32_t& dst, uint64_t max) {
        auto v = need();
        if (!v) return false;
        auto n = parse_uint(*v, max);
        if (!n) {
          d_.error(ln, t[i].col, fmt::format("'{}' is not a valid value for {}", *v, o));
          return false;
        }
        dst = uint32_t(*n);
        return true;
      };
      if (o == "family") {
        auto v = need();
        if (!v) return;
        if (*v == "inet") s.family = Family::V4;
        else if (*v == "inet6") s.family = Family::V6;
        else return d_.error(ln, t[i].col, fmt::format("family must be inet or inet6, not '{}'", *v));
      } else if (o == "hashsize") {
        if (!number(s.hashsize, 1u << 31)) return;
      } else if (o == "maxelem") {
        if (!number(s.maxelem, 0xffffffff)) return;
      } else if (o == "timeout") {
        if (!number(s.timeout, 2147483)) return;
        s.timeout_set = true;
      } else if (o == "size") {
        if (!number(s.size, 65535)) return;
      } else if (o == "netmask") {
        uint32_t nm = 0;
        if (!number(nm, 128)) return;
        s.netmask = uint8_t(nm);
      } else if (o == "bucketsize" || o == "initval") {
        auto v = need();
        if (!v) return;
        (o == "bucketsize" ? s.bucketsize : s.initval) = *v;
      } else if (o == "range") {
        auto v = need();
        if (!v) return;
        std::string why;
        auto r = PortRange::parse(*v, '-', &why);
        if (!r) return d_.error(ln, t[i].col, why);
        s.range = *r;
        range_given = true;
      } else if (o == "counters") s.counters = true;
      else if (o == "comment") s.comment = true;
      else if (o == "skbinfo") s.skbinfo = true;
      else if (o == "forceadd") s.forceadd = true;
      else return d_.error(ln, t[i].col, fmt::format("unknown create option '{}'", o));
    }
    if (s.type == SetType::BitmapPort && !range_given) return d_.error(ln, t[2].col, "bitmap:port needs 'range FROM-TO'");
    if (s.netmask && s.netmask > (s.family == Family::V4 ? 32 : 128))
      return d_.error(ln, 0, "netmask is larger than the address");
    work_.push_back(std::move(s));
  }

  // Parses "[proto:]port[-port]" into (proto, lo, hi).
  bool port_part(int ln, int col, std::string_view v, Family fam, uint8_t& pr, uint16_t& lo, uint16_t& hi) {
    auto colon = v.find(':');
    std::string_view ps = v;
    pr = proto::TCP;
    if (colon != std::string_view::npos) {
      auto name = v.substr(0, colon);
      ps = v.substr(colon + 1);
      if (name == "icmp" || name == "icmpv6") {
        pr = name == "icmp" ? proto::ICMP : proto::ICMPV6;
        if ((pr == proto::ICMP) != (fam == Family::V4)) {
          d_.error(ln, col, fmt::format("'{}' does not fit the set's family", name));
          return false;
        }
        const auto* tab = pr == proto::ICMP ? kIcmpNames : kIcmp6Names;
        size_t n = pr == proto::ICMP ? std::size(kIcmpNames) : std::size(kIcmp6Names);
        for (size_t i = 0; i < n; ++i)
          if (ps == tab[i].name) {
            lo = hi = uint16_t(tab[i].type << 8 | tab[i].code);
            return true;
          }
        auto slash = ps.find('/');
        auto ty = parse_uint(ps.substr(0, slash), 255);
        auto co = slash == std::string_view::npos ? std::optional<uint64_t>(0) : parse_uint(ps.substr(slash + 1), 255);
        if (!ty || !co) {
          d_.error(ln, col, fmt::format("'{}' is not an ICMP type name or TYPE/CODE", ps));
          return false;
        }
        lo = hi = uint16_t(*ty << 8 | *co);
        return true;
      }
      auto p = proto::parse(name);
      if (!p) {
        d_.error(ln, col, fmt::format("unknown protocol '{}'", name));
        return false;
      }
      pr = *p;
      if (!port_proto(name)) {
        if (ps != "0") {
          d_.error(ln, col, fmt::format("Protocol {} can be used with pseudo port value 0 only.", name));
          return false;
        }
        lo = hi = 0;
        return true;
      }
    }
    std::string why;
    auto r = PortRange::parse(ps, '-', &why);
    if (!r) {
      d_.error(ln, col, fmt::format("cannot parse '{}' as a {} port", ps, proto::name(pr)));
      return false;
    }
    lo = r->lo;
    hi = r->hi;
    return true;
  }

  // Parses an address part: "a", "a/cidr" or (for ip types) "a-b". Expands into out.
  bool addr_part(int ln, int col, std::string_view v, Family fam, bool net, uint8_t netmask,
                 std::vector<std::pair<Addr, uint8_t>>& out) {
    std::string why;
    auto dash = v.find('-');
    if (dash != std::string_view::npos) {
      if (net) {
        d_.error(ln, col, fmt::format("'{}': ranges are not supported here; write CIDR prefixes", v));
        return false;
      }
      auto a = Addr::parse(v.substr(0, dash), &why), b = Addr::parse(v.substr(dash + 1), &why);
      if (!a || !b || a->fam != fam || b->fam != fam || !a->is_v4() || *b < *a) {
        d_.error(ln, col, why.empty() ? fmt::format("'{}' is not an IPv4 address range of the set's family", v) : why);
        return false;
      }
      if (b->host4() - a->host4() >= 65536) {
        d_.error(ln, col, fmt::format("'{}' expands to more than 65536 elements", v));
        return false;
      }
      for (uint64_t x = a->host4(); x <= b->host4(); ++x) out.push_back({Addr::v4(uint32_t(x)), 32});
      return true;
    }
    auto p = Prefix::parse(v, &why);
    if (!p) {
      d_.error(ln, col, why);
      return false;
    }
    if (p->addr.fam != fam) {
      d_.error(ln, col, fmt::format("'{}' does not fit the set's family inet{}", v, fam == Family::V4 ? "" : "6"));
      return false;
    }
    if (net) {
      if (p->len == 0) {
        d_.error(ln, col, "a /0 prefix is not allowed in a hash:net set");
        return false;
      }
      out.push_back({p->addr, p->len});
      return true;
    }
    unsigned host = p->addr.bits();
    if (netmask) {
      out.push_back({p->addr.masked(netmask), uint8_t(host)});
      return true;
    }
    if (p->len == host) {
      out.push_back({p->addr, uint8_t(host)});
      return true;
    }
    if (!p->addr.is_v4() || host - p->len > 16) {
      d_.error(ln, col, fmt::format("'{}' expands to more than 65536 elements", v));
      return false;
    }
    uint32_t base = p->addr.host4(), n = 1u << (host - p->len);
    for (uint32_t k = 0; k < n; ++k) out.push_back({Addr::v4(base + k), 32});
    return true;
  }

  void add(int ln, const std::vector<Word>& t, bool del) {
    if (t.size() < 3) return d_.error(ln, t[0].col, fmt::format("{} needs a set name and an element", t[0].s));
    IpSet* s = find(t[1].s);
    if (!s) return no_such_set(ln, t[1]);
    int col = t[2].col;
    const std::string& elem = t[2].s;
    SetEntry opts;
    for (size_t i = 3; i < t.size(); ++i) {
      const std::string& o = t[i].s;
      auto need = [&]() -> const std::string* {
        if (i + 1 >= t.size()) {
          d_.error(ln, t[i].col, fmt::format("option '{}' needs a value", o));
          return nullptr;
        }
        return &t[++i].s;
      };
      if (o == "nomatch") {
        if (s->type != SetType::HashNet && s->type != SetType::HashNetPort && s->type != SetType::HashIpPortNet)
          return d_.error(ln, t[i].col, "nomatch is only valid for hash:net types");
        opts.nomatch = true;
      } else if (o == "timeout") {
        auto v = need();
        if (!v) return;
        auto n = parse_uint(*v, 2147483);
        if (!n) return d_.error(ln, t[i].col, fmt::format("bad timeout '{}'", *v));
        if (!s->timeout_set) return d_.error(ln, t[i].col, "timeout given for a set created without timeout support");
        opts.timeout = uint32_t(*n);
        opts.timeout_set = true;
      } else if (o == "comment") {
        auto v = need();
        if (!v) return;
        if (!s->comment) return d_.error(ln, t[i].col, "comment given for a set created without comment support");
        if (v->size() > 255) return d_.error(ln, t[i].col, "comment longer than 255 bytes");
        opts.comment = *v;
      } else if (o == "packets" || o == "bytes") {
        auto v = need();
        if (!v) return;
        auto n = parse_uint(*v, UINT64_MAX);
        if (!n) return d_.error(ln, t[i].col, fmt::format("bad {} count '{}'", o, *v));
        (o == "packets" ? opts.packets : opts.bytes) = *n;
        opts.counters_set = true;
      } else if (o == "skbmark" || o == "skbprio" || o == "skbqueue") {
        auto v = need();
        if (!v) return;
        if (!s->skbinfo) return d_.error(ln, t[i].col, fmt::format("{} given for a set created without skbinfo support", o));
        if (o == "skbmark") {
          auto vm = parse_value_mask(*v);
          if (!vm) return d_.error(ln, t[i].col, fmt::format("bad skbmark '{}' (MARK or MARK/MASK)", *v));
          opts.skbmark = vm->value, opts.skbmark_mask = vm->mask, opts.skbmark_set = true;
        } else if (o == "skbprio") {
          // MAJOR:MINOR in hex, as tc writes class ids.
          auto colon = v->find(':');
          auto maj = colon == std::string::npos ? std::nullopt : parse_hex16(v->substr(0, colon));
          auto min = colon == std::string::npos ? std::nullopt : parse_hex16(v->substr(colon + 1));
          if (!maj || !min) return d_.error(ln, t[i].col, fmt::format("bad skbprio '{}' (MAJOR:MINOR, hex)", *v));
          opts.skbprio = (uint32_t(*maj) << 16) | *min, opts.skbprio_set = true;
        } else {
          auto q = parse_uint(*v, 65535);
          if (!q) return d_.error(ln, t[i].col, fmt::format("bad skbqueue '{}'", *v));
          opts.skbqueue = uint16_t(*q), opts.skbqueue_set = true;
        }
      } else {
        return d_.error(ln, t[i].col, fmt::format("unknown element option '{}'", o));
      }
    }
    if (s->type == SetType::ListSet) {
      if (del) std::erase(s->members, elem);
      else if (std::find(s->members.begin(), s->members.end(), elem) != s->members.end())
        d_.error(ln, col, fmt::format("'{}' is already in list:set {}", elem, s->name));
      else if (s->members.size() >= s->size) d_.error(ln, col, fmt::format("list:set {} is full (size {})", s->name, s->size));
      else s->members.push_back(elem);
      return;
    }
    if (s->type == SetType::BitmapPort) {
      uint8_t pr;
      uint16_t lo, hi;
      if (elem.find(':') != std::string::npos) return d_.error(ln, col, "bitmap:port elements are bare port numbers");
      if (!port_part(ln, col, elem, s->family, pr, lo, hi)) return;
      if (lo < s->range.lo || hi > s->range.hi)
        return d_.error(ln, col, fmt::format("'{}' is out of range {}-{}", elem, s->range.lo, s->range.hi));
      for (uint32_t p = lo; p <= hi; ++p) {
        SetEntry e = opts;
        e.key.port = uint16_t(p);
        insert(*s, std::move(e), del, ln, col);
      }
      return;
    }
    // Split "a,b,c" by dimension.
    std::vector<std::string_view> parts;
    std::string_view rest = elem;
    while (true) {
      auto comma = rest.find(',');
      parts.push_back(rest.substr(0, comma));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    if (parts.size() != s->dims())
      return d_.error(
          ln, col,
          fmt::format("'{}' has {} part(s); {} elements have {}", elem, parts.size(), set_type_name(s->type), s->dims()));
    bool net1 = s->type == SetType::HashNet || s->type == SetType::HashNetPort;
    std::vector<std::pair<Addr, uint8_t>> a1s, a3s;
    if (!addr_part(ln, col, parts[0], s->family, net1, s->netmask, a1s)) return;
    uint8_t pr = 0;
    uint16_t lo = 0, hi = 0;
    if (parts.size() >= 2 && !port_part(ln, col, parts[1], s->family, pr, lo, hi)) return;
    if (parts.size() == 3) {
      bool net3 = s->type == SetType::HashIpPortNet;
      if (!addr_part(ln, col, parts[2], s->family, net3, 0, a3s)) return;
    } else {
      a3s.push_back({Addr::any(s->family), 0});
    }
    if (a1s.size() * (uint64_t(hi) - lo + 1) * a3s.size() > 65536)
      return d_.error(ln, col, fmt::format("'{}' expands to more than 65536 elements", elem));
    for (auto& [a1, c1] : a1s)
      for (uint32_t p = lo; p <= hi; ++p)
        for (auto& [a3, c3] : a3s) {
          SetEntry e = opts;
          e.key.a1 = a1;
          e.key.cidr1 = c1;
          e.key.proto = pr;
          e.key.port = uint16_t(p);
          e.key.a3 = a3;
          e.key.cidr3 = c3;
          insert(*s, std::move(e), del, ln, col);
        }
  }

  void insert(IpSet& s, SetEntry e, bool del, int ln, int col) {
    auto it = s.index.find(e.key);
    if (del) {
      if (it == s.index.end()) return d_.error(ln, col, "element is not in the set, cannot delete it");
      uint32_t at = it->second;
      s.entries.erase(s.entries.begin() + at);
      s.index.erase(it);
      for (auto& kv : s.index)
        if (kv.second > at) --kv.second;
      return;
    }
    if (it != s.index.end()) return;  // ipset restore -exist semantics: re-adding is harmless
    if (s.entries.size() >= s.maxelem)
      return d_.error(ln, col, fmt::format("set {} is full: maxelem {} reached", s.name, s.maxelem));
    auto note = [](std::vector<uint8_t>& v, uint8_t c) {
      if (std::find(v.begin(), v.end(), c) == v.end()) {
        v.push_back(c);
        std::sort(v.rbegin(), v.rend());
      }
    };
    note(s.cidrs1, e.key.cidr1);
    note(s.cidrs3, e.key.cidr3);
    s.index.emplace(e.key, uint32_t(s.entries.size()));
    s.entries.push_back(std::move(e));
  }

  // A set that was never created is reported at the first line naming it: the lines after, which
  // name it too, only follow from that.
  void no_such_set(int ln, const Word& name) {
    if (missing_.insert(name.s).second) d_.error(ln, name.col, fmt::format("the set '{}' does not exist", name.s));
  }

  Diagnostics d_;
  IpSets& sets_;
  std::vector<IpSet> work_;
  std::set<std::string, std::less<>> missing_;
};

namespace {

// `ipset list` prints each set as Name:/Type:/Revision:/Header:/.../Members: lines and one member a
// line, with the same option words `ipset save` uses. Rewritten line for line into save's form
// (create at the Header: line, add per member, blanks elsewhere), so the one parser reads both and
// its errors keep the pasted file's line numbers.
bool is_ipset_list(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    size_t e = text.find('\n', i);
    std::string_view l = text.substr(i, e == std::string_view::npos ? std::string_view::npos : e - i);
    size_t b = l.find_first_not_of(" \t\r");
    if (b != std::string_view::npos && l[b] != '#') return l.substr(b).starts_with("Name: ");
    if (e == std::string_view::npos) break;
    i = e + 1;
  }
  return false;
}

// shift[i]: how many columns line i+1 of the rewrite has more than the pasted line (the "add NAME "
// or "create NAME TYPE " put in front), so errors point into what the user pasted.
std::string ipset_list_as_save(std::string_view text, std::vector<int>& shift) {
  std::string out, name, type;
  bool members = false;
  size_t i = 0;
  while (i <= text.size()) {
    size_t e = text.find('\n', i);
    std::string_view l = text.substr(i, e == std::string_view::npos ? std::string_view::npos : e - i);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    auto field = [&](std::string_view key) -> std::optional<std::string_view> {
      if (!l.starts_with(key)) return std::nullopt;
      std::string_view v = l.substr(key.size());
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      return v;
    };
    shift.push_back(0);
    if (auto v = field("Name:")) {
      name = std::string(*v), type.clear(), members = false;
    } else if (auto t = field("Type:")) {
      type = std::string(*t);
    } else if (auto h = field("Header:")) {
      std::string head = fmt::format("create {} {}{}", name, type, h->empty() ? "" : " ");
      shift.back() = int(head.size()) - int(l.size() - h->size());
      out += head + std::string(*h);
    } else if (field("Members:")) {
      members = true;
    } else if (members && !l.empty() && l.find_first_not_of(" \t") != std::string_view::npos) {
      std::string head = fmt::format("add {} ", name);
      shift.back() = int(head.size());
      out += head + std::string(l);
    } else if (!members && !l.empty() && l.find(':') == std::string_view::npos && l.front() != '#') {
      out += std::string(l);  // not a list line: the parser says what is wrong with it
    }
    if (e == std::string_view::npos) break;
    out += '\n';
    i = e + 1;
  }
  return out;
}

}  // namespace

void load_ipsets(std::string_view text, const std::string& file, IpSets& sets) {
  if (is_ipset_list(text)) {
    std::vector<int> shift;
    std::string save = ipset_list_as_save(text, shift);
    try {
      IpsetLoader(file, sets).run(save);
    } catch (const LoadError& e) {
      std::vector<Diagnostic> d = e.diagnostics();
      for (auto& x : d)
        if (x.line >= 1 && size_t(x.line) <= shift.size() && x.column > 0)
          x.column = std::max(1, x.column - shift[size_t(x.line - 1)]);
      throw LoadError(std::move(d));
    }
    return;
  }
  IpsetLoader(file, sets).run(text);
}

IpSets load_ipsets_file(const std::string& path) {
  IpSets s;
  load_ipsets(read_input_file(path), path, s);
  return s;
}

std::string element_text(const IpSet& s, const SetKey& k) {
  switch (s.type) {
    case SetType::BitmapPort: return std::to_string(k.port);
    case SetType::HashIp:
    case SetType::HashNet: return addr_str(k.a1, k.cidr1);
    case SetType::HashIpPort:
    case SetType::HashNetPort: return addr_str(k.a1, k.cidr1) + "," + port_str(k.proto, k.port);
    case SetType::HashIpPortIp:
    case SetType::HashIpPortNet: return addr_str(k.a1, k.cidr1) + "," + port_str(k.proto, k.port) + "," + addr_str(k.a3, k.cidr3);
    case SetType::ListSet: break;
  }
  return "";
}

std::string save_ipsets(const IpSets& sets) {
  std::string o;
  auto one = [&](const IpSet& s) {
    o += fmt::format("create {} {}", s.name, set_type_name(s.type));
    if (s.type == SetType::BitmapPort) {
      o += fmt::format(" range {}-{}", s.range.lo, s.range.hi);
    } else if (s.type == SetType::ListSet) {
      o += fmt::format(" size {}", s.size);
    } else {
      o += fmt::format(" family {} hashsize {} maxelem {}", s.family == Family::V4 ? "inet" : "inet6", s.hashsize, s.maxelem);
      if (s.netmask) o += fmt::format(" netmask {}", s.netmask);
    }
    if (s.timeout_set) o += fmt::format(" timeout {}", s.timeout);
    if (s.counters) o += " counters";
    if (s.comment) o += " comment";
    if (s.skbinfo) o += " skbinfo";
    if (s.forceadd) o += " forceadd";
    if (!s.bucketsize.empty()) o += " bucketsize " + s.bucketsize;
    if (!s.initval.empty()) o += " initval " + s.initval;
    o += '\n';
    if (s.type == SetType::ListSet) {
      for (auto& m : s.members) o += fmt::format("add {} {}\n", s.name, m);
      return;
    }
    for (auto& e : s.entries) {
      o += fmt::format("add {} {}", s.name, element_text(s, e.key));
      if (e.timeout_set) o += fmt::format(" timeout {}", e.timeout);
      if (e.counters_set || s.counters) o += fmt::format(" packets {} bytes {}", e.packets, e.bytes);
      if (!e.comment.empty()) {
        o += " comment \"";
        for (char c : e.comment) {
          if (c == '"' || c == '\\') o += '\\';
          o += c;
        }
        o += '"';
      }
      if (e.skbmark_set)
        o += e.skbmark_mask == 0xffffffff ? fmt::format(" skbmark 0x{:x}", e.skbmark)
                                          : fmt::format(" skbmark 0x{:x}/0x{:x}", e.skbmark, e.skbmark_mask);
      if (e.skbprio_set) o += fmt::format(" skbprio {:x}:{:x}", e.skbprio >> 16, e.skbprio & 0xffff);
      if (e.skbqueue_set) o += fmt::format(" skbqueue {}", e.skbqueue);
      if (e.nomatch) o += " nomatch";
      o += '\n';
    }
  };
  for (auto& s : sets.all())
    if (s.type != SetType::ListSet) one(s);
  for (auto& s : sets.all())
    if (s.type == SetType::ListSet) one(s);
  return o;
}

namespace {

// The (proto, port) pair a packet offers to a set, as ip_set_get_ip_port extracts it.
bool packet_port(const Packet& p, bool src, uint8_t& pr, uint16_t& port) {
  if (p.fragment) return false;
  pr = p.t.proto;
  if (proto::has_ports(pr)) port = src ? p.t.sport : p.t.dport;
  else if (pr == proto::ICMP || pr == proto::ICMPV6) port = p.t.dport;  // type << 8 | code
  else port = 0;
  return true;
}

bool is_net_dim1(SetType t) { return t == SetType::HashNet || t == SetType::HashNetPort; }

// The element key the packet gives for one (cidr1, cidr3) pair, as the kernel's kadt builds it.
// False when the packet has no such element (no port on a fragment, wrong family...).
bool packet_key(const IpSet& s, const Packet& p, SetDims d, uint8_t c1, uint8_t c3, SetKey& k) {
  if (s.type != SetType::BitmapPort && s.family != p.t.src.fam) return false;
  if (d.dims < s.dims()) return false;  // not enough direction flags for this set type
  auto pick = [&](unsigned dim) -> const Addr& { return (d.src_flags >> dim) & 1 ? p.t.src : p.t.dst; };
  k = SetKey{};
  if (s.type == SetType::BitmapPort) {
    uint8_t pr;
    if (!packet_port(p, d.src_flags & 1, pr, k.port) || !proto::has_ports(pr)) return false;
    return true;
  }
  if (s.dims() >= 2 && !packet_port(p, (d.src_flags >> 1) & 1, k.proto, k.port)) return false;
  const Addr& a1 = pick(0);
  k.a1 = s.netmask && s.type == SetType::HashIp ? a1.masked(s.netmask) : a1.masked(c1);
  k.cidr1 = c1;
  if (s.dims() == 3) {
    k.a3 = pick(2).masked(c3);
    k.cidr3 = c3;
  } else {
    k.a3 = Addr::any(s.family);
  }
  return true;
}

const SetChanges::PerSet* changes_of(const SetChanges* c, int set_index) {
  return c && size_t(set_index) < c->sets.size() ? &c->sets[size_t(set_index)] : nullptr;
}

// Prefix lengths to try, most specific first: the loaded elements' and the added ones'. No
// allocation: at most 129 lengths.
struct CidrList {
  std::array<uint8_t, 129> v;  // only when a SET target added prefixes: [0, n) used
  size_t n = 0;
  const uint8_t *b_, *e_;
  CidrList(const std::vector<uint8_t>& a, const std::vector<uint8_t>* b) {
    if (!b || b->empty()) {
      b_ = a.data(), e_ = a.data() + a.size();  // the loader keeps it most specific first, unique
      return;
    }
    for (uint8_t c : a) v[n++] = c;
    for (uint8_t c : *b)
      if (std::find(v.begin(), v.begin() + long(n), c) == v.begin() + long(n)) v[n++] = c;
    std::sort(v.begin(), v.begin() + long(n), std::greater<>());
    b_ = v.data(), e_ = v.data() + n;
  }
  const uint8_t* begin() const { return b_; }
  const uint8_t* end() const { return e_; }
};

// One element looked up: an added/deleted one first (a deletion hides the loaded element).
enum class Found { No, Yes, NoMatch };
Found find_key(const IpSet& s, const SetChanges::PerSet* ch, const SetKey& k, uint64_t now, const SetEntry** entry) {
  if (ch) {
    auto it = ch->keys.find(k);
    if (it != ch->keys.end()) {
      if (!it->second.present || it->second.expires_ns <= now) return Found::No;
      if (entry) *entry = nullptr;
      return Found::Yes;
    }
  }
  auto it = s.index.find(k);
  if (it == s.index.end()) return Found::No;
  const SetEntry& e = s.entries[it->second];
  if (entry) *entry = &e;
  return e.nomatch ? Found::NoMatch : Found::Yes;
}

bool test_one(const IpSet& s, const SetChanges::PerSet* ch, const Packet& p, SetDims d, bool return_nomatch, uint64_t* lookups,
              const SetEntry** entry) {
  SetKey k;
  if (s.type == SetType::BitmapPort) {
    if (!packet_key(s, p, d, 0, 0, k)) return false;
    if (lookups) ++*lookups;
    return find_key(s, ch, k, p.ts_ns, entry) == Found::Yes;
  }
  // Most specific prefix first: the first element found decides (nomatch included).
  CidrList l1(s.cidrs1, ch ? &ch->cidrs1 : nullptr), l3(s.cidrs3, ch ? &ch->cidrs3 : nullptr);
  for (uint8_t c1 : l1)
    for (uint8_t c3 : l3) {
      if (!packet_key(s, p, d, c1, c3, k)) return false;
      if (lookups) ++*lookups;
      Found f = find_key(s, ch, k, p.ts_ns, entry);
      if (f != Found::No) return f == Found::Yes || return_nomatch;
    }
  return false;
}

// The key kadt adds or deletes: host prefixes for address dimensions, the most specific prefix in
// use for a net dimension (IP_SET_INIT_CIDR of the set's first net), the host one when it has none.
bool change_key(const IpSet& s, const SetChanges::PerSet& ch, const Packet& p, SetDims d, SetKey& k) {
  uint8_t host = uint8_t(s.family == Family::V4 ? 32 : 128);
  auto first = [&](const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
    uint8_t c = 0;
    for (uint8_t x : a) c = std::max(c, x);
    for (uint8_t x : b) c = std::max(c, x);
    return c ? c : host;
  };
  uint8_t c1 = is_net_dim1(s.type) ? first(s.cidrs1, ch.cidrs1) : host;
  uint8_t c3 = s.type == SetType::HashIpPortNet ? first(s.cidrs3, ch.cidrs3) : s.dims() == 3 ? host : 0;
  return packet_key(s, p, d, s.type == SetType::BitmapPort ? 0 : c1, c3, k);
}

void note_cidr(std::vector<uint8_t>& v, uint8_t c) {
  if (std::find(v.begin(), v.end(), c) == v.end()) v.push_back(c);
}

SetChanges::PerSet& per_set(SetChanges& c, const IpSets& sets, int set_index) {
  if (c.sets.size() < sets.size()) c.sets.resize(sets.size());
  return c.sets[size_t(set_index)];
}

// list_set_kadd / kdel: the members in order until one takes the change; else what the first tried.
template <typename Op>
SetChange first_member(const IpSet& list, Op op) {
  SetChange first;
  for (int m : list.member_index) {
    if (m < 0) continue;
    SetChange c = op(m);
    if (c.done) return c;
    if (first.set_index < 0) first = c;
  }
  return first;
}

SetChange add_one(const IpSets& sets, SetChanges& changes, int idx, const Packet& p, SetDims d, std::optional<uint32_t> timeout,
                  bool exist) {
  const IpSet& s = sets.at(idx);
  if (s.type == SetType::ListSet) return first_member(s, [&](int m) { return add_one(sets, changes, m, p, d, timeout, exist); });
  SetChanges::PerSet& ch = per_set(changes, sets, idx);
  SetChange r{idx, {}, false, false};
  if (!change_key(s, ch, p, d, r.key)) return r;
  const SetKey& k = r.key;
  const uint64_t now = p.ts_ns;
  bool live = find_key(s, &ch, k, now, nullptr) != Found::No;
  // A live element stays as it is (-IPSET_ERR_EXIST) unless --exist, which re-adds it with a fresh
  // timeout; a nomatch one counts as present here too.
  r.present = live;
  if (live && !exist) return r;
  bool loaded = s.index.contains(k);
  auto it = ch.keys.find(k);
  bool counted = it != ch.keys.end() ? it->second.present && it->second.expires_ns > now : loaded;
  if (!counted && !s.forceadd && int64_t(s.entries.size()) + ch.count_delta >= int64_t(s.maxelem)) return r;
  uint32_t t = timeout ? *timeout : s.timeout;
  SetChanges::Change c{true, s.timeout_set && t ? now + uint64_t(t) * 1'000'000'000ull : UINT64_MAX};
  if (!counted) ++ch.count_delta;
  ch.keys.insert_or_assign(k, c);
  if (s.type != SetType::BitmapPort) note_cidr(ch.cidrs1, k.cidr1), note_cidr(ch.cidrs3, k.cidr3);
  r.done = true;
  return r;
}

SetChange del_one(const IpSets& sets, SetChanges& changes, int idx, const Packet& p, SetDims d) {
  const IpSet& s = sets.at(idx);
  if (s.type == SetType::ListSet) return first_member(s, [&](int m) { return del_one(sets, changes, m, p, d); });
  SetChanges::PerSet& ch = per_set(changes, sets, idx);
  SetChange r{idx, {}, false, false};
  if (!change_key(s, ch, p, d, r.key)) return r;
  if (find_key(s, &ch, r.key, p.ts_ns, nullptr) == Found::No) return r;
  r.present = true;
  --ch.count_delta;
  ch.keys.insert_or_assign(r.key, SetChanges::Change{false, 0});
  r.done = true;
  return r;
}

}  // namespace

bool ipset_test(const IpSets& sets, const SetChanges* changes, int set_index, const Packet& p, SetDims d, bool return_nomatch,
                uint64_t* lookups, const SetEntry** entry) {
  if (set_index < 0 || size_t(set_index) >= sets.size()) return false;
  const IpSet& s = sets.at(set_index);
  if (s.type != SetType::ListSet) return test_one(s, changes_of(changes, set_index), p, d, return_nomatch, lookups, entry);
  for (int m : s.member_index)
    if (m >= 0 && test_one(sets.at(m), changes_of(changes, m), p, d, return_nomatch, lookups, entry)) return true;
  return false;
}

SetChange ipset_add(const IpSets& sets, SetChanges& changes, int set_index, const Packet& p, SetDims d,
                    std::optional<uint32_t> timeout, bool exist) {
  if (set_index < 0 || size_t(set_index) >= sets.size()) return {};
  return add_one(sets, changes, set_index, p, d, timeout, exist);
}

SetChange ipset_del(const IpSets& sets, SetChanges& changes, int set_index, const Packet& p, SetDims d) {
  if (set_index < 0 || size_t(set_index) >= sets.size()) return {};
  return del_one(sets, changes, set_index, p, d);
}

}  // namespace svcpath::nf
