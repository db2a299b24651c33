#include "ipvs/ipvsadm.hpp"

#include <fstream>
#include <span>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "core/diag.hpp"

namespace svcpath::ipvs {

namespace {

struct Word {
  std::string s;
  int col;
};

std::vector<Word> words(std::string_view line) {
  std::vector<Word> w;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    if (j > i) w.push_back({std::string(line.substr(i, j - i)), int(i) + 1});
    i = j;
  }
  return w;
}

// netbase's /etc/services, as generated into services_db.inc.
struct ServiceName {
  const char* name;
  uint16_t port;
  const char* proto;
};
constexpr ServiceName kServices[] = {
#include "ipvs/services_db.inc"
};

// ipvsadm's service_to_port / port_to_service (1.29) ask for the service's own protocol ("tcp",
// "udp", "sctp"); -f sets the protocol to TCP, so a firewall-mark service's ports are TCP names.
const char* db_proto(uint8_t p) { return p == proto::UDP ? "udp" : p == proto::SCTP ? "sctp" : "tcp"; }

// The width ipvsadm -L cuts an IPv4 address:port to (svc_name[33] less "TCP  ", dname[28]).
constexpr size_t kListCut = 28;

bool host_chars(std::string_view s) {
  if (s.empty()) return false;
  bool letter = false;
  for (char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) letter = true;
    else if (!(c >= '0' && c <= '9') && c != '.' && c != '-' && c != '_') return false;
  }
  return letter;
}

// A problem in an address:port word, at `off` characters into it.
struct EpError {
  std::string why;
  int off = 0;
};

// The address part. Numeric only, as svcpath never looks names up; the loopback names that
// /etc/hosts gives 127.0.0.1 and ::1 on Debian and RHEL nodes (what ipvsadm -L prints for a
// NodePort on 127.0.0.1) are read as those addresses.
std::optional<Addr> address(std::string_view s, bool v6, bool listing, EpError& e) {
  std::string why;
  if (auto a = Addr::parse(s, &why)) return a;
  if (!host_chars(s)) {
    e.why = why;
    return std::nullopt;
  }
  static constexpr std::string_view v4_loop[] = {"localhost", "localhost.localdomain", "localhost4", "localhost4.localdomain4"};
  static constexpr std::string_view v6_loop[] = {"localhost", "ip6-localhost", "ip6-loopback", "localhost6",
                                                 "localhost6.localdomain6"};
  for (auto n : v6 ? std::span<const std::string_view>(v6_loop) : std::span<const std::string_view>(v4_loop))
    if (s == n) return v6 ? Addr::parse("::1") : Addr::parse("127.0.0.1");
  e.why = fmt::format("'{}' is a host name: svcpath does not resolve host names; list the table with {}", s,
                      listing ? "ipvsadm -Ln" : "ipvsadm-save -n");
  return std::nullopt;
}

// "10.0.0.1:80", "[fd00::1]:80", and with names as ipvsadm -L / ipvsadm-save print them:
// "10.0.0.1:https", "localhost:30080". `pr` picks the services database's protocol.
bool endpoint(std::string_view s, uint8_t pr, bool listing, const ServicesDb& db, Addr& a, uint16_t& port, EpError& e) {
  std::string_view addr, ps;
  int port_off = 0;
  bool v6 = !s.empty() && s[0] == '[';
  if (v6) {
    auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      e.why = fmt::format("'{}' is not [address]:port", s);
      return false;
    }
    addr = s.substr(1, close - 1);
    port_off = int(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) {
      e.why = fmt::format("'{}' is not address:port", s);
      return false;
    }
    addr = s.substr(0, colon);
    port_off = int(colon + 1);
  }
  ps = s.substr(size_t(port_off));
  auto pa = address(addr, v6, listing, e);
  if (!pa) {
    e.off = v6 ? 1 : 0;
    return false;
  }
  auto pp = parse_uint(ps, 65535);
  if (!pp && host_chars(ps)) {
    if (auto n = db.port(ps, pr)) pp = *n;
    else {
      e.off = port_off;
      e.why = fmt::format(
          "'{}' is not a {} service name in {}; give the node's own with --services FILE, or list the "
          "table with {}",
          ps, db_proto(pr), db.source(), listing ? "ipvsadm -Ln" : "ipvsadm-save -n");
      if (listing && !v6 && s.size() == kListCut) e.why += " (ipvsadm -L cuts address:port to 28 characters)";
      return false;
    }
  }
  if (!pp) {
    e.why = fmt::format("'{}': port must be 0..65535", s);
    return false;
  }
  a = *pa;
  port = uint16_t(*pp);
  return true;
}

