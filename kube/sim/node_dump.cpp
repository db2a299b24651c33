// Readers of what a node prints about itself (see node_dump.hpp). iproute2's JSON field names are
// those of ip/ipaddress.c, ip/iproute.c and ip/iprule.c; conntrack -L's line is conntrack-tools'
// snprintf of nf_conntrack (src/conntrack.c, libnetfilter_conntrack's output/default formatter).
#include "kube/sim/node_dump.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/diag.hpp"

namespace svcpath::sim {

namespace {

using json = nlohmann::json;

// line:col of a byte offset, for JSON syntax errors.
std::pair<int, int> position(std::string_view text, size_t at) {
  at = std::min(at, text.size());
  int line = 1, col = 1;
  for (size_t i = 0; i < at; ++i) {
    if (text[i] == '\n') ++line, col = 1;
    else ++col;
  }
  return {line, col};
}

// The top-level array every `ip -j` command prints; an empty output (a tool printing nothing for an
// empty namespace) is an empty array.
json parse_array(std::string_view text, Diagnostics& d) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return json::array();
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    auto [l, c] = position(text, e.byte > 0 ? e.byte - 1 : 0);
    std::string what = e.what();
    auto p = what.find("parse error");
    d.error(l, c, fmt::format("not JSON: {}", p == std::string::npos ? what : what.substr(p)));
    d.throw_if_errors();
  }
  if (!j.is_array()) {
    d.error(1, 1, "expected a JSON array (the output of ip -j)");
    d.throw_if_errors();
  }
  return j;
}

// JSON values are found by path; errors name the path as the position within the file.
struct JsonErrors {
  Diagnostics& d;
  void at(const std::string& path, std::string msg) { d.error(0, 0, fmt::format("{}: {}", path, msg)); }
  const std::string* str(const json& o, const char* key, const std::string& path, bool required) {
    auto it = o.find(key);
    if (it == o.end()) {
      if (required) at(path, fmt::format("missing \"{}\"", key));
      return nullptr;
    }
    if (!it->is_string()) {
      at(path + "." + key, "expected a string");
      return nullptr;
    }
    return it->get_ptr<const std::string*>();
  }
  std::optional<uint64_t> num(const json& o, const char* key, const std::string& path, uint64_t max) {
    auto it = o.find(key);
    if (it == o.end()) return std::nullopt;
    if (it->is_number_unsigned() && it->get<uint64_t>() <= max) return it->get<uint64_t>();
    if (it->is_string())
      if (auto v = parse_uint(it->get<std::string>(), max, true)) return v;
    at(path + "." + key, fmt::format("expected a number up to {}", max));
    return std::nullopt;
  }
};

// Route and rule types by name; ip -N prints RTN_* numbers instead (rtnl_rtntype_n2a).
std::string rtn_name(const std::string& s) {
  static constexpr const char* kNames[] = {"unspec",    "unicast",     "local",    "broadcast", "anycast", "multicast",
                                           "blackhole", "unreachable", "prohibit", "throw",     "nat",     "xresolve"};
  if (auto v = parse_uint(s, std::size(kNames) - 1)) return kNames[*v];
  return s;
}

}  // namespace

