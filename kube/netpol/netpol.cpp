#include "kube/netpol/netpol.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "netfilter/iptables/engine.hpp"
#include "netfilter/iptables/iptables.hpp"
#include "kube/proxy/model.hpp"

namespace svcpath::nf::netpol {

namespace {

using k8s::Cluster;
using k8s::NetworkPolicy;
using k8s::Pod;

// The API server labels every namespace with its own name; selectors may rely on it.
std::map<std::string, std::string> namespace_labels(const Cluster& c, const std::string& ns) {
  std::map<std::string, std::string> l;
  for (auto& n : c.namespaces)
    if (n.name == ns) l = n.labels;
  l["kubernetes.io/metadata.name"] = ns;
  return l;
}

bool selects(const NetworkPolicy& p, const Pod& pod) {
  return !pod.host_network && pod.ns == p.ns && p.pod_selector.matches(pod.labels);
}

// A podSelector/namespaceSelector peer: pods in the policy's namespace (podSelector alone), in
// the selected namespaces (namespaceSelector), or both conditions at once.
bool peer_selects(const Cluster& c, const NetworkPolicy& p, const k8s::PolicyPeer& peer, const Pod& pod) {
  if (pod.host_network) return false;
  if (peer.namespace_selector) {
    if (!peer.namespace_selector->matches(namespace_labels(c, pod.ns))) return false;
  } else if (pod.ns != p.ns) {
    return false;
  }
  return !peer.pod_selector || peer.pod_selector->matches(pod.labels);
}

bool in_block(const k8s::IpBlock& b, const Addr& ip) {
  if (!b.cidr.contains(ip)) return false;
  return std::none_of(b.except.begin(), b.except.end(), [&](const Prefix& e) { return e.contains(ip); });
}

bool peer_matches(const Cluster& c, const NetworkPolicy& p, const std::vector<k8s::PolicyPeer>& peers, const Peer& x) {
  if (peers.empty()) return true;
  for (auto& peer : peers) {
    if (peer.ip_block) {
      if (in_block(*peer.ip_block, x.ip)) return true;
    } else if (x.pod && peer_selects(c, p, peer, *x.pod)) {
      return true;
    }
  }
  return false;
}

// A named port means the port of that name on the pod the traffic is addressed to.
std::optional<uint16_t> resolve(const k8s::PolicyPort& pp, const Pod* target) {
  if (!pp.port->is_name) return pp.port->num;
  if (!target) return std::nullopt;
  for (auto& cp : target->ports)
    if (cp.name == pp.port->name && cp.proto == pp.proto) return cp.port;
  return std::nullopt;
}

bool port_matches(const std::vector<k8s::PolicyPort>& ports, const Pod* target, uint8_t proto, uint16_t port) {
  if (ports.empty()) return true;
  for (auto& pp : ports) {
    if (pp.proto != proto) continue;
    if (!pp.port) return true;
    auto lo = resolve(pp, target);
    if (!lo) continue;
    uint16_t hi = pp.end_port && !pp.port->is_name ? *pp.end_port : *lo;
    if (port >= *lo && port <= hi) return true;
  }
  return false;
}

std::string pod_ref(const Pod& p) { return p.ns + "/" + p.name; }

Decision decide(const Cluster& c, const Pod& self, const Peer& other, uint8_t proto, uint16_t port, bool ingress_dir) {
  Decision d;
  std::vector<std::string> isolating;
  for (auto& p : c.policies) {
    if (!(ingress_dir ? p.ingress_type : p.egress_type) || !selects(p, self)) continue;
    d.isolated = true;
    isolating.push_back(p.ns + "/" + p.name);
    auto& rules = ingress_dir ? p.ingress : p.egress;
    for (size_t i = 0; i < rules.size(); ++i) {
      const Pod* target = ingress_dir ? &self : other.pod;
      if (peer_matches(c, p, rules[i].peers, other) && port_matches(rules[i].ports, target, proto, port)) {
        d.allowed = true;
        d.by = fmt::format("{}/{} {}[{}]", p.ns, p.name, ingress_dir ? "ingress" : "egress", i);
        return d;
      }
    }
  }
  const char* dir = ingress_dir ? "ingress" : "egress";
  if (!d.isolated) {
    d.by = fmt::format("no policy selects {} for {}", pod_ref(self), dir);
    return d;
  }
  d.allowed = false;
  std::string names;
  for (auto& n : isolating) names += (names.empty() ? "" : ", ") + n;
  d.by = fmt::format("{} is isolated for {} by {}; no rule allows this", pod_ref(self), dir, names);
  return d;
}

}  // namespace

Decision ingress(const Cluster& c, const Pod& dst, const Peer& src, uint8_t proto, uint16_t port) {
  return decide(c, dst, src, proto, port, true);
}

Decision egress(const Cluster& c, const Pod& src, const Peer& dst, uint8_t proto, uint16_t port) {
  return decide(c, src, dst, proto, port, false);
}

bool connection_allowed(const Cluster& c, const Peer& src, const Peer& dst, uint8_t proto, uint16_t port) {
  if (src.pod && !egress(c, *src.pod, dst, proto, port).allowed) return false;
  if (dst.pod && !ingress(c, *dst.pod, src, proto, port).allowed) return false;
  return true;
}

const Pod* pod_by_ip(const Cluster& c, const Addr& ip) {
  for (auto& p : c.pods)
    if (!p.host_network && std::find(p.ips.begin(), p.ips.end(), ip) != p.ips.end()) return &p;
  return nullptr;
}

// ------------------------------------------------------------------------------------ compiler

namespace {

const char* proto_name(uint8_t p) { return p == proto::UDP ? "udp" : p == proto::SCTP ? "sctp" : "tcp"; }

std::optional<Addr> ip_of(const Pod& p, Family fam) {
  for (auto& a : p.ips)
    if (a.fam == fam) return a;
  return std::nullopt;
}

std::string host(const Addr& a) { return fmt::format("{}/{}", a.str(), a.bits()); }

class Compiler {
 public:
  Compiler(const Cluster& c, const k8s::Node& self, Family fam, Placement where) : c_(c), self_(self), fam_(fam), where_(where) {}