// A persistence mask as ipvsadm takes and prints it: a dotted netmask for an IPv4 service (the
// kernel ANDs with it, so it need not be contiguous), a prefix length 1..128 for an IPv6 one.
std::optional<Addr> persistence_mask(std::string_view s, Family fam, std::string& why) {
  if (fam == Family::V4) {
    auto a = Addr::parse(s, &why);
    if (a && !a->is_v4()) a.reset(), why = fmt::format("'{}': an IPv4 service's mask is a dotted netmask", s);
    return a;
  }
  auto len = parse_uint(s, 128);
  if (!len || *len == 0) {
    why = fmt::format("'{}': an IPv6 service's mask is a prefix length 1..128", s);
    return std::nullopt;
  }
  return Addr::netmask(Family::V6, unsigned(*len));
}

// The mask as ipvsadm prints it, or "" for a full one (which it leaves out).
std::string mask_str(const Service& s) {
  if (s.netmask == Addr::netmask(s.netmask.fam, s.netmask.bits())) return "";
  return s.netmask.is_v4() ? s.netmask.str() : std::to_string(*s.netmask.mask_len());
}

std::string ep(const Addr& a, uint16_t port) {
  return a.is_v4() ? fmt::format("{}:{}", a.str(), port) : fmt::format("[{}]:{}", a.str(), port);
}

const char* proto_flag(uint8_t p) { return p == proto::TCP ? "-t" : p == proto::UDP ? "-u" : "--sctp-service"; }
const char* proto_word(uint8_t p) { return p == proto::TCP ? "TCP" : p == proto::UDP ? "UDP" : "SCTP"; }

std::string flags_str(const Service& s) {
  std::string f;
  auto add = [&](const char* n) { f += (f.empty() ? "" : ","), f += n; };
  bool sh = s.sched_name() == "sh", mh = s.sched_name() == "mh";
  if ((sh && (s.sched_flags & flag::SH_FALLBACK)) || (mh && (s.sched_flags & flag::MH_FALLBACK)))
    add(sh ? "sh-fallback" : "mh-fallback");
  if ((sh && (s.sched_flags & flag::SH_PORT)) || (mh && (s.sched_flags & flag::MH_PORT))) add(sh ? "sh-port" : "mh-port");
  return f;
}

class Loader {
 public:
  Loader(const std::string& file, ServiceTable& t, const ServicesDb& db) : d_(file), t_(t), db_(db) {}

  void run(std::string_view text) {
    int ln = 0;
    size_t pos = 0;
    while (pos <= text.size() && !d_.full() && !stop_) {
      size_t nl = text.find('\n', pos);
      auto line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
      ++ln;
      if (line.find('\0') != std::string_view::npos) d_.error(ln, 0, "NUL byte in input");
      else one(ln, line);
      if (nl == std::string_view::npos) break;
      pos = nl + 1;
    }
    d_.throw_if_errors();
  }

 private:
  void one(int ln, std::string_view line) {
    auto w = words(line);
    if (w.empty() || w[0].s[0] == '#') return;
    const std::string& first = w[0].s;
    if (first == "-A" || first == "--add-service" || first == "-a" || first == "--add-server") return command(ln, w);
    // ipvsadm -Ln
    if (first == "IP" && w.size() > 1 && w[1].s == "Virtual") return;
    if (first == "Prot") return list_header(ln, w);
    if (first == "->" && w.size() > 1 && w[1].s == "RemoteAddress:Port") return;
    if (first == "TCP" || first == "UDP" || first == "SCTP" || first == "FWM") return list_service(ln, w);
    if (first == "->") return list_dest(ln, w);
    d_.error(ln, w[0].col, fmt::format("'{}': expected an ipvsadm-save command (-A, -a) or an ipvsadm -Ln line", first));
  }

