// ipvsadm -L and ipvsadm-save without -n: service names resolved as ipvsadm's getservbyname does
// for the service's protocol (from the built-in netbase table), host names refused with their
// position, loopback names read as the loopback addresses, and the table printed back numeric.
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include "cli/commands.hpp"
#include "helpers.hpp"
#include "ipvs/ipvsadm.hpp"

using namespace svcpath;
using namespace svcpath::ipvs;

namespace {

std::string data(const char* name) {
  std::ifstream f(test::source_dir() + "/tests/data/ipvs/" + name, std::ios::binary);
  REQUIRE(f);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string saved(const std::string& text) {
  ServiceTable t;
  load_ipvsadm(text, "x.ipvs", t);
  return save_ipvsadm(t);
}

// The first diagnostic as "line:col: message", or "loaded" when the text loads.
std::string first_error(const std::string& text) {
  ServiceTable t;
  try {
    load_ipvsadm(text, "x.ipvs", t);
  } catch (const LoadError& e) {
    auto& d = e.diagnostics().at(0);
    return std::to_string(d.line) + ":" + std::to_string(d.column) + ": " + d.message;
  }
  return "loaded";
}

// The node both fixtures were written for, as ipvsadm-save -n prints it (servers in listing order).
const char* kNumeric =
    "-A -t 127.0.0.1:30080 -s rr\n"
    "-a -t 127.0.0.1:30080 -r 10.244.1.7:8080 -m -w 1\n"
    "-a -t 127.0.0.1:30080 -r 10.244.2.9:8080 -m -w 1\n"
    "-A -t 10.96.0.1:443 -s rr\n"
    "-a -t 10.96.0.1:443 -r 192.168.0.10:6443 -m -w 1\n"
    "-A -t 10.96.0.10:53 -s rr\n"
    "-a -t 10.96.0.10:53 -r 10.244.0.2:53 -m -w 1\n"
    "-a -t 10.96.0.10:53 -r 10.244.0.3:53 -m -w 1\n"
    "-A -t 10.96.0.10:9153 -s rr\n"
    "-a -t 10.96.0.10:9153 -r 10.244.0.2:9153 -m -w 1\n"
    "-A -u 10.96.0.10:53 -s rr\n"
    "-a -u 10.96.0.10:53 -r 10.244.0.2:53 -m -w 1\n"
    "-a -u 10.96.0.10:53 -r 10.244.0.3:53 -m -w 1\n"
    "-A -t 10.100.1.5:80 -s rr -p 10800\n"
    "-a -t 10.100.1.5:80 -r 10.244.1.7:8080 -m -w 1\n"
    "-A -t [fd00:10:96::1]:443 -s rr\n"
    "-a -t [fd00:10:96::1]:443 -r [fd00:10:244:1::7]:8080 -m -w 1\n";

}  // namespace

TEST_CASE("service names: the service's protocol picks the database, aliases resolve, SCTP and fwmark too") {
  CHECK(service_port("https", proto::TCP) == 443);
  CHECK(service_port("domain", proto::UDP) == 53);
  CHECK(service_port("www", proto::TCP) == 80);                 // an alias, as getservbyname accepts
  CHECK(service_port("webcache", proto::TCP) == 8080);          // http-alt's alias
  CHECK(service_port("http-alt", proto::UDP) == std::nullopt);  // netbase lists 8080/tcp only
  CHECK(service_port("amqp", proto::SCTP) == 5672);
  CHECK(service_port("http", proto::SCTP) == std::nullopt);
  CHECK(service_port("http", 0) == 80);                     // -f services are TCP in ipvsadm
  CHECK(service_port("HTTP", proto::TCP) == std::nullopt);  // the files backend compares exactly
}

TEST_CASE("ipvsadm -L and ipvsadm-save with names load as the numeric table and print numeric") {
  CHECK(saved(data("kube-proxy-names.list")) == kNumeric);
  // ipvsadm-save restores each service's servers reversed (as ipvsadm-restore does); two rounds
  // are the listing's order again.
  CHECK(saved(saved(data("kube-proxy-names.save"))) == kNumeric);
  CHECK(saved(data("kube-proxy-names.save")).find("-r 10.244.2.9:8080 -m -w 1\n-a -t 127.0.0.1:30080 -r 10.244.1.7:8080") !=
        std::string::npos);
  // The listing's counters survive the names.
  ServiceTable t;
  load_ipvsadm(data("kube-proxy-names.list"), "l", t);
  const Service* np = t.find(proto::TCP, *Addr::parse("127.0.0.1"), 30080);
  REQUIRE(np);
  CHECK(np->dests[0].inactconns == 2);
  CHECK(np->dests[1].activeconns == 1);
}

TEST_CASE("a public ipvsadm -L with service names (kube-router #415) loads") {
  std::string s = saved(data("kube-router-415.list"));
  CHECK(s.find("-A -t 100.64.134.163:5432 -s rr\n-a -t 100.64.134.163:5432 -r 100.98.126.28:5432 -m -w 1\n") !=
        std::string::npos);
  CHECK(s.find("-A -t 100.64.242.48:9102 -s rr\n-a -t 100.64.242.48:9102 -r 100.99.76.7:9102 -m -w 1\n") != std::string::npos);
  CHECK(s.find("-A -t 100.65.82.182:8080 -s rr\n") != std::string::npos);
  CHECK(s.find("-A -t 100.64.151.195:443 -s rr\n-a -t 100.64.151.195:443 -r 100.99.56.13:5601 -m -w 1\n") != std::string::npos);
}

TEST_CASE("names in every place a port or address is read") {
  CHECK(saved("-A -t localhost:http -s rr\n-a -t localhost:http -r 10.0.0.1 -m -w 1\n") ==
        "-A -t 127.0.0.1:80 -s rr\n-a -t 127.0.0.1:80 -r 10.0.0.1:80 -m -w 1\n");
  CHECK(saved("-A -t [localhost]:https -s rr\n") == "-A -t [::1]:443 -s rr\n");
  CHECK(saved("-A -f 5 -s rr\n-a -f 5 -r 10.0.0.1:http -g -w 2\n") == "-A -f 5 -s rr\n-a -f 5 -r 10.0.0.1:80 -g -w 2\n");
  CHECK(saved("-A --sctp-service 10.0.0.1:amqp -s rr\n") == "-A --sctp-service 10.0.0.1:5672 -s rr\n");
  CHECK(saved("FWM  7 rr\n  -> 10.0.0.1:https Route 1 0 0\n") == "-A -f 7 -s rr\n-a -f 7 -r 10.0.0.1:443 -g -w 1\n");
  CHECK(saved("UDP  10.96.0.10:domain rr\n  -> 10.244.0.2:domain Masq 1 0 0\n") ==
        "-A -u 10.96.0.10:53 -s rr\n-a -u 10.96.0.10:53 -r 10.244.0.2:53 -m -w 1\n");
}

TEST_CASE("names svcpath cannot know are errors at their column") {
  CHECK(first_error("TCP  node3:31109 rr\n") ==
        "1:6: 'node3' is a host name: svcpath does not resolve host names; list the table with ipvsadm -Ln");
  CHECK(first_error("-A -t kubernetes.default:https -s rr\n") ==
        "1:7: 'kubernetes.default' is a host name: svcpath does not resolve host names; list the table with "
        "ipvsadm-save -n");
  CHECK(first_error("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r web1 -m\n") ==
        "2:22: 'web1' is a host name: svcpath does not resolve host names; list the table with ipvsadm-save -n");
  CHECK(first_error("-A -t [web1]:80 -s rr\n") ==
        "1:8: 'web1' is a host name: svcpath does not resolve host names; list the table with ipvsadm-save -n");
  CHECK(first_error("TCP  10.96.0.1:sun-sr-https rr\n") ==
        "1:16: 'sun-sr-https' is not a tcp service name in netbase's /etc/services; give the node's own with --services FILE, or "
        "list the table with ipvsadm -Ln");
  CHECK(first_error("-A -u 10.96.0.1:http-alt -s rr\n") ==
        "1:17: 'http-alt' is not a udp service name in netbase's /etc/services; give the node's own with --services FILE, or "
        "list the table with ipvsadm-save -n");
  // ipvsadm -L cuts an IPv4 address:port at 28 characters; a name at that width may be cut short.
  CHECK(first_error("TCP  10.96.0.1:443 rr\n  -> 192.168.200.240:sun-sr-https Masq 1 0 0\n") ==
        "2:22: 'sun-sr-https' is not a tcp service name in netbase's /etc/services; give the node's own with --services FILE, or "
        "list the table with ipvsadm -Ln "
        "(ipvsadm -L cuts address:port to 28 characters)");
  CHECK(first_error("TCP  10.0.0.300:http rr\n").starts_with("1:6: '10.0.0.300' is not an IP address"));
}

TEST_CASE("listings without schedulers or forwarding methods are refused at their header") {
  CHECK(first_error("IP Virtual Server version 1.2.1 (size=4096)\n"
                    "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n"
                    "  -> RemoteAddress:Port\n") ==
        "2:38: an ipvsadm -L --stats listing has no schedulers, forwarding methods or weights; list the table with "
        "ipvsadm -Ln (or ipvsadm-save -n)");
  CHECK(first_error("Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n")
            .starts_with("1:40: an ipvsadm -L --rate listing"));
  CHECK(first_error("Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn\n")
            .starts_with("1:35: an ipvsadm -L --thresholds listing"));
  CHECK(first_error("Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn\n")
            .starts_with("1:35: an ipvsadm -L --persistent-conn listing"));
}

TEST_CASE("svcpath rules --ipvs prints an ipvsadm -L listing as ipvsadm-save -n") {
  cli::RulesOptions o;
  o.ipvs = test::source_dir() + "/tests/data/ipvs/kube-proxy-names.list";
  std::ostringstream out;
  CHECK(cli::run_rules(o, out) == 0);
  CHECK(out.str() == kNumeric);
}

TEST_CASE("IPv6 firewall-mark services: ipvsadm prints 'FWM  N IPv6' and '-f N -6'") {
  std::string want = "-A -f 5 -6 -s rr\n-a -f 5 -6 -r [fd00::7]:80 -m -w 1\n-A -f 5 -s rr\n";
  CHECK(saved("FWM  5 IPv6 rr\n  -> [fd00::7]:http Masq 1 0 0\nFWM  5 rr\n") == want);
  CHECK(saved(want) == want);
  ServiceTable t;
  load_ipvsadm(want, "x.ipvs", t);
  CHECK(t.find_fwmark(5, Family::V6) != t.find_fwmark(5, Family::V4));
  CHECK(list_ipvsadm(t).find("FWM  5 IPv6 rr\n  -> [fd00::7]:80 ") != std::string::npos);
}

// Found by the fuzzer: an IPv6 service's listed mask read as an address, then printed through a
// prefix length it did not have. ipvsadm takes and prints an IPv4 mask dotted, an IPv6 one as a
// prefix length.
TEST_CASE("persistence masks follow the service's family, in both the listing and the save form") {
  std::string v6 = "-A -t [fd00::1]:80 -s rr -p 300 -M 64\n-A -t 10.0.0.1:80 -s rr -p 300 -M 255.255.255.0\n";
  CHECK(saved(v6) == v6);
  CHECK(saved("TCP  [fd00::1]:80 rr persistent 300 mask 64\nTCP  10.0.0.1:80 rr persistent 300 mask 255.255.255.0\n") == v6);
  ServiceTable t;
  load_ipvsadm(v6, "x.ipvs", t);
  CHECK(list_ipvsadm(t).find("TCP  [fd00::1]:80 rr persistent 300 mask 64\n") != std::string::npos);
  CHECK(list_ipvsadm(t).find("TCP  10.0.0.1:80 rr persistent 300 mask 255.255.255.0\n") != std::string::npos);
  CHECK(first_error("TCP  [fd00::1]:80 rr persistent 5 mask ffff::1\n") ==
        "1:40: 'ffff::1': an IPv6 service's mask is a prefix length 1..128");
  CHECK(first_error("-A -t [fd00::1]:80 -s rr -p 5 -M 0\n") == "1:34: '0': an IPv6 service's mask is a prefix length 1..128");
  CHECK(first_error("-A -t 10.0.0.1:80 -s rr -p 5 -M 64\n").starts_with("1:33: '64' is not an IP address"));
  CHECK(first_error("-A -t 10.0.0.1:80 -s rr -p 5 -M ffff::\n") == "1:33: 'ffff::': an IPv4 service's mask is a dotted netmask");
}

TEST_CASE("the node's own services database names ports netbase lacks") {
  // RHEL's /etc/services carries the IANA registry; a listing from such a node uses its names.
  ServicesDb db = ServicesDb::parse(
      "# comment line\n"
      "sun-sr-https    6443/tcp                # Service Registry\n"
      "sun-sr-https    6443/udp\n"
      "http-alt        8080/udp   webcache-u   # an alias\n"
      "http-alt        9999/udp\n"  // later entries lose, as in the file scan
      "ddp-thing       3/ddp\n",
      "rhel-services");
  CHECK(db.port("sun-sr-https", proto::TCP) == 6443);
  CHECK(db.port("webcache-u", proto::UDP) == 8080);
  CHECK(db.port("http-alt", proto::UDP) == 8080);
  CHECK(db.port("http-alt", proto::TCP) == std::nullopt);
  CHECK(db.port("http", proto::TCP) == std::nullopt);  // the node's file replaces netbase's
  CHECK(db.port("sun-sr-https", 0) == 6443);           // a fwmark service's names are TCP's
  ServiceTable t;
  load_ipvsadm("TCP  10.96.0.1:sun-sr-https rr\n  -> 192.168.1.10:sun-sr-https Masq 1 0 0\n", "l", t, db);
  CHECK(save_ipvsadm(t) == "-A -t 10.96.0.1:6443 -s rr\n-a -t 10.96.0.1:6443 -r 192.168.1.10:6443 -m -w 1\n");
  ServiceTable u;
  CHECK_LOAD_ERROR(load_ipvsadm("TCP  10.96.0.1:https rr\n", "l", u, db), 1,
                   "'https' is not a tcp service name in rhel-services; give the node's own with --services FILE");
  CHECK_LOAD_ERROR(ServicesDb::parse("ok 1/tcp\nbroken 80\n", "s"), 2, "'80' is not port/protocol (e.g. 80/tcp)");
  CHECK_LOAD_ERROR(ServicesDb::parse("lonely\n", "s"), 1, "'lonely' has no port/protocol");
  CHECK_LOAD_ERROR(ServicesDb::parse("big 70000/tcp\n", "s"), 1, "'70000/tcp' is not port/protocol");
}