  Compiled run() {
    // Local pods some policy isolates, in a stable order.
    std::vector<const Pod*> local;
    for (auto& p : c_.pods)
      if (p.node_name == self_.name && !p.host_network && ip_of(p, fam_)) local.push_back(&p);
    std::sort(local.begin(), local.end(), [](const Pod* a, const Pod* b) { return pod_ref(*a) < pod_ref(*b); });

    // Egress of the sender before ingress of the receiver, as the connection flows.
    std::vector<std::string> fwd, in, out, fwd_in, out_in;
    for (const Pod* p : local) {
      Addr ip = *ip_of(*p, fam_);
      bool eg = pod_chain(*p, false);
      bool ig = pod_chain(*p, true);
      if (eg) {
        std::string j = fmt::format("-s {} -m comment --comment \"{} egress\" -j {}", host(ip), pod_ref(*p), name(*p, false));
        fwd.push_back(j);
        in.push_back(j);
        if (where_ == Placement::IpvsAware) out.push_back(j);
      }
      if (ig) {
        std::string j = fmt::format("-d {} -m comment --comment \"{} ingress\" -j {}", host(ip), pod_ref(*p), name(*p, true));
        fwd_in.push_back(j);
        out_in.push_back(j);
      }
      if (eg || ig) ++res_.pods;
    }
    fwd.insert(fwd.end(), fwd_in.begin(), fwd_in.end());
    out.insert(out.end(), out_in.begin(), out_in.end());

    std::string r = "*filter\n:NP-FORWARD - [0:0]\n:NP-INPUT - [0:0]\n:NP-OUTPUT - [0:0]\n";
    for (auto& ch : chains_) r += ":" + ch.first + " - [0:0]\n";
    // First in each built-in chain, as policy engines insert themselves.
    r += "-I FORWARD 1 -m comment --comment \"NetworkPolicy: routed pod traffic\" -j NP-FORWARD\n";
    r += "-I INPUT 1 -m comment --comment \"NetworkPolicy: pod to this node\" -j NP-INPUT\n";
    r += "-I OUTPUT 1 -m comment --comment \"NetworkPolicy: this node to pods\" -j NP-OUTPUT\n";
    const char* established =
        " -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"replies and "
        "established connections were allowed when they began\" -j RETURN\n";
    for (auto* ch : {"NP-FORWARD", "NP-INPUT", "NP-OUTPUT"}) r += fmt::format("-A {}{}", ch, established);
    if (where_ == Placement::IpvsAware)
      r += fmt::format(
          "-A NP-INPUT -m set --match-set {} dst,dst -m comment --comment \"to a Service address: IPVS "
          "rewrites it after INPUT; checked in OUTPUT\" -j RETURN\n",
          fam_ == Family::V4 ? "KUBE-CLUSTER-IP" : "KUBE-6-CLUSTER-IP");
    for (auto& j : fwd) r += "-A NP-FORWARD " + j + "\n";
    for (auto& j : in) r += "-A NP-INPUT " + j + "\n";
    for (auto& j : out) r += "-A NP-OUTPUT " + j + "\n";
    for (auto& ch : chains_)
      for (auto& rule : ch.second) r += "-A " + ch.first + " " + rule + "\n";
    r += "COMMIT\n";
    res_.rules = std::move(r);
    for (auto& s : sets_) res_.ipsets += s.second;
    return std::move(res_);
  }