  void command(int ln, const std::vector<Word>& w) {
    bool service = w[0].s == "-A" || w[0].s == "--add-service";
    uint8_t pr = 0;
    Addr va;
    uint16_t vp = 0;
    uint32_t fwm = 0;
    Family fwm_fam = Family::V4;  // -6: an IPv6 firewall-mark service
    bool have_vs = false;
    Dest d;
    const Word* real = nullptr;
    std::string sched = "wlc";
    bool persistent = false;
    uint32_t timeout = 300;
    const Word* mask = nullptr;
    uint32_t flags = 0;
    std::string why;
    for (size_t i = 1; i < w.size(); ++i) {
      const std::string& o = w[i].s;
      auto need = [&]() -> const Word* {
        if (i + 1 >= w.size()) {
          d_.error(ln, w[i].col, fmt::format("option '{}' needs a value", o));
          return nullptr;
        }
        return &w[++i];
      };
      if (o == "-t" || o == "--tcp-service" || o == "-u" || o == "--udp-service" || o == "--sctp-service") {
        auto v = need();
        if (!v) return;
        pr = (o == "-t" || o == "--tcp-service") ? proto::TCP : (o == "-u" || o == "--udp-service") ? proto::UDP : proto::SCTP;
        EpError e;
        if (!endpoint(v->s, pr, false, db_, va, vp, e)) return d_.error(ln, v->col + e.off, e.why);
        have_vs = true;
      } else if (o == "-f" || o == "--fwmark-service") {
        auto v = need();
        if (!v) return;
        auto m = parse_uint(v->s, 0xffffffff, true);
        if (!m || *m == 0) return d_.error(ln, v->col, fmt::format("'{}' is not a firewall mark", v->s));
        fwm = uint32_t(*m);
        have_vs = true;
      } else if (o == "-6" || o == "--ipv6") {
        fwm_fam = Family::V6;
      } else if (o == "-r" || o == "--real-server") {
        auto v = need();
        if (!v) return;
        real = v;  // read once the service's protocol (which names the port) is known
      } else if (o == "-s" || o == "--scheduler") {
        auto v = need();
        if (!v) return;
        if (!known_scheduler(v->s))
          return d_.error(ln, v->col, fmt::format("unknown scheduler '{}' (rr, wrr, lc, wlc, sed, nq, sh, dh, mh)", v->s));
        sched = v->s;
      } else if (o == "-p" || o == "--persistent") {
        persistent = true;
        if (i + 1 < w.size() && w[i + 1].s[0] != '-') {
          auto v = parse_uint(w[++i].s, 2678400);
          if (!v) return d_.error(ln, w[i].col, "bad persistence timeout");
          timeout = uint32_t(*v);
        }
      } else if (o == "-M" || o == "--netmask") {
        mask = need();  // read once the service's family is known
        if (!mask) return;
      } else if (o == "-b" || o == "--sched-flags") {
        auto v = need();
        if (!v) return;
        std::string_view s = v->s;
        while (!s.empty()) {
          auto c = s.find(',');
          auto f = s.substr(0, c);
          if (f == "sh-fallback" || f == "mh-fallback" || f == "flag-1") flags |= flag::SH_FALLBACK;
          else if (f == "sh-port" || f == "mh-port" || f == "flag-2") flags |= flag::SH_PORT;
          else return d_.error(ln, v->col, fmt::format("unknown scheduler flag '{}'", f));
          if (c == std::string_view::npos) break;
          s.remove_prefix(c + 1);
        }
      } else if (o == "-m" || o == "--masquerading") d.fwd = Fwd::Masq;
      else if (o == "-g" || o == "--gatewaying") d.fwd = Fwd::Route;
      else if (o == "-i" || o == "--ipip") d.fwd = Fwd::Tunnel;
      else if (o == "-w" || o == "--weight" || o == "-x" || o == "--u-threshold" || o == "-y" || o == "--l-threshold") {
        auto v = need();
        if (!v) return;
        auto n = parse_uint(v->s, 65535);
        if (!n) return d_.error(ln, v->col, fmt::format("'{}' is not a number for {}", v->s, o));
        if (o == "-w" || o == "--weight") d.weight = int(*n);
        else if (o == "-x" || o == "--u-threshold") d.u_threshold = uint32_t(*n);
        else d.l_threshold = uint32_t(*n);
      } else {
        return d_.error(ln, w[i].col, fmt::format("unknown option '{}'", o));
      }
    }
    if (!have_vs) return d_.error(ln, w[0].col, "no virtual service (-t, -u, --sctp-service or -f)");
    if (real) {
      // Like ipvsadm's parse_service: an address alone (the service's port is used; IPv6 bare, as
      // "[addr]" without a port is refused there), else address:port.
      std::string_view rs = real->s;
      EpError e;
      if (auto a = Addr::parse(rs)) d.addr = *a, d.port = 0;
      else if (rs.find(':') == std::string_view::npos) {
        auto h = address(rs, false, false, e);
        if (!h) return d_.error(ln, real->col, e.why);
        d.addr = *h, d.port = 0;
      } else if (!endpoint(rs, pr, false, db_, d.addr, d.port, e)) return d_.error(ln, real->col + e.off, e.why);
    }
    if (fwm) va = Addr::any(fwm_fam);
    std::optional<Addr> netmask;
    if (mask && !(netmask = persistence_mask(mask->s, va.fam, why))) return d_.error(ln, mask->col, why);
    Service* s = fwm ? t_.find_fwmark(fwm, va.fam) : t_.find(pr, va, vp);
    if (service) {
      if (s) return d_.error(ln, w[0].col, fmt::format("virtual service {} already exists", s->key()));
      auto ns = std::make_unique<Service>();
      ns->proto = pr;
      ns->addr = va;
      ns->port = vp;
      ns->fwmark = fwm;
      ns->persistent = persistent;
      ns->timeout = timeout;
      ns->netmask = netmask ? *netmask : Addr::netmask(ns->addr.fam, ns->addr.bits());
      ns->sched_flags = flags;
      ns->set_scheduler(sched);
      t_.add(std::move(ns));
      return;
    }
    if (!s) return d_.error(ln, w[0].col, "the real server's virtual service does not exist (add it first with -A)");
    if (!real) return d_.error(ln, w[0].col, "-a needs -r ADDRESS:PORT");
    if (d.port == 0) d.port = s->port;
    if (s->find_dest(d.addr, d.port) >= 0)
      return d_.error(ln, w[0].col, fmt::format("real server {} already exists", ep(d.addr, d.port)));
    s->add_dest(d);
  }

