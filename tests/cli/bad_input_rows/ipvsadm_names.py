"""--ipvs input from `ipvsadm -L` and `ipvsadm-save` without -n: names svcpath cannot know (host
names, service names netbase does not list for the protocol) and listings without schedulers."""

HEADER = (b"IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n"
          b"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
ARGV = ["rules", "--ipvs", "{f}"]

# (name, file name, bytes, argv with {f} for the file, exact stderr, exit status)
ROWS = [
    ("ipvsadm -L: host name of a virtual service", "l.ipvs", HEADER + b"TCP  node3:31109 rr\n", ARGV,
     "l.ipvs:4:6: error: 'node3' is a host name: svcpath does not resolve host names; "
     "list the table with ipvsadm -Ln", 1),
    ("ipvsadm -L: a port name netbase lacks, cut at 28 columns", "l.ipvs",
     HEADER + b"TCP  10.96.0.1:https rr\n  -> 192.168.200.240:sun-sr-https Masq    1      0          0\n", ARGV,
     "l.ipvs:5:22: error: 'sun-sr-https' is not a tcp service name in netbase's /etc/services; "
     "give the node's own with --services FILE, or list the table with ipvsadm -Ln (ipvsadm -L cuts address:port to 28 characters)", 1),
    ("ipvsadm-save: a TCP-only name on a UDP service", "s.ipvs", b"-A -u 10.96.0.10:http-alt -s rr\n", ARGV,
     "s.ipvs:1:18: error: 'http-alt' is not a udp service name in netbase's /etc/services; "
     "give the node's own with --services FILE, or list the table with ipvsadm-save -n", 1),
    ("ipvsadm-save: host name of a real server", "s.ipvs",
     b"-A -t 10.96.0.1:https -s rr\n-a -t 10.96.0.1:https -r kube-apiserver:6443 -m -w 1\n", ARGV,
     "s.ipvs:2:26: error: 'kube-apiserver' is a host name: svcpath does not resolve host names; "
     "list the table with ipvsadm-save -n", 1),
    ("ipvsadm -L --stats: no schedulers", "l.ipvs",
     b"IP Virtual Server version 1.2.1 (size=4096)\n"
     b"Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n"
     b"  -> RemoteAddress:Port\nTCP  10.96.0.1:443                       3       18       12     1200     3400\n", ARGV,
     "l.ipvs:2:38: error: an ipvsadm -L --stats listing has no schedulers, forwarding methods or weights; "
     "list the table with ipvsadm -Ln (or ipvsadm-save -n)", 1),
    ("ipvsadm -L: --services with a malformed entry", "svc.txt", b"http 80/tcp\nbroken 80\n",
     ["rules", "--ipvs", "/dev/null", "--services", "{f}"], "svc.txt:2:8: error: '80' is not port/protocol (e.g. 80/tcp)", 1),
    ("--services without --ipvs does nothing: refused", "svc.txt", b"http 80/tcp\n",
     ["rules", "--rules", "/dev/null", "--services", "{f}"],
     "--services: error: names the ports of an ipvsadm -L listing: give that listing with --ipvs", 1),
]