 private:
  std::string name(const Pod& p, bool ingress_dir) const {
    return fmt::format("NP-{}-{}", ingress_dir ? "IN" : "EG", kube::chain_hash(pod_ref(p) + (fam_ == Family::V6 ? "/6" : "")));
  }

  // An ipset of the peer's pod addresses, or of its ipBlock (excepts as nomatch entries, which
  // the kernel's hash:net lookup honours by the most specific prefix).
  std::string peer_set(const NetworkPolicy& p, const k8s::PolicyPeer& peer, const std::string& key) {
    std::string setname = "NP-" + kube::chain_hash(p.ns + "/" + p.name + "/" + key + (fam_ == Family::V6 ? "/6" : ""));
    if (sets_.count(setname)) return setname;
    const char* family = fam_ == Family::V4 ? "inet" : "inet6";
    std::string s;
    if (peer.ip_block) {
      s = fmt::format("create {} hash:net family {} hashsize 1024 maxelem 65536\n", setname, family);
      if (peer.ip_block->cidr.addr.fam == fam_) {
        const Prefix& cidr = peer.ip_block->cidr;
        if (cidr.len == 0) {
          // hash:net refuses /0 (the kernel wants a non-zero prefix): two halves cover it.
          Addr hi = Addr::any(fam_);
          hi.b[0] = 0x80;
          s += fmt::format("add {} {}\nadd {} {}\n", setname, Prefix{Addr::any(fam_), 1}.str(), setname, Prefix{hi, 1}.str());
        } else {
          s += fmt::format("add {} {}\n", setname, cidr.str());
        }
        for (auto& e : peer.ip_block->except)
          if (e.addr.fam == fam_) s += fmt::format("add {} {} nomatch\n", setname, e.str());
      }
    } else {
      s = fmt::format("create {} hash:ip family {} hashsize 1024 maxelem 65536\n", setname, family);
      std::set<std::string> ips;
      for (auto& pod : c_.pods)
        if (peer_selects(c_, p, peer, pod))
          if (auto a = ip_of(pod, fam_)) ips.insert(a->str());
      for (auto& ip : ips) s += fmt::format("add {} {}\n", setname, ip);
    }
    sets_[setname] = std::move(s);
    return setname;
  }