  // "Prot LocalAddress:Port Scheduler Flags". The --stats, --rate, --thresholds and
  // --persistent-conn listings put counters where the scheduler, forwarding method and weight
  // would be, so they cannot be read as a table.
  void list_header(int ln, const std::vector<Word>& w) {
    if (w.size() < 3 || w[2].s == "Scheduler") return;
    const std::string& c = w[2].s;
    const char* opt = c == "Conns"        ? "--stats"
                      : c == "CPS"        ? "--rate"
                      : c == "Uthreshold" ? "--thresholds"
                      : c == "Weight"     ? "--persistent-conn"
                                          : nullptr;
    if (!opt)
      return d_.error(ln, w[2].col,
                      fmt::format("'{}': expected the ipvsadm -L header 'Prot LocalAddress:Port Scheduler Flags'", c));
    stop_ = true;  // every line after it would only repeat the problem
    d_.error(ln, w[2].col,
             fmt::format("an ipvsadm -L {} listing has no schedulers, forwarding methods or weights; list the table with ipvsadm "
                         "-Ln (or ipvsadm-save -n)",
                         opt));
  }

  // "TCP  10.96.0.1:443 rr [persistent 10800] [mask ...]" / "FWM  5 rr" / "FWM  5 IPv6 rr"
  void list_service(int ln, std::vector<Word> w) {
    bool fwm_v6 = w[0].s == "FWM" && w.size() > 2 && w[2].s == "IPv6";
    if (fwm_v6) w.erase(w.begin() + 2);
    if (w.size() < 3) return d_.error(ln, w[0].col, "expected 'PROTO ADDRESS:PORT SCHEDULER'");
    auto ns = std::make_unique<Service>();
    std::string why;
    if (w[0].s == "FWM") {
      auto m = parse_uint(w[1].s, 0xffffffff, true);
      if (!m) return d_.error(ln, w[1].col, "bad firewall mark");
      ns->fwmark = uint32_t(*m);
      ns->proto = 0;
      ns->addr = Addr::any(fwm_v6 ? Family::V6 : Family::V4);
    } else {
      ns->proto = w[0].s == "TCP" ? proto::TCP : w[0].s == "UDP" ? proto::UDP : proto::SCTP;
      EpError e;
      if (!endpoint(w[1].s, ns->proto, true, db_, ns->addr, ns->port, e)) return d_.error(ln, w[1].col + e.off, e.why);
    }
    if (!known_scheduler(w[2].s)) return d_.error(ln, w[2].col, fmt::format("unknown scheduler '{}'", w[2].s));
    ns->netmask = Addr::netmask(ns->addr.fam, ns->addr.bits());
    for (size_t i = 3; i < w.size(); ++i) {
      if (w[i].s == "persistent" && i + 1 < w.size()) {
        ns->persistent = true;
        auto v = parse_uint(w[++i].s, 2678400);
        if (!v) return d_.error(ln, w[i].col, "bad persistence timeout");
        ns->timeout = uint32_t(*v);
      } else if (w[i].s == "mask" && i + 1 < w.size()) {
        auto a = persistence_mask(w[++i].s, ns->addr.fam, why);
        if (!a) return d_.error(ln, w[i].col, why);
        ns->netmask = *a;
      } else if (w[i].s.find("fallback") != std::string::npos || w[i].s.find("-port") != std::string::npos ||
                 w[i].s.find("flag-") != std::string::npos) {
        std::string_view s = w[i].s;
        while (!s.empty()) {
          auto c = s.find(',');
          auto f = s.substr(0, c);
          if (f.ends_with("fallback") || f == "flag-1") ns->sched_flags |= flag::SH_FALLBACK;
          else if (f.ends_with("-port") || f == "flag-2") ns->sched_flags |= flag::SH_PORT;
          if (c == std::string_view::npos) break;
          s.remove_prefix(c + 1);
        }
      } else if (w[i].s == "ops" || w[i].s == "pe") {
        if (w[i].s == "pe") ++i;
      } else {
        return d_.error(ln, w[i].col, fmt::format("unexpected '{}' after the scheduler", w[i].s));
      }
    }
    ns->set_scheduler(w[2].s);
    current_ = t_.add(std::move(ns));
    if (!current_) d_.error(ln, w[1].col, "virtual service listed twice");
  }