void read_ip_links(std::string_view text, const std::string& origin, nf::Node& node) {
  Diagnostics d(origin);
  json arr = parse_array(text, d);
  JsonErrors je{d};
  for (size_t i = 0; i < arr.size(); ++i) {
    const json& o = arr[i];
    std::string path = fmt::format("[{}]", i);
    if (!o.is_object()) {
      je.at(path, "expected an object per interface");
      continue;
    }
    const std::string* name = je.str(o, "ifname", path, true);
    if (!name) continue;
    if (name->empty()) {
      je.at(path + ".ifname", "empty interface name");
      continue;
    }
    int16_t idx = node.ensure(*name);
    if (auto it = o.find("flags"); it != o.end() && it->is_array())
      for (auto& f : *it)
        if (f == "LOOPBACK") node.iface(idx).loopback = true;
    if (const std::string* g = je.str(o, "group", path, false)) {
      if (*g == "default") node.iface(idx).group = 0;
      else if (auto v = parse_uint(*g, 0xffffffffu)) node.iface(idx).group = uint32_t(*v);
      else
        je.at(path + ".group",
              fmt::format("device group '{}' is a name from /etc/iproute2/group; snapshot with ip -N (numeric)", *g));
    }
    if (const std::string* m = je.str(o, "master", path, false)) {
      int16_t mi = node.ensure(*m);
      node.iface(idx).master = mi;
      node.iface(mi).bridge = true;  // only bridges (and bonds, treated alike) are masters of ports
    }
    if (auto li = o.find("linkinfo"); li != o.end() && li->is_object())
      if (const std::string* k = je.str(*li, "info_kind", path + ".linkinfo", false)) {
        node.iface(idx).kind = *k;
        if (*k == "bridge") node.iface(idx).bridge = true;
      }
    auto ai = o.find("addr_info");
    if (ai == o.end()) continue;
    if (!ai->is_array()) {
      je.at(path + ".addr_info", "expected an array");
      continue;
    }
    for (size_t k = 0; k < ai->size(); ++k) {
      const json& a = (*ai)[k];
      std::string ap = fmt::format("{}.addr_info[{}]", path, k);
      if (!a.is_object()) {
        je.at(ap, "expected an object");
        continue;
      }
      const std::string* local = je.str(a, "local", ap, true);
      if (!local) continue;
      std::string why;
      auto addr = Addr::parse(*local, &why);
      if (!addr) {
        je.at(ap + ".local", why);
        continue;
      }
      auto len = je.num(a, "prefixlen", ap, addr->bits());
      if (!len) {
        if (!a.contains("prefixlen")) je.at(ap, "missing \"prefixlen\"");
        continue;
      }
      auto& have = node.iface(idx).addrs;
      if (std::none_of(have.begin(), have.end(), [&](const nf::IfAddr& x) { return x.addr == *addr && x.len == *len; }))
        node.add_address(idx, {*addr, uint8_t(*len)});
    }
  }
  d.throw_if_errors();
}

void read_ip_routes(std::string_view text, const std::string& origin, nf::Node& node, Notes& notes) {
  Diagnostics d(origin);
  json arr = parse_array(text, d);
  JsonErrors je{d};
  for (size_t i = 0; i < arr.size(); ++i) {
    const json& o = arr[i];
    std::string path = fmt::format("[{}]", i);
    if (!o.is_object()) {
      je.at(path, "expected an object per route");
      continue;
    }
    nf::Route r;
    std::string type = "unicast";
    if (const std::string* t = je.str(o, "type", path, false)) type = rtn_name(*t);
    if (type == "unicast") r.type = nf::RouteType::Unicast;
    else if (type == "local") r.type = nf::RouteType::Local;
    else if (type == "broadcast") r.type = nf::RouteType::Broadcast;
    else if (type == "blackhole") r.type = nf::RouteType::Blackhole;
    else if (type == "unreachable") r.type = nf::RouteType::Unreachable;
    else if (type == "prohibit") r.type = nf::RouteType::Prohibit;
    else if (type == "multicast" || type == "throw" || type == "anycast" || type == "nat" || type == "xresolve") {
      const std::string* dst = je.str(o, "dst", path, false);
      // The kernel adds ff00::/8 to the local table for every IPv6 device: nothing to say about it.
      if (type == "multicast" && dst && *dst == "ff00::/8") continue;
      notes.push_back(fmt::format("{}: {}: {} route {} skipped (not modelled)", origin, path, type, dst ? *dst : "?"));
      continue;
    } else {
      je.at(path + ".type", fmt::format("unknown route type '{}'", type));
      continue;
    }
    const std::string* dst = je.str(o, "dst", path, true);
    if (!dst) continue;
    std::string why;
    if (*dst == "default") {
      // ip prints "default" for 0/0; the family comes from a gateway or source, else -4.
      const std::string* gw = je.str(o, "gateway", path, false);
      bool v6 = gw && gw->find(':') != std::string::npos;
      if (const std::string* ps = je.str(o, "prefsrc", path, false); ps && ps->find(':') != std::string::npos) v6 = true;
      if (auto it = o.find("pref"); it != o.end()) v6 = true;  // IPv6 routes carry a router preference
      r.dst = Prefix{Addr::any(v6 ? Family::V6 : Family::V4), 0};
    } else if (auto p = Prefix::parse(*dst, &why)) {
      r.dst = *p;
    } else if (auto a = Addr::parse(*dst, &why)) {
      r.dst = Prefix::host(*a);
    } else {
      je.at(path + ".dst", fmt::format("'{}' is not a prefix", *dst));
      continue;
    }
    if (const std::string* gw = je.str(o, "gateway", path, false)) {
      auto a = Addr::parse(*gw, &why);
      if (!a || a->fam != r.dst.addr.fam) {
        je.at(path + ".gateway", fmt::format("'{}' is not an address of the route's family", *gw));
        continue;
      }
      r.via = *a;
    }
    if (const std::string* ps = je.str(o, "prefsrc", path, false)) {
      auto a = Addr::parse(*ps, &why);
      if (!a) {
        je.at(path + ".prefsrc", why);
        continue;
      }
      r.src = *a;
    }
    if (const std::string* dev = je.str(o, "dev", path, false)) r.oif = node.ensure(*dev);
    if (auto m = je.num(o, "metric", path, 0xffffffffu)) r.metric = uint32_t(*m);
    if (const std::string* t = je.str(o, "table", path, false)) {
      auto id = nf::parse_route_table(*t);
      if (!id) {
        je.at(path + ".table", fmt::format("table '{}' is a name from /etc/iproute2/rt_tables; snapshot with ip -N", *t));
        continue;
      }
      r.table = *id;
    }
    if (o.contains("nexthops") || o.contains("multipath"))
      notes.push_back(fmt::format("{}: {}: multipath route {}: only the first hop is kept", origin, path, *dst));
    if (r.oif == kNoIf && r.type == nf::RouteType::Unicast && !r.via) {
      je.at(path, "a unicast route with neither dev nor gateway");
      continue;
    }
    node.add_route(r);
  }
  d.throw_if_errors();
}

