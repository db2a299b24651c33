// The service table (ip_vs_svc_hashkey's buckets) and Service's destination list, as
// net/netfilter/ipvs/ip_vs_ctl.c keeps them; schedulers are in sched/, connections in conn.cpp.
#include "ipvs/ipvs.hpp"

#include "core/diag.hpp"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "ipvs/sched/common.hpp"

namespace svcpath::ipvs {

Service::Service(const Service& o)
    : proto(o.proto),
      addr(o.addr),
      port(o.port),
      fwmark(o.fwmark),
      persistent(o.persistent),
      timeout(o.timeout),
      netmask(o.netmask),
      sched_flags(o.sched_flags),
      dests(o.dests),
      conns(o.conns),
      inpkts(o.inpkts),
      outpkts(o.outpkts),
      sched_name_(o.sched_name_),
      sched_(o.sched_->clone()) {}

ServiceTable ServiceTable::clone() const {
  ServiceTable t;
  for (auto& s : services_) t.add(std::make_unique<Service>(*s));
  return t;
}

void Service::set_scheduler(std::string_view name) {
  auto s = make_scheduler(name);
  if (!s) throw LoadError("ipvs", fmt::format("unknown scheduler '{}'", name));
  sched_ = std::move(s);
  sched_name_ = std::string(name);
  sched_->update(*this);
}

void Service::add_dest(const Dest& d) {
  Dest x = d;
  x.last_weight = d.weight > 0 ? d.weight : 0;
  dests.insert(dests.begin(), x);
  sched_->update(*this);
}

void Service::edit_dest(int i, int weight, uint32_t u, uint32_t l) {
  Dest& d = dests[size_t(i)];
  d.weight = weight;
  if (weight > 0) d.last_weight = weight;  // mh keeps the old weight of a quiesced server
  d.u_threshold = u;
  d.l_threshold = l;
  sched_->update(*this);
}

void Service::remove_dest(int i) {
  sched_->removing(*this, i);
  dests.erase(dests.begin() + i);
  sched_->update(*this);
}

int Service::find_dest(const Addr& a, uint16_t p) const {
  for (size_t i = 0; i < dests.size(); ++i)
    if (dests[i].addr == a && dests[i].port == p) return int(i);
  return -1;
}

std::string Service::key() const {
  if (fwmark) return fmt::format("FWM {}", fwmark);
  return fmt::format("{} {}",
                     proto == proto::TCP   ? "TCP"
                     : proto == proto::UDP ? "UDP"
                                           : "SCTP",
                     FiveTuple::endpoint(addr, port, proto::TCP));
}

unsigned ServiceTable::hash(uint8_t proto, const Addr& a, uint16_t port) {
  return (proto ^ fold(a) ^ (unsigned(port) >> kBits) ^ port) & ((1u << kBits) - 1);
}

Service* ServiceTable::add(std::unique_ptr<Service> s) {
  if (s->fwmark ? find_fwmark(s->fwmark, s->addr.fam) : find(s->proto, s->addr, s->port)) return nullptr;
  Service* p = s.get();
  auto& b = s->fwmark ? fwm_buckets_[s->fwmark & ((1u << kBits) - 1)] : buckets_[hash(s->proto, s->addr, s->port)];
  b.insert(b.begin(), p);
  index_[p] = int(services_.size());
  services_.push_back(std::move(s));
  return p;
}

Service* ServiceTable::find(uint8_t proto, const Addr& a, uint16_t port, uint64_t* walked) const {
  for (Service* s : buckets_[hash(proto, a, port)]) {
    if (walked) ++*walked;
    if (s->proto == proto && s->port == port && s->addr == a) return s;
  }
  return nullptr;
}

Service* ServiceTable::find_fwmark(uint32_t mark, Family fam, uint64_t* walked) const {
  for (Service* s : fwm_buckets_[mark & ((1u << kBits) - 1)]) {
    if (walked) ++*walked;
    if (s->fwmark == mark && s->addr.fam == fam) return s;
  }
  return nullptr;
}

int ServiceTable::index_of(const Service* s) const {
  auto it = index_.find(s);
  return it == index_.end() ? -1 : it->second;
}

bool ServiceTable::remove(const Service* s) {
  for (auto* bs : {&buckets_, &fwm_buckets_})
    for (auto& b : *bs) std::erase(b, s);
  auto it = std::find_if(services_.begin(), services_.end(), [&](auto& p) { return p.get() == s; });
  if (it == services_.end()) return false;
  services_.erase(it);
  index_.clear();
  for (size_t i = 0; i < services_.size(); ++i) index_[services_[i].get()] = int(i);
  return true;
}

}  // namespace svcpath::ipvs
