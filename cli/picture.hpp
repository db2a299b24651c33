#pragma once
// The hook-traversal picture: the node's netfilter packet-flow diagram (hooks with their tables in
// priority order, IPVS where the kernel hooks it, routing decisions, the local process and the
// interfaces) with one packet's path drawn over it; one panel per kube-proxy mode, side by side.
// SVG (the diagram is fixed, so its boxes are placed by hand; the path is routed around them and
// their labels), HTML around it, and Graphviz dot for people who want to lay it out their own way.
// Each picture carries a one-line legend; docs/pictures.md describes the layout.
#include <string>
#include <vector>

#include "netfilter/datapath.hpp"
#include "netfilter/nftables/nft.hpp"

namespace svcpath::cli {

/// An nftables base chain drawn in its hook's box, placed by priority among the iptables tables.
struct NftRow {
  Hook hook;
  int priority;
  bool nat;           // inside the nat core (drawn next to the iptables nat table)
  std::string table;  // "ip kube-proxy": as trace events name it
  std::string chain;
  std::string after = {};  // placed after this fixed row ("mangle", "nat", "" = first) when the priority is unknown
  bool placed = false;     // true: use `after`, not `priority`
};
/// The base chains of a ruleset, for Panel::nft.
std::vector<NftRow> nft_rows(const nf::nft::Ruleset* rs);

struct Panel {
  std::string mode;                   // "iptables", "ipvs", "nftables", "rules"
  bool ipvs = false;                  // draw IPVS's hook entries
  std::vector<nf::Outcome> outcomes;  // one, or every outcome with --enumerate
  size_t shown = 0;                   // which outcome the path is drawn for
  std::string in;                     // receiving interface ("" when sent by a local process)
  std::vector<NftRow> nft = {};       // nftables base chains on the node
};

struct Picture {
  std::string title;          // the packet
  std::vector<Panel> panels;  // side by side, aligned by hook
};

/// One SVG document holding every picture, one row each.
std::string render_svg(const std::vector<Picture>& pics);
/// A self-contained HTML page: the SVG, and per panel the full trace as text.
std::string render_html(const std::vector<Picture>& pics, const std::string& heading);
/// Graphviz: one digraph per picture and panel, the visited path in bold.
std::string render_dot(const std::vector<Picture>& pics);

/// XML/HTML text escaping.
std::string xml_escape(std::string_view s);

}  // namespace svcpath::cli