  // "  -> 10.0.0.10:6443   Masq  1  0  0" (and --stats: Conns InPkts OutPkts InBytes OutBytes)
  void list_dest(int ln, const std::vector<Word>& w) {
    if (!current_) return d_.error(ln, w[0].col, "a real server line before any virtual service line");
    if (w.size() < 4) return d_.error(ln, w[0].col, "expected '-> ADDRESS:PORT FORWARD WEIGHT ...'");
    Dest d;
    std::string why;
    EpError e;
    if (!endpoint(w[1].s, current_->proto, true, db_, d.addr, d.port, e)) return d_.error(ln, w[1].col + e.off, e.why);
    const std::string& f = w[2].s;
    if (f == "Masq") d.fwd = Fwd::Masq;
    else if (f == "Route" || f == "Local") d.fwd = Fwd::Route;
    else if (f == "Tunnel") d.fwd = Fwd::Tunnel;
    else return d_.error(ln, w[2].col, fmt::format("unknown forwarding method '{}' (Masq, Route, Tunnel)", f));
    auto wt = parse_uint(w[3].s, 65535);
    if (!wt) return d_.error(ln, w[3].col, "bad weight");
    d.weight = int(*wt);
    std::vector<uint64_t> nums;
    for (size_t i = 4; i < w.size(); ++i) {
      // --stats/--rate columns may carry K/M/G suffixes; keep the plain numbers.
      std::string s = w[i].s;
      uint64_t mult = 1;
      if (!s.empty() && (s.back() == 'K' || s.back() == 'M' || s.back() == 'G')) {
        mult = s.back() == 'K' ? 1000 : s.back() == 'M' ? 1000000 : 1000000000;
        s.pop_back();
      }
      auto v = parse_uint(s, UINT64_MAX);
      if (!v) return d_.error(ln, w[i].col, fmt::format("'{}' is not a counter", w[i].s));
      nums.push_back(*v * mult);
    }
    if (nums.size() == 2) {  // ActiveConn InActConn
      d.activeconns = uint32_t(nums[0]);
      d.inactconns = uint32_t(nums[1]);
    } else if (nums.size() == 5) {  // --stats: Conns InPkts OutPkts InBytes OutBytes
      d.conns = nums[0];
      d.inpkts = nums[1];
      d.outpkts = nums[2];
      d.inbytes = nums[3];
      d.outbytes = nums[4];
    } else if (!nums.empty() && nums.size() != 5) {
      return d_.error(ln, w[4].col, "expected ActiveConn InActConn, or the five --stats/--rate columns");
    }
    // The listing shows the kernel's list order; adding at the head reverses it, so append.
    Dest x = d;
    x.last_weight = d.weight;
    current_->dests.push_back(x);
    current_->scheduler().update(*current_);
  }