void read_ip_rules(std::string_view text, const std::string& origin, Family fam, nf::Node& node, Notes& notes) {
  Diagnostics d(origin);
  json arr = parse_array(text, d);
  JsonErrors je{d};
  static constexpr std::string_view kKnown[] = {"priority",     "not",          "src",    "srclen", "dst",
                                                "dstlen",       "fwmark",       "fwmask", "iif",    "oif",
                                                "iif_detached", "oif_detached", "table",  "action", "protocol"};
  for (size_t i = 0; i < arr.size(); ++i) {
    const json& o = arr[i];
    std::string path = fmt::format("[{}]", i);
    if (!o.is_object()) {
      je.at(path, "expected an object per rule");
      continue;
    }
    std::string unknown;
    for (auto it = o.begin(); it != o.end(); ++it)
      if (std::find(std::begin(kKnown), std::end(kKnown), it.key()) == std::end(kKnown))
        unknown += (unknown.empty() ? "" : ", ") + it.key();
    nf::RouteRule r;
    r.family = fam;
    auto prio = je.num(o, "priority", path, 0xffffffffu);
    if (!prio) {
      if (!o.contains("priority")) je.at(path, "missing \"priority\"");
      continue;
    }
    r.priority = uint32_t(*prio);
    if (!unknown.empty()) {
      notes.push_back(fmt::format("{}: {}: rule {} skipped: {} not modelled", origin, path, r.priority, unknown));
      continue;
    }
    r.invert = o.contains("not");
    bool bad = false;
    auto prefix = [&](const char* key, const char* lenkey, Prefix& p, bool& set) {
      const std::string* s = je.str(o, key, path, false);
      if (!s || *s == "all") return;
      std::string why;
      auto a = Addr::parse(*s, &why);
      if (!a || a->fam != fam) {
        je.at(path + "." + key, fmt::format("'{}' is not an IPv{} address", *s, fam == Family::V4 ? 4 : 6));
        bad = true;
        return;
      }
      auto len = je.num(o, lenkey, path, a->bits());
      p = Prefix{a->masked(len ? unsigned(*len) : a->bits()), uint8_t(len ? *len : a->bits())};
      set = true;
    };
    prefix("src", "srclen", r.src, r.src_set);
    prefix("dst", "dstlen", r.dst, r.dst_set);
    if (auto m = je.num(o, "fwmark", path, 0xffffffffu)) {
      r.fwmark = uint32_t(*m);
      r.fwmask = 0xffffffffu;  // a mark without a mask matches all 32 bits
      if (auto k = je.num(o, "fwmask", path, 0xffffffffu)) r.fwmask = uint32_t(*k);
    }
    if (const std::string* s = je.str(o, "iif", path, false)) r.iif = *s;
    if (const std::string* s = je.str(o, "oif", path, false)) r.oif = *s;
    if (const std::string* act = je.str(o, "action", path, false)) {
      std::string a_name = rtn_name(*act);
      const std::string* a = &a_name;
      if (*a == "blackhole") r.action = nf::RouteRule::Action::Blackhole;
      else if (*a == "unreachable") r.action = nf::RouteRule::Action::Unreachable;
      else if (*a == "prohibit") r.action = nf::RouteRule::Action::Prohibit;
      else {
        notes.push_back(fmt::format("{}: {}: rule {} skipped: action {} not modelled", origin, path, r.priority, *a));
        continue;
      }
    } else if (const std::string* t = je.str(o, "table", path, false)) {
      auto id = nf::parse_route_table(*t);
      if (!id) {
        je.at(path + ".table", fmt::format("table '{}' is a name from /etc/iproute2/rt_tables; snapshot with ip -N", *t));
        continue;
      }
      r.table = *id;
    } else {
      notes.push_back(fmt::format("{}: {}: rule {} skipped: no table and no action", origin, path, r.priority));
      continue;
    }
    if (!bad) node.rules.push_back(r);
  }
  d.throw_if_errors();
  // Node::lookup walks them in order: by priority, as the kernel keeps them.
  std::stable_sort(node.rules.begin(), node.rules.end(), [](auto& a, auto& b) { return a.priority < b.priority; });
}