  // The port conditions of a rule toward `target` (the pod the traffic is addressed to, for named
  // ports); an empty list means every port; nullopt means no port can match.
  std::optional<std::vector<std::string>> port_conds(const std::vector<k8s::PolicyPort>& ports, const Pod* target) {
    std::vector<std::string> out;
    if (ports.empty()) {
      out.push_back("");
      return out;
    }
    for (auto& pp : ports) {
      const char* pn = proto_name(pp.proto);
      if (!pp.port) {
        out.push_back(fmt::format(" -p {}", pn));
        continue;
      }
      auto lo = resolve(pp, target);
      if (!lo) continue;
      if (pp.end_port && !pp.port->is_name && *pp.end_port > *lo)
        out.push_back(fmt::format(" -p {} -m {} --dport {}:{}", pn, pn, *lo, *pp.end_port));
      else out.push_back(fmt::format(" -p {} -m {} --dport {}", pn, pn, *lo));
    }
    if (out.empty()) return std::nullopt;
    return out;
  }

  // Emits the pod's chain for one direction; false when no policy isolates it that way.
  bool pod_chain(const Pod& pod, bool ingress_dir) {
    const char* dir = ingress_dir ? "ingress" : "egress";
    const char* sd = ingress_dir ? "src" : "dst";
    const char* addr_opt = ingress_dir ? "-s" : "-d";
    std::vector<std::string> rules, isolating;
    for (auto& p : c_.policies) {
      if (!(ingress_dir ? p.ingress_type : p.egress_type) || !selects(p, pod)) continue;
      isolating.push_back(p.ns + "/" + p.name);
      auto& prules = ingress_dir ? p.ingress : p.egress;
      for (size_t i = 0; i < prules.size(); ++i) {
        std::string comment = fmt::format("-m comment --comment \"{}/{} {}[{}]\" -j RETURN", p.ns, p.name, dir, i);
        auto& pr = prules[i];
        if (ingress_dir || std::none_of(pr.ports.begin(), pr.ports.end(), [](auto& pp) { return pp.port && pp.port->is_name; })) {
          auto ports = port_conds(pr.ports, ingress_dir ? &pod : nullptr);
          if (!ports) continue;
          std::vector<std::string> peers;
          if (pr.peers.empty()) peers.push_back("");
          for (size_t j = 0; j < pr.peers.size(); ++j)
            peers.push_back(
                fmt::format(" -m set --match-set {} {}", peer_set(p, pr.peers[j], fmt::format("{}/{}/{}", dir, i, j)), sd));
          for (auto& peer : peers)
            for (auto& port : *ports) rules.push_back(fmt::format("{}{} {}", port, peer, comment).substr(1));
        } else {
          // Egress to a named port: the number differs per destination pod, so each pod the rule
          // can reach gets its own rule with its own port.
          for (auto& dst : c_.pods) {
            auto dip = ip_of(dst, fam_);
            if (dst.host_network || !dip) continue;
            if (!peer_matches(c_, p, pr.peers, Peer{*dip, &dst})) continue;
            auto ports = port_conds(pr.ports, &dst);
            if (!ports) continue;
            for (auto& port : *ports) rules.push_back(fmt::format("{} {}{} {}", addr_opt, host(*dip), port, comment));
          }
        }
      }
    }
    if (isolating.empty()) return false;
    std::string names;
    for (auto& n : isolating) names += (names.empty() ? "" : ", ") + n;
    std::string why = fmt::format("{} {}: isolated by {}; no rule allows", pod_ref(pod), dir, names);
    if (why.size() > 255) why = why.substr(0, 252) + "...";
    rules.push_back(fmt::format("-m comment --comment \"{}\" -j DROP", why));
    chains_.emplace_back(name(pod, ingress_dir), std::move(rules));
    return true;
  }