  Diagnostics d_;
  ServiceTable& t_;
  const ServicesDb& db_;
  Service* current_ = nullptr;
  bool stop_ = false;
};

}  // namespace

const ServicesDb& ServicesDb::netbase() {
  static const ServicesDb db = [] {
    ServicesDb d;
    d.source_ = "netbase's /etc/services";
    d.entries_.reserve(std::size(kServices));
    for (const ServiceName& s : kServices)
      d.entries_.push_back({s.name, s.port,
                            std::string_view(s.proto) == "udp"    ? proto::UDP
                            : std::string_view(s.proto) == "sctp" ? proto::SCTP
                                                                  : proto::TCP});
    return d;
  }();
  return db;
}

ServicesDb ServicesDb::parse(std::string_view text, const std::string& file) {
  ServicesDb db;
  db.source_ = file;
  Diagnostics d(file);
  int ln = 0;
  for (size_t pos = 0; pos <= text.size() && !d.full();) {
    size_t nl = text.find('\n', pos);
    auto line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    ++ln;
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    line = line.substr(0, line.find('#'));
    auto w = words(line);
    if (w.empty()) continue;
    if (w.size() < 2) {
      d.error(ln, w[0].col,
              fmt::format("'{}' has no port/protocol (an /etc/services line is: name port/proto [aliases])", w[0].s));
      continue;
    }
    std::string_view pp = w[1].s;
    auto slash = pp.find('/');
    auto port = slash == std::string_view::npos ? std::nullopt : parse_uint(pp.substr(0, slash), 65535);
    if (!port) {
      d.error(ln, w[1].col, fmt::format("'{}' is not port/protocol (e.g. 80/tcp)", pp));
      continue;
    }
    std::string_view pr = pp.substr(slash + 1);
    // ipvsadm asks only for tcp, udp and sctp; other protocols' entries (ddp, ...) never match.
    uint8_t p = pr == "tcp" ? proto::TCP : pr == "udp" ? proto::UDP : pr == "sctp" ? proto::SCTP : 0;
    if (!p) continue;
    for (size_t i = 0; i < w.size(); ++i)
      if (i != 1) db.entries_.push_back({w[i].s, uint16_t(*port), p});
  }
  d.throw_if_errors();
  return db;
}