namespace {
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Lines of a text with their 1-based numbers.
template <class F>
void for_lines(std::string_view text, F&& f) {
  int ln = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    ++ln;
    f(ln, line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}
}  // namespace

// ip maddr: "N:\tifname" opens an interface; indented "link|inet|inet6 ADDR [users N] [static]"
// lines are its groups (ip/ipmaddr.c print_maddr).
void read_ip_maddr(std::string_view text, const std::string& origin, nf::Node& node) {
  Diagnostics d(origin);
  int16_t cur = kNoIf;
  for_lines(text, [&](int ln, std::string_view line) {
    if (trim(line).empty()) return;
    if (line[0] != ' ' && line[0] != '\t') {
      auto colon = line.find(':');
      if (colon == std::string_view::npos || !parse_uint(line.substr(0, colon), 0xffffffffu)) {
        d.error(ln, 1, "expected 'INDEX:\\tIFNAME' opening an interface");
        cur = kNoIf;
        return;
      }
      std::string_view name = trim(line.substr(colon + 1));
      if (name.empty()) {
        d.error(ln, int(colon) + 2, "missing interface name");
        cur = kNoIf;
        return;
      }
      cur = node.ensure(std::string(name));
      return;
    }
    std::string_view body = trim(line);
    int col = int(body.data() - line.data()) + 1;
    auto sp = body.find_first_of(" \t");
    std::string_view fam = body.substr(0, sp);
    if (fam == "link") return;
    if (fam != "inet" && fam != "inet6") {
      d.error(ln, col, fmt::format("expected link, inet or inet6, not '{}'", fam));
      return;
    }
    if (cur == kNoIf) {
      d.error(ln, col, "a group before any interface line");
      return;
    }
    std::string_view rest = sp == std::string_view::npos ? std::string_view() : trim(body.substr(sp));
    std::string_view word = rest.substr(0, rest.find_first_of(" \t"));
    std::string why;
    auto a = Addr::parse(word, &why);
    int wcol = int(rest.data() - line.data()) + 1;
    if (!a || a->is_v4() != (fam == "inet")) {
      d.error(ln, wcol, fmt::format("'{}' is not an {} address", word, fam == "inet" ? "IPv4" : "IPv6"));
      return;
    }
    auto& g = node.iface(cur).mcast_groups;
    if (std::find(g.begin(), g.end(), *a) == g.end()) g.push_back(*a);
  });
  d.throw_if_errors();
}

void read_sysctl_all(std::string_view text, const std::string& origin, nf::Sysctls& sys) {
  Diagnostics d(origin);
  for_lines(text, [&](int ln, std::string_view line) {
    if (trim(line).empty()) return;
    auto eq = line.find(" = ");
    size_t vlen = 3;
    if (eq == std::string_view::npos) {
      // An empty value prints as "key = " and loses its trailing blank to some pipes.
      if (line.ends_with(" =")) eq = line.size() - 2, vlen = 2;
      else {
        d.error(ln, 1, "expected 'key = value' (sysctl -a)");
        return;
      }
    }
    std::string_view key = trim(line.substr(0, eq)), value = trim(line.substr(eq + vlen));
    std::string err = sys.set(key, value);
    if (err.empty()) return;
    if (err.starts_with("unknown sysctl")) sys.other[std::string(key)] = std::string(value);  // recorded, not modelled
    else d.error(ln, int(eq + vlen) + 1, err);
  });
  d.throw_if_errors();
}

namespace {
std::optional<uint8_t> proto_number(std::string_view name) {
  if (name == "tcp") return proto::TCP;
  if (name == "udp") return proto::UDP;
  if (name == "icmp") return proto::ICMP;
  if (name == "icmpv6") return proto::ICMPV6;
  if (name == "sctp") return uint8_t(132);
  if (name == "udplite") return uint8_t(136);
  if (name == "dccp") return uint8_t(33);
  if (name == "gre") return uint8_t(47);
  if (name == "unknown") return uint8_t(0);
  return std::nullopt;
}

std::optional<nf::TcpState> tcp_state(std::string_view s) {
  for (int i = 0; i <= int(nf::TcpState::SynSent2); ++i)
    if (nf::tcp_state_name(nf::TcpState(i)) == s) return nf::TcpState(i);
  if (s == "SYN_SENT2") return nf::TcpState::SynSent2;
  return std::nullopt;
}
}  // namespace

// A line: [l3name l3num] l4name l4num timeout [STATE] src= dst= (sport= dport= | type= code= id=)
// [UNREPLIED] src= dst= ... [ASSURED] [mark=N] [secctx=..] [zone=N] [use=N], tokens separated by
// blanks (conntrack-tools pads the names with spaces).
std::vector<nf::CtEntry> read_conntrack_list(std::string_view text, const std::string& origin) {
  Diagnostics d(origin);
  std::vector<nf::CtEntry> out;
  for_lines(text, [&](int ln, std::string_view line) {
    if (trim(line).empty() || line.starts_with("conntrack v")) return;  // the summary line, if stderr was kept
    std::vector<std::pair<std::string_view, int>> w;                    // word, column
    for (size_t i = 0; i < line.size();) {
      if (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
        ++i;
        continue;
      }
      size_t j = line.find_first_of(" \t\r", i);
      if (j == std::string_view::npos) j = line.size();
      w.push_back({line.substr(i, j - i), int(i) + 1});
      i = j;
    }
    size_t k = 0;
    auto err = [&](size_t at, std::string msg) {
      d.error(ln, at < w.size() ? w[at].second : int(line.size()) + 1, std::move(msg));
    };
    std::optional<Family> fam;
    if (k < w.size() && (w[k].first == "ipv4" || w[k].first == "ipv6")) {
      fam = w[k].first == "ipv4" ? Family::V4 : Family::V6;
      k += 2;  // the name and the l3 protocol number
    }
    if (k + 2 >= w.size()) {
      err(k, "expected 'PROTO NUMBER TIMEOUT src=...' (conntrack -L)");
      return;
    }
    nf::CtEntry e;
    auto p = proto_number(w[k].first);
    auto pn = parse_uint(w[k + 1].first, 255);
    if (!pn || (p && *p != 0 && *p != *pn)) {
      err(k + 1, fmt::format("'{}' is not the protocol number of {}", w[k + 1].first, w[k].first));
      return;
    }
    if (!p) {
      err(k, fmt::format("unknown protocol '{}'", w[k].first));
      return;
    }
    uint8_t pr = uint8_t(*pn);
    k += 2;
    auto timeout = parse_uint(w[k].first, 0xffffffffu);
    if (!timeout) {
      err(k, fmt::format("'{}' is not a timeout in seconds", w[k].first));
      return;
    }
    e.expires_ns = (*timeout) * 1000000000ull;
    ++k;
    if (k < w.size() && w[k].first.find('=') == std::string_view::npos && !w[k].first.starts_with("[")) {
      if (pr == proto::TCP) {
        auto st = tcp_state(w[k].first);
        if (!st) {
          err(k, fmt::format("unknown TCP state '{}'", w[k].first));
          return;
        }
        e.tcp = *st;
      }
      ++k;  // other protocols' states (SCTP, DCCP) are not modelled
    }
    // Two tuples, then flags and key=value attributes.
    FiveTuple t[2];
    int tuple = -1;
    bool seen[2][4] = {};  // src dst sport/type dport/code
    bool unreplied = false;
    for (; k < w.size(); ++k) {
      std::string_view word = w[k].first;
      if (word == "[UNREPLIED]") {
        unreplied = true;
        continue;
      }
      if (word == "[ASSURED]") {
        e.status |= nf::ctstatus::ASSURED;
        continue;
      }
      if (word.starts_with("[")) continue;  // [OFFLOAD], [HW_OFFLOAD]: no effect on the path
      auto eq = word.find('=');
      if (eq == std::string_view::npos) {
        err(k, fmt::format("unexpected '{}'", word));
        return;
      }
      std::string_view key = word.substr(0, eq), val = word.substr(eq + 1);
      if (key == "src") {
        if (++tuple > 1) {
          err(k, "a third tuple");
          return;
        }
      }
      auto addr = [&](Addr& a) {
        std::string why;
        auto v = Addr::parse(val, &why);
        if (!v || (fam && v->fam != *fam)) {
          err(k, fmt::format("'{}' is not an address{}", val, why.empty() ? "" : ": " + why));
          return false;
        }
        a = *v;
        return true;
      };
      auto num = [&](uint64_t max) -> std::optional<uint64_t> {
        auto v = parse_uint(val, max, true);
        if (!v) err(k, fmt::format("'{}' is not a number up to {} for {}", val, max, key));
        return v;
      };
      bool tkey = key == "src" || key == "dst" || key == "sport" || key == "dport" || key == "type" || key == "code" ||
                  key == "id" || key == "srckey" || key == "dstkey";
      if (tkey && tuple < 0) {
        err(k, fmt::format("'{}' before the first src=", word));
        return;
      }
      FiveTuple& cur = t[tuple < 0 ? 0 : tuple];
      if (key == "src") {
        if (!addr(cur.src)) return;
        seen[tuple][0] = true;
      } else if (key == "dst") {
        if (!addr(cur.dst)) return;
        seen[tuple][1] = true;
      } else if (key == "sport" || key == "id") {
        auto v = num(0xffff);
        if (!v) return;
        cur.sport = uint16_t(*v);
      } else if (key == "dport") {
        auto v = num(0xffff);
        if (!v) return;
        cur.dport = uint16_t(*v);
      } else if (key == "type") {
        auto v = num(0xff);
        if (!v) return;
        cur.dport = uint16_t(*v << 8 | (cur.dport & 0xff));
      } else if (key == "code") {
        auto v = num(0xff);
        if (!v) return;
        cur.dport = uint16_t((cur.dport & 0xff00) | *v);
      } else if (key == "mark") {
        auto v = num(0xffffffffu);
        if (!v) return;
        e.mark = uint32_t(*v);
      } else if (key == "zone") {
        auto v = num(0xffff);
        if (!v) return;
        e.zone = uint16_t(*v);
      } else if (key == "use" || key == "secctx" || key == "labels" || key == "delta-time" || key == "packets" ||
                 key == "bytes" || key == "srckey" || key == "dstkey" || key == "timestamp") {
        // accounting and labels: recorded by the kernel, nothing on the path reads them here
      } else {
        err(k, fmt::format("unknown attribute '{}'", key));
        return;
      }
    }
    if (tuple != 1 || !seen[0][0] || !seen[0][1] || !seen[1][0] || !seen[1][1]) {
      err(w.size(), "expected two tuples (src= dst= ... src= dst= ...)");
      return;
    }
    if (t[0].src.fam != t[0].dst.fam || t[1].src.fam != t[0].src.fam || t[1].dst.fam != t[0].src.fam) {
      err(w.size(), "the tuples mix address families");
      return;
    }
    t[0].proto = t[1].proto = pr;
    e.orig = t[0];
    e.reply = t[1];
    if (!unreplied) e.status |= nf::ctstatus::SEEN_REPLY;
    e.status |= nf::ctstatus::CONFIRMED;
    out.push_back(e);
  });
  d.throw_if_errors();
  return out;
}

}  // namespace svcpath::sim