  const Cluster& c_;
  const k8s::Node& self_;
  Family fam_;
  Placement where_;
  Compiled res_;
  std::vector<std::pair<std::string, std::vector<std::string>>> chains_;
  std::map<std::string, std::string> sets_;
};

}  // namespace

Compiled compile(const Cluster& c, const k8s::Node& self, Family fam, Placement where) {
  return Compiler(c, self, fam, where).run();
}

void apply(const Compiled& np, Ruleset& rs, IpSets& sets) {
  const char* what = rs.family == Family::V4 ? "NetworkPolicy rules (IPv4)" : "NetworkPolicy rules (IPv6)";
  load_ipsets(np.ipsets, what, sets);
  RestoreOptions opt;
  opt.noflush = true;
  load_restore(np.rules, what, rs, opt);
  resolve_sets(rs, sets, what);
}

// ------------------------------------------------------------------------------------- stories

namespace {

std::string comment_of(std::string_view rule) {
  auto at = rule.find("--comment ");
  if (at == std::string_view::npos) return "";
  rule.remove_prefix(at + 10);
  if (!rule.empty() && rule.front() == '"') {
    auto end = rule.find('"', 1);
    return std::string(rule.substr(1, end == std::string_view::npos ? rule.size() - 1 : end - 1));
  }
  return std::string(rule.substr(0, rule.find(' ')));
}

}  // namespace

void count_verdicts(const Ruleset& rs, const std::vector<uint64_t>& rule_pkts, Verdicts& into) {
  const Table* t = rs.table(TableId::Filter);
  if (!t) return;
  for (auto& c : t->chains) {
    if (!c.name.starts_with("NP-IN-") && !c.name.starts_with("NP-EG-")) continue;
    for (auto& r : c.rules) {
      uint64_t n = r.id < rule_pkts.size() ? rule_pkts[r.id] : 0;
      if (!n) continue;
      std::string by;
      for (auto& m : r.matches)
        if (auto* cm = std::get_if<CommentMatch>(&m)) by = cm->text;
      auto* v = std::get_if<StandardTarget>(&r.target);
      bool drop = v && v->v == StdVerdict::Drop;
      (drop ? into.denied : into.allowed)[by] += n;
    }
  }
}

Story story(const std::vector<TraceEvent>& events, const FiveTuple& original) {
  Story s;
  FiveTuple cur = original;
  std::vector<std::string> allowed_by;
  std::string last_chain;
  for (auto& e : events) {
    if (e.answer) continue;  // a REJECT's answer: its own packet, not this one's story
    if (e.rewritten) {
      if (!s.dnat_hook && !(e.before.dst == e.after.dst && e.before.dport == e.after.dport)) {
        s.dnat_hook = e.hook;
        s.dnat_by = e.kind == TraceKind::Ipvs ? "ipvs" : std::string(e.table);
      }
      cur = e.after;
    }
    bool pod_chain = e.chain.starts_with("NP-IN-") || e.chain.starts_with("NP-EG-");
    if (!pod_chain || e.table != "filter") continue;
    std::string where = fmt::format("{}:{}", hook_name(e.hook), e.chain);
    if (where != last_chain) {
      s.path.push_back(where);
      last_chain = where;
    }
    if (e.kind != TraceKind::Rule) continue;
    s.checked = true;
    s.dnat_before = s.dnat_hook.has_value();
    s.hook = e.hook;
    s.chain = std::string(e.chain);
    s.rulenum = e.rulenum;
    s.seen = cur;
    if (e.target == "DROP") {
      s.allowed = false;
      s.by = comment_of(e.detail);
      return s;
    }
    allowed_by.push_back(comment_of(e.detail));
  }
  for (auto& b : allowed_by) s.by += (s.by.empty() ? "" : " + ") + b;
  return s;
}

std::string story_line(const Story& s) {
  if (!s.checked) return "";
  std::string dnat = "no DNAT";
  if (s.dnat_hook)
    dnat =
        fmt::format("DNAT by {} at {}, {} the decision", s.dnat_by, hook_name(*s.dnat_hook), s.dnat_before ? "before" : "after");
  std::string path;
  for (auto& p : s.path) path += (path.empty() ? "" : ", ") + p;
  return fmt::format("{} at {} {} {}; the policy chain saw {} ({}; chains {})", s.allowed ? "allowed" : "denied",
                     hook_name(s.hook), s.allowed ? "by" : "-", s.by, s.seen.str(), dnat, path);
}

}  // namespace svcpath::nf::netpol