ServicesDb ServicesDb::load_file(const std::string& path) { return parse(read_input_file(path), path); }

std::optional<uint16_t> ServicesDb::port(std::string_view name, uint8_t pr) const {
  uint8_t want = pr == proto::UDP || pr == proto::SCTP ? pr : proto::TCP;
  for (const Entry& e : entries_)  // the first entry wins, as getservbyname's file scan
    if (e.proto == want && name == e.name) return e.port;
  return std::nullopt;
}

std::optional<uint16_t> service_port(std::string_view name, uint8_t pr) { return ServicesDb::netbase().port(name, pr); }

void load_ipvsadm(std::string_view text, const std::string& file, ServiceTable& t, const ServicesDb& services) {
  Loader(file, t, services).run(text);
}

ServiceTable load_ipvsadm_file(const std::string& path, const ServicesDb& services) {
  ServiceTable t;
  load_ipvsadm(read_input_file(path), path, t, services);
  return t;
}

std::string save_ipvsadm(const ServiceTable& t) {
  std::string o;
  for (auto& sp : t.all()) {
    const Service& s = *sp;
    std::string vs = s.fwmark ? fmt::format("-f {}{}", s.fwmark, s.addr.is_v4() ? "" : " -6")
                              : fmt::format("{} {}", proto_flag(s.proto), ep(s.addr, s.port));
    o += fmt::format("-A {} -s {}", vs, s.sched_name());
    std::string fl = flags_str(s);
    if (!fl.empty()) o += " -b " + fl;
    if (s.persistent) {
      o += fmt::format(" -p {}", s.timeout);
      if (auto m = mask_str(s); !m.empty()) o += " -M " + m;
    }
    o += '\n';
    // Like ipvsadm-save: servers in the kernel's list order. Restoring them with -a reverses that
    // order, exactly as ipvsadm-restore does on a real node.
    for (const Dest& d : s.dests) {
      const char* fw = d.fwd == Fwd::Masq ? "-m" : d.fwd == Fwd::Route ? "-g" : "-i";
      o += fmt::format("-a {} -r {} {} -w {}", vs, ep(d.addr, d.port), fw, d.weight);
      if (d.u_threshold) o += fmt::format(" -x {}", d.u_threshold);
      if (d.l_threshold) o += fmt::format(" -y {}", d.l_threshold);
      o += '\n';
    }
  }
  return o;
}

std::string list_ipvsadm(const ServiceTable& t, unsigned size) {
  std::string o = fmt::format("IP Virtual Server version 1.2.1 (size={})\n", size);
  o += "Prot LocalAddress:Port Scheduler Flags\n";
  o += "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";
  for (auto& sp : t.all()) {
    const Service& s = *sp;
    std::string head = s.fwmark ? fmt::format("FWM  {}{} {}", s.fwmark, s.addr.is_v4() ? "" : " IPv6", s.sched_name())
                                : fmt::format("{:<4} {} {}", proto_word(s.proto), ep(s.addr, s.port), s.sched_name());
    std::string fl = flags_str(s);
    if (!fl.empty()) head += " (" + fl + ")";
    if (s.persistent) {
      head += fmt::format(" persistent {}", s.timeout);
      if (auto m = mask_str(s); !m.empty()) head += " mask " + m;
    }
    o += head + "\n";
    for (auto& d : s.dests) {
      const char* fw = d.fwd == Fwd::Masq ? "Masq" : d.fwd == Fwd::Route ? "Route" : "Tunnel";
      o += fmt::format("  -> {:<28} {:<7} {:<6} {:<10} {}\n", ep(d.addr, d.port), fw, d.weight, d.activeconns, d.inactconns);
    }
  }
  return o;
}

}  // namespace svcpath::ipvs
