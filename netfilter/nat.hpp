#pragma once
// NAT as the kernel's nf_nat core does it: a NAT target (iptables' DNAT/SNAT/MASQUERADE/REDIRECT,
// nftables' dnat/snat/masquerade/redirect statements) asks once per connection and manip type for a
// binding (nf_nat_setup_info); every later packet of the connection, replies included, is rewritten
// from it (nf_nat_packet). The nat core is the hook function that consults the nat lookups (the
// iptables nat table, nftables nat chains) in priority order — only for a connection's first packet.
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/addr.hpp"
#include "netfilter/conntrack.hpp"
#include "netfilter/stage.hpp"

namespace svcpath::nf {

/// What a NAT target or statement asks for: its kind and the range (struct nf_nat_range2).
struct NatTarget {
  // Netmap: iptables' NETMAP, the range [min, max] being a prefix whose network part replaces the
  // packet's (destination at PREROUTING/OUTPUT, source at POSTROUTING/INPUT), host part kept.
  enum class Kind : uint8_t { Dnat, Snat, Masquerade, Redirect, Netmap } kind = Kind::Dnat;
  bool addr_set = false;
  Addr min, max;
  bool port_set = false;
  PortRange ports;
  bool random = false, random_fully = false, persistent = false;
};

/// Sets up a NAT binding for one manip type, as nf_nat_setup_info/get_unique_tuple do: picks the
/// address from the range (hash of the tuple), keeps the port if the result is unique, otherwise (or
/// with --random/--random-fully) searches the port range from a random offset. range==nullptr gives
/// the null binding. Returns false if no unique tuple exists (the packet is dropped).
bool nat_setup(Conntrack& ct, CtEntry& e, Manip manip, const NatTarget* range, const Addr* map_to, Chooser& choose);

/// Rewrites a packet from its entry's NAT bindings for the given manip (nf_nat_packet).
/// Returns true if the packet changed.
bool nat_apply(const CtEntry& e, CtDir dir, Manip manip, Packet& p);

/// nf_nat_icmp_reply_translation: an ICMP error on a connection (RELATED) is translated from the
/// connection's bindings for the given manip — its quoted packet made to look as that packet did on
/// its own side of the NAT, its outer addresses as a reply to it would be. Returns true if it changed.
bool nat_icmp_apply(const CtEntry& e, CtDir dir, Manip manip, Packet& p);

/// 127.0.0.1 or ::1, built from bytes: the packet path parses no text.
inline Addr loopback_address(Family f) {
  return f == Family::V4 ? Addr::v4(0x7f000001u) : Addr::v6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
}

/// The address MASQUERADE or REDIRECT maps a packet to at hook h (nf_nat_masquerade's
/// inet_select_addr, nf_nat_redirect's interface address or loopback); nullopt when there is none.
std::optional<Addr> nat_local_address(const Node& node, NatTarget::Kind kind, Hook h, const Packet& p, Family fam);

/// A NAT target's work, the same for iptables and nftables (xt_nat and nft_nat both end in
/// nf_nat_setup_info): the binding for the packet's connection, unless one is set up already.
/// DROP only when MASQUERADE/REDIRECT has no address to use (nf_nat_masquerade returns NF_DROP);
/// otherwise ACCEPT — nf_nat_setup_info never drops, a tuple it could not make unique is caught
/// when conntrack confirms the entry.
Verdict nat_target(const NatTarget& tg, Hook h, Packet& p, const Node& node, Conntrack& ct, Chooser& choose) noexcept;

/// A nat table or nat base chain the nat core consults (what nf_nat_register_fn registers).
class NatLookup {
 public:
  virtual ~NatLookup() = default;
  /// Whether the lookup has rules for packets of family f at all.
  virtual bool applies(Family f) const noexcept = 0;
  virtual Verdict run(Hook h, Packet& p, HookContext& ctx) noexcept = 0;
};

/// nf_nat_inet_fn: the nat lookups, in priority order, only for a connection's first packet until
/// one sets up a binding (the null binding when none does); bindings applied to every packet.
class NatCore final : public Stage {
 public:
  std::string name() const override { return "nat"; }
  /// Registers a lookup at hook h; equal priorities keep registration order.
  void add(Hook h, int priority, NatLookup* l);
  /// Keeps a lookup alive as long as the nat core (register it with add).
  NatLookup& own(std::unique_ptr<NatLookup> l) {
    owned_.push_back(std::move(l));
    return *owned_.back();
  }
  Verdict run(Hook h, Packet& p, HookContext& ctx) noexcept override;

 private:
  struct Lookup {
    int priority;
    NatLookup* lookup;
  };
  std::vector<Lookup> lookups_[kNumHooks];
  std::vector<std::unique_ptr<NatLookup>> owned_;
};

}  // namespace svcpath::nf
